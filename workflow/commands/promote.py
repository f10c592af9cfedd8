"""`workflow promote`: publish the staging image to the production repository."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

import click

from ..options import option, yes_option
from ..runner import confirm, run

if TYPE_CHECKING:  # the context, for annotations only: importing it costs `--help` its speed
    from ..app import App
    from ..recovery import NextStep


@click.command()
@option("--source", env="SOURCE", default="airflow-stage:latest",
        help="Image to promote: [HOST[:PORT]/]REPO[:TAG] or ...@sha256:...; without a host, the caller's ECR registry.")
@option("--dest", env="DEST", default="airflow-prod",
        help="Destination repository: [HOST[:PORT]/]REPO; without a host, the caller's ECR registry.")
@option("--tag", "tags", env="TAG", multiple=True,
        show_default="latest and a UTC timestamp YYYYMMDDTHHMMSSZ, unless the image already has a timestamp tag there",
        help="Tag to write; repeat for several. Replaces the defaults.")
@option("--registry-id", env="REGISTRY_ID", default=None, show_default="the caller's account",
        help="ECR registry of the repositories named without a host.")
@option("--via", env="VIA", type=click.Choice(["auto", "registry", "ecr-api"]), default="auto",
        help="auto: the registry API, else (between ECR registries) the ECR API when the registry endpoint cannot be "
             "reached; registry or ecr-api: only that one.")
@option("--dry-run", env="DRY_RUN", is_flag=True, default=False, help="Say what would be copied and tagged, and stop.")
@yes_option
@click.pass_obj
def promote(app: App, source, dest, tags, registry_id, via, dry_run, yes):
    """Publish an image to another repository, copying only missing blobs.

    Speaks the registry API (OCI distribution) with a token from ECR's GetAuthorizationToken: within one
    registry each blob is mounted, nothing is downloaded; between registries each missing blob is streamed
    once. Where the registry endpoint cannot be reached, the ECR API copies instead. No Docker is needed:
    the destination gets the exact manifest, so its digest equals the source's. Tags are checked before
    any is written, the stamp goes before latest, and a failure puts back what it moved.

    \b
    Example:
      workflow promote --source airflow-stage:latest --dest airflow-prod
      workflow promote --source 127.0.0.1:5000/airflow-stage:latest \\
        --dest 127.0.0.1:5001/airflow-prod
    """
    from ..images import BadReference, ImageRef
    from ..promote import promote as run_promote
    from ..promote import route

    try:
        ref = ImageRef.parse(source)
    except BadReference as error:
        raise click.BadParameter(f"{source!r} names no image: {error}; use REPO:TAG or REPO@sha256:...",
                                 param_hint="--source") from None
    if not dest.strip():
        raise click.BadParameter("the destination repository is empty", param_hint="--dest")
    try:
        target = ImageRef.parse(dest, default_tag=None)
    except BadReference as error:
        raise click.BadParameter(f"{dest!r} names no repository: {error}", param_hint="--dest") from None
    if target.tag or target.digest:
        raise click.BadParameter(f"{dest!r} names a tag or digest: give the repository alone, and tags with --tag",
                                 param_hint="--dest")
    tags = list(tags)
    clients = app.clients()

    def ecr_client(region: str | None):
        default = clients("ecr")
        return default if region in (None, default.meta.region_name) else clients("ecr", region)

    def operation():
        path = route(ecr_client, ref, target, registry_id, via, app.report, sleep=app.runtime.sleep)
        if not dry_run:
            as_what = ", ".join(tags) if tags else "latest and a UTC timestamp tag (none if already released)"
            confirm(yes, f"Promote {ref} to {path.dest.label} as {as_what}, through the {path.path}?",
                    where=lambda: path.where)
        from ..lease import Leases

        # In ECR, the destination repository's lease: refused (exit 4) while a redeploy or rollback deploys its
        # latest, or another promote writes there. Another registry keeps no leases.
        leases = Leases(app.repository_leases([str(target)], "promote", registry_id)) if path.dest_in_ecr else None
        return run_promote(path, app.report, ref, tags, dry_run, now=app.runtime.utcnow(),
                           next_step=lambda move: _next_step(app, move),
                           before_change=leases.before_change if leases else None)

    run(app, None, operation)


def _next_step(app: App, schema_move: tuple[str, str] | None) -> NextStep:
    """What makes the cluster run the promoted image: a redeploy (services run `latest` until then), with the
    migration when the release's Airflow needs another schema."""
    from ..recovery import NextStep

    purpose = "next: the services run the previous image until they are redeployed"
    command = "redeploy"
    if schema_move:
        purpose += f"; Airflow {schema_move[0]} -> {schema_move[1]} needs the database migrated with it"
        command = "redeploy --migrate"
    if app.cluster:
        return NextStep(purpose, shlex.join(app.resume_words(command)))
    started = app.runtime.invocation()  # the way the operator started this tool
    return NextStep(f"{purpose} (name the cluster)", shlex.join([*started, "--cluster", "CLUSTER", *command.split()]))
