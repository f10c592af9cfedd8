"""The ECS calls the operations need, answering with small immutable values."""

from dataclasses import dataclass, field
from datetime import datetime

from .errors import ClusterNotFound, OperationFailed, ServicesMissing, translated

STARTING = ("PROVISIONING", "PENDING", "ACTIVATING")
DESCRIBE_SERVICES_MAX = 10
DESCRIBE_TASKS_MAX = 100


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

    @classmethod
    def parse(cls, raw: dict) -> "Deployment":
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

    @classmethod
    def parse(cls, raw: dict) -> "Service":
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
        )

    @property
    def primary(self) -> Deployment | None:
        return next((d for d in self.deployments if d.status == "PRIMARY"), None)

    def deployment(self, deployment_id: str) -> Deployment | None:
        return next((d for d in self.deployments if d.id == deployment_id), None)

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


@dataclass(frozen=True)
class Container:
    name: str
    last_status: str
    exit_code: int | None
    reason: str | None


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

    @classmethod
    def parse(cls, raw: dict) -> "Task":
        return cls(
            arn=raw["taskArn"],
            last_status=raw.get("lastStatus", "PROVISIONING"),
            desired_status=raw.get("desiredStatus", "RUNNING"),
            task_definition=raw.get("taskDefinitionArn", ""),
            started_by=raw.get("startedBy"),
            stop_code=raw.get("stopCode"),
            stopped_reason=raw.get("stoppedReason"),
            containers=tuple(
                Container(c["name"], c.get("lastStatus", ""), c.get("exitCode"), c.get("reason"))
                for c in raw.get("containers", [])
            ),
        )

    @property
    def id(self) -> str:
        return self.arn.rsplit("/", 1)[-1]

    @property
    def is_stopped(self) -> bool:
        return self.last_status == "STOPPED"

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
            if c.name in essential and c.exit_code is None and self.is_stopped:
                return f"essential container {c.name} of task {self.id} did not run: {c.reason or self.stopped_reason}"
        return None


@dataclass(frozen=True)
class ContainerDefinition:
    name: str
    essential: bool
    log_options: dict


@dataclass(frozen=True)
class TaskDefinition:
    arn: str
    containers: tuple[ContainerDefinition, ...]

    @property
    def essential(self) -> frozenset[str]:
        return frozenset(c.name for c in self.containers if c.essential)

    def container(self, name: str) -> ContainerDefinition:
        return next(c for c in self.containers if c.name == name)


class Ecs:
    """One cluster's ECS API; the only code here that calls boto3's ECS client."""

    def __init__(self, client, cluster: str):
        self.client, self.cluster = client, cluster
        self._definitions: dict[str, TaskDefinition] = {}

    def _translated(self):
        return translated({"ClusterNotFoundException": ClusterNotFound(self.cluster)})

    def _call(self, operation: str, **kwargs) -> dict:
        with self._translated():
            return getattr(self.client, operation)(cluster=self.cluster, **kwargs)

    def services(self, names: list[str]) -> list[Service]:
        """Describe services in batches of ten; any that are missing or deleted are an error naming them all."""
        found, missing = {}, []
        for start in range(0, len(names), DESCRIBE_SERVICES_MAX):
            batch = names[start : start + DESCRIBE_SERVICES_MAX]
            answer = self._call("describe_services", services=batch)
            for raw in answer["services"]:
                if raw.get("status") == "ACTIVE":
                    found[raw["serviceName"]] = Service.parse(raw)
        missing = [n for n in names if n not in found]
        if missing:
            raise ServicesMissing(self.cluster, missing)
        return [found[n] for n in names]

    def service(self, name: str) -> Service:
        return self.services([name])[0]

    def update_service(self, name: str, desired_count: int | None = None, force_new_deployment: bool = False) -> Service:
        kwargs: dict = {"service": name, "forceNewDeployment": force_new_deployment}
        if desired_count is not None:
            kwargs["desiredCount"] = desired_count
        return Service.parse(self._call("update_service", **kwargs)["service"])

    def task_arns(self, service: str, desired_status: str) -> list[str]:
        arns: list[str] = []
        paginator = self.client.get_paginator("list_tasks")
        with self._translated():
            for page in paginator.paginate(cluster=self.cluster, serviceName=service, desiredStatus=desired_status):
                arns.extend(page["taskArns"])
        return arns

    def tasks(self, arns: list[str]) -> list[Task]:
        found: list[Task] = []
        for start in range(0, len(arns), DESCRIBE_TASKS_MAX):
            answer = self._call("describe_tasks", tasks=arns[start : start + DESCRIBE_TASKS_MAX])
            found.extend(Task.parse(raw) for raw in answer["tasks"])
        return found

    def task(self, arn: str) -> Task:
        found = self.tasks([arn])
        if not found:
            raise OperationFailed(f"task {arn} is no longer known to ECS")
        return found[0]

    def task_definition(self, arn: str) -> TaskDefinition:
        if arn not in self._definitions:
            with translated():
                raw = self.client.describe_task_definition(taskDefinition=arn)["taskDefinition"]
            self._definitions[arn] = TaskDefinition(
                arn=raw["taskDefinitionArn"],
                containers=tuple(
                    ContainerDefinition(
                        c["name"], c.get("essential", True), (c.get("logConfiguration") or {}).get("options", {})
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
            startedBy="workflow",
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
