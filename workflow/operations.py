"""The operator's operations that change an Airflow cluster: initialize, stop/start the scheduler, redeploy.

The rules that keep production safe live here, each in one place: never two scheduler processes, nor an old and
a new one (`_start_schedulers`: only with none alive, at the count the operator chose), never a changed worker
count (`redeploy` only forces new deployments), nothing changed before every service is known to be deployable
(`changes.preflight`), the components moved in the order the schema allows (`topology.UPGRADE_ORDER`, followed
by `redeploy`), and a deployment counts as done only when the very deployment we created has succeeded
(`deployments.DeploymentWatch`).
"""

import shlex
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from . import database
from .airflow_view import AirflowStatus, Drain, await_heartbeat
from .airflow_view import drain as drain_workers
from .changes import (
    STOPPED_COUNT_TAG,
    await_stopped,
    deploy,
    one_at_a_time,
    preflight,
    rehearse_reads,
    require_still_stopped,
    resume_or_deploy,
    scale_to_zero,
    start_from_zero,
    stopped_count,
)
from .deployments import DeploymentWatch, await_deployments
from .ecs import Service
from .env import Env
from .errors import OperationFailed, Refused, TaskFailed, WorkflowError
from .oneoff import TaskOutcome, run_one_off
from .plan import Plan, airflow_version, database_schema, unfit
from .poller import outlook
from .tag_keys import ROLLBACK_TAG
from .topology import API_SERVER, DAG_PROCESSOR, SCHEDULER, TRIGGERER, UPGRADE_ORDER, WEBSERVER, WORKER, Step, Topology

RESTORE_SCHEDULER = ("to schedule on the old workers ECS keeps running", "start-scheduler")
ROLL_BACK = ("to go back to the previous release, if there is one", "rollback --yes")
ROLL_BACK_TO_FIT = ("to schedule again on the release the database's schema fits", "rollback --yes")
# Once this redeploy has migrated, the old workers ECS keeps running run the old Airflow on the new schema: no
# scheduler is started beside them, and the way back downgrades the schema first.
ROLL_BACK_MIGRATED = ("to go back to the previous release, its schema first", "rollback --downgrade-db --yes")
WORDS = {API_SERVER: "the api-server", WEBSERVER: "web", WORKER: "worker", TRIGGERER: "triggerer",
         DAG_PROCESSOR: "dag-processor", SCHEDULER: "scheduler"}


@dataclass(frozen=True)
class Outcome:
    summary: str
    services: tuple[Service, ...]
    scheduler_downtime: float | None = None  # seconds from the stop request until the new scheduler ran
    warnings: tuple[str, ...] = ()
    images: tuple = ()  # status.Image values
    scheduler_tasks_alive: int | None = None
    unmanaged: tuple[str, ...] = ()  # services with no Airflow role, left alone
    roles: dict[str, str] = field(default_factory=dict)  # service -> role, for the services shown
    plan: Plan | None = None  # what a redeploy moved: each role's image before and after
    drain: Drain | None = None  # how long the running task instances took to finish, and those interrupted
    airflow: AirflowStatus | None = None  # Airflow's own view of its components


@dataclass(frozen=True)
class RedeployOptions:
    wait_for_drain: bool = False  # web's old tasks gone, not merely deregistering
    migrate: list[str] | None = None  # the migration command, run once the schedulers and dag-processors stopped
    migrate_from: str = SCHEDULER  # whose deployed task definition runs it
    schedulers: int | None = None  # scheduler tasks per scheduler service; None: as recorded, else 1
    snapshot: str | None = None  # an RDS instance to snapshot before the schema moves
    drain_timeout: float = 600.0  # how long the running task instances may take to finish before the workers roll
    # The schema has moved ahead of what runs (an earlier run migrated, and this one resumes it): the old workers
    # run on a schema they do not fit, so no scheduler is offered beside them, and the way back downgrades first.
    schema_moved: bool = False


DEFAULTS = RedeployOptions()


def scheduler_count(services: list[Service], chosen: int | None) -> int:
    """How many tasks each scheduler service may run: --schedulers, else the count it had when this tool stopped
    it, else 1. One scheduler process is the rule; Airflow's HA schedulers are the operator's explicit choice."""
    if chosen is not None:
        return chosen
    recorded = [n for n in (stopped_count(s) for s in services) if n]
    return max(recorded, default=1)


def _too_many(services: list[Service], count: int) -> str | None:
    over = [s for s in services if s.desired > count]
    if not over:
        return None
    what = ", ".join(f"{s.name} has desired count {s.desired}" for s in over)
    hint = f"; if you run Airflow's HA schedulers, pass --schedulers {over[0].desired}" if count == 1 else ""
    only = "only one scheduler may run" if count == 1 else f"only {count} scheduler tasks may run"
    return f"scheduler {what}, but {only}{hint}"


def stop_scheduler(env: Env, names: list[str], wait: bool = True, known: list[Service] | None = None) -> Outcome:
    services = known or env.ecs.services(names)
    if known is None:
        for service in services:
            env.report.service(service)
    # Listing the tasks first also proves, before any change, that the wait's reads are allowed.
    alive = [task for name in names for task in env.ecs.live_tasks(name)]
    label = _and(names)
    if not alive and all(s.desired == 0 for s in services):
        # Nothing to change, but the lease still matters: another operator's command may be about to start it.
        env.before_change()
        env.recovery.state = "the scheduler is stopped"
        return Outcome(f"scheduler {label} is already stopped", tuple(services))
    with env.report.phase(f"stop scheduler {label}"):
        # Even when every one is at 0 already (its tasks still stopping), the lease is taken: the command that set
        # them to 0 may be about to start them again, and this stop would then be no stop at all.
        env.before_change()
        services = scale_to_zero(env, services, "the scheduler", scheduler=True)
        env.recovery.state = "the scheduler is stopping"
        if not wait:
            return Outcome(f"scheduler {label} is stopping", tuple(services))
        services = await_stopped(env, names, "scheduler", alive)
    env.recovery.state = "the scheduler is stopped"
    return Outcome(f"scheduler {label} stopped", tuple(services))


def start_scheduler(env: Env, names: list[str], wait: bool = True, count: int | None = None,
                    topology: Topology | None = None) -> Outcome:
    """Start the scheduler(s) at their count, and only once no other scheduler task is alive."""
    # Another operator's command (a start a moment ago, whose new task this one would wait on as if it were an
    # old one) refuses this one now, not after that wait.
    env.refuse_if_held()
    services = preflight(env, names)
    rehearse_reads(env, services)
    if env.airflow is not None:
        env.airflow.check_credentials()
    allowed = scheduler_count(services, count)
    refusal = _too_many(services, allowed)
    if refusal:
        raise OperationFailed(refusal + "; run stop-scheduler first")
    label = _and(names)
    if all(s.desired == allowed for s in services):
        primaries = [s.primary for s in services]
        crashing = _recently_exited(env, services)
        if not crashing and all(p and s.has_completed(p.id) for s, p in zip(services, primaries, strict=True)):
            # Running in ECS is not scheduling: a scheduler a failed start left running, never heartbeating, is not
            # "already running".
            _heartbeating(env, primaries, label)
            # Nothing to change, but the lease still matters: another operator's command may be about to stop it.
            env.before_change()
            env.recovery.state = "the scheduler is running"
            return Outcome(f"scheduler {label} is already running", tuple(services))
        if crashing:
            env.report.line(f"{crashing}: watching it for the stability window before calling it running")
        elif not wait or None in primaries:
            return Outcome(f"scheduler {label} is already starting", tuple(services))
        what = "watch scheduler {} whose tasks exited" if crashing else "wait for scheduler {} already starting"
        with env.report.phase(what.format(label)):
            env.recovery.state = "the scheduler is starting"
            watches = [DeploymentWatch(env, s.name, p.id, adopted=True) for s, p in zip(services, primaries, strict=True)
                       if p is not None]
            services = await_deployments(env, watches)
            _heartbeating(env, primaries, label)
        env.recovery.state = "the scheduler is running"
        said = "is running: its tasks stayed up for the stability window" if crashing else "started"
        return Outcome(f"scheduler {label} {said}", tuple(services))
    # A redeploy stops the dag-processors with the schedulers: one stopped before it ended has them at 0, and a
    # scheduler without them schedules nothing new (Airflow 3 parses DAGs only there).
    processors = [s for s in env.ecs.services(topology.services(DAG_PROCESSOR)) if s.desired == 0] if topology else []
    refusal = unfit_start(env, [s for s in services if s.desired == 0] + processors, topology)
    if refusal:
        raise Refused(refusal)
    partly = [s for s in services if 0 < s.desired < allowed]
    if partly:
        raise OperationFailed(
            f"scheduler {partly[0].name} runs {partly[0].desired} of {allowed} task(s): starting more beside them "
            "would run old and new scheduler tasks at once; run stop-scheduler first"
        )
    started = []
    for service in processors:  # first, as in the upgrade order: the scheduler finds freshly parsed DAGs
        tasks = stopped_count(service) or 1
        env.report.line(f"starting dag-processor {service.name} ({tasks} task(s)), stopped with the scheduler")
        started.append(deploy(env, service.name, desired_count=tasks, desired=tasks))
    return _start_schedulers(env, [s for s in services if s.desired == 0], allowed, wait, alive_checked=False,
                             also=tuple(started))[0]


def _heartbeating(env: Env, primaries: list, label: str) -> None:
    """Airflow's word that the schedulers these deployments run heartbeat (with its API; else ECS's view stands)."""
    created = [p.created_at for p in primaries if p is not None and p.created_at is not None]
    if env.airflow is not None and created:
        await_heartbeat(env.poller, env.airflow, min(created), label, began="its deployment began")


def _recently_exited(env: Env, services: list[Service]) -> str | None:
    """Which scheduler's tasks of its current deployment have been exiting, if any: a scheduler whose tasks keep
    exiting is not running, whatever its counts say between two crashes."""
    from .deployments import stop_cause
    from .ecs import EXITED, FAILED_TO_START

    for service in services:
        primary = service.primary
        try:
            stopped = env.ecs.stopped_tasks(service.name, set())
        except WorkflowError as error:  # cannot tell: the watch that follows is the safe way to find out
            return f"{service.name}'s stopped tasks cannot be read now ({error})"
        failed = [t for t in stopped
                  if primary and t.started_by == primary.id and stop_cause(t, service) in (EXITED, FAILED_TO_START)]
        if failed:
            return f"{len(failed)} task(s) of {service.name}'s deployment {primary.id if primary else ''} exited recently"
    return None


def unfit_start(env: Env, services: list[Service], topology: Topology | None = None) -> str | None:
    """Why starting these schedulers (and dag-processors) from zero would crash them, or None: a new deployment
    runs the image its task definition's tag names now, and the database's schema may not fit it. The schema is the
    one recorded, else (given the topology) the one Airflow version every running component runs, as `plan`
    infers it: before this tool's first migration, a migration that failed leaves `latest` on an image the
    database does not fit."""
    try:
        recorded, inferred = database_schema(env, topology) if services else (None, False)
    except WorkflowError:
        return None
    if recorded is None:
        return None
    basis = f", {database.INFERRED}" if inferred else ""
    for service in services:
        definition = env.ecs.task_definition(service.task_definition)
        essential = next((c for c in definition.containers if c.essential), None)
        try:
            version = airflow_version(env, essential.image) if essential else None
        except WorkflowError as error:  # the check informs the start; it cannot read the image, so it says so
            env.report.line(f"warning: {service.name}'s image was not checked against the database's "
                            f"schema: {error}")
            continue
        why = unfit(recorded, {version} if version else set(),
                    "`redeploy --migrate` moves the schema and every component together; `rollback` goes back to the "
                    "release the database fits", basis)
        if why:
            return f"{service.name}: {why}"
    return None


def _start_schedulers(env: Env, services: list[Service], count: int, wait: bool, alive_checked: bool,
                      also: tuple[DeploymentWatch, ...] = ()) -> tuple[Outcome, float]:
    """The one place a scheduler starts: only with no scheduler task alive, so exactly `count` tasks start.

    A scheduler that is running is never force-deployed: with maximumPercent 200 ECS would start the new task
    before stopping the old one, and an old and a new scheduler would run at once. The start also sets
    SCHEDULER_DEPLOYMENT, so that even a repeated request makes ECS stop one before it starts another. `also`
    are deployments that keep being watched meanwhile. Returns the outcome and when the schedulers were running.
    """
    names = [s.name for s in services]
    label = _and(names)
    with env.report.phase(f"start scheduler {label}"):
        alive = [] if alive_checked else [task for name in names for task in env.ecs.live_tasks(name)]
        if alive:
            env.recovery.state = "the scheduler is stopping"
            await_stopped(env, names, "scheduler", alive)
        # No scheduler task is alive, so a new deployment starts exactly `count`, with the current image.
        requested = env.report.now()
        watches = [start_from_zero(env, s, count, "the scheduler", one_at_a_time(s)) for s in services]
        rolling = [w.service for w in also]
        env.recovery.state = "the scheduler is starting" + (
            f"; {_and(rolling)} {'is' if len(rolling) == 1 else 'are'} still rolling" if rolling else "")
        # Everything before this start is done: a resume waits for this start (start-scheduler adopts it), where
        # a redeploy run again would stop the new scheduler and roll every service once more. The rollouts still
        # followed go on in ECS, and the state names them; should one fail, only the redeploy resumes (below).
        earlier, env.recovery.milestone = env.recovery.milestone, "scheduler starting"
        for service in services:
            # Started again at that count: nothing left to remember. A count other than 1 was recorded by the stop
            # (perhaps by this very command, after `service` was described): its tag goes too.
            if STOPPED_COUNT_TAG in service.tags or count != 1:
                env.ecs.untag(service.arn, [STOPPED_COUNT_TAG])
        if not wait:
            shown = tuple(w.latest for w in watches if w.latest is not None)
            return Outcome(f"scheduler {label} is starting", shown), env.poller.clock()
        try:
            started = await_deployments(env, [*watches, *also], required=watches)[: len(watches)]
        except OperationFailed:
            env.recovery.milestone = earlier  # a rollout failed: the redeploy resumes it, taking over what runs
            raise
        if env.airflow is not None:  # running in ECS is not yet scheduling: Airflow says when it heartbeats
            await_heartbeat(env.poller, env.airflow, requested, label)
    env.recovery.state = "the scheduler is running"
    return Outcome(f"scheduler {label} started", tuple(started)), max(w.stable_since or 0.0 for w in watches)


def redeploy(env: Env, topology: Topology, options: RedeployOptions = DEFAULTS) -> Outcome:
    """Move every component onto new deployments, step by step as topology.UPGRADE_ORDER says, keeping their
    desired counts.

    The scheduler starts as soon as the new workers are complete and stable and no old worker runs; web's and the
    triggerer's rollouts go on meanwhile and never hold it back. The command returns when every new deployment has
    succeeded (web: its new tasks all run and its old ones are deregistering, or, with `wait_for_drain`, gone).

    `options.migrate` is a command run as a one-off task once the old schedulers and dag-processors have stopped
    and before anything new starts, so no new component meets an old schema and no old one a new schema.
    """
    env.refuse_if_held()
    by_name = check_redeploy(env, topology, options)
    upgrade = _Upgrade(env, topology, by_name, options)
    rehearse_reads(env, by_name.values())
    if options.migrate:  # waited for before the scheduler stops, not while it is down
        _after_earlier_migrations(env)
    for step in UPGRADE_ORDER:
        upgrade.step(step)
    outcome = upgrade.finish()
    _forget_rollback(env)
    return outcome


def _forget_rollback(env: Env) -> None:
    """Every service now runs what `latest` names: a rollback recorded as under way (interrupted, then left for
    a promote and this redeploy) is over, and a later `rollback` must not finish it, a release too far back."""
    try:
        if ROLLBACK_TAG in env.ecs.cluster_tags():
            env.ecs.untag_cluster([ROLLBACK_TAG])
    except WorkflowError as error:  # the redeploy succeeded; the record is what is left, and a rollback would read it
        env.report.line(f"warning: the record of an earlier rollback ({ROLLBACK_TAG}) could not be removed: {error}; "
                        f"remove the cluster's tag {ROLLBACK_TAG} before the next rollback")

class _Upgrade:
    """A redeploy under way: what each step of UPGRADE_ORDER does, the deployments it began, and the state to
    report should it stop early."""

    def __init__(self, env: Env, topology: Topology, by_name: dict[str, Service], options: RedeployOptions):
        self.env, self.topology, self.by_name, self.options = env, topology, by_name, options
        self.schedulers, self.processors = self.of(SCHEDULER), self.of(DAG_PROCESSOR)
        self.count = scheduler_count(self.schedulers, options.schedulers)
        self.source = migration_source(topology, by_name, options.migrate_from) if options.migrate else None
        self.processor_counts = {s.name: s.desired or stopped_count(s) or 1 for s in self.processors}
        # Schedulers already stopped is what an interrupted redeploy leaves behind: the rollouts it began since the
        # stop are taken over, not begun again, and the downtime counts from that stop.
        stopped = all(s.desired == 0 for s in self.schedulers)
        self.stopped_since = _stopped_since(env, self.schedulers) if stopped else None
        self.resuming = self.stopped_since if not options.migrate else None
        self.down_since = self.stopped_since or env.report.now()
        self.watches: dict[str, DeploymentWatch] = {}  # service -> the deployment this redeploy follows
        self.done: set[str] = set()  # services whose new deployment has succeeded
        self.running_since: float | None = None
        self.started: tuple[Service, ...] = ()
        self.drained: Drain | None = None

    def of(self, *roles: str) -> list[Service]:
        return [self.by_name[name] for name in self.topology.services(*roles)]

    @property
    def migrated(self) -> bool:
        return self.options.schema_moved or self.env.recovery.milestone == "migrated"

    def words(self, names: list[str]) -> str:
        """`web and worker`, `worker and triggerer`: the roles of these services in the operator's words."""
        roles = list(dict.fromkeys(self.topology.role(name) or WORKER for name in names))
        return _and([WORDS[r] for r in roles]) or "nothing"

    def watched(self, *roles: str) -> list[DeploymentWatch]:
        names = self.topology.services(*roles) if roles else list(self.watches)
        return [self.watches[name] for name in names if name in self.watches]

    def step(self, step: Step) -> None:
        with outlook(lambda: self.ahead(step)):  # a long wait's heartbeat says what still comes after it
            required = self.watched(*step.after)
            if required and step.action != "start":
                with self.env.report.phase(f"wait for {_and([w.service for w in required])} before the next step"), \
                        outlook(lambda: self.ahead(step, including=True)):
                    self._await(required)
            action = {"stop": self.stop, "drain": self.drain, "migrate": self.migrate, "roll": self.roll,
                      "start": self.start}[step.action]
            action(step)

    def ahead(self, step: Step, including: bool = False) -> str:
        """The steps still to come after `step` (`including` it: its action waits for what comes before it), and
        what each takes."""
        later = [s for s in UPGRADE_ORDER[UPGRADE_ORDER.index(step) + (0 if including else 1):]
                 if s.action in ("roll", "start") and self.of(*s.roles)]
        if not later:
            return "nothing: this is the last step"
        steps = "; ".join(f"{s.action} {self.words(self.topology.services(*s.roles))}" for s in later)
        return f"{steps} (each: new tasks start, then {self.env.policy.stability_window:g}s stable)"

    def stop(self, step: Step) -> None:
        stop_for_upgrade(self.env, self.of(SCHEDULER) if SCHEDULER in step.roles else [],
                         self.of(DAG_PROCESSOR) if DAG_PROCESSOR in step.roles else [])

    def drain(self, step: Step) -> None:
        view = self.env.airflow
        if view is None or not self.of(*step.roles):
            return
        if self.options.drain_timeout <= 0:
            self.env.report.line("not draining: --drain-timeout 0")
            return
        if view.api() is None:
            self.env.report.line(f"not draining: {view.gone}")
            self.drained = Drain(0.0, skipped=view.gone)
            return
        with self.env.report.phase("drain the running task instances"):
            self.env.recovery.state = "the scheduler is stopped; the running task instances are finishing"
            self.drained = drain_workers(self.env.poller, view, self.options.drain_timeout)

    def migrate(self, _step: Step) -> None:
        if self.source is None or not self.options.migrate:
            return
        if self.options.snapshot:
            database.take_snapshot(self.env, self.options.snapshot, self.topology.name)
        untouched = self.words(self.topology.services(API_SERVER, WEBSERVER, WORKER, TRIGGERER))
        # Should the migration fail or be interrupted, the schema may not have moved while `latest` names the new
        # image: a start-scheduler would then be refused, and the way back to scheduling is the release the
        # database fits.
        way_back = ROLL_BACK_TO_FIT if unfit_start(self.env, self.schedulers, self.topology) else RESTORE_SCHEDULER
        migrate(self.env, self.source, self.options.migrate, untouched=untouched, way_back=way_back)

    def roll(self, step: Step) -> None:
        services = self.of(*step.roles)
        if not services:
            return
        env, names = self.env, [s.name for s in services]
        with env.report.phase(f"redeploy {_and(names)}"):
            env.recovery.state = f"the scheduler is stopped; {self.words(names)} {'is' if len(names) == 1 else 'are'} " \
                                 "being redeployed"
            env.recovery.alternatives = [ROLL_BACK_MIGRATED if self.migrated else RESTORE_SCHEDULER]
            # forceNewDeployment alone: the desired counts stay whatever operators or autoscaling set.
            for service in services:
                role = self.topology.role(service.name)
                # A worker is ready once no old worker runs a process, not once ECS has removed the old
                # deployment (its tasks may be DEPROVISIONING for seconds more): the scheduler waits for it.
                options = {"old_tasks_stopped": True, "drained": False} if role == WORKER else \
                    {"drained": self.options.wait_for_drain} if role in (API_SERVER, WEBSERVER) else {}
                self.watches[service.name] = resume_or_deploy(env, service, self.resuming, **options)

    def start(self, step: Step) -> None:
        if DAG_PROCESSOR in step.roles:
            # Stopped with the schedulers: they start again on the new image, with the count they had.
            for service in self.processors:
                count = self.processor_counts[service.name]
                self.watches[service.name] = deploy(self.env, service.name, desired_count=count, desired=count)
        if SCHEDULER in step.roles:
            self._start_schedulers(step)

    def _start_schedulers(self, step: Step) -> None:
        env = self.env
        required = self.watched(*step.after)
        with env.report.phase(f"wait for {_and([w.service for w in required])} before the scheduler starts"), \
                outlook(lambda: self.ahead(step, including=True)):
            try:
                self._await(required)
            except (OperationFailed, KeyboardInterrupt):
                workers = self.watched(WORKER)
                if workers and all(_no_old_task(w) for w in workers):  # no old worker to schedule on
                    env.recovery.state = "the scheduler is stopped; the new workers are what runs"
                    env.recovery.alternatives = [ROLL_BACK_MIGRATED if self.migrated else ROLL_BACK]
                raise
        rest = self._rest()
        rolling = self.words([w.service for w in rest])
        env.recovery.state = "the scheduler is stopped; the worker is redeployed" + (
            f" and {rolling} {'is' if len(rest) == 1 else 'are'} rolling" if rest else "")
        env.recovery.alternatives = []
        require_still_stopped(env, self.schedulers, "scheduler",
                              f"{self.words(self.topology.services(WEBSERVER, WORKER, TRIGGERER))} were redeployed")
        started, self.running_since = _start_schedulers(env, self.schedulers, self.count, True, True, also=tuple(rest))
        self.started = started.services
        env.recovery.state = "the scheduler runs on the new workers" + (
            f"; {rolling} {'is' if len(rest) == 1 else 'are'} rolling" if rest else "")

    def _rest(self) -> list[DeploymentWatch]:
        """The deployments still followed that are no worker's: they roll on while the scheduler starts."""
        workers = set(self.topology.services(WORKER))
        return [w for name, w in self.watches.items() if name not in workers and name not in self.done]

    def _await(self, required: list[DeploymentWatch]) -> None:
        if required:
            await_deployments(self.env, list(self.watches.values()), required=required)
            self.done.update(w.service for w in required)

    def finish(self) -> Outcome:
        env, rest = self.env, self._rest()
        settled = {s.name: s for s in self.started}
        if rest:
            done = await_deployments(env, list(self.watches.values()), required=rest)
            settled.update({s.name: s for s in done if s.name not in settled})
        for watch in self.watches.values():
            if watch.latest is not None:
                settled.setdefault(watch.service, watch.latest)
        draining = sum(w.draining() for w in self.watched(API_SERVER, WEBSERVER))
        if draining:
            env.report.line(f"{draining} old web task(s) draining behind the load balancer; ECS finishes it")
        env.recovery.state = None
        running_since = self.running_since if self.running_since is not None else env.poller.clock()
        running_at = env.report.now() - timedelta(seconds=env.poller.clock() - running_since)
        downtime = round(max(0.0, (running_at - self.down_since).total_seconds()), 1)
        drained = self.drained
        said = f"; {drained.seconds:.0f}s of it draining" if drained and drained.seconds else ""
        if drained and drained.interrupted:
            said += f", {len(drained.interrupted)} task instance(s) interrupted"
        # Not asked for (--drain-timeout 0 is): the workers rolled with whatever task instances they ran.
        unasked = (f"the workers rolled without a drain, interrupting any task instance they ran: {drained.skipped}",) \
            if drained and drained.skipped else ()
        return Outcome(
            f"cluster {self.topology.name} redeployed; the scheduler was down for {downtime:.0f}s{said}",
            tuple(settled.get(name) or self.by_name[name] for name in self.topology.services()),
            downtime,
            roles={c.service: c.role for c in self.topology.components},
            drain=drained,
            warnings=unasked,
        )


def check_redeploy(env: Env, topology: Topology, options: RedeployOptions) -> dict[str, Service]:
    """What redeploy refuses, checked before anything changes (rollback asks before it moves a tag): every
    service deployable (preflight), a scheduler, and no more scheduler tasks than allowed."""
    if not topology.services(SCHEDULER):
        raise Refused(f"cluster {topology.name} has no scheduler service: name it with --scheduler or tag it "
                      "airflow-role=scheduler; nothing was changed")
    by_name = {s.name: s for s in preflight(env, topology.services())}
    schedulers = [by_name[name] for name in topology.services(SCHEDULER)]
    refusal = _too_many(schedulers, scheduler_count(schedulers, options.schedulers))
    if refusal:
        raise Refused(refusal + "; nothing was changed")
    if env.airflow is not None:
        env.airflow.check_credentials()
    if options.migrate and options.snapshot:
        database.require_instance(env, options.snapshot)
    return by_name


def stop_for_upgrade(env: Env, schedulers: list[Service], processors: list[Service]) -> None:
    """UPGRADE_ORDER's first step: scale the schedulers and dag-processors to zero, wait until no process runs."""
    if not processors:
        stop_scheduler(env, [s.name for s in schedulers], known=schedulers)
        return
    names = [s.name for s in [*schedulers, *processors]]
    alive = [task for name in names for task in env.ecs.live_tasks(name)]
    with env.report.phase(f"stop scheduler {_and([s.name for s in schedulers])} and dag-processor "
                          f"{_and([s.name for s in processors])}"):
        scale_to_zero(env, schedulers, "the scheduler", scheduler=True)
        scale_to_zero(env, processors, "the dag-processor", scheduler=False)
        env.recovery.state = "the scheduler and the dag-processor are stopping"
        await_stopped(env, names, "scheduler and dag-processor", alive)
    env.recovery.state = "the scheduler and the dag-processor are stopped"


def migration_source(topology: Topology, by_name: dict[str, Service], role: str) -> Service:
    names = topology.services(role)
    if not names:
        raise Refused(f"cluster {topology.name} has no {role} service to run the migration with "
                      "(--migrate-from); nothing was changed")
    return by_name[names[0]]


def migrate(env: Env, source: Service, command: list[str], untouched: str,
            way_back: tuple[str, str] = RESTORE_SCHEDULER) -> TaskOutcome:
    """UPGRADE_ORDER's second step: the migration (or a downgrade), one-off, with the source's task definition;
    the schema's version is recorded on the cluster when it succeeds. `way_back` is offered should it fail."""
    # While the task runs, its outcome is unknown: the schema may yet move, so no way back is offered until it
    # has failed; a command stopped meanwhile is resumed once the task has stopped (`airflow db migrate` again is
    # a no-op on a migrated database).
    env.recovery.alternatives = []
    _after_earlier_migrations(env)
    try:
        outcome = run_one_off(env, source, command, None, wait=True, rerun_once_stopped=True)
    except TaskFailed:
        env.recovery.state = f"the scheduler is stopped; the migration failed; {untouched} are untouched"
        env.recovery.alternatives = [way_back]
        raise
    env.recovery.milestone = "migrated"  # resuming from here must not migrate again
    database.record_migration(env, command, outcome.task)
    return outcome


def _moves_schema_under_running(env: Env, source: Service, command: list[str], container: str | None,
                                topology: Topology | None) -> str | None:
    """Why this migration would leave running components on a schema they do not fit, or None: after a promote,
    `initialize` migrates with the new image while every component still runs the old one, and each would exit with
    'Database migration required' at its next start. Unknown versions are no reason to refuse."""
    from .oneoff import choose_container
    from .topology import CHECKS_MIGRATIONS

    if topology is None or database.downgrade_target(command):
        return None
    try:
        definition = env.ecs.task_definition(source.task_definition)
        image = definition.container(choose_container(definition, container))
        version = airflow_version(env, image.image) if image else None
        schema = database_schema(env, topology)[0] if version else None
    except WorkflowError:
        return None
    check = database.check_schema(schema, version) if version and schema else None
    if check is None or not (check.needs_migration or check.needs_downgrade):
        return None
    checking = topology.services(*CHECKS_MIGRATIONS)
    running = [name for name, tasks in env.ecs.running_tasks(checking).items() if tasks]
    if not running:
        return None  # nothing runs that checks the schema: a first initialization, or a cluster stopped for it
    return (f"'{shlex.join(command)}' would move the database from Airflow {schema}'s schema to {version}'s while "
            f"{_and(running)} run on it: each would exit with 'Database migration required' at its next start. "
            "`redeploy --migrate` moves the schema and every component together; nothing was changed")


def _after_earlier_migrations(env: Env) -> None:
    """Wait for a migration task an earlier command started (a resume pasted before the task it named had
    stopped): a second one beside it fails on Airflow's migration lock while the first may yet move the schema.
    After it, migrating again is a no-op where it succeeded."""
    earlier = [t for t in env.ecs.one_off_tasks() if database.is_migration(list(t.command))]
    if not earlier:
        return
    ids = _and([t.id for t in earlier])
    env.report.line(f"task {ids}, an earlier command's `{shlex.join(earlier[0].command)}`, still runs: this one "
                    "migrates once it has stopped")
    before = env.recovery.state
    env.recovery.state = "; ".join(filter(None, [before, f"an earlier command's migration task {ids} runs"]))
    env.recovery.resume_when = f"once task {ids} has stopped"

    def stopped() -> bool | None:
        return True if all(t.process_ended for t in env.ecs.tasks([t.arn for t in earlier])) else None

    env.poller.until(stopped, lambda: f"task {ids}, an earlier command's migration, to stop")
    env.recovery.state, env.recovery.resume_when = before, None


def _stopped_since(env: Env, schedulers: list[Service]) -> datetime | None:
    """When the last scheduler task was told to stop, as ECS says (it lists stopped tasks for about an hour)."""
    moments = [t.stopping_at for s in schedulers for t in env.ecs.stopped_tasks(s.name, set()) if t.stopping_at]
    return max(moments, default=None)


def _no_old_task(watch: DeploymentWatch) -> bool:
    latest = watch.latest
    return latest is not None and not latest.older_running(watch.id)


def initialize(env: Env, service: str, command: list[str], container: str | None, wait: bool,
               topology: Topology | None = None) -> TaskOutcome:
    """Run the Airflow database migration as a one-off task shaped like `service`'s own tasks."""
    found = env.ecs.service(service)
    rehearse_reads(env, [found])
    if database.is_migration(command):
        refusal = _moves_schema_under_running(env, found, command, container, topology)
        if refusal:
            raise Refused(refusal)
        _after_earlier_migrations(env)
    outcome = run_one_off(env, found, command, container, wait)
    if wait:
        database.record_migration(env, command, outcome.task)
    return outcome


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1] if words else ""
