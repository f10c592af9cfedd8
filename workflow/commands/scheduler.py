"""`workflow stop-scheduler` and `workflow start-scheduler`: never two schedulers at once."""

import click

from ..app import App
from ..options import option, wait_option, yes_option
from ..runner import confirm, run


@click.command("stop-scheduler")
@yes_option
@wait_option
@click.pass_obj
def stop_scheduler(app: App, yes, wait):
    """Scale the scheduler to zero and wait until its tasks stop.

    \b
    Example:
      workflow --cluster airflow-prod --scheduler airflow-prod-scheduler stop-scheduler
    """
    from .. import operations

    target = app.target()
    confirm(yes, f"Stop scheduler {target.scheduler} in cluster {target.cluster}?", lambda: app.where([target.scheduler]))
    run(app, "stop-scheduler --yes",
        lambda: operations.stop_scheduler(app.env(holds="stop-scheduler"), target.scheduler, wait))


@click.command("start-scheduler")
@option("--yes", "-y", env="YES", is_flag=True, default=False, hidden=True,
        help="Accepted for scripts that pass it to every command; starting asks nothing.")
@wait_option
@click.pass_obj
def start_scheduler(app: App, yes, wait):
    """Start exactly one scheduler, once no other scheduler task is alive.

    With --no-wait it still waits for old scheduler tasks to stop, but not for the new one to run.

    \b
    Example:
      workflow --cluster airflow-prod --scheduler airflow-prod-scheduler start-scheduler
    """
    from .. import operations

    target = app.target()
    run(app, "start-scheduler",
        lambda: operations.start_scheduler(app.env(holds="start-scheduler"), target.scheduler, wait))
