"""The installed `workflow` script, run as an operator runs it, against `workflow sandbox` over HTTP."""

import os
import shutil
import subprocess
import time

import boto3
import pytest

CLUSTER = "airflow-prod"
SERVICES = ["--cluster", CLUSTER, "--scheduler", f"{CLUSTER}-scheduler", "--worker", f"{CLUSTER}-worker",
            "--web", f"{CLUSTER}-web"]
FAST = ["--task-start-seconds", "0.6", "--task-stop-seconds", "0.4", "--web-drain-seconds", "0.4",
        "--one-off-seconds", "0.4"]
WORKFLOW = shutil.which("workflow") or "workflow not installed: run the tests with `make test`"


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
        return {**_clean_env(), **env, "WORKFLOW_POLL_INTERVAL": "0.2"}

    yield start
    for process in started:
        process.terminate()
        assert process.wait(timeout=20) == 0


def _clean_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "WORKFLOW_"))}
    return {**env, "NO_COLOR": "1"}


def workflow(env, *args):
    started = time.monotonic()
    result = subprocess.run([WORKFLOW, *args], env=env, capture_output=True, text=True, timeout=120)
    result.seconds = time.monotonic() - started
    return result


def client(env, name):
    return boto3.client(name, endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_REGION"],
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def services(ecs):
    names = [f"{CLUSTER}-{role}" for role in ("scheduler", "worker", "web")]
    return {s["serviceName"].rsplit("-", 1)[1]: s for s in ecs.describe_services(cluster=CLUSTER, services=names)["services"]}


def scheduler_tasks_alive(ecs):
    arns = [a for status in ("RUNNING", "STOPPED") for a in ecs.list_tasks(
        cluster=CLUSTER, serviceName=f"{CLUSTER}-scheduler", desiredStatus=status)["taskArns"]]
    tasks = ecs.describe_tasks(cluster=CLUSTER, tasks=arns)["tasks"] if arns else []
    return [t for t in tasks if t["lastStatus"] != "STOPPED"]


def test_the_operator_sequence(start_sandbox):
    env = start_sandbox()
    ecs, ecr = client(env, "ecs"), client(env, "ecr")
    before = services(ecs)

    result = workflow(env, "promote", "--yes")
    assert result.returncode == 0, result.stderr
    digest = lambda repo: ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": "latest"}])[  # noqa: E731
        "images"][0]["imageId"]["imageDigest"]
    assert digest("airflow-prod") == digest("airflow-stage")

    result = workflow(env, *SERVICES, "initialize", "--yes")
    assert result.returncode == 0, result.stderr
    (arn,) = ecs.list_tasks(cluster=CLUSTER, family=f"{CLUSTER}-worker", desiredStatus="STOPPED",
                            startedBy="workflow")["taskArns"]
    (task,) = ecs.describe_tasks(cluster=CLUSTER, tasks=[arn])["tasks"]
    assert task["overrides"]["containerOverrides"][0]["command"] == ["airflow", "db", "migrate"]
    assert task["taskDefinitionArn"] == before["worker"]["taskDefinition"]

    result = workflow(env, *SERVICES, "redeploy", "--yes")
    assert result.returncode == 0, result.stderr
    after = services(ecs)
    for role in ("scheduler", "worker", "web"):
        assert after[role]["deployments"][0]["id"] != before[role]["deployments"][0]["id"]
        assert len(after[role]["deployments"]) == 1
    assert after["worker"]["desiredCount"] == after["worker"]["runningCount"] == 3
    assert after["scheduler"]["runningCount"] == 1 and len(scheduler_tasks_alive(ecs)) == 1

    result = workflow(env, "--cluster", CLUSTER, "--scheduler", f"{CLUSTER}-scheduler", "stop-scheduler", "--yes")
    assert result.returncode == 0, result.stderr
    assert services(ecs)["scheduler"]["desiredCount"] == 0 and scheduler_tasks_alive(ecs) == []

    result = workflow(env, "--cluster", CLUSTER, "--scheduler", f"{CLUSTER}-scheduler", "start-scheduler")
    assert result.returncode == 0, result.stderr
    assert services(ecs)["scheduler"]["runningCount"] == 1 and len(scheduler_tasks_alive(ecs)) == 1

    result = workflow(env, *SERVICES, "status", "--output", "json")
    assert result.returncode == 0 and '"summary": "cluster airflow-prod: 1 scheduler task(s) alive"' in result.stdout


def test_rehearsed_failures_are_reported_within_seconds(start_sandbox):
    env = start_sandbox("--fail-deployments", "worker", "--init-exit-code", "3")

    result = workflow(env, *SERVICES, "redeploy", "--yes")
    assert result.returncode == 1
    assert result.seconds < 15
    assert f"{CLUSTER}-worker: task" in result.stderr and "CannotPullContainerError" in result.stderr
    assert "cluster state: the scheduler is stopped" in result.stderr

    result = workflow(env, *SERVICES, "initialize", "--yes")
    assert result.returncode == 1
    assert "essential container celery-worker" in result.stderr and "exited with code 3" in result.stderr
