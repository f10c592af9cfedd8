"""Never two schedulers around a command: retried requests, other operators, and changes made meanwhile."""

from click.testing import CliRunner
from conftest import CLUSTER, NAMES, SCHEDULER, WEB, WORKER, new_client, shared_client
from helpers import describe

from workflow.app import Runtime
from workflow.cli import main
from workflow.deployments import RESCAN_SECONDS


def invoke_with(clock, meanwhile, *args):
    """Run the command; `meanwhile(poll)` runs at each of its sleeps, as another operator would act."""
    polls = []

    def sleep(seconds):
        polls.append(seconds)
        meanwhile(len(polls))
        clock.sleep(seconds)

    return CliRunner().invoke(main, [*NAMES, *args], obj=Runtime(clock=clock.now, sleep=sleep))


def test_start_and_stop_make_ecs_stop_a_scheduler_before_starting_another(empty_cluster, run, ecs):
    assert run(*NAMES, "start-scheduler").exit_code == 0
    config = describe(ecs, SCHEDULER)["deploymentConfiguration"]
    assert (config["maximumPercent"], config["minimumHealthyPercent"]) == (100, 0)


def test_a_start_request_whose_answer_is_lost_and_retried_runs_one_scheduler(empty_cluster, run, ecs, sim,
                                                                              schedulers_alive):
    sim.faults.inject("UpdateService", "server", times=1, after=True)  # applied, then the answer is lost
    result = run(*NAMES, "start-scheduler")
    assert result.exit_code == 0, result.output
    assert schedulers_alive[0] == 1
    scheduler = describe(ecs, SCHEDULER)
    assert scheduler["desiredCount"] == scheduler["runningCount"] == 1


def test_status_warns_while_the_scheduler_may_run_twice_and_stops_warning_once_fixed(cluster, run):
    result = run(*NAMES, "status")
    assert "maximumPercent 200" in result.stdout
    assert "deployment_maximum_percent = 100" in result.stdout
    assert run(*NAMES, "stop-scheduler", "--yes").exit_code == 0
    assert run(*NAMES, "start-scheduler").exit_code == 0
    assert "maximumPercent" not in run(*NAMES, "status").stdout


def test_someone_scaling_the_scheduler_to_zero_during_a_start_is_not_success(empty_cluster, ecs, clock):
    def scale_in(poll):
        if poll == 3:
            ecs.update_service(cluster=CLUSTER, service=SCHEDULER, desiredCount=0)

    result = invoke_with(clock, scale_in, "start-scheduler")
    assert result.exit_code == 1, result.output
    assert "another operation set airflow-prod-scheduler's desired count to 0" in result.stderr


def test_a_stop_that_sees_the_scheduler_started_again_stops_and_says_so(cluster, ecs, clock):
    def start_again(poll):
        if poll == 2:
            ecs.update_service(cluster=CLUSTER, service=SCHEDULER, desiredCount=1)

    result = invoke_with(clock, start_again, "--timeout", "120", "stop-scheduler", "--yes")
    assert result.exit_code == 1, result.output
    assert "another operation started scheduler task" in result.stderr
    assert clock.now() < 60 + 120  # long before the timeout


def test_a_redeploy_superseded_by_another_deployment_says_so(cluster, ecs, clock):
    def deploy_web(poll):
        if poll == 12:
            ecs.update_service(cluster=CLUSTER, service=WEB, forceNewDeployment=True)

    result = invoke_with(clock, deploy_web, "redeploy", "--yes")
    assert result.exit_code == 1, result.output
    assert "superseded by another deployment" in result.stderr
    assert "rolled back" not in result.stderr


def test_a_missing_list_tasks_permission_fails_redeploy_before_anything_changes(cluster, clock):
    from botocore.exceptions import ClientError

    def clients(config):
        def build(name, region=None):
            client = new_client(name)
            if name == "ecs":
                def deny(params, **_):
                    raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no ecs:ListTasks"},
                                       "ResponseMetadata": {"HTTPStatusCode": 400}}, "ListTasks")
                client.meta.events.register("before-call.ecs.ListTasks", deny)
            return client
        return build

    result = CliRunner().invoke(main, [*NAMES, "redeploy", "--yes"],
                                obj=Runtime(clock=clock.now, sleep=clock.sleep, clients=clients))
    assert result.exit_code == 2, result.output
    assert "access denied to ListTasks" in result.stderr
    ecs = shared_client("ecs")
    assert describe(ecs, SCHEDULER)["desiredCount"] == 1
    assert len(describe(ecs, WORKER)["deployments"]) == 1


# --- found by review: each was a way to get the wrong answer ---------------------------------------------


def test_a_lost_start_answer_behind_a_stale_describe_starts_one_scheduler(cluster, run, sim, clock, schedulers_alive):
    assert run(*NAMES, "stop-scheduler", "--yes").exit_code == 0
    clock.sleep(60)
    launched_before = len(sim.service(SCHEDULER).tasks)
    schedulers_alive[0] = 0
    sim.stale_seconds = 5  # right after UpdateService, DescribeServices may show the old view
    sim.faults.inject("UpdateService", "connection", after=True)  # the start is applied, its answer lost
    result = run(*NAMES, "start-scheduler")
    assert result.exit_code == 0, result.output
    assert "it was applied: deployment" in result.stderr
    assert len(sim.service(SCHEDULER).tasks) - launched_before == 1
    assert schedulers_alive[0] == 1


def test_a_healthy_task_ecs_replaces_during_the_stability_window_is_not_a_crash(cluster, sim, clock, ecs):
    worker, first = sim.service(WORKER), sim.service(WORKER).primary
    stopped = []

    def rebalance(_poll):
        with sim.lock:
            sim.advance()
            new = worker.primary
            running = [t for t in worker.tasks if t.deployment is new and t.sim_status == "RUNNING"]
            if not stopped and new is not first and len(running) == 3 and new.rollout_state == "COMPLETED":
                # AZ rebalancing or a Fargate task retirement: ECS stops a healthy task (exit 143 on SIGTERM)
                sim._stop(running[0], clock.now(), "AZ Rebalancing", "ServiceSchedulerInitiated")
                sim._reconcile(worker, clock.now())
                stopped.append(running[0])

    result = invoke_with(clock, rebalance, "redeploy", "--yes")
    assert stopped, result.output
    assert result.exit_code == 0, result.output
    assert "replaced by ECS: AZ Rebalancing" in result.stderr
    assert describe(ecs, SCHEDULER)["runningCount"] == 1


def test_a_crash_seen_while_the_api_is_throttled_is_not_forgotten(cluster, run, sim, clock):
    assert run(*NAMES, "stop-scheduler", "--yes").exit_code == 0
    sim.crash_deployments(SCHEDULER, exit_code=1, after=4.0)
    crashed_at = []

    def throttle_as_it_crashes(simulation):
        crashed = [t for t in simulation.service(SCHEDULER).tasks if t.stop_code == "EssentialContainerExited"]
        if crashed and not crashed_at:
            simulation.crash_deployments(SCHEDULER, None)
            for deployment in simulation.service(SCHEDULER).deployments:
                deployment.crash = None
            simulation.faults.inject("ListTasks", "throttle", times=3)  # every attempt of one call
            crashed_at.append(clock.now())

    sim.observers.append(throttle_as_it_crashes)
    result = run(*NAMES, "start-scheduler")
    assert crashed_at
    assert result.exit_code == 1, result.output
    assert "exited after it was running" in result.stderr
    assert sim.faults.count["throttle"] == 3
    assert clock.now() - crashed_at[0] < RESCAN_SECONDS  # looked at again at the next poll, not at the next rescan


def test_start_scheduler_does_not_judge_a_deployment_by_crashes_from_before_it_looked(cluster, run, sim):
    assert run(*NAMES, "stop-scheduler", "--yes").exit_code == 0
    sim.crash_deployments(SCHEDULER, exit_code=1, after=4.0)
    assert run(*NAMES, "start-scheduler").exit_code == 1
    sim.crash_deployments(SCHEDULER, None)  # fixed outside the image (a secret, the database)
    for deployment in sim.service(SCHEDULER).deployments:
        deployment.crash = None
    again = run(*NAMES, "start-scheduler")
    assert again.exit_code == 0, again.output


def test_an_adopted_start_judges_a_crash_from_after_it_began_even_if_its_first_looks_failed(cluster, run, sim, clock,
                                                                                          ecs, monkeypatch):
    from workflow.ecs import Ecs
    from workflow.errors import Transient

    assert run(*NAMES, "stop-scheduler", "--yes").exit_code == 0
    sim.crash_deployments(SCHEDULER, exit_code=1, after=4.0)
    ecs.update_service(cluster=CLUSTER, service=SCHEDULER, desiredCount=1, forceNewDeployment=True)  # a start in flight
    crashed, looked = [], []

    def once(simulation):  # one crash only: the next task runs (the database came back)
        if not crashed and any(t.stop_code == "EssentialContainerExited" for t in simulation.service(SCHEDULER).tasks):
            simulation.crash_deployments(SCHEDULER, None)
            for deployment in simulation.service(SCHEDULER).deployments:
                deployment.crash = None
            crashed.append(clock.now())

    def throttled_until_the_crash(self, service, known):
        looked.append(clock.now())
        if not crashed:
            raise Transient("ListTasks failed: ThrottlingException: Rate exceeded")
        return stopped_tasks(self, service, known)

    stopped_tasks = Ecs.stopped_tasks
    sim.observers.append(once)
    monkeypatch.setattr(Ecs, "stopped_tasks", throttled_until_the_crash)
    result = run(*NAMES, "start-scheduler")
    assert looked[0] < crashed[0]  # the command watched before the crash, though it could not see it then
    assert result.exit_code == 1, result.output
    assert "exited after it was running" in result.stderr


def test_a_lost_run_task_answer_offers_no_second_migration(cluster, run, sim):
    sim.faults.inject("RunTask", "connection", times=20, after=True)
    result = run(*NAMES, "redeploy", "--yes", "--migrate")
    assert result.exit_code == 1
    assert "RunTask's answer was lost" in result.stderr
    assert "a task may be running" in result.stderr
    assert "resume with" not in result.stderr
