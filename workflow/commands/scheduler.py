"""`workflow stop-scheduler` and `workflow start-scheduler`: never two schedulers, nor an old and a new one."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ..options import option, schedulers_option, wait_option, yes_option
from ..runner import confirm, run
from ..topology import SCHEDULER

if TYPE_CHECKING:  # the context, for annotations only: importing it costs `--help` its speed
    from ..app import App


def _schedulers(app: App) -> list[str]:
    names = app.topology().services(SCHEDULER)
    if not names:
        raise click.UsageError(f"cluster {app.topology().name} has no scheduler service: name it with --scheduler "
                               "(or tag it airflow-role=scheduler)")
    return names


@click.command("stop-scheduler")
@yes_option
@wait_option
@click.pass_obj
def stop_scheduler(app: App, yes, wait):
    """Scale the scheduler to zero and wait until its tasks stop.

    A task that is DEACTIVATING or STOPPING still runs its scheduler process: the wait ends when none does.
    A desired count other than 1 (Airflow's HA schedulers) is remembered on the service for start-scheduler.

    \b
    Example:
      workflow --cluster airflow-prod --scheduler airflow-prod-scheduler \\
        stop-scheduler
    """
    from .. import operations

    names = _schedulers(app)
    confirm(yes, f"Stop scheduler {', '.join(names)} in cluster {app.topology().name}?", lambda: app.where(names))
    run(app, "stop-scheduler --yes", lambda: operations.stop_scheduler(app.env(holds="stop-scheduler"), names, wait))


@click.command("start-scheduler")
@option("--yes", "-y", env="YES", is_flag=True, default=False, hidden=True,
        help="Accepted for scripts that pass it to every command; starting asks nothing.")
@wait_option
@schedulers_option
@click.pass_obj
def start_scheduler(app: App, yes, wait, schedulers):
    """Start exactly one scheduler, once no other scheduler task is alive.

    With --schedulers N (or the count recorded when stop-scheduler ran), N tasks per scheduler service.
    Dag-processors at 0 (a redeploy stopped before its end leaves them so) start first, at their count.
    With --no-wait it still waits for old scheduler tasks to stop, but not for the new ones to run.

    \b
    Example:
      workflow --cluster airflow-prod --scheduler airflow-prod-scheduler \\
        start-scheduler
    """
    from .. import operations

    names = _schedulers(app)
    resume = "start-scheduler" + (f" --schedulers {schedulers}" if schedulers else "")
    run(app, resume, lambda: operations.start_scheduler(app.env(holds="start-scheduler"), names, wait, schedulers,
                                                        app.topology()))
