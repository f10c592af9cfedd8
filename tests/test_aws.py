"""Clients are built in one place, from the standard AWS configuration plus our flags."""

from workflow.aws import AwsConfig, Clients


def test_flags_win_and_retries_use_standard_mode():
    client = Clients(AwsConfig(region="eu-west-1", endpoint_url="http://127.0.0.1:5999"))("ecs")
    assert client.meta.region_name == "eu-west-1"
    assert client.meta.endpoint_url == "http://127.0.0.1:5999"
    assert client.meta.config.retries["mode"] == "standard"


def test_standard_environment_is_honoured(monkeypatch):
    monkeypatch.setenv("AWS_REGION", "ap-southeast-2")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:6000")
    client = Clients(AwsConfig())("ecs")
    assert client.meta.region_name == "ap-southeast-2"
    assert client.meta.endpoint_url == "http://127.0.0.1:6000"


def test_each_client_is_built_once():
    clients = Clients(AwsConfig())
    assert clients("ecs") is clients("ecs")
