"""Airflow's REST API client against recorded real answers, the fake api-server and loopback servers; the load
balancer discovery and the credentials secret against moto.

tests/data/airflow/ holds answers recorded from real servers: v3-* from apache-airflow 3.3.2's api-server
(simple auth manager), v2-* from apache-airflow 2.11.0's webserver (FAB basic_auth backend), each with its
status and content type. Recorded tokens are replaced, and long HTML pages cut after their <head>.
"""

import base64
import datetime as dt
import ipaddress
import json
import pathlib
import ssl
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import new_client
from contract.shapes import shape_differences
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workflow import airflow_api
from workflow.airflow_api import (
    AirflowApi,
    AirflowApiError,
    AirflowUnauthorized,
    AirflowUnexpectedAnswer,
    AirflowUnreachable,
    Credentials,
    Health,
    InvalidAirflowUrl,
    InvalidCaBundle,
    RunningTaskInstances,
    Timeouts,
    parse_health,
    parse_task_instances,
)
from workflow.errors import FAILED, USAGE
from workflow_sandbox.airflow_api import AirflowModel, FakeAirflowApi

DATA = pathlib.Path(__file__).parent / "data" / "airflow"
PASSWORD = "pw-Xq9!never-shown"


def recorded(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text())


# --- a loopback server that answers what a test tells it ------------------------------------------------------


@dataclass
class Reply:
    status: int
    content_type: str = "application/json"
    body: bytes = b""
    headers: dict = field(default_factory=dict)

    @classmethod
    def of(cls, name: str) -> "Reply":
        """A recorded answer, byte for byte as far as JSON allows."""
        doc = recorded(name)
        body = doc["body"]
        raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        return cls(doc["status"], doc["content_type"], raw)

    @classmethod
    def json(cls, status: int, doc) -> "Reply":
        return cls(status, "application/json", json.dumps(doc).encode())


@dataclass
class Seen:
    method: str
    path: str
    headers: dict
    body: bytes


class Replay:
    """Answers by "METHOD /path" (query left out): a Reply, a list of them used in turn (the last one stays), or a
    function of the request. Anything else: 404."""

    def __init__(self, routes: dict):
        self.routes = routes
        self.seen: list[Seen] = []
        replay = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.answer("GET")

            def do_POST(self):
                self.answer("POST")

            def answer(self, method):
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(method, self.path, dict(self.headers), self.rfile.read(length) if length else b"")
                replay.seen.append(seen)
                route = replay.routes.get(f"{method} {self.path.split('?')[0]}")
                if isinstance(route, list):
                    reply = route.pop(0) if len(route) > 1 else route[0]
                elif callable(route):
                    reply = route(seen)
                else:
                    reply = route or Reply(404, "text/plain", b"no route")
                self.send_response_only(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(reply.body)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(reply.body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def paths(self) -> list[str]:
        return [f"{s.method} {s.path.split('?')[0]}" for s in self.seen]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def replay():
    servers = []

    def start(routes: dict) -> Replay:
        servers.append(Replay(routes))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def fake():
    servers = []

    def start(major=3, **kwargs) -> tuple[AirflowModel, FakeAirflowApi]:
        model = AirflowModel(major=major, users={"operator": PASSWORD}, **kwargs)
        servers.append(FakeAirflowApi(model).start())
        return model, servers[-1]

    yield start
    for server in servers:
        server.stop()


class Sleeps(list):
    """The client's sleep: records the pauses, takes no time."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def client(url, credentials=None, **kwargs) -> AirflowApi:
    kwargs.setdefault("sleep", Sleeps())
    return AirflowApi(url, credentials, **kwargs)


V3_ROUTES = {
    "GET /api/v2/monitor/health": Reply.of("v3-health-all-running"),
    "GET /health": Reply.of("v3-legacy-health"),
    "GET /api/v2/version": Reply.of("v3-version"),
}
V2_ROUTES = {
    "GET /api/v2/monitor/health": Reply.of("v2-v2-monitor-health"),
    "GET /health": Reply.of("v2-health-running"),
    "GET /api/v1/version": Reply.of("v2-version"),
}


def assert_secret_free(*texts):
    for text in texts:
        assert PASSWORD not in text, text
        assert "fake." not in text, text
        assert "recorded-token" not in text, text


# --- parsing recorded answers ---------------------------------------------------------------------------------


def test_airflow3_health_of_a_fresh_database_says_which_components_never_ran():
    health = parse_health(recorded("v3-health-fresh")["body"], 3)
    assert health.metadatabase_ok
    assert health.major == 3
    # A scheduler that never ran is "unhealthy" without heartbeat; a triggerer or dag-processor has status null.
    assert (health.scheduler.status, health.scheduler.latest_heartbeat, health.scheduler.ever_ran) == ("unhealthy", None, False)
    assert health.triggerer is not None
    assert health.triggerer.status is None
    assert not health.triggerer.ever_ran
    assert health.dag_processor is not None
    assert health.dag_processor.status is None


def test_airflow3_health_with_every_component_running():
    health = parse_health(recorded("v3-health-all-running")["body"], 3)
    for component in (health.scheduler, health.triggerer, health.dag_processor):
        assert component is not None
        assert component.healthy
        assert component.ever_ran
        assert component.latest_heartbeat is not None
        assert component.latest_heartbeat.tzinfo is not None
    assert health.scheduler.latest_heartbeat == datetime(2026, 12, 1, 21, 2, 41, 659177, tzinfo=UTC)


def test_a_stopped_scheduler_is_unhealthy_with_its_last_heartbeat():
    health = parse_health(recorded("v3-health-scheduler-stopped")["body"], 3)
    assert not health.scheduler.healthy
    assert health.scheduler.latest_heartbeat == datetime(2026, 12, 1, 21, 2, 47, 573869,
                                                         tzinfo=UTC)
    assert health.triggerer is not None
    assert health.triggerer.healthy


@pytest.mark.parametrize("name", ["v2-health-fresh", "v2-api-v1-health-fresh", "v2-health-running"])
def test_airflow2_health_reads_as_airflow3s(name):
    health = parse_health(recorded(name)["body"], 2)
    assert health.metadatabase_ok
    assert health.major == 2
    assert health.dag_processor is not None
    assert health.dag_processor.status is None  # runs inside the scheduler
    if name == "v2-health-running":
        assert health.scheduler.healthy
        assert health.triggerer is not None
        assert health.triggerer.healthy
        assert health.scheduler.latest_heartbeat == datetime(2026, 12, 1, 21, 4, 6, 867309, tzinfo=UTC)
    else:
        assert health.scheduler.status == "unhealthy"
        assert not health.scheduler.ever_ran


def test_a_component_absent_from_the_answer_is_none_not_one_that_never_ran():
    doc = recorded("v3-health-fresh")["body"]
    del doc["dag_processor"]
    doc["triggerer"] = None
    health = parse_health(doc, 3)
    assert health.dag_processor is None
    assert health.triggerer is None
    assert health.component("scheduler") is health.scheduler


def test_a_heartbeat_without_offset_is_utc():
    doc = recorded("v3-health-all-running")["body"]
    doc["scheduler"]["latest_scheduler_heartbeat"] = "2026-12-01T21:02:41"
    assert parse_health(doc, 3).scheduler.latest_heartbeat == datetime(2026, 12, 1, 21, 2, 41, tzinfo=UTC)


@pytest.mark.parametrize("name", ["v3-running-one", "v2-running-one"])
def test_a_running_task_instance_as_both_versions_list_it(name):
    running = parse_task_instances(recorded(name)["body"])
    assert running.total == 1
    assert running.complete
    (ti,) = running.task_instances
    assert (ti.dag_id, ti.task_id, ti.run_id, ti.map_index, ti.hostname) == (
        "contract_probe", "hold", "scheduled__2024-01-01T00:00:00+00:00", -1, "vm")
    assert ti.start_date is not None
    assert ti.start_date.tzinfo is not None
    assert ti.start_date.year == 2026


def test_no_running_task_instances_and_a_page_shorter_than_the_total():
    assert parse_task_instances(recorded("v2-running-none")["body"]).total == 0
    doc = recorded("v3-running-one")["body"]
    doc["total_entries"] = 250
    doc["task_instances"][0]["hostname"] = None  # queued on no worker yet
    running = parse_task_instances(doc)
    assert not running.complete
    assert running.task_instances[0].hostname is None


# --- against recorded answers over HTTP: which version, and the calls -----------------------------------------


def test_airflow3_is_recognised_from_its_health_answer_and_health_costs_one_request(replay):
    server = replay(dict(V3_ROUTES))
    api = client(server.url)
    health = api.health()
    assert health.major == 3
    assert health.scheduler.healthy
    assert server.paths() == ["GET /api/v2/monitor/health"]
    assert api.version() == "3.3.2"
    api.health()
    assert server.paths() == ["GET /api/v2/monitor/health", "GET /api/v2/version", "GET /api/v2/monitor/health"]


def test_airflow2_is_recognised_after_airflow3s_path_answers_404_and_asked_once(replay):
    server = replay(dict(V2_ROUTES))
    api = client(server.url)
    assert api.version() == "2.11.0"
    assert api.major() == 2
    assert api.health().major == 2
    assert server.paths() == ["GET /api/v2/monitor/health", "GET /health", "GET /api/v1/version", "GET /health"]


def test_a_server_that_is_not_airflow_is_told_apart(replay):
    page = Reply.of("v3-unknown-path")  # what a URL without Airflow's paths answers: the UI's page, 200
    server = replay({"GET /api/v2/monitor/health": page, "GET /health": page})
    with pytest.raises(AirflowUnexpectedAnswer) as error:
        client(server.url).health()
    assert "does not answer as Airflow does" in str(error.value)
    assert "HTML page ('Airflow')" in str(error.value)
    assert error.value.exit_code == FAILED


def test_a_base_url_with_a_path_prefix_keeps_it(replay):
    server = replay({f"GET /airflow{k.split(' ', 1)[1]}": v for k, v in V3_ROUTES.items()})
    assert client(server.url + "/airflow/").version() == "3.3.2"
    assert server.paths() == ["GET /airflow/api/v2/monitor/health", "GET /airflow/api/v2/version"]


def test_a_redirect_is_not_followed_and_says_where_it_goes(replay):
    moved = Reply(301, "text/plain", b"", {"Location": "https://user:pw@airflow.example.com:443/api/v2/version?x=1"})
    server = replay({**V3_ROUTES, "GET /api/v2/version": moved})
    with pytest.raises(AirflowUnexpectedAnswer) as error:
        client(server.url).version()
    assert "redirected /api/v2/version (HTTP 301 to https://airflow.example.com:443/api/v2/version): give the URL it " \
           "redirects to" in str(error.value)
    assert "pw" not in str(error.value)
    # A load balancer sending plain HTTP to HTTPS is found out on the first request.
    server = replay({"GET /api/v2/monitor/health": Reply(301, "text/plain", b"", {"Location": "https://x.example/"})})
    with pytest.raises(AirflowUnexpectedAnswer, match=r"redirected /api/v2/monitor/health \(HTTP 301 to https://x.example/\)"):
        client(server.url).health()


# --- authentication -------------------------------------------------------------------------------------------


def test_airflow3_token_is_fetched_only_when_needed_and_kept(fake):
    model, server = fake()
    model.start_task("etl", "load", hostname="ip-10-0-1-23.ec2.internal")
    api = client(server.url, Credentials("operator", PASSWORD))
    api.health()
    api.version()
    assert model.tokens_issued == 0  # health and version need none
    for _ in range(2):
        running = api.running_task_instances()
        assert running.total == 1
        assert running.task_instances[0].task_id == "load"
    assert model.tokens_issued == 1


@pytest.mark.parametrize("invalidate", ["expire_tokens", "rotate_signing_key"])
def test_an_expired_or_foreign_token_is_renewed_once(fake, invalidate):
    model, server = fake()
    api = client(server.url, Credentials("operator", PASSWORD))
    api.running_task_instances()
    getattr(model, invalidate)()  # 401 "Token Expired", or 403 "Invalid JWT token"
    assert api.running_task_instances().total == 0
    assert model.tokens_issued == 2


def test_a_token_refused_again_after_renewal_is_unauthorized(replay):
    expired = Reply.json(401, {"detail": "Token Expired"})
    server = replay({**V3_ROUTES, "POST /auth/token": Reply.of("v3-token-created"),
                     "GET /api/v2/dags/~/dagRuns/~/taskInstances": [Reply.of("v3-running-one"), expired]})
    api = client(server.url, Credentials("operator", PASSWORD))
    api.running_task_instances()
    with pytest.raises(AirflowUnauthorized) as error:
        api.running_task_instances()
    assert server.paths().count("POST /auth/token") == 2
    # A token refused right after it was issued is not renewed again.
    with pytest.raises(AirflowUnauthorized):
        client(server.url, Credentials("operator", PASSWORD)).running_task_instances()
    assert server.paths().count("POST /auth/token") == 3
    assert "refused user 'operator'" in str(error.value)
    assert error.value.exit_code == USAGE
    assert_secret_free(str(error.value), repr(error.value))


def test_the_token_request_carries_the_credentials_as_json_and_the_token_is_sent_as_bearer(replay):
    running = Reply.of("v3-running-one")
    server = replay({**V3_ROUTES, "POST /auth/token": Reply.of("v3-token-created"),
                     "GET /api/v2/dags/~/dagRuns/~/taskInstances": running})
    assert client(server.url, Credentials("operator", PASSWORD)).running_task_instances(limit=5).total == 1
    token_call, list_call = server.seen[-2:]
    assert json.loads(token_call.body) == {"username": "operator", "password": PASSWORD}
    assert token_call.headers["Content-Type"] == "application/json"
    assert list_call.headers["Authorization"] == "Bearer eyJhbGciOiJIUzUxMiJ9.recorded-token-replaced.signature"
    assert list_call.path.endswith("taskInstances?state=running&limit=5")


def test_a_wrong_password_is_unauthorized_and_never_shown(fake):
    model, server = fake()
    with pytest.raises(AirflowUnauthorized) as error:
        client(server.url, Credentials("operator", "wrong-" + PASSWORD)).running_task_instances()
    assert str(error.value) == f"Airflow at {server.url} refused a token to user 'operator': HTTP 401 'Invalid credentials'"
    assert "wrong-" not in str(error.value)


def test_a_user_without_permission_is_told_so(fake):
    model, server = fake()
    model.forbidden.add("operator")
    with pytest.raises(AirflowUnauthorized, match="does not let user 'operator' list running task instances"):
        client(server.url, Credentials("operator", PASSWORD)).running_task_instances()


def test_no_credentials_where_airflow_needs_them(replay):
    server = replay({**V3_ROUTES, "GET /api/v2/dags/~/dagRuns/~/taskInstances": Reply.of("v3-no-token")})
    with pytest.raises(AirflowUnauthorized, match="needs credentials to list running task instances .HTTP 401 'Not auth"):
        client(server.url).running_task_instances()


@pytest.mark.parametrize("answer", [Reply(404, "application/json", b'{"detail":"Not Found"}'),
                                    Reply.of("v3-unknown-path")])
def test_an_auth_manager_without_token_endpoint(replay, answer):
    server = replay({**V3_ROUTES, "POST /auth/token": Reply(405, "application/json", b'{"detail":"Method Not Allowed"}'),
                     "GET /auth/token": answer})
    with pytest.raises(AirflowUnauthorized, match="issues no tokens at /auth/token"):
        client(server.url, Credentials("operator", PASSWORD)).running_task_instances()


@pytest.mark.parametrize("body", [b'{"token": "x"}', b"[]", b'{"access_token": 5}', b'{"access_token": "a\\r\\nX-Evil: 1"}',
                                  b"\xff\xfe", b"<html></html>"])
def test_a_token_answer_without_a_usable_token_is_unexpected_and_not_quoted(replay, body):
    server = replay({**V3_ROUTES, "POST /auth/token": Reply(201, "application/json", body)})
    with pytest.raises(AirflowUnexpectedAnswer, match="without a usable access_token") as error:
        client(server.url, Credentials("operator", PASSWORD)).running_task_instances()
    assert "Evil" not in str(error.value)


def test_airflow2_uses_basic_auth(replay):
    expected = "Basic " + base64.b64encode(f"operator:{PASSWORD}".encode()).decode()

    def tasks(seen):
        good = seen.headers.get("Authorization") == expected
        return Reply.of("v2-running-one") if good else Reply.of("v2-wrong-password")

    server = replay({**V2_ROUTES, "GET /api/v1/dags/~/dagRuns/~/taskInstances": tasks})
    assert client(server.url, Credentials("operator", PASSWORD)).running_task_instances().total == 1
    with pytest.raises(AirflowUnauthorized) as error:
        client(server.url, Credentials("operator", "nope")).running_task_instances()
    assert "refused user 'operator' (HTTP 401 'Unauthorized'): a wrong password, or the webserver's [api] " \
           "auth_backends lacks airflow.providers.fab.auth_manager.api.auth.backend.basic_auth" in str(error.value)
    assert "POST /auth/token" not in server.paths()


def test_airflow2_through_the_fake_server(fake):
    model, server = fake(major=2)
    model.heartbeat("scheduler")
    model.start_task("etl", "load", map_index=3)
    api = client(server.url, Credentials("operator", PASSWORD))
    assert api.health().scheduler.healthy
    assert api.version() == "2.11.0"
    (ti,) = api.running_task_instances().task_instances
    assert (ti.dag_id, ti.task_id, ti.map_index) == ("etl", "load", 3)


def test_credentials_never_show_in_a_repr():
    credentials = Credentials("operator", PASSWORD)
    api = AirflowApi("https://airflow.example.com", credentials)
    assert_secret_free(repr(credentials), repr(api))
    assert "operator" in repr(api)


# --- retries, timeouts, faults --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["unavailable", "bad_gateway", "drop"])
def test_transient_failures_are_tried_again_with_backoff(fake, kind):
    model, server = fake()
    model.fail_next(kind, times=2)
    sleeps = Sleeps()
    assert client(server.url, sleep=sleeps).version() == "3.3.2"
    assert sleeps == [0.5, 1.0]


def test_a_load_balancer_without_healthy_targets_is_unreachable_after_the_retries(fake):
    model, server = fake()
    model.fault = "unavailable"
    with pytest.raises(AirflowUnreachable) as error:
        client(server.url, retries=2).health()
    assert "HTTP 503 and an HTML page ('503 Service Temporarily Unavailable')" in str(error.value)
    assert "after 3 tries" in str(error.value)
    assert error.value.exit_code == FAILED
    assert len(model.requests) == 3


def test_429_waits_as_retry_after_says_within_the_cap(replay):
    busy = Reply(429, "application/json", b'{"detail":"slow down"}', {"Retry-After": "3"})
    server = replay({**V3_ROUTES, "GET /api/v2/version": [busy, Reply.of("v3-version")]})
    sleeps = Sleeps()
    assert client(server.url, major=3, sleep=sleeps).version() == "3.3.2"
    assert sleeps == [3.0]


def test_a_server_error_is_not_retried(replay):
    server = replay({**V3_ROUTES, "GET /api/v2/version": Reply(500, "text/plain", b"Internal Server Error")})
    with pytest.raises(AirflowUnexpectedAnswer, match=r"answered /api/v2/version with HTTP 500 \(text/plain, 21 bytes\)"):
        client(server.url, major=3).version()
    assert server.paths() == ["GET /api/v2/version"]


def test_a_refused_connection_is_unreachable(fake):
    model, server = fake()
    model.fault = "refuse"
    sleeps = Sleeps()
    with pytest.raises(AirflowUnreachable, match="connection refused, after 4 tries"):
        client(server.url, sleep=sleeps).health()
    assert sleeps == [0.5, 1.0, 2.0]
    model.fault = None  # listening again, on the same port
    assert client(server.url).version() == "3.3.2"


def test_a_server_that_never_answers_times_out_within_the_deadline(fake):
    model, server = fake()
    model.fault = "hang"
    started = dt.datetime.now()
    with pytest.raises(AirflowUnreachable, match=r"no answer within 0.1 s"):
        client(server.url, timeouts=Timeouts(connect=0.5, read=0.1, deadline=5), retries=1).health()
    assert (dt.datetime.now() - started).total_seconds() < 2


def test_the_deadline_bounds_the_retries(fake):
    from workflow_sandbox.clock import FakeClock

    model, server = fake()
    model.fault = "unavailable"
    clock = FakeClock()
    with pytest.raises(AirflowUnreachable, match="and 2 s are spent"):
        client(server.url, timeouts=Timeouts(deadline=2), retries=10, sleep=clock.sleep, monotonic=clock.now).health()
    assert len(model.requests) == 3  # tries at 0, 0.5 and 1.5 s; the next would start at 3.5 s


def test_an_unresolvable_host_is_unreachable(monkeypatch):
    import socket

    def no_such_host(host, *args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)  # no DNS query leaves the machine
    with pytest.raises(AirflowUnreachable, match="its host name does not resolve, after 2 tries"):
        client("http://airflow.invalid", retries=1).health()


@pytest.mark.parametrize("fault, message", [
    ("garbage", "HTTP 200 (application/json, 36 bytes) that is not JSON"),
    ("html", "HTTP 200 and an HTML page ('Airflow'), not the health document"),
])
def test_garbage_and_html_are_unexpected_answers(fake, fault, message):
    model, server = fake()
    model.fault = fault
    with pytest.raises(AirflowUnexpectedAnswer, match=message.replace("(", r"\(").replace(")", r"\)")):
        client(server.url, major=3).health()


def test_an_oversized_answer_is_unexpected(replay, monkeypatch):
    monkeypatch.setattr(airflow_api, "MAX_BODY_BYTES", 1000)
    server = replay({**V3_ROUTES, "GET /api/v2/version": Reply(200, "application/json", b"[" + b"1," * 2000 + b"1]")})
    with pytest.raises(AirflowUnexpectedAnswer, match="more than 1000 bytes"):
        client(server.url, major=3).version()


def test_the_scheduler_that_never_heartbeats_turns_unhealthy(fake):
    now = [datetime(2026, 12, 1, 12, 0, tzinfo=UTC)]
    model, server = fake(now=lambda: now[0])
    api = client(server.url)
    for name in ("scheduler", "triggerer", "dag_processor"):
        model.heartbeat(name)
    model.silence("scheduler")
    now[0] += dt.timedelta(seconds=29)
    model.heartbeat("scheduler")
    model.heartbeat("triggerer")
    assert api.health().scheduler.healthy
    now[0] += dt.timedelta(seconds=2)
    health = api.health()
    assert not health.scheduler.healthy
    assert health.scheduler.latest_heartbeat == datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert health.triggerer is not None
    assert health.triggerer.healthy
    assert health.dag_processor is not None
    assert not health.dag_processor.healthy  # it stopped heartbeating too
    model.stop("triggerer")
    assert not api.health().component("triggerer").healthy  # type: ignore[union-attr]


def test_a_database_down_makes_everything_unhealthy(fake):
    model, server = fake()
    model.heartbeat("scheduler")
    model.metadatabase_ok = False
    health = client(server.url).health()
    assert not health.metadatabase_ok
    assert not health.scheduler.healthy
    assert health.scheduler.latest_heartbeat is None


# --- TLS ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A CA and a server certificate for 127.0.0.1 it signed, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder = tmp_path_factory.mktemp("tls")
    now = datetime.now(UTC)

    def certificate(subject, issuer, key, signer, ca):
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
                   .not_valid_after(now + dt.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = certificate(ca_name, ca_name, ca_key, ca_key, True)
    cert = certificate(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]), ca_name, key, ca_key, False)
    files = {"ca": folder / "ca.pem", "cert": folder / "cert.pem", "key": folder / "key.pem"}
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files["key"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return files


@pytest.fixture
def tls_server(tls_files):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_files["cert"], tls_files["key"])
    server = FakeAirflowApi(AirflowModel(major=3), ssl_context=context).start()
    yield server
    server.stop()


def test_tls_is_verified_against_the_given_ca_bundle(tls_server, tls_files):
    assert client(tls_server.url, ca_bundle=str(tls_files["ca"])).version() == "3.3.2"


def test_a_certificate_no_trusted_ca_signed_is_refused(tls_server):
    with pytest.raises(AirflowUnreachable, match="TLS failed: .*CERTIFICATE_VERIFY_FAILED.*pass the CA bundle") as error:
        client(tls_server.url).health()
    assert error.value.exit_code == FAILED


def test_https_to_a_plain_http_server_fails_on_tls(fake):
    model, server = fake()
    with pytest.raises(AirflowUnreachable, match="TLS failed"):
        client(server.url.replace("http://", "https://"), retries=0).health()


def test_a_missing_ca_bundle_is_a_configuration_error(tmp_path):
    with pytest.raises(InvalidCaBundle, match="as the CA bundle") as error:
        AirflowApi("https://airflow.example.com", ca_bundle=str(tmp_path / "none.pem"))
    assert error.value.exit_code == USAGE


@pytest.mark.parametrize("url, message", [
    (f"https://operator:{PASSWORD}@airflow.example.com", "must not hold credentials"),
    ("ftp://airflow.example.com", "must be http(s)://"),
    ("airflow.example.com", "must be http(s)://"),
    ("https://airflow.example.com/?x=1", "takes no query"),
])
def test_unusable_urls_are_refused_without_echoing_credentials(url, message):
    with pytest.raises(InvalidAirflowUrl) as error:
        AirflowApi(url)
    assert message in str(error.value)
    assert error.value.exit_code == USAGE
    assert_secret_free(str(error.value))


# --- nothing but domain errors, whatever the body -------------------------------------------------------------

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
                    max_leaves=12)


def shaped(keys):
    """Objects with Airflow's keys holding anything, so parsing gets past the first check."""
    return st.fixed_dictionaries({}, optional={k: JSON for k in keys}) | JSON


HEALTH_KEYS = ["metadatabase", "scheduler", "triggerer", "dag_processor"]
COMPONENT = st.fixed_dictionaries({}, optional={"status": JSON, "latest_scheduler_heartbeat": JSON | st.text(),
                                                "latest_triggerer_heartbeat": JSON, "latest_dag_processor_heartbeat": JSON})
HEALTHISH = st.fixed_dictionaries({}, optional={k: COMPONENT | JSON for k in HEALTH_KEYS}) | JSON
TASK = st.fixed_dictionaries({}, optional={k: JSON for k in ["dag_id", "task_id", "dag_run_id", "map_index", "hostname",
                                                             "start_date"]})
TASKISH = st.fixed_dictionaries({}, optional={"total_entries": JSON, "task_instances": st.lists(TASK | JSON, max_size=3)})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=HEALTHISH, major=st.sampled_from([2, 3]))
def test_any_health_document_parses_or_is_an_unexpected_answer(doc, major):
    try:
        parsed = parse_health(doc, major)
    except AirflowUnexpectedAnswer:
        return
    assert isinstance(parsed, Health)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=TASKISH | shaped(["total_entries", "task_instances"]))
def test_any_task_instance_list_parses_or_is_an_unexpected_answer(doc):
    try:
        parsed = parse_task_instances(doc)
    except AirflowUnexpectedAnswer:
        return
    assert isinstance(parsed, RunningTaskInstances)


class _Canned:
    """Stands in for the wire: every request gets the same status, content type and body."""

    def __init__(self, status, content_type, body):
        self.answer = airflow_api._Answer(status, content_type, body)

    def __call__(self, *args):
        return self.answer


@settings(max_examples=200, deadline=None)
@given(status=st.sampled_from([200, 201, 204, 400, 401, 403, 404, 422, 500]),
       content_type=st.sampled_from(["application/json", "text/html", "", "application/problem+json"]),
       body=st.binary(max_size=64) | JSON.map(lambda v: json.dumps(v).encode()) | st.just(b'{"detail": [1]}'),
       major=st.sampled_from([2, 3]), call=st.sampled_from(["health", "version", "running_task_instances"]))
def test_any_answer_on_the_wire_gives_a_result_or_a_domain_error(status, content_type, body, major, call):
    api = AirflowApi("http://127.0.0.1:9", Credentials("operator", PASSWORD), major=major, retries=0)
    api._once = _Canned(status, content_type, body)  # type: ignore[method-assign]
    try:
        getattr(api, call)()
    except AirflowApiError as error:
        assert PASSWORD not in str(error)


# --- the fake server answers in the recorded shapes -----------------------------------------------------------


@pytest.mark.parametrize("major, path, name, auth", [
    (3, "/api/v2/monitor/health", "v3-health-all-running", False),
    (3, "/api/v2/version", "v3-version", False),
    (3, "/api/v2/dags/~/dagRuns/~/taskInstances?state=running", "v3-running-one", True),
    (3, "/api/v2/dags/~/dagRuns/~/taskInstances?state=running", "v3-no-token", False),
    (3, "/health", "v3-legacy-health", False),
    (3, "/api/v1/health", "v3-legacy-api-v1-health", False),
    (2, "/health", "v2-health-running", False),
    (2, "/api/v1/version", "v2-version", False),
    (2, "/api/v1/dags/~/dagRuns/~/taskInstances?state=running", "v2-running-one", True),
    (2, "/api/v1/dags/~/dagRuns/~/taskInstances?state=running", "v2-no-auth", False),
])
def test_the_fake_answers_as_the_recorded_real_server(fake, major, path, name, auth):
    import urllib3

    model, server = fake(major=major)
    for component in ("scheduler", "triggerer", "dag_processor"):
        model.heartbeat(component)
    model.start_task("contract_probe", "hold")
    headers = {}
    if auth and major == 3:
        token = urllib3.request("POST", server.url + "/auth/token", json={"username": "operator", "password": PASSWORD})
        assert token.status == 201
        headers["Authorization"] = "Bearer " + token.json()["access_token"]
    elif auth:
        headers["Authorization"] = "Basic " + base64.b64encode(f"operator:{PASSWORD}".encode()).decode()
    answer = urllib3.request("GET", server.url + path, headers=headers)
    real = recorded(name)
    assert (answer.status, answer.headers["Content-Type"]) == (real["status"], real["content_type"])
    assert shape_differences(json.loads(answer.data), real["body"]) == []
    if answer.status >= 400:
        assert json.loads(answer.data) == real["body"]  # error answers word for word


def test_the_fake_token_endpoint_answers_as_the_real_one(fake):
    import urllib3

    model, server = fake()
    for password, name in [(PASSWORD, "v3-token-created"), ("wrong", "v3-token-wrong-password")]:
        answer = urllib3.request("POST", server.url + "/auth/token", json={"username": "operator", "password": password})
        real = recorded(name)
        assert answer.status == real["status"]
        assert shape_differences(answer.json(), real["body"]) == []
        if password == "wrong":
            assert answer.json() == real["body"]


def test_the_fake_pages_a_long_list_as_airflow_does(fake):
    model, server = fake()
    for i in range(120):
        model.start_task("etl", f"t{i}", start_date=datetime(2026, 1, 1, tzinfo=UTC) + dt.timedelta(seconds=i))
    api = client(server.url, Credentials("operator", PASSWORD))
    running = api.running_task_instances(limit=500)
    assert running.total == 120
    assert len(running.task_instances) == 100
    assert not running.complete  # maximum_page_limit
    first = model.tasks.copy().popitem()[0]
    model.finish_task(first)
    assert api.running_task_instances(limit=1).total == 119


# --- the load balancer in front of the api-server -------------------------------------------------------------


@pytest.fixture
def elb():
    from moto import mock_aws

    with mock_aws():
        ec2, elbv2 = new_client("ec2"), new_client("elbv2")
        certificate = new_client("acm").request_certificate(DomainName="airflow.example.com")["CertificateArn"]
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"us-east-1{z}")["Subnet"]
                   ["SubnetId"] for i, z in ((1, "a"), (2, "b"))]

        def balancer(name="airflow", scheme="internal"):
            return elbv2.create_load_balancer(Name=name, Subnets=subnets, Scheme=scheme)["LoadBalancers"][0]

        def target_group(name="airflow-api"):
            return elbv2.create_target_group(Name=name, Protocol="HTTP", Port=8080, VpcId=vpc,
                                             TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]

        def listener(lb, protocol, port, actions):
            extra = {"Certificates": [{"CertificateArn": certificate}]} if protocol == "HTTPS" else {}
            return elbv2.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol=protocol, Port=port,
                                         DefaultActions=actions, **extra)["Listeners"][0]["ListenerArn"]

        yield elbv2, balancer, target_group, listener


def forward(arn, weight=None):
    if weight is None:
        return [{"Type": "forward", "TargetGroupArn": arn}]
    return [{"Type": "forward", "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": arn, "Weight": weight}]}}]


REDIRECT = [{"Type": "redirect", "RedirectConfig": {"Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"}}]
NOT_FOUND = [{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404"}}]


def test_the_https_listener_is_chosen_and_its_default_port_left_out(elb):
    from workflow.elb import discover_airflow_url, discover_endpoint

    elbv2, balancer, target_group, listener = elb
    lb, tg = balancer(), target_group()
    listener(lb, "HTTP", 80, REDIRECT)
    listener(lb, "HTTPS", 443, forward(tg))
    assert discover_airflow_url(elbv2, [tg]) == f"https://{lb['DNSName']}"
    endpoint = discover_endpoint(elbv2, [tg])
    assert endpoint is not None
    assert endpoint.internal
    assert endpoint.protocol == "HTTPS"
    assert not endpoint.by_rule


def test_a_plain_http_listener_on_another_port(elb):
    from workflow.elb import discover_airflow_url

    elbv2, balancer, target_group, listener = elb
    lb, tg = balancer(scheme="internet-facing"), target_group()
    listener(lb, "HTTP", 8080, forward(tg, weight=1))
    assert discover_airflow_url(elbv2, [tg]) == f"http://{lb['DNSName']}:8080"


def test_a_rule_naming_a_host_and_a_path_prefix(elb):
    from workflow.elb import discover_airflow_url

    elbv2, balancer, target_group, listener = elb
    lb, tg, other = balancer(), target_group(), target_group("other")
    arn = listener(lb, "HTTPS", 443, forward(other))
    elbv2.create_rule(ListenerArn=arn, Priority=5, Actions=forward(tg), Conditions=[
        {"Field": "host-header", "HostHeaderConfig": {"Values": ["*.example.com", "airflow.example.com"]}},
        {"Field": "path-pattern", "PathPatternConfig": {"Values": ["/airflow/*"]}}])
    assert discover_airflow_url(elbv2, [tg]) == "https://airflow.example.com/airflow"


def test_rules_a_plain_client_cannot_match_are_passed_over(elb):
    from workflow.elb import discover_airflow_url

    elbv2, balancer, target_group, listener = elb
    lb, tg = balancer(), target_group()
    arn = listener(lb, "HTTP", 80, NOT_FOUND)
    elbv2.create_rule(ListenerArn=arn, Priority=1, Actions=forward(tg), Conditions=[
        {"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": "X-Team", "Values": ["data"]}}])
    elbv2.create_rule(ListenerArn=arn, Priority=2, Actions=forward(tg), Conditions=[
        {"Field": "path-pattern", "PathPatternConfig": {"Values": ["/api/*"]}}])  # a part of Airflow, not a prefix
    assert discover_airflow_url(elbv2, [tg]) is None
    elbv2.create_rule(ListenerArn=arn, Priority=3, Actions=forward(tg), Conditions=[
        {"Field": "path-pattern", "PathPatternConfig": {"Values": ["/*"]}}])
    assert discover_airflow_url(elbv2, [tg]) == f"http://{lb['DNSName']}"


def test_no_listener_forwards_to_the_target_group(elb):
    from workflow.elb import discover_airflow_url

    elbv2, balancer, target_group, listener = elb
    lb, tg, other = balancer(), target_group(), target_group("other")
    assert discover_airflow_url(elbv2, [tg]) is None  # in no load balancer at all
    assert discover_airflow_url(elbv2, []) is None
    listener(lb, "HTTP", 80, forward(other))
    listener(lb, "HTTPS", 443, [{"Type": "forward", "ForwardConfig": {"TargetGroups": [
        {"TargetGroupArn": other, "Weight": 1}, {"TargetGroupArn": tg, "Weight": 0}]}}])
    assert discover_airflow_url(elbv2, [tg]) is None


def test_an_unknown_target_group_is_not_found(elb):
    from workflow.elb import TargetGroupNotFound, discover_airflow_url

    elbv2, *_ = elb
    missing = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/gone/0123456789abcdef"
    with pytest.raises(TargetGroupNotFound) as error:
        discover_airflow_url(elbv2, [missing])
    assert error.value.exit_code == USAGE
    assert "gone" in str(error.value)


# --- the credentials secret -----------------------------------------------------------------------------------


@pytest.fixture
def secretsmanager():
    from moto import mock_aws

    with mock_aws():
        yield new_client("secretsmanager")


def test_credentials_from_a_secret_by_name_or_arn(secretsmanager):
    from workflow.secrets import read_airflow_credentials

    arn = secretsmanager.create_secret(Name="airflow/api", SecretString=json.dumps(
        {"username": "operator", "password": PASSWORD, "note": "x"}))["ARN"]
    for secret_id in ("airflow/api", arn):
        credentials = read_airflow_credentials(secretsmanager, secret_id)
        assert credentials == Credentials("operator", PASSWORD)
        assert_secret_free(repr(credentials))


@pytest.mark.parametrize("value, message", [
    ("not json", "is not JSON"),
    ('["operator"]', "is JSON but not an object"),
    (json.dumps({"username": "operator", "pass": PASSWORD}), "lacks a non-empty string password (its keys: pass, username)"),
    (json.dumps({"username": "", "password": PASSWORD}), "lacks a non-empty string username"),
    (json.dumps({PASSWORD: PASSWORD}), "lacks a non-empty string username and password (it has 1 key)"),
    (json.dumps({"username": "operator", "password": 12345}), "lacks a non-empty string password"),
])
def test_a_malformed_secret_is_a_configuration_error_that_never_shows_it(secretsmanager, value, message):
    from workflow.secrets import SecretUnusable, read_airflow_credentials

    secretsmanager.create_secret(Name="airflow/api", SecretString=value)
    with pytest.raises(SecretUnusable) as error:
        read_airflow_credentials(secretsmanager, "airflow/api")
    assert message in str(error.value)
    assert error.value.exit_code == USAGE
    assert_secret_free(str(error.value))


def test_a_binary_secret_is_unusable(secretsmanager):
    from workflow.secrets import SecretUnusable, read_airflow_credentials

    secretsmanager.create_secret(Name="airflow/api", SecretBinary=b"\x00\x01")
    with pytest.raises(SecretUnusable, match="binary data"):
        read_airflow_credentials(secretsmanager, "airflow/api")


def test_a_missing_secret_is_not_found_exit_2(secretsmanager):
    from workflow.secrets import SecretNotFound, read_airflow_credentials

    with pytest.raises(SecretNotFound, match="secret airflow/nope not found") as error:
        read_airflow_credentials(secretsmanager, "airflow/nope")
    assert error.value.exit_code == USAGE
