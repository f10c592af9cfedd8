"""The operator's operations on an Airflow cluster: initialize, stop/start the scheduler, redeploy, status.

The rules that keep production safe live here, each in one place: never two schedulers
(`_start_stopped_scheduler`), never a changed worker count (`redeploy` only forces new deployments),
nothing changed before every service is known to be deployable (`preflight`), and a deployment counts
as done only when the very deployment we created has succeeded (`deployments.DeploymentWatch`).
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from .deployments import DeploymentWatch, WatchPolicy, await_deployments
from .ecs import ROLLING_UPDATE, Ecs, Service, Task
from .errors import OperationFailed, Refused
from .oneoff import TaskOutcome, run_one_off
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
    logs: Callable[[str | None], object] | None = None  # builds a Logs client for a Region, only when one is read
    policy: WatchPolicy = field(default_factory=WatchPolicy)


@dataclass(frozen=True)
class Outcome:
    summary: str
    services: tuple[Service, ...]
    scheduler_downtime: float | None = None  # seconds from the stop request until the new scheduler ran


def status(env: Env, target: Target) -> Outcome:
    services = env.ecs.services([target.scheduler, target.worker, target.web])
    alive = _live_tasks(env, target.scheduler)
    return Outcome(f"cluster {target.cluster}: {len(alive)} scheduler task(s) alive", tuple(services))


def preflight(env: Env, names: list[str]) -> list[Service]:
    """Every service exists, is ACTIVE and deploys by rolling update; checked before anything changes."""
    services = env.ecs.services(names)
    for service in services:
        env.report.service(service)
    others = [s for s in services if s.controller != ROLLING_UPDATE]
    if others:
        raise Refused(
            "; ".join(f"{s.name} uses the {s.controller} deployment controller" for s in others)
            + ": only services with the ECS (rolling update) controller can be force-deployed; nothing was changed"
        )
    return services


def stop_scheduler(env: Env, scheduler: str, wait: bool = True, known: Service | None = None) -> Outcome:
    service = known or env.ecs.service(scheduler)
    if known is None:
        env.report.service(service)
    if service.desired == 0 and not _live_tasks(env, scheduler):
        env.report.state = "the scheduler is stopped"
        return Outcome(f"scheduler {scheduler} is already stopped", (service,))
    with env.report.phase(f"stop scheduler {scheduler}"):
        if service.desired != 0:
            # Said before the call: an interrupt during it leaves the outcome unknown, not "running".
            env.report.state = "the scheduler may be stopping: its stop was requested"
            service = env.ecs.update_service(scheduler, desired_count=0)
        env.report.state = "the scheduler is stopping"
        if not wait:
            return Outcome(f"scheduler {scheduler} is stopping", (service,))
        service = _await_scheduler_stopped(env, scheduler)
    env.report.state = "the scheduler is stopped"
    return Outcome(f"scheduler {scheduler} stopped", (service,))


def start_scheduler(env: Env, scheduler: str, wait: bool = True) -> Outcome:
    """Start exactly one scheduler, and only once no other scheduler task is alive."""
    (service,) = preflight(env, [scheduler])
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
        if not wait or primary is None:
            return Outcome(f"scheduler {scheduler} is already starting", (service,))
        with env.report.phase(f"wait for scheduler {scheduler} already starting"):
            env.report.state = "the scheduler is starting"
            service = await_deployments(env, [DeploymentWatch(env, scheduler, primary.id)])[0]
        env.report.state = "the scheduler is running"
        return Outcome(f"scheduler {scheduler} started", (service,))
    return _start_stopped_scheduler(env, scheduler, wait, alive_checked=False)[0]


def _start_stopped_scheduler(
    env: Env, scheduler: str, wait: bool, alive_checked: bool, also: tuple[DeploymentWatch, ...] = ()
) -> tuple[Outcome, float]:
    """The one place a scheduler starts: only with no scheduler task alive, so exactly one task starts.

    A scheduler that is running is never force-deployed: with maximumPercent 200 ECS would start the
    new task before stopping the old one, and two schedulers would run at once. `also` are deployments
    that keep being watched meanwhile. Returns the outcome and when the scheduler was seen running.
    """
    with env.report.phase(f"start scheduler {scheduler}"):
        if not alive_checked and _live_tasks(env, scheduler):
            env.report.state = "the scheduler is stopping"
            _await_scheduler_stopped(env, scheduler)
        env.report.state = "the scheduler may be starting: its start was requested"
        # No scheduler task is alive, so a new deployment starts exactly one, with the current image.
        watch = _deploy(env, scheduler, desired_count=1)
        env.report.state = "the scheduler is starting"
        if not wait:
            return Outcome(f"scheduler {scheduler} is starting", (watch.latest,)), env.poller.clock()
        service = await_deployments(env, [watch, *also], required=[watch])[0]
    env.report.state = "the scheduler is running"
    return Outcome(f"scheduler {scheduler} started", (service,)), watch.stable_since


def redeploy(env: Env, target: Target, wait_for_drain: bool = False) -> Outcome:
    """Stop the scheduler, roll web and worker onto new deployments at their current counts, start the scheduler.

    The scheduler starts as soon as the new workers are complete and stable and no old worker runs; web's
    rollout goes on meanwhile and never holds the scheduler back. The command returns when web's new tasks
    all run and its old ones are deregistering (or, with `wait_for_drain`, gone).
    """
    web, worker, scheduler = preflight(env, [target.web, target.worker, target.scheduler])
    if scheduler.desired > 1:
        raise Refused(f"scheduler {scheduler.name} has desired count {scheduler.desired}; only one may run")
    down_since = env.poller.clock()
    stop_scheduler(env, target.scheduler, known=scheduler)
    with env.report.phase(f"redeploy {target.web} and {target.worker}"):
        env.report.state = "the scheduler is stopped; web and worker are being redeployed"
        env.report.alternatives = ["start-scheduler"]  # restores scheduling on the workers ECS keeps running
        # forceNewDeployment alone: the desired counts stay whatever operators or autoscaling set.
        web_watch = _deploy(env, target.web, drained=wait_for_drain)
        worker_watch = _deploy(env, target.worker, old_tasks_stopped=True)
        await_deployments(env, [web_watch, worker_watch], required=[worker_watch])
    env.report.state = "the scheduler is stopped; the worker is redeployed and web is rolling"
    env.report.alternatives = []
    started, running_since = _start_stopped_scheduler(env, target.scheduler, True, True, also=(web_watch,))
    env.report.state = "the scheduler runs on the new workers; web is rolling"
    rolled = await_deployments(env, [web_watch, worker_watch], required=[web_watch])
    draining = web_watch.draining()
    if draining:
        env.report.line(f"{draining} old web task(s) draining behind the load balancer; ECS finishes it")
    env.report.state = None
    downtime = round(running_since - down_since, 1)
    return Outcome(
        f"cluster {target.cluster} redeployed; the scheduler was down for {downtime:.0f}s",
        (*started.services, *rolled),
        downtime,
    )


def initialize(env: Env, target: Target, command: list[str], container: str | None, wait: bool) -> TaskOutcome:
    """Run the Airflow database migration as a one-off task shaped like the worker service's own tasks."""
    return run_one_off(env, env.ecs.service(target.worker), command, container, wait)


def _deploy(env: Env, name: str, desired_count: int | None = None, **watch_options) -> DeploymentWatch:
    """Force a new deployment of `name` and watch the very deployment UpdateService created."""
    service = env.ecs.update_service(name, desired_count=desired_count, force_new_deployment=True)
    if service.primary is None:
        raise OperationFailed(f"UpdateService of {name} answered without a PRIMARY deployment")
    watch = DeploymentWatch(env, name, service.primary.id, **watch_options)
    watch.latest = service
    return watch


def _live_tasks(env: Env, service: str, known_stopped: set[str] | None = None) -> list[Task]:
    return env.ecs.live_tasks(service, known_stopped if known_stopped is not None else set())


def _await_scheduler_stopped(env: Env, scheduler: str) -> Service:
    stopped: set[str] = set()
    alive: list[Task] = []
    latest: Service | None = None

    def check():
        nonlocal alive, latest
        latest = env.ecs.service(scheduler)
        env.report.service(latest)
        alive = _live_tasks(env, scheduler, stopped)
        for task in alive:
            env.report.task(scheduler, task)
        # desired 0 must be visible too: right after UpdateService, DescribeServices may still show the old view.
        return not alive and latest.desired == latest.running == latest.pending == 0 and latest

    def pending():
        tasks = ", ".join(f"{t.id} ({t.last_status})" for t in alive) or "none listed"
        return f"scheduler tasks to stop; still alive: {tasks}"

    return env.poller.until(check, pending)
