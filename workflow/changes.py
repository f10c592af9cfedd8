"""The changes operations make to services, each safe to interrupt and never repeated blindly: check before
changing, scale to zero and wait until no process runs, force a deployment, start from zero.

Every change goes through `change`, which records what may have happened while the call is in flight, so an
interrupt says it (Env.recovery).
"""

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TypeVar

from .deployments import DeploymentWatch
from .ecr import tags_for_digests
from .ecs import ROLLING_UPDATE, Service, Task
from .env import Env
from .errors import ConfigurationError, OperationFailed, Refused, Transient, WorkflowError
from .images import ecr_image
from .lease import LeaseHeld
from .tag_keys import STOPPED_COUNT_TAG

T = TypeVar("T")
RELIST_SECONDS = 10.0
# Sent with every start and stop of the scheduler, so ECS itself stops a scheduler before it starts another:
# for a retried call, for two operators at once, and for its own replacement of an unhealthy task.
SCHEDULER_DEPLOYMENT = {"maximumPercent": 100, "minimumHealthyPercent": 0}
# On a service this tool scaled to zero whose desired count was not 1: the count to start it with again.


def preflight(env: Env, names: list[str]) -> list[Service]:
    """Every service exists, is ACTIVE and deploys by rolling update; checked before anything changes. Described
    with their tags: a count this tool recorded when it stopped one is among them."""
    services = env.ecs.services(names, tags=True)
    for service in services:
        env.report.service(service)
    others = [s for s in services if s.controller != ROLLING_UPDATE]
    if others:
        raise Refused(
            "; ".join(f"{s.name} uses the {s.controller} deployment controller" for s in others)
            + ": only services with the ECS (rolling update) controller can be force-deployed; nothing was changed"
        )
    return services


def rehearse_reads(env: Env, services: Iterable[Service]) -> None:
    """Make once every read the operation will need later, so a missing permission fails before any change."""
    for service in services:
        env.ecs.task_definition(service.task_definition)
        stopped = env.ecs.task_arns(service.name, "STOPPED")
        env.ecs.tasks((env.ecs.task_arns(service.name, "RUNNING") or stopped)[:1])


def change(env: Env, requested: str, call: Callable[[], T]) -> T:
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


def one_at_a_time(service: Service) -> dict:
    """The service's deployment configuration (circuit breaker and alarms kept) with SCHEDULER_DEPLOYMENT."""
    return {**service.deployment_configuration, **SCHEDULER_DEPLOYMENT}


def stopped_count(service: Service) -> int | None:
    """The desired count a service had when this tool scaled it to zero, when it was not 1."""
    text = service.tags.get(STOPPED_COUNT_TAG, "")
    return int(text) if text.isdigit() and int(text) > 0 else None


def scale_to_zero(env: Env, services: list[Service], what: str, scheduler: bool) -> list[Service]:
    """Set each service's desired count to 0, remembering a count other than 1 in a tag on it (for the start).

    Schedulers also get SCHEDULER_DEPLOYMENT, so a later start stops one task before it starts another.
    """
    stopped = []
    for service in services:
        if service.desired == 0:
            stopped.append(service)
            continue
        env.before_change()
        if service.desired != 1:
            env.ecs.tag(service.arn, [{"key": STOPPED_COUNT_TAG, "value": str(service.desired)}])
        config = one_at_a_time(service) if scheduler else None

        def request(name: str = service.name, configuration: dict | None = config) -> Service:
            return env.ecs.update_service(name, desired_count=0, deployment_configuration=configuration)

        stopped.append(change(env, f"{what} may be stopping: its stop was requested", request))
    return stopped


def deploy(env: Env, name: str, desired_count: int | None = None, deployment_configuration: dict | None = None,
           once: bool = False, **watch_options) -> DeploymentWatch:
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


def start_from_zero(env: Env, service: Service, count: int, what: str, config: dict | None) -> DeploymentWatch:
    """Start `count` tasks of a service no task of which is alive, asking again after an ambiguous failure only
    once a look shows the request was not applied, until the wait's deadline.

    Repeating a start whose answer was lost would make a second deployment, and more tasks than `count`. Right
    after UpdateService, DescribeServices may still show the old view, so each look lasts the visibility grace: a
    new PRIMARY deployment at `count`, or a task wanted RUNNING, shows the start was applied.
    """
    requested = f"{what} may be starting: its start was requested"

    def ask() -> DeploymentWatch:
        return deploy(env, service.name, desired_count=count, deployment_configuration=config, desired=count, once=True)

    deadline = env.poller.clock() + env.poller.timeout
    while True:
        try:
            return change(env, requested, ask)
        except Transient as error:
            if env.poller.clock() >= deadline:
                raise OperationFailed(
                    f"cannot tell whether {service.name}'s start was applied ({error}); check with `status` before "
                    "starting it again"
                ) from None
            env.report.line(f"the start request may or may not have been applied ({error}); looking before asking again")
        applied = _find_start(env, service, count)
        if applied:
            env.report.line(f"it was applied: deployment {applied} starts {what}")
            return DeploymentWatch(env, service.name, applied, desired=count)


def _find_start(env: Env, service: Service, count: int) -> str | None:
    """The deployment a start request whose answer was lost created, if it shows within the grace."""
    before = service.primary.id if service.primary else None
    deadline = env.poller.clock() + env.policy.visibility_grace
    stopped: set[str] = set()  # described once, not on every look

    def look() -> tuple[str | None] | None:  # (deployment id or None) once decided; None to keep looking
        now = env.ecs.service(service.name)
        if now.desired == count and now.primary and now.primary.id != before:
            return (now.primary.id,)
        live = env.ecs.live_tasks(service.name, stopped)
        wanted = [t for t in live if t.desired_status == "RUNNING" and t.started_by]
        if wanted:
            return (wanted[0].started_by,)  # a service task's startedBy is its deployment's id
        return (None,) if env.poller.clock() >= deadline else None

    return env.poller.until(look, lambda: f"{service.name}'s start request to show")[0]


def resume_or_deploy(env: Env, service: Service, resuming: datetime | None, **watch_options) -> DeploymentWatch:
    """Take over the deployment an interrupted redeploy began (after `resuming`, when its scheduler stopped) when it
    runs the current image, rolling or already complete; else force a new one."""
    primary = service.primary
    began = primary.created_at if primary else None
    if resuming and primary and began and began >= resuming and not primary.failed_tasks \
            and primary.rollout_state in ("IN_PROGRESS", "COMPLETED") and _runs_current_image(env, service, primary.id):
        how = "already rolling out" if primary.rollout_state == "IN_PROGRESS" else "already rolled out"
        env.report.line(f"{service.name}: resuming deployment {primary.id}, {how} the current image")
        watch = DeploymentWatch(env, service.name, primary.id, adopted=True, **watch_options)
        watch.latest = service
        return watch
    return deploy(env, service.name, **watch_options)


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


def require_still_stopped(env: Env, services: list[Service], what: str, during: str) -> None:
    """Nobody started them while `during` (a console, Terraform, another tool): refuse to start more."""
    for service in services:
        now = env.ecs.service(service.name)
        alive = env.ecs.live_tasks(service.name)
        if now.desired or alive:
            raise OperationFailed(
                f"another operation started {service.name} while {during} "
                f"(desired {now.desired}, {len(alive)} task(s) alive); not starting a second {what}"
            )


def await_stopped(env: Env, names: list[str], what: str, alive: list[Task] | None = None) -> list[Service]:
    """Wait until no task of these services runs a process, spending about one read call per poll.

    Tasks are listed (two ListTasks per service, one DescribeTasks) at the start and every RELIST_SECONDS, so a
    task somebody else starts meanwhile is seen; between listings only the known live tasks are described. Once
    none is alive, each service must show desired, running and pending all 0.
    """
    stopped: set[str] = set()
    # Tasks listed just before the stop request need not be listed again: describing them is enough.
    listed_at: float | None = env.poller.clock() if alive else None
    live: list[Task] = list(alive or [])
    all_told_to_stop = False

    def relist() -> list[Task]:
        return [task for name in names for task in env.ecs.live_tasks(name, stopped)]

    def check() -> list[Service] | None:
        nonlocal live, listed_at, all_told_to_stop
        now = env.poller.clock()
        if listed_at is None or not live or now - listed_at >= RELIST_SECONDS:
            live, listed_at = relist(), now
            wanted = [t for t in live if t.desired_status == "RUNNING"]
            if wanted and all_told_to_stop:  # seen all stopping once: this one was started since
                raise OperationFailed(
                    f"another operation started {what} task {wanted[0].id} while {_service_of(wanted[0], what)} "
                    "was stopping"
                )
            all_told_to_stop = all_told_to_stop or not wanted
        else:
            current = env.ecs.tasks([t.arn for t in live])
            stopped.update(t.arn for t in current if t.process_ended)
            live = [t for t in current if not t.process_ended]
            all_told_to_stop = all_told_to_stop or all(t.desired_status == "STOPPED" for t in current)
        for task in live:
            env.report.task(_service_of(task, what), task)
        if live:
            return None
        services = env.ecs.services(names)
        for service in services:
            env.report.service(service)
        # desired 0 must be visible too: right after UpdateService, DescribeServices may still show the old view.
        return services if all(s.desired == s.running == s.pending == 0 for s in services) else None

    def pending() -> str:
        tasks = ", ".join(f"{t.id} ({t.last_status})" for t in live) or "none listed"
        return f"{what} tasks to stop; still alive: {tasks}"

    def pace(interval: float) -> float:  # a STOPPING task's process is exiting: the last transition is close
        return interval / 2 if live and all(t.last_status == "STOPPING" for t in live) else interval

    return env.poller.until(check, pending, pace)


def _service_of(task: Task, otherwise: str) -> str:
    """The service a task belongs to, from its group (`service:<name>`)."""
    return task.group.removeprefix("service:") if task.group.startswith("service:") else otherwise
