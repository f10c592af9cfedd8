"""The operator's operations on an Airflow cluster: initialize, stop/start the scheduler, redeploy.

The rules that keep production safe live here, each in one place: never two schedulers
(`start_scheduler`), never a changed worker count (`redeploy` only forces new deployments), and a
deployment counts as done only when the very deployment we created has completed (`_await_deployments`).
"""

from collections.abc import Callable
from dataclasses import dataclass

from .ecs import Ecs, Service, Task
from .errors import AccessDenied, OperationFailed, TaskFailed
from .logs import LogStream
from .poller import Poller
from .render import Reporter


@dataclass(frozen=True)
class Target:
    cluster: str
    scheduler: str
    worker: str
    web: str


@dataclass
class Env:
    ecs: Ecs
    poller: Poller
    report: Reporter
    logs: Callable[[], object] | None = None  # builds a CloudWatch Logs client, only when a task's output is followed


@dataclass(frozen=True)
class Outcome:
    summary: str
    services: tuple[Service, ...]


@dataclass(frozen=True)
class TaskOutcome:
    summary: str
    task: Task
    essential: frozenset[str]
    failure: str | None = None


def status(env: Env, target: Target) -> Outcome:
    services = env.ecs.services([target.scheduler, target.worker, target.web])
    alive = _live_tasks(env, target.scheduler)
    return Outcome(f"cluster {target.cluster}: {len(alive)} scheduler task(s) alive", tuple(services))


def stop_scheduler(env: Env, scheduler: str, wait: bool = True) -> Outcome:
    service = env.ecs.service(scheduler)
    env.report.service(service)
    if service.desired == 0 and not _live_tasks(env, scheduler):
        env.report.state = "the scheduler is stopped"
        return Outcome(f"scheduler {scheduler} is already stopped", (service,))
    with env.report.phase(f"stop scheduler {scheduler}"):
        if service.desired != 0:
            service = env.ecs.update_service(scheduler, desired_count=0)
        env.report.state = "the scheduler is stopping"
        if not wait:
            return Outcome(f"scheduler {scheduler} is stopping", (service,))
        _await_scheduler_stopped(env, scheduler)
    env.report.state = "the scheduler is stopped"
    return Outcome(f"scheduler {scheduler} stopped", (env.ecs.service(scheduler),))


def start_scheduler(env: Env, scheduler: str, wait: bool = True) -> Outcome:
    """Start exactly one scheduler, and only once no other scheduler task is alive.

    A scheduler that is running is never force-deployed: with maximumPercent 200 ECS would start the
    new task before stopping the old one, and two schedulers would run at once.
    """
    service = env.ecs.service(scheduler)
    env.report.service(service)
    if service.desired > 1:
        raise OperationFailed(
            f"scheduler {scheduler} has desired count {service.desired}, but only one scheduler may run; "
            "run stop-scheduler first"
        )
    if service.desired == 1:
        primary = service.primary
        if primary and service.has_completed(primary.id):
            env.report.state = "the scheduler is running"
            return Outcome(f"scheduler {scheduler} is already running", (service,))
        if not wait:
            return Outcome(f"scheduler {scheduler} is already starting", (service,))
        with env.report.phase(f"wait for scheduler {scheduler} already starting"):
            env.report.state = "the scheduler is starting"
            service = _await_deployments(env, {scheduler: primary.id})[0]
        env.report.state = "the scheduler is running"
        return Outcome(f"scheduler {scheduler} started", (service,))

    with env.report.phase(f"start scheduler {scheduler}"):
        if _live_tasks(env, scheduler):
            env.report.state = "the scheduler is stopping"
            _await_scheduler_stopped(env, scheduler)
        env.report.state = "the scheduler is starting"
        # No scheduler task is alive, so a new deployment starts exactly one, with the current image.
        started = env.ecs.update_service(scheduler, desired_count=1, force_new_deployment=True)
        if not wait:
            return Outcome(f"scheduler {scheduler} is starting", (started,))
        service = _await_deployments(env, {scheduler: started.primary.id})[0]
    env.report.state = "the scheduler is running"
    return Outcome(f"scheduler {scheduler} started", (service,))


def redeploy(env: Env, target: Target) -> Outcome:
    """Stop the scheduler, roll web and worker onto new deployments at their current counts, start the scheduler."""
    for service in env.ecs.services([target.web, target.worker, target.scheduler]):
        env.report.service(service)
    stop_scheduler(env, target.scheduler)
    rolling = [target.web, target.worker]
    with env.report.phase(f"redeploy {' and '.join(rolling)}"):
        env.report.state = "the scheduler is stopped; web and worker are being redeployed"
        # forceNewDeployment alone: the desired counts stay whatever operators or autoscaling set.
        deployments = {name: env.ecs.update_service(name, force_new_deployment=True).primary.id for name in rolling}
        _await_deployments(env, deployments)
    env.report.state = "the scheduler is stopped; web and worker are redeployed"
    start_scheduler(env, target.scheduler)
    services = env.ecs.services([target.scheduler, target.web, target.worker])
    return Outcome(f"cluster {target.cluster} redeployed", tuple(services))


def initialize(env: Env, target: Target, command: list[str], container: str | None, wait: bool) -> TaskOutcome:
    """Run the Airflow database migration as a one-off task shaped like the worker service's own tasks."""
    worker = env.ecs.service(target.worker)
    definition = env.ecs.task_definition(worker.task_definition)
    names = [c.name for c in definition.containers]
    essential = definition.essential
    if container is None:
        if len(essential) != 1:
            raise OperationFailed(
                f"task definition {definition.arn} has essential containers {', '.join(sorted(essential))}; "
                "choose one with --container"
            )
        (container,) = essential
    elif container not in names:
        raise OperationFailed(f"task definition {definition.arn} has no container {container}; it has {', '.join(names)}")

    with env.report.phase(f"run {' '.join(command)} in {container} ({definition.arn.rsplit('/', 1)[-1]})"):
        task = env.ecs.run_task(worker, definition.arn, container, command)
        env.report.line(f"started task {task.arn}")
        if not wait:
            return TaskOutcome(f"task {task.arn} started", task, essential)
        env.report.state = f"one-off task {task.id} keeps running; stopping this command does not stop it"
        follow = _LogFollower(env, definition.container(container).log_options, container, task.id)

        def stopped():
            current = env.ecs.task(task.arn)
            env.report.task("one-off", current)
            follow.poll()
            return current if current.is_stopped else None

        task = env.poller.until(stopped, lambda: f"task {task.id} to stop")
        follow.poll()  # lines that arrived after the task stopped
    env.report.state = None
    failure = task.failure(essential)
    if failure:
        if follow.lines:
            failure += "\n  last log lines of " + container + ":\n    " + "\n    ".join(follow.lines[-10:])
        raise TaskFailed(failure, TaskOutcome(f"task {task.id} failed", task, essential, failure))
    return TaskOutcome(f"task {task.id} succeeded: {task.stopped_reason or 'stopped'}", task, essential)


class _LogFollower:
    """Prints a container's new log lines as progress; a missing permission ends following, not the command."""

    def __init__(self, env: Env, log_options: dict, container: str, task_id: str):
        self.report, self.container = env.report, container
        self.stream = LogStream.for_container(env.logs, log_options, container, task_id) if env.logs else None
        self.lines: list[str] = []

    def poll(self) -> None:
        if self.stream is None:
            return
        try:
            new = self.stream.new_lines()
        except AccessDenied as error:
            self.report.line(f"not following {self.container}'s logs: {error}")
            self.stream = None
            return
        for line in new:
            self.report.line(f"{self.container} | {line}")
        self.lines += new


def _live_tasks(env: Env, service: str, known_stopped: set[str] | None = None) -> list[Task]:
    """Tasks of `service` not yet STOPPED: one that is DEACTIVATING or STOPPING still runs its process."""
    known_stopped = known_stopped if known_stopped is not None else set()
    arns = env.ecs.task_arns(service, "RUNNING") + env.ecs.task_arns(service, "STOPPED")
    tasks = env.ecs.tasks([a for a in arns if a not in known_stopped])
    known_stopped.update(t.arn for t in tasks if t.is_stopped)
    return [t for t in tasks if not t.is_stopped]


def _await_scheduler_stopped(env: Env, scheduler: str) -> None:
    stopped: set[str] = set()
    alive: list[Task] = []

    def check():
        nonlocal alive
        service = env.ecs.service(scheduler)
        env.report.service(service)
        alive = _live_tasks(env, scheduler, stopped)
        for task in alive:
            env.report.task(scheduler, task)
        return not alive and service.running == 0 and service.pending == 0

    def pending():
        tasks = ", ".join(f"{t.id} ({t.last_status})" for t in alive) or "none listed"
        return f"scheduler tasks to stop; still alive: {tasks}"

    env.poller.until(check, pending)


def _await_deployments(env: Env, deployments: dict[str, str]) -> list[Service]:
    """Wait until each service's own new deployment completes; fail as soon as one cannot."""
    names = list(deployments)
    failed_seen = {name: 0 for name in names}
    latest: dict[str, Service] = {}

    def check():
        services = env.ecs.services(names)
        for service in services:
            latest[service.name] = service
            env.report.service(service, deployments[service.name])
            _raise_if_failed(env, service, deployments[service.name], failed_seen)
        return all(s.has_completed(deployments[s.name]) for s in services) and services

    def pending():
        waiting = []
        for name in names:
            service = latest.get(name)
            if service is None or not service.has_completed(deployments[name]):
                d = service and service.deployment(deployments[name])
                counts = f"{d.running}/{d.desired} running, {d.pending} pending" if d else "not seen"
                older = len(service.deployments) - 1 if service else 0
                waiting.append(f"{name} deployment {deployments[name]} ({counts}, {older} older draining)")
        return "; ".join(waiting)

    return env.poller.until(check, pending)


def _raise_if_failed(env: Env, service: Service, deployment_id: str, failed_seen: dict[str, int]) -> None:
    deployment = service.deployment(deployment_id)
    if deployment is None:
        raise OperationFailed(
            f"{service.name}: deployment {deployment_id} disappeared (rolled back?)" + _last_event(service)
        )
    if deployment.rollout_state == "FAILED":
        raise OperationFailed(
            f"{service.name}: deployment {deployment_id} failed: {deployment.rollout_reason or 'no reason given'}"
        )
    if deployment.failed_tasks > failed_seen[service.name]:
        failed_seen[service.name] = deployment.failed_tasks
        # Only now, with ECS counting a failure, is it worth listing the stopped tasks.
        arns = env.ecs.task_arns(service.name, "STOPPED")
        ours = [t for t in env.ecs.tasks(arns) if t.started_by == deployment_id]
        for task in ours:
            reason = task.failure(env.ecs.task_definition(task.task_definition).essential)
            if reason:
                raise OperationFailed(f"{service.name}: {reason}")
        raise OperationFailed(
            f"{service.name}: deployment {deployment_id} has {deployment.failed_tasks} failed task(s)"
            + _last_event(service)
        )


def _last_event(service: Service) -> str:
    return f"; last event: {service.events[0].message}" if service.events else ""
