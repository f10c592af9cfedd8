"""`workflow initialize` and `workflow redeploy`: the database migration task, and the safe roll of the cluster."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

import click
from click.core import ParameterSource

from ..errors import USAGE, Refused
from ..options import DEFAULT_DRAIN, command_words, drain_option, option, schedulers_option, task_wait_option, yes_option
from ..runner import confirm, run
from ..topology import ROLES, SCHEDULER, WORKER, role_of

if TYPE_CHECKING:  # the context, for annotations only: importing it costs `--help` its speed
    from ..app import App


def _role(_ctx, param, value: str) -> str:
    try:
        return role_of(value)
    except ValueError as error:
        raise click.BadParameter(str(error), param=param) from None


@click.command()
@yes_option
@task_wait_option
@option("--command", env="COMMAND", default="airflow db migrate", callback=command_words,
        help="Command to run in place of the container's own (shell-quoted).")
@option("--container", env="CONTAINER", default=None, show_default="the task definition's essential container",
        help="Container whose command to override.")
@option("--from", "source", env="INITIALIZE_FROM", default=WORKER,
        help="Role or service whose deployed task definition and network the task gets (on Airflow 3, where "
             "workers may hold no database credentials: scheduler).")
@click.pass_obj
def initialize(app: App, yes, wait, command, container, source):
    """Initialize the Airflow database in a one-off task.

    Runs one task with the worker service's deployed task definition and network settings (or --from's),
    the essential container's command replaced by --command, and waits until it stops.

    \b
    Example:
      workflow --cluster airflow-prod --scheduler airflow-prod-scheduler \\
        --worker airflow-prod-worker --web airflow-prod-web initialize
    """
    from .. import operations

    name = app.service_named(source)
    confirm(yes, f"Run '{shlex.join(command)}' as a one-off task in cluster {app.require_cluster()}?",
            lambda: app.where([name]))
    run(app, None, lambda: operations.initialize(app.env(holds="initialize"), name, command, container, wait,
                                                 app.topology()))


@click.command()
@yes_option
@option("--wait-for-drain", env="WAIT_FOR_DRAIN", is_flag=True, default=False,
        help="Also wait until web's old tasks have drained behind the load balancer.")
@option("--migrate/--no-migrate", env="MIGRATE", default=False,
        help="Run the database migration as a one-off task once the schedulers and dag-processors have stopped and "
             "before anything else rolls. RunTask resolves the image tag when it launches, so it runs the newly "
             "promoted image. --no-migrate overrides WORKFLOW_MIGRATE (a resume after the migration says it).")
@option("--migrate-command", env="MIGRATE_COMMAND", default="airflow db migrate", callback=command_words,
        help="The migration command (shell-quoted), with --migrate.")
@option("--migrate-from", env="MIGRATE_FROM", default=SCHEDULER, callback=_role, metavar="ROLE",
        help=f"Role whose deployed task definition and network run the migration: {', '.join(ROLES)}.")
@option("--snapshot", env="SNAPSHOT", default=None, metavar="DB_INSTANCE", show_default="none",
        help="With --migrate: snapshot this RDS instance (named <cluster>-<UTC time>) and wait until it is available "
             "before the migration starts.")
@schedulers_option
@drain_option
@option("--dry-run", env="DRY_RUN", is_flag=True, default=False,
        help="Print the plan (the roles in order, each one's image now and after, whether a migration runs) and "
             "change nothing.")
@click.pass_obj
def redeploy(app: App, yes, wait_for_drain, migrate, migrate_command, migrate_from, snapshot, schedulers, drain_timeout,
             dry_run):
    """Stop the scheduler, roll web and worker, start the scheduler.

    Every component moves onto a new deployment of its task definition, in the order the database schema
    allows: the schedulers and dag-processors stop; with --migrate, the migration runs; the api-server
    rolls; the workers, triggerers and an Airflow 2 webserver roll; the dag-processors start; the
    schedulers start once the new workers are stable and no old worker runs. Desired counts are kept.
    Fails as soon as a new deployment cannot succeed, and says how to resume.

    \b
    Example:
      workflow --cluster airflow-prod --scheduler airflow-prod-scheduler \\
        --worker airflow-prod-worker --web airflow-prod-web redeploy
    """
    from dataclasses import replace

    from .. import operations
    from ..plan import plan as plan_for

    if snapshot and not migrate:
        if click.get_current_context().get_parameter_source("snapshot") == ParameterSource.ENVIRONMENT:
            snapshot = None  # WORKFLOW_SNAPSHOT, set for the migrations this shell runs: none runs here
        else:
            raise click.UsageError("--snapshot goes with --migrate: only a migration moves the schema")
    topology = app.topology()
    plan = plan_for(app.env(), topology, migrate_command if migrate else None)
    unfit = plan.schema_refusal(migrating=migrate)
    if dry_run:  # the plan, and the refusal a real run would meet: exit 2 then, as it would
        run(app, None, lambda: replace(plan, refusal=unfit))
        if unfit:
            click.get_current_context().exit(USAGE)
        return
    if unfit:
        raise Refused(unfit)
    from ..progress import width_of
    from ..render import hanging, indented, plan_table

    width, unchanged = width_of(), plan.unchanged()
    shown = [hanging(f"plan for {plan.summary()}:", width, 0, 2), indented(plan_table(plan, width - 2)),
             *([hanging(f"note: {unchanged}", width, 0, 2)] if unchanged else [])]
    confirm(yes, "\n".join([*shown, f"Redeploy {plan.summary()}: the scheduler stops until the new workers are stable?"]),
            lambda: app.where(topology.services()))
    if yes:
        app.report.line(f"plan for {plan.summary()}:\n{plan_table(plan, app.report.width - len(app.report.stamp()))}")
    if unchanged:
        app.report.line(f"warning: {unchanged}")
    rest = (f" --schedulers {schedulers}" if schedulers else "") + (
        f" --drain-timeout {drain_timeout:g}" if drain_timeout != DEFAULT_DRAIN else "") + (
        " --wait-for-drain" if wait_for_drain else "")
    resume = "redeploy --yes" + (f" --migrate --migrate-command {shlex.quote(shlex.join(migrate_command))}" if migrate else "")
    if migrate and migrate_from != SCHEDULER:
        resume += f" --migrate-from {migrate_from}"
    if snapshot:
        resume += f" --snapshot {shlex.quote(snapshot)}"
    resume += rest
    # Once migrated, a resume only rolls: --no-migrate, should WORKFLOW_MIGRATE be set where it is pasted.
    app.recovery.resume_after["migrated"] = "redeploy --yes --no-migrate" + rest
    app.recovery.resume_after["scheduler starting"] = "start-scheduler" + (
        f" --schedulers {schedulers}" if schedulers else "")
    options = operations.RedeployOptions(wait_for_drain, migrate_command if migrate else None, migrate_from, schedulers,
                                         snapshot, drain_timeout, schema_moved=plan.schema_moved())
    # The lease covers the repositories whose `latest` the task definitions deploy: no promote moves it meanwhile.
    run(app, resume, lambda: replace(operations.redeploy(app.env(holds="redeploy", repositories=plan.images), topology,
                                                          options), plan=plan))
