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
