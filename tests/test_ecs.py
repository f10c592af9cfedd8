"""The ECS layer against stubbed responses: batching, failures and the mapping of AWS errors."""

import boto3
import pytest
from botocore.stub import ANY, Stubber

from workflow.ecs import Ecs, Service
from workflow.errors import AwsError, ClusterNotFound, OperationFailed, ServicesMissing


@pytest.fixture
def stubbed():
    client = boto3.client("ecs", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield Ecs(client, "c"), stubber
        stubber.assert_no_pending_responses()


def raw_service(name, status="ACTIVE"):
    return {"serviceName": name, "serviceArn": f"arn:aws:ecs:us-east-1:1:service/c/{name}", "status": status,
            "desiredCount": 1, "runningCount": 1, "pendingCount": 0, "taskDefinition": "td:1", "deployments": []}


def test_services_are_described_ten_at_a_time(stubbed):
    ecs, stubber = stubbed
    names = [f"s{i}" for i in range(12)]
    stubber.add_response("describe_services", {"services": [raw_service(n) for n in names[:10]]},
                         {"cluster": "c", "services": names[:10]})
    stubber.add_response("describe_services", {"services": [raw_service(n) for n in names[10:]]},
                         {"cluster": "c", "services": names[10:]})
    assert [s.name for s in ecs.services(names)] == names


def test_missing_and_inactive_services_are_named(stubbed):
    ecs, stubber = stubbed
    stubber.add_response("describe_services", {"services": [raw_service("a"), raw_service("b", "INACTIVE")],
                                               "failures": [{"arn": "x", "reason": "MISSING"}]})
    with pytest.raises(ServicesMissing, match="b, c"):
        ecs.services(["a", "b", "c"])


def test_cluster_not_found(stubbed):
    ecs, stubber = stubbed
    stubber.add_client_error("describe_services", "ClusterNotFoundException", "Cluster not found.")
    with pytest.raises(ClusterNotFound, match="cluster c not found"):
        ecs.service("a")


def test_other_client_errors_name_the_operation(stubbed):
    ecs, stubber = stubbed
    stubber.add_client_error("update_service", "InvalidParameterException", "bad")
    with pytest.raises(AwsError, match="UpdateService failed: InvalidParameterException: bad"):
        ecs.update_service("a", desired_count=0)


def test_run_task_failures_are_a_clear_error(stubbed):
    ecs, stubber = stubbed
    stubber.add_response("run_task", {"tasks": [], "failures": [{"arn": "arn:x", "reason": "RESOURCE:ENI"}]},
                         {"cluster": "c", "taskDefinition": "td:1", "count": 1, "startedBy": "workflow",
                          "overrides": ANY, "launchType": "FARGATE"})
    service = Service.parse({**raw_service("w"), "launchType": "FARGATE"})
    with pytest.raises(OperationFailed, match="could not run the task: arn:x: RESOURCE:ENI"):
        ecs.run_task(service, "td:1", "worker", ["airflow", "db", "migrate"])


def test_capacity_provider_strategy_replaces_launch_type():
    service = Service.parse({**raw_service("w"), "launchType": "FARGATE",
                             "capacityProviderStrategy": [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]})
    assert "launchType" not in service.launch
    assert service.launch["capacityProviderStrategy"]


@pytest.mark.parametrize("code, status", [("ThrottlingException", 400), ("ServerException", 500), ("Whatever", 503)])
def test_throttling_and_server_errors_are_transient(stubbed, code, status):
    from workflow.errors import Transient

    ecs, stubber = stubbed
    stubber.add_client_error("describe_services", code, "Rate exceeded", http_status_code=status)
    with pytest.raises(Transient, match=f"DescribeServices failed: {code}"):
        ecs.service("a")


@pytest.mark.parametrize("error", ["ConnectionClosedError", "ReadTimeoutError", "ConnectTimeoutError",
                                   "EndpointConnectionError"])
def test_connection_errors_are_transient_and_other_botocore_errors_are_aws_errors(error):
    from botocore import exceptions

    from workflow.errors import Transient, translated

    with pytest.raises(Transient, match="cannot reach AWS"), translated():
        raise getattr(exceptions, error)(endpoint_url="https://ecs.example", error="reset")
    with pytest.raises(AwsError, match="AWS request failed"), translated():
        raise exceptions.ParamValidationError(report="bad parameter")


def test_services_show_their_deployment_controller_and_circuit_breaker():
    raw = {**raw_service("w"), "deploymentController": {"type": "CODE_DEPLOY"},
           "deploymentConfiguration": {"deploymentCircuitBreaker": {"enable": True, "rollback": False}}}
    service = Service.parse(raw)
    assert service.controller == "CODE_DEPLOY"
    assert service.circuit_breaker["enable"]
    assert Service.parse(raw_service("w")).controller == "ECS"
