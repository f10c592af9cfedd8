"""The ECS calls the operations need, answering with small immutable values."""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .errors import ClusterNotFound, Malformed, OperationFailed, ServicesMissing, WorkflowError, translated

STARTING = ("PROVISIONING", "PENDING", "ACTIVATING")
DESCRIBE_SERVICES_MAX = 10
DESCRIBE_TASKS_MAX = 100
ROLLING_UPDATE = "ECS"  # the only deployment controller with deployments that forceNewDeployment can create


class Answer(dict):
    """An ECS answer, read defensively: a field it lacks makes it Malformed (it is not what ECS promises: a
    proxy's page, a truncated body), never a KeyError far from the call. What it holds reads the same way."""

    operation = ""
    path = "the answer"

    @classmethod
    def of(cls, raw, operation: str = "", path: str = "the answer") -> "Answer":
        if isinstance(raw, Answer):
            return raw
        if not isinstance(raw, dict):
            raise Malformed(f"{path} is a {type(raw).__name__}, not an object", operation)
        answer = cls(raw)
        answer.operation, answer.path = operation, path
        return answer

    def __getitem__(self, key):
        if not dict.__contains__(self, key):
            raise Malformed(f"{self.path} has no {key}", self.operation)
        return self._read(key, dict.__getitem__(self, key))

    def get(self, key, default=None):
        return self._read(key, dict.get(self, key, default))

    def _read(self, key, value):
        if isinstance(value, dict):
            return Answer.of(value, self.operation, f"{self.path}'s {key}")
        if isinstance(value, list):
            return [Answer.of(item, self.operation, f"{self.path}'s {key}[{i}]") if isinstance(item, dict) else item
                    for i, item in enumerate(value)]
        return value


def _operation(name: str) -> str:
    """describe_services -> DescribeServices, as errors name it."""
    return "".join(word.title() for word in name.split("_"))


@dataclass(frozen=True)
class Deployment:
    id: str
    status: str
    task_definition: str
    desired: int
    running: int
    pending: int
    failed_tasks: int
    rollout_state: str | None
    rollout_reason: str | None
    created_at: datetime | None = None

    @classmethod
    def parse(cls, raw: dict) -> "Deployment":
        raw = Answer.of(raw, path="a deployment")
        return cls(
            id=raw["id"],
            status=raw["status"],
            task_definition=raw.get("taskDefinition", ""),
            desired=raw.get("desiredCount", 0),
            running=raw.get("runningCount", 0),
            pending=raw.get("pendingCount", 0),
            failed_tasks=raw.get("failedTasks", 0),
            rollout_state=raw.get("rolloutState"),
            rollout_reason=raw.get("rolloutStateReason"),
            created_at=raw.get("createdAt"),
        )


@dataclass(frozen=True)
class Event:
    id: str
    at: datetime | None
    message: str


@dataclass(frozen=True)
class Service:
    name: str
    arn: str
    status: str
    desired: int
    running: int
    pending: int
    task_definition: str
    deployments: tuple[Deployment, ...]
    events: tuple[Event, ...] = ()
    launch: dict = field(default_factory=dict, compare=False)
    controller: str = ROLLING_UPDATE
    deployment_configuration: dict = field(default_factory=dict, compare=False)
    tags: dict[str, str] = field(default_factory=dict, compare=False)  # only when described with its tags
    target_groups: tuple[str, ...] = ()  # the load balancer target groups its tasks register with

    @property
    def circuit_breaker(self) -> dict:
        """{"enable": bool, "rollback": bool}, or empty when the service has none."""
        return self.deployment_configuration.get("deploymentCircuitBreaker") or {}

    @classmethod
    def parse(cls, raw: dict) -> "Service":
        raw = Answer.of(raw, path="a service")
        launch = {
            key: raw[key]
            for key in ("networkConfiguration", "launchType", "capacityProviderStrategy", "platformVersion")
            if raw.get(key)
        }
        if "capacityProviderStrategy" in launch:
            launch.pop("launchType", None)  # RunTask takes one or the other
        return cls(
            name=raw["serviceName"],
            arn=raw["serviceArn"],
            status=raw.get("status", "ACTIVE"),
            desired=raw.get("desiredCount", 0),
            running=raw.get("runningCount", 0),
            pending=raw.get("pendingCount", 0),
            task_definition=raw.get("taskDefinition", ""),
            deployments=tuple(Deployment.parse(d) for d in raw.get("deployments", [])),
            events=tuple(Event(e["id"], e.get("createdAt"), e["message"]) for e in raw.get("events", [])),
            launch=launch,
            controller=(raw.get("deploymentController") or {}).get("type", ROLLING_UPDATE),
            deployment_configuration=raw.get("deploymentConfiguration") or {},
            tags={t["key"]: t.get("value", "") for t in raw.get("tags") or [] if "key" in t},
            target_groups=tuple(b["targetGroupArn"] for b in raw.get("loadBalancers") or [] if b.get("targetGroupArn")),
        )

    @property
    def primary(self) -> Deployment | None:
        return next((d for d in self.deployments if d.status == "PRIMARY"), None)

    def deployment(self, deployment_id: str) -> Deployment | None:
        return next((d for d in self.deployments if d.id == deployment_id), None)

    def older_running(self, deployment_id: str) -> int:
        """Tasks of other deployments that are RUNNING and meant to stay so (ones told to stop count nowhere)."""
        return sum(d.running for d in self.deployments if d.id != deployment_id)

    def is_serving(self, deployment_id: str) -> bool:
        """Every task the deployment wants runs, and no older deployment has a task RUNNING: the old ones are
        at most deregistering (DEACTIVATING behind a load balancer) or stopping."""
        mine = self.deployment(deployment_id)
        return (
            mine is not None
            and mine.running == mine.desired
            and mine.pending == 0
            and mine.rollout_state in (None, "IN_PROGRESS", "COMPLETED")
            and self.older_running(deployment_id) == 0
        )

    def has_completed(self, deployment_id: str) -> bool:
        """The deployment is the only one left, every task it wants runs, and ECS says it completed."""
        if len(self.deployments) != 1 or self.deployments[0].id != deployment_id:
            return False
        only = self.deployments[0]
        return (
            only.running == only.desired == self.desired
            and only.pending == 0
            and self.running == self.desired
            and only.rollout_state in (None, "COMPLETED")
        )


FAILED_TO_START, EXITED, UNHEALTHY, SCALED_IN, REPLACED, INTERRUPTED, USER, OTHER = (
    "failed to start", "exited", "failed health checks", "scaled in", "replaced by ECS", "interrupted",
    "stopped by a user", "stopped",
)


@dataclass(frozen=True)
class Container:
    name: str
    last_status: str
    exit_code: int | None
    reason: str | None
    image: str = ""
    image_digest: str | None = None  # what ECS resolved the image's tag to when the task's deployment started


@dataclass(frozen=True)
class Task:
    arn: str
    last_status: str
    desired_status: str
    task_definition: str
    started_by: str | None
    stop_code: str | None
    stopped_reason: str | None
    containers: tuple[Container, ...]
    group: str = ""
    reached_running: bool = False  # ECS sets startedAt when the task turns RUNNING
    stopping_at: datetime | None = None  # when ECS was told to stop it
    # When its image pull began and ended (no end: it never pulled) and when its containers had stopped.
    pull_started_at: datetime | None = None
    pull_stopped_at: datetime | None = None
    execution_stopped_at: datetime | None = None
    command: tuple[str, ...] = ()  # the command a one-off runs: its first container override's

    @classmethod
    def parse(cls, raw: dict) -> "Task":
        raw = Answer.of(raw, path="a task")
        return cls(
            arn=raw["taskArn"],
            last_status=raw.get("lastStatus", "PROVISIONING"),
            desired_status=raw.get("desiredStatus", "RUNNING"),
            task_definition=raw.get("taskDefinitionArn", ""),
            started_by=raw.get("startedBy"),
            stop_code=raw.get("stopCode"),
            stopped_reason=raw.get("stoppedReason"),
            containers=tuple(
                Container(c["name"], c.get("lastStatus", ""), c.get("exitCode"), c.get("reason"), c.get("image", ""),
                          c.get("imageDigest"))
                for c in raw.get("containers", [])
            ),
            group=raw.get("group", ""),
            reached_running=raw.get("startedAt") is not None,
            stopping_at=raw.get("stoppingAt"),
            pull_started_at=raw.get("pullStartedAt"),
            pull_stopped_at=raw.get("pullStoppedAt"),
            execution_stopped_at=raw.get("executionStoppedAt"),
            command=next((tuple(o["command"]) for o in (raw.get("overrides") or {}).get("containerOverrides", [])
                          if o.get("command")), ()),
        )

    @property
    def id(self) -> str:
        return self.arn.rsplit("/", 1)[-1]

    @property
    def is_stopped(self) -> bool:
        return self.last_status == "STOPPED"

    @property
    def process_ended(self) -> bool:
        """No process of it runs any more: STOPPED, or DEPROVISIONING while ECS detaches its network interface
        (its containers have stopped, executionStoppedAt is set), which takes seconds more."""
        return self.last_status in ("DEPROVISIONING", "STOPPED") or self.execution_stopped_at is not None or (
            bool(self.containers) and all(c.last_status == "STOPPED" for c in self.containers))

    @property
    def stop_cause(self) -> str:
        """Why the task stopped, in the terms a deployment watch needs (see the constants below)."""
        reason = self.stopped_reason or ""
        exited = self.stop_code == "EssentialContainerExited" or reason.startswith("Essential container in task exited")
        # ECS counts an exit before RUNNING as a failed launch (failedTasks) and tries again.
        if self.stop_code == "TaskFailedToStart" or (exited and not self.reached_running):
            return FAILED_TO_START
        if exited:
            return EXITED
        if "health check" in reason:  # "Task failed ELB health checks in ...", "Task failed container health checks"
            return UNHEALTHY
        if reason.startswith("Scaling activity initiated by"):
            return SCALED_IN
        if self.stop_code == "ServiceSchedulerInitiated":
            return REPLACED  # AZ rebalancing, task retirement: ECS stops a healthy task and starts another
        if self.stop_code in ("SpotInterruption", "TerminationNotice"):
            return INTERRUPTED
        if self.stop_code == "UserInitiated":
            return USER
        return OTHER

    def exit_codes(self, names: frozenset[str]) -> dict[str, int | None]:
        return {c.name: c.exit_code for c in self.containers if c.name in names}

    def failure(self, essential: frozenset[str]) -> str | None:
        """Why this stopped task counts as failed, or None: it never started, or an essential container failed."""
        if self.stop_code == "TaskFailedToStart":
            return f"task {self.id} failed to start: {self.stopped_reason or 'no reason given'}"
        for c in self.containers:
            if c.name in essential and c.exit_code not in (0, None):
                return f"essential container {c.name} of task {self.id} exited with code {c.exit_code}" + (
                    f": {c.reason}" if c.reason else ""
                )
        for c in self.containers:
            if c.name in essential and c.exit_code is None and self.process_ended:
                return f"essential container {c.name} of task {self.id} did not run: {c.reason or self.stopped_reason}"
        return None


@dataclass(frozen=True)
class ContainerDefinition:
    name: str
    essential: bool
    log_options: dict  # the awslogs driver's options: awslogs-group, awslogs-stream-prefix, awslogs-region
    image: str = ""  # as the task definition names it: a tag (resolved by ECS at launch) or a digest


@dataclass(frozen=True)
class TaskDefinition:
    arn: str
    containers: tuple[ContainerDefinition, ...]

    @property
    def essential(self) -> frozenset[str]:
        return frozenset(c.name for c in self.containers if c.essential)

    def container(self, name: str) -> ContainerDefinition | None:
        return next((c for c in self.containers if c.name == name), None)


STARTED_BY = "workflow"  # the startedBy of the one-off tasks this tool runs, by which it finds them again


class Ecs:
    """One cluster's ECS API; the only code here that calls boto3's ECS client."""

    def __init__(self, client, cluster: str, single_attempt: Callable[[], object] | None = None):
        """`single_attempt` builds a client that never retries, for requests that must not repeat blindly."""
        self.client, self.cluster = client, cluster
        self._single_attempt = single_attempt
        self._definitions: dict[str, TaskDefinition] = {}
        self._cluster_arn: str | None = None

    def _translated(self):
        return translated({"ClusterNotFoundException": ClusterNotFound(self.cluster)})

    def _call(self, operation: str, **kwargs) -> Answer:
        try:
            with self._translated():
                return Answer.of(getattr(self.client, operation)(cluster=self.cluster, **kwargs), _operation(operation))
        except ClusterNotFound:
            raise self._cluster_not_found() from None

    def where(self) -> str:
        """Where the calls went, for a "not found" that may only be the wrong Region or endpoint."""
        import os

        meta = self.client.meta
        text = f"region {meta.region_name}, endpoint {meta.endpoint_url}"
        if os.environ.get("AWS_ENDPOINT_URL") == meta.endpoint_url:
            text += " from AWS_ENDPOINT_URL"
        return text

    def _cluster_not_found(self) -> ClusterNotFound:
        try:
            with translated():
                arns = Answer.of(self.client.list_clusters(), "ListClusters").get("clusterArns") or []
        except WorkflowError:  # only a hint: without it the error still says where we looked
            return ClusterNotFound(self.cluster, self.where())
        names = [arn.rsplit("/", 1)[-1] for arn in arns]
        hint = f"; clusters there: {', '.join(sorted(names))}" if names else "; there are no clusters there"
        return ClusterNotFound(self.cluster, self.where(), hint)

    def cluster_arn(self) -> str:
        if self._cluster_arn is None:
            answer = self._call_plain("describe_clusters", clusters=[self.cluster])
            found = [c for c in answer.get("clusters", []) if c.get("status") != "INACTIVE"]
            if not found:
                raise self._cluster_not_found()
            self._cluster_arn = found[0]["clusterArn"]
        return self._cluster_arn

    def cluster_tags(self) -> dict[str, str]:
        answer = self._call_plain("list_tags_for_resource", resourceArn=self.cluster_arn())
        return {t["key"]: t["value"] for t in answer.get("tags", [])}

    def tag_cluster(self, tags: list[dict]) -> None:
        self.tag(self.cluster_arn(), tags)

    def untag_cluster(self, keys: list[str]) -> None:
        self.untag(self.cluster_arn(), keys)

    def tag(self, arn: str, tags: list[dict]) -> None:
        """Tag the cluster or one of its services."""
        self._call_plain("tag_resource", resourceArn=arn, tags=tags)

    def untag(self, arn: str, keys: list[str]) -> None:
        self._call_plain("untag_resource", resourceArn=arn, tagKeys=keys)

    def _call_plain(self, operation: str, **kwargs) -> Answer:
        """A call that names no cluster parameter."""
        with self._translated():
            return Answer.of(getattr(self.client, operation)(**kwargs), _operation(operation))

    def service_names(self) -> list[str]:
        """Every service in the cluster, by name (ListServices, all pages)."""
        arns: list[str] = []
        try:
            with self._translated():
                for page in self.client.get_paginator("list_services").paginate(cluster=self.cluster):
                    arns += Answer.of(page, "ListServices")["serviceArns"]
        except ClusterNotFound:
            raise self._cluster_not_found() from None
        return [arn.rsplit("/", 1)[-1] for arn in arns]

    def services(self, names: list[str], tags: bool = False) -> list[Service]:
        """Describe services (names or ARNs) in batches of ten, with their tags if asked; missing or deleted ones
        are an error naming them all."""
        found = self.described(names, tags)
        missing = [n for n in names if n not in found]
        if missing:
            raise ServicesMissing(self.cluster, missing, self._closest(missing))
        return [found[n] for n in names]

    def described(self, names: list[str], tags: bool = False) -> dict[str, Service]:
        """The ACTIVE services among `names`, by name and by ARN; the others are left out."""
        found: dict[str, Service] = {}
        for start in range(0, len(names), DESCRIBE_SERVICES_MAX):
            batch = names[start : start + DESCRIBE_SERVICES_MAX]
            answer = self._call("describe_services", services=batch, **({"include": ["TAGS"]} if tags else {}))
            for raw in answer["services"]:
                if raw.get("status") == "ACTIVE":
                    found[raw["serviceName"]] = found[raw["serviceArn"]] = Service.parse(raw)
        return found

    def _closest(self, missing: list[str]) -> str:
        import difflib

        try:
            have = sorted(self.service_names())
        except WorkflowError:  # only a hint
            return ""
        # Not the name itself: a service deleted a moment ago may still be listed while ECS removes it.
        guesses = {n: difflib.get_close_matches(n.rsplit("/", 1)[-1], [h for h in have if h != n.rsplit("/", 1)[-1]],
                                                n=1) for n in missing}
        if any(guesses.values()):
            return "; did you mean " + ", ".join(f"{g[0]} (for {n})" for n, g in guesses.items() if g) + "?"
        return f"; the cluster has: {', '.join(have)}" if have else "; the cluster has no services"

    def service(self, name: str) -> Service:
        return self.services([name])[0]

    def update_service(
        self,
        name: str,
        desired_count: int | None = None,
        force_new_deployment: bool = False,
        deployment_configuration: dict | None = None,
        once: bool = False,
    ) -> Service:
        """`once`: a single attempt, for a request whose repetition would do it twice (the caller decides)."""
        kwargs: dict = {"service": name, "forceNewDeployment": force_new_deployment}
        if desired_count is not None:
            kwargs["desiredCount"] = desired_count
        if deployment_configuration is not None:
            kwargs["deploymentConfiguration"] = deployment_configuration
        if once and self._single_attempt:
            with self._translated():
                client: Any = self._single_attempt()
                answer = client.update_service(cluster=self.cluster, **kwargs)
                return Service.parse(Answer.of(answer, "UpdateService")["service"])
        return Service.parse(self._call("update_service", **kwargs)["service"])

    def task_arns(self, service: str, desired_status: str) -> list[str]:
        return self._task_arns(serviceName=service, desiredStatus=desired_status)

    def _task_arns(self, **filters: str) -> list[str]:
        """ListTasks, every page, with these filters."""
        arns: list[str] = []
        paginator = self.client.get_paginator("list_tasks")
        with self._translated():
            for page in paginator.paginate(cluster=self.cluster, **filters):
                arns.extend(Answer.of(page, "ListTasks")["taskArns"])
        return arns

    def tasks(self, arns: list[str]) -> list[Task]:
        """The tasks ECS can describe now; one just started may not be visible yet and is left out."""
        found: list[Task] = []
        for start in range(0, len(arns), DESCRIBE_TASKS_MAX):
            answer = self._call("describe_tasks", tasks=arns[start : start + DESCRIBE_TASKS_MAX])
            found.extend(Task.parse(raw) for raw in answer["tasks"])
        return found

    def task(self, arn: str) -> Task | None:
        """The task, or None while DescribeTasks answers MISSING (ECS is eventually consistent after RunTask)."""
        found = self.tasks([arn])
        return found[0] if found else None

    def one_off_tasks(self) -> list[Task]:
        """This tool's one-off tasks (startedBy `workflow`) whose process may still run."""
        # startedBy must be ListTasks' only filter (ECS refuses it with another); desiredStatus RUNNING is its default.
        arns = self._task_arns(startedBy=STARTED_BY)
        return [t for t in self.tasks(arns) if not t.process_ended] if arns else []

    def live_tasks(self, service: str, known_stopped: set[str] | None = None) -> list[Task]:
        """Tasks of `service` whose process may still run: not STOPPED, nor DEPROVISIONING (one DEACTIVATING or
        STOPPING still runs it); `known_stopped` grows by those whose process has ended, not described again."""
        known_stopped = set() if known_stopped is None else known_stopped
        arns = self.task_arns(service, "RUNNING") + self.task_arns(service, "STOPPED")
        tasks = self.tasks([a for a in arns if a not in known_stopped])
        known_stopped.update(t.arn for t in tasks if t.process_ended)
        return [t for t in tasks if not t.process_ended]

    def service_tasks(self, services: list[str], wanted: tuple[str, ...] = ("RUNNING", "STOPPED")) -> dict[str, list[Task]]:
        """Each service's tasks that ECS wants in a `wanted` desired status: one ListTasks per service and
        status, then DescribeTasks 100 at a time for all."""
        service_of = {arn: name for name in services for status in wanted for arn in self.task_arns(name, status)}
        found: dict[str, list[Task]] = {name: [] for name in services}
        for task in self.tasks(list(service_of)):
            found[service_of[task.arn]].append(task)
        return found

    def running_tasks(self, services: list[str]) -> dict[str, list[Task]]:
        """Each service's RUNNING tasks: one ListTasks per service, then DescribeTasks 100 at a time for all."""
        return {name: [t for t in tasks if t.last_status == "RUNNING"]
                for name, tasks in self.service_tasks(services, ("RUNNING",)).items()}

    def stopped_tasks(self, service: str, known: set[str]) -> list[Task]:
        """Tasks of `service` that ECS wants stopped and that are not in `known`, STOPPED or still stopping.

        The caller adds to `known` the ones it has dealt with, so each is judged once.
        """
        return self.tasks([arn for arn in self.task_arns(service, "STOPPED") if arn not in known])

    def task_definition(self, arn: str) -> TaskDefinition:
        if arn not in self._definitions:
            with translated():
                answer = Answer.of(self.client.describe_task_definition(taskDefinition=arn), "DescribeTaskDefinition")
            raw = answer["taskDefinition"]
            self._definitions[arn] = TaskDefinition(
                arn=raw["taskDefinitionArn"],
                containers=tuple(
                    ContainerDefinition(
                        c["name"], c.get("essential", True), (c.get("logConfiguration") or {}).get("options", {}),
                        c.get("image", ""),
                    )
                    for c in raw["containerDefinitions"]
                ),
            )
        return self._definitions[arn]

    def run_task(self, service: Service, task_definition: str, container: str, command: list[str]) -> Task:
        """Run one task like `service` runs its own: same network, launch type or capacity providers, platform."""
        answer = self._call(
            "run_task",
            taskDefinition=task_definition,
            count=1,
            startedBy=STARTED_BY,
            overrides={"containerOverrides": [{"name": container, "command": command}]},
            **service.launch,
        )
        if answer.get("failures") or not answer.get("tasks"):
            reasons = "; ".join(
                f"{f.get('arn', 'task')}: {f.get('reason', 'unknown')}" + (f" ({f['detail']})" if f.get("detail") else "")
                for f in answer.get("failures", [])
            )
            raise OperationFailed(f"ECS could not run the task: {reasons or 'no task was started'}")
        return Task.parse(answer["tasks"][0])
