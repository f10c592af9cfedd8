"""`workflow promote`: publish the staging image to the production repository."""

import click

from ..app import App
from ..options import option, yes_option
from ..runner import confirm, run


@click.command()
@option("--source", env="SOURCE", default="airflow-stage:latest", help="Image to promote: REPO:TAG or REPO@sha256:...")
@option("--dest", env="DEST", default="airflow-prod", help="Destination repository.")
@option("--tag", "tags", env="TAG", multiple=True,
        show_default="latest and a UTC timestamp YYYYMMDDTHHMMSSZ, unless the image already has a timestamp tag there",
        help="Tag to write; repeat for several. Replaces the defaults.")
@option("--registry-id", env="REGISTRY_ID", default=None, show_default="the caller's account",
        help="Registry holding both repositories.")
@option("--dry-run", env="DRY_RUN", is_flag=True, default=False, help="Say what would be copied and tagged, and stop.")
@yes_option
@click.pass_obj
def promote(app: App, source, dest, tags, registry_id, dry_run, yes):
    """Publish an image to another repository, copying only missing blobs.

    Uses the ECR API only (no Docker): the destination gets the exact manifest, so its digest
    equals the source's. Nothing is tagged unless every blob is in place.

    \b
    Example:
      workflow promote --source airflow-stage:latest --dest airflow-prod
    """
    from ..ecr import Ecr
    from ..images import BadReference, ImageRef
    from ..promote import promote as run_promote

    try:
        ref = ImageRef.parse(source)
    except BadReference as error:
        raise click.BadParameter(f"{source!r} names no image: {error}; use REPO:TAG or REPO@sha256:...",
                                param_hint="--source") from None
    if not dest.strip():
        raise click.BadParameter("the destination repository is empty", param_hint="--dest")
    tags = list(tags)
    if not dry_run:
        as_what = ", ".join(tags) if tags else "latest and a UTC timestamp tag (none if already released)"
        confirm(yes, f"Promote {ref} to {dest} as {as_what}?")
    run(app, None, lambda: run_promote(
        Ecr(app.clients()("ecr"), registry_id), app.report, ref, dest, tags, dry_run,
        sleep=app.runtime.sleep, now=app.runtime.utcnow(),
    ))
