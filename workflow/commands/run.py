"""`workflow run`: any one-off command in a task shaped like a service's own; initialize is its migration preset."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

import click

from ..errors import TaskFailed
from ..options import option, task_wait_option, yes_option
from ..runner import confirm
from ..runner import run as run_operation
from ..topology import ROLES, WEB

if TYPE_CHECKING:  # the context, for annotations only: importing it costs `--help` its speed
    from ..app import App

# Exit statuses a shell leaves to the command itself: 126 and 127 mean "cannot execute" and "not found",
# 128 + N "killed by signal N" (a container ECS stops with SIGTERM exits 143).
PASSED_ON = range(1, 126)


def complete_role(_ctx, _param, incomplete: str) -> list[str]:
    return [role for role in (*ROLES, WEB) if role.startswith(incomplete)]


class CommandExited(TaskFailed):
    """The overridden container ran its command to the end and it exited non-zero: its code is ours."""

    def __init__(self, failure: TaskFailed, code: int):
        super().__init__(str(failure), failure.result)
        self.exit_code = code


def run_command(env, service: str, command: list[str], container: str | None, wait: bool):
    from ..oneoff import choose_container, run_one_off

    found = env.ecs.service(service)
    container = choose_container(env.ecs.task_definition(found.task_definition), container)
    try:
        return run_one_off(env, found, command, container, wait)
    except TaskFailed as failure:
        task = failure.result.task
        code = task.exit_codes(frozenset([container])).get(container)
        if task.stop_code == "EssentialContainerExited" and code in PASSED_ON:
            raise CommandExited(failure, code) from None
        raise


@click.command("run", context_settings={"allow_interspersed_args": False})
@option("--service", env="SERVICE", default="worker", shell_complete=complete_role,
        help="Service whose deployed task definition and network the task gets: a role (scheduler, worker, web, "
             "dag-processor, ...) or a service name.")
@option("--container", env="CONTAINER", default=None, show_default="the task definition's essential container",
        help="Container whose command to override.")
@yes_option
@task_wait_option
@click.argument("command", nargs=-1, type=click.UNPROCESSED, metavar="-- COMMAND...")
@click.pass_obj
def run(app: App, service, container, yes, wait, command):
    """Run any command in a one-off task, as initialize runs the migration.

    For `airflow users create ...`, `airflow dags reserialize` and the like. The task gets the service's
    deployed task definition, its network configuration, launch type or capacity providers and platform
    version, with the container's command replaced by COMMAND: the words after `--`, each one argument,
    exactly as the shell passed them. Follows the container's log on stderr and waits until the task stops.

    Exit status: when the container exited with a code from 1 to 125, that code; otherwise 0 on success, 1 when
    the task failed (another code, a Spot interruption, a StopTask), and the tool's own codes: 2 usage,
    3 timeout, 4 another operator holds the cluster, 130 interrupted (the task keeps running).

    \b
    Example:
      workflow --cluster airflow-prod run -- airflow users create \\
        --username admin --role Admin --firstname Ada --lastname Lovelace \\
        --email admin@example.com --use-random-password
      workflow --cluster airflow-prod run --service scheduler -- \\
        airflow dags reserialize
    """
    words = list(command)
    if not words:
        raise click.UsageError("no command to run: put it after --, e.g. workflow run -- airflow dags list")
    name = app.service_named(service)
    confirm(yes, f"Run '{shlex.join(words)}' as a one-off task of {name} in cluster {app.require_cluster()}?",
            lambda: app.where([name]))
    run_operation(app, None, lambda: run_command(app.env(holds="run"), name, words, container, wait))
