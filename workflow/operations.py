"""The operator's operations that change an Airflow cluster: initialize, stop/start the scheduler, redeploy.

The rules that keep production safe live here, each in one place: never two schedulers
(`_start_stopped_scheduler`), never a changed worker count (`redeploy` only forces new deployments),
nothing changed before every service is known to be deployable (`preflight`), and a deployment counts
as done only when the very deployment we created has succeeded (`deployments.DeploymentWatch`).
"""

from collections.abc import Callable
from dataclasses import dataclass

from .deployments import DeploymentWatch, await_deployments
from .ecr import tags_for_digests
from .ecs import ROLLING_UPDATE, Service, Task
from .env import Env
from .errors import ConfigurationError, OperationFailed, Refused, TaskFailed, Transient, WorkflowError
from .images import ecr_image
from .lease import LeaseHeld
from .oneoff import TaskOutcome, run_one_off
from .topology import Target

RELIST_SECONDS = 10.0
# Sent with every start and stop of the scheduler, so ECS itself stops a scheduler before it starts another:
# for a retried call, for two operators at once, and for its own replacement of an unhealthy task.
SCHEDULER_DEPLOYMENT = {"maximumPercent": 100, "minimumHealthyPercent": 0}
RESTORE_SCHEDULER = ("to schedule on the old workers ECS keeps running", "start-scheduler")
ROLL_BACK = ("to go back to the previous release, if there is one", "rollback --yes")


@dataclass(frozen=True)
class Outcome:
    summary: str
    services: tuple[Service, ...]
    scheduler_downtime: float | None = None  # seconds from the stop request until the new scheduler ran
    warnings: tuple[str, ...] = ()
    images: tuple = ()  # status.Image values
    scheduler_tasks_alive: int | None = None


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


def _rehearse_reads(env: Env, services: list[Service]) -> None:
    """Make once every read the operation will need later, so a missing permission fails before any change."""
    for service in services:
        env.ecs.task_definition(service.task_definition)
        stopped = env.ecs.task_arns(service.name, "STOPPED")
        env.ecs.tasks((env.ecs.task_arns(service.name, "RUNNING") or stopped)[:1])


def stop_scheduler(env: Env, scheduler: str, wait: bool = True, known: Service | None = None) -> Outcome:
    service = known or env.ecs.service(scheduler)
    if known is None:
        env.report.service(service)
    # Listing the tasks first also proves, before any change, that the wait's reads are allowed.
    alive = env.ecs.live_tasks(scheduler)
    if not alive and service.desired == 0:
        env.recovery.state = "the scheduler is stopped"
        return Outcome(f"scheduler {scheduler} is already stopped", (service,))
    with env.report.phase(f"stop scheduler {scheduler}"):
        if service.desired != 0:
            env.before_change()
            service = _change(
                env, "the scheduler may be stopping: its stop was requested",
                lambda: env.ecs.update_service(scheduler, desired_count=0, deployment_configuration=_one_at_a_time(service)),
            )
        env.recovery.state = "the scheduler is stopping"
        if not wait:
            return Outcome(f"scheduler {scheduler} is stopping", (service,))
        service = _await_scheduler_stopped(env, scheduler, alive)
    env.recovery.state = "the scheduler is stopped"
    return Outcome(f"scheduler {scheduler} stopped", (service,))


def start_scheduler(env: Env, scheduler: str, wait: bool = True) -> Outcome:
    """Start exactly one scheduler, and only once no other scheduler task is alive."""
    (service,) = preflight(env, [scheduler])
    _rehearse_reads(env, [service])
    if service.desired > 1:
        raise OperationFailed(
            f"scheduler {scheduler} has desired count {service.desired}, but only one scheduler may run; "
            "run stop-scheduler first"
        )
    if service.desired == 1:
        primary = service.primary
        if primary and service.has_completed(primary.id):
            env.recovery.state = "the scheduler is running"
            return Outcome(f"scheduler {scheduler} is already running", (service,))
        if not wait or primary is None:
            return Outcome(f"scheduler {scheduler} is already starting", (service,))
        with env.report.phase(f"wait for scheduler {scheduler} already starting"):
            env.recovery.state = "the scheduler is starting"
            service = await_deployments(env, [DeploymentWatch(env, scheduler, primary.id, adopted=True)])[0]
        env.recovery.state = "the scheduler is running"
        return Outcome(f"scheduler {scheduler} started", (service,))
    return _start_stopped_scheduler(env, service, wait, alive_checked=False)[0]


def _start_stopped_scheduler(
    env: Env, service: Service, wait: bool, alive_checked: bool, also: tuple[DeploymentWatch, ...] = ()
) -> tuple[Outcome, float]:
    """The one place a scheduler starts: only with no scheduler task alive, so exactly one task starts.

    A scheduler that is running is never force-deployed: with maximumPercent 200 ECS would start the
    new task before stopping the old one, and two schedulers would run at once. The start also sets
    SCHEDULER_DEPLOYMENT, so that even a repeated request makes ECS stop one before it starts another.
    `also` are deployments
    that keep being watched meanwhile. Returns the outcome and when the scheduler was seen running.
    """
    scheduler = service.name
    with env.report.phase(f"start scheduler {scheduler}"):
        alive = [] if alive_checked else env.ecs.live_tasks(scheduler)
        if alive:
            env.recovery.state = "the scheduler is stopping"
            _await_scheduler_stopped(env, scheduler, alive)
        # No scheduler task is alive, so a new deployment starts exactly one, with the current image.
        watch = _start_deployment(env, service)
        env.recovery.state = "the scheduler is starting"
        if not wait:
            return Outcome(f"scheduler {scheduler} is starting", (watch.latest,)), env.poller.clock()
        service = await_deployments(env, [watch, *also], required=[watch])[0]
    env.recovery.state = "the scheduler is running"
    return Outcome(f"scheduler {scheduler} started", (service,)), watch.stable_since


def redeploy(env: Env, target: Target, wait_for_drain: bool = False, migrate: list[str] | None = None) -> Outcome:
    """Stop the scheduler, roll web and worker onto new deployments at their current counts, start the scheduler.

    The scheduler starts as soon as the new workers are complete and stable and no old worker runs; web's
    rollout goes on meanwhile and never holds the scheduler back. The command returns when web's new tasks
    all run and its old ones are deregistering (or, with `wait_for_drain`, gone).

    `migrate` is a command run as a one-off task once the old scheduler has drained and before anything
    new starts, so no new component meets an old schema and no old scheduler a new one.
    """
    web, worker, scheduler = preflight(env, [target.web, target.worker, target.scheduler])
    if scheduler.desired > 1:
        raise Refused(f"scheduler {scheduler.name} has desired count {scheduler.desired}; only one may run")
    _rehearse_reads(env, [web, worker, scheduler])
    down_since = env.poller.clock()
    # A scheduler already stopped with web and worker rolling is what an interrupted redeploy leaves behind.
    resuming = scheduler.desired == 0 and not migrate
    stop_scheduler(env, target.scheduler, known=scheduler)
    if migrate:
        env.recovery.alternatives = [RESTORE_SCHEDULER]
        try:
            run_one_off(env, worker, migrate, None, wait=True)
        except TaskFailed:
            env.recovery.state = "the scheduler is stopped; the migration failed; web and worker are untouched"
            raise
    with env.report.phase(f"redeploy {target.web} and {target.worker}"):
        env.recovery.state = "the scheduler is stopped; web and worker are being redeployed"
        env.recovery.alternatives = [RESTORE_SCHEDULER]
        # forceNewDeployment alone: the desired counts stay whatever operators or autoscaling set.
        web_watch = _resume_or_deploy(env, web, resuming, drained=wait_for_drain)
        worker_watch = _resume_or_deploy(env, worker, resuming, old_tasks_stopped=True)
        try:
            await_deployments(env, [web_watch, worker_watch], required=[worker_watch])
        except (OperationFailed, KeyboardInterrupt):
            latest = worker_watch.latest
            if latest is not None and not latest.older_running(worker_watch.id):  # no old worker to schedule on
                env.recovery.state = "the scheduler is stopped; the new workers are what runs"
                env.recovery.alternatives = [ROLL_BACK]
            raise
    env.recovery.state = "the scheduler is stopped; the worker is redeployed and web is rolling"
    env.recovery.alternatives = []
    _require_still_stopped(env, scheduler)
    started, running_since = _start_stopped_scheduler(env, scheduler, True, True, also=(web_watch,))
    env.recovery.state = "the scheduler runs on the new workers; web is rolling"
    rolled = await_deployments(env, [web_watch, worker_watch], required=[web_watch])
    draining = web_watch.draining()
    if draining:
        env.report.line(f"{draining} old web task(s) draining behind the load balancer; ECS finishes it")
    env.recovery.state = None
    downtime = round(running_since - down_since, 1)
    return Outcome(
        f"cluster {target.cluster} redeployed; the scheduler was down for {downtime:.0f}s",
        (*started.services, *rolled),
        downtime,
    )


def initialize(env: Env, target: Target, command: list[str], container: str | None, wait: bool) -> TaskOutcome:
    """Run the Airflow database migration as a one-off task shaped like the worker service's own tasks."""
    worker = env.ecs.service(target.worker)
    _rehearse_reads(env, [worker])
    return run_one_off(env, worker, command, container, wait)


def _change(env: Env, requested: str, call: Callable):
    """Make one change, saying `requested` while it is in flight: an interrupt then leaves its outcome unknown.

    A refusal (access denied, bad configuration, another operator's lease) changed nothing, so the state
    said before stays.
    """
    before, env.recovery.state = env.recovery.state, requested
    try:
        return call()
    except (ConfigurationError, LeaseHeld):
        env.recovery.state = before
        raise


def _start_deployment(env: Env, service: Service) -> DeploymentWatch:
    """Ask once for the scheduler's new deployment; after an ambiguous failure, look before asking again.

    Repeating a start whose answer was lost would make a second deployment, and a second task. Right after
    UpdateService, DescribeServices may still show the old view, so the look lasts the visibility grace:
    a new PRIMARY deployment at desired 1, or a scheduler task wanted RUNNING, shows the start was applied.
    """
    config = _one_at_a_time(service)
    requested = "the scheduler may be starting: its start was requested"
    ask = lambda: _deploy(env, service.name, desired_count=1, deployment_configuration=config, desired=1, once=True)  # noqa: E731
    try:
        return _change(env, requested, ask)
    except Transient as error:
        env.report.line(f"the start request may or may not have been applied ({error}); looking before asking again")
    applied = _find_start(env, service)
    if applied:
        env.report.line(f"it was applied: deployment {applied} starts the scheduler")
        return DeploymentWatch(env, service.name, applied, desired=1)
    try:
        return _change(env, requested, ask)
    except Transient as error:
        raise OperationFailed(
            f"cannot tell whether {service.name}'s start was applied ({error}); check with `status` before "
            "starting it again"
        ) from None


def _find_start(env: Env, service: Service) -> str | None:
    """The deployment a start request whose answer was lost created, if it shows within the grace."""
    before = service.primary.id if service.primary else None
    deadline = env.poller.clock() + env.policy.visibility_grace
    stopped: set[str] = set()  # described once, not on every look

    def look():  # (deployment id or None) once decided; None to keep looking
        now = env.ecs.service(service.name)
        if now.desired == 1 and now.primary and now.primary.id != before:
            return (now.primary.id,)
        live = env.ecs.live_tasks(service.name, stopped)
        wanted = [t for t in live if t.desired_status == "RUNNING" and t.started_by]
        if wanted:
            return (wanted[0].started_by,)  # a service task's startedBy is its deployment's id
        return (None,) if env.poller.clock() >= deadline else None

    return env.poller.until(look, lambda: f"{service.name}'s start request to show")[0]


def _one_at_a_time(service: Service) -> dict:
    """The service's deployment configuration (circuit breaker and alarms kept) with SCHEDULER_DEPLOYMENT."""
    return {**service.deployment_configuration, **SCHEDULER_DEPLOYMENT}


def _resume_or_deploy(env: Env, service: Service, resuming: bool, **watch_options) -> DeploymentWatch:
    """Watch the deployment an interrupted redeploy left rolling, when it runs the current image; else force one."""
    primary = service.primary
    if resuming and primary and primary.rollout_state == "IN_PROGRESS" and not primary.failed_tasks:
        if _runs_current_image(env, service, primary.id):
            env.report.line(f"{service.name}: resuming deployment {primary.id}, already rolling out the current image")
            watch = DeploymentWatch(env, service.name, primary.id, adopted=True, **watch_options)
            watch.latest = service
            return watch
    return _deploy(env, service.name, **watch_options)


def _runs_current_image(env: Env, service: Service, deployment_id: str) -> bool:
    """The deployment's running tasks run the digest their image tag names now in ECR (known, not assumed)."""
    tasks = [t for t in env.ecs.running_tasks([service.name])[service.name] if t.started_by == deployment_id]
    essential = env.ecs.task_definition(service.task_definition).essential
    images = {(c.image, c.image_digest) for t in tasks for c in t.containers if c.name in essential}
    if not images or env.ecr is None:
        return False
    for image, digest in images:
        ref = ecr_image(image)
        if ref is None or not digest or not ref.tag:
            return False
        try:
            if ref.tag not in tags_for_digests(env.ecr, image, {digest}).get(digest, []):
                return False
        except WorkflowError:  # cannot tell: a fresh deployment is the safe choice
            return False
    return True


def _require_still_stopped(env: Env, scheduler: Service) -> None:
    """Nobody started the scheduler while web and worker rolled (a console, Terraform, another tool)."""
    now = env.ecs.service(scheduler.name)
    alive = env.ecs.live_tasks(scheduler.name)
    if now.desired or alive:
        raise OperationFailed(
            f"another operation started {scheduler.name} while web and worker were redeployed "
            f"(desired {now.desired}, {len(alive)} task(s) alive); not starting a second one"
        )


def _deploy(
    env: Env,
    name: str,
    desired_count: int | None = None,
    deployment_configuration: dict | None = None,
    once: bool = False,
    **watch_options,
) -> DeploymentWatch:
    """Force a new deployment of `name` and watch the very deployment UpdateService created."""
    env.before_change()
    service = env.ecs.update_service(
        name, desired_count=desired_count, force_new_deployment=True,
        deployment_configuration=deployment_configuration, once=once,
    )
    if service.primary is None:
        raise OperationFailed(f"UpdateService of {name} answered without a PRIMARY deployment")
    watch = DeploymentWatch(env, name, service.primary.id, **watch_options)
    watch.latest = service
    return watch


def _await_scheduler_stopped(env: Env, scheduler: str, alive: list[Task] | None = None) -> Service:
    """Wait until no scheduler task runs a process, spending about one read call per poll.

    Tasks are listed (two ListTasks, one DescribeTasks) at the start and every RELIST_SECONDS, so a
    scheduler somebody else starts meanwhile is seen; between listings only the known live tasks are
    described. Once none is alive, the service must show desired, running and pending all 0.
    """
    stopped: set[str] = set()
    # Tasks listed just before the stop request need not be listed again: describing them is enough.
    listed_at: float | None = env.poller.clock() if alive else None
    alive = alive or []
    all_told_to_stop = False

    def check():
        nonlocal alive, listed_at, all_told_to_stop
        now = env.poller.clock()
        if listed_at is None or not alive or now - listed_at >= RELIST_SECONDS:
            alive, listed_at = env.ecs.live_tasks(scheduler, stopped), now
            wanted = [t for t in alive if t.desired_status == "RUNNING"]
            if wanted and all_told_to_stop:  # seen all stopping once: this one was started since
                raise OperationFailed(
                    f"another operation started scheduler task {wanted[0].id} while {scheduler} was stopping"
                )
            all_told_to_stop = all_told_to_stop or not wanted
        else:
            current = env.ecs.tasks([t.arn for t in alive])
            stopped.update(t.arn for t in current if t.is_stopped)
            alive = [t for t in current if not t.is_stopped]
            all_told_to_stop = all_told_to_stop or all(t.desired_status == "STOPPED" for t in current)
        for task in alive:
            env.report.task(scheduler, task)
        if alive:
            return None
        service = env.ecs.service(scheduler)
        env.report.service(service)
        # desired 0 must be visible too: right after UpdateService, DescribeServices may still show the old view.
        return service.desired == service.running == service.pending == 0 and service

    def pending():
        tasks = ", ".join(f"{t.id} ({t.last_status})" for t in alive) or "none listed"
        return f"scheduler tasks to stop; still alive: {tasks}"

    def pace(interval):  # a STOPPING task's process is exiting: the last transition is close, look twice as often
        return interval / 2 if alive and all(t.last_status == "STOPPING" for t in alive) else interval

    return env.poller.until(check, pending, pace)
