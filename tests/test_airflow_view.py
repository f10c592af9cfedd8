"""Airflow's own view in the operations, against the sandbox's fake api-server driven by the simulated cluster:
the drain before the workers roll, the heartbeat a start waits for, health in `status`, and ECS's view alone when
the API cannot be reached."""

import json

import pytest
from conftest import NAMES, SCHEDULER, WORKER
from helpers import flat

from workflow_sandbox.airflow_link import SimulatedAirflow, Work


@pytest.fixture
def airflow(cluster, sim, monkeypatch):
    """Airflow's API for the running cluster: task instances run 40 s each, a new one every 15 s while a scheduler
    runs (three at most)."""
    from workflow_sandbox.airflow_api import FakeAirflowApi

    model = SimulatedAirflow(sim, {"scheduler": [SCHEDULER]}, [WORKER], Work(seconds=40), major=2,
                             users={"admin": "secret"})
    server = FakeAirflowApi(model).start()
    monkeypatch.setenv("WORKFLOW_AIRFLOW_URL", server.url)
    monkeypatch.setenv("WORKFLOW_AIRFLOW_USERNAME", "admin")
    monkeypatch.setenv("WORKFLOW_AIRFLOW_PASSWORD", "secret")
    yield model
    server.stop()


def worker_launches(sim) -> list[float]:
    return sorted(t.created_at_sim for t in sim.service(WORKER).tasks if hasattr(t, "created_at_sim"))


def test_the_workers_roll_only_once_the_running_task_instances_finished(airflow, sim, clock, run):
    run(*NAMES, "status")  # the scheduler has been queueing work: task instances run
    clock.sleep(20)
    assert len(airflow.tasks) > 0
    finished, rolled = [], []
    sim.observers.append(lambda s: (not finished and not airflow.tasks) and finished.append(s.clock.now()))
    sim.observers.append(lambda s: (not rolled and len(s.service(WORKER).deployments) > 1) and rolled.append(
        s.clock.now()))
    result = run(*NAMES, "redeploy", "--yes")
    assert result.exit_code == 0, result.stderr[-2000:]
    assert "task instance(s) still running: " in result.stderr
    assert "drained: no task instance runs" in result.stderr
    assert rolled
    assert finished
    assert finished[0] <= rolled[0]  # the last one ended before the first new worker
    outcome = result.stdout.splitlines()[0]
    assert "the scheduler was down for" in outcome
    assert "s of it draining" in outcome


def test_at_the_drain_bound_the_roll_goes_on_naming_what_it_interrupts(airflow, clock, run):
    airflow.work.seconds = 3600  # task instances that outlast the drain
    run(*NAMES, "status")
    clock.sleep(20)
    result = run(*NAMES, "redeploy", "--yes", "--drain-timeout", "60")
    assert result.exit_code == 0, result.stderr[-2000:]
    assert "the drain's bound (1m00s) passed: rolling the workers interrupts" in result.stderr
    assert "etl.load" in result.stderr
    assert "task instance(s) interrupted" in result.stdout


def test_a_scheduler_that_runs_but_never_heartbeats_is_no_success(airflow, run, sim):
    assert run(*NAMES, "stop-scheduler", "--yes").exit_code == 0
    airflow.silence("scheduler")
    result = run(*NAMES, "start-scheduler")
    assert result.exit_code == 1, result.output
    assert f"{SCHEDULER} runs in ECS, but Airflow reports it" in result.stderr
    assert "the `logs scheduler` command, with this one's --cluster and AWS options" in " ".join(result.stderr.split())
    assert sim.service(SCHEDULER).model.running_count == 1  # ECS's view alone would have called it a success
    again = run(*NAMES, "start-scheduler")  # the resume it offers: still no heartbeat, still no success
    assert again.exit_code == 1, again.output
    assert f"{SCHEDULER} runs in ECS, but Airflow reports it" in again.stderr
    assert "before its deployment began" in flat(again.stderr)
    assert "already running" not in again.stdout
    airflow.silence("scheduler", False)
    healthy = run(*NAMES, "start-scheduler")
    assert healthy.exit_code == 0, healthy.output
    assert "is already running" in healthy.stdout
    assert "Airflow reports scheduler healthy, heartbeating since its deployment began" in flat(healthy.stderr)


def test_a_start_succeeds_once_airflow_reports_a_heartbeat_since_it_began(airflow, run):
    assert run(*NAMES, "stop-scheduler", "--yes").exit_code == 0
    result = run(*NAMES, "start-scheduler")
    assert result.exit_code == 0, result.output
    assert "Airflow reports scheduler healthy, heartbeating since its start" in result.stderr


def test_status_shows_airflows_own_view(airflow, run):
    result = run(*NAMES, "status")
    assert result.exit_code == 0, result.output
    assert f"Airflow 2 at {airflow_url(run)}" in result.stdout
    assert "metadatabase healthy" in result.stdout
    assert "scheduler healthy, heartbeat" in result.stdout
    document = json.loads(run(*NAMES, "-o", "json", "status").stdout)
    scheduler = next(c for c in document["airflow"]["components"] if c["name"] == "scheduler")
    assert scheduler["status"] == "healthy"
    # Airflow 2 reports a triggerer and a dag-processor that never ran whether or not the cluster has them: the
    # seed's three services have neither, and status does not call them missing.
    assert [c["name"] for c in document["airflow"]["components"]] == ["scheduler"]
    assert "never ran" not in result.stdout
    assert scheduler["heartbeat_age"] < 30


def airflow_url(run) -> str:
    import os

    return os.environ["WORKFLOW_AIRFLOW_URL"]


@pytest.mark.parametrize("fault", ["refuse", "html", "garbage", "unavailable"])
def test_without_the_api_every_command_succeeds_on_ecs_view_with_one_warning(airflow, run, fault):
    airflow.fault = fault
    # stop-scheduler asks Airflow nothing; the others ask, and say once that they go on without it.
    for args, asks in ((["status"], 1), (["stop-scheduler", "--yes"], 0), (["start-scheduler"], 1),
                       (["redeploy", "--yes"], 1)):
        result = run(*NAMES, *args)
        assert result.exit_code == 0, f"{args}: {result.output}"
        warnings = [line for line in result.output.splitlines() if "Airflow's API" in line and "warning" in line]
        assert len(warnings) == asks, f"{args}: {warnings}"
        assert "Traceback" not in result.output


def test_refused_credentials_stop_a_redeploy_before_anything_changes(airflow, run, monkeypatch, sim):
    monkeypatch.setenv("WORKFLOW_AIRFLOW_PASSWORD", "hunter2-not-it")
    deployments = len(sim.service(WORKER).deployments)
    result = run(*NAMES, "redeploy", "--yes")
    assert result.exit_code == 2, result.output
    assert "hunter2" not in result.output
    assert sim.service(SCHEDULER).model.desired_count == 1
    assert len(sim.service(WORKER).deployments) == deployments


def test_without_airflow_credentials_the_drain_is_skipped_and_health_still_read(airflow, run, monkeypatch, sim):
    monkeypatch.delenv("WORKFLOW_AIRFLOW_USERNAME")
    monkeypatch.delenv("WORKFLOW_AIRFLOW_PASSWORD")
    result = run(*NAMES, "redeploy", "--yes")
    assert result.exit_code == 0, result.output
    assert "no Airflow user to read task instances with" in " ".join(result.stderr.split())
    assert "healthy, heartbeating since its start" in " ".join(result.stderr.split())  # health needs no user
    # Not only on the progress: the result says that nothing waited for the running task instances.
    said = flat(result.stdout)
    assert "warning: the workers rolled without a drain, interrupting any task instance they ran: no Airflow user" \
        in said
    assert "drain task instances running not drained" in said
    document = json.loads(run(*NAMES, "-o", "json", "redeploy", "--yes").stdout)
    assert document["drain"]["skipped"].startswith("no Airflow user")
    assert document["warnings"] == [f"the workers rolled without a drain, interrupting any task instance they ran: "
                                    f"{document['drain']['skipped']}"]


@pytest.mark.parametrize("words, warned", [([], True), (["--drain-timeout", "0"], False)])
def test_an_airflow_that_cannot_be_reached_is_a_warning_of_the_result_unless_no_drain_was_asked(
        airflow, run, monkeypatch, words, warned):
    monkeypatch.setenv("WORKFLOW_AIRFLOW_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    document = json.loads(run(*NAMES, "-o", "json", "redeploy", "--yes", *words).stdout)
    assert "error" not in document, document
    assert bool(document["warnings"]) == warned, document["warnings"]
    if warned:
        assert document["drain"]["skipped"].startswith("cannot reach Airflow at http://127.0.0.1:9")


def test_credentials_refused_after_the_first_change_only_end_airflows_view(airflow, run, sim, clock):
    airflow.work.seconds = 3600
    run(*NAMES, "status")
    clock.sleep(20)
    sim.observers.append(lambda s: airflow.users.clear() if s.service(SCHEDULER).model.desired_count == 0 else None)
    result = run(*NAMES, "redeploy", "--yes")
    assert result.exit_code == 0, result.output  # the drain ended with a warning; the redeploy went on
    assert "going on with ECS's view alone" in result.stderr
