"""The simulator's shortcuts through moto change no answer: every JSON response of a whole operator
session is compared with what moto's own serializer makes of the same result."""

import collections

import pytest
from conftest import NAMES, shared_client
from moto.core import serialize

from workflow.sandbox.speedups import PlannedJSONSerializer


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
    ecr.create_repository(repositoryName="airflow-prod", tags=[{"Key": "team", "Value": "data"}])
    ecr.describe_repositories()
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
        ecr.describe_images(repositoryName="nowhere")
    assert {"DescribeServices", "UpdateService", "ListTasks", "DescribeTasks", "RunTask", "DescribeTaskDefinition",
            "DescribeClusters", "TagResource", "CreateRepository", "DescribeRepositories", "DescribeImages"} <= set(compared)
