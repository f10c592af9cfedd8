"""Clients are built in one place, from the standard AWS configuration plus our flags."""

import pytest

from workflow.aws import AwsConfig, Clients
from workflow.errors import ConfigurationError


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


def test_calls_get_a_larger_retry_budget_unless_the_aws_configuration_sets_one(monkeypatch):
    retries = Clients(AwsConfig())("ecs").meta.config.retries
    assert (retries["mode"], retries["total_max_attempts"]) == ("standard", 8)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("AWS_RETRY_MODE", "adaptive")
    retries = Clients(AwsConfig())("ecs").meta.config.retries
    assert (retries["mode"], retries["total_max_attempts"]) == ("adaptive", 2)


def test_a_client_for_another_region_is_built_on_request():
    clients = Clients(AwsConfig(region="us-east-1"))
    assert clients("logs", "eu-west-1").meta.region_name == "eu-west-1"
    assert clients("logs").meta.region_name == "us-east-1"


def test_a_configuration_refused_once_is_refused_again(monkeypatch):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "abc")
    clients = Clients(AwsConfig())
    for _ in range(2):
        with pytest.raises(ConfigurationError, match="invalid AWS configuration"):
            clients("ecs")
