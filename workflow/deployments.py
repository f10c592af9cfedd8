"""When a rolling deployment we created has succeeded, and when it has failed.

It succeeds when it has completed and its tasks have kept running for the stability window. It fails
when ECS says so (rolloutState FAILED), when it is gone or no longer PRIMARY (rolled back or superseded),
when one of its tasks exits after reaching RUNNING (ECS's failedTasks never counts those, and rolloutState
never leaves COMPLETED), or when its failed launches reach the circuit breaker's threshold: before that
ECS is still retrying, and so are we.
"""

import math
from dataclasses import dataclass
from datetime import datetime

from .ecs import EXITED, FAILED_TO_START, OTHER, UNHEALTHY, Service, Task
from .errors import OperationFailed
from .logs import tail
from .progress import short_deployment

RESCAN_SECONDS = 10.0  # stopped tasks are listed when the deployment's counts move, and at least this often
# Inside their stability windows deployments await nothing but the windows' ends, which are known: they are
# looked at this often (or at the interval, when longer) and at the first end. A crash shows in the counts
# until its replacement runs, and success waits for a last look at the stopped tasks; the calls saved come
# out of the account's shared throttling budget.
WINDOW_POLL_SECONDS = 5.0


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


class DeploymentWatch:
    """One deployment we created, followed poll by poll through what DescribeServices shows of it."""

    def __init__(self, env, service: str, deployment_id: str, drained: bool = True, old_tasks_stopped: bool = False,
                 desired: int | None = None, adopted: bool = False):
        """`drained`: ready only once older deployments are gone, not merely deregistering behind a load
        balancer; `old_tasks_stopped`: ready only once no task of an older deployment still runs a process;
        `desired`: the desired count this command set, which nobody else may change meanwhile; `adopted`: a
        deployment this command did not create, whose tasks that stopped before it looked are history."""
        self.env, self.service, self.id = env, service, deployment_id
        self.drained, self.old_tasks_stopped, self.desired = drained, old_tasks_stopped, desired
        self.policy: WatchPolicy = env.policy
        self.created = env.poller.clock()
        self.created_at = env.report.now()  # wall time, to tell a stop from before the watch by ECS's stoppingAt
        self.seen = False
        self.known_stopped: set[str] = set()
        self.last_failure: str | None = None  # the last failed launch or health check, as reported
        self.stable_since: float | None = None
        self._end_checked = False  # the stopped tasks were looked at as the window ended
        self.latest: Service | None = None
        self._counts: tuple | None = None
        self._next_scan = self.created
        self._old_gone = not old_tasks_stopped
        self._dead: set[str] = set()
        self._history_pending = adopted
        self._crashed: tuple[Task, frozenset[str], float] | None = None  # (task, essential, read its log until)

    def observe(self, service: Service) -> bool:
        """True once the deployment is complete and stable; raises OperationFailed when it cannot succeed."""
        now = self.env.poller.clock()
        self.latest = service
        if self._crashed:
            return self._report_crash(service, now)
        deployment = service.deployment(self.id)
        if deployment is None:
            if not self.seen and now - self.created < self.policy.visibility_grace:
                return False  # UpdateService's result may be invisible to DescribeServices for a moment
            raise OperationFailed(self._gone(service))
        self.seen = True
        if deployment.rollout_state == "FAILED":
            reason = deployment.rollout_reason or "no reason given"
            raise OperationFailed(f"{service.name}: deployment {self.id} failed: {reason}{self._aftermath(service)}")
        if deployment.status != "PRIMARY":
            raise OperationFailed(self._gone(service))
        if self.desired is not None and service.desired != self.desired:
            raise OperationFailed(
                f"another operation set {service.name}'s desired count to {service.desired} while this one "
                f"waited for {self.desired}"
            )
        counts = (deployment.running, deployment.pending, deployment.failed_tasks, deployment.desired)
        scanned = counts != self._counts or now >= self._next_scan
        stopping = scanned and self._scan(service, counts, now)
        if self._crashed:
            return self._report_crash(service, now)
        threshold = self.policy.max_failed_tasks or circuit_breaker_threshold(deployment.desired, service.circuit_breaker)
        if deployment.failed_tasks >= threshold:
            why = f"; last: {self.last_failure}" if self.last_failure else _last_event(service)
            raise OperationFailed(
                f"{service.name}: {deployment.failed_tasks} tasks of deployment {self.id} failed "
                f"(threshold {threshold}){why}{self._aftermath(service)}"
            )
        if not self._ready(service):
            self.stable_since, self._end_checked = None, False
            return False
        if self.stable_since is None:
            self.stable_since = now
            if self.policy.stability_window > 0:
                self.env.report.line(
                    f"{service.name}: deployment complete; watching its tasks for {self.policy.stability_window:g}s"
                )
        if now < self.stable_since + self.policy.stability_window:
            return False
        if not (scanned or self._end_checked):
            # Success rests on a look at the stopped tasks as the window ends: a task that crashed since the last
            # look, and whose replacement already runs, leaves the counts as they were.
            stopping = self._scan(service, counts, now)
            if self._crashed:
                return self._report_crash(service, now)
        if stopping:
            return False  # one of ours is still stopping, for a reason only its exit codes will tell
        self._end_checked = True
        return True

    def _scan(self, service: Service, counts: tuple, now: float) -> bool:
        """Look at the stopped tasks; True when one of ours is still stopping, to be looked at again at every poll
        until it has stopped. A failing call leaves the scan due at the next poll."""
        stopping = self._check_stopped_tasks(service, now)
        self._counts, self._next_scan = (None if stopping else counts), now + RESCAN_SECONDS
        return stopping

    def window_end(self) -> float | None:
        """When the stability window ends, on the poller's clock; None until it began, while a crash is reported,
        and while one of ours is still stopping (looked at every poll)."""
        if self.stable_since is None or self._crashed or self._counts is None:
            return None
        return self.stable_since + self.policy.stability_window

    def _ready(self, service: Service) -> bool:
        ready = service.has_completed(self.id) if self.drained else service.is_serving(self.id)
        if ready and not self._old_gone:
            alive = self.env.ecs.live_tasks(service.name, self._dead)
            self._old_gone = all(t.started_by == self.id for t in alive)
        return ready and self._old_gone

    def draining(self) -> int:
        """Tasks of older deployments not stopped yet (DEACTIVATING ones count in no deployment's counts)."""
        if self.latest is None or len(self.latest.deployments) < 2:
            return 0
        return sum(t.started_by != self.id for t in self.env.ecs.live_tasks(self.service))

    def pending(self) -> str:
        service = self.latest
        deployment = service and service.deployment(self.id)
        name = f"{self.service} deploy {short_deployment(self.id)}"
        if deployment is None:
            return f"{name} (not visible yet)"
        if self.stable_since is not None:
            watched = self.env.poller.clock() - self.stable_since
            return f"{name} (complete; stable for {watched:.0f} of {self.policy.stability_window:g}s)"
        older = len(service.deployments) - 1
        return f"{name} ({deployment.running}/{deployment.desired} running, {deployment.pending} pending, {older} older draining)"

    def _check_stopped_tasks(self, service: Service, now: float) -> bool:
        """Note a task of ours that ran and exited (`_crashed`), and those ECS counts as failed and replaces.

        True when one of ours is still stopping, to be judged once STOPPED.
        """
        stopping = False
        stopped = self.env.ecs.stopped_tasks(service.name, self.known_stopped)
        if self._history_pending:  # told to stop before the watch began, even if still stopping
            self._history_pending = False
            self.known_stopped.update(t.arn for t in stopped if _stopped_before(t, self.created_at))
            stopped = [t for t in stopped if t.arn not in self.known_stopped]
        for task in stopped:
            if task.started_by != self.id:
                if task.is_stopped:
                    self.known_stopped.add(task.arn)
                continue
            essential = self.env.ecs.task_definition(task.task_definition).essential
            if not (task.is_stopped or _judged_while_stopping(task, essential)):
                stopping = True
                continue
            # A stop ECS or a person caused (scale-in, Spot, StopTask) is not the image's fault; an exit is.
            if task.stop_cause == EXITED or (task.stop_cause == OTHER and task.failure(essential)):
                # Judged before STOPPED, its last lines may still be on their way from the awslogs driver.
                self._crashed = (task, essential, now if task.is_stopped else now + self.policy.log_grace)
                return False
            note = f"task {task.id} {task.stop_cause}: {task.stopped_reason or 'no reason given'}"
            if task.stop_cause == FAILED_TO_START and (codes := _nonzero_exits(task, essential)):
                # an essential container exited before the task reached RUNNING
                note += " (" + ", ".join(f"{name} exited with code {code}" for name, code in codes.items()) + ")"
            if task.stop_cause in (FAILED_TO_START, UNHEALTHY):
                self.last_failure = note
            self.env.report.line(f"{service.name}: {note}")
            self.known_stopped.add(task.arn)  # only once judged: a call failing above means it is judged again
        return stopping

    def _report_crash(self, service: Service, now: float) -> bool:
        """Fail on the crash found, quoting the container's last log lines once they can be read, or once
        the log grace has passed; until then, the deployment is still pending."""
        task, essential, until = self._crashed
        codes = _nonzero_exits(task, essential)
        container, code = next(iter(codes.items()), (next(iter(sorted(essential)), "?"), 0))
        definition = self.env.ecs.task_definition(task.task_definition).container(container)
        lines = tail(self.env, definition.log_options, container, task.id) if definition else []
        if not lines and now < until:
            return False
        message = (
            f"{service.name}: task {task.id} of deployment {self.id} exited after it was running: "
            f"essential container {container} exited with code {code} ({task.stopped_reason or 'no reason given'})"
        )
        if lines:
            message += f"\n  last log lines of {container}:\n    " + "\n    ".join(lines)
        raise OperationFailed(message + self._aftermath(service))

    def _gone(self, service: Service) -> str:
        primary = service.primary
        now_running = f"; ECS now deploys {primary.id}" if primary else ""
        if not self.seen:
            return f"{service.name}: deployment {self.id} never appeared{now_running}{_last_event(service)}"
        how = "rolled back" if service.circuit_breaker.get("rollback") else "superseded by another deployment"
        return f"{service.name}: deployment {self.id} is no longer deployed ({how}){now_running}{_last_event(service)}"

    def _aftermath(self, service: Service) -> str:
        """What ECS does next on its own, so the operator knows whether anything still changes."""
        breaker = service.circuit_breaker
        if breaker.get("enable"):
            then = "rolls back to the last completed deployment" if breaker.get("rollback") else "stops the deployment"
            return f"\n  ECS's circuit breaker {then} once its own threshold is reached"
        if service.older_running(self.id):
            return "\n  ECS keeps trying to deploy in the background; its old tasks keep serving meanwhile"
        return "\n  no old task is left: ECS keeps replacing this deployment's tasks with the same image"


def _nonzero_exits(task: Task, essential: frozenset[str]) -> dict[str, int]:
    return {name: code for name, code in task.exit_codes(essential).items() if code not in (0, None)}


def _stopped_before(task: Task, moment: datetime) -> bool:
    """Told to stop by `moment`, by ECS's stoppingAt. The API reference sets it as the task turns STOPPING, so a
    task still deactivating (draining behind a load balancer) may have none: that one counts as told to stop
    before, since judging an old crash would fail a command for good, and a crash loop crashes again."""
    return task.stopping_at <= moment if task.stopping_at else True


def _judged_while_stopping(task: Task, essential: frozenset[str]) -> bool:
    """Whether a task still stopping can be judged already: its stop code says why it stops, or the essential
    container that exited has its exit code. Waiting for STOPPED instead would rescan the service at every poll
    while the task drains behind a load balancer, for minutes."""
    if task.stop_cause == OTHER:
        return False  # judged by exit codes, which come with STOPPED
    return task.stop_cause != EXITED or bool(_nonzero_exits(task, essential))


def await_deployments(env, watches: list, required: list | None = None) -> list[Service]:
    """Wait until the `required` watches (all by default) have succeeded; fail as soon as any watched one cannot."""
    required = watches if required is None else required
    names = [w.service for w in watches]

    def check():
        services = env.ecs.services(names)
        done = set()
        for service, watch in zip(services, watches, strict=True):
            env.report.service(service, watch.id)
            if watch.observe(service):
                done.add(watch.id)
        return services if all(w.id in done for w in required) else None

    def pending():
        return "; ".join(w.pending() for w in required)

    def pace(interval):
        ends = [w.window_end() for w in watches]
        if None in ends:
            return interval  # a rollout in progress: transitions are due
        now = env.poller.clock()
        ahead = [end - now for end in ends if end > now]
        return min(max(interval, WINDOW_POLL_SECONDS), *ahead) if ahead else interval

    return env.poller.until(check, pending, pace)


def _last_event(service: Service) -> str:
    return f"; last event: {service.events[0].message}" if service.events else ""
