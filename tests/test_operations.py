"""Each command against the simulated cluster: the state it leaves, the invariants it keeps."""

import json

import pytest
from conftest import (
    CLUSTER,
    CLUSTER_ARN,
    NAMES,
    REGION,
    SCHEDULER,
    WEB,
    WORKER,
    invoke_interrupted,
    invoke_recording,
    new_client,
    shared_client,
)
from helpers import cluster_arn, describe, describe_services, primary_id, resume_of, tasks


@pytest.fixture
def one_scheduler_at_most(sim):
    """Fails the test the moment two scheduler tasks are alive at once, at any simulated instant."""
    worst = []

    def check(simulation):
        alive = [t for t in simulation.service(SCHEDULER).tasks if t.is_live]
        worst.append(len(alive))
        assert len(alive) <= 1, "two scheduler tasks alive at once"

    sim.observers.append(check)
    yield worst


def test_redeploy_rolls_web_and_worker_and_restarts_one_scheduler(cluster, run, ecs, clock, one_scheduler_at_most):
    before = describe_services(ecs, SCHEDULER, WORKER, WEB)
    result = run(*NAMES, "redeploy", "--yes")
    assert result.exit_code == 0, result.output
    after = describe_services(ecs, SCHEDULER, WORKER, WEB)
    for name in (SCHEDULER, WORKER, WEB):
        assert primary_id(after[name]) != primary_id(before[name])
        assert len(after[name]["deployments"]) == 1
        assert after[name]["deployments"][0]["rolloutState"] == "COMPLETED"
    assert after[WORKER]["desiredCount"] == after[WORKER]["runningCount"] == 3
    assert after[SCHEDULER]["runningCount"] == 1
    assert max(one_scheduler_at_most) == 1
    assert "cluster airflow-prod redeployed" in result.stdout
    assert "==> stop scheduler" in result.stderr
    assert "<== redeploy" in result.stderr


def test_redeploy_keeps_a_worker_count_set_by_autoscaling(cluster, run, ecs, clock):
    ecs.update_service(cluster=CLUSTER, service=WORKER, desiredCount=5)
    clock.sleep(30)
    assert run(*NAMES, "redeploy", "--yes").exit_code == 0
    worker = describe(ecs, WORKER)
    assert worker["desiredCount"] == worker["runningCount"] == 5


def test_redeploy_returns_within_one_poll_of_the_cluster_settling(cluster, run, ecs, clock, sim):
    result = run(*NAMES, "--poll-interval", "1", "redeploy", "--yes")
    assert result.exit_code == 0
    # Timings in conftest: stop 3+2 s; roll 2+5 start, 3+2 drain; start 2+5: settled by about 24 s,
    # plus the 30 s stability window after the roll and after the start.
    assert 24 + 60 <= clock.now() - 60 <= 24 + 60 + 2


def test_failed_deployment_fails_fast_with_the_reason_and_how_to_resume(cluster, run, ecs, clock, sim):
    sim.fail_deployments(WORKER, "pull")
    started = clock.now()
    result = run(*NAMES, "redeploy", "--yes")
    assert result.exit_code == 1
    assert clock.now() - started < 30
    assert " worker: task" in result.stderr
    assert "CannotPullContainerError" in result.stderr
    assert "cluster state: the scheduler is stopped" in result.stderr
    assert resume_of(result.stderr, "once the cause is fixed, resume with") == [
        "workflow", "--cluster", CLUSTER_ARN, "--region", REGION, "redeploy", "--yes"]
    assert "Traceback" not in result.output
    assert describe(ecs, SCHEDULER)["desiredCount"] == 0
    assert describe(ecs, WORKER)["runningCount"] == 3  # the old workers still serve

    sim.fail_deployments(WORKER, None)  # the image is fixed; the same command converges
    again = run(*NAMES, "redeploy", "--yes")
    assert again.exit_code == 0, again.stderr
    services = describe_services(ecs, SCHEDULER, WORKER, WEB)
    assert services[SCHEDULER]["runningCount"] == 1
    assert [d["rolloutState"] for d in services[WORKER]["deployments"]] == ["COMPLETED"]


def test_rolled_back_deployment_is_a_failure_not_a_success(sim, clock, run, ecs):
    from workflow_sandbox.provision import DEFAULT_COUNTS, provision_cluster

    provision_cluster(
        shared_client, counts=DEFAULT_COUNTS,
        deployment_configuration={"maximumPercent": 200, "minimumHealthyPercent": 100,
                                  "deploymentCircuitBreaker": {"enable": True, "rollback": True}},
    )
    clock.sleep(60)
    sim.fail_deployments(WEB, "pull")
    result = run(*NAMES, "redeploy", "--yes")
    assert result.exit_code == 1
    assert WEB in result.stderr
    assert "failed" in result.stderr


def test_hanging_deployment_times_out_saying_what_is_pending(cluster, run, sim):
    sim.fail_deployments(WEB, "hang")
    result = run(*NAMES, "--timeout", "60", "redeploy", "--yes")
    assert result.exit_code == 3
    assert "timed out after 60s" in result.stderr
    assert f"{WEB} deploy " in result.stderr
    assert "0/1 running, 1 pending" in result.stderr


def _mid_stop(sim):
    return sim.service(SCHEDULER).model.desired_count == 0 and sim.alive(SCHEDULER)


def _mid_roll(sim):
    return len(sim.service(WEB).deployments) == 2


def _mid_start(sim):
    return sim.service(SCHEDULER).model.desired_count == 1 and len(sim.service(WEB).deployments) == 1 and any(
        t.sim_status != "RUNNING" for t in sim.alive(SCHEDULER)
    )


@pytest.mark.parametrize("moment", [_mid_stop, _mid_roll, _mid_start])
def test_rerun_after_ctrl_c_at_each_step_converges(cluster, ecs, clock, sim, moment, one_scheduler_at_most):
    from click.testing import CliRunner

    from workflow.app import Runtime
    from workflow.cli import main

    def sleep(seconds):
        if moment(sim):
            raise KeyboardInterrupt
        clock.sleep(seconds)

    runner = CliRunner()
    result = runner.invoke(main, [*NAMES, "redeploy", "--yes"], obj=Runtime(clock=clock.now, sleep=sleep))
    assert result.exit_code == 130, result.output
    assert "interrupted" in result.stderr
    assert "cluster state: the scheduler is" in result.stderr
    # Once the scheduler's start was requested, only that start is left to resume (test below); a whole redeploy
    # run again converges too.
    resumed = "start-scheduler" if moment is _mid_start else "redeploy"
    assert resume_of(result.stderr)[:6] == ["workflow", "--cluster", CLUSTER_ARN, "--region", REGION, resumed]
    again = runner.invoke(main, [*NAMES, "redeploy", "--yes"], obj=Runtime(clock=clock.now, sleep=clock.sleep))
    assert again.exit_code == 0, again.output
    services = describe_services(ecs, SCHEDULER, WORKER, WEB)
    assert services[SCHEDULER]["runningCount"] == 1
    assert services[WORKER]["runningCount"] == 3
    assert all(len(s["deployments"]) == 1 for s in services.values())


def test_stop_scheduler_waits_until_every_task_is_stopped(cluster, run, ecs, sim):
    result = run(*NAMES, "stop-scheduler", "--yes")
    assert result.exit_code == 0, result.output
    assert sim.alive(SCHEDULER) == []
    assert "DEACTIVATING" in result.stderr
    assert "STOPPING" in result.stderr
    assert describe(ecs, SCHEDULER)["desiredCount"] == 0


def test_stop_scheduler_when_already_stopped_changes_nothing(empty_cluster, run, ecs):
    before = primary_id(describe(ecs, SCHEDULER))
    result = run(*NAMES, "stop-scheduler", "--yes")
    assert result.exit_code == 0, result.output
    assert "already stopped" in result.stdout
    assert primary_id(describe(ecs, SCHEDULER)) == before


def test_stop_scheduler_no_wait_returns_while_tasks_still_stop(cluster, run, sim):
    result = run(*NAMES, "stop-scheduler", "--yes", "--no-wait")
    assert result.exit_code == 0, result.output
    assert "is stopping" in result.stdout
    assert len(sim.alive(SCHEDULER)) == 1


def test_start_scheduler_starts_exactly_one(empty_cluster, run, ecs, sim, one_scheduler_at_most):
    result = run(*NAMES, "start-scheduler")
    assert result.exit_code == 0, result.output
    scheduler = describe(ecs, SCHEDULER)
    assert scheduler["desiredCount"] == scheduler["runningCount"] == 1
    assert len(sim.alive(SCHEDULER)) == 1


def test_start_scheduler_when_running_changes_nothing(cluster, run, ecs):
    before = describe(ecs, SCHEDULER)
    result = run(*NAMES, "start-scheduler")
    assert result.exit_code == 0, result.output
    assert "already running" in result.stdout
    assert primary_id(describe(ecs, SCHEDULER)) == primary_id(before)


def test_start_scheduler_waits_for_a_stopping_scheduler_first(cluster, run, ecs, sim, one_scheduler_at_most):
    assert run(*NAMES, "stop-scheduler", "--yes", "--no-wait").exit_code == 0
    result = run(*NAMES, "start-scheduler")
    assert result.exit_code == 0, result.output
    assert max(one_scheduler_at_most) == 1
    assert len(sim.alive(SCHEDULER)) == 1


def test_start_scheduler_refuses_a_service_that_wants_two(cluster, run, ecs):
    ecs.update_service(cluster=CLUSTER, service=SCHEDULER, desiredCount=2)
    result = run(*NAMES, "start-scheduler")
    assert result.exit_code == 1, result.output
    assert "only one scheduler may run" in result.stderr


@pytest.mark.parametrize("command", ["stop-scheduler", "start-scheduler", "redeploy"])
def test_a_scheduler_flag_naming_the_worker_changes_nothing(cluster, run, ecs, command):
    """`--scheduler airflow-prod-worker stop-scheduler` scaled the worker fleet to zero, and a start-scheduler after
    it ran the worker's count of schedulers: the name says it is the worker, and the flag cannot overrule it."""
    before = {name: (s["desiredCount"], primary_id(s)) for name, s in describe_services(ecs, SCHEDULER, WORKER).items()}
    result = run("--cluster", CLUSTER, "--scheduler", WORKER, command, "--yes")
    assert result.exit_code == 2, result.output
    assert f"{WORKER} was named as the scheduler, but its name makes it the worker; nothing was changed: the " \
           f"scheduler service is {SCHEDULER}" in " ".join(result.stderr.split())
    after = {name: (s["desiredCount"], primary_id(s)) for name, s in describe_services(ecs, SCHEDULER, WORKER).items()}
    assert after == before


def test_the_wait_before_the_scheduler_starts_says_the_start_comes_next(cluster, run):
    """Its heartbeat said "then nothing: this is the last step" while the scheduler's start was still to come."""
    result = run(*NAMES, "--stability-window", "40", "redeploy", "--yes")
    assert result.exit_code == 0, result.output
    lines = [" ".join(line.split()) for line in result.stderr.splitlines()]
    waiting = [line for line in lines if "waiting for worker deploy" in line]
    assert waiting and all("then start scheduler (each: new tasks start, then 40s stable)" in line for line in waiting)
    assert all("this is the last step" not in line for line in waiting)


def test_a_redeploy_stopped_as_the_scheduler_starts_resumes_with_that_start_alone(cluster, run, ecs, clock):
    """Its resume was the whole redeploy: pasted, it stopped the scheduler just started and rolled web and worker
    again, doubling the scheduler's downtime."""
    seen = {"stopped": False}

    def starting() -> bool:
        desired = describe(ecs, SCHEDULER)["desiredCount"]
        seen["stopped"] = seen["stopped"] or desired == 0
        return seen["stopped"] and desired == 1

    first = invoke_interrupted(clock, starting, *NAMES, "redeploy", "--yes")
    assert first.exit_code == 130, first.output
    assert "cluster state: the scheduler is starting" in first.stderr
    resume = resume_of(first.stderr)
    assert resume[-1] == "start-scheduler", first.stderr
    rolled = {name: primary_id(s) for name, s in describe_services(ecs, SCHEDULER, WEB, WORKER).items()}
    again = run(*resume[resume.index("--cluster"):])
    assert again.exit_code == 0, again.output
    assert {name: primary_id(s) for name, s in describe_services(ecs, SCHEDULER, WEB, WORKER).items()} == rolled
    assert describe(ecs, SCHEDULER)["runningCount"] == 1


def test_a_migrating_redeploy_waits_for_an_earlier_migration_before_it_stops_the_scheduler(cluster, run):
    """It stopped the scheduler and drained first, then waited: the wait added to the scheduler's downtime."""
    assert run(*NAMES, "initialize", "--yes", "--no-wait").exit_code == 0
    result = run(*NAMES, "redeploy", "--migrate", "--yes")
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    waited = next(i for i, line in enumerate(lines) if "an earlier command's `airflow db migrate`, still runs" in line)
    stopped = next(i for i, line in enumerate(lines) if "==> stop scheduler" in line)
    assert waited < stopped


def test_initialize_runs_the_deployed_worker_definition_with_the_command(empty_cluster, run, ecs, clock):
    # A newer revision exists but is not deployed: initialize must use the deployed one.
    worker = describe(ecs, WORKER)
    newer = ecs.describe_task_definition(taskDefinition=worker["taskDefinition"])["taskDefinition"]
    ecs.register_task_definition(family=newer["family"], containerDefinitions=newer["containerDefinitions"],
                                 networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="1024", memory="2048")
    result = run(*NAMES, "initialize", "--yes")
    assert result.exit_code == 0, result.output
    (task,) = tasks(ecs, desired="STOPPED")
    assert task["taskDefinitionArn"] == worker["taskDefinition"]
    assert task["overrides"]["containerOverrides"] == [{"name": "celery-worker", "command": ["airflow", "db", "migrate"]}]
    assert task["launchType"] == "FARGATE"
    assert task["platformVersion"] == "1.4.0"
    subnet = {d["value"] for a in task["attachments"] for d in a["details"] if d["name"] == "subnetId"}
    assert subnet <= set(worker["networkConfiguration"]["awsvpcConfiguration"]["subnets"])
    assert "succeeded" in result.stdout
    assert "celery-worker" in result.stdout


def test_initialize_with_another_command(empty_cluster, run, ecs):
    assert run(*NAMES, "initialize", "--yes", "--command", "initdb").exit_code == 0
    (task,) = tasks(ecs, desired="STOPPED")
    assert task["overrides"]["containerOverrides"][0]["command"] == ["initdb"]


def test_initialize_fails_when_an_essential_container_exits_non_zero(empty_cluster, run, sim):
    sim.one_off_exit_codes = {"celery-worker": 3}
    result = run(*NAMES, "initialize", "--yes")
    assert result.exit_code == 1
    assert "essential container celery-worker" in result.stderr
    assert "exited with code 3" in result.stderr
    assert "celery-worker" in result.stdout  # the container table still shows


def test_a_failing_sidecar_does_not_fail_initialize(empty_cluster, run, sim):
    sim.one_off_exit_codes = {"log-router": 1}
    assert run(*NAMES, "initialize", "--yes").exit_code == 0


def test_initialize_fails_when_the_task_cannot_start(empty_cluster, run, sim):
    sim.one_off_failure = "pull"
    result = run(*NAMES, "initialize", "--yes")
    assert result.exit_code == 1, result.output
    assert "failed to start: CannotPullContainerError" in result.stderr


def test_initialize_no_wait_prints_the_task_and_returns(empty_cluster, run, ecs):
    result = run(*NAMES, "initialize", "--yes", "--no-wait", "--output", "json")
    assert result.exit_code == 0
    assert '"arn": "arn:aws:ecs:' in result.stdout
    assert ecs.list_tasks(cluster=CLUSTER)["taskArns"]


def test_initialize_rejects_an_unknown_container(empty_cluster, run):
    result = run(*NAMES, "initialize", "--yes", "--container", "nope")
    assert result.exit_code == 2, result.output
    assert "has no container nope" in result.stderr


def test_initialize_asks_for_confirmation_naming_the_cluster(empty_cluster, run, ecs):
    result = run(*NAMES, "initialize", input="n\n")
    assert result.exit_code == 1, result.output
    assert CLUSTER in result.stderr
    assert ecs.list_tasks(cluster=CLUSTER)["taskArns"] == []


@pytest.mark.parametrize(
    "fixture, args, settles_after",
    [
        ("empty_cluster", ["start-scheduler"], 2 + 5 + 30),  # provision + pull + stability window
        ("cluster", ["stop-scheduler", "--yes"], 3 + 2),  # drain + stop
    ],
)
@pytest.mark.parametrize("interval", [1, 3])
def test_commands_return_within_one_poll_of_the_cluster_settling(request, run, clock, fixture, args, settles_after,
                                                                interval):
    request.getfixturevalue(fixture)
    began = clock.now()
    assert run(*NAMES, "--poll-interval", str(interval), *args).exit_code == 0
    assert settles_after <= clock.now() - began <= settles_after + interval


@pytest.mark.parametrize("window, polls", [(30, [0, 5, 10, 15, 20, 25, 30]), (12, [0, 5, 10, 12]), (0.3, [0, 0.3])])
def test_inside_the_stability_window_services_are_described_every_5s_and_at_its_end(empty_cluster, clock, window,
                                                                                     polls):
    from workflow.deployments import WINDOW_POLL_SECONDS

    began = clock.now()
    result, calls = invoke_recording(clock, *NAMES, "--stability-window", str(window), "start-scheduler")
    assert result.exit_code == 0, result.output
    # Timings in conftest: the scheduler runs 2 + 5 s after the start, then the window; at 1 s polls a 30 s window
    # took 30 DescribeServices.
    described = [call.at - began - 7 for call in calls if call.name == "DescribeServices" and call.at - began >= 7]
    assert described == pytest.approx(polls)
    assert WINDOW_POLL_SECONDS == 5
    assert clock.now() - began == pytest.approx(7 + window)
    # Success rests on a look at the stopped tasks at the window's end (see test_real_ecs.py); then the lease goes.
    assert [call.name for call in calls][-3:] == ["DescribeServices", "ListTasks", "UntagResource"]


def test_a_deployment_whose_window_has_ended_is_not_looked_at_again_at_every_poll(cluster, clock):
    """Web's window ends at 17 s with a last look at its stopped tasks; from then on, while the workers' window
    and the new scheduler's start run, they are listed at the 10 s rescan (27 s), not at every poll."""
    began = clock.now()
    result, calls = invoke_recording(clock, *NAMES, "--stability-window", "5", "redeploy", "--yes")
    assert result.exit_code == 0, result.output
    web = [call.at - began for call in calls if call.name == "ListTasks" and call.params.get("serviceName") == WEB
           and call.params.get("desiredStatus") == "STOPPED"]
    assert web == [0, 5, 12, 17, 27]


def test_initialize_follows_the_task_log_and_quotes_its_tail_on_failure(empty_cluster, run, sim):
    assert "celery-worker | Starting: airflow db migrate" in run(*NAMES, "initialize", "--yes").stderr
    sim.one_off_exit_code = 3
    result = run(*NAMES, "initialize", "--yes")
    assert result.exit_code == 1
    assert "last log lines of celery-worker:" in result.stderr
    assert "ERROR: failed with exit code 3" in result.stderr.split("last log lines", 1)[1]


def test_initialize_without_permission_to_read_logs_still_succeeds(empty_cluster, clock):
    from botocore.stub import Stubber
    from click.testing import CliRunner

    from workflow.app import Runtime
    from workflow.cli import main

    logs = new_client("logs")
    stubber = Stubber(logs)
    stubber.add_client_error("get_log_events", "AccessDeniedException", "not authorized to perform logs:GetLogEvents")
    stubber.activate()
    clients = lambda config: lambda name: logs if name == "logs" else shared_client(name)  # noqa: E731
    runtime = Runtime(clock=clock.now, sleep=clock.sleep, clients=clients)
    result = CliRunner().invoke(main, [*NAMES, "initialize", "--yes"], obj=runtime)
    assert result.exit_code == 0, result.output
    assert "not following celery-worker's logs: access denied to GetLogEvents" in result.stderr


def test_web_draining_behind_the_load_balancer_never_holds_the_scheduler_back(cluster, run, sim, clock,
                                                                              one_scheduler_at_most):
    def redeploy_with_drain(seconds):
        sim.timings.drain_by_service[WEB] = seconds
        old_web = set(t.task_arn for t in sim.alive(WEB))
        moments = {}

        def watch(simulation):
            now = clock.now()
            scheduler = simulation.service(SCHEDULER)
            if "scheduler" not in moments and any(t.sim_status == "RUNNING" for t in scheduler.live(scheduler.primary)):
                moments["scheduler"] = now
            if "web" not in moments and all(
                    t.sim_status == "STOPPED" for t in simulation.service(WEB).tasks if t.task_arn in old_web):
                moments["web"] = now

        sim.observers.append(watch)
        began = clock.now()
        result = run(*NAMES, "--poll-interval", "1", "--stability-window", "5", "redeploy", "--yes")
        sim.observers.remove(watch)
        assert result.exit_code == 0, result.output
        return clock.now() - began, moments, result

    short, _, _ = redeploy_with_drain(1)
    long, moments, result = redeploy_with_drain(40)  # stricter than the 20 s the acceptance names
    assert long <= short * 1.25
    assert moments["scheduler"] < moments.get("web", float("inf"))  # the scheduler ran before web's old task stopped
    assert "old web task(s) draining behind the load balancer" in result.stderr
    assert max(one_scheduler_at_most) == 1
    assert describe(ecs_client(), SCHEDULER)["runningCount"] == 1


def test_wait_for_drain_waits_for_web_old_tasks(cluster, run, sim):
    sim.timings.drain_by_service[WEB] = 20
    result = run(*NAMES, "redeploy", "--yes", "--wait-for-drain")
    assert result.exit_code == 0, result.output
    assert "draining behind the load balancer" not in result.stderr
    assert all(t.sim_status == "STOPPED" for t in sim.service(WEB).tasks if t.deployment is not sim.service(WEB).primary)


def test_redeploy_says_how_long_the_scheduler_was_down(cluster, run):
    result = run(*NAMES, "redeploy", "--yes", "--output", "json")
    import json

    outcome = json.loads(result.stdout)
    assert outcome["scheduler_downtime"] > 0
    assert "the scheduler was down for" in outcome["summary"]


def ecs_client():
    return shared_client("ecs")


def test_redeploy_migrate_runs_one_migration_between_the_drained_scheduler_and_the_rolls(cluster, run, sim, clock,
                                                                                          ecs, one_scheduler_at_most):
    order = []

    def watch(simulation):
        scheduler = [t for t in simulation.service(SCHEDULER).tasks if t.is_live]
        one_offs = [t for t in simulation.tasks if t.service is None]
        if not order and not scheduler:
            order.append("scheduler drained")
        if one_offs and "migration" not in order:
            order.append("migration")
        if len(simulation.service(WORKER).deployments) > 1 and "roll" not in order:
            order.append("roll")
        if len(order) >= 3 and any(t.sim_status == "RUNNING" for t in scheduler) and order[-1] != "scheduler":
            order.append("scheduler")

    sim.observers.append(watch)
    result = run(*NAMES, "redeploy", "--yes", "--migrate")
    assert result.exit_code == 0, result.output
    assert order == ["scheduler drained", "migration", "roll", "scheduler"]
    one_offs = [t for t in sim.tasks if t.service is None]
    assert len(one_offs) == 1
    assert one_offs[0].overrides["containerOverrides"][0]["command"] == ["airflow", "db", "migrate"]
    assert max(one_scheduler_at_most) == 1
    assert describe(ecs, WORKER)["desiredCount"] == 3


def test_a_failed_migration_stops_the_redeploy_before_web_and_worker(cluster, run, sim, ecs):
    before = {name: primary_id(describe(ecs, name)) for name in (WEB, WORKER)}
    sim.one_off_exit_code = 1
    result = run(*NAMES, "redeploy", "--yes", "--migrate", "--migrate-command", "airflow db migrate -r heads")
    assert result.exit_code == 1, result.output
    assert "exited with code 1" in result.stderr
    assert "cluster state: the scheduler is stopped; the migration failed; web and worker are untouched" \
        in result.stderr
    assert resume_of(result.stderr)[-5:] == ["redeploy", "--yes", "--migrate", "--migrate-command",
                                              "airflow db migrate -r heads"]
    assert "start-scheduler" in result.stderr
    assert {name: primary_id(describe(ecs, name)) for name in (WEB, WORKER)} == before
    assert describe(ecs, SCHEDULER)["desiredCount"] == 0


@pytest.fixture
def released_cluster(sim_registry, clock):
    """A running cluster whose image is release v1 in ECR: `latest` and a stamp tag on one digest."""
    from workflow_sandbox.images import push_image, random_layers
    from workflow_sandbox.provision import DEFAULT_COUNTS, provision_cluster

    ecr = sim_registry.ecr
    ecr.create_repository(repositoryName="airflow-prod")
    pushed = push_image(ecr, "airflow-prod", random_layers(2, 1024, seed=1), "latest")
    ecr.put_image(repositoryName="airflow-prod", imageManifest=pushed["manifest"], imageTag="20261101T000000Z")
    provision_cluster(shared_client, counts=DEFAULT_COUNTS)
    clock.sleep(60)
    return pushed["digest"]


def test_status_shows_the_digest_each_service_runs_and_its_tags(released_cluster, run):
    v1 = released_cluster
    result = run(*NAMES, "status")
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if line.startswith("worker ") and v1[7:19] in line]
    assert rows
    assert "latest, 20261101T000000Z" in rows[0]
    assert " 3 " in rows[0]
    as_json = json.loads(run(*NAMES, "--output", "json", "status").stdout)
    worker = [i for i in as_json["images"] if i["service"] == WORKER]
    assert worker == [{"service": WORKER, "task_definition": "airflow-prod-worker:1",
                       "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/airflow-prod:latest",
                       "digest": v1, "tasks": 3, "tags": ["latest", "20261101T000000Z"],
                       "airflow_version": None}]


def test_status_lists_and_describes_each_task_once(cluster, clock):
    result, calls = invoke_recording(clock, *NAMES, "status")
    assert result.exit_code == 0, result.output
    # Two ListTasks per service (tasks wanted RUNNING, and STOPPED ones), one DescribeTasks for them all.
    names = [call.name for call in calls]
    assert (names.count("ListTasks"), names.count("DescribeTasks")) == (6, 1), names


def test_a_redeploy_resumed_after_ctrl_c_waits_for_the_rollout_in_flight(released_cluster, sim, clock, ecs,
                                                                          one_scheduler_at_most):
    from click.testing import CliRunner

    from workflow.app import Runtime
    from workflow.cli import main

    def sleep(seconds):
        worker = sim.service(WORKER)
        if len(worker.deployments) == 2 and any(t.sim_status == "RUNNING" for t in worker.live(worker.primary)):
            raise KeyboardInterrupt
        clock.sleep(seconds)

    runner = CliRunner()
    first = runner.invoke(main, [*NAMES, "redeploy", "--yes"], obj=Runtime(clock=clock.now, sleep=sleep))
    assert first.exit_code == 130
    rolling = primary_id(describe(ecs, WORKER))
    again = runner.invoke(main, [*NAMES, "redeploy", "--yes"], obj=Runtime(clock=clock.now, sleep=clock.sleep))
    assert again.exit_code == 0, again.output
    assert f"worker: resuming deployment {rolling}" in again.stderr
    assert primary_id(describe(ecs, WORKER)) == rolling  # not thrown away by a second force
    assert describe(ecs, SCHEDULER)["runningCount"] == 1
    assert max(one_scheduler_at_most) == 1


def test_a_resumed_redeploy_takes_over_what_finished_and_counts_the_downtime_from_the_stop(released_cluster, sim,
                                                                                          clock, ecs, run):
    """Ctrl-C once web and worker have completed, while the scheduler waits to start: the re-run forces nothing
    again, and its downtime runs from the stop the first run made."""
    from click.testing import CliRunner
    from conftest import runtime

    from workflow.cli import main

    before = {name: primary_id(describe(ecs, name)) for name in (WEB, WORKER)}

    def sleep(seconds):
        services = describe_services(ecs, WEB, WORKER)
        if all(s["deployments"][0]["rolloutState"] == "COMPLETED" and primary_id(s) != before[name]
               for name, s in services.items()):
            raise KeyboardInterrupt
        clock.sleep(seconds)

    interrupted = runtime(clock)
    interrupted.sleep = sleep
    stopped_at = clock.now()
    first = CliRunner().invoke(main, [*NAMES, "redeploy", "--yes"], obj=interrupted)
    assert first.exit_code == 130, first.output
    rolled = {name: primary_id(describe(ecs, name)) for name in (WEB, WORKER)}
    clock.sleep(20)  # the operator looks around before resuming
    again = run(*NAMES, "redeploy", "--yes")
    assert again.exit_code == 0, again.output
    assert {name: primary_id(describe(ecs, name)) for name in (WEB, WORKER)} == rolled  # nothing forced again
    assert f"worker: resuming deployment {rolled[WORKER]}, already rolled out" in again.stderr
    downtime = json.loads(run(*NAMES, "-o", "json", "status").stdout)  # the scheduler runs again
    assert downtime["scheduler_tasks_alive"] == 1
    reported = float(again.stdout.split("the scheduler was down for ", 1)[1].split("s", 1)[0])
    assert reported >= clock.now() - stopped_at - 40  # from the first run's stop, not from the re-run's start


def test_ha_schedulers_are_the_operators_choice_and_are_restored_at_their_count(cluster, run, ecs, sim):
    most = []
    sim.observers.append(lambda s: most.append(sum(t.is_live for t in s.service(SCHEDULER).tasks)))
    refused = run(*NAMES, "start-scheduler", "--schedulers", "2")
    assert refused.exit_code == 1, refused.output
    assert "starting more beside them" in refused.stderr  # never old beside new
    assert run(*NAMES, "stop-scheduler", "--yes").exit_code == 0
    started = run(*NAMES, "start-scheduler", "--schedulers", "2")
    assert started.exit_code == 0, started.output
    assert describe(ecs, SCHEDULER)["runningCount"] == 2
    assert max(most) <= 2

    # A redeploy refuses two schedulers unless told, then keeps them at two, never more.
    refused = run(*NAMES, "redeploy", "--yes")
    assert refused.exit_code == 2, refused.output
    redeployed = run(*NAMES, "redeploy", "--yes", "--schedulers", "2")
    assert redeployed.exit_code == 0, redeployed.output
    assert describe(ecs, SCHEDULER)["runningCount"] == 2
    assert max(most) <= 2

    # stop-scheduler remembers the count; start-scheduler restores it without being told.
    assert run(*NAMES, "stop-scheduler", "--yes").exit_code == 0
    tags = ecs.list_tags_for_resource(resourceArn=describe(ecs, SCHEDULER)["serviceArn"])["tags"]
    assert {"key": "workflow-stopped-count", "value": "2"} in tags
    assert run(*NAMES, "start-scheduler").exit_code == 0
    assert describe(ecs, SCHEDULER)["runningCount"] == 2
    assert max(most) <= 2
    tags = ecs.list_tags_for_resource(resourceArn=describe(ecs, SCHEDULER)["serviceArn"])["tags"]
    assert "workflow-stopped-count" not in {t["key"] for t in tags}


def test_start_scheduler_does_not_call_a_crash_looping_scheduler_running(cluster, run, sim, ecs):
    sim.crash_deployments(SCHEDULER, exit_code=1, after=10.0)
    ecs.update_service(cluster=CLUSTER, service=SCHEDULER, forceNewDeployment=True,
                       deploymentConfiguration={"maximumPercent": 100, "minimumHealthyPercent": 0})
    for _ in range(40):  # long enough for the new deployment to complete, crash, and be replaced
        run(*NAMES, "status")
    result = run(*NAMES, "start-scheduler")
    assert result.exit_code == 1, result.output
    assert "exited after it was running" in result.stderr
    assert "already running" not in result.stdout


def test_a_stop_during_another_operators_redeploy_is_no_false_success(cluster, run, ecs, clock):
    from workflow.lease import TAG_PREFIX

    assert run(*NAMES, "stop-scheduler", "--yes").exit_code == 0
    arn = cluster_arn(ecs)
    since, until = clock.wall(clock.now()), clock.wall(clock.now() + 3600)
    ecs.tag_resource(resourceArn=arn, tags=[{"key": TAG_PREFIX + "other", "value":
        f"owner=ada@ops command=redeploy since={since:%Y-%m-%dT%H:%M:%SZ} expires={until:%Y-%m-%dT%H:%M:%SZ}"}])
    result = run(*NAMES, "stop-scheduler", "--yes")
    assert result.exit_code == 4, result.output
    assert "ada@ops (redeploy)" in result.stderr
    assert "already stopped" not in result.stdout


def test_status_says_when_latest_has_moved_past_what_runs(released_cluster, run):
    from workflow_sandbox.images import push_image, random_layers

    assert "names an image no service runs yet" not in run(*NAMES, "status").stdout
    push_image(shared_client("ecr"), "airflow-prod", random_layers(2, 1024, seed=2), "latest")  # as promote leaves it
    result = run(*NAMES, "status")
    assert result.exit_code == 0, result.output
    assert "warning: latest in airflow-prod names an image no service runs yet" in result.stdout
    assert "`redeploy` moves them onto it" in result.stdout
