"""`workflow logs`: a service's awslogs streams interleaved by time, each line naming its task and container."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import click

from ..env import Env
from ..errors import NotFound
from ..options import DAY, Duration, option
from ..runner import Terminated, echo, stream
from .run import complete_role

if TYPE_CHECKING:  # the context, for annotations only: importing it costs `--help` its speed
    from ..app import App

# CloudWatch Logs allows few FilterLogEvents calls a second per account and Region, shared with every other reader.
FOLLOW_POLL_SECONDS = 2.0
RELIST_SECONDS = 10.0  # how often a follower lists the service's tasks again, to pick up new ones
LONGEST_RETENTION = 3653 * DAY  # CloudWatch Logs keeps lines for ten years at most


def read_logs(env: Env, names: list[str], since: datetime, task: str | None, container: str | None,
              output: str) -> None:
    """Print the lines the services' tasks logged since `since`, oldest first."""
    from ..logs import ServiceLogs
    from ..render import log_event, log_line, to_json

    readers = [ServiceLogs(env, service, since, container, task) for service in env.ecs.services(names)]
    for reader in readers:
        reader.refresh()
    name = ", ".join(names)
    tasks = sum(len(reader.tasks) for reader in readers)
    if task and not tasks:
        raise NotFound(f"no task of {name} has an id starting with {task} (ECS lists stopped tasks for about an hour)")
    events = sorted((e for reader in readers for e in reader.read()), key=lambda e: e.at)
    if output == "json":
        echo(to_json([log_event(e) for e in events]))
        return
    for event in events:
        echo(log_line(event))
    if not events:
        env.report.line(f"no log lines from {tasks} task(s) of {name} since {since:%Y-%m-%d %H:%M:%S}Z")


def follow_logs(env: Env, names: list[str], since: datetime, task: str | None, container: str | None) -> None:
    """Print the lines since `since`, then new ones as they arrive, each once, until interrupted."""
    from ..logs import ServiceLogs
    from ..poller import Poller
    from ..progress import short_task
    from ..render import log_line

    readers = [ServiceLogs(env, service, since, container, task) for service in env.ecs.services(names)]
    name = ", ".join(names)
    report = env.report

    def notice(text: str) -> None:
        if not text.startswith("waiting for "):  # a heartbeat: following has no deadline to report
            report.line(text)

    clock = env.poller.clock
    poller = Poller(clock, env.poller.sleep, max(env.poller.interval, FOLLOW_POLL_SECONDS), math.inf, notice=notice)
    listed_at: float | None = None

    def check():
        nonlocal listed_at
        if listed_at is None:
            report.line(f"following {sum(len(reader.refresh()) for reader in readers)} task(s) of {name}; Ctrl-C stops")
            listed_at = clock()
        elif clock() - listed_at >= RELIST_SECONDS:
            for reader in readers:
                for started in reader.refresh():
                    report.line(f"following task {short_task(started.id)} of {reader.service.name} ({started.last_status})")
            listed_at = clock()
        for event in sorted((e for reader in readers for e in reader.read()), key=lambda e: e.at):
            echo(log_line(event))
        return None  # never done: following ends with Ctrl-C

    try:
        poller.until(check, lambda: f"new log lines of {name}")
    except KeyboardInterrupt as interrupt:
        if isinstance(interrupt, Terminated):
            raise
        # Ctrl-C is how following ends: exit 0.


@click.command("logs")
@click.argument("service", shell_complete=complete_role)
@option("--since", env="SINCE", type=Duration(max=LONGEST_RETENTION), default="10m",
        help="How far back to start: 30s, 10m, 2h, 1d (a bare number is seconds).")
@option("--follow", "-f", env="FOLLOW", is_flag=True, default=False,
        help="Keep printing new lines, each once, until interrupted (Ctrl-C, which exits 0).")
@option("--task", env="TASK", default=None, show_default="every task", help="Only tasks whose id starts with this.")
@option("--container", env="LOGS_CONTAINER", default=None, show_default="every container that logs",
        help="Only this container's lines, when several containers log.")
@click.pass_obj
def logs(app: App, service, since, follow, task, container):
    """Print a service's CloudWatch Logs lines, interleaved by time.

    SERVICE is a role (scheduler, worker, web, dag-processor, triggerer, ...: every service of that role,
    such as the workers of each queue) or a service name. Reads the awslogs streams
    (<prefix>/<container>/<task id>) of the service's tasks: those running and those ECS still lists
    as stopped (about an hour). Each line on stdout: time (UTC), short task id, container, message.
    --output json prints one JSON list of events (not with --follow).

    \b
    Example:
      workflow --cluster airflow-prod logs worker --since 30m
      workflow --cluster airflow-prod logs scheduler --follow
    """
    output = app.options["output"]
    if follow and output == "json":
        raise click.UsageError("--output json prints one document once everything is read: it cannot --follow")
    start = app.runtime.utcnow() - timedelta(seconds=since)
    # The services are looked up inside `stream`: a cluster that is not there fails as any read does (with
    # --output json, one document on stdout).
    if follow:
        stream(app, lambda: follow_logs(app.env(), app.services_named(service), start, task, container))
    else:
        stream(app, lambda: read_logs(app.env(), app.services_named(service), start, task, container, output))
