"""The simulated ECS behaves as ECS does; these pin the behaviours the CLI's rules depend on."""

import pytest
from conftest import CLUSTER, SCHEDULER, WEB, WORKER

from workflow.sandbox.simulator import Timings


def describe(ecs, name):
    return ecs.describe_services(cluster=CLUSTER, services=[name])["services"][0]


def tasks(ecs, name, desired="RUNNING"):
    arns = ecs.list_tasks(cluster=CLUSTER, serviceName=name, desiredStatus=desired)["taskArns"]
    return ecs.describe_tasks(cluster=CLUSTER, tasks=arns)["tasks"] if arns else []


def test_tasks_walk_the_ecs_lifecycle_with_the_clock(empty_cluster, ecs, clock):
    ecs.update_service(cluster=CLUSTER, service=SCHEDULER, desiredCount=1)
    seen = []
    for _ in range(10):
        seen += [t["lastStatus"] for t in tasks(ecs, SCHEDULER)]
        clock.sleep(1)
    assert seen[0] == "PROVISIONING" and "PENDING" in seen and seen[-1] == "RUNNING"
    ecs.update_service(cluster=CLUSTER, service=SCHEDULER, desiredCount=0)
    stopping = tasks(ecs, SCHEDULER, "STOPPED")
    assert [(t["lastStatus"], t["desiredStatus"]) for t in stopping] == [("DEACTIVATING", "STOPPED")]
    assert describe(ecs, SCHEDULER)["runningCount"] == 0  # ECS counts it out while its process still runs
    clock.sleep(10)
    assert [t["lastStatus"] for t in tasks(ecs, SCHEDULER, "STOPPED")] == ["STOPPED"]


def test_force_deploying_a_running_single_task_service_runs_two_tasks_for_a_while(cluster, ecs, clock, sim):
    """Why start-scheduler never force-deploys a running scheduler."""
    ecs.update_service(cluster=CLUSTER, service=SCHEDULER, forceNewDeployment=True)
    most = 0
    for _ in range(30):
        most = max(most, len(sim.alive(SCHEDULER)))
        clock.sleep(1)
    assert most == 2
    assert len(sim.alive(SCHEDULER)) == 1


def test_list_tasks_filters_by_service_and_defaults_to_desired_running(cluster, ecs):
    assert len(tasks(ecs, WORKER)) == 3
    assert len(tasks(ecs, WEB)) == 1
    assert tasks(ecs, WORKER, "STOPPED") == []


def test_rolling_deployment_keeps_minimum_healthy_and_completes(cluster, ecs, clock):
    old = describe(ecs, WORKER)["deployments"][0]["id"]
    new = ecs.update_service(cluster=CLUSTER, service=WORKER, forceNewDeployment=True)["service"]
    new_id = next(d["id"] for d in new["deployments"] if d["status"] == "PRIMARY")
    assert new_id != old
    for _ in range(30):
        service = describe(ecs, WORKER)
        assert service["runningCount"] >= 3  # minimumHealthyPercent 100
        clock.sleep(1)
    (only,) = describe(ecs, WORKER)["deployments"]
    assert (only["id"], only["rolloutState"], only["runningCount"]) == (new_id, "COMPLETED", 3)
    messages = [e["message"] for e in describe(ecs, WORKER)["events"]]
    assert any("has reached a steady state" in m for m in messages)


def test_a_deployment_that_cannot_pull_its_image_fails_its_tasks(cluster, ecs, clock, sim):
    sim.fail_deployments(WORKER, "pull")
    ecs.update_service(cluster=CLUSTER, service=WORKER, forceNewDeployment=True)
    clock.sleep(10)
    service = describe(ecs, WORKER)
    primary = service["deployments"][0]
    assert primary["failedTasks"] >= 3 and primary["rolloutState"] == "IN_PROGRESS"
    assert service["runningCount"] == 3  # the old tasks keep serving
    failed = [t for t in tasks(ecs, WORKER, "STOPPED") if t["startedBy"] == primary["id"]]
    assert failed and all(t["stopCode"] == "TaskFailedToStart" for t in failed)
    assert failed[0]["stoppedReason"].startswith("CannotPullContainerError")


def test_circuit_breaker_rolls_back_to_the_previous_deployment(sim, clock, ecs):
    import boto3

    from workflow.sandbox.provision import DEFAULT_COUNTS, provision_cluster

    provision_cluster(
        lambda name: boto3.client(name), counts=DEFAULT_COUNTS,
        deployment_configuration={"maximumPercent": 200, "minimumHealthyPercent": 100,
                                  "deploymentCircuitBreaker": {"enable": True, "rollback": True}},
    )
    clock.sleep(60)
    sim.fail_deployments(WORKER, "pull")
    failing = ecs.update_service(cluster=CLUSTER, service=WORKER, forceNewDeployment=True)["service"]
    failing_id = failing["deployments"][0]["id"]
    clock.sleep(30)
    service = describe(ecs, WORKER)
    states = {d["id"]: d["rolloutState"] for d in service["deployments"]}
    assert states.get(failing_id, "gone") in ("FAILED", "gone")
    assert service["deployments"][0]["id"] != failing_id
    assert any("rolling back" in e["message"] for e in service["events"])
    clock.sleep(60)
    assert describe(ecs, WORKER)["runningCount"] == 3


def test_a_hanging_deployment_never_completes(cluster, ecs, clock, sim):
    sim.fail_deployments(WEB, "hang")
    ecs.update_service(cluster=CLUSTER, service=WEB, forceNewDeployment=True)
    clock.sleep(600)
    service = describe(ecs, WEB)
    assert len(service["deployments"]) == 2 and service["deployments"][0]["rolloutState"] == "IN_PROGRESS"
    assert service["deployments"][0]["pendingCount"] == 1


def test_one_off_tasks_run_then_stop_with_chosen_exit_codes(cluster, ecs, clock, sim):
    sim.one_off_exit_codes = {"celery-worker": 3}
    worker = describe(ecs, WORKER)
    task = ecs.run_task(cluster=CLUSTER, taskDefinition=worker["taskDefinition"], launchType="FARGATE",
                        networkConfiguration=worker["networkConfiguration"])["tasks"][0]
    clock.sleep(60)
    (stopped,) = ecs.describe_tasks(cluster=CLUSTER, tasks=[task["taskArn"]])["tasks"]
    assert stopped["lastStatus"] == "STOPPED" and stopped["stopCode"] == "EssentialContainerExited"
    assert {c["name"]: c["exitCode"] for c in stopped["containers"]} == {"celery-worker": 3, "log-router": 0}


def test_stages_must_take_time():
    with pytest.raises(ValueError):
        Timings(pull=0)
