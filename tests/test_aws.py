"""Clients are built in one place, from the standard AWS configuration plus our flags: retries that keep their
promise, calls bounded in time, and answers checked before anything reads them."""

import socket
import threading
import time

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from helpers import free_port

from workflow.aws import AwsConfig, Clients
from workflow.errors import ConfigurationError, Malformed, NotApplied, Throttled, Transient, WaitTimedOut, translated
from workflow.poller import Poller


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


# --- retries that keep their promise, calls bounded in time, answers checked before they are read ----------

THROTTLED = (400, b'{"__type": "ThrottlingException", "message": "Rate exceeded"}')
FAILED = (500, b'{"__type": "ServerException", "message": "Service encountered an internal error"}')
NO_CLUSTERS = (200, b'{"clusterArns": []}')


class _Body:
    def __init__(self, body: bytes):
        self._body = body

    def stream(self, **_):
        yield self._body


def answering(client, answers, content_type="application/x-amz-json-1.1"):
    """Each HTTP attempt of `client` gets the next (status, body) of `answers`; returns the attempts counted."""
    attempts = []

    def send(request, **_):
        status, body = next(answers)
        attempts.append(status)
        return AWSResponse(request.url, status, {"content-type": content_type}, _Body(body))

    client.meta.events.register_first("before-send", send)
    return attempts


def ecs_client(**config):
    return Clients(AwsConfig(region="us-east-1", **config))("ecs")


def test_the_promised_attempts_hold_for_every_call_however_many_retries_came_before():
    """botocore's standard quota (500 tokens) would be spent after ten such calls; a long wait makes hundreds."""
    client = ecs_client()
    answering(client, iter(([THROTTLED] * 4 + [FAILED] * 3 + [NO_CLUSTERS]) * 40))
    for _ in range(40):
        assert client.list_clusters()["clusterArns"] == []
    attempts = answering(client := ecs_client(), iter([FAILED] * 9))
    with pytest.raises(ClientError):
        client.list_clusters()
    assert len(attempts) == 8  # and never more


def test_a_throttled_answer_means_nothing_was_done_unless_an_earlier_attempt_may_have_been():
    answering(client := ecs_client(), iter([THROTTLED] * 8))
    with pytest.raises(Throttled), translated():
        client.run_task(taskDefinition="airflow:1")
    answering(client := ecs_client(), iter([FAILED] + [THROTTLED] * 7))
    with pytest.raises(Transient) as raised, translated():
        client.run_task(taskDefinition="airflow:1")
    assert not isinstance(raised.value, NotApplied)  # the 500 may have started a task
    answering(client := ecs_client(), iter([THROTTLED] * 7 + [FAILED]))
    with pytest.raises(Transient) as raised, translated():
        client.run_task(taskDefinition="airflow:1")
    assert not isinstance(raised.value, NotApplied)


def test_a_connection_that_never_opened_sent_nothing():
    with pytest.raises(NotApplied, match="cannot reach AWS"), translated():
        ecs_client(endpoint_url=f"http://127.0.0.1:{free_port()}").list_clusters()


@pytest.fixture
def silent_endpoint():
    """An endpoint that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held = []

    def accept():
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()
    for connection in held:
        connection.close()


def within(seconds: float, call):
    """What `call` raised, and how long it took; fails if it takes longer than `seconds` (it is left behind)."""
    outcome = {}

    def target():
        began = time.monotonic()
        try:
            call()
        except Exception as error:  # noqa: BLE001 (the test looks at it)
            outcome["error"] = error
        outcome["took"] = time.monotonic() - began

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert "took" in outcome, f"still running after {seconds}s"
    return outcome.get("error"), outcome["took"]


@pytest.mark.realtime
def test_the_timeout_bounds_a_single_call_to_an_endpoint_that_never_answers(silent_endpoint):
    """It held `status` for 485 s: botocore's 60 s read timeout, times eight attempts."""
    client = ecs_client(endpoint_url=silent_endpoint, timeout=2)

    def call():
        with translated():
            client.list_clusters()

    error, took = within(10, call)
    assert isinstance(error, Transient)
    assert "Read timeout" in str(error)
    assert 1.5 < took < 3.5


@pytest.mark.realtime
def test_a_waits_deadline_holds_within_a_call(silent_endpoint):
    client = ecs_client(endpoint_url=silent_endpoint)  # each read may take botocore's 60 s, outside waits
    poller = Poller(time.monotonic, time.sleep, 0.5, 2)

    def check():
        with translated():
            return client.list_clusters()

    error, took = within(10, lambda: poller.until(check, lambda: "the clusters"))
    assert isinstance(error, WaitTimedOut)
    assert took < 3.5


MALFORMED = {
    "an html page": b"<html><body><h1>502 Bad Gateway</h1></body></html>",
    "an empty object": b"{}",
    "a list": b"[]",
    "a truncated body": b'{"clusterArns": ["arn:aws:ecs:us-east-1:123456789012:cluster/a", "arn:aws:ecs:us-e',
    "a body that is not utf-8": b'{"clusterArns": ["\xff\xfe"]}',
    "a list of the wrong type": b'{"clusterArns": "arn:aws:ecs:us-east-1:123456789012:cluster/a"}',
    "items of the wrong type": b'{"clusterArns": [1, 2]}',
    "a null where the list goes": b'{"clusterArns": null}',
    "an empty body": b"",
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=list(MALFORMED))
def test_a_malformed_answer_is_malformed_before_anything_reads_it(body):
    answering(client := ecs_client(), iter([(200, body)]))
    with pytest.raises(Malformed, match="AWS answered something unreadable to ListClusters"):
        client.list_clusters()


@pytest.mark.parametrize("body, where", [
    (b'{"tasks": [{"taskArn": "a", "containers": [{"name": "c", "exitCode": "1"}]}]}',
     "the answer's tasks[0]'s containers[0]'s exitCode is a string, not an integer"),
    (b'{"tasks": [{"taskArn": "a", "containers": [null]}]}', "the answer's tasks[0]'s containers[0] is null"),
    (b'{"tasks": [{"taskArn": "a", "tags": [{"key": "k", "value": 1}]}], "failures": []}',
     "the answer's tasks[0]'s tags[0]'s value is a number, not a string"),
    (b'{"tasks": [], "failures": {"arn": "x"}}', "the answer's failures is an object, not a list"),
])
def test_a_malformed_answer_names_the_value_that_is_wrong(body, where):
    answering(client := ecs_client(), iter([(200, body)]))
    with pytest.raises(Malformed) as raised:
        client.describe_tasks(cluster="c", tasks=["a"])
    assert str(raised.value).endswith(where)


@pytest.mark.parametrize("service, body, content_type", [
    ("ecs", b"[]", "application/x-amz-json-1.1"),  # botocore: AttributeError: 'list' object has no attribute 'get'
    ("ecs", b'{"clusterArns": ["\xff"]}', "application/x-amz-json-1.1"),  # UnicodeDecodeError
    ("ecs", b'{"clusterArns": 5}', "application/x-amz-json-1.1"),  # TypeError: 'int' object is not iterable
    ("sts", b"<html><body>Bad gateway</body></html>", "text/html"),  # KeyError: 'GetCallerIdentityResult'
    ("sts", b"<GetCallerIdentityResponse><GetCaller", "text/xml"),  # ResponseParserError
])
def test_what_botocores_parsers_raise_on_a_malformed_body_is_malformed_too(service, body, content_type):
    from conftest import new_client  # a client without this tool's checks, as another library would build

    client = new_client(service)
    answering(client, iter([(200, body)]), content_type)
    with pytest.raises(Malformed, match="AWS answered something unreadable"), translated():
        (client.list_clusters if service == "ecs" else client.get_caller_identity)()


def test_the_same_errors_raised_outside_botocores_parsers_stay_bugs():
    with pytest.raises(AttributeError), translated():
        "text".missing()
    with pytest.raises(KeyError), translated():
        {}["missing"]
