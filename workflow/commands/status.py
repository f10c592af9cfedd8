"""`workflow status`: what runs, and what an operator should know before the next command."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ..runner import run

if TYPE_CHECKING:  # the context, for annotations only: importing it costs `--help` its speed
    from ..app import App


@click.command()
@click.pass_obj
def status(app: App):
    """Show what runs, and what needs attention.

    For each service: desired, running and pending counts, the primary deployment and its rollout state,
    and the task definition revision, image digest and ECR tags its RUNNING tasks run. Warns about a
    stopped scheduler, failing or crashing deployments, another command changing the cluster, and a
    scheduler deployment configuration that lets ECS run two. Changes nothing.

    \b
    Example:
      workflow --cluster airflow-prod --scheduler airflow-prod-scheduler \\
        --worker airflow-prod-worker --web airflow-prod-web status
    """
    from ..status import status as cluster_status

    run(app, None, lambda: cluster_status(app.env(), app.topology()))
