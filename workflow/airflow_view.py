"""Airflow's own view, as the operations use it: the running task instances a redeploy drains before the workers
roll, the scheduler heartbeat a start waits for, and the health `status` shows.

The API is a witness, never a gate on its own: when it cannot be reached or answers nonsense, the command goes on
with ECS's view and says so once, naming the URL and the error. Only refused credentials stop a command, and only
before it changed anything (they are the operator's to fix).
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from .airflow_api import AirflowApi, AirflowApiError, AirflowUnauthorized, Health, RunningTaskInstances
from .errors import OperationFailed, WaitTimedOut
from .poller import Poller
from .progress import Reporter

DRAIN_POLL_SECONDS = 5.0  # the running task instances are asked for this often (one API call each)
HEARTBEAT_WAIT_SECONDS = 120.0  # a scheduler heartbeats every few seconds: this long without one is no start
SHOWN_TASKS = 5  # task instances named in a progress line


@dataclass(frozen=True)
class Drain:
    seconds: float
    interrupted: tuple[str, ...] = ()  # the task instances still running when the bound passed: dag.task (run)
    skipped: str | None = None  # why there was no drain


@dataclass(frozen=True)
class ComponentView:
    name: str
    status: str | None
    heartbeat_age: float | None  # seconds since the latest heartbeat, as Airflow reports it


@dataclass(frozen=True)
class AirflowStatus:
    url: str
    version: int  # Airflow's major version
    metadatabase: str | None
    components: tuple[ComponentView, ...]


class AirflowView:
    """Airflow's API for one command, connected on first use; after the first failure it is not asked again."""

    def __init__(self, connect: Callable[[], AirflowApi | None], report: Reporter):
        self._connect, self.report = connect, report
        self._api: AirflowApi | None = None
        self.gone: str | None = None  # why Airflow's view is not used: said once, as a warning
        self.checked = False  # whether the credentials were checked, before the command's first change

    def api(self) -> AirflowApi | None:
        if self._api is None and self.gone is None:
            try:
                self._api = self._connect()
            except AirflowApiError as error:
                self._lost(error)
            if self._api is None and self.gone is None:
                self.gone = "no Airflow URL (--airflow-url, or a load balancer before its web server)"
        return self._api

    def _lost(self, error: AirflowApiError) -> None:
        if isinstance(error, AirflowUnauthorized) and not self.checked:
            raise error  # before any change: the operator's to fix, and nothing was changed
        self.gone, self._api = str(error), None  # not asked again in this command
        self.report.line(f"warning: going on with ECS's view alone: Airflow's API: {error}")

    def check_credentials(self) -> None:
        """Before any change: refused credentials are a usage error now rather than a surprise mid-way; from here
        on, any failure of the API (refused credentials included) only means going on with ECS's view."""
        api = self.api()
        if api is not None and api.credentials is not None:
            self.running()
        self.checked = True

    def health(self) -> Health | None:
        api = self.api()
        if api is None:
            return None
        try:
            return api.health()
        except AirflowApiError as error:
            self._lost(error)
            return None

    def running(self) -> RunningTaskInstances | None:
        """The running task instances, or None without the API or without credentials to read them."""
        api = self.api()
        if api is None:
            return None
        if api.credentials is None:  # Airflow lists task instances to signed-in users only
            self.gone = ("no Airflow user to read task instances with (WORKFLOW_AIRFLOW_USERNAME and "
                         "WORKFLOW_AIRFLOW_PASSWORD, or --airflow-credentials-secret)")
            return None
        try:
            return api.running_task_instances()
        except AirflowApiError as error:
            self._lost(error)
            return None


def drain(poller: Poller, view: AirflowView, timeout: float) -> Drain:
    """Wait until Airflow reports no running task instance (the scheduler is stopped, so none is queued), at most
    `timeout` seconds; then go on, naming the task instances the roll will interrupt."""
    report = view.report
    if timeout <= 0:
        return Drain(0.0, skipped="--drain-timeout 0")
    began = poller.clock()
    first = view.running()
    if first is None:
        report.line(f"not draining the workers: {view.gone}")
        return Drain(0.0, skipped=view.gone)
    latest = [first]

    def drained() -> RunningTaskInstances | None:
        running = view.running() if poller.clock() > began else latest[0]
        if running is None:  # the API went away: nothing more to learn from it
            return RunningTaskInstances(0, ())
        latest[0] = running
        return running if running.total == 0 else None

    def pending() -> str:
        running = latest[0]
        left = max(0.0, timeout - (poller.clock() - began))
        return f"{running.total} task instance(s) still running: {_names(running)}; waiting up to {_duration(left)} more"

    if first.total:
        report.line(f"draining: {pending()}")
    waiting = Poller(poller.clock, poller.sleep, max(poller.interval, DRAIN_POLL_SECONDS), timeout, notice=report.line)
    try:
        waiting.until(drained, pending)
    except WaitTimedOut:
        running = latest[0]
        names = tuple(_name(ti) for ti in running.task_instances)
        report.line(f"the drain's bound ({_duration(timeout)}) passed: rolling the workers interrupts "
                    f"{running.total} task instance(s): {_names(running, len(running.task_instances))}")
        return Drain(round(poller.clock() - began, 1), names)
    seconds = round(poller.clock() - began, 1)
    if first.total:
        report.line(f"drained: no task instance runs, after {seconds:.0f}s")
    return Drain(seconds)


def await_heartbeat(poller: Poller, view: AirflowView, since: datetime, scheduler: str,
                    began: str = "its start") -> None:
    """Until Airflow reports the scheduler healthy with a heartbeat newer than `since`, when `began` (its start was
    requested then, or the deployment that runs it began); without Airflow's API, ECS's view (its tasks run and
    stay up) stands alone."""
    health = view.health()
    if health is None:
        return
    last = [health]

    def beating() -> bool | None:
        current = view.health()
        if current is None:
            return True  # the API went away: ECS's view stands
        last[0] = current
        beat = current.scheduler.latest_heartbeat
        return True if current.scheduler.healthy and beat is not None and beat > since else None

    def pending() -> str:
        beat = last[0].scheduler.latest_heartbeat
        return f"Airflow to report {scheduler} healthy (latest heartbeat {beat:%H:%M:%SZ})" if beat else \
            f"Airflow to report a first heartbeat of {scheduler}"

    waiting = Poller(poller.clock, poller.sleep, poller.interval, min(poller.timeout, HEARTBEAT_WAIT_SECONDS),
                     notice=view.report.line)
    try:
        waiting.until(beating, pending)
    except WaitTimedOut:
        scheduler_health = last[0].scheduler
        beat = scheduler_health.latest_heartbeat
        seen = f"its latest heartbeat is from {beat:%Y-%m-%d %H:%M:%SZ}" if beat else "it never heartbeat"
        raise OperationFailed(
            f"{scheduler} runs in ECS, but Airflow reports it {scheduler_health.status or 'not running'}: {seen}, "
            f"before {began}; the metadatabase is {last[0].metadatabase_status or 'unknown'}. Look at its log "
            "(the `logs scheduler` command, with this one's --cluster and AWS options) and whether it reaches the "
            "database"
        ) from None
    view.report.line(f"Airflow reports {scheduler} healthy, heartbeating since {began}")


def status(view: AirflowView, now: datetime, roles: frozenset[str] | None = None) -> AirflowStatus | None:
    """Airflow's health of its components; a triggerer or dag-processor that never ran is left out where the
    cluster has no service of that role (`roles`): Airflow 2 reports both whether or not they are deployed."""
    health = view.health()
    api = view.api()
    if health is None or api is None:
        return None
    components = []
    for name in ("scheduler", "triggerer", "dag_processor"):
        found = health.component(name)
        never_ran = found is not None and found.status is None and found.latest_heartbeat is None
        if found is not None and not (never_ran and roles is not None and name.replace("_", "-") not in roles):
            # Airflow's clock and ours may differ by a little: a heartbeat "from the future" is one just now.
            age = max(0.0, (now - found.latest_heartbeat).total_seconds()) if found.latest_heartbeat else None
            components.append(ComponentView(name.replace("_", "-"), found.status, None if age is None else round(age, 1)))
    return AirflowStatus(api.base_url, health.major, health.metadatabase_status, tuple(components))


def _name(ti) -> str:
    mapped = f"[{ti.map_index}]" if ti.map_index >= 0 else ""
    return f"{ti.dag_id}.{ti.task_id}{mapped}"


def _names(running: RunningTaskInstances, most: int = SHOWN_TASKS) -> str:
    names = [_name(ti) for ti in running.task_instances[:most]]
    more = running.total - len(names)
    return ", ".join(names) + (f" and {more} more" if more > 0 else "")


def _duration(seconds: float) -> str:
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{rest}s"
