"""workflow's Airflow client against a real Airflow 3.3.2 api-server, and the fake api-server against the same paths.

Skipped only when the Airflow virtualenv cannot be had (scripts/airflow-contract-env says why). One Airflow serves
the whole session: api-server, scheduler, dag-processor and triggerer on loopback (see real_airflow).
"""

import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import urllib3
from real_airflow import USER, VERSION, start_real_airflow
from shapes import shape_differences

from workflow.airflow_api import AirflowApi, AirflowUnauthorized, Credentials, Health, RunningTaskInstances
from workflow_sandbox.airflow_api import AirflowModel, FakeAirflowApi

pytestmark = pytest.mark.xdist_group("real-airflow")
WAIT_SECONDS = 120.0


@pytest.fixture(scope="session")
def airflow():
    started = time.monotonic()
    real, reason = start_real_airflow()
    if real is None:
        pytest.skip(reason)
    real.timings["total start"] = time.monotonic() - started
    print("real Airflow:", {k: round(v, 1) for k, v in real.timings.items()})
    yield real
    real.stop()
    shutil.rmtree(real.home, ignore_errors=True)


def wait_for(airflow, what: str, check: Callable[[], object]):
    """check()'s first truthy answer, polling for up to WAIT_SECONDS."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        answer = check()
        if answer:
            return answer
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {name}\n{airflow.log(name, 1500)}" for name in airflow.processes)
            raise AssertionError(f"no {what} within {WAIT_SECONDS:g} s; last answer {answer!r}\n{logs}")
        time.sleep(0.5)


@pytest.fixture(scope="session")
def busy(airflow) -> tuple[Health, RunningTaskInstances]:
    """Every component healthy and the probe's task running, as our client reads them."""
    api = AirflowApi(airflow.url, Credentials(USER, airflow.password))

    def healthy():
        health = api.health()
        return health if all(c is not None and c.healthy for c in (health.scheduler, health.triggerer,
                                                                   health.dag_processor)) else None

    def running():
        found = api.running_task_instances()
        return found if found.total else None

    started = time.monotonic()
    result = wait_for(airflow, "healthy components", healthy), wait_for(airflow, "running task instance", running)
    print(f"real Airflow busy after {time.monotonic() - started:.1f} s more")
    return result


def test_health_as_our_client_reads_it(airflow, busy):
    health, _ = busy
    assert health.major == 3
    assert health.metadatabase_ok
    now = datetime.now(UTC)
    for component in (health.scheduler, health.triggerer, health.dag_processor):
        assert component is not None
        assert component.healthy
        assert component.latest_heartbeat is not None
        assert component.latest_heartbeat.tzinfo is not None
        assert now - timedelta(minutes=2) < component.latest_heartbeat <= now + timedelta(seconds=5)


def test_running_task_instances_with_a_token(airflow, busy):
    _, running = busy
    assert running.total == 1
    assert running.complete
    (ti,) = running.task_instances
    assert (ti.dag_id, ti.task_id, ti.map_index) == ("contract_probe", "hold", -1)
    assert ti.run_id.startswith("scheduled__")
    assert ti.hostname
    assert ti.start_date is not None
    assert ti.start_date.tzinfo is not None


def test_version(airflow):
    api = AirflowApi(airflow.url)
    assert api.version() == VERSION
    assert api.major() == 3


def test_a_wrong_password_and_no_credentials_are_unauthorized(airflow):
    with pytest.raises(AirflowUnauthorized, match="refused a token to user 'operator': HTTP 401 'Invalid credentials'"):
        AirflowApi(airflow.url, Credentials(USER, "wrong")).running_task_instances()
    with pytest.raises(AirflowUnauthorized, match="needs credentials to list running task instances"):
        AirflowApi(airflow.url).running_task_instances()


def test_a_token_the_server_does_not_know_is_renewed(airflow):
    api = AirflowApi(airflow.url, Credentials(USER, airflow.password))
    api._token = "not-a-token"  # as after a restart with another signing key: 403 "Invalid JWT token"
    api.running_task_instances()
    assert api._token not in (None, "not-a-token")


# --- the fake answers as the real one -------------------------------------------------------------------------


def fetch(url: str, method: str = "GET", token: str | None = None, body: dict | None = None) -> tuple[int, str, object]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = urllib3.request(method, url, headers=headers, json=body, timeout=10, retries=False, redirect=False)
    return answer.status, answer.headers.get("Content-Type", ""), answer.json()


def token(url: str, password: str) -> str:
    status, _, doc = fetch(f"{url}/auth/token", "POST", body={"username": USER, "password": password})
    assert status == 201, doc
    return doc["access_token"]  # type: ignore[index]


TI_PATH = "/api/v2/dags/~/dagRuns/~/taskInstances?state=running"


@pytest.mark.parametrize("path, auth", [
    ("/api/v2/monitor/health", False),
    ("/api/v2/version", False),
    (TI_PATH, True),
    (TI_PATH, False),
    ("/health", False),
    ("/api/v1/health", False),
])
def test_the_fake_answers_with_the_real_shapes(airflow, busy, path, auth):
    model = AirflowModel(major=3, users={USER: "fake-password"})
    for component in ("scheduler", "triggerer", "dag_processor"):
        model.heartbeat(component)
    model.start_task("contract_probe", "hold")
    with FakeAirflowApi(model) as fake:
        real_answer = fetch(airflow.url + path, token=token(airflow.url, airflow.password) if auth else None)
        deadline = time.monotonic() + 30
        while path == TI_PATH and auth and not _rendered(real_answer[2]) and time.monotonic() < deadline:
            # A task instance is listed as running before its task has rendered its fields (then `{}`): the fake
            # answers as a running task does a moment later.
            time.sleep(0.5)
            real_answer = fetch(airflow.url + path, token=token(airflow.url, airflow.password))
        fake_answer = fetch(fake.url + path, token=token(fake.url, "fake-password") if auth else None)
    assert fake_answer[:2] == real_answer[:2]
    assert shape_differences(fake_answer[2], real_answer[2]) == []


def _rendered(document) -> bool:
    instances = document.get("task_instances") if isinstance(document, dict) else None
    return bool(instances) and all(i.get("rendered_fields") for i in instances)


def test_the_fake_token_endpoint_answers_as_the_real_one(airflow):
    model = AirflowModel(major=3, users={USER: "fake-password"})
    with FakeAirflowApi(model) as fake:
        for password in ("wrong", None):
            real_answer = fetch(f"{airflow.url}/auth/token", "POST",
                                body={"username": USER, "password": password or airflow.password})
            fake_answer = fetch(f"{fake.url}/auth/token", "POST",
                                body={"username": USER, "password": password or "fake-password"})
            assert fake_answer[:2] == real_answer[:2]
            assert shape_differences(fake_answer[2], real_answer[2]) == []
            if password:
                assert fake_answer[2] == real_answer[2]  # {"detail": "Invalid credentials"}
        bad_token = fetch(f"{airflow.url}{TI_PATH}", token="not-a-token"), fetch(f"{fake.url}{TI_PATH}", token="not-a-token")
        assert bad_token[0] == bad_token[1]  # 403 {"detail": "Invalid JWT token"}
