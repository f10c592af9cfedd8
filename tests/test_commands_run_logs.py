"""`workflow run` (any one-off command, its exit code passed on) and `workflow logs` (a service's awslogs streams,
interleaved by time), against the simulated cluster on a fake clock; and the shell completion script."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner
from conftest import CLUSTER, NAMES, REGION, SCHEDULER, WORKER, shared_client
from helpers import cluster_arn, one_off_tasks, tasks

from workflow.app import Runtime
from workflow.cli import main
from workflow.errors import NotFound
from workflow.logs import read_streams

GROUP = f"/ecs/{CLUSTER}"
# moto accepts log events from the last 14 days only, so these tests' wall clock starts an hour ago.
BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
FAST = [*NAMES, "--poll-interval", "5"]  # fewer polls of the one-off tasks' simulated run, same outcome


# --- workflow run ---------------------------------------------------------------------------------


def test_run_runs_the_command_in_a_worker_task_and_prints_its_log(cluster, run, ecs):
    result = run(*FAST, "run", "--yes", "--", "airflow", "dags", "reserialize", "--subdir", "/dags")
    assert result.exit_code == 0, result.output
    assert "celery-worker | Starting: airflow dags reserialize --subdir /dags" in result.stderr
    assert "celery-worker | Done." in result.stderr
    assert "succeeded" in result.stdout
    [task] = one_off_tasks(ecs)
    assert task["taskDefinitionArn"] == cluster.task_definitions["worker"]
    # Options after `--` belong to the command, not to workflow.
    assert task["overrides"]["containerOverrides"] == [
        {"name": "celery-worker", "command": ["airflow", "dags", "reserialize", "--subdir", "/dags"]}
    ]


def test_run_exits_with_the_containers_exit_code_from_1_to_125(cluster, run, sim):
    sim.one_off_exit_codes = {"celery-worker": 7}
    result = run(*FAST, "run", "--yes", "--", "airflow", "users", "create", "--role", "Admin")
    assert result.exit_code == 7, result.output
    assert "exited with code 7" in result.stderr
    assert "Traceback" not in result.output
    sim.one_off_exit_codes = {"celery-worker": 137}  # killed (OOM): not the command's own answer
    assert run(*FAST, "run", "--yes", "--", "airflow", "dags", "reserialize").exit_code == 1
    # Stopped before the command finished: whatever code the container shows, the task failed.
    sim.one_off_exit_codes, sim.one_off_stop = {}, ("SpotInterruption", "Your Spot Task was interrupted.", 5)
    result = run(*FAST, "run", "--yes", "--", "airflow", "dags", "reserialize")
    assert result.exit_code == 1, result.output
    assert "interrupted by Fargate Spot" in result.stderr


def test_run_on_the_scheduler_uses_the_schedulers_task_definition(cluster, run, ecs):
    result = run(*FAST, "run", "--service", "scheduler", "--yes", "--", "airflow", "dags", "list")
    assert result.exit_code == 0, result.output
    [task] = one_off_tasks(ecs)
    assert task["taskDefinitionArn"] == cluster.task_definitions["scheduler"]
    assert task["overrides"]["containerOverrides"] == [{"name": "scheduler", "command": ["airflow", "dags", "list"]}]
    # A service name works as well as a role, and global options may follow the command name.
    result = run("run", "--cluster", CLUSTER, "--service", SCHEDULER, "--yes", "-o", "json", "--no-wait", "--", "true")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["task"]["task_definition"] == cluster.task_definitions["scheduler"]


def test_run_refuses_before_anything_runs(cluster, run, ecs):
    for tail in ([], ["--"]):
        result = run(*NAMES, "run", "--yes", *tail)
        assert result.exit_code == 2, result.output
        assert "no command to run" in result.stderr
    result = run(*NAMES, "run", "--container", "log-router", "--yes", "--", "true")
    assert result.exit_code == 2, result.output
    assert "not essential" in result.stderr
    result = run(*NAMES, "run", "--", "airflow", "dags", "list", input="n\n")
    assert result.exit_code == 1, result.output
    assert "Run 'airflow dags list' as a one-off task of airflow-prod-worker" in result.stderr
    assert one_off_tasks(ecs) == []


# --- workflow logs --------------------------------------------------------------------------------


@pytest.fixture
def wall(clock):
    return lambda: BASE + timedelta(seconds=clock.now())


@pytest.fixture
def logs_run(clock, wall):
    """Invoke the CLI with the wall clock the log events use; `sleep` may be replaced."""

    def invoke(*args, sleep=None):
        runtime = Runtime(clock=clock.now, sleep=sleep or clock.sleep, utcnow=wall)
        return CliRunner().invoke(main, list(args), obj=runtime)

    return invoke


@pytest.fixture
def put(sim, wall):
    """Write a line as the awslogs driver would: stream <prefix>/<container>/<task id>, `ago` seconds back."""
    logs = shared_client("logs")

    def write(task_id, message, ago=0.0, container="celery-worker", prefix="worker"):
        stream = f"{prefix}/{container}/{task_id}"
        try:
            logs.create_log_stream(logGroupName=GROUP, logStreamName=stream)
        except logs.exceptions.ResourceAlreadyExistsException:
            pass
        stamp = int((wall() - timedelta(seconds=ago)).timestamp() * 1000)
        logs.put_log_events(logGroupName=GROUP, logStreamName=stream, logEvents=[{"timestamp": stamp, "message": message}])

    return write


@pytest.fixture
def workers(cluster, ecs):
    arns = ecs.list_tasks(cluster=CLUSTER, serviceName=WORKER)["taskArns"]
    return sorted(arn.rsplit("/", 1)[-1] for arn in arns)


def test_logs_interleaves_the_lines_of_several_tasks_by_time(workers, put, logs_run, wall):
    a, b, c = workers
    put(a, "a first", ago=50)
    put(a, "a third", ago=30)
    put(b, "b second", ago=40)
    put(c, "c fourth", ago=20)
    put(b, "router line", ago=10, container="log-router")
    result = logs_run(*NAMES, "logs", "worker")
    assert result.exit_code == 0, result.output
    stamp = lambda ago: f"{wall() - timedelta(seconds=ago):%H:%M:%S}Z"  # noqa: E731
    assert result.stdout.splitlines() == [
        f"{stamp(50)} {a[:8]} celery-worker | a first",
        f"{stamp(40)} {b[:8]} celery-worker | b second",
        f"{stamp(30)} {a[:8]} celery-worker | a third",
        f"{stamp(20)} {c[:8]} celery-worker | c fourth",
        f"{stamp(10)} {b[:8]} log-router | router line",
    ]
    result = logs_run(*NAMES, "-o", "json", "logs", "worker")
    assert result.exit_code == 0, result.output
    first = json.loads(result.stdout)[0]
    assert first["task"] == a
    assert first["container"] == "celery-worker"
    assert first["message"] == "a first"
    assert first["stream"] == f"worker/celery-worker/{a}"
    assert first["time"].endswith("Z")
    result = logs_run(*NAMES, "logs", "worker", "--follow", "-o", "json")
    assert result.exit_code == 2, result.output
    assert "cannot --follow" in result.stderr


def test_logs_filters_by_task_id_prefix_and_by_container(workers, put, logs_run):
    a, b, _ = workers
    put(a, "from a")
    put(b, "from b")
    put(a, "router of a", container="log-router")
    result = logs_run(*NAMES, "logs", WORKER, "--task", a[:6])
    assert result.exit_code == 0, result.output
    assert [line.split(" | ")[1] for line in result.stdout.splitlines()] == ["from a", "router of a"]
    result = logs_run(*NAMES, "logs", "worker", "--container", "log-router")
    assert [line.split(" | ")[1] for line in result.stdout.splitlines()] == ["router of a"]


def test_logs_refuses_an_unknown_service_task_or_container(workers, logs_run):
    result = logs_run(*NAMES, "logs", "airflow-prod-wroker")
    assert result.exit_code == 2, result.output
    assert "did you mean airflow-prod-worker" in result.stderr
    result = logs_run(*NAMES, "logs", "worker", "--task", "nosuchtask")
    assert result.exit_code == 2, result.output
    assert "no task of airflow-prod-worker has an id starting with nosuchtask" in result.stderr
    result = logs_run(*NAMES, "logs", "worker", "--container", "webserver")
    assert result.exit_code == 2, result.output
    assert "these do: celery-worker, log-router" in result.stderr
    assert "Traceback" not in result.output


def test_logs_since_excludes_older_lines(workers, put, logs_run):
    put(workers[0], "twenty minutes ago", ago=1200)
    put(workers[0], "five minutes ago", ago=300)
    assert [line.split(" | ")[1] for line in logs_run(*NAMES, "logs", "worker").stdout.splitlines()] == ["five minutes ago"]
    result = logs_run(*NAMES, "logs", "worker", "--since", "30m")
    assert [line.split(" | ")[1] for line in result.stdout.splitlines()] == ["twenty minutes ago", "five minutes ago"]
    result = logs_run(*NAMES, "logs", "worker", "--since", "ten minutes")
    assert result.exit_code == 2, result.output
    assert "not a duration: give seconds (30, 2.5) or a number with a unit: 30s, 15m" in result.stderr


def test_logs_of_a_service_with_nothing_logged_says_so_and_succeeds(empty_cluster, logs_run):
    result = logs_run(*NAMES, "logs", "scheduler")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "no log lines from 0 task(s)" in result.stderr


def test_logs_shows_crashed_tasks_lines_as_the_simulated_driver_wrote_them(cluster, ecs, sim, clock):
    """The simulated awslogs driver stamps lines with the simulation's wall clock; stopped tasks are read too."""
    sim.crash_deployments(WORKER, exit_code=1, after=4, lines=("ERROR: cannot connect to broker",))
    ecs.update_service(cluster=CLUSTER, service=WORKER, forceNewDeployment=True)
    clock.sleep(15)
    crashed = {t["taskArn"].rsplit("/", 1)[-1] for t in tasks(ecs, WORKER, "STOPPED") if t["containers"][0]["exitCode"] == 1}
    runtime = Runtime(clock=clock.now, sleep=clock.sleep, utcnow=lambda: clock.wall(clock.now()))
    result = CliRunner().invoke(main, [*NAMES, "logs", "worker"], obj=runtime)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == len(crashed) == 3
    assert {line.split()[1] for line in lines} == {task[:8] for task in crashed}
    assert all(line.endswith("celery-worker | ERROR: cannot connect to broker") for line in lines)


def test_follow_prints_each_new_line_once_and_stops_cleanly_on_ctrl_c(workers, put, logs_run, clock):
    a, b, _ = workers
    put(a, "before")
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        if len(sleeps) == 1:
            put(b, "new")
            put(a, "late, but within the window", ago=5)  # shipped late by the driver: older than "new"
        if len(sleeps) == 4:
            raise KeyboardInterrupt
        clock.sleep(seconds)

    result = logs_run(*NAMES, "logs", "worker", "--follow", sleep=sleep)
    assert result.exit_code == 0, result.output
    assert [line.split(" | ")[1] for line in result.stdout.splitlines()] == [
        "before", "late, but within the window", "new"
    ]
    assert "following 3 task(s) of airflow-prod-worker" in result.stderr
    assert "Traceback" not in result.output
    assert "interrupted" not in result.stderr
    assert min(sleeps) >= 2  # FilterLogEvents quotas are low: at most one read every two seconds


def test_follow_picks_up_new_tasks(workers, put, logs_run, clock, ecs):
    new_tasks = []

    def sleep(seconds):
        if not new_tasks:
            ecs.update_service(cluster=CLUSTER, service=WORKER, desiredCount=4)
            clock.sleep(10)  # the new task starts
            new_tasks.extend(set(arn.rsplit("/", 1)[-1] for arn in ecs.list_tasks(
                cluster=CLUSTER, serviceName=WORKER)["taskArns"]) - set(workers))
            put(new_tasks[0], "hello from the new worker")
        elif clock.now() > 200:
            raise KeyboardInterrupt
        clock.sleep(seconds)

    result = logs_run(*NAMES, "logs", "worker", "-f", sleep=sleep)
    assert result.exit_code == 0, result.output
    [line] = result.stdout.splitlines()
    assert line.endswith(f"{new_tasks[0][:8]} celery-worker | hello from the new worker")
    assert f"following task {new_tasks[0][:8]} of airflow-prod-worker (RUNNING)" in result.stderr


# --- reading many streams -------------------------------------------------------------------------


class FakeLogs:
    """FilterLogEvents as CloudWatch answers it: pages, and ResourceNotFoundException for a missing stream."""

    def __init__(self, streams: dict[str, list[dict]], group_exists=True):
        self.streams, self.group_exists = streams, group_exists
        self.calls: list[dict] = []
        self.meta = type("Meta", (), {"region_name": REGION})()

    def filter_log_events(self, **kwargs):
        self.calls.append(kwargs)
        names = kwargs.get("logStreamNames")
        if not self.group_exists or (names and any(n not in self.streams for n in names)):
            error = {"Code": "ResourceNotFoundException", "Message": "The specified log stream does not exist."}
            raise ClientError({"Error": error}, "FilterLogEvents")
        wanted = [n for n in self.streams if (names and n in names) or n.startswith(kwargs.get("logStreamNamePrefix", "\0"))]
        events = [{"logStreamName": n, **e} for n in wanted for e in self.streams[n]]
        page = int(kwargs.get("nextToken", 0))
        more = {"nextToken": str(page + 1)} if len(events) > page * 10 + 10 else {}
        return {"events": events[page * 10 : page * 10 + 10], **more}


def event(i, ms=0):
    return {"eventId": str(i), "timestamp": BASE.timestamp() * 1000 + ms, "message": f"line {i}"}


def test_streams_are_named_100_a_call_and_every_page_is_read():
    streams = {f"worker/celery-worker/task{i:03}": [event(i)] for i in range(150)}
    client = FakeLogs(streams)
    events = read_streams(client, GROUP, {name: (name[-7:], "celery-worker") for name in streams}, BASE)
    assert len(events) == 150
    assert {e.task_id for e in events} == {f"task{i:03}" for i in range(150)}
    assert [len(c["logStreamNames"]) for c in client.calls if "nextToken" not in c] == [100, 50]
    assert len(client.calls) == 15  # ten events a page


def test_a_stream_not_created_yet_is_read_by_its_prefix_instead():
    client = FakeLogs({"worker/celery-worker/a": [event(1)], "worker/celery-worker/other": [event(2)]})
    wanted = {"worker/celery-worker/a": ("a", "celery-worker"), "worker/celery-worker/b": ("b", "celery-worker")}
    events = read_streams(client, GROUP, wanted, BASE)
    assert [e.message for e in events] == ["line 1"]  # not the stream nobody asked for
    assert client.calls[-1]["logStreamNamePrefix"] == "worker/celery-worker/"


def test_a_missing_log_group_is_named():
    with pytest.raises(NotFound, match=f"log group {GROUP} not found in region {REGION}"):
        read_streams(FakeLogs({}, group_exists=False), GROUP, {"worker/celery-worker/a": ("a", "celery-worker")}, BASE)


# --- shell completion -----------------------------------------------------------------------------


@pytest.mark.parametrize(("shell", "text"), [
    ("bash", "complete -o nosort -F _workflow_completion workflow"),
    ("zsh", "compdef _workflow_completion workflow"),
    ("fish", "complete --no-files --command workflow"),
])
def test_the_completion_script_is_produced(shell, text):
    result = CliRunner().invoke(main, [], prog_name="workflow", env={"_WORKFLOW_COMPLETE": f"{shell}_source"})
    assert result.exit_code == 0, result.output
    assert text in result.output


def test_completion_knows_the_commands_and_the_roles():
    def complete(words: str) -> list[str]:
        env = {"_WORKFLOW_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split(" ")) - 1)}
        result = CliRunner().invoke(main, [], prog_name="workflow", env=env)
        return [line.split(",", 1)[1] for line in result.output.splitlines()]

    assert complete("workflow lo") == ["logs"]
    assert complete("workflow logs w") == ["webserver", "worker", "web"]


# --- RunTask under throttling, the log grace inside the timeout, JSON on failure -------------------------


def test_a_throttled_run_task_started_nothing_and_is_asked_again(cluster, run, sim, ecs):
    sim.faults.inject("RunTask", "throttle", times=20)  # two calls of eight attempts, and four more
    result = run(*FAST, "run", "--yes", "--", "airflow", "dags", "list")
    assert result.exit_code == 0, result.output
    assert "RunTask failed: ThrottlingException" in result.stderr
    assert "still waiting" in result.stderr
    assert len(one_off_tasks(ecs)) == 1


def test_a_run_task_throttled_until_the_deadline_times_out_saying_so_and_that_nothing_started(cluster, run, sim, ecs):
    sim.faults.inject("RunTask", "throttle", times=10_000)
    result = run(*FAST, "--timeout", "60", "run", "--yes", "--", "airflow", "dags", "list")
    assert result.exit_code == 3, result.output
    assert "waiting for ECS to accept RunTask" in result.stderr
    assert "AWS throttled every one of the" in result.stderr
    assert "may have been started" not in result.stderr
    assert "answer was lost" not in result.stderr
    assert one_off_tasks(ecs) == []


def test_a_run_task_whose_first_answer_was_lost_runs_one_task(cluster, run, sim, ecs):
    """botocore repeats the call with the same clientToken, and ECS answers the repeat with the task it started."""
    sim.faults.inject("RunTask", "server", times=1, after=True)  # applied, then a 500
    result = run(*FAST, "run", "--yes", "--", "airflow", "dags", "list")
    assert result.exit_code == 0, result.output
    assert sim.faults.count["server"] == 1
    assert len(one_off_tasks(ecs)) == 1


@pytest.mark.parametrize("faults", [[("server", 8)], [("server", 1), ("throttle", 7)]], ids=["5xx", "5xx-then-throttled"])
def test_a_run_task_whose_answer_may_have_been_lost_is_never_asked_again(cluster, run, sim, faults):
    for kind, times in faults:
        sim.faults.inject("RunTask", kind, times=times)
    result = run(*FAST, "run", "--yes", "--", "airflow", "dags", "list")
    assert result.exit_code == 1, result.output
    assert "RunTask's answer was lost" in result.stderr
    assert "a task may be running" in result.stderr
    assert sim.faults.count["throttle"] + sim.faults.count["server"] == 8  # botocore's attempts, and no more


def test_throttled_retries_in_a_wait_leave_every_later_call_its_attempts(cluster, sim, clock, ecs):
    """botocore's retry quota (500 tokens) ran dry during long waits, and the next call failed at its first error."""
    injected = []

    def sleep(seconds):
        if not injected:  # inside the stop wait: throttle its reads, then the lease's release after it
            sim.faults.inject("DescribeTasks", "throttle", times=120)
            sim.faults.inject("UntagResource", "throttle", times=7)
            injected.append(True)
        clock.sleep(seconds)

    result = CliRunner().invoke(main, [*NAMES, "stop-scheduler", "--yes"], obj=Runtime(clock=clock.now, sleep=sleep))
    assert result.exit_code == 0, result.output
    assert sim.faults.count["throttle"] == 127
    assert "could not release the lease" not in result.stderr
    assert ecs.list_tags_for_resource(resourceArn=cluster_arn(ecs))["tags"] == []


def test_a_log_grace_longer_than_the_timeout_never_turns_success_into_a_timeout(empty_cluster, run, ecs):
    result = run(*NAMES, "--timeout", "40", "--log-grace", "300", "initialize", "--yes")
    assert result.exit_code == 0, result.output
    assert "succeeded" in result.stdout
    assert "timed out" not in result.stderr


@pytest.mark.parametrize("args, named", [
    ([*NAMES, "logs", "airflow-prod-nope"], "airflow-prod-nope"),
    (["--cluster", "airflow-prd", "logs", "worker"], "cluster airflow-prd not found"),
])
def test_logs_prints_one_json_document_when_it_fails(cluster, run, args, named):
    result = run("--output", "json", *args)
    assert result.exit_code == 2
    document = json.loads(result.stdout)
    assert document["exit_code"] == 2
    assert named in document["error"]
