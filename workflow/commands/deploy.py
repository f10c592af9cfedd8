"""`workflow initialize` and `workflow redeploy`: the database migration task, and the safe roll of the cluster."""

import shlex

import click

from ..app import App
from ..options import command_words, option, task_wait_option, yes_option
from ..runner import confirm, run


@click.command()
@yes_option
@task_wait_option
@option("--command", env="COMMAND", default="airflow db migrate", callback=command_words,
        help="Command to run in place of the container's own (shell-quoted).")
@option("--container", env="CONTAINER", default=None, show_default="the task definition's essential container",
        help="Container whose command to override.")
@click.pass_obj
def initialize(app: App, yes, wait, command, container):
    """Initialize the Airflow database in a one-off task.

    Runs one task with the worker service's deployed task definition and network settings, the
    essential container's command replaced by --command, and waits until it stops.

    \b
    Example:
      workflow --cluster airflow-prod --scheduler airflow-prod-scheduler \\
        --worker airflow-prod-worker --web airflow-prod-web initialize
    """
    from .. import operations

    target = app.target()
    confirm(yes, f"Run '{shlex.join(command)}' as a one-off task in cluster {target.cluster}?",
            lambda: app.where([target.worker]))
    run(app, None, lambda: operations.initialize(app.env(holds="initialize"), target, command, container, wait))


@click.command()
@yes_option
@option("--wait-for-drain", env="WAIT_FOR_DRAIN", is_flag=True, default=False,
        help="Also wait until web's old tasks have drained behind the load balancer.")
@option("--migrate", env="MIGRATE", is_flag=True, default=False,
        help="Run the database migration as a one-off task after the scheduler has drained and before web and "
             "worker roll. RunTask resolves the image tag when it launches, so it runs the newly promoted image.")
@option("--migrate-command", env="MIGRATE_COMMAND", default="airflow db migrate", callback=command_words,
        help="The migration command (shell-quoted), with --migrate.")
@click.pass_obj
def redeploy(app: App, yes, wait_for_drain, migrate, migrate_command):
    """Stop the scheduler, roll web and worker, start the scheduler.

    Web and worker keep their desired counts. The scheduler starts again as soon as the new
    workers are stable and no old worker runs; web's rollout goes on meanwhile. Fails as soon
    as a new deployment cannot succeed, and says how to resume.

    \b
    Example:
      workflow --cluster airflow-prod --scheduler airflow-prod-scheduler \\
        --worker airflow-prod-worker --web airflow-prod-web redeploy
    """
    from .. import operations

    target = app.target()
    confirm(yes, f"Redeploy cluster {target.cluster}: the scheduler stops until the new workers are stable?",
            lambda: app.where([target.scheduler, target.worker, target.web]))
    resume = "redeploy --yes" + (f" --migrate --migrate-command {shlex.quote(shlex.join(migrate_command))}" if migrate else "")
    run(app, resume, lambda: operations.redeploy(
        app.env(holds="redeploy"), target, wait_for_drain, migrate_command if migrate else None))
