"""When a rolling deployment we created has succeeded, and when it has failed: the judgement of what one look at it
showed (`judge`, pure), and the watch that gathers those looks from ECS (`DeploymentWatch`).

It succeeds when it has completed and its tasks have kept running for the stability window; success, once declared,
is never taken back, only turned into a failure. It fails when ECS says so (rolloutState FAILED), when it is gone or
no longer PRIMARY (rolled back or superseded), when one of its tasks exits after reaching RUNNING (ECS's failedTasks
never counts those, and rolloutState never leaves COMPLETED), when its failed launches reach the circuit breaker's
threshold (before that ECS is still retrying, and so are we), or when its tasks keep stopping once it has completed:
each such stop starts the window again and as many as the threshold fail it, however ECS's fields classify them.
"""

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from .airflow_schema import says_migration_required
from .ecs import EXITED, FAILED_TO_START, INTERRUPTED, OTHER, REPLACED, SCALED_IN, UNHEALTHY, USER, Ecs, Service, Task
from .errors import OperationFailed
from .logs import tail
from .poller import Poller
from .progress import Reporter, short_deployment

RESCAN_SECONDS = 10.0  # stopped tasks are listed when the deployment's counts move, and at least this often
# Inside their stability windows deployments await nothing but the windows' ends, which are known: they are
# looked at this often (or at the interval, when longer) and at the first end. A crash shows in the counts
# until its replacement runs, and success waits for a last look at the stopped tasks; the calls saved come
# out of the account's shared throttling budget.
WINDOW_POLL_SECONDS = 5.0

# Stops that are not the image's fault: they neither fail a deployment nor start its window again.
NOT_ITS_FAULT = (SCALED_IN, REPLACED, INTERRUPTED, USER)
# "(service x) has stopped 2 running tasks: (task a) (task b)." ECS's word that those tasks had been running.
_STOPPED_RUNNING = re.compile(r"has stopped \d+ running tasks?:(?P<tasks>( \(task [^)\s]+\))+)")
_TASK = re.compile(r"\(task ([^)\s]+)\)")


@dataclass(frozen=True)
class WatchPolicy:
    stability_window: float = 30.0
    max_failed_tasks: int | None = None  # None: the circuit breaker's own threshold
    visibility_grace: float = 30.0  # how long a new deployment or task may be invisible to Describe calls
    log_grace: float = 6.0  # how long a stopped one-off task's or a crashed task's log is read, for late lines


def circuit_breaker_threshold(desired: int, breaker: dict | None = None) -> int:
    """ECS's deployment circuit breaker fails a deployment at this many failed tasks, as the breaker's
    thresholdConfiguration says: a COUNT, or a percentage of the desired count, by default 50% kept within 3..200."""
    config = (breaker or {}).get("thresholdConfiguration") or {}
    kind, value = config.get("type", "BOUNDED_PERCENT"), config.get("value", 50)
    if kind == "COUNT":
        return max(1, value)
    # How ECS rounds a percentage is not documented: rounding up never fails a deployment before ECS would.
    threshold = max(1, math.ceil(desired * value / 100))
    return min(200, max(3, threshold)) if kind == "BOUNDED_PERCENT" else threshold


# --- what one look shows, and what the judgement concludes ---------------------------------------------------

STOPPED_TASKS, OLDER_TASKS, LOG_LINES = "stopped tasks", "older tasks", "log lines"


@dataclass(frozen=True)
class Stopped:
    """A task ECS wants stopped, with its task definition's essential containers (for tasks of other deployments,
    which are only noted once STOPPED, none)."""

    task: Task
    essential: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Observation:
    """One look at the deployment: what DescribeServices showed, when, and what the judgement asked to be gathered
    (None: not gathered in this look)."""

    service: Service
    now: float  # the poller's clock
    wall: datetime  # UTC, to compare with ECS's timestamps
    stopped: tuple[Stopped, ...] | None = None  # listed with desired status STOPPED, less the state's `known`
    older_running: bool | None = None  # a task of an older deployment still runs a process
    log_lines: tuple[str, ...] | None = None  # the last lines of the failing task's container (`Failing.container`)


@dataclass(frozen=True)
class Target:
    """The deployment watched, and what its success requires (see DeploymentWatch)."""

    deployment_id: str
    policy: WatchPolicy
    began: float  # the poller's clock when the watch began
    began_wall: datetime
    drained: bool = True
    old_tasks_stopped: bool = False
    desired: int | None = None
    adopted: bool = False


@dataclass(frozen=True)
class Failing:
    """A failure found, said once the stopped task's last log lines can be read or the log grace has passed."""

    headline: str
    task: Task
    container: str | None  # whose log to quote; None: no process ran, so nothing to wait for
    until: float


@dataclass(frozen=True)
class WatchState:
    target: Target
    seen: bool = False  # the deployment has shown in DescribeServices
    known: frozenset[str] = frozenset()  # stopped tasks dealt with: not described again
    history_pending: bool = False  # an adopted deployment's stops from before the watch are still to be set aside
    counts: tuple[int, int, int, int] | None = None  # at the last look at the stopped tasks; None: look at every poll
    next_scan: float = 0.0
    old_gone: bool = True
    stable_since: float | None = None  # the poller's clock when the current stability window began
    completed_at: datetime | None = None  # wall time the deployment was first seen complete
    stops: int = 0  # its tasks' stops since it completed, for reasons that are its own
    last_failure: str | None = None  # the last failed launch or health check, as reported
    succeeded: bool = False
    failing: Failing | None = None

    @classmethod
    def begin(cls, target: Target) -> "WatchState":
        return cls(target, history_pending=target.adopted, next_scan=target.began, old_gone=not target.old_tasks_stopped)


@dataclass(frozen=True)
class Pending:
    lines: tuple[str, ...] = ()  # progress to report


@dataclass(frozen=True)
class Succeeded:
    lines: tuple[str, ...] = ()


@dataclass(frozen=True)
class Failed:
    reason: str
    lines: tuple[str, ...] = ()


@dataclass(frozen=True)
class Needs:
    """Gather `what` (STOPPED_TASKS, OLDER_TASKS or LOG_LINES) into the same observation, and judge it again."""

    what: str
    lines: tuple[str, ...] = ()


Verdict = Pending | Succeeded | Failed | Needs


def judge(state: WatchState, seen: Observation) -> tuple[WatchState, Verdict]:
    """What one look at the deployment means, given what earlier looks left in `state`. No call, no clock: asked
    again with what a Needs verdict named gathered into `seen`, it never asks for that again."""
    if state.failing:
        return _conclude(state, state.failing, seen, [])
    target, service, now = state.target, seen.service, seen.now
    deployment = service.deployment(target.deployment_id)
    if deployment is None:
        if not state.seen and now - target.began < target.policy.visibility_grace:
            return state, Pending()  # UpdateService's result may be invisible to DescribeServices for a moment
        return state, Failed(_gone(state, service))
    state = replace(state, seen=True)
    if deployment.rollout_state == "FAILED":
        reason = deployment.rollout_reason or "no reason given"
        return state, Failed(f"{service.name}: deployment {deployment.id} failed: {reason}{_aftermath(state, service)}")
    if deployment.status != "PRIMARY":
        return state, Failed(_gone(state, service))
    if target.desired is not None and service.desired != target.desired:
        return state, Failed(
            f"another operation set {service.name}'s desired count to {service.desired} while this one "
            f"waited for {target.desired}"
        )
    threshold = target.policy.max_failed_tasks or circuit_breaker_threshold(deployment.desired, service.circuit_breaker)
    counts = (deployment.running, deployment.pending, deployment.failed_tasks, deployment.desired)
    lines: list[str] = []
    stopping = False
    if seen.stopped is None:
        if counts != state.counts or now >= state.next_scan:
            return state, Needs(STOPPED_TASKS)
    else:
        state, stopping = _look_at_stopped(state, seen, seen.stopped, counts, threshold, lines)
        if state.failing:
            return _conclude(state, state.failing, seen, lines)
    if deployment.failed_tasks >= threshold:
        why = f"; last: {state.last_failure}" if state.last_failure else _last_event(service)
        return state, Failed(
            f"{service.name}: {deployment.failed_tasks} tasks of deployment {deployment.id} failed "
            f"(threshold {threshold}){why}{_aftermath(state, service)}",
            tuple(lines),
        )
    if state.succeeded:
        return state, Succeeded(tuple(lines))
    ready = service.has_completed(deployment.id) if target.drained else service.is_serving(deployment.id)
    if ready and not state.old_gone:
        if seen.older_running is None:
            return state, Needs(OLDER_TASKS, tuple(lines))
        state = replace(state, old_gone=not seen.older_running)
    if not (ready and state.old_gone):
        return replace(state, stable_since=None), Pending(tuple(lines))
    window = target.policy.stability_window
    since = state.stable_since
    if since is None:
        since = now
        state = replace(state, stable_since=since, completed_at=state.completed_at or seen.wall)
        if window > 0:
            lines.append(f"{service.name}: deployment complete; watching its tasks for {window:g}s")
    if now < since + window:
        return state, Pending(tuple(lines))
    if seen.stopped is None:
        # Success rests on a look at the stopped tasks as the window ends: a task that crashed since the last
        # look, and whose replacement already runs, leaves the counts as they were.
        return state, Needs(STOPPED_TASKS, tuple(lines))
    if stopping:
        return state, Pending(tuple(lines))  # one of ours is still stopping, for a reason only its exit codes will tell
    return replace(state, succeeded=True), Succeeded(tuple(lines))


def _look_at_stopped(state: WatchState, seen: Observation, stopped: tuple[Stopped, ...], counts: tuple[int, int, int, int],
                     threshold: int, lines: list[str]) -> tuple[WatchState, bool]:
    """Judge the stopped tasks listed: a task of ours that ran and exited fails the deployment (`failing`); one that
    stopped for a reason of its own since the deployment completed starts the window again, or fails it at the
    threshold; the others are noted. True when one of ours is still stopping, to be looked at again at every poll
    until it can be judged. Progress goes to `lines`."""
    target, service = state.target, seen.service
    known = set(state.known)
    if state.history_pending:  # told to stop before the watch began, even if still stopping
        known.update(s.task.arn for s in stopped if _stopped_before(s.task, target.began_wall))
    state = replace(state, history_pending=False)
    stopping = False
    for task, essential in ((s.task, s.essential) for s in stopped):
        if task.arn in known:
            continue
        if task.started_by != target.deployment_id:
            if task.is_stopped:
                known.add(task.arn)
            continue
        cause = stop_cause(task, service)
        if not (task.is_stopped or _judged_while_stopping(task, cause, essential)):
            stopping = True
            continue
        # A stop ECS or a person caused (scale-in, Spot, StopTask) is not the image's fault; an exit is.
        if cause == EXITED or (cause == OTHER and task.failure(essential)):
            return replace(state, known=frozenset(known), failing=_crash(state, seen, task, essential)), False
        note = f"task {task.id} {cause}: {task.stopped_reason or 'no reason given'}"
        if cause == FAILED_TO_START and (codes := _nonzero_exits(task, essential)):
            # an essential container exited before the task reached RUNNING, or so ECS's fields say
            note += " (" + ", ".join(f"{name} exited with code {code}" for name, code in codes.items()) + ")"
        if cause in (FAILED_TO_START, UNHEALTHY):
            state = replace(state, last_failure=note)
        lines.append(f"{service.name}: {note}")
        known.add(task.arn)
        if cause in NOT_ITS_FAULT or state.completed_at is None or not _stopped_since(task, state.completed_at):
            continue
        # Complete, then a task stopped for a reason of its own: not stable, however ECS classified the stop.
        state = replace(state, stops=state.stops + 1)
        if state.stops >= threshold:
            headline = (f"{service.name}: tasks of deployment {target.deployment_id} keep stopping: {state.stops} stopped "
                        f"since it completed (threshold {threshold}); last: {note}")
            failing = Failing(headline, task, _exited(task, essential), _read_until(state, seen, task))
            return replace(state, known=frozenset(known), failing=failing), False
        lines.append(f"{service.name}: a task stopped after deployment {short_deployment(target.deployment_id)} "
                     f"completed ({state.stops} of the {threshold} such stops that fail it)"
                     + ("" if state.succeeded else "; its stability window starts again"))
        if not state.succeeded:
            state = replace(state, stable_since=None)
    state = replace(state, known=frozenset(known), counts=None if stopping else counts, next_scan=seen.now + RESCAN_SECONDS)
    return state, stopping


def stop_cause(task: Task, service: Service) -> str:
    """Why a task stopped (ecs.py's terms), from every signal ECS gives: an exit that its fields file as a failed
    launch for want of startedAt is a crash when a service event names it among the running tasks that stopped."""
    cause = task.stop_cause
    if cause == FAILED_TO_START and task.stop_code != "TaskFailedToStart" and ran(task, service):
        return EXITED
    return cause


def ran(task: Task, service: Service) -> bool:
    """Whether the task had reached RUNNING: startedAt says so; without it, a service event that names it among
    the running tasks ECS stopped. A task whose image pull began and never ended never ran."""
    if task.reached_running:
        return True
    if task.pull_started_at is not None and task.pull_stopped_at is None:
        return False
    return any(task.id in stopped_running(event.message) for event in service.events)


def stopped_running(message: str) -> set[str]:
    """The task ids a "has stopped N running tasks" service event names."""
    found = _STOPPED_RUNNING.search(message)
    return set(_TASK.findall(found.group("tasks"))) if found else set()


def _crash(state: WatchState, seen: Observation, task: Task, essential: frozenset[str]) -> Failing:
    codes = _nonzero_exits(task, essential)
    container, code = next(iter(codes.items()), (next(iter(sorted(essential)), "?"), 0))
    headline = (
        f"{seen.service.name}: task {task.id} of deployment {state.target.deployment_id} exited after it was running: "
        f"essential container {container} exited with code {code} ({task.stopped_reason or 'no reason given'})"
    )
    return Failing(headline, task, container, _read_until(state, seen, task))


def _read_until(state: WatchState, seen: Observation, task: Task) -> float:
    """Judged before STOPPED, its last lines may still be on their way from the awslogs driver."""
    return seen.now if task.is_stopped else seen.now + state.target.policy.log_grace


def _exited(task: Task, essential: frozenset[str]) -> str | None:
    """The essential container whose log says why the task stopped: the first that failed, else the first that
    exited; None when none ran."""
    codes = {name: code for name, code in sorted(task.exit_codes(essential).items()) if code is not None}
    return next((name for name, code in codes.items() if code != 0), next(iter(codes), None))


def _conclude(state: WatchState, failing: Failing, seen: Observation, lines: list[str]) -> tuple[WatchState, Verdict]:
    """Fail on the failure found, quoting the container's last log lines once they can be read, or once the log
    grace has passed; until then, the deployment is still pending."""
    if failing.container is not None and seen.log_lines is None:
        return state, Needs(LOG_LINES, tuple(lines))
    log = seen.log_lines or ()
    if failing.container is not None and not log and seen.now < failing.until:
        return state, Pending(tuple(lines))
    message = failing.headline
    if log:
        message += f"\n  last log lines of {failing.container}:\n    " + "\n    ".join(log)
    if any(says_migration_required(line) for line in log):
        message += "\n" + SCHEMA_OUT_OF_STEP
    return state, Failed(message + _aftermath(state, seen.service), tuple(lines))


# What "Database migration required" in a component's log means, and the ways out.
SCHEMA_OUT_OF_STEP = (
    "  cause: the image's Airflow version and the database's schema are out of step: Airflow components that "
    "check migrations exit at start when they differ, in either direction.\n"
    "  way out (commands with this one's --cluster and AWS options): a newer image needs the migration first "
    "(`redeploy --migrate`); an older one needs the schema moved back (`rollback --downgrade-db`) or the release "
    "that matches the database"
)


def _gone(state: WatchState, service: Service) -> str:
    deployment_id = state.target.deployment_id
    primary = service.primary
    now_running = f"; ECS now deploys {primary.id}" if primary else ""
    if not state.seen:
        return f"{service.name}: deployment {deployment_id} never appeared{now_running}{_last_event(service)}"
    how = "rolled back" if service.circuit_breaker.get("rollback") else "superseded by another deployment"
    return f"{service.name}: deployment {deployment_id} is no longer deployed ({how}){now_running}{_last_event(service)}"


def _aftermath(state: WatchState, service: Service) -> str:
    """What ECS does next on its own, so the operator knows whether anything still changes."""
    breaker = service.circuit_breaker
    if breaker.get("enable"):
        then = "rolls back to the last completed deployment" if breaker.get("rollback") else "stops the deployment"
        return f"\n  ECS's circuit breaker {then} once its own threshold is reached"
    if service.older_running(state.target.deployment_id):
        return "\n  ECS keeps trying to deploy in the background; its old tasks keep serving meanwhile"
    return "\n  no old task is left: ECS keeps replacing this deployment's tasks with the same image"


def _nonzero_exits(task: Task, essential: frozenset[str]) -> dict[str, int]:
    return {name: code for name, code in task.exit_codes(essential).items() if code not in (0, None)}


def _stopped_before(task: Task, moment: datetime) -> bool:
    """Told to stop by `moment`, by ECS's stoppingAt. The API reference sets it as the task turns STOPPING, so a
    task still deactivating (draining behind a load balancer) may have none: that one counts as told to stop
    before, since judging an old crash would fail a command for good, and a crash loop crashes again."""
    return task.stopping_at <= moment if task.stopping_at else True


def _stopped_since(task: Task, moment: datetime) -> bool:
    """Told to stop (or, lacking stoppingAt, its containers stopped) at or after `moment`; with neither time, the
    stop counts as recent: a deployment is not called stable over a stop it cannot place."""
    when = task.stopping_at or task.execution_stopped_at
    return when is None or when >= moment


def _judged_while_stopping(task: Task, cause: str, essential: frozenset[str]) -> bool:
    """Whether a task still stopping can be judged already: its stop code says why it stops, or the essential
    container that exited has its exit code. Waiting for STOPPED instead would rescan the service at every poll
    while the task drains behind a load balancer, for minutes."""
    if cause == OTHER:
        return False  # judged by exit codes, which come with STOPPED
    return cause != EXITED or bool(_nonzero_exits(task, essential))


def _last_event(service: Service) -> str:
    return f"; last event: {service.events[0].message}" if service.events else ""


# --- the watch: the calls that gather each look ------------------------------------------------------------


class WatchEnv(Protocol):
    """What a watch uses of an operation's Env."""

    ecs: Ecs
    poller: Poller
    report: Reporter
    policy: WatchPolicy
    logs: Callable[[str | None], Any] | None


class DeploymentWatch:
    """One deployment we created, followed poll by poll through what DescribeServices shows of it."""

    def __init__(self, env: WatchEnv, service: str, deployment_id: str, drained: bool = True,
                 old_tasks_stopped: bool = False, desired: int | None = None, adopted: bool = False):
        """`drained`: ready only once older deployments are gone, not merely deregistering behind a load
        balancer; `old_tasks_stopped`: ready only once no task of an older deployment still runs a process;
        `desired`: the desired count this command set, which nobody else may change meanwhile; `adopted`: a
        deployment this command did not create, whose tasks that stopped before it looked are history."""
        self.env, self.service, self.id = env, service, deployment_id
        self.latest: Service | None = None
        target = Target(deployment_id, env.policy, env.poller.clock(), env.report.now(), drained, old_tasks_stopped,
                        desired, adopted)
        self.state = WatchState.begin(target)
        # Older deployments' tasks whose process may still run, once listed: an older deployment starts no task,
        # so from then on describing these is enough (one read a poll, not three).
        self._older: list[Task] | None = None

    @property
    def policy(self) -> WatchPolicy:
        return self.state.target.policy

    @property
    def stable_since(self) -> float | None:
        return self.state.stable_since

    def observe(self, service: Service) -> bool:
        """True once the deployment is complete and stable; raises OperationFailed when it cannot succeed. A call
        that fails while gathering leaves what was not judged to the next poll."""
        self.latest = service
        seen = Observation(service, self.env.poller.clock(), self.env.report.now())
        while True:
            self.state, verdict = judge(self.state, seen)
            for line in verdict.lines:
                self.env.report.line(line)
            if isinstance(verdict, Failed):
                raise OperationFailed(verdict.reason)
            if not isinstance(verdict, Needs):
                return isinstance(verdict, Succeeded)
            seen = self._gather(verdict.what, seen)

    def _gather(self, what: str, seen: Observation) -> Observation:
        ecs, name = self.env.ecs, seen.service.name
        if what == STOPPED_TASKS and seen.stopped is None:
            tasks = ecs.stopped_tasks(name, set(self.state.known))
            mine = {t.task_definition for t in tasks if t.started_by == self.id}
            essential = {arn: ecs.task_definition(arn).essential for arn in mine}
            return replace(seen, stopped=tuple(Stopped(t, essential.get(t.task_definition, frozenset())) for t in tasks))
        if what == OLDER_TASKS and seen.older_running is None:
            if self._older is None:
                self._older = [t for t in ecs.live_tasks(name) if t.started_by != self.id]
            elif self._older:
                self._older = [t for t in ecs.tasks([t.arn for t in self._older]) if not t.process_ended]
            return replace(seen, older_running=bool(self._older))
        failing = self.state.failing
        if what == LOG_LINES and seen.log_lines is None and failing and failing.container:
            task, container = failing.task, failing.container
            definition = ecs.task_definition(task.task_definition).container(container)
            lines = tail(self.env, definition.log_options, container, task.id) if definition else []
            return replace(seen, log_lines=tuple(lines))
        raise RuntimeError(f"the judgement of {self.id} asked again for {what}")  # a defect: it would loop

    def window_end(self) -> float | None:
        """When the stability window ends, on the poller's clock; None until it began, while a failure is reported,
        and while one of ours is still stopping (looked at every poll)."""
        state = self.state
        if state.stable_since is None or state.failing or state.counts is None:
            return None
        return state.stable_since + self.policy.stability_window

    def draining(self) -> int:
        """Tasks of older deployments not stopped yet (DEACTIVATING ones count in no deployment's counts)."""
        if self.latest is None or len(self.latest.deployments) < 2:
            return 0
        return sum(t.started_by != self.id for t in self.env.ecs.live_tasks(self.service))

    def pending(self) -> str:
        service = self.latest
        deployment = service.deployment(self.id) if service else None
        name = f"{self.service} deploy {short_deployment(self.id)}"
        if service is None or deployment is None:
            return f"{name} (not visible yet)"
        if self.stable_since is not None:
            watched = self.env.poller.clock() - self.stable_since
            return f"{name} (complete; stable for {watched:.0f} of {self.policy.stability_window:g}s)"
        older = len(service.deployments) - 1
        return (f"{name} ({deployment.running}/{deployment.desired} running, {deployment.pending} pending, "
                f"{older} older draining; then stable for {self.policy.stability_window:g}s)")


def await_deployments(env: WatchEnv, watches: list[DeploymentWatch],
                      required: list[DeploymentWatch] | None = None) -> list[Service]:
    """Wait until the `required` watches (all by default) have succeeded; fail as soon as any watched one cannot."""
    if not watches:
        return []
    must = watches if required is None else required
    names = [w.service for w in watches]

    def check() -> list[Service]:
        services = env.ecs.services(names)
        done = set()
        for service, watch in zip(services, watches, strict=True):
            env.report.service(service, watch.id)
            if watch.observe(service):
                done.add(watch.id)
        return services if all(w.id in done for w in must) else []

    def pending() -> str:
        return "; ".join(w.pending() for w in must)

    def pace(interval: float) -> float:
        ends = [w.window_end() for w in watches]
        if None in ends:
            return interval  # a rollout in progress: transitions are due
        now = env.poller.clock()
        ahead = [end - now for end in ends if end is not None and end > now]
        return min(max(interval, WINDOW_POLL_SECONDS), *ahead) if ahead else interval

    return env.poller.until(check, pending, pace)
