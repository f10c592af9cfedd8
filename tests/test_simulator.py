"""The simulated ECS behaves as ECS does; these pin the behaviours the CLI's rules depend on."""

import pytest
from conftest import CLUSTER, REGION, SCHEDULER, WEB, WORKER, new_client, shared_client

from workflow_sandbox.simulator import Timings


@pytest.fixture(autouse=True)
def no_amis(monkeypatch):
    """The simulated cluster launches no instances; loading moto's 2,600 default AMIs costs a second a test."""
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")


@pytest.fixture
def no_backoff(monkeypatch):
    """botocore sleeps between retries in real time; the retries themselves are what these tests count."""
    import types

    import botocore.endpoint

    monkeypatch.setattr(botocore.endpoint, "time", types.SimpleNamespace(sleep=lambda seconds: None))


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

    from workflow_sandbox.provision import DEFAULT_COUNTS, provision_cluster

    provision_cluster(
        shared_client, counts=DEFAULT_COUNTS,
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


# --- the unpleasant parts ---------------------------------------------------------------------------

BREAKER = {"maximumPercent": 200, "minimumHealthyPercent": 100,
           "deploymentCircuitBreaker": {"enable": True, "rollback": True}}


def provision(**kwargs):

    from workflow_sandbox.provision import DEFAULT_COUNTS, provision_cluster

    return provision_cluster(shared_client, counts=DEFAULT_COUNTS, **kwargs)


def force(ecs, name):
    service = ecs.update_service(cluster=CLUSTER, service=name, forceNewDeployment=True)["service"]
    return next(d["id"] for d in service["deployments"] if d["status"] == "PRIMARY")


def started_by(ecs, name, deployment_id):
    return [t for t in tasks(ecs, name, "STOPPED") + tasks(ecs, name) if t["startedBy"] == deployment_id]


def run_one_off(ecs, command=("airflow", "db", "migrate")):
    worker = describe(ecs, WORKER)
    return ecs.run_task(
        cluster=CLUSTER, taskDefinition=worker["taskDefinition"], launchType="FARGATE",
        networkConfiguration=worker["networkConfiguration"], startedBy="workflow",
        overrides={"containerOverrides": [{"name": "celery-worker", "command": list(command)}]},
    )["tasks"][0]


def test_crashing_tasks_exit_after_running_without_counting_as_failed_and_loop(cluster, ecs, clock, sim):

    sim.crash_deployments(WORKER, exit_code=1, after=10, lines=("ERROR: cannot connect to broker",))
    new = force(ecs, WORKER)
    states = []
    for _ in range(60):
        states.append(next(d for d in describe(ecs, WORKER)["deployments"] if d["id"] == new)["rolloutState"])
        clock.sleep(1)
    # It completed before the first crash, and stays COMPLETED while its tasks crash and are replaced.
    assert states[0] == "IN_PROGRESS" and "COMPLETED" in states
    assert states[states.index("COMPLETED"):] == ["COMPLETED"] * (len(states) - states.index("COMPLETED"))
    deployment = describe(ecs, WORKER)["deployments"][0]
    assert deployment["failedTasks"] == 0
    crashed = [t for t in started_by(ecs, WORKER, new) if t["desiredStatus"] == "STOPPED"]
    assert len(crashed) > 3  # the scheduler keeps relaunching: a crash loop
    task = crashed[0]
    assert (task["stopCode"], task["stoppedReason"]) == ("EssentialContainerExited", "Essential container in task exited")
    stopped = [t for t in crashed if t["lastStatus"] == "STOPPED"][0]
    assert {c["name"]: c.get("exitCode") for c in stopped["containers"]} == {"celery-worker": 1, "log-router": 143}
    logs = shared_client("logs")
    stream = f"worker/celery-worker/{stopped['taskArn'].rsplit('/', 1)[-1]}"
    events = logs.get_log_events(logGroupName=f"/ecs/{CLUSTER}", logStreamName=stream, startFromHead=True)["events"]
    assert [e["message"] for e in events] == ["ERROR: cannot connect to broker"]

    sim.crash_deployments(WORKER, None)  # fixed: the next deployment runs
    fixed = force(ecs, WORKER)
    clock.sleep(60)
    assert [(d["id"], d["rolloutState"], d["runningCount"]) for d in describe(ecs, WORKER)["deployments"]] == [
        (fixed, "COMPLETED", 3)]


def test_a_crash_loop_never_trips_the_circuit_breaker(sim, clock, ecs):
    """Tasks that reach RUNNING and then exit are not failed launches: ECS keeps relaunching them."""
    provision(deployment_configuration=BREAKER)
    clock.sleep(60)
    sim.crash_deployments(WORKER, exit_code=3, after=2)
    new = force(ecs, WORKER)
    clock.sleep(120)
    deployment = describe(ecs, WORKER)["deployments"][0]
    assert (deployment["id"], deployment["failedTasks"]) == (new, 0)
    assert deployment["rolloutState"] != "FAILED"
    crashed = [t for t in started_by(ecs, WORKER, new) if t["desiredStatus"] == "STOPPED"]
    assert len(crashed) > 10 and all(t["stopCode"] == "EssentialContainerExited" for t in crashed)


@pytest.mark.parametrize("reset, failed_tasks", [(None, 0), (True, 0), (False, 2)])
def test_flaky_starts_fail_the_next_launches_then_ecs_retries(sim, ecs, clock, reset, failed_tasks):
    breaker = {"enable": False, "rollback": False}
    if reset is not None:
        breaker["resetOnHealthyTask"] = reset
    provision(deployment_configuration={"deploymentCircuitBreaker": breaker})
    clock.sleep(60)
    sim.flaky_starts(WORKER, 2)
    new = force(ecs, WORKER)
    clock.sleep(60)
    deployment = describe(ecs, WORKER)["deployments"][0]
    # failedTasks counts consecutive failures: a task that turns healthy resets it, unless told not to.
    assert (deployment["id"], deployment["failedTasks"], deployment["rolloutState"]) == (new, failed_tasks, "COMPLETED")
    failed = [t for t in started_by(ecs, WORKER, new) if t.get("stopCode") == "TaskFailedToStart"]
    assert len(failed) == 2
    assert all(t["stoppedReason"].startswith("ResourceInitializationError:") for t in failed)
    assert deployment["runningCount"] == 3


def test_unhealthy_tasks_are_replaced_counted_and_trip_the_circuit_breaker(sim, clock, ecs):
    provision(deployment_configuration=BREAKER)
    clock.sleep(60)
    sim.unhealthy_deployments(WEB, after=5)
    new = force(ecs, WEB)
    failed = set()
    for _ in range(120):
        service = describe(ecs, WEB)
        assert service["runningCount"] >= 1  # the old task serves until the new ones are healthy
        for d in service["deployments"]:
            if d["id"] == new:
                failed.add(d["failedTasks"])
        clock.sleep(1)
    assert {1, 2, 3} <= failed
    unhealthy = [t for t in started_by(ecs, WEB, new) if t["desiredStatus"] == "STOPPED"]
    assert unhealthy and all(t["stopCode"] == "ServiceSchedulerInitiated" for t in unhealthy)
    assert all(t["stoppedReason"].startswith("Task failed ELB health checks in (target-group "
                                             "arn:aws:elasticloadbalancing:") for t in unhealthy)
    service = describe(ecs, WEB)
    assert new not in [d["id"] for d in service["deployments"]]  # rolled back
    assert any("is unhealthy in (target-group" in e["message"] for e in service["events"])
    assert any("rolling back" in e["message"] for e in service["events"])
    (only,) = service["deployments"]
    assert (only["rolloutState"], only["runningCount"]) == ("COMPLETED", 1)


@pytest.mark.parametrize("setting, desired, threshold", [
    (None, 3, 3), ({"type": "COUNT", "value": 5}, 3, 5), ({"type": "BOUNDED_PERCENT", "value": 10}, 3, 3),
    ({"type": "UNBOUNDED_PERCENT", "value": 50}, 2, 1), ({"type": "BOUNDED_PERCENT", "value": 100}, 4, 4),
])
def test_the_circuit_breaker_trips_at_its_configured_threshold(sim, clock, ecs, setting, desired, threshold):
    breaker = {"enable": True, "rollback": False}
    if setting:
        breaker["thresholdConfiguration"] = setting
    provision(deployment_configuration={"maximumPercent": 200, "minimumHealthyPercent": 100,
                                        "deploymentCircuitBreaker": breaker})
    ecs.update_service(cluster=CLUSTER, service=WORKER, desiredCount=desired)
    clock.sleep(60)
    sim.fail_deployments(WORKER, "pull")
    new = force(ecs, WORKER)
    seen = set()
    for _ in range(60):
        (deployment,) = [d for d in describe(ecs, WORKER)["deployments"] if d["id"] == new]
        seen.add((deployment["failedTasks"], deployment["rolloutState"]))
        clock.sleep(0.5)
    assert all(state == "IN_PROGRESS" for failed, state in seen if failed < threshold)
    assert deployment["rolloutState"] == "FAILED" and deployment["failedTasks"] >= threshold


def test_an_essential_container_exiting_before_running_is_a_failed_launch(sim, clock, ecs):
    provision(deployment_configuration=BREAKER)
    clock.sleep(60)
    sim.crash_deployments(WORKER, exit_code=3, before_running=True)
    new = force(ecs, WORKER)
    clock.sleep(20)
    crashed = [t for t in started_by(ecs, WORKER, new) if t.get("stopCode") == "EssentialContainerExited"]
    assert len(crashed) >= 3 and not any("startedAt" in t for t in crashed)
    assert all(c["exitCode"] == 3 for t in crashed for c in t["containers"] if c["name"] == "celery-worker")
    service = describe(ecs, WORKER)
    assert new not in [d["id"] for d in service["deployments"]]  # the breaker counted them, and rolled back


@pytest.mark.parametrize("maximum, first", [(300, "has started"), (200, "has stopped")])
def test_an_unhealthy_task_is_replaced_first_when_maximum_percent_leaves_room(sim, clock, ecs, maximum, first):
    provision(deployment_configuration={"maximumPercent": maximum, "minimumHealthyPercent": 100})
    clock.sleep(60)
    sim.unhealthy_deployments(WEB, after=5)
    force(ecs, WEB)
    clock.sleep(13)  # RUNNING at 7 s, unhealthy at 12 s
    messages = [e["message"] for e in reversed(describe(ecs, WEB)["events"])]
    at = next(i for i, m in enumerate(messages) if "is unhealthy" in m)
    after = [m for m in messages[at + 1:] if "has started" in m or "has stopped" in m]
    assert first in after[0]


def test_one_off_tasks_are_missing_for_a_while_after_run_task(cluster, ecs, clock, sim):
    sim.missing_seconds = 10
    arn = run_one_off(ecs)["taskArn"]
    answer = ecs.describe_tasks(cluster=CLUSTER, tasks=[arn])
    assert answer["tasks"] == [] and answer["failures"] == [{"arn": arn, "reason": "MISSING"}]
    assert arn not in ecs.list_tasks(cluster=CLUSTER, startedBy="workflow")["taskArns"]
    clock.sleep(10)
    (task,) = ecs.describe_tasks(cluster=CLUSTER, tasks=[arn])["tasks"]
    assert task["lastStatus"] == "RUNNING"  # it ran meanwhile
    assert ecs.list_tasks(cluster=CLUSTER, startedBy="workflow")["taskArns"] == [arn]


def test_describe_services_answers_the_old_state_right_after_update_service(cluster, ecs, clock, sim):
    sim.stale_seconds = 5
    before = describe(ecs, WORKER)
    answer = ecs.update_service(cluster=CLUSTER, service=WORKER, desiredCount=5, forceNewDeployment=True)["service"]
    assert answer["desiredCount"] == 5 and len(answer["deployments"]) == 2
    clock.sleep(1)
    stale = describe(ecs, WORKER)
    assert (stale["desiredCount"], stale["deployments"]) == (3, before["deployments"])
    assert stale["runningCount"] == before["runningCount"]
    clock.sleep(4)
    fresh = describe(ecs, WORKER)
    assert fresh["desiredCount"] == 5 and fresh["deployments"][0]["id"] == answer["deployments"][0]["id"]


def test_code_deploy_and_external_services_show_task_sets_and_refuse_force_new_deployment(sim, clock, ecs):
    from botocore.exceptions import ClientError

    provision(deployment_controllers={"web": "CODE_DEPLOY", "worker": "EXTERNAL"})
    clock.sleep(60)
    web, worker = describe(ecs, WEB), describe(ecs, WORKER)
    assert web["deploymentController"] == {"type": "CODE_DEPLOY"} and web["deployments"] == []
    (task_set,) = web["taskSets"]
    assert (task_set["status"], task_set["runningCount"], task_set["stabilityStatus"]) == ("PRIMARY", 1, "STEADY_STATE")
    assert web["runningCount"] == 1
    assert worker["deploymentController"] == {"type": "EXTERNAL"} and worker["deployments"] == []
    assert worker.get("taskSets", []) == [] and worker["runningCount"] == 0
    for name, message in [
        (WEB, "Cannot force a new deployment on services with a CODE_DEPLOY deployment controller. "
              "Use AWS CodeDeploy to trigger a new deployment."),
        (WORKER, "Cannot force a new deployment on services with a EXTERNAL deployment controller."),
    ]:
        with pytest.raises(ClientError) as error:
            ecs.update_service(cluster=CLUSTER, service=name, forceNewDeployment=True)
        assert error.value.response["Error"] == {"Code": "InvalidParameterException", "Message": message}
    ecs.update_service(cluster=CLUSTER, service=WEB, desiredCount=2)  # scaling is still ECS's
    clock.sleep(30)
    assert describe(ecs, WEB)["taskSets"][0]["runningCount"] == 2


def test_logs_arrive_late_and_empty_pages_do_not_end_the_stream(cluster, ecs, clock, sim):

    logs = shared_client("logs")
    sim.log_delay = 5
    task_id = run_one_off(ecs)["taskArn"].rsplit("/", 1)[-1]
    stream = {"logGroupName": f"/ecs/{CLUSTER}", "logStreamName": f"worker/celery-worker/{task_id}"}
    clock.sleep(8)  # RUNNING at 7 s: the first lines are written, not yet shipped
    assert logs.get_log_events(**stream, startFromHead=True)["events"] == []
    clock.sleep(5)
    assert [e["message"] for e in logs.get_log_events(**stream, startFromHead=True)["events"]] == [
        "Starting: airflow db migrate", "Working..."]

    sim.log_empty_pages = 2
    first = logs.get_log_events(**stream, startFromHead=True)
    second = logs.get_log_events(**stream, startFromHead=True, nextToken=first["nextForwardToken"])
    assert first["events"] == second["events"] == []
    assert second["nextForwardToken"] != first["nextForwardToken"]
    third = logs.get_log_events(**stream, startFromHead=True, nextToken=second["nextForwardToken"])
    assert [e["message"] for e in third["events"]] == ["Starting: airflow db migrate", "Working..."]
    end = logs.get_log_events(**stream, startFromHead=True, nextToken=third["nextForwardToken"])
    assert end["events"] == [] and end["nextForwardToken"] == third["nextForwardToken"]  # the end of the stream


def test_one_off_tasks_can_be_interrupted_and_user_stops_exit_as_configured(cluster, ecs, clock, sim):
    sim.one_off_stop = ("SpotInterruption", "Your Spot Task was interrupted.", 0)
    spot = run_one_off(ecs)["taskArn"]
    sim.one_off_stop = None
    sim.stop_exit_code = 0
    stopped_by_user = run_one_off(ecs)["taskArn"]
    clock.sleep(8)
    ecs.stop_task(cluster=CLUSTER, task=stopped_by_user, reason="operator")
    clock.sleep(60)
    by_arn = {t["taskArn"]: t for t in ecs.describe_tasks(cluster=CLUSTER, tasks=[spot, stopped_by_user])["tasks"]}
    task = by_arn[spot]
    assert (task["stopCode"], task["stoppedReason"]) == ("SpotInterruption", "Your Spot Task was interrupted.")
    assert (task["stoppingAt"] - task["startedAt"]).total_seconds() == sim.timings.one_off_run / 2  # half its run
    assert {c["exitCode"] for c in task["containers"]} == {0}
    task = by_arn[stopped_by_user]
    assert (task["stopCode"], task["stoppedReason"]) == ("UserInitiated", "operator")
    assert {c["exitCode"] for c in task["containers"]} == {0}


def test_scaling_in_says_which_deployment_stopped_the_task(cluster, ecs, clock):
    deployment = describe(ecs, WORKER)["deployments"][0]["id"]
    ecs.update_service(cluster=CLUSTER, service=WORKER, desiredCount=1)
    clock.sleep(30)
    stopped = tasks(ecs, WORKER, "STOPPED")
    assert len(stopped) == 2
    assert {(t["stopCode"], t["stoppedReason"]) for t in stopped} == {
        ("ServiceSchedulerInitiated", f"Scaling activity initiated by (deployment {deployment})")}
    assert {c["exitCode"] for t in stopped for c in t["containers"]} == {143}


# --- API faults ------------------------------------------------------------------------------------


def standard_client(name="ecs", attempts=None):
    from botocore.config import Config

    retries = {"mode": "standard", **({"total_max_attempts": attempts} if attempts else {})}
    return new_client(name, config=Config(retries=retries))


def test_standard_retries_absorb_one_throttle_but_not_three(sim, no_backoff):
    from botocore.exceptions import ClientError

    ecs = standard_client()
    sim.faults.inject("ListClusters", "throttle")
    assert ecs.list_clusters()["clusterArns"] == []
    assert sim.faults.count["throttle"] == 1
    sim.faults.inject("ListClusters", "throttle", times=3)
    with pytest.raises(ClientError) as error:
        ecs.list_clusters()
    assert error.value.response["Error"] == {"Code": "ThrottlingException", "Message": "Rate exceeded"}
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert sim.faults.count["throttle"] == 4
    assert ecs.list_clusters()["clusterArns"] == []  # used up


def test_server_errors_and_broken_connections_surface_as_botocore_reports_them(sim, no_backoff):
    import botocore.exceptions
    from botocore.exceptions import ClientError

    ecs = standard_client()
    for kind, status, code in [("server", 500, "ServerException"), ("unavailable", 503, "ServiceUnavailableException")]:
        sim.faults.inject("*", kind, times=3)
        with pytest.raises(ClientError) as error:
            ecs.list_clusters()
        assert (error.value.response["ResponseMetadata"]["HTTPStatusCode"], error.value.response["Error"]["Code"]) == (
            status, code)
    for kind, exception in [("connection", botocore.exceptions.ConnectionClosedError),
                            ("read-timeout", botocore.exceptions.ReadTimeoutError),
                            ("connect-timeout", botocore.exceptions.ConnectTimeoutError)]:
        sim.faults.inject("ListClusters", kind, times=3)
        with pytest.raises(exception):
            ecs.list_clusters()
    assert sim.faults.count == {"throttle": 0, "server": 3, "unavailable": 3, "connection": 3, "read-timeout": 3,
                                "connect-timeout": 3}


def test_a_fault_before_the_call_changes_nothing_and_after_it_the_change_is_made(sim):
    from botocore.exceptions import ClientError, ConnectionClosedError

    ecs = standard_client(attempts=1)
    sim.faults.inject("CreateCluster", "server")
    with pytest.raises(ClientError):
        ecs.create_cluster(clusterName=CLUSTER)
    assert ecs.list_clusters()["clusterArns"] == []
    sim.faults.inject("CreateCluster", "connection", after=True)
    with pytest.raises(ConnectionClosedError):
        ecs.create_cluster(clusterName=CLUSTER)
    assert len(ecs.list_clusters()["clusterArns"]) == 1


def test_log_reads_and_random_rates_fail_too(sim):
    from botocore.exceptions import ClientError

    logs = standard_client("logs", attempts=1)
    sim.faults.inject("GetLogEvents", "throttle")
    with pytest.raises(ClientError) as error:
        logs.get_log_events(logGroupName=f"/ecs/{CLUSTER}", logStreamName="none")
    assert error.value.response["Error"]["Code"] == "ThrottlingException"

    sim.faults.rates = {"throttle": 0.5}
    ecs = standard_client(attempts=1)
    outcomes = []
    for _ in range(40):
        try:
            ecs.list_clusters()
            outcomes.append("ok")
        except ClientError:
            outcomes.append("throttled")
    assert 5 < outcomes.count("throttled") < 35
    assert sim.faults.count["throttle"] == 1 + outcomes.count("throttled")


def test_unknown_tasks_are_missing(ecs):
    ecs.create_cluster(clusterName=CLUSTER)
    arn = f"arn:aws:ecs:{REGION}:123456789012:task/{CLUSTER}/0123456789abcdef0123456789abcdef"
    assert ecs.describe_tasks(cluster=CLUSTER, tasks=[arn])["failures"] == [{"arn": arn, "reason": "MISSING"}]


# --- image digests ----------------------------------------------------------------------------------

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/airflow-prod:latest"


@pytest.fixture
def registry(sim):
    """The simulated ECR (SHA-256 digests of the manifest bytes), with release v1 under airflow-prod:latest."""

    from workflow_sandbox.images import push_image, random_layers
    from workflow_sandbox.registry import Registry, simulated_ecr

    with simulated_ecr(Registry()):
        ecr = shared_client("ecr")
        ecr.create_repository(repositoryName="airflow-prod")

        def push(release, tag="latest"):
            return push_image(ecr, "airflow-prod", random_layers(2, 1024, seed=release), tag)["digest"]

        push.v1 = push(1)
        yield push


def digests(ecs, name, container="celery-worker", desired="RUNNING"):
    return [next(c.get("imageDigest") for c in t["containers"] if c["name"] == container) for t in tasks(ecs, name, desired)]


def test_a_deployment_keeps_the_digest_it_resolved_when_its_tag_moves(registry, ecs, clock):
    provision()
    clock.sleep(60)
    assert digests(ecs, WORKER) == [registry.v1] * 3
    (task,) = tasks(ecs, SCHEDULER)
    assert task["containers"][0]["image"] == IMAGE  # the reference stays as the task definition has it

    old = force(ecs, WORKER)  # resolves latest to v1 now
    v2 = registry(2)  # latest moves while the deployment rolls, and after it
    clock.sleep(60)
    ecs.update_service(cluster=CLUSTER, service=WORKER, desiredCount=5)  # the same deployment scales out
    clock.sleep(60)
    assert [d["id"] for d in describe(ecs, WORKER)["deployments"]] == [old]
    assert digests(ecs, WORKER) == [registry.v1] * 5

    force(ecs, WORKER)  # a new deployment resolves the tag again
    clock.sleep(60)
    assert digests(ecs, WORKER) == [v2] * 5
    assert digests(ecs, SCHEDULER, "scheduler") == [registry.v1]  # not redeployed


def test_run_task_resolves_the_tag_at_launch(registry, ecs, clock):
    provision()
    clock.sleep(60)
    before = run_one_off(ecs)["taskArn"]
    v2 = registry(2)
    after = run_one_off(ecs)["taskArn"]
    clock.sleep(60)
    by_arn = {t["taskArn"]: t for t in ecs.describe_tasks(cluster=CLUSTER, tasks=[before, after])["tasks"]}
    shown = {arn: {c["name"]: c["imageDigest"] for c in t["containers"]} for arn, t in by_arn.items()}
    assert shown[before]["celery-worker"] == registry.v1 and shown[after]["celery-worker"] == v2
    import hashlib

    # An image outside the simulated registry has a stable made-up digest.
    assert shown[before]["log-router"] == shown[after]["log-router"] == (
        "sha256:" + hashlib.sha256(b"fluent-bit:latest").hexdigest())


def test_a_tag_missing_from_the_repository_fails_to_start(registry, ecs, clock):
    from workflow_sandbox.simulator import PULL_ERROR

    provision()
    clock.sleep(60)
    missing = IMAGE.replace(":latest", ":20990101T000000Z")
    definition = ecs.describe_task_definition(taskDefinition=f"{WORKER}")["taskDefinition"]
    containers = [{**c, "image": missing} if c["name"] == "celery-worker" else c for c in definition["containerDefinitions"]]
    arn = ecs.register_task_definition(
        family=WORKER, networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="1024", memory="2048",
        containerDefinitions=containers)["taskDefinition"]["taskDefinitionArn"]
    new = ecs.update_service(cluster=CLUSTER, service=WORKER, taskDefinition=arn)["service"]["deployments"][0]["id"]
    one_off = ecs.run_task(cluster=CLUSTER, taskDefinition=arn, launchType="FARGATE",
                           networkConfiguration=describe(ecs, WORKER)["networkConfiguration"])["tasks"][0]["taskArn"]
    clock.sleep(20)
    failed = [t for t in started_by(ecs, WORKER, new) if t["desiredStatus"] == "STOPPED"]
    (stopped,) = ecs.describe_tasks(cluster=CLUSTER, tasks=[one_off])["tasks"]
    for task in [*failed, stopped]:
        assert (task["stopCode"], task["stoppedReason"]) == ("TaskFailedToStart", PULL_ERROR.format(image=missing))
        assert "imageDigest" not in task["containers"][0]
    assert len(failed) >= 3 and describe(ecs, WORKER)["runningCount"] == 3  # the old tasks keep serving


def test_a_rollback_returns_to_the_digest_the_previous_deployment_ran(registry, sim, ecs, clock):
    provision(deployment_configuration=BREAKER)
    clock.sleep(60)
    registry(2)
    sim.fail_deployments(WORKER, "pull")
    force(ecs, WORKER)
    sim.fail_deployments(WORKER, None)
    clock.sleep(120)
    assert any("rolling back" in e["message"] for e in describe(ecs, WORKER)["events"])
    assert digests(ecs, WORKER) == [registry.v1] * 3  # latest is v2 now, the rollback runs v1 again


def test_without_a_repository_images_get_a_stable_digest(cluster, ecs):
    import hashlib

    fake = "sha256:" + hashlib.sha256(IMAGE.encode()).hexdigest()
    assert digests(ecs, WORKER) == [fake] * 3


# --- maximumPercent and deployment configuration -----------------------------------------------------------

SINGLETON = {"maximumPercent": 100, "minimumHealthyPercent": 0}


@pytest.mark.parametrize("counts_stopping", [False, True])
def test_maximum_percent_counts_pending_and_running_tasks_not_stopping_ones(sim, ecs, clock, counts_stopping):
    """ECS launches the replacement as soon as the old task is told to stop: both processes run for a while."""
    sim.max_percent_counts_stopping = counts_stopping
    provision(deployment_configuration=SINGLETON)
    clock.sleep(60)
    new = force(ecs, SCHEDULER)
    most_alive = most_desired_running = 0
    for _ in range(30):
        most_alive = max(most_alive, len(sim.alive(SCHEDULER)))
        most_desired_running = max(most_desired_running, len(tasks(ecs, SCHEDULER)))
        clock.sleep(1)
    assert most_desired_running == 1
    assert most_alive == (1 if counts_stopping else 2)
    (only,) = describe(ecs, SCHEDULER)["deployments"]
    assert (only["id"], only["rolloutState"], only["runningCount"]) == (new, "COMPLETED", 1)


def test_update_service_deployment_configuration_is_merged_shown_and_honoured(sim, ecs, clock):
    provision(deployment_configuration=BREAKER)
    clock.sleep(60)
    answer = ecs.update_service(cluster=CLUSTER, service=SCHEDULER, deploymentConfiguration=SINGLETON)["service"]
    expected = {**BREAKER, **SINGLETON}
    assert answer["deploymentConfiguration"] == describe(ecs, SCHEDULER)["deploymentConfiguration"] == expected
    ecs.update_service(cluster=CLUSTER, service=WORKER, deploymentConfiguration={"maximumPercent": 150})
    assert describe(ecs, WORKER)["deploymentConfiguration"] == {**BREAKER, "maximumPercent": 150}

    force(ecs, SCHEDULER)
    (old,) = tasks(ecs, SCHEDULER, "STOPPED")
    assert old["lastStatus"] == "DEACTIVATING"  # minimumHealthyPercent 0: the old task is stopped at once
    (new,) = tasks(ecs, SCHEDULER)
    assert new["lastStatus"] == "PROVISIONING"  # maximumPercent 100: its replacement starts meanwhile
    clock.sleep(60)
    assert len(tasks(ecs, SCHEDULER)) == 1 and len(sim.alive(SCHEDULER)) == 1


# --- tags on the cluster -----------------------------------------------------------------------------


def test_cluster_tags_take_what_ecs_takes_and_refuse_the_rest(sim, ecs):
    from botocore.exceptions import ClientError

    arn = ecs.create_cluster(clusterName=CLUSTER)["cluster"]["clusterArn"]
    assert ecs.list_tags_for_resource(resourceArn=arn)["tags"] == []
    value = "alice@host:1234 until=2026-01-01T00:00:00Z op=redeploy/web+worker_1.2"
    ecs.tag_resource(resourceArn=arn, tags=[{"key": "workflow:lease", "value": value}, {"key": "team", "value": "data"}])
    ecs.tag_resource(resourceArn=arn, tags=[{"key": "team", "value": "platform"}])  # replaces that key's value
    assert sorted((t["key"], t["value"]) for t in ecs.list_tags_for_resource(resourceArn=arn)["tags"]) == [
        ("team", "platform"), ("workflow:lease", value)]
    ecs.untag_resource(resourceArn=arn, tagKeys=["workflow:lease", "absent"])
    assert ecs.list_tags_for_resource(resourceArn=arn)["tags"] == [{"key": "team", "value": "platform"}]

    for tags in ([{"key": "workflow:lease", "value": "alice|2026"}], [{"key": "k", "value": "x" * 257}],
                 [{"key": "k" * 129, "value": ""}], [{"key": "aws:lease", "value": "x"}],
                 [{"key": f"k{i}", "value": ""} for i in range(50)]):
        with pytest.raises(ClientError) as error:
            ecs.tag_resource(resourceArn=arn, tags=tags)
        assert error.value.response["Error"]["Code"] == "InvalidParameterException"
    assert ecs.list_tags_for_resource(resourceArn=arn)["tags"] == [{"key": "team", "value": "platform"}]

    sim.validate_tags = False  # moto itself takes anything
    ecs.tag_resource(resourceArn=arn, tags=[{"key": "workflow:lease", "value": "alice|2026"}])
    assert {"key": "workflow:lease", "value": "alice|2026"} in ecs.list_tags_for_resource(resourceArn=arn)["tags"]
