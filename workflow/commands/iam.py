"""`workflow iam-policy`: print the least-privilege IAM policy the commands need (workflow/iam_policy.py)."""

import json
import sys

import click

from ..iam_policy import COMMANDS
from ..options import option

MANAGED_POLICY_MAX = 6144  # characters, whitespace not counted: IAM's limit on a customer managed policy


def _account(_ctx, _param, value: str | None) -> str | None:
    """12 digits or `*`: anything else would be written into every ARN of the policy."""
    import re

    if value is None or value == "*" or re.fullmatch(r"\d{12}", value):
        return value
    raise click.BadParameter(f"{value!r} is not an AWS account ID: 12 digits, or * for any account")


@click.command("iam-policy")
@option("--command", "commands", env="POLICY_COMMAND", multiple=True, type=click.Choice(list(COMMANDS)),
        metavar="COMMAND", show_default="every command",
        help=f"Command whose permissions to include ({', '.join(COMMANDS)}); repeat for several.")
@option("--account", env="ACCOUNT", default=None, show_default="*, any account", callback=_account,
        help="AWS account ID in the resource ARNs: 12 digits, or * for any.")
@option("--lookup-account", env="LOOKUP_ACCOUNT", is_flag=True, default=False,
        help="Take the account from STS GetCallerIdentity with the current credentials.")
@option("--describe-cluster", env="DESCRIBE_CLUSTER", is_flag=True, default=False,
        help="Describe the cluster (ListServices, DescribeServices, DescribeTaskDefinition) and name its services, "
             "task-definition families and log groups, account and Region in the policy, instead of "
             "service/<cluster>/* and task-definition/<cluster>-*. A service added later is then not covered: "
             "print the policy again.")
@option("--partition", env="PARTITION", default=None, show_default="aws, or the --cluster ARN's",
        help="AWS partition in the ARNs: aws, aws-cn, aws-us-gov.")
@option("--source-repository", env="SOURCE_REPOSITORY", default="airflow-stage", help="ECR repository promote reads.")
@option("--dest-repository", env="DEST_REPOSITORY", default="airflow-prod",
        help="Production ECR repository: promote writes it, releases and rollback read it, and the services run it.")
@option("--log-group", "log_groups", env="LOG_GROUP", multiple=True, show_default="/ecs/<cluster>",
        help="CloudWatch Logs group the tasks' awslogs driver writes to; repeat for several.")
@option("--task-family", "task_families", env="TASK_FAMILY", multiple=True, show_default="<cluster>-*",
        help="Task definition family a one-off task may run (initialize, run, redeploy --migrate, rollback "
             "--downgrade-db); repeat for several.")
@option("--pass-role", "pass_roles", env="PASS_ROLE", multiple=True,
        show_default="every role in the account, with a warning",
        help="ARN of a role the one-off task's definition names (task role, execution role); repeat for each.")
@option("--db-instance", env="DB_INSTANCE", default=None, show_default="<cluster>-db",
        help="RDS instance `redeploy --snapshot` and `rollback --snapshot` snapshot.")
@option("--airflow-credentials-secret", "secret", env="AIRFLOW_CREDENTIALS_SECRET", default=None, metavar="ARN",
        show_default="none: credentials from the environment",
        help="Secrets Manager secret (ARN or name) the commands read Airflow's API credentials from: "
             "secretsmanager:GetSecretValue on it, and kms:Decrypt of it through Secrets Manager.")
@option("--explain", env="POLICY_EXPLAIN", is_flag=True, default=False,
        help="Print why each statement is there instead of the policy: its actions, what the commands lose "
             "without them, and why they need them.")
@click.pass_obj
def iam_policy(app, commands, account, lookup_account, describe_cluster, partition, source_repository, dest_repository,
               log_groups, task_families, pass_roles, db_instance, secret, explain):
    """Print the least-privilege IAM policy for the commands, as JSON.

    Resources are ARNs of the cluster, its services, tasks and task-definition families, the log groups,
    the ECR repositories, the RDS instance and its snapshots, and the Airflow credentials' secret,
    wherever the action supports them; the ecs:cluster condition where only that is supported; tagging
    only of the tag keys the commands write; iam:PassRole only towards ecs-tasks.amazonaws.com. The
    commands find the cluster's services when they run, so service actions cover service/<cluster>/*
    unless --describe-cluster names them. Each statement's Sid names the commands it serves. With
    --airflow-url (a global option) no load balancer is looked up, so no ELBv2 action is needed.
    --region (the global option) and --account default to `*`; no AWS call is made unless
    --lookup-account or --describe-cluster.

    \b
    Example:
      workflow --cluster airflow-prod iam-policy --account 123456789012 \\
        --region eu-west-1 \\
        --pass-role arn:aws:iam::123456789012:role/airflow-task \\
        --pass-role arn:aws:iam::123456789012:role/airflow-execution
    """
    from ..iam_policy import ECS_TASKS, NEEDS, needs_cluster, policy, scope_for_cluster
    from ..iam_policy import explain as explained

    chosen = list(commands) or list(COMMANDS)
    if account is not None and lookup_account:
        raise click.UsageError("Give --account or --lookup-account, not both.")
    if lookup_account:
        account = _caller_account(app)
    found: dict = {}
    if any(needs_cluster(c) for c in chosen):
        cluster = app.require_cluster()  # the cluster, as every cluster command takes it
        if describe_cluster:
            found = _described(app)
            cluster = found.pop("cluster")
    elif describe_cluster:
        raise click.UsageError("--describe-cluster goes with a command that works on a cluster")
    else:
        cluster = app.cluster or "*"
    name = cluster.rsplit("/", 1)[-1]
    scope = scope_for_cluster(
        cluster,
        source_repository=source_repository,
        dest_repository=dest_repository,
        log_groups=tuple(log_groups) or found.get("log_groups") or (f"/ecs/{name}",),
        services=found.get("services"),
        task_families=tuple(task_families) or found.get("task_families") or (),
        pass_roles=tuple(pass_roles),
        db_instance=db_instance or "",
        airflow_secret=secret or app.options.get("airflow_credentials_secret") or "",
        airflow_url_given=bool(app.options.get("airflow_url")),
        region=app.options.get("region") or None,
        account=account,
        partition=partition,
    )
    document = policy(scope, chosen)
    if not pass_roles and any(s["Sid"].startswith("PassTaskRoles") for s in document["Statement"]):
        _warn(f"iam:PassRole is allowed on every role in the account ({scope.any_role}), towards {ECS_TASKS} "
              "only; name the task definitions' task roles and execution roles with --pass-role")
    if explain:
        from ..progress import hanging, width_of

        width = width_of(sys.stdout)
        for row in explained(scope, chosen):
            # The statement's Sid is its grant and the commands it serves, run together: said here apart, so the
            # lines fit the terminal; the Sid begins with the grant's name.
            needs = "; ".join(f"{c}: {n}" for c, n in row["needs"].items())
            click.echo("\n".join([
                hanging(f"{row['grant']} (for {', '.join(row['commands'])})", width, 0, 4),
                hanging(f"  {', '.join(row['actions'])}", width, 0, 4),
                hanging(f"  need: {row['need']} ({NEEDS[row['need']]})" + (f"; but {needs}" if needs else ""), width, 0, 4),
                hanging(f"  why: {row['why']}", width, 0, 4)]))
        return
    size = len(json.dumps(document, separators=(",", ":")))
    if size > MANAGED_POLICY_MAX:
        _warn(f"this policy is {size:,} characters without whitespace, more than the {MANAGED_POLICY_MAX:,} IAM "
              "allows a managed policy; print it in parts with --command and attach each, e.g. --command redeploy "
              "--command rollback, then the other commands")
    click.echo(json.dumps(document, indent=2))


def _warn(text: str) -> None:
    """A warning on stderr, wrapped to the terminal under its own text."""
    from ..progress import hanging, width_of

    click.echo(hanging(f"warning: {text}", width_of(), 0, len("warning: ")), err=True)


def _described(app) -> dict:
    """The cluster as it is now: its ARN (account and Region), each service's role, and the task-definition families
    and log groups its services run. The same reads the commands make to find their services."""
    from ..ecs import Ecs
    from ..errors import WorkflowError
    from ..runner import CommandFailed

    try:
        topology = app.topology()
        ecs = Ecs(app.clients()("ecs"), app.require_cluster())
        services = ecs.services(topology.services() + list(topology.unmanaged))
        families, groups = [], []
        for service in services:
            definition = ecs.task_definition(service.task_definition)
            family = definition.arn.rsplit("/", 1)[-1].rsplit(":", 1)[0]
            families += [family] if family not in families else []
            for container in definition.containers:
                group = container.log_options.get("awslogs-group")
                groups += [group] if group and group not in groups else []
    except WorkflowError as error:
        raise CommandFailed.of(error) from None
    roles = [(c.role, c.service) for c in topology.components]
    return {"cluster": app.cluster_arn(), "services": tuple(roles), "task_families": tuple(families),
            "log_groups": tuple(groups)}


def _caller_account(app) -> str:
    from ..errors import WorkflowError
    from ..identity import caller_account
    from ..runner import CommandFailed

    try:
        return caller_account(app.clients()("sts"))
    except WorkflowError as error:
        raise CommandFailed.of(error) from None
