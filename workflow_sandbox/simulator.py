"""The simulated ECS service scheduler: task lifecycles and rolling deployments as events in time.

State lives on moto's own model objects (services, task sets and tasks), so every ECS API call moto
answers shows it; `hooks.py` calls `advance()` before each of those calls. Nothing here sleeps: time is
the clock's. Besides the happy path it plays what ECS does to operators: crash loops, failed launches,
load balancer health check failures, interrupted one-off tasks, eventual consistency (MISSING tasks,
stale DescribeServices), delayed and empty log pages, and failing API calls (`faults.py`).

Image tags resolve to digests as ECS resolves them: once per service deployment when it starts (its
tasks keep that digest when the tag moves; a rollback returns to the digests it rolls back to) and at
launch for RunTask, through moto's ECR backend; DescribeTasks shows `containers[].imageDigest` from
RUNNING on. A tag missing from its repository fails the task's start with CannotPullContainerError.

A task that stops walks RUNNING, DEACTIVATING, STOPPING, then (with `Timings.deprovision`) DEPROVISIONING while
ECS detaches its network interface, its containers already stopped, then STOPPED; ECS forgets it
`stopped_retention` seconds later. Transitions wait in a heap, and stopped tasks are indexed apart, so a
simulation that has run for days answers as fast as a fresh one.

With an Airflow metadata database (`database`) and a way to read image configs (`image_config`), tasks behave as
Airflow does (airflow_db.py): a component that checks migrations exits 1 on another schema, and the one-offs
`airflow db migrate`, `db downgrade` and `db check-migrations` read and move the schema.

Every setting applies to tasks and deployments created after it is set; None or 0 turns it off.
"""

import copy
import hashlib
import heapq
import math
import random
import threading
import unicodedata
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from moto.ec2.models import ec2_backends
from moto.ecr.models import ecr_backends
from moto.ecs.exceptions import InvalidParameterException
from moto.ecs.models import Task, TaskSet
from moto.logs.models import logs_backends

from workflow.airflow_schema import checks_migrations, schema_of, version_from_config
from workflow.images import ecr_image

from . import airflow_db
from .airflow_db import AirflowDatabase, Log
from .faults import Faults

STARTING = ("PROVISIONING", "PENDING")
PULL_ERROR = (
    "CannotPullContainerError: pull image manifest has been retried 5 time(s): "
    "failed to resolve ref {image}: {image}: not found"
)
# What ECS accepts in tags: letters, numbers and spaces (\\p{L}\\p{Z}\\p{N} in the API model's pattern)
# and these characters; at most 50 tags a resource, keys of 1 to 128 characters, values up to 256.
TAG_SYMBOLS = "_.:/=+-@"
MAX_TAGS, MAX_KEY, MAX_VALUE = 50, 128, 256
RESOURCE_ERROR = (
    "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval "
    "failed: unable to retrieve ecr registry auth: service call has been retried 3 time(s): RequestError: "
    "send request failed caused by: Post \"https://api.ecr.us-east-1.amazonaws.com/\": dial tcp "
    "10.0.1.10:443: i/o timeout. Please check your task network configuration."
)
FAILURES = ("pull", "hang")
CONTROLLERS = ("ECS", "CODE_DEPLOY", "EXTERNAL")
# What ECS answers UpdateService on services whose deployments another controller owns.
FORCE_REFUSED = {
    "CODE_DEPLOY": "Cannot force a new deployment on services with a CODE_DEPLOY deployment controller. "
    "Use AWS CodeDeploy to trigger a new deployment.",
    "EXTERNAL": "Cannot force a new deployment on services with a EXTERNAL deployment controller.",
}
DEFINITION_REFUSED = {
    "CODE_DEPLOY": "Unable to update task definition on services with a CODE_DEPLOY deployment controller. "
    "Use AWS CodeDeploy to trigger a new deployment.",
    "EXTERNAL": "Unable to update task definition on services with a EXTERNAL deployment controller. "
    "Use a new task set to deploy a new task definition.",
}
# Containers that ECS stops with SIGTERM exit with 128 + 15 unless their process handles it.
SIGTERM_EXIT = 143
# DescribeTasks: "stopped tasks appear in the returned results for at least one hour" (ECS API reference).
STOPPED_RETENTION = 3600.0


@dataclass(frozen=True)
class Crash:
    """Essential containers of a deployment's tasks exit `after` seconds into RUNNING, logging `lines`;
    with `before_running`, as soon as they start, while the task is still PENDING (ECS never sets startedAt)."""

    exit_code: int
    after: float
    lines: tuple[str, ...]
    before_running: bool = False


@dataclass
class Timings:
    """Seconds each lifecycle stage takes; `drain` stands for a load balancer's deregistration delay, `deprovision`
    for detaching the task's network interface once its containers have stopped (0: no DEPROVISIONING phase)."""

    provision: float = 1.0
    pull: float = 2.0
    drain: float = 1.0
    stop: float = 1.0
    one_off_run: float = 3.0
    drain_by_service: dict[str, float] = field(default_factory=dict)
    deprovision: float = 0.0

    def __post_init__(self):
        stages = [self.provision, self.pull, self.drain, self.stop, self.one_off_run]
        if min(stages + list(self.drain_by_service.values())) <= 0:
            raise ValueError("every stage must take some time, or failing tasks would relaunch forever")
        if not self.deprovision >= 0:
            raise ValueError("deprovisioning takes no time (0) or some")


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
    image_digest: str | None = None  # shown once the image is pulled, i.e. from RUNNING on


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
        self.visible_at = 0.0  # before this, DescribeTasks answers MISSING and ListTasks omits the task
        self.unhealthy = False  # failed its load balancer health check; no longer counts as serving
        self.interruption: tuple[str, str, int] | None = None
        self.images: dict[str, str] = {}  # container name -> the digest ECS resolved its image to at launch
        self.created_at = self.started_at = self.stopping_at = self.execution_stopped_at = self.stopped_at = None
        self.token = 0  # counts the transitions scheduled; a heap entry of an earlier one is stale
        self.order = 0  # launch order: transitions due at one instant play in it
        self.airflow_process: Any = None  # the Airflow one-off command it runs, until the command ends
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
        """Whether its processes may still run: not once its containers have stopped (DEPROVISIONING, STOPPED)."""
        return self.sim_status not in ("DEPROVISIONING", "STOPPED")

    @property
    def short_id(self) -> str:
        return self.task_arn.rsplit("/", 1)[-1]


class Tasks:
    """Tasks in launch order, by ARN: adding or forgetting one costs the same however many there are."""

    def __init__(self) -> None:
        self._by_arn: dict[str, SimTask] = {}

    def append(self, task: SimTask) -> None:
        self._by_arn[task.task_arn] = task

    def forget(self, task: SimTask) -> None:
        self._by_arn.pop(task.task_arn, None)

    def __iter__(self) -> Iterator[SimTask]:
        return iter(self._by_arn.values())

    def __len__(self) -> int:
        return len(self._by_arn)

    def __contains__(self, task: object) -> bool:
        return isinstance(task, SimTask) and self._by_arn.get(task.task_arn) is task


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
    crash: Crash | None = None
    unhealthy_after: float | None = None
    status: str = "PRIMARY"
    rollout_state: str = "IN_PROGRESS"
    rollout_state_reason: str = "ECS deployment in progress."
    failed_tasks: int = 0
    updated_at: float = 0.0
    images: dict[str, str] = field(default_factory=dict)  # container name -> digest, pinned once resolved


@dataclass
class SimService:
    model: Any
    backend: Any
    deployments: list[Deployment] = field(default_factory=list)
    tasks: Tasks = field(default_factory=Tasks)  # every task ECS still lists
    current: dict[str, SimTask] = field(default_factory=dict)  # those not STOPPED, by ARN
    events: list[dict] = field(default_factory=list)
    last_completed: Deployment | None = None
    task_set: Any = None  # the PRIMARY task set of a CODE_DEPLOY service
    snapshot: Any = None  # how DescribeServices shows the service until `stale_until`
    stale_until: float = 0.0

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def controller(self) -> str:
        return (getattr(self.model, "deployment_controller", None) or {}).get("type", "ECS")

    @property
    def primary(self) -> Deployment | None:
        return self.deployments[0] if self.deployments else None

    @property
    def target_group(self) -> str:
        for balancer in self.model.load_balancers or []:
            if balancer.get("targetGroupArn"):
                return balancer["targetGroupArn"]
        name = self.name[:32].rstrip("-")
        suffix = uuid.uuid5(uuid.NAMESPACE_URL, self.model.arn).hex[:16]
        return f"arn:aws:elasticloadbalancing:{self.model.region_name}:{self.model._account_id}:targetgroup/{name}/{suffix}"

    @property
    def config(self) -> dict:
        return getattr(self.model, "deployment_configuration", None) or {}

    @property
    def breaker(self) -> dict:
        return self.config.get("deploymentCircuitBreaker") or {}

    def live(self, deployment: Deployment | None = None) -> list[SimTask]:
        return [
            t
            for t in self.current.values()
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
        self.tasks = Tasks()
        self._due: list[tuple] = []  # heap of (at, launch order, sequence, token, task): each task's next transition
        self._scheduled = 0
        self._launched = 0
        self._stopped: deque[tuple[float, SimTask]] = deque()  # (when, task) in the order tasks reached STOPPED
        # RunTask's answer by clientToken: ECS runs a request once per token (botocore sends one, the same on every
        # retry of a call), so an attempt whose answer was lost is not a second task when botocore repeats it.
        self.run_task_answers: dict[str, Any] = {}
        self.stopped_retention: float | None = STOPPED_RETENTION  # then ECS forgets a stopped task; None: never
        # Airflow: the metadata database (None: not simulated, no schema checks) and each image's config by digest.
        self.database: AirflowDatabase | None = None
        self.image_config: Callable[[str], dict | None] | None = None
        self.migration_check_seconds = airflow_db.STARTUP  # from RUNNING to a component's schema check
        self.db_snapshot_seconds = 5.0  # how long an RDS snapshot stays "creating"
        self.failing: dict[str, str] = {}
        self.crashing: dict[str, Crash] = {}
        self.unhealthy: dict[str, float] = {}
        self.flaky: dict[str, list] = {}  # service -> [launches left to fail, stopped reason]
        self.one_off_exit_codes: dict[str, int] = {}  # by container name
        self.one_off_exit_code = 0  # for essential containers not named above
        self.one_off_failure: str | None = None
        # (stopCode, stoppedReason, containers' exit code) for one-off tasks, `one_off_stop_after`
        # seconds into RUNNING (default: half of Timings.one_off_run).
        self.one_off_stop: tuple[str, str, int] | None = None
        self.one_off_stop_after: float | None = None
        self.stop_exit_code = SIGTERM_EXIT  # what containers exit with on a user's StopTask
        # Whether tasks told to stop (DEACTIVATING, STOPPING) still count against maximumPercent. ECS counts
        # only RUNNING and PENDING tasks, so by default a replacement starts as soon as the old task is told
        # to stop, while its process still runs.
        self.max_percent_counts_stopping = False
        self.validate_tags = True  # refuse tags ECS refuses (characters, lengths, count, the aws: prefix)
        self.missing_seconds = 0.0
        self.stale_seconds = 0.0
        self.omit_started_at = False  # DescribeTasks leaves out startedAt, as an endpoint that lacks it may
        self.log_delay = 0.0
        self.log_empty_pages = 0
        self.faults = Faults()
        self.observers: list[Callable[[Simulation], None]] = []  # called after every change, for invariants
        self._pending_logs: list[tuple[float, Any, str, list[dict]]] = []

    # --- what tests and the sandbox control -------------------------------------------------------

    def fail_deployments(self, service: str, how: str | None = "pull") -> None:
        """New deployments of `service` fail: tasks cannot pull their image, or never leave PENDING."""
        if how is None:
            self.failing.pop(service, None)
        elif how in FAILURES:
            self.failing[service] = how
        else:
            raise ValueError(f"unknown failure {how!r}; expected one of {FAILURES}")

    def crash_deployments(self, service: str, exit_code: int | None = 1, after: float = 4.0,
                          lines: tuple[str, ...] = ("ERROR: cannot connect to broker",),
                          before_running: bool = False) -> None:
        """Tasks of new deployments of `service` reach RUNNING, then their essential containers exit.

        Not a failed launch to ECS: failedTasks does not count them (each task turning healthy even resets it),
        the scheduler relaunches (a crash loop) and the deployment may even turn COMPLETED between crashes.
        Non-essential containers get SIGTERM (143).
        With `before_running` the containers exit before the task reaches RUNNING: a failed launch to ECS.
        """
        if exit_code is None:
            self.crashing.pop(service, None)
        else:
            self.crashing[service] = Crash(exit_code, after, tuple(lines), before_running)

    def flaky_starts(self, service: str, count: int, reason: str = RESOURCE_ERROR) -> None:
        """The next `count` tasks the scheduler launches for `service` fail to start; later ones start."""
        if count:
            self.flaky[service] = [count, reason]
        else:
            self.flaky.pop(service, None)

    def unhealthy_deployments(self, service: str, after: float | None = 5.0) -> None:
        """Tasks of new deployments of `service` fail their load balancer health check `after` s into RUNNING."""
        if after is None:
            self.unhealthy.pop(service, None)
        else:
            self.unhealthy[service] = after

    def service(self, name: str) -> SimService:
        return next(s for s in self.services.values() if s.name == name)

    def alive(self, name: str) -> list[SimTask]:
        """Tasks of a service whose process may still run now: any not yet STOPPED whose containers have not stopped
        (a DEPROVISIONING task runs nothing)."""
        with self.lock:
            self.advance()
            return [t for t in self.service(name).current.values() if t.is_live]

    @staticmethod
    def resolve(image: str) -> str | None:
        """The digest ECS resolves `image` to now, or None when its ECR repository has no such tag or digest.

        An image in an ECR repository of the simulated registry resolves through moto's ECR backend; any
        other image (another registry, or an ECR repository nobody created) gets a stable fake digest.
        """
        ref = ecr_image(image)
        try:
            backend = ecr_backends[ref.account][ref.region] if ref else None
        except KeyError:
            backend = None
        repository = backend.repositories.get(ref.repository) if ref and backend else None
        if ref is None or repository is None:
            return "sha256:" + hashlib.sha256(image.encode()).hexdigest()
        for candidate in list(repository.images):
            digest = candidate.get_image_digest()
            if ref.digest == digest or (not ref.digest and (ref.tag or "latest") in candidate.image_tags):
                return digest
        return None

    @staticmethod
    def check_tags(existing: list[dict] | None, tags: dict[str, str | None]) -> None:
        """Raise what ECS answers TagResource with tags it does not accept."""
        for key, value in tags.items():
            for kind, text, most in (("key", key, MAX_KEY), ("value", value or "", MAX_VALUE)):
                if len(text) > most or (kind == "key" and not text):
                    raise InvalidParameterException(f"Tag {kind} {text!r} must be 1 to {most} characters long.")
                if any(unicodedata.category(c)[0] not in "LNZ" and c not in TAG_SYMBOLS for c in text):
                    raise InvalidParameterException(
                        f"Tag {kind} {text!r} may contain only letters, numbers, spaces and {' '.join(TAG_SYMBOLS)}.")
            if key.lower().startswith("aws:"):
                raise InvalidParameterException("Tag keys beginning with 'aws:' are reserved for AWS use.")
        if len({t["key"] for t in existing or []} | set(tags)) > MAX_TAGS:
            raise InvalidParameterException(f"A resource can have at most {MAX_TAGS} tags.")

    # --- hooks called by hooks.py, under the lock ---------------------------------------------------

    def service_created(self, model) -> None:
        svc = SimService(model=model, backend=model._backend)
        self.services[model.arn] = svc
        now = self.clock.now()
        if svc.controller == "ECS":
            self._new_deployment(svc, now, model.task_definition, deployment_id=model.deployments[0]["id"])
        elif svc.controller == "CODE_DEPLOY" and model.task_definition:
            # ECS creates the first task set itself; later ones come from CodeDeploy, not modelled here.
            svc.task_set = self._primary_task_set(model)
            self._new_deployment(svc, now, model.task_definition, deployment_id=svc.task_set.id)
        # An EXTERNAL service runs nothing until somebody creates a task set (not simulated).
        self._reconcile(svc, now)
        self._mirror()

    def check_update(self, model, properties: dict) -> None:
        """Refuse what ECS refuses on services another deployment controller owns, before moto applies it."""
        svc = self.services.get(model.arn)
        if svc is None or svc.controller == "ECS":
            return
        if properties.get("force_new_deployment"):
            raise InvalidParameterException(FORCE_REFUSED[svc.controller])
        definition = properties.get("task_definition")
        if definition and svc.backend.describe_task_definition(definition).arn != model.task_definition:
            raise InvalidParameterException(DEFINITION_REFUSED[svc.controller])

    def service_updating(self, model) -> None:
        """Called just before UpdateService applies: what DescribeServices keeps showing for a while."""
        svc = self.services.get(model.arn)
        if svc is None or not self.stale_seconds:
            return
        snapshot = copy.copy(model)
        snapshot.deployments = [dict(d) for d in model.deployments]  # moto edits deployments[0] in place
        snapshot.events = list(model.events)
        svc.snapshot, svc.stale_until = snapshot, self.clock.now() + self.stale_seconds

    def service_updated(self, model, force: bool) -> None:
        svc = self.services[model.arn]
        now = self.clock.now()
        if svc.primary is None:
            self._mirror()
            return
        task_definition = svc.backend.describe_task_definition(model.task_definition).arn
        if force or task_definition != svc.primary.task_definition:
            self._new_deployment(svc, now, task_definition)
        else:
            svc.primary.desired_count = model.desired_count
            svc.primary.updated_at = now
        self._reconcile(svc, now)
        self._notify()
        self._mirror()

    def described_services(self, services: list) -> list:
        """DescribeServices right after an UpdateService may still answer the service as it was before."""
        now = self.clock.now()
        shown = []
        for model in services:
            svc = self.services.get(model.arn)
            stale = svc is not None and svc.snapshot is not None and now < svc.stale_until
            shown.append(svc.snapshot if stale else model)
        return shown

    def tasks_run(self, tasks: list[SimTask]) -> None:
        now = self.clock.now()
        for task in tasks:
            task.visible_at = now + self.missing_seconds
            task.interruption = self.one_off_stop
            self._start_pinned(task, now, {}, self.one_off_failure)  # RunTask resolves image tags at launch

    def task_stopped(self, task: SimTask, reason: str) -> None:
        now = self.clock.now()
        self._stop(task, now, reason or "Task stopped by user", "UserInitiated", exit_code=self.stop_exit_code)
        if task.service:
            self._reconcile(task.service, now)
        self._notify()
        self._mirror()

    def log_page(self, events: list, backward: str, forward: str, token: str | None):
        """GetLogEvents as CloudWatch Logs pages: the end of a stream is the token passed coming back, and
        an empty page with a new token (`log_empty_pages`) does not mean the end."""
        if not events:
            # moto's tokens are positions; at the end AWS gives back the very token it was passed.
            return events, backward, token if token and token.startswith("f/") else forward
        if self.log_empty_pages > 0:
            self.log_empty_pages -= 1
            # Same position as before this page (the one before its first event), spelt differently.
            before = int(backward[2:]) - 1
            width = (len(token) - 2 if token else 56) + 1
            return [], backward, f"f/{before:0{width}d}"
        return events, backward, forward

    def visible(self, task: SimTask) -> bool:
        """Whether ECS's read path knows the task yet (RunTask answers it at once; reads lag)."""
        return task.visible_at <= self.clock.now()

    def list_filter(self, tasks: list[SimTask], service_name: str | None, desired_status: str | None):
        """ListTasks as ECS answers it: by service, and by desired status RUNNING unless asked otherwise."""
        group = f"service:{service_name.rsplit('/', 1)[-1]}" if service_name else None
        wanted = desired_status or "RUNNING"
        return [
            t for t in tasks
            if t.desired_status == wanted and (group is None or t.group == group) and self.visible(t)
        ]

    def advance(self) -> None:
        """Play every transition due by now, in time order (tasks launched earlier first at one instant), letting
        each service react to each; then forget the tasks ECS no longer lists."""
        now = self.clock.now()
        due = self._due
        while due and due[0][0] <= now:
            at, _, _, token, task = heapq.heappop(due)
            action = task.next_action
            if token != task.token or action is None:
                continue  # superseded: the task was given another transition since
            task.next_at = task.next_action = None
            action(at)
            if task.service:
                self._reconcile(task.service, at)
            self._notify()
        self._forget(now)
        self._flush_logs(now)
        self._mirror()

    def idle(self) -> bool:
        """Whether no transition waits to be played, whenever due (superseded ones dropped)."""
        self._due = [entry for entry in self._due if entry[3] == entry[4].token and entry[4].next_action]
        heapq.heapify(self._due)
        return not self._due

    def _forget(self, now: float) -> None:
        """Drop tasks stopped longer ago than ECS keeps them, from the simulation and from moto."""
        if self.stopped_retention is None:
            return
        while self._stopped and self._stopped[0][0] + self.stopped_retention <= now:
            _, task = self._stopped.popleft()
            self.tasks.forget(task)
            if task.service is not None:
                task.service.tasks.forget(task)
            task._backend.tasks.get(task.cluster_name, {}).pop(task.task_arn, None)

    def _notify(self) -> None:
        for observer in self.observers:
            observer(self)

    # --- task lifecycle ---------------------------------------------------------------------------

    def _then(self, task: SimTask, delay: float, action: Callable[[float], None], now: float) -> None:
        """The task's next transition, replacing any it had."""
        task.token += 1
        task.next_at, task.next_action = now + delay, action
        self._scheduled += 1
        heapq.heappush(self._due, (now + delay, task.order, self._scheduled, task.token, task))

    def _enter(self, task: SimTask, status: str, now: float) -> None:
        task.sim_status = status
        wall = self.clock.wall(now)
        if status == "RUNNING":
            task.started_at = wall
            if self.omit_started_at:  # the serializer reads `startedAt` before `started_at`, which the model keeps
                task.startedAt = None
            for c in task.containers:
                c.image_digest = task.images.get(c.name)
        if status in ("RUNNING", "DEPROVISIONING", "STOPPED"):
            for c in task.containers:
                c.last_status = "RUNNING" if status == "RUNNING" else "STOPPED"
        if status == "DEPROVISIONING":
            self._network(task, "DETACHING")
        if status == "STOPPED":
            self._network(task, "DELETED")
            if task.service is not None:
                task.service.current.pop(task.task_arn, None)
            self._stopped.append((now, task))

    @staticmethod
    def _network(task: SimTask, status: str) -> None:
        """The task's network interface attachment: detaching while DEPROVISIONING, then deleted (from EC2 too)."""
        for attachment in task.attachments:
            if attachment.get("type") != "ElasticNetworkInterface" or attachment.get("status") == "DELETED":
                continue
            attachment["status"] = status
            if status == "DELETED":
                eni = next((d["value"] for d in attachment.get("details", []) if d["name"] == "networkInterfaceId"), None)
                ec2_backends[task._account_id][task.region_name].enis.pop(eni, None)

    def _start(self, task: SimTask, now: float, failure: str | None, reason: str | None = None) -> None:
        """`failure`: "pull" (no image), "hang" (never leaves PENDING), "start" (fails with `reason`)."""
        self._launched += 1
        task.order = self._launched
        self.tasks.append(task)
        if task.service is not None:
            task.service.current[task.task_arn] = task
        task.created_at = self.clock.wall(now)
        t = self.timings

        def pending(at):
            self._enter(task, "PENDING", at)
            crash = task.deployment.crash if task.deployment else None
            if failure in ("pull", "start"):
                failed = reason or PULL_ERROR.format(image=task.containers[0].image if task.containers else "image")
                self._then(task, t.pull, lambda at2: self._fail_to_start(task, at2, failed), at)
            elif crash and crash.before_running:
                self._then(task, t.pull, lambda at2: self._crash(task, crash, at2), at)
            elif failure != "hang":
                self._then(task, t.pull, running, at)

        def running(at):
            self._enter(task, "RUNNING", at)
            if task.service is None:
                self._run_one_off(task, at)
                return
            deployment = task.deployment
            checks = self._schema_checks(task)
            if checks:
                self._then(task, self.migration_check_seconds,
                           lambda at2: self._check_schema(task, checks, at, at2), at)
            else:
                self._after_start(task, at, at)
            if deployment.unhealthy_after is None and task.service.breaker.get("resetOnHealthyTask", True):
                deployment.failed_tasks = 0  # failedTasks counts consecutive failures; a healthy task ends a run

        self._then(task, t.provision, pending, now)

    def _after_start(self, task: SimTask, started: float, now: float) -> None:
        """What a deployment told to misbehave does, timed from the task's start."""
        deployment = task.deployment
        if deployment.crash:
            crash = deployment.crash
            self._then(task, max(0.0, started + crash.after - now), lambda at: self._crash(task, crash, at), now)
        elif deployment.unhealthy_after is not None:
            self._then(task, max(0.0, started + deployment.unhealthy_after - now),
                       lambda at: self._fail_health_check(task, at), now)

    # --- Airflow ----------------------------------------------------------------------------------

    def image_version(self, task: SimTask, container: str) -> str | None:
        """The Airflow release of the image the container runs, when its config says one Airflow knows a schema for."""
        digest = task.images.get(container)
        if not digest or self.image_config is None:
            return None
        version = version_from_config(self.image_config(digest))
        return version if version and schema_of(version) else None

    def _command(self, task: SimTask, container: str) -> list[str]:
        """The container's command: its override in the task, else its task definition's."""
        for override in task.overrides.get("containerOverrides", []):
            if override.get("name") == container and override.get("command"):
                return list(override["command"])
        definition = task._backend.describe_task_definition(task.task_definition_arn)
        spec = next((c for c in definition.container_definitions if c["name"] == container), {})
        return list(spec.get("command") or [])

    def _schema_checks(self, task: SimTask) -> list[tuple[Container, str]]:
        """Essential containers whose Airflow component checks the schema at start, with their image's release."""
        if self.database is None or self.image_config is None:
            return []
        checks = []
        for c in task.containers:
            version = self.image_version(task, c.name) if c.essential else None
            if version and checks_migrations(self._command(task, c.name), version):
                checks.append((c, version))
        return checks

    def _check_schema(self, task: SimTask, checks: list[tuple[Container, str]], started: float, now: float) -> None:
        """`check_and_run_migrations` at the component's start: on another schema it logs why and exits 1; ECS
        stops the task (SIGTERM to the other containers) and the service scheduler starts another."""
        failed = [(c, version, line) for c, version in checks if (line := self.database.mismatch(version))]
        if not failed:
            self._after_start(task, started, now)
            return
        for c, version, line in failed:
            c.exit_code, c.last_status = 1, "STOPPED"
            airflow3 = airflow_db.is_airflow3(version)
            logged = Log(line, "error", "db.py:997") if airflow3 else Log(line)
            self._log(task, c.name, now, [logged.render(self.clock.wall(now), airflow3)])
        self._stop(task, now, "Essential container in task exited", "EssentialContainerExited")

    def _airflow_one_off(self, task: SimTask) -> tuple[str, str, str, list[str]] | None:
        """(container, release, db command, its arguments) when the one-off runs `airflow db migrate`, `downgrade`
        or `check-migrations` on an image of a known release; a failure rehearsed through `one_off_exit_codes`
        or an interruption plays as for any command."""
        if self.database is None or self.image_config is None or task.interruption:
            return None
        for override in task.overrides.get("containerOverrides", []):
            name, found = override.get("name"), airflow_db.db_command(override.get("command"))
            container = next((c for c in task.containers if c.name == name and c.essential), None)
            if found is None or container is None or self.one_off_exit_codes.get(name, self.one_off_exit_code):
                continue
            version = self.image_version(task, name)
            if version:
                return name, version, found[0], found[1]
        return None

    def _process_runs(self, task: SimTask) -> bool:
        return task.airflow_process is not None and task.sim_status in ("RUNNING", "DEACTIVATING")

    def _play(self, task: SimTask, container: str, airflow3: bool, process: airflow_db.Process, now: float) -> None:
        """Run the process until it sleeps (then again when the time has passed) or ends (then the task exits)."""
        lines: list[str] = []
        try:
            while True:
                step = next(process)
                if isinstance(step, Log):
                    lines.append(step.render(self.clock.wall(now), airflow3))
                    continue
                if lines:
                    self._log(task, container, now, lines)
                self._then(task, step, lambda at: self._play(task, container, airflow3, process, at), now)
                return
        except StopIteration as ended:
            if lines:
                self._log(task, container, now, lines)
            task.airflow_process = None
            self._exit(task, now, {container: ended.value})

    def _run_one_off(self, task: SimTask, now: float) -> None:
        airflow = self._airflow_one_off(task)
        if airflow is not None:
            container, version, command, args = airflow
            process = airflow_db.process(self.database, task, self._process_runs, version, command, args,
                                         self.timings.one_off_run)
            task.airflow_process = process
            self._play(task, container, airflow_db.is_airflow3(version), process, now)
            return
        for name, command in self._commands(task).items():
            self._log(task, name, now, [f"Starting: {command}", "Working..."])
        run = self.timings.one_off_run
        after = self.one_off_stop_after if self.one_off_stop_after is not None else run / 2
        if task.interruption and after < run:
            self._then(task, after, lambda at: self._interrupt(task, at), now)
        else:
            self._then(task, run, lambda at: self._exit(task, at), now)

    def _exit(self, task: SimTask, now: float, exited: dict[str, int] | None = None) -> None:
        """The one-off's command ends; `exited`: exit codes of containers whose process said its own last words."""
        overridden = self._commands(task)
        exited = exited or {}
        for c in task.containers:
            if c.name in exited:
                c.exit_code = exited[c.name]
                continue
            c.exit_code = self.one_off_exit_codes.get(c.name, self.one_off_exit_code if c.essential else 0)
            if c.name in overridden:
                self._log(task, c.name, now, ["Done." if c.exit_code == 0 else f"ERROR: failed with exit code {c.exit_code}"])
        self._stop(task, now, "Essential container in task exited", "EssentialContainerExited")

    def _interrupt(self, task: SimTask, now: float) -> None:
        code, reason, exit_code = task.interruption
        self._stop(task, now, reason, code, exit_code=exit_code)

    def _crash(self, task: SimTask, crash: Crash, now: float) -> None:
        for c in task.containers:
            if c.essential:
                c.exit_code, c.last_status = crash.exit_code, "STOPPED"
                self._log(task, c.name, now, list(crash.lines))
        self._stop(task, now, "Essential container in task exited", "EssentialContainerExited")
        if task.started_at is None:  # it never reached RUNNING: a failed launch
            self._count_failed_launch(task, now)

    def _fail_health_check(self, task: SimTask, now: float) -> None:
        """The target group marks the task unhealthy: ECS replaces it (starting first when it may) and stops it."""
        svc, deployment = task.service, task.deployment
        target_group = svc.target_group
        task.unhealthy = True
        deployment.failed_tasks += 1
        self._event(svc, now, f"(service {svc.name}) (task {task.short_id}) (port 8080) is unhealthy in "
                              f"(target-group {target_group}) due to (reason Health checks failed).")
        self._reconcile(svc, now)
        self._stop(task, now, f"Task failed ELB health checks in (target-group {target_group})",
                   "ServiceSchedulerInitiated")
        self._event(svc, now, self._tasks_message(svc, "has stopped", [task]))
        self._trip_circuit_breaker(svc, deployment, now)

    @staticmethod
    def _commands(task: SimTask) -> dict[str, str]:
        overrides = task.overrides.get("containerOverrides", [])
        return {o["name"]: " ".join(o.get("command", [])) for o in overrides if o.get("command")}

    def _log(self, task: SimTask, container: str, now: float, lines: list[str]) -> None:
        """Write what the awslogs driver would: stream <prefix>/<container>/<task id> in the definition's
        group and region; the lines become readable `log_delay` seconds later (the driver ships in batches)."""
        definition = task._backend.describe_task_definition(task.task_definition_arn)
        spec = next((c for c in definition.container_definitions if c["name"] == container), {})
        options = (spec.get("logConfiguration") or {}).get("options", {})
        region = options.get("awslogs-region", task.region_name)
        backend = logs_backends[task._account_id][region]
        group = backend.groups.get(options.get("awslogs-group", ""))
        if group is None or "awslogs-stream-prefix" not in options:
            return
        stream = f"{options['awslogs-stream-prefix']}/{container}/{task.short_id}"
        if stream not in group.streams:
            group.create_log_stream(stream)  # at container start, before the first batch arrives
        stamp = int(self.clock.wall(now).timestamp() * 1000)
        events = [{"timestamp": stamp, "message": line} for line in lines]
        self._pending_logs.append((now + self.log_delay, group, stream, events))
        self._flush_logs(now)

    def _flush_logs(self, now: float) -> None:
        due = [entry for entry in self._pending_logs if entry[0] <= now]
        self._pending_logs = [entry for entry in self._pending_logs if entry[0] > now]
        for _, group, stream, events in due:
            group.put_log_events(stream, events)

    def _fail_to_start(self, task: SimTask, now: float, reason: str) -> None:
        task.desired_status = "STOPPED"
        task.stop_code, task.stopped_reason = "TaskFailedToStart", reason
        task.stopping_at = task.execution_stopped_at = self.clock.wall(now)
        for c in task.containers:
            c.reason = reason
        self._deprovision(task, now)
        if task.service is not None:
            self._count_failed_launch(task, now)

    def _deprovision(self, task: SimTask, now: float) -> None:
        """Its containers have stopped: DEPROVISIONING while ECS detaches the network interface, then STOPPED."""

        def stopped(at):
            task.stopped_at = self.clock.wall(at)
            self._enter(task, "STOPPED", at)

        if self.timings.deprovision > 0:
            self._enter(task, "DEPROVISIONING", now)
            self._then(task, self.timings.deprovision, stopped, now)
        else:
            stopped(now)

    def _count_failed_launch(self, task: SimTask, now: float) -> None:
        svc, deployment = task.service, task.deployment
        deployment.failed_tasks += 1
        self._event(svc, now, f"(service {svc.name}) is unable to consistently start tasks successfully.")
        self._trip_circuit_breaker(svc, deployment, now)

    def _stop(self, task: SimTask, now: float, reason: str, code: str, exit_code: int = SIGTERM_EXIT) -> None:
        """Stop a task; containers still running when it reaches STOPPED exit with `exit_code`."""
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
            for c in task.containers:
                if c.exit_code is None and c.last_status == "RUNNING":
                    c.exit_code = exit_code
            task.execution_stopped_at = self.clock.wall(at)
            task.airflow_process = None
            self._deprovision(task, at)

        if task.sim_status == "RUNNING":
            self._enter(task, "DEACTIVATING", now)
            self._then(task, drain, stopping, now)
        else:
            stopping(now)

    # --- the service scheduler --------------------------------------------------------------------

    def _new_deployment(self, svc: SimService, now: float, task_definition: str, deployment_id=None,
                        images: dict[str, str] | None = None) -> Deployment:
        """A new PRIMARY deployment; it resolves its images' tags to digests now, unless given `images`
        (a rollback returns to the digests of the deployment it rolls back to)."""
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
            crash=self.crashing.get(svc.name),
            unhealthy_after=self.unhealthy.get(svc.name),
        )
        if images is None:
            definition = svc.backend.describe_task_definition(task_definition)
            resolved = {c["name"]: self.resolve(c.get("image", "")) for c in definition.container_definitions}
            images = {name: digest for name, digest in resolved.items() if digest}
        deployment.images = dict(images)
        svc.deployments.insert(0, deployment)
        return deployment

    def _pin(self, task: SimTask, images: dict[str, str]) -> str | None:
        """Give each container of `task` the digest in `images`, resolving (and adding to `images`) those it
        lacks; the CannotPullContainerError of the first image that does not resolve, else None."""
        error = None
        for c in task.containers:
            digest = images.get(c.name) or self.resolve(c.image)
            if digest:
                images[c.name] = task.images[c.name] = digest
            elif error is None:
                error = PULL_ERROR.format(image=c.image)
        return error

    @staticmethod
    def _primary_task_set(model) -> TaskSet:
        task_set = TaskSet(
            model.arn, model.cluster_arn, model.task_definition, model._account_id, model.region_name,
            network_configuration=model.network_configuration or None, launch_type=model.launch_type,
            platform_version=model.platform_version, load_balancers=model.load_balancers,
        )
        task_set.service_arn, task_set.cluster_arn, task_set.status = model.arn, model.cluster_arn, "PRIMARY"
        return task_set

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
        # A deployment's digests are pinned once resolved; an image it could not resolve is tried again.
        flaky = self.flaky.get(svc.name)
        if flaky:
            self._pin(task, deployment.images)
            flaky[0] -= 1
            if flaky[0] <= 0:
                del self.flaky[svc.name]
            self._start(task, now, failure="start", reason=flaky[1])
        else:
            self._start_pinned(task, now, deployment.images, deployment.failure)
        return task

    def _start_pinned(self, task: SimTask, now: float, images: dict, failure: str | None) -> None:
        """Pin the task's image digests, then start it: a configured failure wins, else an image that does not
        resolve fails the start."""
        unpulled = self._pin(task, images)
        if failure or unpulled is None:
            self._start(task, now, failure=failure)
        else:
            self._start(task, now, failure="start", reason=unpulled)

    def _reconcile(self, svc: SimService, now: float) -> None:
        """One pass of ECS's rolling update, within minimumHealthyPercent and maximumPercent."""
        primary = svc.primary
        if primary is None:
            return
        desired = primary.desired_count
        config = svc.config
        ceiling = math.floor(desired * config.get("maximumPercent", 200) / 100)
        floor = math.ceil(desired * config.get("minimumHealthyPercent", 100) / 100)

        def serving():
            return [t for t in svc.live(primary) if not t.unhealthy]

        def launch():
            # maximumPercent bounds the tasks that are PENDING or RUNNING (desired RUNNING), not the ones
            # told to stop, unless max_percent_counts_stopping says otherwise.
            counted = [t for t in svc.current.values() if t.is_live] if self.max_percent_counts_stopping else svc.live()
            room = max(ceiling, desired) - len(counted)
            for _ in range(max(0, min(desired - len(serving()), room))):
                started.append(self._launch(svc, primary, now))

        started = []
        launch()

        surplus = len(serving()) - desired
        # Scaling in stops tasks that are not yet serving first.
        stopped = sorted(serving(), key=lambda t: t.sim_status == "RUNNING")[: max(0, surplus)]
        old = [t for t in svc.live() if t.deployment is not primary]
        stopped += [t for t in old if t.sim_status in STARTING]
        # Behind a load balancer a task counts as healthy once it passes health checks, which tasks of
        # an unhealthy deployment never do: the old tasks keep serving.
        healthy = sum(
            t.sim_status == "RUNNING" and not t.unhealthy and t.deployment.unhealthy_after is None
            for t in svc.live() if t not in stopped
        )
        for task in [t for t in old if t.sim_status == "RUNNING"]:
            if healthy - 1 < floor:
                break
            stopped.append(task)
            healthy -= 1
        for task in stopped:
            self._stop(task, now, f"Scaling activity initiated by (deployment {task.deployment.id})", "ServiceSchedulerInitiated")
        if stopped:
            launch()  # stopping made room under maximumPercent

        if started:
            self._event(svc, now, self._tasks_message(svc, "has started", started))
        if stopped:
            self._event(svc, now, self._tasks_message(svc, "has stopped", stopped))
        self._settle(svc, now)

    def _settle(self, svc: SimService, now: float) -> None:
        for old in svc.deployments[1:]:
            if not any(t.deployment is old for t in svc.current.values()):
                old.status = "INACTIVE"
                svc.deployments.remove(old)
        primary = svc.primary
        steady = (
            len(svc.deployments) == 1
            and svc.count(primary, ("RUNNING",)) == primary.desired_count
            and svc.count(primary, STARTING) == 0
            and primary.unhealthy_after is None  # its tasks never pass the load balancer's health checks
        )
        # COMPLETED is final: a deployment whose tasks crash later stays COMPLETED, as in ECS.
        if primary.rollout_state == "IN_PROGRESS" and steady:
            primary.rollout_state = "COMPLETED"
            primary.rollout_state_reason = f"ECS deployment {primary.id} completed."
            primary.updated_at = now
            svc.last_completed = primary
            if svc.controller == "ECS":
                self._event(svc, now, f"(service {svc.name}) ({primary.id}) deployment completed.")
            self._event(svc, now, f"(service {svc.name}) has reached a steady state.")

    def _trip_circuit_breaker(self, svc: SimService, deployment: Deployment, now: float) -> None:
        breaker = svc.breaker
        setting = breaker.get("thresholdConfiguration") or {"type": "BOUNDED_PERCENT", "value": 50}
        if setting["type"] == "COUNT":
            threshold = setting["value"]
        else:
            threshold = math.ceil(deployment.desired_count * setting["value"] / 100)
            if setting["type"] == "BOUNDED_PERCENT":
                threshold = min(max(3, threshold), 200)
        if not breaker.get("enable") or deployment.failed_tasks < max(threshold, 1):
            return
        if deployment.rollout_state != "IN_PROGRESS":
            return
        deployment.rollout_state = "FAILED"
        deployment.rollout_state_reason = "ECS deployment circuit breaker: tasks failed to start."
        self._event(svc, now, f"(service {svc.name}) ({deployment.id}) deployment failed: tasks failed to start.")
        previous = svc.last_completed
        if breaker.get("rollback") and previous is not None and deployment is svc.primary:
            rollback = self._new_deployment(svc, now, previous.task_definition, images=previous.images)
            rollback.failure = rollback.crash = rollback.unhealthy_after = None
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
            if svc.controller == "ECS":
                model.deployments = [self._deployment_view(svc, d) for d in svc.deployments]
            else:
                model.deployments = []  # CODE_DEPLOY and EXTERNAL services show task sets instead
            if svc.task_set is not None and svc.primary is not None:
                primary, task_set = svc.primary, svc.task_set
                task_set.computed_desired_count = primary.desired_count
                task_set.running_count = svc.count(primary, ("RUNNING",))
                task_set.pending_count = svc.count(primary, STARTING)
                steady = task_set.running_count == primary.desired_count and not task_set.pending_count
                task_set.stabilityStatus = "STEADY_STATE" if steady else "STABILIZING"
                task_set.updatedAt = wall(primary.updated_at)
                model.task_sets = [task_set]
            model.running_count = sum(t.sim_status == "RUNNING" for t in svc.current.values())
            model.pending_count = sum(t.sim_status in STARTING for t in svc.current.values())
            if svc.primary is not None:
                model.task_definition = svc.primary.task_definition
            model.events = svc.events

    def _deployment_view(self, svc: SimService, d: Deployment) -> dict:
        wall = self.clock.wall
        return {
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
