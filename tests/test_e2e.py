"""The installed `workflow` script, run as an operator runs it, against the sandbox over HTTP: the operator
sequence against a real `workflow sandbox` process; the rehearsed failures, and the sandbox's misbehaviour seen
through boto3, against a sandbox served from a thread of this process (a sandbox process costs seconds of CPU
to start). tests/test_cli.py checks that `workflow sandbox` turns its flags into those sandbox options."""

import json
import os
import shutil
import subprocess
import time

import boto3
import pytest
from conftest import CLUSTER, NAMES, SCHEDULER, WEB, WORKER
from helpers import cluster_arn, describe, describe_services, digests, repository_tags, resume_of, tasks

FAST_CONFIG = {"task_start_seconds": 0.15, "task_stop_seconds": 0.1, "web_drain_seconds": 0.1, "one_off_seconds": 0.15,
               "airflow_task_seconds": 0.2, "airflow": 2}  # the seed's three services
FAST = [arg for name, value in FAST_CONFIG.items() for arg in ("--" + name.replace("_", "-"), str(value))]
# A short stability window, yet twice the time after which the sandbox's tasks crash when told to (a task start
# after RUNNING); its logs arrive at once.
FAST_CLI = {"WORKFLOW_POLL_INTERVAL": "0.1", "WORKFLOW_STABILITY_WINDOW": "0.3", "WORKFLOW_LOG_GRACE": "0.2"}
WORKFLOW = shutil.which("workflow") or "workflow not installed: run the tests with `make test`"
pytestmark = pytest.mark.realtime


@pytest.fixture
def start_sandbox():
    started = []

    def start(*args):
        process = subprocess.Popen([WORKFLOW, "sandbox", *FAST, *args], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, env=_clean_env())
        started.append(process)
        env = {}
        while "AWS_SECRET_ACCESS_KEY" not in env:
            line = process.stdout.readline()
            assert line, f"sandbox exited: {process.stderr.read()}"
            name, _, value = line.removeprefix("export ").strip().partition("=")
            env[name] = value
        return {**_clean_env(), **env, **FAST_CLI}

    start.processes = started
    yield start
    for process in started:
        process.terminate()
        assert process.wait(timeout=20) == 0


@pytest.fixture
def in_process_sandbox():
    """`start_sandbox`'s environment, for a sandbox served by moto from a thread of this process; moto's
    backends are shared by the whole process, so they start and end empty, as in a process of its own."""
    from workflow_sandbox.server import Sandbox, SandboxConfig

    started = []

    def start(**options):
        _reset_moto()
        box = Sandbox(SandboxConfig(**FAST_CONFIG, **options))
        started.append(box)
        box.start()
        return {**_clean_env(), **box.environment, **FAST_CLI}

    yield start
    try:
        for box in started:
            box.stop()
    finally:
        _reset_moto()


def _reset_moto():
    """What moto's reset API (POST /moto-api/reset) does."""
    from moto.moto_api._internal.models import moto_api_backend

    moto_api_backend.reset()


def _clean_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "WORKFLOW_"))}
    return {**env, "NO_COLOR": "1"}


def workflow(env, *args):
    started = time.monotonic()
    result = subprocess.run([WORKFLOW, *args], env=env, capture_output=True, text=True, timeout=120)
    result.seconds = time.monotonic() - started
    return result


def client(env, name, config=None):
    return boto3.client(name, endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_REGION"],
                        aws_access_key_id="testing", aws_secret_access_key="testing", config=config)


def scheduler_tasks_alive(ecs):
    """Scheduler tasks whose process may run: any but those STOPPED, or DEPROVISIONING (its containers have stopped;
    ECS is detaching its network interface), as stop-scheduler counts them."""
    return [t for status in ("RUNNING", "STOPPED") for t in tasks(ecs, SCHEDULER, status)
            if t["lastStatus"] not in ("DEPROVISIONING", "STOPPED")]


def stopped_one_offs(ecs, family: str) -> list[dict]:
    """The stopped tasks of `family` this tool started (ECS takes startedBy only as ListTasks' one filter)."""
    arns = ecs.list_tasks(cluster=CLUSTER, family=family, desiredStatus="STOPPED")["taskArns"]
    found = ecs.describe_tasks(cluster=CLUSTER, tasks=arns)["tasks"] if arns else []
    return [t for t in found if t.get("startedBy") == "workflow"]


def test_the_operator_sequence(start_sandbox):
    env = start_sandbox()
    ecs, ecr = client(env, "ecs"), client(env, "ecr")
    before = describe_services(ecs, SCHEDULER, WORKER, WEB)
    prod, stage = repository_tags(ecr, "airflow-prod"), repository_tags(ecr, "airflow-stage")
    v1, v2 = prod["latest"], stage["latest"]
    assert prod == {"latest": v1, "20261101T000000Z": v1}
    assert list(stage) == ["latest"]
    assert v1 != v2
    assert set(digests(ecs, WORKER)) == set(digests(ecs, SCHEDULER, "scheduler")) == {v1}

    result = workflow(env, "promote", "--yes")
    assert result.returncode == 0, result.stderr
    assert repository_tags(ecr, "airflow-prod")["latest"] == v2

    result = workflow(env, *NAMES, "initialize", "--yes")
    assert result.returncode == 0, result.stderr
    (task,) = stopped_one_offs(ecs, f"{CLUSTER}-worker")
    assert task["overrides"]["containerOverrides"][0]["command"] == ["airflow", "db", "migrate"]
    assert task["taskDefinitionArn"] == before[WORKER]["taskDefinition"]

    result = workflow(env, *NAMES, "redeploy", "--yes", "--migrate")
    assert result.returncode == 0, result.stderr
    migrations = stopped_one_offs(ecs, f"{CLUSTER}-scheduler")
    assert len(migrations) == 1  # exactly one migration, with the scheduler's task definition
    after = describe_services(ecs, SCHEDULER, WORKER, WEB)
    for name in (SCHEDULER, WORKER, WEB):
        assert after[name]["deployments"][0]["id"] != before[name]["deployments"][0]["id"]
        assert len(after[name]["deployments"]) == 1
    assert after[WORKER]["desiredCount"] == after[WORKER]["runningCount"] == 3
    assert after[SCHEDULER]["runningCount"] == 1
    assert len(scheduler_tasks_alive(ecs)) == 1
    assert set(digests(ecs, WORKER)) == set(digests(ecs, WEB, "webserver")) == {v2}

    result = workflow(env, "--cluster", CLUSTER, "--scheduler", SCHEDULER, "stop-scheduler", "--yes")
    assert result.returncode == 0, result.stderr
    assert describe(ecs, SCHEDULER)["desiredCount"] == 0
    assert scheduler_tasks_alive(ecs) == []

    result = workflow(env, "--cluster", CLUSTER, "--scheduler", SCHEDULER, "start-scheduler")
    assert result.returncode == 0, result.stderr
    assert describe(ecs, SCHEDULER)["runningCount"] == 1
    assert len(scheduler_tasks_alive(ecs)) == 1

    result = workflow(env, *NAMES, "status", "--output", "json")
    assert result.returncode == 0
    assert '"summary": "cluster airflow-prod: 1 scheduler task(s) alive"' in result.stdout
    assert {i["digest"] for i in json.loads(result.stdout)["images"] if "airflow-prod" in i["image"]} == {v2}

    result = workflow(env, *NAMES, "rollback", "--yes")
    assert result.returncode == 0, result.stderr
    assert repository_tags(ecr, "airflow-prod")["latest"] == v1
    assert set(digests(ecs, WORKER)) == set(digests(ecs, WEB, "webserver")) == {v1}
    assert describe(ecs, SCHEDULER)["runningCount"] == 1
    assert len(scheduler_tasks_alive(ecs)) == 1
    assert describe(ecs, WORKER)["desiredCount"] == 3
    assert describe(ecs, WEB)["desiredCount"] == 1

    declined = subprocess.run([WORKFLOW, *NAMES, "stop-scheduler"], env=env, input="n\n", capture_output=True,
                              text=True, timeout=60)
    assert declined.returncode == 1
    assert "(account 123456789012, us-east-1, sandbox at http://127.0.0.1:" in declined.stderr

    (process,) = start_sandbox.processes
    process.terminate()
    assert process.wait(timeout=20) == 0
    unset = resume_of(process.stderr.read(), "sandbox: stopped; run")
    assert unset[:6] == ["unset", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID",
                         "AWS_SECRET_ACCESS_KEY"]


def test_rehearsed_failures_are_reported_within_seconds(in_process_sandbox):
    env = in_process_sandbox(fail_deployments=("worker",), init_exit_code=3)

    result = workflow(env, *NAMES, "redeploy", "--yes")
    assert result.returncode == 1
    assert result.seconds < 15
    assert " worker: task" in result.stderr
    assert "CannotPullContainerError" in result.stderr
    assert "cluster state: the scheduler is stopped" in result.stderr

    result = workflow(env, *NAMES, "initialize", "--yes")
    assert result.returncode == 1
    assert "essential container celery-worker" in result.stderr
    assert "exited with code 3" in result.stderr


def test_the_sandbox_throttles_runs_code_deploy_services_crash_loops_and_checks_tags(in_process_sandbox):
    from botocore.config import Config
    from botocore.exceptions import ClientError

    env = in_process_sandbox(throttle=0.3, deployment_controllers={"web": "CODE_DEPLOY"}, crash_deployments=("worker",))
    bare, patient = (client(env, "ecs", Config(retries={"mode": "standard", "total_max_attempts": attempts}))
                     for attempts in (1, 20))
    outcomes = []
    for _ in range(30):
        try:
            bare.list_tasks(cluster=CLUSTER)
            outcomes.append("ok")
        except ClientError as error:
            assert error.response["Error"]["Code"] == "ThrottlingException"
            outcomes.append("throttled")
    assert 0 < outcomes.count("throttled") < 30

    web = describe(patient, WEB)
    assert web["deploymentController"] == {"type": "CODE_DEPLOY"}
    assert web["deployments"] == []
    assert web["taskSets"][0]["runningCount"] == 1
    with pytest.raises(ClientError) as error:
        patient.update_service(cluster=CLUSTER, service=WEB, forceNewDeployment=True)
    assert error.value.response["Error"]["Code"] == "InvalidParameterException"

    # New worker tasks crash after RUNNING, again and again, without counting as failed launches.
    service = patient.update_service(cluster=CLUSTER, service=WORKER, forceNewDeployment=True)["service"]
    new = service["deployments"][0]["id"]
    deadline = time.monotonic() + 20
    crashed = []
    while len(crashed) < 3 and time.monotonic() < deadline:
        time.sleep(0.3)
        crashed = [t for t in tasks(patient, WORKER, "STOPPED")
                   if t["startedBy"] == new and t["stopCode"] == "EssentialContainerExited"]
    assert len(crashed) >= 3
    assert crashed[0]["stoppedReason"] == "Essential container in task exited"
    deployment = next(d for d in describe(patient, WORKER)["deployments"] if d["id"] == new)
    assert deployment["failedTasks"] == 0

    # The operator lease is a cluster tag; ECS refuses characters outside its tag alphabet.
    arn = cluster_arn(patient)
    lease = "alice@laptop pid=4242 until=2026-11-01T00:30:00Z op=redeploy"
    patient.tag_resource(resourceArn=arn, tags=[{"key": "workflow:lease", "value": lease}])
    assert patient.list_tags_for_resource(resourceArn=arn)["tags"] == [{"key": "workflow:lease", "value": lease}]
    with pytest.raises(ClientError) as error:
        patient.tag_resource(resourceArn=arn, tags=[{"key": "workflow:lease", "value": "alice|laptop"}])
    assert error.value.response["Error"]["Code"] == "InvalidParameterException"
    patient.untag_resource(resourceArn=arn, tagKeys=["workflow:lease"])
    assert patient.list_tags_for_resource(resourceArn=arn)["tags"] == []
