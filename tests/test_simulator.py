"""The simulated ECS behaves as ECS does; these pin the behaviours the CLI's rules depend on."""

import pytest
from conftest import CLUSTER, REGION, SCHEDULER, WEB, WORKER, new_client, shared_client
from helpers import describe, digests, primary_id, recording_sandbox, tasks

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


def test_tasks_walk_the_ecs_lifecycle_with_the_clock(empty_cluster, ecs, clock):
    ecs.update_service(cluster=CLUSTER, service=SCHEDULER, desiredCount=1)
    seen = []
    for _ in range(10):
        seen += [t["lastStatus"] for t in tasks(ecs, SCHEDULER)]
        clock.sleep(1)
    assert seen[0] == "PROVISIONING"
    assert "PENDING" in seen
    assert seen[-1] == "RUNNING"
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
    ecs.update_service(cluster=CLUSTER, service=SCHEDULER, desiredCount=0)  # its task is desired STOPPED at once
    assert ecs.list_tasks(cluster=CLUSTER, serviceName=SCHEDULER)["taskArns"] == []
    assert len(ecs.list_tasks(cluster=CLUSTER, serviceName=SCHEDULER, desiredStatus="STOPPED")["taskArns"]) == 1


def test_rolling_deployment_keeps_minimum_healthy_and_completes(cluster, ecs, clock):
    old = describe(ecs, WORKER)["deployments"][0]["id"]
    new = ecs.update_service(cluster=CLUSTER, service=WORKER, forceNewDeployment=True)["service"]
    new_id = primary_id(new)
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
    assert primary["failedTasks"] >= 3
    assert primary["rolloutState"] == "IN_PROGRESS"
    assert service["runningCount"] == 3  # the old tasks keep serving
    failed = [t for t in tasks(ecs, WORKER, "STOPPED") if t["startedBy"] == primary["id"]]
    assert failed
    assert all(t["stopCode"] == "TaskFailedToStart" for t in failed)
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
    assert len(service["deployments"]) == 2
    assert service["deployments"][0]["rolloutState"] == "IN_PROGRESS"
    assert service["deployments"][0]["pendingCount"] == 1


def test_one_off_tasks_run_then_stop_with_chosen_exit_codes(cluster, ecs, clock, sim):
    sim.one_off_exit_codes = {"celery-worker": 3}
    worker = describe(ecs, WORKER)
    task = ecs.run_task(cluster=CLUSTER, taskDefinition=worker["taskDefinition"], launchType="FARGATE",
                        networkConfiguration=worker["networkConfiguration"])["tasks"][0]
    clock.sleep(60)
    (stopped,) = ecs.describe_tasks(cluster=CLUSTER, tasks=[task["taskArn"]])["tasks"]
    assert stopped["lastStatus"] == "STOPPED"
    assert stopped["stopCode"] == "EssentialContainerExited"
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
    return primary_id(ecs.update_service(cluster=CLUSTER, service=name, forceNewDeployment=True)["service"])


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
    assert states[0] == "IN_PROGRESS"
    assert "COMPLETED" in states
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
    assert len(crashed) > 10
    assert all(t["stopCode"] == "EssentialContainerExited" for t in crashed)


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
    assert unhealthy
    assert all(t["stopCode"] == "ServiceSchedulerInitiated" for t in unhealthy)
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
    assert deployment["rolloutState"] == "FAILED"
    assert deployment["failedTasks"] >= threshold


def test_an_essential_container_exiting_before_running_is_a_failed_launch(sim, clock, ecs):
    provision(deployment_configuration=BREAKER)
    clock.sleep(60)
    sim.crash_deployments(WORKER, exit_code=3, before_running=True)
    new = force(ecs, WORKER)
    clock.sleep(20)
    crashed = [t for t in started_by(ecs, WORKER, new) if t.get("stopCode") == "EssentialContainerExited"]
    assert len(crashed) >= 3
    assert not any("startedAt" in t for t in crashed)
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
    assert answer["tasks"] == []
    assert answer["failures"] == [{"arn": arn, "reason": "MISSING"}]
    assert arn not in ecs.list_tasks(cluster=CLUSTER, startedBy="workflow")["taskArns"]
    clock.sleep(10)
    (task,) = ecs.describe_tasks(cluster=CLUSTER, tasks=[arn])["tasks"]
    assert task["lastStatus"] == "RUNNING"  # it ran meanwhile
    assert ecs.list_tasks(cluster=CLUSTER, startedBy="workflow")["taskArns"] == [arn]


def test_describe_services_answers_the_old_state_right_after_update_service(cluster, ecs, clock, sim):
    sim.stale_seconds = 5
    before = describe(ecs, WORKER)
    answer = ecs.update_service(cluster=CLUSTER, service=WORKER, desiredCount=5, forceNewDeployment=True)["service"]
    assert answer["desiredCount"] == 5
    assert len(answer["deployments"]) == 2
    clock.sleep(1)
    stale = describe(ecs, WORKER)
    assert (stale["desiredCount"], stale["deployments"]) == (3, before["deployments"])
    assert stale["runningCount"] == before["runningCount"]
    clock.sleep(4)
    fresh = describe(ecs, WORKER)
    assert fresh["desiredCount"] == 5
    assert fresh["deployments"][0]["id"] == answer["deployments"][0]["id"]


def test_code_deploy_and_external_services_show_task_sets_and_refuse_force_new_deployment(sim, clock, ecs):
    from botocore.exceptions import ClientError

    provision(deployment_controllers={"web": "CODE_DEPLOY", "worker": "EXTERNAL"})
    clock.sleep(60)
    web, worker = describe(ecs, WEB), describe(ecs, WORKER)
    assert web["deploymentController"] == {"type": "CODE_DEPLOY"}
    assert web["deployments"] == []
    (task_set,) = web["taskSets"]
    assert (task_set["status"], task_set["runningCount"], task_set["stabilityStatus"]) == ("PRIMARY", 1, "STEADY_STATE")
    assert web["runningCount"] == 1
    assert worker["deploymentController"] == {"type": "EXTERNAL"}
    assert worker["deployments"] == []
    assert worker.get("taskSets", []) == []
    assert worker["runningCount"] == 0
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
    assert end["events"] == []
    assert end["nextForwardToken"] == third["nextForwardToken"]  # the end of the stream


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
def registry(sim_registry):
    """The simulated ECR (SHA-256 digests of the manifest bytes), with release v1 under airflow-prod:latest."""
    from workflow_sandbox.images import push_image, random_layers

    ecr = sim_registry.ecr
    ecr.create_repository(repositoryName="airflow-prod")

    def push(release, tag="latest"):
        return push_image(ecr, "airflow-prod", random_layers(2, 1024, seed=release), tag)["digest"]

    push.v1 = push(1)
    return push


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
    assert shown[before]["celery-worker"] == registry.v1
    assert shown[after]["celery-worker"] == v2
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
    assert len(failed) >= 3
    assert describe(ecs, WORKER)["runningCount"] == 3  # the old tasks keep serving


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
    assert len(tasks(ecs, SCHEDULER)) == 1
    assert len(sim.alive(SCHEDULER)) == 1


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


# --- DEPROVISIONING, and ECS forgetting stopped tasks ----------------------------------------------------------

def test_a_stopped_task_deprovisions_then_stops_showing_each_phase_as_describe_tasks_does(sim, clock, ecs):
    sim.timings = Timings(provision=2, pull=5, drain=3, stop=2, one_off_run=6, deprovision=4)
    provision()
    clock.sleep(60)
    (task,) = tasks(ecs, SCHEDULER)
    eni = next(d["value"] for d in task["attachments"][0]["details"] if d["name"] == "networkInterfaceId")
    ec2 = shared_client("ec2")
    assert ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"]
    ecs.update_service(cluster=CLUSTER, service=SCHEDULER, desiredCount=0)
    seen = {}
    for _ in range(24):
        (shown,) = ecs.describe_tasks(cluster=CLUSTER, tasks=[task["taskArn"]])["tasks"]
        seen.setdefault(shown["lastStatus"], shown)
        clock.sleep(0.5)
    assert list(seen) == ["DEACTIVATING", "STOPPING", "DEPROVISIONING", "STOPPED"]
    for status in ("DEACTIVATING", "STOPPING"):  # its process still runs
        shown = seen[status]
        assert (shown["desiredStatus"], "stoppingAt" in shown, "executionStoppedAt" in shown, "stoppedAt" in shown) == (
            "STOPPED", True, False, False), status
        assert [(c["lastStatus"], c.get("exitCode")) for c in shown["containers"]] == [("RUNNING", None)], status
    deprovisioning, stopped = seen["DEPROVISIONING"], seen["STOPPED"]
    # Its containers have stopped and say how; ECS detaches the network interface, and the task is not STOPPED yet.
    assert [(c["lastStatus"], c["exitCode"]) for c in deprovisioning["containers"]] == [("STOPPED", 143)]
    assert "stoppedAt" not in deprovisioning
    assert deprovisioning["attachments"][0]["status"] == "DETACHING"
    deployment = describe(ecs, SCHEDULER)["deployments"][0]["id"]
    assert (deprovisioning["stopCode"], deprovisioning["stoppedReason"]) == (
        "ServiceSchedulerInitiated", f"Scaling activity initiated by (deployment {deployment})")
    assert (stopped["executionStoppedAt"] - stopped["stoppingAt"]).total_seconds() == 3 + 2  # drain, then stop
    assert (stopped["stoppedAt"] - stopped["executionStoppedAt"]).total_seconds() == 4  # deprovision
    assert stopped["executionStoppedAt"] == deprovisioning["executionStoppedAt"]
    assert stopped["attachments"][0]["status"] == "DELETED"
    with pytest.raises(ec2.exceptions.ClientError):
        ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])  # ECS deleted it
    assert describe(ecs, SCHEDULER)["runningCount"] == 0
    assert sim.alive(SCHEDULER) == []


def test_without_deprovisioning_a_task_stops_as_its_containers_do(cluster, sim, clock, ecs):
    (task,) = tasks(ecs, SCHEDULER)
    ecs.update_service(cluster=CLUSTER, service=SCHEDULER, desiredCount=0)
    statuses = []
    for _ in range(12):
        statuses.append(ecs.describe_tasks(cluster=CLUSTER, tasks=[task["taskArn"]])["tasks"][0]["lastStatus"])
        clock.sleep(0.5)
    assert "DEPROVISIONING" not in statuses
    assert statuses[-1] == "STOPPED"
    (stopped,) = ecs.describe_tasks(cluster=CLUSTER, tasks=[task["taskArn"]])["tasks"]
    assert stopped["executionStoppedAt"] == stopped["stoppedAt"]


def test_a_failed_launch_deprovisions_too(sim, clock, ecs):
    sim.timings = Timings(provision=2, pull=5, drain=3, stop=2, one_off_run=6, deprovision=4)
    sim.one_off_failure = "pull"
    provision()
    arn = run_one_off(ecs)["taskArn"]
    clock.sleep(7.5)  # the pull fails at 7 s
    (task,) = ecs.describe_tasks(cluster=CLUSTER, tasks=[arn])["tasks"]
    assert (task["lastStatus"], task["stopCode"], "stoppedAt" in task) == ("DEPROVISIONING", "TaskFailedToStart", False)
    clock.sleep(4)
    (task,) = ecs.describe_tasks(cluster=CLUSTER, tasks=[arn])["tasks"]
    assert task["lastStatus"] == "STOPPED"
    assert (task["stoppedAt"] - task["executionStoppedAt"]).total_seconds() == 4


def test_ecs_forgets_a_stopped_task_after_an_hour(cluster, sim, clock, ecs):
    from workflow_sandbox.moto_models import ecs_backends

    arn = run_one_off(ecs)["taskArn"]
    clock.sleep(60)
    (task,) = ecs.describe_tasks(cluster=CLUSTER, tasks=[arn])["tasks"]
    stopped_at = task["stoppedAt"]
    clock.sleep(3600 - (clock.wall(clock.now()) - stopped_at).total_seconds() - 1)
    assert arn in ecs.list_tasks(cluster=CLUSTER, desiredStatus="STOPPED")["taskArns"]
    clock.sleep(1)
    answer = ecs.describe_tasks(cluster=CLUSTER, tasks=[arn])
    assert answer["tasks"] == []
    assert answer["failures"] == [{"arn": arn, "reason": "MISSING"}]
    assert arn not in ecs.list_tasks(cluster=CLUSTER, desiredStatus="STOPPED")["taskArns"]
    assert arn not in ecs_backends["123456789012"][REGION].tasks[CLUSTER]
    assert all(t.task_arn != arn for t in sim.tasks)
    assert len(tasks(ecs, WORKER)) == 3  # what runs stays, however long it has run

    sim.stopped_retention = None  # never forget
    kept = run_one_off(ecs)["taskArn"]
    clock.sleep(7200)
    assert ecs.describe_tasks(cluster=CLUSTER, tasks=[kept])["tasks"][0]["lastStatus"] == "STOPPED"


def test_deprovisioning_must_not_be_negative():
    with pytest.raises(ValueError):
        Timings(deprovision=-1)


# --- Airflow: the metadata database's schema and the components that check it -----------------------------------

V3_OLD, V3_NEW = "3.2.2", "3.3.2"


def log_lines(task_arn: str, prefix: str, container: str) -> list[str]:
    """The container's awslogs lines; none when it wrote nothing (the simulation creates a stream at the first line)."""
    logs = shared_client("logs")
    stream = f"{prefix}/{container}/{task_arn.rsplit('/', 1)[-1]}"
    try:
        events = logs.get_log_events(logGroupName=f"/ecs/{CLUSTER}", logStreamName=stream, startFromHead=True)["events"]
    except logs.exceptions.ResourceNotFoundException:
        return []
    return [e["message"] for e in events]


@pytest.fixture
def airflow(sim, clock, sim_registry):
    """`airflow.start(version, shape)`: an Airflow cluster whose images carry Airflow versions, its database at the
    schema of the running release; `airflow.push(version)` moves `latest` to an image of another release."""
    import types

    from workflow.airflow_schema import schema_of
    from workflow_sandbox.airflow_db import AirflowDatabase
    from workflow_sandbox.image_config import config_reader
    from workflow_sandbox.images import push_image, random_layers
    from workflow_sandbox.provision import provision_cluster, running_counts
    from workflow_sandbox.server import airflow_image_config

    registry, ecr = sim_registry, sim_registry.ecr
    ecr.create_repository(repositoryName="airflow-prod")
    seeds = {}

    def push(version: str, tag: str = "latest") -> str:
        seeds.setdefault(version, len(seeds) + 1)
        layers = random_layers(2, 1024, seed=seeds[version])
        return push_image(ecr, "airflow-prod", layers, tag, config=airflow_image_config(version))["digest"]

    def start(version: str = V3_OLD, shape: int = 3, head: str | None = "running"):
        """Push `version` as latest, set the database (`head` "running": the version's schema), provision."""
        push(version)
        sim.image_config = config_reader(registry)
        sim.database = AirflowDatabase(head=schema_of(version) if head == "running" else head)
        env.provisioned = provision_cluster(shared_client, counts=running_counts(shape), airflow=shape)
        clock.sleep(60)
        with sim.lock:
            sim.advance()  # played now, before the test changes the database behind the simulation's back
        return env.provisioned

    env = types.SimpleNamespace(push=push, start=start, registry=registry, ecr=ecr)
    return env


def crashed(ecs, name, deployment_id):
    return [t for t in started_by(ecs, name, deployment_id) if t.get("stopCode") == "EssentialContainerExited"]


def test_a_new_image_started_before_the_migration_crash_loops_with_airflows_line(airflow, sim, clock, ecs):
    airflow.start(V3_OLD)
    scheduler = f"{CLUSTER}-scheduler"
    airflow.push(V3_NEW)
    new = force(ecs, scheduler)
    clock.sleep(60)
    loop = crashed(ecs, scheduler, new)
    assert len(loop) >= 3  # ECS relaunches, again and again
    task = next(t for t in loop if t["lastStatus"] == "STOPPED")
    assert (task["stoppingAt"] - task["startedAt"]).total_seconds() == sim.migration_check_seconds
    assert task["stoppedReason"] == "Essential container in task exited"
    assert [(c["name"], c["exitCode"]) for c in task["containers"]] == [("scheduler", 1)]
    (line,) = log_lines(task["taskArn"], "scheduler", "scheduler")
    stamp = (task["startedAt"] + __import__("datetime").timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert line == (f"{stamp} [error    ] Database migration required. Please run `airflow db migrate`. "
                    "Make sure the command is run using Airflow version 3.3.2. [airflow.utils.db] loc=db.py:997")
    assert describe(ecs, scheduler)["deployments"][0]["failedTasks"] == 0  # crashes after RUNNING are no failed launch

    # Celery workers of Airflow 3 do not check: they run the new image on the old schema.
    worker = f"{CLUSTER}-worker"
    new_worker = force(ecs, worker)
    clock.sleep(60)
    assert crashed(ecs, worker, new_worker) == []
    assert describe(ecs, worker)["runningCount"] == 3


def test_an_old_image_restarted_after_the_migration_crash_loops_too(airflow, sim, clock, ecs):
    from workflow.airflow_schema import schema_of

    airflow.start(V3_OLD)
    sim.database.head = schema_of(V3_NEW)  # migrated by a newer release meanwhile; what runs keeps running
    assert all(describe(ecs, f"{CLUSTER}-{name}")["runningCount"] == 1 for name in ("scheduler", "dag-processor"))
    for name in ("dag-processor", "api-server", "triggerer"):
        new = force(ecs, f"{CLUSTER}-{name}")  # ECS replaces a task: it starts the old image on the new schema
        clock.sleep(40)
        loop = crashed(ecs, f"{CLUSTER}-{name}", new)
        assert len(loop) >= 2, name
        (line,) = log_lines(loop[0]["taskArn"], name, name)
        assert line.endswith("[error    ] Database migration required. Please run `airflow db migrate`. Make sure the "
                             "command is run using Airflow version 3.2.2. [airflow.utils.db] loc=db.py:997"), line


def test_airflow_2_components_and_workers_check_and_say_so_in_airflow_2s_words(airflow, sim, clock, ecs):
    airflow.start("2.9.3", shape=2)
    airflow.push("2.10.5")
    for name, container in ((WORKER, "celery-worker"), (WEB, "webserver")):
        new = force(ecs, name)
        clock.sleep(40)
        loop = crashed(ecs, name, new)
        assert loop, name
        (line,) = log_lines(loop[0]["taskArn"], name.rsplit("-", 1)[1], container)
        assert line == ("ERROR: You need to upgrade the database. Please run `airflow db upgrade`. "
                        "Make sure the command is run using Airflow version 2.10.5.")
        assert {c["name"]: c["exitCode"] for c in loop[-1]["containers"] if "exitCode" in c}.get(container) == 1


def test_airflow_2_migrates_in_airflow_2s_words(airflow, sim, clock, ecs):
    from workflow.airflow_schema import schema_of

    airflow.start("2.9.3", shape=2)
    airflow.push("2.10.5")
    arn = one_off(ecs, ["airflow", "db", "migrate"], service=SCHEDULER)
    clock.sleep(60)
    code, lines = finished(ecs, arn)
    url = sim.database.url
    stamp = lines[2][1:lines[2].index("]")]
    assert (code, sim.database.head) == (0, schema_of("2.10.5"))
    assert lines == [f"DB: {url}", f"Performing upgrade to the metadata database {url}",
                     f"[{stamp}] {{db.py:1675}} INFO - Creating tables", "Database migrating done!"]
    assert stamp.endswith("+0000")
    assert len(stamp) == len("2026-01-01T00:00:00.000+0000")


def test_releases_that_share_a_schema_start_on_each_others_database(airflow, sim, clock, ecs):
    airflow.start("2.10.5", shape=2)
    airflow.push("2.11.0")  # 2.11.0 added no migration: both have 2.10.3's schema
    new = force(ecs, SCHEDULER)
    clock.sleep(60)
    assert crashed(ecs, SCHEDULER, new) == []
    assert [d["id"] for d in describe(ecs, SCHEDULER)["deployments"]] == [new]


def test_without_a_simulated_database_or_a_known_version_nothing_is_checked(airflow, sim, clock, ecs):
    airflow.start(V3_OLD)
    sim.database = None
    airflow.push(V3_NEW)
    new = force(ecs, f"{CLUSTER}-scheduler")
    clock.sleep(40)
    assert crashed(ecs, f"{CLUSTER}-scheduler", new) == []


def one_off(ecs, command, service=f"{CLUSTER}-scheduler", container="scheduler"):
    definition = describe(ecs, service)
    return ecs.run_task(
        cluster=CLUSTER, taskDefinition=definition["taskDefinition"], launchType="FARGATE",
        networkConfiguration=definition["networkConfiguration"], startedBy="workflow",
        overrides={"containerOverrides": [{"name": container, "command": command}]},
    )["tasks"][0]["taskArn"]


def finished(ecs, arn, container="scheduler"):
    (task,) = ecs.describe_tasks(cluster=CLUSTER, tasks=[arn])["tasks"]
    assert task["lastStatus"] == "STOPPED", task["lastStatus"]
    return next(c["exitCode"] for c in task["containers"] if c["name"] == container), log_lines(arn, "scheduler", container)


def test_db_migrate_moves_the_schema_to_its_image_when_it_ends_and_the_next_start_passes(airflow, sim, clock, ecs):
    from workflow.airflow_schema import schema_of

    airflow.start(V3_OLD)
    airflow.push(V3_NEW)
    arn = one_off(ecs, ["airflow", "db", "migrate"])  # RunTask resolves latest: the new image
    clock.sleep(7 + 1 + 5)  # RUNNING at 7 s, Airflow's start-up, most of the migration
    assert sim.database.head == schema_of(V3_OLD)  # not yet: the migration still runs
    clock.sleep(30)
    code, lines = finished(ecs, arn)
    assert code == 0
    assert sim.database.head == schema_of(V3_NEW)
    assert [line.split("] ", 1)[1].split(" [")[0].strip() for line in lines] == [
        "Performing upgrade to the metadata database", "Migrating the Airflow database", "Database migration done!"]
    new = force(ecs, f"{CLUSTER}-scheduler")
    clock.sleep(40)
    assert crashed(ecs, f"{CLUSTER}-scheduler", new) == []


def test_db_migrate_initialises_an_empty_database(airflow, sim, clock, ecs):
    from workflow.airflow_schema import schema_of

    airflow.start(V3_OLD, head=None)
    scheduler = describe(ecs, f"{CLUSTER}-scheduler")
    assert crashed(ecs, f"{CLUSTER}-scheduler", scheduler["deployments"][0]["id"])  # nothing starts on no schema
    arn = one_off(ecs, ["airflow", "db", "migrate"])
    clock.sleep(60)
    code, lines = finished(ecs, arn)
    assert code == 0
    assert sim.database.head == schema_of(V3_OLD)
    assert "Creating Airflow database tables from the ORM" in lines[1]


def test_db_migrate_with_an_older_image_than_the_database_fails_in_alembic(airflow, sim, clock, ecs):
    from workflow.airflow_schema import schema_of

    airflow.start(V3_OLD)
    sim.database.head = schema_of(V3_NEW)
    arn = one_off(ecs, ["airflow", "db", "migrate"])
    clock.sleep(60)
    code, lines = finished(ecs, arn)
    assert code == 1
    assert sim.database.head == schema_of(V3_NEW)
    assert lines[-1] == "alembic.util.exc.CommandError: Can't locate revision identified by 'd2f4e1b3c5a7'"


def test_a_second_migration_waits_for_the_lock_then_fails_on_it(airflow, sim, clock, ecs):
    from workflow.airflow_schema import schema_of

    airflow.start(V3_OLD)
    airflow.push(V3_NEW)
    first = one_off(ecs, ["airflow", "db", "migrate"])
    clock.sleep(2)
    second = one_off(ecs, ["airflow", "db", "migrate"])  # starts while the first one migrates
    clock.sleep(60)
    assert finished(ecs, first)[0] == 0
    assert sim.database.head == schema_of(V3_NEW)
    code, lines = finished(ecs, second)
    assert code == 1
    assert lines[-3:] == ["sqlalchemy.exc.OperationalError: (psycopg2.errors.LockNotAvailable) canceling statement due "
                          "to lock timeout", "[SQL: SELECT pg_advisory_lock(%(id)s)]", "[parameters: {'id': 1}]"]
    (task,) = ecs.describe_tasks(cluster=CLUSTER, tasks=[second])["tasks"]
    # Postgres' lock_timeout of 1800 ms: the second waited that long after Airflow's start-up.
    assert (task["executionStoppedAt"] - task["startedAt"]).total_seconds() == pytest.approx(1 + 1.8 + 3 + 2)

    after = one_off(ecs, ["airflow", "db", "migrate"])  # once the first has ended, the lock is free
    clock.sleep(60)
    assert finished(ecs, after)[0] == 0


def test_a_migration_stopped_by_the_user_changes_nothing_and_frees_the_lock(airflow, sim, clock, ecs):
    from workflow.airflow_schema import schema_of

    airflow.start(V3_OLD)
    airflow.push(V3_NEW)
    arn = one_off(ecs, ["airflow", "db", "migrate"])
    clock.sleep(9)
    ecs.stop_task(cluster=CLUSTER, task=arn, reason="operator")
    clock.sleep(30)
    assert sim.database.head == schema_of(V3_OLD)
    arn = one_off(ecs, ["airflow", "db", "migrate"])
    clock.sleep(60)
    assert finished(ecs, arn)[0] == 0
    assert sim.database.head == schema_of(V3_NEW)


def test_a_rehearsed_one_off_failure_wins_over_the_migration(airflow, sim, clock, ecs):
    from workflow.airflow_schema import schema_of

    airflow.start(V3_OLD)
    airflow.push(V3_NEW)
    sim.one_off_exit_code = 3
    arn = one_off(ecs, ["airflow", "db", "migrate"])
    clock.sleep(60)
    assert finished(ecs, arn)[0] == 3
    assert sim.database.head == schema_of(V3_OLD)


@pytest.mark.parametrize("command, image, code, last", [
    (["airflow", "db", "downgrade", "--to-version", "3.2.2", "-y"], V3_NEW, 0, "Downgrade complete"),
    (["airflow", "db", "downgrade", "-n", "3.2.2", "--yes"], V3_NEW, 0, "Downgrade complete"),
    (["airflow", "db", "downgrade", "--to-version=3.3.1", "-y"], V3_NEW, 0, "Downgrade complete"),  # 3.3.0's: no change
    (["airflow", "db", "downgrade", "--to-version", "3.2.2", "-y"], V3_OLD, 1,
     "alembic.util.exc.CommandError: Can't locate revision identified by 'd2f4e1b3c5a7'"),
    (["airflow", "db", "downgrade", "--to-version", "2.5.0", "-y"], V3_NEW, 1, "Downgrading to version 2.5.0 is not supported."),
    (["airflow", "db", "downgrade", "--to-version", "3.2.2"], V3_NEW, 1, "EOFError: EOF when reading a line"),
    (["airflow", "db", "downgrade", "-y"], V3_NEW, 1, "Must provide either --to-revision or --to-version."),
])
def test_db_downgrade_walks_back_only_with_the_image_that_migrated(airflow, sim, clock, ecs, command, image, code, last):
    from workflow.airflow_schema import schema_of

    airflow.start(V3_OLD)
    sim.database.head = schema_of(V3_NEW)
    if image == V3_NEW:
        airflow.push(V3_NEW)
    arn = one_off(ecs, command)
    clock.sleep(60)
    exit_code, lines = finished(ecs, arn)
    assert (exit_code, lines[-1].split("] ", 1)[-1].split(" [airflow")[0].strip()) == (code, last)
    moved = code == 0 and "3.2.2" in " ".join(command)
    assert sim.database.head == schema_of(V3_OLD if moved else V3_NEW)


def test_after_a_downgrade_the_earlier_release_starts_again(airflow, sim, clock, ecs):
    from workflow.airflow_schema import schema_of

    airflow.start(V3_OLD)
    v2 = airflow.push(V3_NEW)
    arn = one_off(ecs, ["airflow", "db", "migrate"])
    clock.sleep(60)
    assert finished(ecs, arn)[0] == 0
    rolled_back = force(ecs, f"{CLUSTER}-scheduler")  # latest still names v2: the same deployment runs
    clock.sleep(40)
    assert crashed(ecs, f"{CLUSTER}-scheduler", rolled_back) == []
    arn = one_off(ecs, ["airflow", "db", "downgrade", "--to-version", V3_OLD, "-y"])  # with v2, which holds the scripts
    clock.sleep(60)
    assert finished(ecs, arn)[0] == 0
    assert sim.database.head == schema_of(V3_OLD)
    airflow.push(V3_OLD)  # latest back to v1
    back = force(ecs, f"{CLUSTER}-scheduler")
    clock.sleep(40)
    assert crashed(ecs, f"{CLUSTER}-scheduler", back) == []
    assert v2 not in digests(ecs, f"{CLUSTER}-scheduler", "scheduler")


def test_db_check_migrations_waits_for_the_schema_then_times_out(airflow, sim, clock, ecs):
    from workflow.airflow_schema import schema_of

    airflow.start(V3_OLD)
    matching = one_off(ecs, ["airflow", "db", "check-migrations"])
    airflow.push(V3_NEW)
    behind = one_off(ecs, ["airflow", "db", "check-migrations", "-t", "5"])
    clock.sleep(60)
    assert finished(ecs, matching) == (0, [])
    code, lines = finished(ecs, behind)
    assert code == 1
    assert len([line for line in lines if "Waiting for migrations..." in line]) == 5
    assert lines[-1] == ("TimeoutError: There are still unapplied migrations after 5 seconds. MigrationHead(s) in DB: "
                         "{'1d6611b6ab7c'} | Migration Head(s) in Source Code: {'d2f4e1b3c5a7'}")

    waiting = one_off(ecs, ["airflow", "db", "check-migrations", "--migration-wait-timeout", "30"])
    clock.sleep(9)
    migration = one_off(ecs, ["airflow", "db", "migrate"])  # ends 14 s later; the check sees it and exits 0
    clock.sleep(60)
    assert finished(ecs, migration)[0] == 0
    assert sim.database.head == schema_of(V3_NEW)
    code, lines = finished(ecs, waiting)
    assert code == 0
    assert 10 <= len(lines) < 30


def test_other_one_offs_behave_as_before(airflow, sim, clock, ecs):
    airflow.start(V3_OLD)
    arn = one_off(ecs, ["airflow", "dags", "list"])
    clock.sleep(60)
    assert finished(ecs, arn) == (0, ["Starting: airflow dags list", "Working...", "Done."])


# --- the Airflow 3 cluster as provisioned ----------------------------------------------------------------------

AIRFLOW3 = {"scheduler": "scheduler", "dag-processor": "dag-processor", "api-server": "api-server",
            "triggerer": None, "worker": "worker", "worker-reports": "worker"}


def test_an_airflow_3_cluster_has_its_parts_tagged_by_role_but_one_and_its_api_server_behind_a_load_balancer(sim, clock):
    from workflow_sandbox.provision import provision_cluster, running_counts

    provisioned = provision_cluster(shared_client, counts=running_counts(3), airflow=3)
    clock.sleep(60)
    ecs, elbv2, rds = (shared_client(name) for name in ("ecs", "elbv2", "rds"))
    names = [f"{CLUSTER}-{name}" for name in AIRFLOW3]
    assert sorted(a.rsplit("/", 1)[-1] for a in ecs.list_services(cluster=CLUSTER)["serviceArns"]) == sorted(names)
    services = {s["serviceName"]: s for s in ecs.describe_services(cluster=CLUSTER, services=names, include=["TAGS"])["services"]}
    for name, role in AIRFLOW3.items():
        service = services[f"{CLUSTER}-{name}"]
        assert service.get("tags", []) == ([{"key": "airflow-role", "value": role}] if role else []), name
        assert ecs.list_tags_for_resource(resourceArn=service["serviceArn"])["tags"] == service.get("tags", [])
        assert service["runningCount"] == (3 if name == "worker" else 1), name
    commands = {}
    for name, service in services.items():
        definition = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
        commands[name.removeprefix(f"{CLUSTER}-")] = definition["containerDefinitions"][0]["command"]
    assert commands == {
        "scheduler": ["airflow", "scheduler"], "dag-processor": ["airflow", "dag-processor"],
        "api-server": ["airflow", "api-server", "--port", "8080"], "triggerer": ["airflow", "triggerer"],
        "worker": ["airflow", "celery", "worker", "--queues", "default"],
        "worker-reports": ["airflow", "celery", "worker", "--queues", "reports"]}

    (balancer,) = services[f"{CLUSTER}-api-server"]["loadBalancers"]
    assert (balancer["containerName"], balancer["containerPort"]) == ("api-server", 8080)
    (group,) = elbv2.describe_target_groups(TargetGroupArns=[balancer["targetGroupArn"]])["TargetGroups"]
    assert (group["Port"], group["TargetType"], group["HealthCheckPath"]) == (8080, "ip", "/api/v2/monitor/health")
    (load_balancer_arn,) = group["LoadBalancerArns"]
    (load_balancer,) = elbv2.describe_load_balancers(LoadBalancerArns=[load_balancer_arn])["LoadBalancers"]
    assert (load_balancer["Type"], load_balancer["Scheme"]) == ("application", "internal")
    (listener,) = elbv2.describe_listeners(LoadBalancerArn=load_balancer_arn)["Listeners"]
    assert (listener["Protocol"], listener["Port"]) == ("HTTP", 80)
    assert listener["DefaultActions"] == [{"Type": "forward", "TargetGroupArn": group["TargetGroupArn"]}]
    assert (provisioned.load_balancer, provisioned.target_group, provisioned.listener) == (
        load_balancer_arn, group["TargetGroupArn"], listener["ListenerArn"])

    (database,) = rds.describe_db_instances(DBInstanceIdentifier=f"{CLUSTER}-db")["DBInstances"]
    assert (database["Engine"], provisioned.db_instance) == ("postgres", f"{CLUSTER}-db")


def test_the_seed_shape_runs_airflows_commands_in_its_three_services(cluster, ecs):
    commands = {}
    for name in (SCHEDULER, WORKER, WEB):
        definition = ecs.describe_task_definition(taskDefinition=describe(ecs, name)["taskDefinition"])["taskDefinition"]
        commands[name] = {c["name"]: c.get("command") for c in definition["containerDefinitions"]}
    assert commands == {SCHEDULER: {"scheduler": ["airflow", "scheduler"]},
                        WORKER: {"celery-worker": ["airflow", "celery", "worker"], "log-router": None},
                        WEB: {"webserver": ["airflow", "webserver"]}}
    assert ecs.list_tags_for_resource(resourceArn=describe(ecs, SCHEDULER)["serviceArn"])["tags"] == []
    assert shared_client("rds").describe_db_instances()["DBInstances"] == []


def test_an_rds_snapshot_is_creating_for_a_while_then_available(sim, clock):
    from workflow_sandbox.provision import provision_cluster

    provision_cluster(shared_client, airflow=3)
    rds = shared_client("rds")
    sim.db_snapshot_seconds = 10
    created = rds.create_db_snapshot(DBInstanceIdentifier=f"{CLUSTER}-db", DBSnapshotIdentifier="before-migrate")
    assert (created["DBSnapshot"]["Status"], created["DBSnapshot"]["PercentProgress"]) == ("creating", 0)
    clock.sleep(4)
    (snapshot,) = rds.describe_db_snapshots(DBSnapshotIdentifier="before-migrate")["DBSnapshots"]
    assert (snapshot["Status"], snapshot["PercentProgress"]) == ("creating", 40)
    assert rds.describe_db_instances(DBInstanceIdentifier=f"{CLUSTER}-db")["DBInstances"][0]["DBInstanceStatus"] == "backing-up"
    clock.sleep(6)
    rds.get_waiter("db_snapshot_available").wait(DBSnapshotIdentifier="before-migrate", WaiterConfig={"Delay": 0})
    (snapshot,) = rds.describe_db_snapshots(DBInstanceIdentifier=f"{CLUSTER}-db", SnapshotType="manual")["DBSnapshots"]
    assert (snapshot["Status"], snapshot["PercentProgress"]) == ("available", 100)
    assert rds.describe_db_instances(DBInstanceIdentifier=f"{CLUSTER}-db")["DBInstances"][0]["DBInstanceStatus"] == "available"


# --- Airflow's facts, as its source states them ---------------------------------------------------------------

@pytest.mark.parametrize("version, head", [
    ("3.3.2", "d2f4e1b3c5a7"), ("3.3.0", "d2f4e1b3c5a7"), ("3.2.2", "1d6611b6ab7c"), ("3.0.0", "29ce7909c52b"),
    ("3.0.2", "29ce7909c52b"), ("2.11.0", "5f2621c13b39"), ("2.10.5", "5f2621c13b39"), ("2.10.2", "22ed7efa9da2"),
    ("2.9.3", "686269002441"), ("2.6.2", "4bc4d934e2bc"),
    ("3.3.3", None), ("3.4.0", None),  # newer than the table's source (3.3.2): it may migrate, unknown here
    ("2.5.0", None), ("3.3.0rc1", None), ("latest", None), ("3.0", "5f2621c13b39"),  # (3, 0) < (3, 0, 0), as in Airflow
])
def test_a_release_has_the_schema_of_the_nearest_listed_release_at_or_below_it(version, head):
    from workflow.airflow_schema import schema_of

    assert schema_of(version) == head


def test_versions_compare_as_release_numbers_and_images_say_theirs():
    from workflow.airflow_schema import compare, same_schema, version_from_config

    assert (compare("3.10.0", "3.9.1"), compare("2.11.0", "2.11.0"), compare("2.10.5", "3.0.0")) == (1, 0, -1)
    with pytest.raises(ValueError):
        compare("3.3.0rc1", "3.3.0")
    assert (same_schema("2.10.5", "2.11.0"), same_schema("3.2.2", "3.3.2"), same_schema("2.5.0", "3.3.2")) == (
        True, False, None)
    official = {"config": {"Env": ["PATH=/usr/bin", "AIRFLOW_VERSION=3.3.2"],
                           "Labels": {"org.apache.airflow.version": "3.3.1"}}}
    assert version_from_config(official) == "3.3.2"  # the environment first
    assert version_from_config({"config": {"Labels": {"org.apache.airflow.version": "2.11.0"}}}) == "2.11.0"
    assert version_from_config({"config": {"Env": ["AIRFLOW_VERSION="]}}) is None
    assert version_from_config({"architecture": "amd64"}) is version_from_config(None) is None


@pytest.mark.parametrize("command, version, checks", [
    (["airflow", "scheduler"], "3.3.2", True),
    (["airflow", "dag-processor"], "3.3.2", True),
    (["airflow", "api-server", "--port", "8080"], "3.3.2", True),
    (["airflow", "triggerer"], "2.11.0", True),
    (["airflow", "webserver"], "2.11.0", True),
    (["scheduler"], "3.3.2", True),  # the official image's entrypoint runs it as `airflow scheduler`
    (["bash", "-c", "exec airflow triggerer --capacity 100"], "3.3.2", True),
    (["/home/airflow/.local/bin/airflow", "scheduler"], "3.3.2", True),
    (["airflow", "celery", "worker", "--queues", "default"], "3.3.2", False),  # check_db=not AIRFLOW_V_3_0_PLUS
    (["airflow", "celery", "worker"], "2.11.0", True),
    (["airflow", "celery", "flower"], "2.11.0", False),
    (["airflow", "db", "migrate"], "3.3.2", False),
    (["fluent-bit"], "3.3.2", False),
    (None, "3.3.2", False),
])
def test_which_commands_check_migrations_at_start(command, version, checks):
    from workflow.airflow_schema import checks_migrations

    assert checks_migrations(command, version) is checks


def test_the_refusal_reads_as_each_major_version_writes_it():
    from workflow.airflow_schema import migration_required, says_migration_required

    assert migration_required("3.2.2") == ("Database migration required. Please run `airflow db migrate`. "
                                           "Make sure the command is run using Airflow version 3.2.2.")
    assert migration_required("3.3.2", initialised=False).startswith("Database migration required.")
    assert migration_required("2.11.0") == ("ERROR: You need to upgrade the database. Please run `airflow db upgrade`. "
                                            "Make sure the command is run using Airflow version 2.11.0.")
    assert migration_required("2.11.0", initialised=False).startswith(
        "ERROR: You need to initialize the database. Please run `airflow db init`.")
    line = "2026-01-01T00:00:01.000000Z [error    ] " + migration_required("3.3.2") + " [airflow.utils.db] loc=db.py:997"
    assert says_migration_required(line)
    assert not says_migration_required("ERROR: cannot connect to broker")


# --- moto's version, and the sandbox --------------------------------------------------------------------------

def test_the_patches_refuse_another_moto_and_change_nothing(clock, monkeypatch):
    import moto
    from moto.ecs import models

    from workflow_sandbox.hooks import MOTO_VERSION, MotoPatches, MotoVersionError
    from workflow_sandbox.simulator import Simulation

    MotoPatches.check(MOTO_VERSION)
    original = models.EC2ContainerServiceBackend.describe_services
    monkeypatch.setattr(moto, "__version__", "5.3.0")
    with pytest.raises(MotoVersionError) as refused:
        with MotoPatches(Simulation(clock)):
            pytest.fail("entered")
    assert str(refused.value) == (
        "the simulator patches moto's internals as moto 5.2.5 has them, and this environment has moto 5.3.0; install "
        "the pinned version (`pipenv install --dev` in a checkout, or `pip install '.[sandbox]'` there)")
    assert models.EC2ContainerServiceBackend.describe_services is original


def test_the_sandbox_refuses_to_start_on_another_moto(run, monkeypatch):
    import moto

    monkeypatch.setattr(moto, "__version__", "5.3.0")
    result = run("sandbox")
    assert result.exit_code == 2
    assert "this environment has moto 5.3.0; install the pinned version" in result.stderr
    assert "export AWS_ENDPOINT_URL" not in result.stdout


def test_the_sandbox_command_passes_the_airflow_options_on(run, monkeypatch):
    recorded = recording_sandbox(monkeypatch)
    result = run("sandbox")
    assert result.exit_code == 0, result.stderr
    config = recorded[0]
    assert recorded[1:] == ["started", "stopped"]
    assert (config.airflow, config.versions(), config.deprovision_seconds) == (3, ("3.2.2", "3.3.2"), 3.0)
    assert config.timings().drain_by_service == {f"{CLUSTER}-api-server": 3.0}
    assert ("sandbox: Airflow 3 cluster airflow-prod: airflow-prod-scheduler, airflow-prod-dag-processor, "
            "airflow-prod-api-server (behind a load balancer), airflow-prod-triggerer (no airflow-role tag), "
            "airflow-prod-worker (queue default), airflow-prod-worker-reports (queue reports)\n") in result.stderr
    assert ("sandbox: services run v1 sha256:1 (airflow-prod:latest, Airflow 3.2.2); airflow-stage:latest holds v2 "
            "sha256:2 (Airflow 3.3.2)\n") in result.stderr
    assert ("sandbox: database airflow-prod-db (RDS, postgres) is at Airflow 3.2.2's schema 1d6611b6ab7c; v2 needs "
            "schema d2f4e1b3c5a7: `airflow db migrate` moves it\n") in result.stderr

    monkeypatch.setenv("WORKFLOW_SANDBOX_AIRFLOW", "2")
    result = run("sandbox", "--task-deprovision-seconds", "0", "--airflow-versions", "2.9.3,2.10.5",
                 "--db-snapshot-seconds", "30")
    assert result.exit_code == 0, result.stderr
    config = recorded[3]
    assert (config.airflow, config.versions(), config.deprovision_seconds, config.db_snapshot_seconds) == (
        2, ("2.9.3", "2.10.5"), 0.0, 30.0)
    assert config.service("web") == f"{CLUSTER}-web"
    assert config.timings().deprovision == 0
    assert "sandbox: Airflow 2 cluster airflow-prod: airflow-prod-scheduler, airflow-prod-worker, airflow-prod-web\n" in (
        result.stderr)

    for bad in ("2.5.0,3.3.2", "3.3.2", "3.3.2,"):
        result = run("sandbox", "--airflow-versions", bad)
        assert result.exit_code == 2, bad
        assert "--airflow-versions" in result.stderr, bad
    assert recorded[4:] == ["started", "stopped"]  # the bad values built no sandbox


@pytest.mark.realtime
def test_the_sandbox_runs_an_airflow_3_cluster_on_v1s_schema_with_versioned_releases():
    import boto3
    from moto.moto_api._internal.models import moto_api_backend

    from workflow.airflow_schema import schema_of
    from workflow_sandbox.server import Sandbox, SandboxConfig

    moto_api_backend.reset()
    box = Sandbox(SandboxConfig(task_start_seconds=0.15, task_stop_seconds=0.1, web_drain_seconds=0.1,
                                one_off_seconds=0.15))
    try:
        box.start()
        ecs = boto3.client("ecs", endpoint_url=box.endpoint, region_name=REGION, aws_access_key_id="testing",
                           aws_secret_access_key="testing")
        names = sorted(a.rsplit("/", 1)[-1] for a in ecs.list_services(cluster=CLUSTER)["serviceArns"])
        assert names == sorted(f"{CLUSTER}-{name}" for name in AIRFLOW3)
        sim = box.simulation
        assert sim.database.head == schema_of("3.2.2")
        assert sim.timings.deprovision == pytest.approx(0.15)
        assert sim.image_config is not None
        from workflow.airflow_schema import version_from_config

        assert [version_from_config(sim.image_config(box.releases[v])) for v in ("v1", "v2")] == ["3.2.2", "3.3.2"]
        with sim.lock:
            sim.advance()
            scheduler = next(iter(sim.service(f"{CLUSTER}-scheduler").current.values()))
            assert (scheduler.sim_status, sim.image_version(scheduler, "scheduler")) == ("RUNNING", "3.2.2")
        rds = boto3.client("rds", endpoint_url=box.endpoint, region_name=REGION, aws_access_key_id="testing",
                           aws_secret_access_key="testing")
        assert rds.describe_db_instances(DBInstanceIdentifier=f"{CLUSTER}-db")["DBInstances"][0]["Engine"] == "postgres"
    finally:
        box.stop()
        moto_api_backend.reset()


def test_list_tasks_takes_started_by_only_as_its_one_filter(cluster, ecs):
    """ListTasks' reference: "When you specify startedBy as the filter, it must be the only filter that you use."
    moto filtered by all of them, so a call real ECS refuses passed here."""
    with pytest.raises(ecs.exceptions.InvalidParameterException):
        ecs.list_tasks(cluster=CLUSTER, startedBy="workflow", desiredStatus="RUNNING")
    assert ecs.list_tasks(cluster=CLUSTER, startedBy="workflow")["taskArns"] == []
