"""`workflow iam-policy`: print the least-privilege IAM policy the commands need (workflow/iam_policy.py)."""

import json

import click

from ..iam_policy import COMMANDS
from ..options import option


def _account(_ctx, _param, value: str | None) -> str | None:
    """12 digits or `*`: anything else would be written into every ARN of the policy."""
    import re

    if value is None or value == "*" or re.fullmatch(r"\d{12}", value):
        return value
    raise click.BadParameter(f"{value!r} is not an AWS account ID: 12 digits, or * for any account")


@click.command("iam-policy")
@option("--command", "commands", env="POLICY_COMMAND", multiple=True, type=click.Choice(list(COMMANDS)),
        show_default="every command", help="Command whose permissions to include; repeat for several.")
@option("--account", env="ACCOUNT", default=None, show_default="*, any account", callback=_account,
        help="AWS account ID in the resource ARNs: 12 digits, or * for any.")
@option("--lookup-account", env="LOOKUP_ACCOUNT", is_flag=True, default=False,
        help="Take the account from STS GetCallerIdentity with the current credentials (the only AWS call).")
@option("--partition", env="PARTITION", default=None, show_default="aws, or the --cluster ARN's",
        help="AWS partition in the ARNs: aws, aws-cn, aws-us-gov.")
@option("--source-repository", env="SOURCE_REPOSITORY", default="airflow-stage", help="ECR repository promote reads.")
@option("--dest-repository", env="DEST_REPOSITORY", default="airflow-prod", help="ECR repository promote writes.")
@option("--log-group", "log_groups", env="LOG_GROUP", multiple=True, show_default="/ecs/<cluster>",
        help="CloudWatch Logs group the tasks' awslogs driver writes to; repeat for several.")
@option("--task-family", "task_families", env="TASK_FAMILY", multiple=True,
        show_default="named like the services: <worker> for initialize, all three for run",
        help="Task definition family initialize and run may start; repeat for several.")
@option("--pass-role", "pass_roles", env="PASS_ROLE", multiple=True,
        show_default="every role in the account, with a warning",
        help="ARN of a role the one-off task's definition names (task role, execution role); repeat for each.")
@click.pass_obj
def iam_policy(app, commands, account, lookup_account, partition, source_repository, dest_repository, log_groups,
               task_families, pass_roles):
    """Print the least-privilege IAM policy for the commands, as JSON.

    Resources are ARNs of the cluster, services, tasks, task definitions, log groups and ECR
    repositories wherever the action supports them, with the ecs:cluster condition where only that
    is supported, and iam:PassRole only towards ecs-tasks.amazonaws.com. Each statement's Sid names
    the commands it serves. --region (the global option) and --account default to `*`; no AWS call
    is made unless --lookup-account.

    \b
    Example:
      workflow --cluster airflow-prod iam-policy --account 123456789012 --region eu-west-1 \\
        --pass-role arn:aws:iam::123456789012:role/airflow-task \\
        --pass-role arn:aws:iam::123456789012:role/airflow-execution
    """
    from ..iam_policy import GRANTS, policy, scope_for_cluster

    chosen = list(commands) or list(COMMANDS)
    if account is not None and lookup_account:
        raise click.UsageError("Give --account or --lookup-account, not both.")
    if lookup_account:
        account = _caller_account(app)
    if any(COMMANDS[c].services for c in chosen):
        cluster = app.require_cluster()  # the cluster and its service names, as every cluster command takes them
        typed = dict(app.explicit_services())
        names = {role: typed.get(role) or f"{cluster.rsplit('/', 1)[-1]}-{role}" for role in ("scheduler", "worker", "web")}
    else:
        cluster, names = app.cluster or "*", {}
    name = cluster.rsplit("/", 1)[-1]
    scope = scope_for_cluster(
        cluster,
        **names,
        source_repository=source_repository,
        dest_repository=dest_repository,
        log_groups=tuple(log_groups) or (f"/ecs/{name}",),
        task_families=tuple(task_families),
        pass_roles=tuple(pass_roles),
        region=app.options.get("region") or None,
        account=account,
        partition=partition,
    )
    document = policy(scope, chosen)
    if not pass_roles and any(s["Sid"].startswith("PassTaskRoles") for s in document["Statement"]):
        click.echo(
            f"warning: iam:PassRole is allowed on every role in the account ({scope.any_role}), towards "
            f"{GRANTS['PassTaskRoles'].condition(scope)['StringEquals']['iam:PassedToService']} only; name the worker "
            "task definition's task role and execution role with --pass-role",
            err=True,
        )
    click.echo(json.dumps(document, indent=2))


def _caller_account(app) -> str:
    from ..errors import WorkflowError
    from ..identity import caller_account
    from ..runner import CommandFailed

    try:
        return caller_account(app.clients()("sts"))
    except WorkflowError as error:
        raise CommandFailed.of(error) from None
