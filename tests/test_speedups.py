"""The simulator's shortcuts through moto change no answer: every JSON response of an operator session (ECS
and ECR, results and errors) is compared with what moto's own serializer makes of the same result."""

import collections
from datetime import UTC, datetime, timedelta, timezone

import pytest
from conftest import NAMES, shared_client
from moto.core import serialize

from workflow_sandbox.images import push_image, random_layers
from workflow_sandbox.registry import Registry, simulated_ecr
from workflow_sandbox.speedups import PlannedJSONSerializer


def test_every_answer_is_byte_for_byte_what_moto_itself_would_send(cluster, run, monkeypatch):
    compared = collections.Counter()
    planned = PlannedJSONSerializer.serialize

    def checked(self, result):
        ours = planned(self, result)
        picker = serialize.XFormedAttributePicker(response_transformers=self._value_picker.response_transformers)
        stock = serialize.JSONSerializer(self.operation_model, value_picker=picker).serialize(result)
        assert ours == stock, self.operation_name
        compared[self.operation_name] += 1
        return ours

    monkeypatch.setattr(PlannedJSONSerializer, "serialize", checked)
    assert run(*NAMES, "redeploy", "--yes").exit_code == 0
    assert run(*NAMES, "initialize", "--yes").exit_code == 0
    assert run(*NAMES, "status", "--output", "json").exit_code == 0
    assert run("--cluster", "nowhere", "status").exit_code == 2  # an error answer
    ecr = shared_client("ecr")
    with simulated_ecr(Registry()):
        ecr.create_repository(repositoryName="airflow-prod", tags=[{"Key": "team", "Value": "data"}])
        pushed = push_image(ecr, "airflow-prod", random_layers(2, 1024, seed=1), "latest")
        assert run("releases", "--output", "json").exit_code == 0
        ecr.batch_get_image(repositoryName="airflow-prod", imageIds=[{"imageTag": "latest"}, {"imageTag": "gone"}])
        ecr.describe_images(repositoryName="airflow-prod", imageIds=[{"imageDigest": pushed["digest"]}])
        ecr.get_authorization_token()
        ecr.describe_repositories()
        with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
            ecr.describe_images(repositoryName="nowhere")
    assert {"DescribeServices", "UpdateService", "ListTasks", "DescribeTasks", "RunTask", "DescribeTaskDefinition",
            "DescribeClusters", "TagResource", "CreateRepository", "DescribeRepositories", "DescribeImages",
            "InitiateLayerUpload", "UploadLayerPart", "CompleteLayerUpload", "PutImage", "BatchGetImage",
            "GetAuthorizationToken"} <= set(compared)


def test_error_answers_leave_nothing_behind(sim, ecs):
    """moto builds an error's shape anew for every error answer: remembering them would grow without end."""
    from workflow_sandbox.speedups import MemoisedPicker

    def missing_cluster():
        with pytest.raises(ecs.exceptions.ClusterNotFoundException):
            ecs.describe_services(cluster="nowhere", services=["x"])

    missing_cluster()
    remembered = len(PlannedJSONSerializer._plans), len(MemoisedPicker._candidates)
    for _ in range(20):
        missing_cluster()
    assert (len(PlannedJSONSerializer._plans), len(MemoisedPicker._candidates)) == remembered


@pytest.mark.parametrize("value", [
    datetime(2026, 1, 1, 0, 0, 1, 123456),  # naive: UTC to moto
    datetime(2026, 1, 1, tzinfo=UTC),
    datetime(2026, 1, 1, 5, 30, 0, 999, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    1767225600,  # not a datetime: moto's own way
])
def test_a_timestamp_is_written_as_moto_writes_it(value):
    import botocore.session

    model = botocore.session.get_session().get_service_model("ecs")
    operation, shape = model.operation_model("DescribeTasks"), model.shape_for("Task").members["createdAt"]
    ours, stock = {}, {}
    PlannedJSONSerializer(operation)._serialize_type_timestamp(ours, value, shape, "createdAt")
    serialize.JSONSerializer(operation)._serialize_type_timestamp(stock, value, shape, "createdAt")
    assert repr(ours) == repr(stock)


# --- a sandbox left running -----------------------------------------------------------------------------------

def work_done(action) -> int:
    """Lines of the simulation and of moto's ECS models executed while `action` runs: the work that would grow with
    the cluster's history. Serializing the answer is left out: its size is the answer's (ECS keeps 100 service
    events), not the history's."""
    import sys

    lines = [0]

    def local(frame, event, arg):
        if event == "line":
            lines[0] += 1
        return local

    def trace(frame, event, arg):
        path = frame.f_code.co_filename
        if ("workflow_sandbox" in path and not path.endswith("speedups.py")) or "/moto/ecs/" in path:
            return local
        return None

    sys.settrace(trace)
    try:
        action()
    finally:
        sys.settrace(None)
    return lines[0]


def test_a_cluster_that_ran_thousands_of_tasks_answers_and_moves_as_a_fresh_one_does(cluster, sim, clock, ecs):
    from conftest import CLUSTER, SCHEDULER, WEB, WORKER

    from workflow_sandbox.moto_models import ec2_backends, ecs_backends

    def answer():
        ecs.describe_services(cluster=CLUSTER, services=[SCHEDULER, WORKER, WEB])
        for status in ("RUNNING", "STOPPED"):
            ecs.list_tasks(cluster=CLUSTER, serviceName=WORKER, desiredStatus=status)

    def describe():
        ecs.describe_services(cluster=CLUSTER, services=[SCHEDULER, WORKER, WEB])

    def redeploy_web():
        """A fixed amount of work for the service scheduler: one task replaced, a dozen transitions."""
        ecs.update_service(cluster=CLUSTER, service=WEB, forceNewDeployment=True)
        clock.sleep(30)
        describe()

    answer()  # moto's caches, warm
    fresh = {"answer": work_done(answer), "describe": work_done(describe), "redeploy": work_done(redeploy_web)}

    sim.crash_deployments(WORKER, exit_code=1, after=1)  # a crash loop, 30 tasks at a time
    ecs.update_service(cluster=CLUSTER, service=WORKER, desiredCount=30, forceNewDeployment=True)
    clock.sleep(600)
    describe()
    sim.crash_deployments(WORKER, None)
    ecs.update_service(cluster=CLUSTER, service=WORKER, desiredCount=3, forceNewDeployment=True)
    clock.sleep(120)
    describe()
    stopped = sum(not t.is_live for t in sim.service(WORKER).tasks)
    assert stopped > 2000, stopped

    # Within the hour ECS still lists them; what does not read them costs what it did.
    loaded = {"describe": work_done(describe), "redeploy": work_done(redeploy_web)}
    assert loaded["describe"] <= fresh["describe"] * 1.05 + 20, (loaded, fresh)
    assert loaded["redeploy"] <= fresh["redeploy"] * 1.05 + 50, (loaded, fresh)

    clock.sleep(3600)  # then ECS forgets them, and so does the sandbox
    answer()
    assert work_done(answer) <= fresh["answer"] * 1.05 + 20, fresh
    assert len(sim.tasks) == len(ecs_backends["123456789012"]["us-east-1"].tasks[CLUSTER]) == 5
    assert len(ec2_backends["123456789012"]["us-east-1"].enis) == 5  # ECS deleted the stopped tasks' interfaces
