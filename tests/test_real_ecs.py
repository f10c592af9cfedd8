"""The commands against what real ECS does that a read-after-write, never-failing model hides.

Each test makes the simulated cluster behave as ECS does (tasks that crash after RUNNING, invisible
results right after a change, throttling, retried launches, other deployment controllers) and asserts
the cluster state the command leaves, its exit code and its message.
"""

import pytest
from conftest import CLUSTER, NAMES, SCHEDULER, WEB, WORKER, invoke_recording, shared_client
from helpers import describe, one_off_tasks

from workflow_sandbox.provision import DEFAULT_COUNTS, provision_cluster


def assert_scheduler_stopped_and_counts_kept(ecs, sim):
    scheduler = describe(ecs, SCHEDULER)
    assert scheduler["desiredCount"] == 0
    assert sim.alive(SCHEDULER) == []
    assert describe(ecs, WORKER)["desiredCount"] == 3
    assert describe(ecs, WEB)["desiredCount"] == 1


# --- tasks that crash after RUNNING ---------------------------------------------------------------


def test_a_crash_looping_worker_fleet_fails_the_redeploy_and_the_scheduler_stays_stopped(cluster, run, ecs, sim,
                                                                                         schedulers_alive):
    sim.crash_deployments(WORKER, exit_code=1, after=4, lines=("ERROR: cannot connect to broker redis://x",))
    result = run(*NAMES, "redeploy", "--yes")
    assert result.exit_code == 1, result.output
    assert f"{WORKER}: task" in result.stderr
    assert "exited after it was running" in result.stderr
    assert "exited with code 1" in result.stderr
    assert "cannot connect to broker" in result.stderr
    assert "cluster state: the scheduler is stopped" in result.stderr
    # The old workers are gone by the time the new ones crash: going back is the way out, not scheduling here.
    assert "or, to go back to the previous release, if there is one:" in result.stderr
    assert "rollback --yes" in result.stderr
    assert "Traceback" not in result.output
    assert_scheduler_stopped_and_counts_kept(ecs, sim)
    assert schedulers_alive[0] == 1


def test_a_crash_seen_while_its_task_still_drains_quotes_log_lines_that_arrive_late(cluster, run, sim):
    sim.log_delay = 2  # the awslogs driver ships in batches: the lines arrive after the exit code shows
    sim.crash_deployments(WORKER, exit_code=1, after=4, lines=("ERROR: cannot connect to broker redis://x",))
    result = run(*NAMES, "redeploy", "--yes")
    assert result.exit_code == 1, result.output
    assert "exited after it was running" in result.stderr
    assert "last log lines of celery-worker:\n    ERROR: cannot connect to broker redis://x" in result.stderr


def test_a_crash_after_the_deployment_completed_fails_within_the_stability_window(cluster, run, ecs, sim, clock):
    # New workers run at about 7 s into the roll and the deployment completes at about 12 s; they crash at about
    # 28 s, between two of the window's polls, which come every 5 s (WINDOW_POLL_SECONDS).
    sim.crash_deployments(WORKER, exit_code=3, after=21)
    result = run(*NAMES, "redeploy", "--yes")
    assert result.exit_code == 1, result.output
    crashed = min(t.stopping_at for t in sim.service(WORKER).tasks if t.stop_code == "EssentialContainerExited")
    assert 0 < (clock.wall(clock.now()) - crashed).total_seconds() <= 5
    assert "exited with code 3" in result.stderr
    assert "watching its tasks for 30s" in result.stderr
    assert [d["rolloutState"] for d in describe(ecs, WORKER)["deployments"]][0] == "COMPLETED"  # ECS says success
    assert_scheduler_stopped_and_counts_kept(ecs, sim)


@pytest.mark.parametrize("after", [1.25, 1.5, 1.75])
def test_a_crash_whose_replacement_runs_before_the_next_poll_still_fails_the_window(empty_cluster, run, sim, after):
    """Inside the window polls come every 5 s: a task that starts in 3 s (as the sandbox's do) can crash and be
    replaced between two of them, leaving the counts as they were; the look at the window's end finds it."""
    from workflow_sandbox.simulator import Timings

    sim.timings = Timings(provision=1, pull=2, drain=1, stop=1, one_off_run=3)
    sim.crash_deployments(SCHEDULER, exit_code=3, after=after)
    result = run(*NAMES, "--stability-window", "5", "start-scheduler")
    assert result.exit_code == 1, result.output
    assert "exited with code 3" in result.stderr, result.output


def test_a_crashed_task_still_stopping_at_the_windows_end_is_judged_before_success(empty_cluster, run, sim):
    """Exit code 0 says why a task stopped only once it has (its stop code alone does not): the window's end waits
    for the task, replaced between two polls and still draining, to stop."""
    from workflow_sandbox.simulator import Timings

    sim.timings = Timings(provision=1, pull=2, drain=3, stop=2, one_off_run=3)
    sim.crash_deployments(SCHEDULER, exit_code=0, after=1.5)
    result = run(*NAMES, "--stability-window", "5", "start-scheduler")
    assert result.exit_code == 1, result.output
    assert "exited after it was running" in result.stderr, result.output


def test_without_a_stability_window_the_late_crash_goes_unseen(cluster, run, sim):
    """Why the window exists: the same late crash passes when nobody watches after COMPLETED."""
    sim.crash_deployments(WORKER, exit_code=3, after=20)
    assert run(*NAMES, "--stability-window", "0", "redeploy", "--yes").exit_code == 0


def test_a_crashing_scheduler_fails_start_scheduler(empty_cluster, run, ecs, sim):
    sim.crash_deployments(SCHEDULER, exit_code=1, after=3)
    result = run(*NAMES, "start-scheduler")
    assert result.exit_code == 1, result.output
    assert f"{SCHEDULER}: task" in result.stderr
    assert "exited with code 1" in result.stderr


def test_scale_in_during_a_redeploy_is_not_a_failure(cluster, ecs, clock, sim):
    from click.testing import CliRunner

    from workflow.app import Runtime
    from workflow.cli import main

    scaled = []

    def sleep(seconds):
        worker = sim.service(WORKER)
        if not scaled and len(worker.deployments) == 2 and worker.primary.desired_count == 3 and sim.alive(WORKER):
            running_new = [t for t in worker.live(worker.primary) if t.sim_status == "RUNNING"]
            if running_new:
                ecs.update_service(cluster=CLUSTER, service=WORKER, desiredCount=2)  # autoscaling
                scaled.append(True)
        clock.sleep(seconds)

    result = CliRunner().invoke(main, [*NAMES, "redeploy", "--yes"], obj=Runtime(clock=clock.now, sleep=sleep))
    assert scaled, result.output
    assert result.exit_code == 0, result.output
    worker = describe(ecs, WORKER)
    assert worker["desiredCount"] == worker["runningCount"] == 2


# --- failed launches: fail like the circuit breaker, not before it --------------------------------


def test_one_transient_launch_failure_is_retried_by_ecs_and_the_redeploy_succeeds(cluster, run, ecs, sim):
    sim.flaky_starts(WORKER, 1)
    result = run(*NAMES, "redeploy", "--yes")
    assert result.exit_code == 0, result.output
    assert "failed to start" in result.stderr  # said as progress, not as the end
    assert describe(ecs, SCHEDULER)["runningCount"] == 1


def test_a_web_image_that_cannot_be_pulled_fails_at_the_circuit_breaker_threshold(cluster, run, ecs, sim, clock):
    sim.fail_deployments(WEB, "pull")
    started = clock.now()
    result = run(*NAMES, "redeploy", "--yes")
    assert result.exit_code == 1
    assert "3 tasks of deployment" in result.stderr
    assert "(threshold 3)" in result.stderr
    assert "CannotPullContainerError" in result.stderr
    assert "ECS keeps trying" in result.stderr
    assert clock.now() - started < 60
    assert_scheduler_stopped_and_counts_kept(ecs, sim)


def test_the_threshold_is_configurable(cluster, run, sim):
    sim.fail_deployments(WEB, "pull")
    result = run(*NAMES, "--max-failed-tasks", "1", "redeploy", "--yes")
    assert result.exit_code == 1, result.output
    assert "(threshold 1)" in result.stderr


def test_tasks_failing_health_checks_count_towards_the_threshold(cluster, run, ecs, sim):
    sim.unhealthy_deployments(WEB, after=5)
    result = run(*NAMES, "redeploy", "--yes")
    assert result.exit_code == 1, result.output
    assert "failed health checks" in result.stderr
    assert "(threshold 3)" in result.stderr
    assert_scheduler_stopped_and_counts_kept(ecs, sim)


def test_the_threshold_follows_the_circuit_breakers_threshold_configuration(sim, clock, run):
    breaker = {"enable": False, "rollback": False, "thresholdConfiguration": {"type": "COUNT", "value": 5}}
    provision_cluster(shared_client, counts=DEFAULT_COUNTS, deployment_configuration={
        "maximumPercent": 200, "minimumHealthyPercent": 100, "deploymentCircuitBreaker": breaker})
    clock.sleep(60)
    sim.fail_deployments(WEB, "pull")
    result = run(*NAMES, "redeploy", "--yes")
    assert result.exit_code == 1, result.output
    assert "5 tasks of deployment" in result.stderr
    assert "(threshold 5)" in result.stderr


def test_an_essential_container_exiting_before_running_is_a_failed_launch_that_ecs_retries(cluster, run, ecs, sim):
    sim.crash_deployments(WORKER, exit_code=3, before_running=True)
    result = run(*NAMES, "redeploy", "--yes")
    assert result.exit_code == 1, result.output
    assert "exited after it was running" not in result.stderr
    assert "(threshold 3); last: task" in result.stderr
    assert "failed to start: Essential container in task exited (celery-worker exited with code 3)" in result.stderr
    assert_scheduler_stopped_and_counts_kept(ecs, sim)


def test_a_task_of_ours_draining_behind_the_load_balancer_is_judged_once_not_at_every_poll(cluster, clock, sim):
    sim.timings.drain_by_service[WEB] = 300
    sim.unhealthy_deployments(WEB, after=5)
    result, calls = invoke_recording(clock, *NAMES, "redeploy", "--yes")
    assert result.exit_code == 1, result.output
    assert "failed health checks" in result.stderr, result.output
    described = [arn for call in calls if call.name == "DescribeTasks" for arn in call.params["tasks"]]
    unhealthy = [t.task_arn for t in sim.service(WEB).tasks if t.unhealthy]
    assert unhealthy
    assert max(described.count(arn) for arn in unhealthy) == 1


# --- eventual consistency -------------------------------------------------------------------------


def test_a_migration_task_missing_right_after_run_task_is_waited_for_not_failed(empty_cluster, run, ecs, sim):
    sim.missing_seconds = 8
    result = run(*NAMES, "initialize", "--yes")
    assert result.exit_code == 0, result.output
    assert len(one_off_tasks(ecs)) == 1  # never a second migration beside the first


def test_a_stale_describe_after_update_service_is_not_a_rollback(cluster, run, ecs, sim, schedulers_alive):
    sim.stale_seconds = 5
    result = run(*NAMES, "redeploy", "--yes")
    assert result.exit_code == 0, result.output
    scheduler = describe(ecs, SCHEDULER)
    assert scheduler["desiredCount"] == scheduler["runningCount"] == 1
    assert schedulers_alive[0] == 1


# --- throttling, server errors and broken connections ---------------------------------------------


def run_with_faults_once_waiting(clock, sim, operation, kind, times, *args):
    """Run the command; its first sleep (inside a wait) turns on `times` faults of `operation`."""
    from click.testing import CliRunner

    from workflow.app import Runtime
    from workflow.cli import main

    injected = []

    def sleep(seconds):
        if not injected:
            sim.faults.inject(operation, kind, times=times)  # more than botocore's retries absorb
            injected.append(True)
        clock.sleep(seconds)

    return CliRunner().invoke(main, [*NAMES, *args], obj=Runtime(clock=clock.now, sleep=sleep))


@pytest.mark.parametrize("operation, kind", [
    ("DescribeServices", "throttle"), ("DescribeTasks", "server"), ("DescribeTasks", "read-timeout"),
    ("DescribeServices", "connection"),
])
def test_transient_errors_inside_a_wait_mean_still_pending(cluster, clock, ecs, sim, operation, kind):
    result = run_with_faults_once_waiting(clock, sim, operation, kind, 20, "stop-scheduler", "--yes")
    assert result.exit_code == 0, result.output
    assert "still waiting, next try in" in result.stderr
    assert sim.alive(SCHEDULER) == []


def test_throttling_until_the_deadline_times_out_naming_the_error(cluster, clock, sim):
    result = run_with_faults_once_waiting(clock, sim, "DescribeServices", "throttle", 10_000,
                                          "--timeout", "60", "stop-scheduler", "--yes")
    assert result.exit_code == 3, result.output
    assert "ThrottlingException" in result.stderr
    assert "Traceback" not in result.output


def test_a_change_that_stays_throttled_fails_cleanly_saying_the_state(cluster, run, ecs, sim):
    sim.faults.inject("UpdateService", "throttle", times=10_000)
    result = run(*NAMES, "stop-scheduler", "--yes")
    assert result.exit_code == 1, result.output
    assert "UpdateService failed: ThrottlingException" in result.stderr
    assert "Traceback" not in result.output
    assert describe(ecs, SCHEDULER)["desiredCount"] == 1


# --- deployment controllers and preflight ---------------------------------------------------------


@pytest.mark.parametrize("controller", ["CODE_DEPLOY", "EXTERNAL"])
def test_redeploy_refuses_another_deployment_controller_before_changing_anything(sim, clock, run, ecs, controller):
    provision_cluster(shared_client, counts=DEFAULT_COUNTS,
                      deployment_controllers={"web": controller})
    clock.sleep(60)
    before = describe(ecs, WORKER)["deployments"]
    result = run(*NAMES, "redeploy", "--yes")
    assert result.exit_code == 2, result.output
    assert f"{WEB} uses the {controller} deployment controller" in result.stderr
    assert "nothing was changed" in result.stderr
    assert "Traceback" not in result.output
    assert describe(ecs, SCHEDULER)["desiredCount"] == 1
    assert len(sim.alive(SCHEDULER)) == 1
    assert describe(ecs, WORKER)["deployments"] == before


# --- initialize ---------------------------------------------------------------------------------


def test_initialize_refuses_a_non_essential_container(empty_cluster, run, ecs):
    result = run(*NAMES, "initialize", "--yes", "--container", "log-router")
    assert result.exit_code == 2
    assert "log-router" in result.stderr
    assert "not essential" in result.stderr
    assert "celery-worker" in result.stderr
    assert one_off_tasks(ecs) == []


@pytest.mark.parametrize("stop, message", [
    (("SpotInterruption", "Your Spot Task was interrupted.", 0), "interrupted by Fargate Spot"),
    (("UserInitiated", "Task stopped by user", 0), "stopped by a user"),
])
def test_initialize_fails_when_the_task_was_stopped_even_with_exit_code_0(empty_cluster, run, sim, stop, message):
    sim.one_off_stop = stop
    result = run(*NAMES, "initialize", "--yes")
    assert result.exit_code == 1, result.output
    assert message in result.stderr
    assert "does not show that the command completed" in result.stderr


def test_initialize_reads_the_log_to_its_end_across_empty_pages_and_late_delivery(empty_cluster, run, sim):
    sim.log_empty_pages = 30  # an empty page is not the end of a stream
    sim.log_delay = 8  # later than the task takes to stop after its last line
    result = run(*NAMES, "initialize", "--yes")
    assert result.exit_code == 0, result.output
    assert "celery-worker | Starting: airflow db migrate" in result.stderr
    assert "celery-worker | Done." in result.stderr


def test_log_grace_sets_how_long_a_stopped_tasks_log_is_still_read(empty_cluster, run, sim, clock, monkeypatch):
    sim.log_delay = 8
    began = clock.now()
    result = run(*NAMES, "--log-grace", "0", "initialize", "--yes")
    assert result.exit_code == 0, result.output
    assert "reading the log" not in result.stderr
    assert "celery-worker | Done." not in result.stderr
    without_grace = clock.now() - began

    monkeypatch.setenv("WORKFLOW_LOG_GRACE", "12")
    began = clock.now()
    result = run(*NAMES, "initialize", "--yes")
    assert result.exit_code == 0, result.output
    assert "reading the log for 12s more" in result.stderr
    assert "celery-worker | Done." in result.stderr
    assert clock.now() - began >= without_grace + 12


def test_initialize_reads_logs_from_the_region_the_driver_sends_to(empty_cluster, run, ecs):
    shared_client("logs", "us-west-2").create_log_group(logGroupName="/ecs/west")
    worker = describe(ecs, WORKER)
    definition = ecs.describe_task_definition(taskDefinition=worker["taskDefinition"])["taskDefinition"]
    containers = definition["containerDefinitions"]
    for container in containers:
        container["logConfiguration"]["options"].update({"awslogs-region": "us-west-2", "awslogs-group": "/ecs/west"})
    revision = ecs.register_task_definition(
        family=definition["family"], containerDefinitions=containers, networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"], cpu="1024", memory="2048")["taskDefinition"]["taskDefinitionArn"]
    ecs.update_service(cluster=CLUSTER, service=WORKER, taskDefinition=revision)
    result = run(*NAMES, "initialize", "--yes")
    assert result.exit_code == 0, result.output
    assert "celery-worker | Starting: airflow db migrate" in result.stderr


def test_log_errors_never_fail_a_migration(empty_cluster, run, ecs, sim):
    sim.faults.inject("GetLogEvents", "throttle", times=10_000)
    result = run(*NAMES, "initialize", "--yes")
    assert result.exit_code == 0, result.output
    assert result.stderr.count("not following celery-worker's logs") == 1
    assert len(one_off_tasks(ecs)) == 1


def test_status_after_a_failed_redeploy_flags_the_failing_deployment_and_the_stopped_scheduler(cluster, run, sim):
    sim.crash_deployments(WORKER, exit_code=1, after=4)
    assert run(*NAMES, "redeploy", "--yes").exit_code == 1
    result = run(*NAMES, "status")
    assert result.exit_code == 0
    assert f"warning: {WORKER}:" in result.stdout
    assert "exited recently" in result.stdout
    assert "exited with code 1" in result.stdout
    assert f"warning: {SCHEDULER} is stopped (desired 0)" in result.stdout


# --- tasks that keep stopping, whatever their fields say ------------------------------------------


@pytest.mark.parametrize("after", [1.5, 6])
def test_tasks_that_keep_stopping_without_started_at_fail_the_window(empty_cluster, run, sim, after):
    """An endpoint that leaves startedAt out makes each crash look like a failed launch, which ECS's failedTasks does
    not count and a healthy start would reset: the stops inside the stability window fail it all the same."""
    from workflow_sandbox.simulator import Timings

    sim.timings = Timings(provision=1, pull=2, drain=1, stop=1, one_off_run=3)
    sim.omit_started_at = True
    sim.crash_deployments(SCHEDULER, exit_code=3, after=after)
    result = run(*NAMES, "--stability-window", "10", "start-scheduler")
    assert result.exit_code == 1, result.output
    assert "tasks of deployment" in result.stderr, result.stderr
    assert "keep stopping: 3 stopped" in result.stderr, result.stderr
    assert "(threshold 3); last: task" in result.stderr
    assert "scheduler exited with code 3" in result.stderr
    assert "last log lines of scheduler:\n    ERROR: cannot connect to broker" in result.stderr


def test_a_crash_looping_worker_fleet_without_started_at_fails_the_redeploy(cluster, run, ecs, sim, schedulers_alive):
    sim.omit_started_at = True
    sim.crash_deployments(WORKER, exit_code=1, after=4, lines=("ERROR: cannot connect to broker redis://x",))
    result = run(*NAMES, "redeploy", "--yes")
    assert result.exit_code == 1, result.output
    assert f"{WORKER}: tasks of deployment" in result.stderr
    assert "keep stopping" in result.stderr
    assert "celery-worker exited with code 1" in result.stderr
    assert "cannot connect to broker" in result.stderr
    assert_scheduler_stopped_and_counts_kept(ecs, sim)
    assert schedulers_alive[0] == 1


def test_a_stop_the_service_events_call_running_is_a_crash_without_started_at(empty_cluster, run, sim):
    """ECS's service event "has stopped 1 running tasks: (task …)" says the task ran, when startedAt is missing."""
    from workflow_sandbox.simulator import Timings

    sim.timings = Timings(provision=1, pull=2, drain=1, stop=1, one_off_run=3)
    sim.omit_started_at = True
    sim.crash_deployments(SCHEDULER, exit_code=3, after=1.5)

    def as_ecs_says_it(simulation):
        for task in simulation.service(SCHEDULER).tasks:
            if task.stop_code == "EssentialContainerExited" and not getattr(task, "said", False):
                task.said = True
                simulation._event(task.service, simulation.clock.now(),
                                  simulation._tasks_message(task.service, "has stopped", [task]))

    sim.observers.append(as_ecs_says_it)
    result = run(*NAMES, "--stability-window", "10", "start-scheduler")
    assert result.exit_code == 1, result.output
    assert "exited after it was running" in result.stderr
    assert "exited with code 3" in result.stderr
    assert "keep stopping" not in result.stderr


def test_the_scheduler_starts_once_no_old_worker_runs_a_process_not_after_deprovisioning(cluster, sim, clock):
    """The old workers' containers have stopped (DEPROVISIONING while ECS detaches their network interfaces, and
    their deployment still listed): no old worker runs, so the scheduler's start waits for the stability window,
    not for ECS to finish."""
    from workflow_sandbox.simulator import Timings

    sim.timings = Timings(provision=2, pull=5, drain=3, stop=2, one_off_run=6, deprovision=10)
    old = {t.task_arn for t in sim.service(WORKER).tasks}
    ended: dict[str, float] = {}
    sim.observers.append(lambda s: ended.update({t.task_arn: clock.now() for t in s.service(WORKER).tasks
                                                 if t.task_arn in old and t.task_arn not in ended
                                                 and t.sim_status in ("DEPROVISIONING", "STOPPED")}))
    result, calls = invoke_recording(clock, *NAMES, "--stability-window", "2", "redeploy", "--yes")
    assert result.exit_code == 0, result.output
    assert set(ended) == old
    start = next(c for c in calls if c.name == "UpdateService" and c.params.get("service") == SCHEDULER
                 and c.params.get("desiredCount") == 1)
    assert start.at - max(ended.values()) <= 2 + 1.5  # the window, then within a poll and a look at stopped tasks
    assert start.at < max(ended.values()) + 10  # before ECS has stopped them


def test_a_stop_returns_once_the_containers_stopped_not_after_deprovisioning(cluster, run, sim, clock):
    """ECS keeps a task DEPROVISIONING while it detaches its network interface, seconds after its containers
    stopped: no scheduler process runs then, so the stop wait (and the scheduler's downtime) does not include it."""
    from workflow_sandbox.simulator import Timings

    sim.timings = Timings(provision=2, pull=5, drain=3, stop=2, one_off_run=6, deprovision=3)
    containers_stopped = []
    sim.observers.append(lambda s: containers_stopped.append(clock.now()) if not containers_stopped and any(
        t.sim_status == "DEPROVISIONING" for t in s.service(SCHEDULER).tasks) else None)
    calls = []
    result, calls = invoke_recording(clock, *NAMES, "stop-scheduler", "--yes")
    assert result.exit_code == 0, result.output
    assert containers_stopped, "the simulated task went through DEPROVISIONING"
    assert calls[-1].at - containers_stopped[0] <= 0.5  # within half a poll of the last container stopping
    assert any(t.sim_status == "DEPROVISIONING" for t in sim.service(SCHEDULER).tasks)  # ECS not done yet
    stop = next(i for i, c in enumerate(calls) if c.name == "UpdateService")
    waiting = [c for c in calls[stop + 1:] if c.name.startswith(("Describe", "List"))]
    span = waiting[-1].at - calls[stop].at
    assert len(waiting) <= 2 * span + 3  # the wait reads about twice a second at most, plus its last look
