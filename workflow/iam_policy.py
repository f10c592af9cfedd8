"""The least-privilege IAM policy for the commands: every AWS action each one calls, on which resources, under
which conditions, and what each command loses without it.

Read from the code, call by call (ecs.py, ecr.py, registry.py, logs.py, elb.py, secrets.py, rds.py, and the tags
lease.py, database.py, rollback.py and changes.py write) and checked against the Service Authorization Reference
(parliament's copy of it, in the tests): an action is scoped to resource ARNs where its service supports that, to
the cluster with the `ecs:cluster` condition where only that is supported, and tagging to the keys the tool writes.
Building the policy makes no AWS call.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .lease import TAG_PREFIX
from .rds import snapshot_name
from .tag_keys import ROLLBACK_TAG, SCHEMA_TAG, STOPPED_COUNT_TAG
from .topology import DAG_PROCESSOR, ROLES, SCHEDULER

POLICY_VERSION = "2012-10-17"
ECS_TASKS = "ecs-tasks.amazonaws.com"  # the service principal a task's task role and execution role are passed to
LEASE_TAG_PREFIX = TAG_PREFIX  # the leases' keys, on the cluster and on the production repository
LEASE_TAGS = LEASE_TAG_PREFIX + "*"
# The other tags the commands write: on the cluster, the schema the database was moved to (database.SCHEMA_TAG) and
# a rollback under way (rollback.ROLLBACK_TAG); on a scheduler or dag-processor service, the desired count it had
# when this tool stopped it (changes.STOPPED_COUNT_TAG). Named again here, where those modules' layer is out of
# reach; the tests hold them equal.
CLUSTER_TAGS = (LEASE_TAGS, SCHEMA_TAG, ROLLBACK_TAG)
SERVICE_TAGS = (STOPPED_COUNT_TAG,)


@dataclass(frozen=True)
class Scope:
    """The names the policy is for. `region` and `account` may be `*`; nothing here is looked up."""

    cluster: str = "airflow-prod"
    source_repository: str = "airflow-stage"
    dest_repository: str = "airflow-prod"  # the production repository: releases, and the images the services run
    log_groups: tuple[str, ...] = ("/ecs/airflow-prod",)
    # (role, service name) pairs as the cluster was described (--describe-cluster); None: every service of the cluster
    # (`service/<cluster>/*`), since the commands discover the services, and their roles, only when they run.
    services: tuple[tuple[str, str], ...] | None = None
    task_families: tuple[str, ...] = ()  # none: the families named `<cluster>-*`
    pass_roles: tuple[str, ...] = ()  # none: every role in the account, with a warning
    db_instance: str = ""  # the RDS instance --snapshot names; empty: `<cluster>-db`
    airflow_secret: str = ""  # the secret --airflow-credentials-secret names (ARN or name); empty: none is read
    airflow_url_given: bool = False  # --airflow-url: the commands look for no load balancer
    region: str = "*"
    account: str = "*"
    partition: str = "aws"

    def arn(self, service: str, resource: str, region: str | None = None) -> str:
        return f"arn:{self.partition}:{service}:{self.region if region is None else region}:{self.account}:{resource}"

    @property
    def cluster_arn(self) -> str:
        return self.arn("ecs", f"cluster/{self.cluster}")

    def service_arns(self, roles: Iterable[str]) -> list[str]:
        """The services of `roles` as described, or every service of the cluster when they were not."""
        if self.services is None:
            return [self.arn("ecs", f"service/{self.cluster}/*")]
        wanted = set(roles)
        return [self.arn("ecs", f"service/{self.cluster}/{name}") for role, name in self.services if role in wanted]

    @property
    def task_definitions(self) -> list[str]:
        families = self.task_families or (f"{self.cluster}-*",)
        return [self.arn("ecs", f"task-definition/{family}:*") for family in families]

    @property
    def roles(self) -> list[str]:
        return list(self.pass_roles) or [self.any_role]

    @property
    def any_role(self) -> str:
        return f"arn:{self.partition}:iam::{self.account}:role/*"

    def repository(self, name: str) -> str:
        return self.arn("ecr", f"repository/{name}")

    @property
    def db_arn(self) -> str:
        return self.arn("rds", f"db:{self.db_instance or self.cluster + '-db'}")

    @property
    def snapshot_pattern(self) -> str:
        """The snapshots database.take_snapshot names, `<cluster>-YYYYMMDD-HHMMSS`, and no other cluster's."""
        stamp = datetime(2000, 1, 1)
        prefix = snapshot_name(self.cluster, stamp).removesuffix(f"-{stamp:%Y%m%d-%H%M%S}")
        return self.arn("rds", f"snapshot:{prefix}-????????-??????")

    @property
    def secret_arn(self) -> str:
        """The secret's ARN; a name gets the six random characters Secrets Manager appends to it."""
        if self.airflow_secret.startswith("arn:"):
            return self.airflow_secret
        return self.arn("secretsmanager", f"secret:{self.airflow_secret}-??????")

    @property
    def secret_region(self) -> str:
        parts = self.secret_arn.split(":")
        return parts[3] if len(parts) > 3 and parts[3] else self.region

    @property
    def secrets_endpoint(self) -> str:
        """The host Secrets Manager calls KMS from (kms:ViaService), in the secret's Region."""
        suffix = ".amazonaws.com.cn" if self.partition == "aws-cn" else ".amazonaws.com"
        return f"secretsmanager.{self.secret_region}{suffix}"


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
    resources: Callable[[Scope, tuple[str, ...]], list[str]]  # (scope, the roles whose services it names)
    condition: Callable[[Scope, tuple[str, ...]], dict] | None = None  # (scope, the tag keys the commands write)
    need: str = "call"  # call | hint | ancillary | lease | authorization; see NEEDS
    why: str = ""
    # The Sid when the scope does not name what the statement acts on (services, or task-definition families), and
    # it covers the cluster's every one instead.
    any_sid: str | None = None
    when: Callable[[Scope], bool] | None = None  # in the policy only when this holds (an option was given)

    def label(self, scope: Scope) -> str:
        named = bool(scope.task_families) if "ecs:RunTask" in self.actions else scope.services is not None
        return self.any_sid if self.any_sid and not named else self.sid


NEEDS = {
    "call": "the command calls it and fails without it",
    "hint": "only for the hint in a 'not found' error; without it the error just lacks the hint",
    "ancillary": "a read the command does without, saying what it could not read (a task's logs, Airflow's URL, "
                 "an image's release and Airflow version), and goes on",
    "lease": "the operator lease, tags on the cluster (and the production repository) that mutating commands hold "
             "while they change it",
    "authorization": "no call of its own: AWS checks it inside another call (RunTask passing the task's roles, "
                     "Secrets Manager decrypting the secret)",
}
STRENGTH = ("call", "lease", "ancillary", "hint", "authorization")  # the first one a command has for an action wins


def _in_cluster(scope: Scope, _keys=()) -> dict:
    value = scope.cluster_arn
    return {("ArnLike" if "*" in value else "ArnEquals"): {"ecs:cluster": value}}


def _passed_to_ecs_tasks(_scope: Scope, _keys=()) -> dict:
    return {"StringEquals": {"iam:PassedToService": ECS_TASKS}}


def _tag_keys(_scope: Scope, keys: tuple[str, ...]) -> dict:
    """Only these tag keys, and at least one: a request naming no key at all is not let through either."""
    return {"ForAllValues:StringLike": {"aws:TagKeys": list(keys)}, "Null": {"aws:TagKeys": "false"}}


def _through_secrets_manager(scope: Scope, _keys=()) -> dict:
    """Decrypt only what Secrets Manager decrypts for the caller, and only for this secret."""
    condition: dict[str, dict] = {}
    for key, value in (("kms:ViaService", scope.secrets_endpoint), ("kms:EncryptionContext:SecretARN", scope.secret_arn)):
        condition.setdefault("StringLike" if "*" in value or "?" in value else "StringEquals", {})[key] = value
    return condition


def _any(_scope: Scope, _roles) -> list[str]:
    return ["*"]


def _cluster(scope: Scope, _roles) -> list[str]:
    return [scope.cluster_arn]


def _production(scope: Scope, _roles) -> list[str]:
    return [scope.repository(scope.dest_repository)]


def _finds_airflow(scope: Scope) -> bool:
    return not scope.airflow_url_given


def _reads_secret(scope: Scope) -> bool:
    return bool(scope.airflow_secret)


GRANTS = {
    grant.sid: grant
    for grant in [
        # The cluster's services and their roles (app.topology): listed, then described with their tags.
        Grant("DiscoverServices", ("ecs:ListServices",), _any, _in_cluster,
              why="the cluster's services, each given its role; the 'did you mean' of a service not found (no "
                  "resource-level support: the ecs:cluster condition)"),
        Grant("DescribeServices", ("ecs:DescribeServices",), lambda s, _r: [s.arn("ecs", f"service/{s.cluster}/*")],
              why="every service of the cluster, described with its tags when the roles are found, then before "
                  "anything changes and at every poll; service/<cluster>/* since any service may have a role"),
        Grant("UpdateNamedServices", ("ecs:UpdateService",), lambda s, roles: s.service_arns(roles),
              any_sid="UpdateAnyService",
              why="desired counts of schedulers and dag-processors; forceNewDeployment of the others. Every service "
                  "of the cluster (service/<cluster>/*) unless --describe-cluster named those of the roles changed"),
        Grant("ListTasks", ("ecs:ListTasks",), _any, _in_cluster,
              why="a service's tasks, RUNNING and STOPPED (no resource-level support: the ecs:cluster condition)"),
        Grant("DescribeTasks", ("ecs:DescribeTasks",), lambda s, _r: [s.arn("ecs", f"task/{s.cluster}/*")],
              why="whether each task still runs, how it stopped, and the image digest it runs"),
        Grant("DescribeTaskDefinitions", ("ecs:DescribeTaskDefinition",), _any,
              why="the containers of a task definition (the action supports no resource or condition)"),
        Grant("RunNamedFamilies", ("ecs:RunTask",), lambda s, _r: s.task_definitions, _in_cluster,
              any_sid="RunClusterFamilies",
              why="the one-off task, with a service's task definition, in this cluster only; the families named "
                  "<cluster>-* unless --task-family or --describe-cluster named them"),
        Grant("PassTaskRoles", ("iam:PassRole",), lambda s, _r: s.roles, _passed_to_ecs_tasks, need="authorization",
              why="the task definition's task role and execution role, passed to ECS tasks only"),
        Grant("ReadTaskLogs", ("logs:GetLogEvents",),
              lambda s, _r: [s.arn("logs", f"log-group:{group}:*") for group in s.log_groups], need="ancillary",
              why="a task's awslogs stream: followed by a one-off task, quoted when a task crashes"),
        Grant("SearchLogs", ("logs:FilterLogEvents",),
              lambda s, _r: [s.arn("logs", f"log-group:{group}:*") for group in s.log_groups],
              why="`workflow logs`: the lines of a service's task streams"),
        Grant("ReadClusterTags", ("ecs:DescribeClusters", "ecs:ListTagsForResource"), _cluster, need="lease",
              why="the cluster's ARN and tags: the leases, read before every change; the schema the database was "
                  "moved to; a rollback under way"),
        Grant("WriteClusterTags", ("ecs:TagResource", "ecs:UntagResource"), _cluster, _tag_keys, need="lease",
              why="this command's own lease tag, set and removed; the schema's Airflow version after a migration; "
                  "the target of a rollback under way. No other tag key"),
        Grant("TagNamedSchedulers", ("ecs:TagResource", "ecs:UntagResource"), lambda s, roles: s.service_arns(roles),
              _tag_keys, any_sid="TagAnyService",
              why=f"{STOPPED_COUNT_TAG}: a scheduler's or dag-processor's desired count other than 1, remembered "
                  "when it stops and removed when it starts again. No other tag key"),
        Grant("ListClustersHint", ("ecs:ListClusters",), _any, need="hint",
              why="the clusters there are when the cluster is not found (the action supports no resource)"),
        Grant("FindAirflowUrl",
              ("elasticloadbalancing:DescribeTargetGroups", "elasticloadbalancing:DescribeLoadBalancers",
               "elasticloadbalancing:DescribeListeners", "elasticloadbalancing:DescribeRules"),
              _any, need="ancillary", when=_finds_airflow,
              why="Airflow's URL: the api-server's target group, its load balancer and the listener or rule "
                  "forwarding to it (ELBv2's Describe actions support no resource). Not with --airflow-url"),
        Grant("ReadAirflowSecret", ("secretsmanager:GetSecretValue",), lambda s, _r: [s.secret_arn], when=_reads_secret,
              why="Airflow's API credentials, from the secret --airflow-credentials-secret names"),
        Grant("DecryptAirflowSecret", ("kms:Decrypt",), lambda s, _r: [s.arn("kms", "key/*", s.secret_region)],
              _through_secrets_manager, need="authorization", when=_reads_secret,
              why="the secret's customer managed KMS key, if it has one: only through Secrets Manager and only for "
                  "this secret (its encryption context); the AWS managed key aws/secretsmanager needs none"),
        Grant("SnapshotDatabase", ("rds:CreateDBSnapshot",), lambda s, _r: [s.db_arn, s.snapshot_pattern],
              why="--snapshot: a snapshot of the database instance, named <cluster>-<UTC time>, before the schema moves"),
        Grant("WatchSnapshot", ("rds:DescribeDBSnapshots",), lambda s, _r: [s.snapshot_pattern],
              why="--snapshot: the snapshot, until it is available"),
        Grant("FindDatabase", ("rds:DescribeDBInstances",), lambda s, _r: [s.db_arn],
              why="--snapshot: the instance exists, checked before anything changes (a mistyped name would otherwise "
                  "be found only once the schedulers had stopped)"),
        Grant("ReadSourceImage", ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"),
              lambda s, _r: [s.repository(s.source_repository)],
              why="the source manifests, and a pre-signed URL for each blob to copy (or mount)"),
        Grant("ReadReleases", ("ecr:BatchGetImage", "ecr:DescribeImages", "ecr:GetDownloadUrlForLayer"), _production,
              why="the production repository's images: manifests and tags (which release runs, which to go back "
                  "to, what a redeploy moves to), and an image's config blob (its Airflow version)"),
        Grant("TagReleases", ("ecr:PutImage",), _production,
              why="promote's tags, and rollback's latest re-pointed at an earlier release's exact manifest"),
        Grant("WriteDestinationImage",
              ("ecr:BatchCheckLayerAvailability", "ecr:CompleteLayerUpload", "ecr:InitiateLayerUpload",
               "ecr:UploadLayerPart"),
              _production, why="which blobs the destination has, and the blob uploads and mounts"),
        Grant("UndoPromoteTags", ("ecr:BatchDeleteImage",), _production,
              why="a tag a failed promote had just written, removed again, so that a failed promote moves no tag"),
        Grant("RegistryToken", ("ecr:GetAuthorizationToken",), _any,
              why="the token for the registry API (the action supports no resource)"),
        Grant("ReadRepositoryLease", ("ecr:DescribeRepositories", "ecr:ListTagsForResource"), _production,
              need="lease", why="the production repository's ARN and its lease tags: no promote moves latest while a "
                                "redeploy or rollback deploys it, nor two promotes at once"),
        Grant("WriteRepositoryLease", ("ecr:TagResource", "ecr:UntagResource"), _production, _tag_keys, need="lease",
              why="this command's own lease tag on the production repository, set and removed. No other tag key"),
    ]
}


@dataclass(frozen=True)
class Use:
    """A command's use of a grant."""

    grant: str
    actions: tuple[str, ...] = ()  # only these of the grant's actions; none: all of them
    need: str | None = None  # this command's need, when it is not the grant's
    roles: tuple[str, ...] = ()  # for a grant on named services: the roles whose services it names
    tags: tuple[str, ...] = ()  # for a tagging grant: the keys this command writes


# The reads every cluster command makes to find its services, and the hint when the cluster is not found.
_FIND = (Use("DiscoverServices"), Use("DescribeServices"), Use("ListClustersHint"))
_TASKS = (Use("ListTasks"), Use("DescribeTasks"))
_LEASE = (Use("ReadClusterTags"), Use("WriteClusterTags", tags=(LEASE_TAGS,)))
# Airflow's own view: its URL behind the load balancer, its credentials. Without the URL the command goes on with
# ECS's view and says so; credentials it cannot read stop it before any change.
_AIRFLOW = (Use("FindAirflowUrl"), Use("ReadAirflowSecret"), Use("DecryptAirflowSecret"))
_ONE_OFF = (Use("DescribeTaskDefinitions"), Use("RunNamedFamilies"), Use("PassTaskRoles"), Use("ReadTaskLogs"))
# After a migration: the image's Airflow version read from its config (ancillary: unknown is said, not fatal), and
# recorded on the cluster (a record that fails is said, and the migration still succeeded).
_RECORD_SCHEMA = (Use("ReadReleases", ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"), need="ancillary"),
                  Use("WriteClusterTags", need="ancillary", tags=(SCHEMA_TAG,)))
_SNAPSHOT = (Use("FindDatabase"), Use("SnapshotDatabase"), Use("WatchSnapshot"))
_REPOSITORY_LEASE = (Use("ReadRepositoryLease"), Use("WriteRepositoryLease", tags=(LEASE_TAGS,)))
_UPGRADE = (
    *_FIND, *_TASKS, *_LEASE, *_AIRFLOW, *_ONE_OFF, *_RECORD_SCHEMA, *_SNAPSHOT, *_REPOSITORY_LEASE,
    Use("UpdateNamedServices", roles=ROLES),
    Use("TagNamedSchedulers", roles=(SCHEDULER, DAG_PROCESSOR), tags=SERVICE_TAGS),
)

# What each command uses, in the order `--help` and the README list them.
COMMANDS: dict[str, tuple[Use, ...]] = {
    "initialize": (*_FIND, *_TASKS, *_LEASE, *_ONE_OFF, *_RECORD_SCHEMA),
    "redeploy": (
        *_UPGRADE,
        # A rollback recorded as under way is over once every service runs `latest`: its record is removed.
        Use("WriteClusterTags", need="ancillary", tags=(ROLLBACK_TAG,)),
        # The plan: each role's image now and after, its release stamp and Airflow version (unknown when unread); a
        # resumed rollout is taken over only when its image is known to be the current one.
        Use("ReadReleases", need="ancillary"),
    ),
    "stop-scheduler": (*_FIND, *_TASKS, *_LEASE, Use("UpdateNamedServices", roles=(SCHEDULER,)),
                       Use("TagNamedSchedulers", ("ecs:TagResource",), roles=(SCHEDULER,), tags=SERVICE_TAGS)),
    "start-scheduler": (*_FIND, *_TASKS, *_LEASE, *_AIRFLOW, Use("DescribeTaskDefinitions"), Use("ReadTaskLogs"),
                        # The image's Airflow version, against the schema (recorded, else told by the version every
                        # running component runs): a start it would crash is refused.
                        Use("ReadReleases", ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"), need="ancillary"),
                        # The dag-processors a redeploy stopped with the schedulers, and stopped before it ended.
                        Use("UpdateNamedServices", roles=(SCHEDULER, DAG_PROCESSOR)),
                        Use("TagNamedSchedulers", ("ecs:UntagResource",), roles=(SCHEDULER,), tags=SERVICE_TAGS)),
    "status": (*_FIND, *_TASKS, *_AIRFLOW, Use("DescribeTaskDefinitions"),
               Use("ReadClusterTags", need="ancillary"),  # another operator's lease, shown as a warning
               # The tags and the Airflow version of each image the services run: shown when they can be read.
               Use("ReadReleases", need="ancillary")),
    "logs": (*_FIND, *_TASKS, Use("DescribeTaskDefinitions"), Use("SearchLogs")),
    "run": (*_FIND, Use("DescribeTasks"), *_LEASE, *_ONE_OFF),
    "promote": (Use("ReadSourceImage"), Use("ReadReleases", ("ecr:BatchGetImage", "ecr:DescribeImages")),
                # The Airflow versions latest moved between (their configs): whether the redeploy must migrate.
                Use("ReadReleases", ("ecr:GetDownloadUrlForLayer",), need="ancillary"),
                Use("WriteDestinationImage"), Use("TagReleases"), Use("UndoPromoteTags"), Use("RegistryToken"),
                *_REPOSITORY_LEASE),
    "releases": (*_FIND, *_TASKS, Use("ReadReleases", ("ecr:BatchGetImage", "ecr:DescribeImages")),
                 Use("ReadReleases", ("ecr:GetDownloadUrlForLayer",), need="ancillary")),  # each one's Airflow version
    "rollback": (
        *_UPGRADE,
        Use("ReadReleases", ("ecr:BatchGetImage", "ecr:DescribeImages")),  # the releases, the target's manifest
        # The target's Airflow version, from its config: without it the schema check knows nothing, and a rollback
        # --downgrade-db skips the downgrade its components then need.
        Use("ReadReleases", ("ecr:GetDownloadUrlForLayer",)),
        Use("TagReleases"),
        Use("WriteClusterTags", tags=(ROLLBACK_TAG,)),
    ),
}
TAG_ORDER = (*CLUSTER_TAGS, *SERVICE_TAGS)


def needs_cluster(command: str) -> bool:
    """Whether the command's statements name the cluster (its policy needs --cluster): every command but promote."""
    return any(use.grant == "DescribeServices" for use in COMMANDS[command])


def camel(command: str) -> str:
    return "".join(word.capitalize() for word in command.split("-"))


@dataclass
class _Statement:
    grant: Grant
    commands: list[str] = field(default_factory=list)
    actions: set[str] = field(default_factory=set)
    roles: set[str] = field(default_factory=set)
    tags: list[str] = field(default_factory=list)


def _chosen(commands: Iterable[str] | None) -> list[str]:
    wanted = set(commands or ())
    unknown = wanted - set(COMMANDS)
    if unknown:
        raise ValueError(f"no such command: {', '.join(sorted(unknown))}")
    return [c for c in COMMANDS if not wanted or c in wanted]


def _statements(scope: Scope, commands: Iterable[str] | None) -> list[_Statement]:
    statements: dict[str, _Statement] = {}
    for command in _chosen(commands):
        for use in COMMANDS[command]:
            grant = GRANTS[use.grant]
            if grant.when is not None and not grant.when(scope):
                continue
            statement = statements.setdefault(use.grant, _Statement(grant))
            if command not in statement.commands:
                statement.commands.append(command)
            statement.actions.update(use.actions or grant.actions)
            statement.roles.update(use.roles)
            statement.tags += [t for t in use.tags if t not in statement.tags]
    return [statements[key] for key in GRANTS if key in statements]  # a fixed order, whatever the commands


def policy(scope: Scope, commands: Iterable[str] | None = None) -> dict:
    """The policy document for `commands` (every command when None or empty), one statement per grant.

    Each statement's Sid names the grant and the commands it serves, e.g. `UpdateAnyServiceForRedeployStopScheduler`.
    """
    document = []
    for statement in _statements(scope, commands):
        grant = statement.grant
        resources = grant.resources(scope, tuple(r for r in ROLES if r in statement.roles))
        if not resources:  # a role the described cluster has no service of: nothing to allow
            continue
        body: dict[str, Any] = {
            "Sid": grant.label(scope) + "For" + "".join(camel(c) for c in statement.commands),
            "Effect": "Allow",
            "Action": _unique([a for a in grant.actions if a in statement.actions]),
            "Resource": _unique(resources),
        }
        if grant.condition:
            body["Condition"] = grant.condition(scope, tuple(sorted(statement.tags, key=TAG_ORDER.index)))
        document.append(body)
    return {"Version": POLICY_VERSION, "Statement": document}


def explain(scope: Scope, commands: Iterable[str] | None = None) -> list[dict]:
    """Why each statement of the policy is there: its Sid, actions, need (and the commands whose need differs) and
    why, in the policy's order."""
    chosen = _chosen(commands)
    printed = {s["Sid"].split("For", 1)[0]: s for s in policy(scope, chosen)["Statement"]}
    rows = []
    for statement in _statements(scope, chosen):
        grant = statement.grant
        body = printed.get(grant.label(scope))
        if body is None:
            continue
        needs = {}
        for command in statement.commands:
            found = [use.need or grant.need for use in COMMANDS[command] if use.grant == grant.sid]
            need = min(found, key=STRENGTH.index)
            if need != grant.need:
                needs[command] = need
        rows.append({"sid": body["Sid"], "grant": grant.label(scope), "commands": list(statement.commands),
                     "actions": _list(body["Action"]), "need": grant.need, "needs": needs, "why": grant.why})
    return rows


def _unique(items: list[str]) -> list[str] | str:
    seen = list(dict.fromkeys(items))
    return seen[0] if len(seen) == 1 else seen


def actions(document: dict) -> list[str]:
    """Every action the document allows, sorted."""
    return sorted({a for s in document["Statement"] for a in _list(s["Action"])})


def needs_of(action: str, command: str | None = None, scope: Scope | None = None) -> str:
    """Why `command` (any command when None) needs `action`: the strongest need among the grants it uses that allow it
    (a key of NEEDS)."""
    found = []
    for name in [command] if command else list(COMMANDS):
        for use in COMMANDS[name]:
            grant = GRANTS[use.grant]
            if action in (use.actions or grant.actions) and (scope is None or grant.when is None or grant.when(scope)):
                found.append(use.need or grant.need)
    if not found:
        raise KeyError(f"{command or 'no command'} uses no {action}")
    return min(found, key=STRENGTH.index)


def widened(document: dict, without: Iterable[str] = ()) -> dict:
    """The same actions on every resource with no condition, less `without`: for an IAM evaluator (moto's)
    that sees every request as resource `*` and cannot evaluate the conditions."""
    drop = set(without)
    kept = [a for a in actions(document) if a not in drop]
    return {"Version": POLICY_VERSION, "Statement": [{"Sid": "Widened", "Effect": "Allow", "Action": kept, "Resource": "*"}]}


def _list(value) -> list:
    return value if isinstance(value, list) else [value]
