"""The command-line surface: help, options from the environment, and every expected error without a traceback."""

import json
import re
import shlex
import subprocess
import sys

import click
import pytest
from botocore.stub import Stubber
from click.testing import CliRunner
from conftest import CLUSTER, CLUSTER_ARN, NAMES, REGION, SCHEDULER, WEB, WORKER, new_client, shared_client
from helpers import cluster_arn, describe, describe_services, recording_sandbox, resume_of

from workflow import cli
from workflow.app import Runtime
from workflow.cli import main

COMMANDS = sorted(main.list_commands(click.Context(main)))


def test_the_commands_are_listed_with_their_own_first_help_line():
    assert "sandbox" in COMMANDS  # registered by workflow_sandbox's entry point
    for name, (_, help) in (*cli.COMMANDS.items(), *cli.OPTIONAL.items()):
        command = main.get_command(click.Context(main), name)
        assert command.help.split("\n")[0] == help, name


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example_and_it_fits_80_columns(command):
    result = CliRunner().invoke(main, [command, "--help"], terminal_width=80)
    assert result.exit_code == 0
    example = result.output.split("Example:", 1)[1].split("Options:", 1)[0]
    assert example.strip().startswith("workflow ")
    assert command in example
    assert [line for line in result.output.splitlines() if len(line) > 80] == []  # examples, choices


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_every_option_of_every_command_shows_its_variable_and_its_default(command):
    """An off flag (--yes, --dry-run) and an option without a value (--cluster) showed no default."""
    group_context = click.Context(main)
    found = main if command is None else main.get_command(group_context, command)
    context = click.Context(found, parent=group_context)
    for param in found.params:
        if isinstance(param, click.Option) and not param.hidden and not {"--help", "--version"} & set(param.opts):
            record = param.get_help_record(context)
            assert record and "WORKFLOW_" in record[1] and "default:" in record[1], (command, param.opts, record)


def test_every_option_names_its_environment_variable_and_default():
    text = CliRunner().invoke(main, ["--help"]).output
    for name in ("CLUSTER", "SCHEDULER", "WORKER", "WEB", "REGION", "PROFILE", "ENDPOINT_URL", "POLL_INTERVAL", "TIMEOUT"):
        assert f"WORKFLOW_{name}" in text
    assert "(<cluster>-scheduler)" in text
    assert "default: 900.0" in text


def test_help_and_version_do_not_import_boto3():
    code = (
        "import sys; from workflow.cli import main\n"
        "for args in (['--help'], ['--version'], ['redeploy', '--help']):\n"
        "    try: main(args)\n"
        "    except SystemExit: pass\n"
        "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules, 'imported boto3'\n"
        "assert 'importlib.metadata' not in sys.modules and 'workflow_sandbox' not in sys.modules, 'read plugins'\n"
        # The ECS model's and the deployment watch's dataclasses: a command's --help prints before either is needed.
        "assert 'workflow.ecs' not in sys.modules and 'workflow.deployments' not in sys.modules, 'built the model'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_options_come_from_the_environment(cluster, run, monkeypatch, ecs):
    monkeypatch.setenv("WORKFLOW_CLUSTER", CLUSTER)
    monkeypatch.setenv("WORKFLOW_YES", "1")
    result = run("stop-scheduler")
    assert result.exit_code == 0, result.output
    assert describe(ecs, SCHEDULER)["desiredCount"] == 0


def test_service_names_default_from_the_cluster(cluster, run):
    assert run("--cluster", CLUSTER, "start-scheduler").stdout.startswith(f"scheduler {SCHEDULER} is already running")


def test_json_output(cluster, run):
    result = run(*NAMES, "start-scheduler", "--output", "json")
    assert result.exit_code == 0, result.output
    assert '"summary": "scheduler airflow-prod-scheduler is already running"' in result.stdout


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["stop-scheduler", "--yes"], 2, "Missing option '--cluster'"),
        (["--cluster", "nope", "stop-scheduler", "--yes"], 2, "cluster nope not found"),
        ([*NAMES[:2], "--worker", "w1", "--web", "w2", "redeploy", "--yes"], 2,
         f"services not found in cluster {CLUSTER}: w1, w2"),
        ([*NAMES, "--poll-interval", "0", "redeploy"], 2, "Invalid value for '--poll-interval'"),
    ],
)
def test_usage_and_not_found_errors(cluster, run, args, code, message):
    result = run(*args)
    assert result.exit_code == code
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_no_credentials(cluster, run, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    result = run(*NAMES, "stop-scheduler", "--yes")
    assert result.exit_code == 2, result.output
    assert "Unable to locate credentials" in result.stderr
    assert "hint: set AWS_PROFILE" in result.stderr


def test_no_region(run, monkeypatch):
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    result = run(*NAMES, "stop-scheduler", "--yes")
    assert result.exit_code == 2, result.output
    assert "You must specify a region" in result.stderr
    assert "hint: pass --region" in result.stderr


def test_unknown_profile(run):
    result = run("--profile", "nobody", *NAMES, "stop-scheduler", "--yes")
    assert result.exit_code == 2, result.output
    assert "nobody" in result.stderr


def test_access_denied_names_the_action(clock):
    client = new_client("ecs")
    stubber = Stubber(client)
    stubber.add_response("list_services", {"serviceArns": []}, {"cluster": CLUSTER})
    stubber.add_client_error("describe_services", "AccessDeniedException", "not allowed to ecs:DescribeServices")
    stubber.activate()
    runtime = Runtime(clock=clock.now, sleep=clock.sleep, clients=lambda config: lambda name: client)
    result = CliRunner().invoke(main, [*NAMES, "stop-scheduler", "--yes"], obj=runtime)
    assert result.exit_code == 2
    assert "access denied to DescribeServices" in result.stderr
    assert "Traceback" not in result.output


def test_progress_has_no_colour_or_cursor_codes(cluster, run, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    result = run(*NAMES, "stop-scheduler", "--yes")
    assert "\x1b[" not in result.stderr
    assert "\r" not in result.stderr
    assert all(re.match(r"\d\d:\d\d:\d\dZ +\+\d+s ", line) or line.startswith(" " * 16)
               for line in result.stderr.splitlines())


def test_results_go_to_stdout_and_progress_to_stderr(cluster, run):
    result = run(*NAMES, "stop-scheduler", "--yes")
    assert "==>" not in result.stdout
    assert "==>" in result.stderr
    assert result.stdout.startswith(f"scheduler {SCHEDULER} stopped")


def test_redeploy_confirmation_declined_changes_nothing(cluster, run, ecs):
    result = run(*NAMES, "redeploy", input="n\n")
    assert result.exit_code == 1, result.output
    assert "Aborted" in result.stderr
    assert all(len(s["deployments"]) == 1 for s in describe_services(ecs, WEB, WORKER).values())


def test_sandbox_without_moto_says_how_to_install_it(run, monkeypatch):
    monkeypatch.setitem(sys.modules, "workflow_sandbox.server", None)
    result = run("sandbox")
    assert result.exit_code == 2, result.output
    assert "pipenv install --dev" in result.stderr


@pytest.mark.parametrize("option", ["--task-start-seconds", "--missing-seconds", "--stale-seconds", "--log-delay"])
def test_sandbox_refuses_durations_that_are_not_finite(run, option):
    result = run("sandbox", option, "nan")
    assert result.exit_code == 2, result.output
    assert "not a finite number of seconds" in result.stderr


def test_sandbox_on_a_taken_port_is_a_clear_error(run):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = run("sandbox", "--port", str(taken.getsockname()[1]))
    assert result.exit_code == 2, result.output
    assert "cannot start the sandbox" in result.stderr


def test_the_sandbox_command_passes_its_options_on(run, monkeypatch):
    """The options tests/test_e2e.py gives an in-process sandbox are those `workflow sandbox` builds from its flags."""
    from workflow_sandbox import server

    recorded = recording_sandbox(monkeypatch)
    result = run("--cluster", CLUSTER, "sandbox", "--task-start-seconds", "0.6", "--task-stop-seconds", "0.4",
                 "--web-drain-seconds", "0.4", "--one-off-seconds", "0.4", "--fail-deployments", "worker",
                 "--init-exit-code", "3", "--throttle", "0.3", "--deployment-controller", "web=CODE_DEPLOY",
                 "--crash-deployments", "worker")
    assert result.exit_code == 0, result.stderr
    assert recorded == [server.SandboxConfig(
        cluster=CLUSTER, task_start_seconds=0.6, task_stop_seconds=0.4, web_drain_seconds=0.4, one_off_seconds=0.4,
        fail_deployments=("worker",), init_exit_code=3, throttle=0.3,
        deployment_controllers={"web": "CODE_DEPLOY"}, crash_deployments=("worker",)), "started", "stopped"]
    assert result.stdout == "export AWS_ENDPOINT_URL=http://127.0.0.1:4566\n"


@pytest.mark.parametrize("words", [["--fail-deployments", "nosuch"], ["--deployment-controller", "bogus=CODE_DEPLOY"],
                                   ["--airflow", "2", "--crash-deployments", "api-server"]])
def test_the_sandbox_refuses_a_service_its_shape_does_not_have(run, monkeypatch, words):
    """It started, and rehearsed nothing, without a word."""
    recorded = recording_sandbox(monkeypatch)
    result = run("sandbox", *words)
    assert result.exit_code == 2, result.output
    assert "sandbox has no service" in result.stderr and "name one of" in " ".join(result.stderr.split())
    assert recorded == []


def test_the_sandboxs_web_is_the_api_server_on_airflow_3_for_every_option():
    """`--deployment-controller web=CODE_DEPLOY` left the api-server on ECS: the name went through unmapped."""
    from workflow_sandbox.server import SandboxConfig

    assert SandboxConfig(deployment_controllers={"web": "CODE_DEPLOY"}).controllers() == {"api-server": "CODE_DEPLOY"}
    assert SandboxConfig(airflow=2, deployment_controllers={"web": "EXTERNAL"}).controllers() == {"web": "EXTERNAL"}
    assert SandboxConfig(deployment_controllers={"airflow-prod-worker": "EXTERNAL"}).controllers() == {
        "worker": "EXTERNAL"}


def test_interrupting_initialize_says_the_task_keeps_running_and_offers_no_rerun(empty_cluster, clock):
    def sleep(_):
        raise KeyboardInterrupt

    result = CliRunner().invoke(main, [*NAMES, "initialize", "--yes"], obj=Runtime(clock=clock.now, sleep=sleep))
    assert result.exit_code == 130
    assert "keeps running; stopping this command does not stop it" in result.stderr
    assert "resume with" not in result.stderr


def test_cluster_commands_build_only_the_clients_they_use(cluster, clock):
    built = []

    def clients(config):
        def build(name):
            built.append(name)
            return shared_client(name)

        return build

    runtime = Runtime(clock=clock.now, sleep=clock.sleep, clients=clients)
    assert CliRunner().invoke(main, [*NAMES, "stop-scheduler", "--yes"], obj=runtime).exit_code == 0
    assert set(built) == {"ecs"}


def test_global_options_may_follow_the_command_name(cluster, run, ecs):
    result = run("stop-scheduler", "--cluster", CLUSTER, "--yes", "--poll-interval", "1")
    assert result.exit_code == 0, result.output
    assert describe(ecs, SCHEDULER)["desiredCount"] == 0


def test_a_global_option_after_the_command_wins_over_one_before(cluster, run):
    result = run("--cluster", "nope", "status", "--cluster", CLUSTER)
    assert result.exit_code == 0, result.output


def test_command_help_says_global_options_may_follow(run):
    assert "Global options may also follow the command name" in run("--help").output


def test_cluster_not_found_says_where_it_looked_and_what_is_there(cluster, run):
    result = run("--cluster", "airflow-prd", "status")
    assert result.exit_code == 2
    assert "region us-east-1" in result.stderr
    assert "clusters there: airflow-prod" in result.stderr


def test_a_service_typo_suggests_the_closest(cluster, run):
    result = run("--cluster", CLUSTER, "--worker", "airflow-prod-wroker", "status")
    assert result.exit_code == 2, result.output
    assert "did you mean airflow-prod-worker" in result.stderr


def test_arns_are_accepted_for_cluster_and_services(cluster, run, ecs):
    arn = cluster_arn(ecs)
    scheduler_arn = describe(ecs, SCHEDULER)["serviceArn"]
    result = run("--cluster", arn, "--scheduler", scheduler_arn, "status")
    assert result.exit_code == 0, result.output
    # Defaults from the cluster's name, not its ARN; the table names them without the cluster's prefix.
    assert re.search(r"^scheduler ", result.stdout, re.M)
    assert re.search(r"^worker ", result.stdout, re.M)


@pytest.mark.parametrize("args, message", [
    (["--poll-interval", "nan", "stop-scheduler", "--yes"], "not a finite number of seconds"),
    (["--timeout", "inf", "stop-scheduler", "--yes"], "not a finite number of seconds"),
    (["initialize", "--yes", "--command", "airflow 'db"], "No closing quotation"),
    (["initialize", "--yes", "--command", ""], "the command is empty"),
])
def test_bad_values_are_usage_errors_before_anything_is_sent(cluster, run, ecs, args, message):
    result = run(*NAMES, *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert describe(ecs, SCHEDULER)["desiredCount"] == 1


@pytest.mark.parametrize("variables, hint", [
    ({"AWS_MAX_ATTEMPTS": "abc"}, "invalid AWS configuration"),
    ({"AWS_ENDPOINT_URL": "not a url"}, "invalid AWS configuration: Invalid endpoint"),
    ({"AWS_SECRET_ACCESS_KEY": None}, "hint: set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
])
def test_configuration_mistakes_are_exit_2_with_a_hint(run, monkeypatch, variables, hint):
    for name, value in variables.items():
        if value is None:
            monkeypatch.delenv(name)
        else:
            monkeypatch.setenv(name, value)
    result = run(*NAMES, "status")
    assert result.exit_code == 2, result.output
    assert hint in result.stderr
    assert "Traceback" not in result.output


def test_a_malformed_config_file_is_exit_2(run, monkeypatch, tmp_path):
    config = tmp_path / "config"
    config.write_text("[profile broken\nregion = us-east-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    result = run("--profile", "broken", *NAMES, "status")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("signal_name, code", [("SIGTERM", 143), ("SIGHUP", 129)])
def test_sigterm_and_sighup_say_the_state_and_how_to_resume(cluster, clock, signal_name, code):
    import os
    import signal

    def sleep(_seconds):
        os.kill(os.getpid(), getattr(signal, signal_name))

    result = CliRunner().invoke(main, [*NAMES, "stop-scheduler", "--yes"], obj=Runtime(clock=clock.now, sleep=sleep))
    assert result.exit_code == code, result.output
    assert f"interrupted by {signal_name}" in result.stderr
    assert "cluster state: the scheduler is stopping" in result.stderr
    assert resume_of(result.stderr) == ["workflow", "--cluster", CLUSTER_ARN, "--region", REGION, "stop-scheduler", "--yes"]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or callable(signal.getsignal(signal.SIGTERM))


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_signal_as_the_result_is_printed_does_not_turn_success_into_failure(cluster, run, ecs, monkeypatch,
                                                                              signal_name):
    """The scheduler has stopped and the result is on stdout: exiting 130 then told automation the stop failed."""
    import os
    import signal

    import workflow.render

    printed = workflow.render.result

    def interrupted_while_printing(*args):
        os.kill(os.getpid(), getattr(signal, signal_name))
        return printed(*args)

    monkeypatch.setattr(workflow.render, "result", interrupted_while_printing)
    result = run(*NAMES, "-o", "json", "stop-scheduler", "--yes")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["summary"] == f"scheduler {SCHEDULER} stopped"
    assert f"{signal_name} came as the command finished: the result above stands" in result.stderr
    assert describe(ecs, SCHEDULER)["desiredCount"] == 0
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_signal_while_the_lease_is_released_ends_the_command_at_once_with_its_success(cluster, run, ecs,
                                                                                       monkeypatch):
    """Released with signals ignored, a lease release that hung (AWS not answering) held the command for minutes
    against Ctrl-C, SIGTERM and SIGHUP; the lease expires on its own, and the stop had succeeded."""
    import os
    import signal
    import time

    from workflow.app import App

    released = App.release_leases

    def hanging(self):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)  # the signal ends this at once
        released(self)

    monkeypatch.setattr(App, "release_leases", hanging)
    began = time.monotonic()
    result = run(*NAMES, "-o", "json", "stop-scheduler", "--yes")
    assert time.monotonic() - began < 10
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["summary"] == f"scheduler {SCHEDULER} stopped"
    assert "SIGTERM while the lease was released: the result above stands, and the lease expires on its own" in \
        " ".join(result.stderr.split())
    assert describe(ecs, SCHEDULER)["desiredCount"] == 0


def test_progress_to_a_closed_pipe_does_not_stop_the_operation(cluster, run, clock, ecs, sim, monkeypatch):
    from workflow import app
    from workflow.progress import Reporter

    attempts = []

    def closed(text):
        attempts.append(text)
        raise BrokenPipeError

    report = Reporter(clock.now, write=closed)
    report.line("one")
    report.line("two")
    assert [line.split()[-1] for line in attempts] == ["one"]  # no second attempt, and no error

    # A whole command whose progress reader has gone: it finishes what it began, and says so on stdout.
    attempts.clear()
    monkeypatch.setattr(app, "Reporter", lambda *args, **kwargs: Reporter(*args, **kwargs, write=closed))
    result = run(*NAMES, "stop-scheduler", "--yes")
    assert result.exit_code == 0, result.output
    assert len(attempts) == 1  # its first progress line met the closed pipe; nothing was written after it
    assert describe(ecs, SCHEDULER)["desiredCount"] == 0
    assert sim.alive(SCHEDULER) == []  # it waited for the scheduler to stop, as it does with a reader
    assert "stopped" in result.stdout


# --- confirmations, JSON documents and one-off task hints -------------------------------------------------


def test_a_confirmation_names_the_account_and_region_after_checking_the_names(cluster, run, ecs):
    result = run(*NAMES, "stop-scheduler", input="n\n")
    assert result.exit_code == 1, result.output
    assert "Aborted" in result.stderr
    assert "(account 123456789012, us-east-1)?" in " ".join(result.stderr.split())
    assert describe(ecs, SCHEDULER)["desiredCount"] == 1


@pytest.mark.parametrize("args", [["stop-scheduler"], ["redeploy"], ["promote"]])
def test_a_confirmation_fits_80_columns_with_its_answer(cluster, run, monkeypatch, args):
    monkeypatch.setenv("COLUMNS", "80")
    result = run(*NAMES, *args, input="n\n")
    assert result.exit_code == 1, result.output
    assert "[y/N]:" in result.stderr
    assert max(map(len, result.stderr.splitlines())) <= 80, result.stderr


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:4566", "http://localhost:4566", "http://[::1]:4566"])
def test_a_confirmation_names_a_sandbox_on_loopback(cluster, clock, endpoint):
    from types import SimpleNamespace

    class AtEndpoint:  # the simulated cluster's client, as if reached at `endpoint`
        def __init__(self, client):
            self._client = client
            self.meta = SimpleNamespace(endpoint_url=endpoint, region_name=client.meta.region_name)

        def __getattr__(self, name):
            return getattr(self._client, name)

    def clients(config):
        return lambda name, *args, **kwargs: AtEndpoint(shared_client(name))

    runtime = Runtime(clock=clock.now, sleep=clock.sleep, clients=clients)
    result = CliRunner().invoke(main, [*NAMES, "stop-scheduler"], obj=runtime, input="n\n")
    assert result.exit_code == 1, result.output
    assert f"(account 123456789012, us-east-1, sandbox at {endpoint})?" in result.stderr


def test_a_typo_is_reported_before_the_question(cluster, run):
    result = run("--cluster", CLUSTER, "--scheduler", "nope", "stop-scheduler", input="y\n")
    assert result.exit_code == 2, result.output
    assert "services not found" in result.stderr
    assert "[y/N]" not in result.stderr


def test_without_a_terminal_and_without_yes_the_command_says_how_to_confirm(cluster, run, ecs):
    result = run(*NAMES, "stop-scheduler")  # no input at all, as in CI
    assert result.exit_code == 2, result.output
    assert "pass --yes (or set WORKFLOW_YES=1)" in result.stderr
    assert describe(ecs, SCHEDULER)["desiredCount"] == 1


@pytest.mark.parametrize("args", [
    ["status"], ["stop-scheduler", "--yes"], ["start-scheduler"], ["initialize", "--yes"], ["redeploy", "--yes"],
    ["initialize", "--yes", "--no-wait"],
])
def test_every_command_prints_one_json_document(cluster, run, args):
    result = run(*NAMES, "--output", "json", *args)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert "frozenset" not in result.stdout
    assert "datetime" not in result.stdout
    if args == ["status"]:
        assert document["scheduler_tasks_alive"] == 1
    if args[0] == "initialize":
        assert document["essential"] == ["celery-worker"]


@pytest.mark.parametrize("args, says", [
    (["--output", "json", "--timeout", "bad", "status"], "'bad' is not a duration"),
    (["--output", "json", "redeploy", "--bogus"], "No such option '--bogus'"),
    (["-o", "json", "redeploy", "--schedulers", "0"], "0 is not in the range"),
    (["--output=json", "logs"], "Missing argument 'SERVICE'"),
    (["status", "-ojson", "--timeout", "5x"], "'5x' is not a duration"),  # a global option after the command
    (["--cluster", "nowhere", "--output", "json", "status"], "nowhere"),  # found missing as the command prepares
    (["--output", "json", "stop-scheduler"], "--yes"),  # no terminal to confirm on
])
def test_with_json_output_every_failure_prints_one_document_even_before_the_command_runs(cluster, run, args, says):
    result = run(*([] if "--cluster" in args else NAMES), *args)
    assert result.exit_code in (1, 2), result.output
    document = json.loads(result.stdout)
    assert document["exit_code"] == result.exit_code
    assert says in document["error"] and "\n       " not in document["error"]  # unwrapped: wrapping is for terminals
    assert says in " ".join(result.stderr.split())


def test_a_failure_still_prints_one_json_document_with_the_error(cluster, run, sim):
    sim.fail_deployments(WORKER, "pull")
    result = run(*NAMES, "--output", "json", "redeploy", "--yes")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["exit_code"] == 1
    assert "CannotPullContainerError" in document["error"]
    assert document["cluster_state"].startswith("the scheduler is stopped")
    assert document["resume"].endswith("redeploy --yes")
    assert document["alternatives"][0].endswith("start-scheduler")


def test_a_failed_initialize_is_not_shown_done_and_says_where_the_whole_log_is(empty_cluster, run, sim):
    sim.one_off_exit_code = 3
    result = run(*NAMES, "initialize", "--yes")
    assert result.exit_code == 1
    assert ": done in" not in result.stderr
    assert ": stopped after" in result.stderr
    assert "the whole log: log group /ecs/airflow-prod, stream worker/celery-worker/" in result.stderr


def test_initialize_no_wait_and_ctrl_c_say_how_to_follow_or_stop_the_task(empty_cluster, run, clock):
    result = run(*NAMES, "initialize", "--yes", "--no-wait")
    assert result.stdout.startswith("task ") and " started in cluster airflow-prod\n" in result.stdout  # no ARN
    follow, stop = (resume_of(result.stdout, purpose) for purpose in ("read its log", "stop it"))
    assert follow[:7] == ["aws", "logs", "get-log-events", "--log-group-name", "/ecs/airflow-prod",  # CLI v1 and v2
                          "--log-stream-name", follow[6]]
    assert follow[6].startswith("worker/celery-worker/")
    assert stop[:5] == ["aws", "ecs", "stop-task", "--cluster", "airflow-prod"]
    for words in (follow, stop):  # where this command acted, whatever the shell it is pasted into says
        assert words[words.index("--region") + 1] == REGION
    steps = json.loads(run(*NAMES, "-o", "json", "initialize", "--yes", "--no-wait").stdout)["next_steps"]
    assert [(s["purpose"], shlex.split(s["command"])[:3]) for s in steps] == [
        ("read its log", ["aws", "logs", "get-log-events"]), ("stop it", ["aws", "ecs", "stop-task"])]

    def sleep(_):
        raise KeyboardInterrupt

    waiting = CliRunner().invoke(main, [*NAMES, "initialize", "--yes"], obj=Runtime(clock=clock.now, sleep=sleep))
    assert waiting.exit_code == 130, waiting.output  # stopped while it waits for the two tasks above to end
    said = " ".join(waiting.stderr.split())
    assert "an earlier command's `airflow db migrate`, still runs: this one migrates once it has stopped" in said
    assert "cluster state: an earlier command's migration task" in said and "scheduler" not in said
    clock.sleep(60)  # the two tasks above have ended: a migration waits for one still running
    interrupted = CliRunner().invoke(main, [*NAMES, "initialize", "--yes"], obj=Runtime(clock=clock.now, sleep=sleep))
    assert interrupted.exit_code == 130, interrupted.output
    assert resume_of(interrupted.stderr, "stop it")[:3] == ["aws", "ecs", "stop-task"]
    clock.sleep(60)
    document = json.loads(CliRunner().invoke(main, [*NAMES, "-o", "json", "initialize", "--yes"],
                                             obj=Runtime(clock=clock.now, sleep=sleep)).stdout)
    # The state in words, one line; the commands as next steps, each one shell line (they were inside the state).
    assert document["cluster_state"].endswith("keeps running; stopping this command does not stop it")
    assert "\n" not in document["cluster_state"]
    assert [(s["purpose"], shlex.split(s["command"])[:3]) for s in document["next_steps"]] == [
        ("read its log", ["aws", "logs", "get-log-events"]), ("stop it", ["aws", "ecs", "stop-task"])]


def test_the_aws_commands_printed_act_on_the_region_endpoint_and_profile_in_effect(monkeypatch):
    """Pasted into a shell with other AWS defaults, an AWS CLI command printed for the operator acts where the
    command that printed it did: its Region (or the one a log group lives in), endpoint and profile."""
    from workflow.app import App

    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    app = App(Runtime(), {"region": None, "endpoint_url": "http://127.0.0.1:4566", "profile": "ops"})
    assert app.aws_words(["ecs", "stop-task", "--task", "t"]) == [
        "aws", "ecs", "stop-task", "--task", "t", "--region", "eu-west-1", "--endpoint-url", "http://127.0.0.1:4566",
        "--profile", "ops"]
    assert app.aws_words(["logs", "tail", "g"], "us-west-2")[3:5] == ["g", "--region"]
    assert app.aws_words(["logs", "tail", "g"], "us-west-2")[5] == "us-west-2"


@pytest.mark.parametrize("error, code, hint", [
    ("SSOTokenLoadError", 2, "aws sso login"),
    ("CredentialRetrievalError", 2, "credential_process"),
    ("SSLError", 2, "AWS_CA_BUNDLE"),
    ("ProxyConnectionError", 2, "HTTPS_PROXY"),
    ("ResponseParserError", 1, "AWS answered something unreadable"),
])
def test_credential_transport_and_parsing_failures_have_no_traceback(cluster, clock, error, code, hint):
    from botocore import exceptions, parsers

    kinds = {
        "SSOTokenLoadError": lambda: exceptions.SSOTokenLoadError(error_msg="the SSO session has expired"),
        "CredentialRetrievalError": lambda: exceptions.CredentialRetrievalError(provider="process", error_msg="exit 1"),
        "SSLError": lambda: exceptions.SSLError(endpoint_url="https://ecs", error="certificate verify failed"),
        "ProxyConnectionError": lambda: exceptions.ProxyConnectionError(proxy_url="http://proxy", error="refused"),
        "ResponseParserError": lambda: parsers.ResponseParserError("garbled body"),
    }

    def clients(config):
        def build(name, region=None, attempts=None):
            client = new_client(name)

            def fail(**_):
                raise kinds[error]()

            client.meta.events.register("before-send", fail)
            return client

        return build

    result = CliRunner().invoke(main, [*NAMES, "--timeout", "5", "status"],
                                obj=Runtime(clock=clock.now, sleep=clock.sleep, clients=clients))
    assert result.exit_code == code, result.output
    assert hint in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args, message", [
    (["promote", "--yes", "--source", ":"], "names no image"),
    (["promote", "--yes", "--dest", " "], "the destination repository is empty"),
])
def test_bad_promote_names_are_usage_errors(run, args, message):
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr


def test_a_reader_that_stops_reading_stdout_does_not_turn_success_into_failure(cluster, run, monkeypatch):
    import workflow.render

    def closed_pipe(*_args):
        raise BrokenPipeError

    monkeypatch.setattr(workflow.render, "result", closed_pipe)
    assert run(*NAMES, "status").exit_code == 0


def test_status_names_another_command_changing_the_cluster(cluster, run, ecs):
    from datetime import UTC, datetime, timedelta

    from workflow.lease import Holder

    now = datetime.now(UTC).replace(microsecond=0)
    arn = cluster_arn(ecs)
    ecs.tag_resource(resourceArn=arn, tags=[Holder("x", "alice@bastion", "redeploy", now, now + timedelta(hours=1)).tag])
    result = run(*NAMES, "status")
    assert "warning: another command is changing the cluster: alice@bastion (redeploy)" in result.stdout


def test_start_scheduler_accepts_yes_for_scripts_that_pass_it_everywhere(cluster, run):
    assert run(*NAMES, "start-scheduler", "--yes").exit_code == 0


def test_progress_lines_carry_utc_wall_clock_time_and_short_ids(cluster, run):
    import re

    result = run(*NAMES, "redeploy", "--yes", "--poll-interval", "1")
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert all(re.match(r"\d\d:\d\d:\d\dZ +\+\d+s ", line) or line.startswith(" " * 16) for line in lines)
    assert not any(re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-", line) or re.search(r"ecs-svc/\d{19}", line) for line in lines)
    assert any(re.search(r": \d/\d running(, \d pending)? \| deploy \d{6} ", line) for line in lines)
    assert max(len(line) for line in lines if "waiting for" not in line) <= 130


# --- signals from the first moment, global options anywhere, values bounded, messages that say what happened ---


def test_an_inherited_ignored_sighup_stays_ignored(cluster, clock, ecs):
    """`nohup workflow ... redeploy`: the terminal's hang-up must not stop the command."""
    import os
    import signal

    def sleep(seconds):
        os.kill(os.getpid(), signal.SIGHUP)
        clock.sleep(seconds)

    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        result = CliRunner().invoke(main, [*NAMES, "stop-scheduler", "--yes"], obj=Runtime(clock=clock.now, sleep=sleep))
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)
    assert result.exit_code == 0, result.output
    assert describe(ecs, SCHEDULER)["desiredCount"] == 0


class SilentEndpoint:
    """Accepts connections and never answers: a command's first call hangs there."""

    def __init__(self):
        import socket
        import threading

        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.held: list = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                self.held.append(self.server.accept()[0])
            except OSError:
                return

    def close(self):
        self.server.close()
        for connection in self.held:
            connection.close()


@pytest.mark.realtime
def test_a_sigterm_before_the_operation_began_says_that_nothing_was_changed():
    """Before, SIGTERM ended the process without a word while the command loaded and looked the services up."""
    import signal
    import time

    endpoint = SilentEndpoint()
    try:
        process = subprocess.Popen([sys.executable, "-m", "workflow", "--cluster", CLUSTER, "--endpoint-url", endpoint.url,
                                    "redeploy", "--yes"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        while not endpoint.held and time.monotonic() < deadline:  # its first call: the topology, before the runner
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
    finally:
        endpoint.close()
    assert process.returncode == 143, stderr
    assert stderr.strip() == "Error: interrupted by SIGTERM; nothing was changed"


def test_break_lease_and_a_value_taking_global_option_may_follow_the_command_name(cluster, run, ecs, clock):
    import os
    import signal

    from workflow.lease import Holder

    now = clock.wall(clock.now()).replace(microsecond=0)
    arn = cluster_arn(ecs)
    stale = Holder("crashed", "alice@bastion", "redeploy", now, now + __import__("datetime").timedelta(hours=1))
    ecs.tag_resource(resourceArn=arn, tags=[stale.tag])
    result = run(*NAMES, "stop-scheduler", "--break-lease", "--yes", "--timeout", "60")
    assert result.exit_code == 0, result.output
    assert "broke the lease of alice@bastion" in result.stderr

    def sleep(_seconds):
        os.kill(os.getpid(), signal.SIGTERM)

    interrupted = CliRunner().invoke(main, [*NAMES, "start-scheduler", "--timeout", "60"],
                                     obj=Runtime(clock=clock.now, sleep=sleep))
    assert interrupted.exit_code == 143, interrupted.output
    assert resume_of(interrupted.stderr)[-3:] == ["--timeout", "60", "start-scheduler"]


@pytest.mark.parametrize("args, message", [
    (["--timeout", "1e11", "stop-scheduler", "--yes"], "'1e11' is too long: at most 7d"),
    (["--timeout", "1e15", "stop-scheduler", "--yes"], "'1e15' is too long: at most 7d"),
    (["stop-scheduler", "--yes", "--timeout", "1e400"], "not a finite number of seconds"),
    (["logs", "worker", "--since", "1000000d"], "'1000000d' is too long: at most 3653d"),
    (["--poll-interval", "1e300", "status"], "too long: at most 1h"),
    (["--timeout", "abc", "status"], "'abc' is not a duration: give seconds (30, 2.5) or a number with a unit: 30s, 15m"),
])
def test_durations_out_of_bounds_are_usage_errors_that_say_what_is_accepted(cluster, run, ecs, args, message):
    result = run(*NAMES, *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert describe(ecs, SCHEDULER)["desiredCount"] == 1


@pytest.mark.parametrize("timeout", ["900", "900s", "15m", "0.25h", "900.0"])
def test_every_duration_option_takes_the_same_forms(cluster, run, timeout):
    result = run(*NAMES, "--timeout", timeout, "--stability-window", "30s", "--log-grace", "6", "start-scheduler")
    assert result.exit_code == 0, result.output
    assert run(*NAMES, "logs", "worker", "--since", "600").exit_code == 0  # a bare number is seconds here too


def test_without_credentials_the_first_error_is_the_missing_credentials(run, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    result = run(*NAMES, "status")
    assert result.exit_code == 2
    assert "Unable to locate credentials" in result.stderr
    assert "region" not in result.stderr.lower()


def test_a_declined_confirmation_says_that_nothing_was_changed(cluster, run, ecs):
    result = run(*NAMES, "stop-scheduler", input="n\n")
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines()[-1] == "Error: Aborted: nothing was changed"
    assert describe(ecs, SCHEDULER)["desiredCount"] == 1


def test_a_redeploy_of_what_already_runs_asks_a_plain_question_under_its_plan(cluster, run, monkeypatch):
    """Every service runs `latest`: the question read "Redeploy every service of cluster airflow-prod already runs
    ...: a redeploy only restarts them, ... (account ...)?" and the plan above it had no heading."""
    monkeypatch.setenv("COLUMNS", "80")
    result = run(*NAMES, "redeploy", input="n\n")
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert lines[0] == "plan for cluster airflow-prod:"
    asked = " ".join(" ".join(lines[lines.index(next(x for x in lines if x.startswith("Redeploy"))):]).split())
    assert asked.startswith("Redeploy cluster airflow-prod: the scheduler stops until the new workers are stable (")
    assert max(len(line) for line in lines) <= 80


def test_without_a_terminal_the_refusal_is_one_clean_line_after_the_question(cluster, run):
    result = run(*NAMES, "stop-scheduler")
    lines = result.stderr.splitlines()
    assert result.exit_code == 2, result.output
    assert "Usage:" not in result.stderr
    assert "Try '" not in result.stderr
    assert lines[-2].startswith("Stop scheduler airflow-prod-scheduler")
    assert lines[-2].endswith("[y/N]: ")
    assert lines[-1] == ("Error: this command asks for confirmation and there is no terminal to answer it; nothing "
                         "was changed: pass --yes (or set WORKFLOW_YES=1)")


@pytest.mark.parametrize("args, message", [
    (["rollback", "--no-redeploy", "--yes", "--repository", ""], "the repository name is empty"),
    (["releases", "--repository", " "], "the repository name is empty"),
    (["iam-policy", "--account", "abc"], "'abc' is not an AWS account ID: 12 digits, or * for any account"),
    (["iam-policy", "--account", "12345678901"], "is not an AWS account ID"),
])
def test_odd_values_are_usage_errors(run, args, message):
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr, result.output


@pytest.mark.parametrize("account", ["123456789012", "*"])
def test_iam_policy_takes_an_account_id_or_any(run, account):
    result = run("iam-policy", "--command", "promote", "--account", account)
    assert result.exit_code == 0, result.output
    assert f"arn:aws:ecr:*:{account}:repository/airflow-prod" in result.stdout


def test_an_optional_command_not_installed_says_how_to_install_it(run, monkeypatch):
    from workflow import cli

    monkeypatch.setattr(cli, "_plugins", lambda: {})
    result = run("sandbox", "--port", "0")
    assert result.exit_code == 2, result.output
    assert "comes with the sandbox extra" in result.stderr


@pytest.mark.how_invoked
@pytest.mark.parametrize("on_path", [True, False])
def test_printed_commands_start_the_tool_with_the_interpreter_that_runs_it(monkeypatch, tmp_path, on_path):
    """Run as `<virtualenv>/bin/python -m workflow`, a resume printed as `python3 -m workflow` found another
    Python in a fresh shell: "No module named workflow"."""
    from workflow.app import how_invoked

    interpreter = tmp_path / "venv" / "bin" / "python"
    interpreter.parent.mkdir(parents=True)
    interpreter.write_text("#!/bin/sh\n")
    interpreter.chmod(0o755)
    monkeypatch.delenv("PIPENV_ACTIVE", raising=False)
    monkeypatch.setattr("sys.argv", ["/somewhere/workflow/__main__.py"])
    monkeypatch.setattr("sys.executable", str(interpreter))
    monkeypatch.setenv("PATH", str(interpreter.parent) if on_path else "/nonexistent")
    assert how_invoked() == ["python" if on_path else str(interpreter), "-m", "workflow"]
    monkeypatch.setenv("PIPENV_ACTIVE", "1")
    assert how_invoked() == ["pipenv", "run", "workflow"]
