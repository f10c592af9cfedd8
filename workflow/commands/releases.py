"""`workflow releases` and `workflow rollback`: the production repository's releases, and `latest` moved back."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ..options import drain_option, option, schedulers_option, yes_option
from ..runner import confirm, run

if TYPE_CHECKING:  # the context, for annotations only: importing it costs `--help` its speed
    from ..app import App


def _repository(_ctx, _param, value: str) -> str:
    if not value.strip():
        raise click.BadParameter("the repository name is empty")
    return value


repository_option = option("--repository", env="REPOSITORY", default="airflow-prod", callback=_repository,
                           help="Production repository: the one promote writes `latest` and the stamp tags to.")
registry_option = option("--registry-id", env="REGISTRY_ID", default=None, show_default="the caller's account",
                         help="Registry holding the repository.")


@click.command("releases")
@repository_option
@option("--limit", env="LIMIT", type=click.IntRange(min=1), default=20, help="Show at most this many, newest first.")
@registry_option
@click.pass_obj
def releases(app: App, repository, limit, registry_id):
    """List the releases in the production repository, newest first.

    A release is an image carrying a UTC stamp tag (YYYYMMDDTHHMMSSZ, written by promote). For each: the
    stamp, the digest, when it was pushed, its size, whether `latest` names it, and, with --cluster, which
    services' RUNNING tasks run it now. Changes nothing.

    \b
    Example:
      workflow --cluster airflow-prod releases --limit 5
      workflow releases --repository airflow-prod --output json
    """

    def operation():
        from ..ecr import Ecr
        from ..releases import list_releases, running_images

        running = None
        if app.cluster:
            running = running_images(app.env().ecs, _labelled(app), repository)
        return list_releases(Ecr(app.clients()("ecr"), registry_id), repository, limit, running)

    run(app, None, operation)


def _not_empty(_ctx, param, value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise click.BadParameter("is empty; give a stamp tag, another tag or a digest", param=param)
    return value


@click.command("rollback")
@option("--to", "to", env="ROLLBACK_TO", default=None, callback=_not_empty,
        show_default="the newest release older than the one latest names (or the target of an unfinished rollback)",
        help="Tag (e.g. a stamp 20261120T080000Z) or digest of the image to point latest at.")
@repository_option
@option("--redeploy/--no-redeploy", env="REDEPLOY", default=True,
        help="Redeploy the cluster onto the image afterwards; --no-redeploy only moves the tag (no --cluster needed).")
@option("--downgrade-db", env="DOWNGRADE_DB", is_flag=True, default=False,
        help="When the target release needs an older schema than the database is at: stop the schedulers and "
             "dag-processors and run `airflow db downgrade --to-version <its version> -y` with the current image "
             "before the tag moves.")
@option("--snapshot", env="SNAPSHOT", default=None, metavar="DB_INSTANCE", show_default="none",
        help="With --downgrade-db: snapshot this RDS instance first and wait until it is available.")
@schedulers_option
@drain_option
@option("--dry-run", env="DRY_RUN", is_flag=True, default=False, help="Say what would happen, and change nothing.")
@registry_option
@yes_option
@click.pass_obj
def rollback(app: App, to, repository, redeploy, downgrade_db, snapshot, schedulers, drain_timeout, dry_run, registry_id,
             yes):
    """Point latest at the previous release, then redeploy onto it.

    The previous release is the newest stamp-tagged image older than the one latest names now (or --to).
    latest moves by PutImage of that image's exact manifest: no blob is copied and the digest is unchanged.
    Then the safe redeploy runs, in the order the schema allows. The rollback's target is recorded on the
    cluster first, so a re-run after an interrupt or a failed redeploy finishes that same rollback.

    The database's schema is checked first: when `redeploy --migrate` recorded a schema the target release
    cannot run on, the rollback is refused (its components would exit with "Database migration required")
    unless --downgrade-db, which downgrades the database with the current image before the tag moves.
    Refused too, with nothing changed, when there is no earlier release, when --to names no image, or when
    the cluster already runs the target and latest names it.

    \b
    Example:
      workflow --cluster airflow-prod rollback --dry-run
      workflow --cluster airflow-prod rollback
      workflow --cluster airflow-prod rollback --to 20261120T080000Z
      workflow --cluster airflow-prod rollback --downgrade-db \\
        --snapshot airflow-prod-db
      workflow rollback --no-redeploy --repository airflow-prod
    """
    from ..operations import RedeployOptions
    from ..rollback import Options

    if redeploy:
        app.require_cluster()  # redeploying needs --cluster: a usage error before any call
    if snapshot and not downgrade_db:
        raise click.UsageError("--snapshot goes with --downgrade-db: only a downgrade moves the schema here")
    options = Options(downgrade_db, snapshot, RedeployOptions(schedulers=schedulers, drain_timeout=drain_timeout))

    def operation():
        from ..ecr import Ecr
        from ..errors import Refused
        from ..lease import Leases
        from ..releases import plan_rollback, running_images
        from ..rollback import check_schema, finished, refusal, unfinished
        from ..rollback import rollback as run_rollback

        ecr = Ecr(app.clients()("ecr"), registry_id)
        env = running = topology = lease = None
        target = to
        changes = not dry_run
        if app.cluster:
            topology = app.topology()
            env = app.env(holds="rollback" if redeploy and changes else None,
                          repositories=[repository] if redeploy else ())
            running = running_images(env.ecs, _labelled(app), repository)
            if target is None and (target := unfinished(env, repository)):
                app.report.line(f"finishing the rollback to {target[:19]} that an earlier run began")
                if changes and redeploy and running.all_run(target):  # it had got that far before it stopped
                    return finished(env, repository, target)
        plan = plan_rollback(ecr, repository, target, redeploy, running)
        check = check_schema(env, ecr, plan, topology)
        why = refusal(check, plan, options)
        if why:
            raise Refused(why)
        if not dry_run:
            confirm(yes, plan.question(schema_known=check.recorded is not None),
                    where=lambda: app.where(topology.services()) if topology else
                    f"account {ecr.account(repository) or '?'}, {ecr.client.meta.region_name}")
        if changes and not (redeploy and env is not None):  # only the tag moves: the repository's lease alone
            lease = Leases(app.repository_leases([repository], "rollback", registry_id))
        return run_rollback(ecr, app.report, plan, dry_run, env, topology, options, check, lease)

    resume = "rollback --yes" + (" --downgrade-db" if downgrade_db else "") + (f" --snapshot {snapshot}" if snapshot else "")
    run(app, resume if redeploy else None, operation)


def _labelled(app: App) -> dict[str, str]:
    """Each managed service by a short label: its name without the cluster's (the role, for conventional names)."""
    topology = app.topology()
    return {name.removeprefix(topology.name + "-"): name for name in topology.services()}
