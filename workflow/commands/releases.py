"""`workflow releases` and `workflow rollback`: the production repository's releases, and `latest` moved back."""

import click

from ..app import App
from ..options import option, yes_option
from ..runner import confirm, run

repository_option = option("--repository", env="REPOSITORY", default="airflow-prod",
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


@click.command("rollback")
@option("--to", "to", env="ROLLBACK_TO", default=None,
        show_default="the newest release older than the one latest names",
        help="Tag (e.g. a stamp 20261120T080000Z) or digest of the image to point latest at.")
@repository_option
@option("--redeploy/--no-redeploy", env="REDEPLOY", default=True,
        help="Redeploy the cluster onto the image afterwards; --no-redeploy only moves the tag (no --cluster needed).")
@option("--dry-run", env="DRY_RUN", is_flag=True, default=False, help="Say what would happen, and change nothing.")
@registry_option
@yes_option
@click.pass_obj
def rollback(app: App, to, repository, redeploy, dry_run, registry_id, yes):
    """Point latest at the previous release, then redeploy onto it.

    The previous release is the newest stamp-tagged image older than the one latest names now (or --to).
    latest moves by PutImage of that image's exact manifest: no blob is copied and the digest is unchanged.
    Then the safe redeploy runs: the scheduler is drained, web and worker are rolled and watched, and one
    scheduler starts. Refused, with nothing changed, when there is no earlier release, when --to names no
    image, or when the cluster already runs the target and latest names it. Should the redeploy fail, resume
    with `workflow redeploy`: another rollback would go one release further back.

    A rollback does not downgrade the database schema: the earlier image runs against the schema the later
    one migrated to. Roll back only to a release that works with that schema, or restore the database first.

    \b
    Example:
      workflow --cluster airflow-prod rollback --dry-run
      workflow --cluster airflow-prod rollback
      workflow --cluster airflow-prod rollback --to 20261120T080000Z
      workflow rollback --no-redeploy --repository airflow-prod
    """
    if redeploy:
        app.require_cluster()  # redeploying needs --cluster: a usage error before any call

    def operation():
        from ..ecr import Ecr
        from ..releases import plan_rollback, running_images
        from ..rollback import rollback as run_rollback

        ecr = Ecr(app.clients()("ecr"), registry_id)
        env = running = topology = None
        if app.cluster:
            topology = app.topology()
            env = app.env(holds="rollback" if redeploy and not dry_run else None)
            running = running_images(env.ecs, _labelled(app), repository)
        plan = plan_rollback(ecr, repository, to, redeploy, running)
        if not dry_run:
            confirm(yes, plan.question())
        return run_rollback(ecr, app.report, plan, dry_run, env, topology)

    run(app, "redeploy --yes" if redeploy else None, operation)


def _labelled(app: App) -> dict[str, str]:
    """Each managed service by a short label: its name without the cluster's (the role, for conventional names)."""
    topology = app.topology()
    return {name.removeprefix(topology.name + "-"): name for name in topology.services()}
