"""The simulated ECS service scheduler: task lifecycles and rolling deployments as events in time.

State lives on moto's own model objects (services and tasks), so every ECS API call moto answers shows
it; `hooks.py` calls `advance()` before each of those calls. Nothing here sleeps: time is the clock's.
"""

import math
import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from moto.ecs.models import Task
from moto.logs.models import logs_backends

STARTING = ("PROVISIONING", "PENDING")
PULL_ERROR = (
    "CannotPullContainerError: pull image manifest has been retried 5 time(s): "
    "failed to resolve ref {image}: not found"
)
FAILURES = ("pull", "hang")


@dataclass
class Timings:
    """Seconds each lifecycle stage takes; `drain` stands for a load balancer's deregistration delay."""

    provision: float = 1.0
    pull: float = 2.0
    drain: float = 1.0
    stop: float = 1.0
    one_off_run: float = 3.0
    drain_by_service: dict[str, float] = field(default_factory=dict)

    def __post_init__(self):
        stages = [self.provision, self.pull, self.drain, self.stop, self.one_off_run]
        if min(stages + list(self.drain_by_service.values())) <= 0:
            raise ValueError("every stage must take some time, or failing tasks would relaunch forever")


@dataclass
class Container:
    container_arn: str
    task_arn: str
    name: str
    image: str
    essential: bool
    last_status: str = "PENDING"
    exit_code: int | None = None
    reason: str | None = None


class SimTask(Task):
    """A moto task whose status the simulation sets, instead of moto's describe-call counter."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.sim_status = "PROVISIONING"
        self.next_at: float | None = None
        self.next_action: Callable[[float], None] | None = None
        self.service: SimService | None = None
        self.deployment: Deployment | None = None
        self.stopped_reason = None
        self.stop_code = None
        self.created_at = self.started_at = self.stopping_at = self.stopped_at = None
        definitions = self._backend.describe_task_definition(self.task_definition_arn)
        self.containers = [
            Container(
                container_arn=f"{self.task_arn}/{uuid.uuid4()}".replace(":task/", ":container/"),
                task_arn=self.task_arn,
                name=c["name"],
                image=c.get("image", ""),
                essential=c.get("essential", True),
            )
            for c in definitions.container_definitions
        ]

    @property
    def last_status(self) -> str:
        return self.sim_status

    @last_status.setter
    def last_status(self, value: str) -> None:
        self.sim_status = value

    def advance(self) -> None:
        """moto moves tasks one state per DescribeTasks call; here only time moves them."""

    @property
    def is_live(self) -> bool:
        return self.sim_status != "STOPPED"

    @property
    def short_id(self) -> str:
        return self.task_arn.rsplit("/", 1)[-1]


@dataclass
class Deployment:
    id: str
    task_definition: str
    desired_count: int
    created_at: float
    network_configuration: dict | None
    launch_type: str | None
    platform_version: str | None
    failure: str | None = None
    status: str = "PRIMARY"
    rollout_state: str = "IN_PROGRESS"
    rollout_state_reason: str = "ECS deployment in progress."
    failed_tasks: int = 0
    updated_at: float = 0.0


@dataclass
class SimService:
    model: Any
    backend: Any
    deployments: list[Deployment] = field(default_factory=list)
    tasks: list[SimTask] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    last_completed: Deployment | None = None

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def primary(self) -> Deployment:
        return self.deployments[0]

    @property
    def config(self) -> dict:
        return getattr(self.model, "deployment_configuration", None) or {}

    def live(self, deployment: Deployment | None = None) -> list[SimTask]:
        return [
            t
            for t in self.tasks
            if t.desired_status == "RUNNING" and (deployment is None or t.deployment is deployment)
        ]

    def count(self, deployment: Deployment, statuses: tuple[str, ...]) -> int:
        return sum(t.sim_status in statuses for t in self.live(deployment))


class Simulation:
    """ECS as a discrete-event model: each task holds its next transition; `advance` plays them in order."""

    def __init__(self, clock, timings: Timings | None = None):
        self.clock = clock
        self.timings = timings or Timings()
        self.lock = threading.RLock()
        self.services: dict[str, SimService] = {}
        self.tasks: list[SimTask] = []
        self.failing: dict[str, str] = {}
        self.one_off_exit_codes: dict[str, int] = {}  # by container name
        self.one_off_exit_code = 0  # for essential containers not named above
        self.one_off_failure: str | None = None
        self.observers: list[Callable[[Simulation], None]] = []  # called after every change, for invariants

    # --- what tests and the sandbox control -------------------------------------------------------

    def fail_deployments(self, service: str, how: str | None = "pull") -> None:
        """New deployments of `service` fail: tasks cannot pull their image, or never leave PENDING."""
        if how is None:
            self.failing.pop(service, None)
        elif how in FAILURES:
            self.failing[service] = how
        else:
            raise ValueError(f"unknown failure {how!r}; expected one of {FAILURES}")

    def service(self, name: str) -> SimService:
        return next(s for s in self.services.values() if s.name == name)

    def alive(self, name: str) -> list[SimTask]:
        """Tasks of a service whose process may still run now: anything not yet STOPPED."""
        with self.lock:
            self.advance()
            return [t for t in self.service(name).tasks if t.is_live]

    # --- hooks called by hooks.py, under the lock ---------------------------------------------------

    def service_created(self, model) -> None:
        svc = SimService(model=model, backend=model._backend)
        self.services[model.arn] = svc
        self._new_deployment(svc, self.clock.now(), model.task_definition, deployment_id=model.deployments[0]["id"])
        self._reconcile(svc, self.clock.now())
        self._mirror()

    def service_updated(self, model, force: bool) -> None:
        svc = self.services[model.arn]
        now = self.clock.now()
        task_definition = svc.backend.describe_task_definition(model.task_definition).arn
        if force or task_definition != svc.primary.task_definition:
            self._new_deployment(svc, now, task_definition)
        else:
            svc.primary.desired_count = model.desired_count
            svc.primary.updated_at = now
        self._reconcile(svc, now)
        self._notify()
        self._mirror()

    def tasks_run(self, tasks: list[SimTask]) -> None:
        now = self.clock.now()
        for task in tasks:
            self._start(task, now, failure=self.one_off_failure)

    def task_stopped(self, task: SimTask, reason: str) -> None:
        now = self.clock.now()
        self._stop(task, now, reason or "Task stopped by user", "UserInitiated")
        if task.service:
            self._reconcile(task.service, now)
        self._notify()
        self._mirror()

    def list_filter(self, tasks: list[SimTask], service_name: str | None, desired_status: str | None):
        """ListTasks as ECS answers it: by service, and by desired status RUNNING unless asked otherwise."""
        group = f"service:{service_name.rsplit('/', 1)[-1]}" if service_name else None
        wanted = desired_status or "RUNNING"
        return [t for t in tasks if t.desired_status == wanted and (group is None or t.group == group)]

    def advance(self) -> None:
        """Play every transition due by now, in time order, letting each service react to each."""
        now = self.clock.now()
        while True:
            due = min((t for t in self.tasks if t.next_at is not None), key=lambda t: t.next_at, default=None)
            if due is None or due.next_at > now:
                break
            at, action = due.next_at, due.next_action
            due.next_at = due.next_action = None
            action(at)
            if due.service:
                self._reconcile(due.service, at)
            self._notify()
        self._mirror()

    def _notify(self) -> None:
        for observer in self.observers:
            observer(self)

    # --- task lifecycle ---------------------------------------------------------------------------

    def _then(self, task: SimTask, delay: float, action: Callable[[float], None], now: float) -> None:
        task.next_at, task.next_action = now + delay, action

    def _enter(self, task: SimTask, status: str, now: float) -> None:
        task.sim_status = status
        wall = self.clock.wall(now)
        if status == "RUNNING":
            task.started_at = wall
        if status in ("RUNNING", "STOPPED"):
            for c in task.containers:
                c.last_status = status

    def _start(self, task: SimTask, now: float, failure: str | None) -> None:
        self.tasks.append(task)
        task.created_at = self.clock.wall(now)
        t = self.timings

        def pending(at):
            self._enter(task, "PENDING", at)
            if failure == "pull":
                self._then(task, t.pull, lambda at2: self._fail_to_start(task, at2), at)
            elif failure != "hang":
                self._then(task, t.pull, running, at)

        def running(at):
            self._enter(task, "RUNNING", at)
            if task.service is None:
                for name, command in self._commands(task).items():
                    self._log(task, name, at, [f"Starting: {command}", "Working..."])
                self._then(task, t.one_off_run, lambda at2: self._exit(task, at2), at)

        self._then(task, t.provision, pending, now)

    def _exit(self, task: SimTask, now: float) -> None:
        overridden = self._commands(task)
        for c in task.containers:
            c.exit_code = self.one_off_exit_codes.get(c.name, self.one_off_exit_code if c.essential else 0)
            if c.name in overridden:
                self._log(task, c.name, now, ["Done." if c.exit_code == 0 else f"ERROR: failed with exit code {c.exit_code}"])
        self._stop(task, now, "Essential container in task exited", "EssentialContainerExited")

    @staticmethod
    def _commands(task: SimTask) -> dict[str, str]:
        overrides = task.overrides.get("containerOverrides", [])
        return {o["name"]: " ".join(o.get("command", [])) for o in overrides if o.get("command")}

    def _log(self, task: SimTask, container: str, now: float, lines: list[str]) -> None:
        """Write what the awslogs driver would: stream <prefix>/<container>/<task id> in the definition's group."""
        definition = task._backend.describe_task_definition(task.task_definition_arn)
        spec = next((c for c in definition.container_definitions if c["name"] == container), {})
        options = (spec.get("logConfiguration") or {}).get("options", {})
        backend = logs_backends[task._account_id][task.region_name]
        group = backend.groups.get(options.get("awslogs-group", ""))
        if group is None or "awslogs-stream-prefix" not in options:
            return
        stream = f"{options['awslogs-stream-prefix']}/{container}/{task.short_id}"
        if stream not in group.streams:
            group.create_log_stream(stream)
        stamp = int(self.clock.wall(now).timestamp() * 1000)
        group.put_log_events(stream, [{"timestamp": stamp, "message": line} for line in lines])

    def _fail_to_start(self, task: SimTask, now: float) -> None:
        image = task.containers[0].image if task.containers else "image"
        reason = PULL_ERROR.format(image=image)
        task.desired_status = "STOPPED"
        task.stop_code, task.stopped_reason = "TaskFailedToStart", reason
        task.stopping_at = task.stopped_at = self.clock.wall(now)
        for c in task.containers:
            c.reason = reason
        self._enter(task, "STOPPED", now)
        svc, deployment = task.service, task.deployment
        if svc is None:
            return
        deployment.failed_tasks += 1
        self._event(svc, now, f"(service {svc.name}) is unable to consistently start tasks successfully.")
        self._trip_circuit_breaker(svc, deployment, now)

    def _stop(self, task: SimTask, now: float, reason: str, code: str) -> None:
        if task.desired_status == "STOPPED":
            return
        task.desired_status = "STOPPED"
        task.stopped_reason, task.stop_code = reason, code
        task.stopping_at = self.clock.wall(now)
        t = self.timings
        drain = t.drain_by_service.get(task.service.name, t.drain) if task.service else t.drain

        def stopping(at):
            self._enter(task, "STOPPING", at)
            self._then(task, t.stop, stopped, at)

        def stopped(at):
            task.stopped_at = self.clock.wall(at)
            for c in task.containers:
                if c.exit_code is None and c.last_status == "RUNNING":
                    c.exit_code = 143 if code != "EssentialContainerExited" else 0
            self._enter(task, "STOPPED", at)

        if task.sim_status == "RUNNING":
            self._enter(task, "DEACTIVATING", now)
            self._then(task, drain, stopping, now)
        else:
            stopping(now)

    # --- the service scheduler --------------------------------------------------------------------

    def _new_deployment(self, svc: SimService, now: float, task_definition: str, deployment_id=None) -> Deployment:
        model = svc.model
        for old in svc.deployments:
            old.status, old.desired_count, old.updated_at = "ACTIVE", 0, now
        deployment = Deployment(
            id=deployment_id or f"ecs-svc/{random.randrange(10**18, 10**19)}",
            task_definition=task_definition,
            desired_count=model.desired_count,
            created_at=now,
            updated_at=now,
            network_configuration=model.network_configuration or None,
            launch_type=model.launch_type,
            platform_version=model.platform_version,
            failure=self.failing.get(svc.name),
        )
        svc.deployments.insert(0, deployment)
        return deployment

    def _launch(self, svc: SimService, deployment: Deployment, now: float) -> SimTask:
        backend, model = svc.backend, svc.model
        task = SimTask(
            backend._get_cluster(model.cluster_name),
            backend.describe_task_definition(deployment.task_definition),
            None,
            None,
            backend=backend,
            group=f"service:{svc.name}",
            launch_type=deployment.launch_type or "",
            started_by=deployment.id,
            networking_configuration=deployment.network_configuration,
            platform_version=deployment.platform_version,
        )
        task.service, task.deployment = svc, deployment
        backend.tasks.setdefault(model.cluster_name, {})[task.task_arn] = task
        svc.tasks.append(task)
        self._start(task, now, failure=deployment.failure)
        return task

    def _reconcile(self, svc: SimService, now: float) -> None:
        """One pass of ECS's rolling update, within minimumHealthyPercent and maximumPercent."""
        primary = svc.primary
        desired = primary.desired_count
        config = svc.config
        ceiling = math.floor(desired * config.get("maximumPercent", 200) / 100)
        floor = math.ceil(desired * config.get("minimumHealthyPercent", 100) / 100)

        started = []
        room = max(ceiling, desired) - len(svc.live())
        for _ in range(max(0, min(desired - len(svc.live(primary)), room))):
            started.append(self._launch(svc, primary, now))

        surplus = len(svc.live(primary)) - desired
        # Scaling in stops tasks that are not yet serving first.
        stopped = sorted(svc.live(primary), key=lambda t: t.sim_status == "RUNNING")[: max(0, surplus)]
        old = [t for t in svc.live() if t.deployment is not primary]
        stopped += [t for t in old if t.sim_status in STARTING]
        healthy = sum(t.sim_status == "RUNNING" for t in svc.live() if t not in stopped)
        for task in [t for t in old if t.sim_status == "RUNNING"]:
            if healthy - 1 < floor:
                break
            stopped.append(task)
            healthy -= 1
        for task in stopped:
            self._stop(task, now, f"Scaling activity initiated by (deployment {task.deployment.id})", "ServiceSchedulerInitiated")

        if started:
            self._event(svc, now, self._tasks_message(svc, "has started", started))
        if stopped:
            self._event(svc, now, self._tasks_message(svc, "has stopped", stopped))
        self._settle(svc, now)

    def _settle(self, svc: SimService, now: float) -> None:
        for old in svc.deployments[1:]:
            if not any(t.deployment is old and t.is_live for t in svc.tasks):
                old.status = "INACTIVE"
                svc.deployments.remove(old)
        primary = svc.primary
        steady = (
            len(svc.deployments) == 1
            and svc.count(primary, ("RUNNING",)) == primary.desired_count
            and svc.count(primary, STARTING) == 0
        )
        if primary.rollout_state == "IN_PROGRESS" and steady:
            primary.rollout_state = "COMPLETED"
            primary.rollout_state_reason = f"ECS deployment {primary.id} completed."
            primary.updated_at = now
            svc.last_completed = primary
            self._event(svc, now, f"(service {svc.name}) ({primary.id}) deployment completed.")
            self._event(svc, now, f"(service {svc.name}) has reached a steady state.")

    def _trip_circuit_breaker(self, svc: SimService, deployment: Deployment, now: float) -> None:
        breaker = svc.config.get("deploymentCircuitBreaker") or {}
        threshold = min(max(3, math.ceil(deployment.desired_count / 2)), 200)
        if not breaker.get("enable") or deployment.failed_tasks < threshold:
            return
        if deployment.rollout_state != "IN_PROGRESS":
            return
        deployment.rollout_state = "FAILED"
        deployment.rollout_state_reason = "ECS deployment circuit breaker: tasks failed to start."
        self._event(svc, now, f"(service {svc.name}) ({deployment.id}) deployment failed: tasks failed to start.")
        previous = svc.last_completed
        if breaker.get("rollback") and previous is not None and deployment is svc.primary:
            rollback = self._new_deployment(svc, now, previous.task_definition)
            rollback.failure = None
            self._event(svc, now, f"(service {svc.name}) rolling back to deployment {previous.id}.")

    # --- what moto shows --------------------------------------------------------------------------

    def _event(self, svc: SimService, now: float, message: str) -> None:
        svc.events.insert(0, {"id": str(uuid.uuid4()), "createdAt": self.clock.wall(now), "message": message})
        del svc.events[100:]

    @staticmethod
    def _tasks_message(svc: SimService, verb: str, tasks: list[SimTask]) -> str:
        ids = " ".join(f"(task {t.short_id})" for t in tasks)
        running = "running " if verb == "has stopped" else ""
        return f"(service {svc.name}) {verb} {len(tasks)} {running}tasks: {ids}."

    def _mirror(self) -> None:
        wall = self.clock.wall
        for svc in self.services.values():
            model = svc.model
            model.deployments = [
                {
                    "id": d.id,
                    "status": d.status,
                    "taskDefinition": d.task_definition,
                    "desiredCount": d.desired_count,
                    "pendingCount": svc.count(d, STARTING),
                    "runningCount": svc.count(d, ("RUNNING",)),
                    "failedTasks": d.failed_tasks,
                    "createdAt": wall(d.created_at),
                    "updatedAt": wall(d.updated_at),
                    "launchType": d.launch_type,
                    "platformVersion": d.platform_version,
                    "networkConfiguration": d.network_configuration,
                    "rolloutState": d.rollout_state,
                    "rolloutStateReason": d.rollout_state_reason,
                }
                for d in svc.deployments
            ]
            model.running_count = sum(t.sim_status == "RUNNING" for t in svc.tasks)
            model.pending_count = sum(t.sim_status in STARTING for t in svc.tasks)
            model.task_definition = svc.primary.task_definition
            model.events = svc.events
