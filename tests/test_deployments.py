"""The deployment judgement on its own: generated sequences of looks at a deployment, no simulator, no AWS.

A small world (`World`) says, at each look, what DescribeServices shows (a rollout in progress, a complete one, a
FAILED or vanished or superseded one, ECS's failedTasks), which tasks have stopped and how (a failed pull, an exit
before or after RUNNING, with or without startedAt, a failed health check, scale-in, a Spot interruption, ...),
whether older tasks still run and what the stopped task's log says. `drive` answers the judgement's Needs from it,
as DeploymentWatch answers them from ECS, and the properties hold over every sequence:

- never succeeds before the stability window has passed since the deployment was last seen not ready;
- never succeeds over a task of the deployment that stopped for a reason of its own inside the window, nor while
  one is still stopping for a reason only its exit codes will tell;
- fails at the circuit breaker threshold and not before: no failure without a cause in the world;
- a FAILED rolloutState, a superseded deployment, or one gone (once seen, or after the visibility grace) fails at once;
- success, once declared, stays: later looks say succeeded, or failed;
- an adopted deployment's stops from before the watch are history;
- a crash is reported within a rescan and the log grace; the judgement never asks twice for what it was given.
"""

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workflow.deployments import (
    LOG_LINES,
    OLDER_TASKS,
    RESCAN_SECONDS,
    STOPPED_TASKS,
    Failed,
    Needs,
    Observation,
    Pending,
    Stopped,
    Succeeded,
    Target,
    WatchPolicy,
    WatchState,
    circuit_breaker_threshold,
    judge,
    ran,
    stop_cause,
    stopped_running,
)
from workflow.ecs import EXITED, FAILED_TO_START, Container, Deployment, Event, Service, Task

EPOCH = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NAME = "airflow-prod-worker"
OURS, OLDER, NEWER = "ecs-svc/1000000000000000001", "ecs-svc/1000000000000000002", "ecs-svc/1000000000000000003"
DEFINITION = "arn:aws:ecs:us-east-1:123456789012:task-definition/worker:7"
ESSENTIAL = frozenset({"celery-worker"})
DESIRED = 2

# Examples are cheap (no I/O): enough of them to explore, bounded so the file runs in a few seconds.
SETTINGS = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def wall(t: float) -> datetime:
    return EPOCH + timedelta(seconds=t)


# --- how tasks stop --------------------------------------------------------------------------------------------

EXITED_REASON = "Essential container in task exited"
# kind: (stopCode, stoppedReason, essential container's exit code, startedAt set, exit code known while stopping)
KINDS = {
    "pull": ("TaskFailedToStart", "CannotPullContainerError: ref not found", None, False, True),
    "exit-before-running": ("EssentialContainerExited", EXITED_REASON, 3, False, True),
    "crash": ("EssentialContainerExited", EXITED_REASON, 1, True, True),
    "crash-without-started-at": ("EssentialContainerExited", EXITED_REASON, 1, False, True),
    "crash-said-running": ("EssentialContainerExited", EXITED_REASON, 1, False, True),  # a service event says so
    "exit-0": ("EssentialContainerExited", EXITED_REASON, 0, True, False),
    "unhealthy": ("ServiceSchedulerInitiated", "Task failed ELB health checks in (target-group tg)", 143, True, False),
    "unexplained": (None, "Host stopped", 0, True, False),
    "scaled-in": ("ServiceSchedulerInitiated", f"Scaling activity initiated by (deployment {OURS})", 143, True, False),
    "replaced": ("ServiceSchedulerInitiated", "AZ Rebalancing", 143, True, False),
    "user": ("UserInitiated", "Task stopped by user", 143, True, False),
    "spot": ("SpotInterruption", "Your Spot Task was interrupted.", 0, True, False),
}
NOT_ITS_FAULT = {"scaled-in", "replaced", "user", "spot"}
CRASHES = {"crash", "crash-said-running", "exit-0"}  # exits after RUNNING, as every signal says: fail at once


@dataclass(frozen=True)
class WorldTask:
    number: int
    ours: bool
    kind: str
    stop_at: float  # told to stop (on the watch's clock; below 0: before the watch began)
    stopped_at: float  # STOPPED from then on
    log_at: float  # its last lines can be read from then on

    @property
    def arn(self) -> str:
        return f"arn:aws:ecs:us-east-1:123456789012:task/airflow-prod/{self.number:032x}"

    @property
    def id(self) -> str:
        return f"{self.number:032x}"

    def view(self, now: float) -> Task:
        code, reason, exit_code, started, known_early = KINDS[self.kind]
        done = now >= self.stopped_at
        shown = exit_code if (done or known_early) else None
        containers = (Container("celery-worker", "STOPPED" if shown is not None else "RUNNING", shown, None),
                      Container("log-router", "STOPPED" if done else "RUNNING", 143 if done else None, None))
        return Task(
            arn=self.arn, last_status="STOPPED" if done else "STOPPING", desired_status="STOPPED",
            task_definition=DEFINITION, started_by=OURS if self.ours else OLDER, stop_code=code, stopped_reason=reason,
            containers=containers, group=f"service:{NAME}", reached_running=started, stopping_at=wall(self.stop_at),
            pull_started_at=wall(self.stop_at - 5), pull_stopped_at=None if self.kind == "pull" else wall(self.stop_at - 3),
            execution_stopped_at=wall(self.stopped_at) if done else None,
        )

    def failure(self) -> bool:
        """Stopped for a reason of its own (the image's, the task's), not one ECS or a person chose."""
        return self.ours and self.kind not in NOT_ITS_FAULT

    def judged_from(self) -> float:
        """When its stop can be told: once its exit code shows, or its stop code says why."""
        code, _, exit_code, _, known_early = KINDS[self.kind]
        return self.stop_at if known_early and exit_code else self.stopped_at


@dataclass(frozen=True)
class Look:
    """One step of the world: time passes, then DescribeServices shows `view`."""

    dt: float
    view: str  # ready | progress | rescaled | failed | missing | superseded
    failed_tasks: int
    stops: tuple[tuple[bool, str, float, float], ...]  # (ours, kind, when within dt (0..1], how long it stops)


@dataclass
class World:
    target: Target
    looks: list[Look]
    history: list[WorldTask] = field(default_factory=list)  # stopped before the watch began
    older_gone_at: float = 0.0
    log_delay: float = 0.0

    def __post_init__(self) -> None:
        self.tasks: list[WorldTask] = list(self.history)
        self.times: list[float] = []
        now, number = 0.0, len(self.history)
        for look in self.looks:
            for ours, kind, within, lasts in look.stops:
                number += 1
                at = now + within * look.dt
                self.tasks.append(WorldTask(number, ours, kind, at, at + lasts, at + self.log_delay))
            now += look.dt
            self.times.append(now)

    def service(self, look: Look, now: float) -> Service:
        events = tuple(Event(f"e{t.number}", wall(t.stop_at), f"(service {NAME}) has stopped 1 running tasks: (task {t.id}).")
                       for t in reversed(self.tasks) if t.kind == "crash-said-running" and t.stop_at <= now)
        ours = Deployment(OURS, "PRIMARY", DEFINITION, DESIRED, DESIRED, 0, look.failed_tasks, "COMPLETED", None)
        older = Deployment(OLDER, "ACTIVE", DEFINITION, 0, 1, 0, 0, "COMPLETED", None)
        deployments = {
            "ready": (ours,),
            "progress": (replace(ours, running=1, pending=1, rollout_state="IN_PROGRESS"), older),
            "failed": (replace(ours, running=0, rollout_state="FAILED", rollout_reason="tasks failed to start."), older),
            "missing": (replace(older, status="PRIMARY"),),
            "superseded": (replace(ours, id=NEWER), replace(ours, status="ACTIVE")),
            "rescaled": (replace(ours, desired=DESIRED + 1, pending=1),),  # someone else changed the desired count
        }[look.view]
        desired = deployments[0].desired
        running = sum(d.running for d in deployments)
        return Service(NAME, f"arn:aws:ecs:us-east-1:123456789012:service/airflow-prod/{NAME}", "ACTIVE", desired,
                       running, 0, DEFINITION, deployments, events)

    def answer(self, what: str, seen: Observation, state: WatchState) -> Observation:
        now = seen.now
        if what == STOPPED_TASKS:
            listed = [t for t in self.tasks if t.stop_at <= now and t.arn not in state.known]
            return replace(seen, stopped=tuple(Stopped(t.view(now), ESSENTIAL if t.ours else frozenset()) for t in listed))
        if what == OLDER_TASKS:
            return replace(seen, older_running=now < self.older_gone_at)
        assert what == LOG_LINES
        assert state.failing is not None
        task = next(t for t in self.tasks if t.arn == state.failing.task.arn)
        return replace(seen, log_lines=("ERROR: cannot connect to broker",) if now >= task.log_at else ())


@dataclass(frozen=True)
class Step:
    now: float
    look: Look
    verdict: Pending | Succeeded | Failed
    before: WatchState
    after: WatchState


def drive(world: World) -> list[Step]:
    """Judge each look, answering Needs from the world; stop at the first failure."""
    state = WatchState.begin(world.target)
    steps = []
    for look, now in zip(world.looks, world.times, strict=True):
        seen = Observation(world.service(look, now), now, wall(now))
        before, asked = state, set()
        while True:
            result = judge(state, seen)
            assert judge(state, seen) == result  # nothing hidden: the same look at the same state says the same
            state, verdict = result
            if not isinstance(verdict, Needs):
                break
            assert verdict.what not in asked, f"asked twice for {verdict.what}"
            asked.add(verdict.what)
            seen = world.answer(verdict.what, seen, state)
        steps.append(Step(now, look, verdict, before, state))
        if isinstance(verdict, Failed):
            break
    return steps


# --- worlds ------------------------------------------------------------------------------------------------
# A look is drawn as one integer whose digits pick each of its choices (`Choices`): generating stays cheap, and
# as Hypothesis shrinks the integers towards 0 every choice shrinks towards the first, simplest option.

FATES = ("rescaled", "failed", "missing", "superseded")  # looks that end a deployment
LOOK = 2**40


class Choices:
    def __init__(self, number: int):
        self.number = number

    def __call__(self, *options):
        self.number, index = divmod(self.number, len(options))
        return options[index]


# Stops that restart the window, drawn more often than crashes, which end a sequence at once.
STOP_KINDS = (*KINDS, *[kind for kind in KINDS if kind not in CRASHES] * 2)


def look_of(number: int, views=("ready", "ready", "ready", "progress"), ours=(True, True, False),
            kinds=STOP_KINDS) -> Look:
    choose = Choices(number)
    dt = choose(1.0, 0.5, 2.0, 5.0, 10.0)
    view = choose(*views)
    failed = choose(*(0,) * 30, 1, 2, 3)
    stops = tuple((choose(*ours), choose(*kinds), choose(1.0, 0.5, 0.25), choose(0.0, 1.0, 3.0, 40.0))
                  for _ in range(choose(0, 0, 1, 2)))
    return Look(dt, view, failed, stops)


@st.composite
def worlds(draw, look_at=look_of, adopted=(False, True), fates=FATES):
    choose = Choices(draw(st.integers(0, 2**48)))
    rules = WatchPolicy(stability_window=choose(10.0, 0.0, 3.0, 30.0), max_failed_tasks=choose(None, None, None, 1, 2),
                        visibility_grace=choose(30.0, 0.0, 5.0), log_grace=choose(6.0, 0.0))
    target = Target(OURS, rules, 0.0, wall(0), drained=choose(True, False), old_tasks_stopped=choose(False, True),
                    desired=choose(None, DESIRED), adopted=choose(*adopted))
    history = []  # what an adopted deployment's tasks did before the watch began
    for number in range(choose(0, 1, 3) if target.adopted else 0):
        ours, kind, before, lasts = choose(True, False), choose(*KINDS), choose(0.0, 1.0, 20.0), choose(0.0, 5.0, 40.0)
        history.append(WorldTask(number, ours, kind, -before, -before + lasts, -before))
    looks = [look_at(n) for n in draw(st.lists(st.integers(0, LOOK), min_size=1, max_size=40))]
    fate = choose(None, None, None, *fates)
    if fate:  # from some look on: for good, or for one look (a stale or odd answer)
        at = choose(*range(len(looks)))
        until = choose(len(looks), at + 1)
        looks[at:until] = [replace(look, view=fate) for look in looks[at:until]]
    return World(target, looks, history, older_gone_at=choose(0.0, 5.0, 60.0), log_delay=choose(0.0, 3.0, 20.0))


def threshold(world: World) -> int:
    return world.target.policy.max_failed_tasks or circuit_breaker_threshold(DESIRED)


def ready(world: World, step: Step) -> bool:
    return step.look.view == "ready" and (not world.target.old_tasks_stopped or step.now >= world.older_gone_at)


def history(world: World, task: WorldTask) -> bool:
    return world.target.adopted and task.stop_at <= 0


# --- invariants: each holds over every driven world ----------------------------------------------------------


def never_succeeds_before_the_window_has_passed_since_the_deployment_was_last_seen_not_ready(world, steps):
    ready_since = None
    for step in steps:
        ready_since = (step.now if ready_since is None else ready_since) if ready(world, step) else None
        if isinstance(step.verdict, Succeeded) and not step.before.succeeded:
            assert ready_since is not None
            assert step.now - ready_since >= world.target.policy.stability_window


def never_succeeds_over_a_task_stopped_for_its_own_reasons_inside_the_window_or_still_stopping(world, steps):
    first = next((s for s in steps if isinstance(s.verdict, Succeeded)), None)
    if first is None:
        return
    t, window = first.now, world.target.policy.stability_window
    for task in world.tasks:
        if not task.failure() or history(world, task):
            continue
        assert not (window > 0 and t - window < task.stop_at <= t), f"succeeded at {t} over {task}"
        if task.kind in ("exit-0", "unexplained"):  # why it stops shows only once it has
            assert not (task.stop_at <= t < task.stopped_at), f"succeeded at {t} while {task} was stopping"


def success_once_declared_stays_unless_a_failure_is_found(world, steps):
    succeeded = False
    for step in steps:
        if succeeded:
            assert isinstance(step.verdict, Succeeded | Failed) or step.after.failing is not None, step
        succeeded = succeeded or isinstance(step.verdict, Succeeded)


def fails_at_the_circuit_breaker_threshold(world, steps):
    limit = threshold(world)
    for step in steps:
        if isinstance(step.verdict, Failed) and "failed (threshold" in step.verdict.reason:
            assert step.look.failed_tasks >= limit
            assert f"(threshold {limit})" in step.verdict.reason
        present = step.look.view in ("ready", "progress") or (step.look.view == "rescaled" and world.target.desired is None)
        if present and step.look.failed_tasks >= limit and step.after.failing is None:
            assert isinstance(step.verdict, Failed), step


def a_failed_superseded_rescaled_or_vanished_deployment_fails_at_once(world, steps):
    seen, grace = False, world.target.policy.visibility_grace
    for step in steps:
        view, verdict = step.look.view, step.verdict
        if step.before.failing is None:
            if view == "failed":
                assert isinstance(verdict, Failed)
                assert f"deployment {OURS} failed: tasks failed to start." in verdict.reason
            if view == "superseded":
                assert isinstance(verdict, Failed)
                assert "is no longer deployed" in verdict.reason
            if view == "rescaled" and world.target.desired is not None:
                assert isinstance(verdict, Failed)
                assert "another operation set" in verdict.reason
            if view == "missing" and (seen or step.now >= grace):
                assert isinstance(verdict, Failed)
                assert ("is no longer deployed" if seen else "never appeared") in verdict.reason
            if view == "missing" and not (seen or step.now >= grace):
                assert isinstance(verdict, Pending)  # not visible yet, right after UpdateService
        seen = seen or view != "missing"


def fails_only_for_a_cause_the_world_gave_it(world, steps):
    limit = threshold(world)
    ours = [t for t in world.tasks if t.failure() and not history(world, t)]
    causes = [look for look in world.looks if look.failed_tasks >= limit
              or look.view in ("failed", "superseded", "missing") or (look.view == "rescaled" and world.target.desired)]
    if causes or len(ours) >= limit or any(t.kind in CRASHES for t in ours):
        return
    assert not any(isinstance(step.verdict, Failed) for step in steps)


def keeps_stopping_only_after_as_many_stops_as_the_threshold(world, steps):
    failed = steps[-1].verdict
    if isinstance(failed, Failed) and "keep stopping" in failed.reason:
        ours = [t for t in world.tasks if t.failure() and not history(world, t) and t.stop_at <= steps[-1].now]
        assert len(ours) >= threshold(world)
        assert f"keep stopping: {threshold(world)} stopped" in failed.reason
        assert "; last: task " in failed.reason


def a_crash_fails_the_deployment_within_a_rescan_and_the_log_grace(world, steps):
    policy = world.target.policy
    for task in world.tasks:
        if task.kind not in CRASHES or not task.ours or history(world, task):
            continue
        deadline = max(task.judged_from(), policy.visibility_grace) + RESCAN_SECONDS + policy.log_grace
        late = [i for i, step in enumerate(steps) if step.now >= deadline]
        if late:
            assert any(isinstance(step.verdict, Failed) for step in steps[: late[0] + 1]), (task, deadline)


INVARIANTS = [
    never_succeeds_before_the_window_has_passed_since_the_deployment_was_last_seen_not_ready,
    never_succeeds_over_a_task_stopped_for_its_own_reasons_inside_the_window_or_still_stopping,
    success_once_declared_stays_unless_a_failure_is_found,
    fails_at_the_circuit_breaker_threshold,
    a_failed_superseded_rescaled_or_vanished_deployment_fails_at_once,
    fails_only_for_a_cause_the_world_gave_it,
    keeps_stopping_only_after_as_many_stops_as_the_threshold,
    a_crash_fails_the_deployment_within_a_rescan_and_the_log_grace,
]


# Each example drives one world and checks every invariant on it: generating worlds is most of the cost.
@SETTINGS
@given(worlds())
def test_every_invariant_holds_over_generated_looks(world):
    steps = drive(world)
    for invariant in INVARIANTS:
        invariant(world, steps)


def quiet_look(number: int) -> Look:
    """Ready, ECS counting no failure, and no stop of its own: only others' stops, and its own not-its-fault ones."""
    look = look_of(number, views=("ready",))
    return replace(look, failed_tasks=0, stops=tuple(s for s in look.stops if not s[0] or s[1] in NOT_ITS_FAULT))


@settings(SETTINGS, max_examples=100)
@given(worlds(look_at=quiet_look, adopted=(True,), fates=()))
def test_an_adopted_deployment_takes_stops_from_before_the_watch_as_history(world):
    """Whatever its tasks did before the watch began (crashes too), a deployment that runs, with no stop of its own
    since, succeeds once the window has passed, unless a task that stopped before is still stopping."""
    steps = drive(world)
    assert not any(isinstance(step.verdict, Failed) for step in steps)
    began = max(steps[0].now, world.older_gone_at if world.target.old_tasks_stopped else 0.0)
    due = [step for step in steps if step.now >= began + world.target.policy.stability_window]
    if due:
        assert isinstance(due[0].verdict, Succeeded)


# --- examples: tasks that keep stopping (issue 21, item 8) ---------------------------------------------------


def policy(window: float = 10.0) -> WatchPolicy:
    return WatchPolicy(stability_window=window)


def world_of(*looks: Look, window: float = 10.0, adopted: bool = False, log_delay: float = 0.0) -> World:
    return World(Target(OURS, policy(window), 0.0, wall(0), adopted=adopted), list(looks), log_delay=log_delay)


def ready_look(dt: float, *stops: tuple[bool, str, float, float]) -> Look:
    return Look(dt, "ready", 0, stops)


def verdicts(world: World) -> list[tuple[float, str]]:
    return [(step.now, type(step.verdict).__name__) for step in drive(world)]


def test_a_crash_without_started_at_that_an_event_calls_running_fails_at_once():
    world = world_of(ready_look(1), ready_look(5, (True, "crash-said-running", 1.0, 0.0)), ready_look(5))
    assert verdicts(world) == [(1.0, "Pending"), (6.0, "Pending"), (11.0, "Failed")]  # seen at the rescan
    last = drive(world)[-1].verdict
    assert isinstance(last, Failed)
    assert "exited after it was running: essential container celery-worker exited with code 1" in last.reason
    assert "last log lines of celery-worker:\n    ERROR: cannot connect to broker" in last.reason


def test_crashes_filed_as_failed_launches_restart_the_window_and_fail_it_at_the_threshold():
    """No startedAt, no event: each crash looks like a failed launch that ECS's failedTasks (reset by every healthy
    start) never counts up to the breaker; the window starts again at each, and the third fails it."""
    crash = (True, "crash-without-started-at", 0.5, 0.0)
    world = world_of(ready_look(1), ready_look(5, crash), ready_look(5), ready_look(5, crash), ready_look(5),
                     ready_look(5, crash), ready_look(5))
    steps = drive(world)
    assert [v for _, v in verdicts(world)] == ["Pending"] * 6 + ["Failed"]
    lines = [line for step in steps for line in step.verdict.lines]
    assert any("failed to start: Essential container in task exited (celery-worker exited with code 1)" in line
               for line in lines)
    assert any("(1 of the 3 such stops that fail it); its stability window starts again" in line for line in lines)
    reason = steps[-1].verdict.reason
    assert reason.startswith(f"{NAME}: tasks of deployment {OURS} keep stopping: 3 stopped since it completed "
                             "(threshold 3); last: task ")
    assert "failed to start: Essential container in task exited (celery-worker exited with code 1)" in reason
    assert "last log lines of celery-worker" in reason
    assert "ECS keeps replacing" in reason


def test_the_last_stop_is_quoted_with_its_log_once_the_lines_arrive_or_the_grace_passes():
    """Judged while still stopping (its exit code shows), the last stop's log lines may still be on their way."""
    crash = (True, "crash-without-started-at", 1.0, 40.0)
    looks = [ready_look(1), ready_look(1, crash), ready_look(1, crash), ready_look(1, crash), ready_look(7),
             ready_look(3), ready_look(3)]
    late = world_of(*looks, log_delay=100.0)
    assert verdicts(late)[-3:] == [(11.0, "Pending"), (14.0, "Pending"), (17.0, "Failed")]  # the 6 s log grace
    reason = drive(late)[-1].verdict.reason
    assert "keep stopping" in reason
    assert "last log lines" not in reason
    prompt = world_of(*looks, log_delay=1.5)
    assert verdicts(prompt)[-1] == (11.0, "Failed")
    assert "last log lines of celery-worker:\n    ERROR: cannot connect to broker" in drive(prompt)[-1].verdict.reason


def test_a_stop_from_before_the_deployment_completed_seen_only_at_the_windows_end_is_not_counted():
    """A failed launch during the rollout, listed late: the deployment has been complete since, so it is stable."""
    world = world_of(Look(1, "progress", 0, ((True, "pull", 0.5, 0.0),)), ready_look(1), ready_look(10))
    assert verdicts(world)[-1] == (12.0, "Succeeded")


@pytest.mark.parametrize("stopping_at, execution_stopped_at, counted", [
    (5.0, None, True), (0.5, None, False), (None, 5.0, True), (None, 0.5, False), (None, None, True),
])
def test_a_stop_is_placed_by_stopping_at_else_execution_stopped_at_else_counted(stopping_at, execution_stopped_at,
                                                                               counted):
    task = WorldTask(1, True, "pull", 5.0, 5.0, 5.0).view(6.0)
    task = replace(task, stopping_at=stopping_at and wall(stopping_at),
                   execution_stopped_at=execution_stopped_at and wall(execution_stopped_at))
    target = Target(OURS, policy(), 0.0, wall(0))
    service = world_of().service(ready_look(1), 1.0)
    state, verdict = judge(WatchState.begin(target), Observation(service, 1.0, wall(1.0), stopped=()))
    assert state.stable_since == 1.0
    assert isinstance(verdict, Pending)
    state, verdict = judge(state, Observation(service, 6.0, wall(6.0), stopped=(Stopped(task, ESSENTIAL),)))
    assert (state.stops, state.stable_since) == ((1, 6.0) if counted else (0, 1.0))


@pytest.mark.parametrize("kind", sorted(NOT_ITS_FAULT))
def test_stops_that_are_not_its_fault_neither_restart_nor_fail_the_window(kind):
    world = world_of(ready_look(1), ready_look(5, (True, kind, 0.5, 0.0)), ready_look(5))
    assert verdicts(world) == [(1.0, "Pending"), (6.0, "Pending"), (11.0, "Succeeded")]


def test_stops_after_success_count_without_taking_the_success_back():
    crash = (True, "crash-without-started-at", 1.0, 0.0)
    world = world_of(ready_look(1), ready_look(10), ready_look(10, crash), ready_look(10, crash), ready_look(10, crash))
    assert [v for _, v in verdicts(world)] == ["Pending", "Succeeded", "Succeeded", "Succeeded", "Failed"]


def test_an_adopted_deployment_sets_aside_a_crash_from_before_the_watch_but_not_one_after():
    before = World(Target(OURS, policy(), 0.0, wall(0), adopted=True), [ready_look(1), ready_look(10)],
                   history=[WorldTask(0, True, "crash", -2.0, -1.0, -2.0)])
    assert verdicts(before)[-1] == (11.0, "Succeeded")
    created = World(Target(OURS, policy(), 0.0, wall(0)), [ready_look(1), ready_look(10)],
                    history=[WorldTask(0, True, "crash", -2.0, -1.0, -2.0)])
    assert verdicts(created)[-1] == (1.0, "Failed")  # a deployment this command created has no history


def test_a_task_whose_image_pull_never_ended_never_ran_whatever_an_event_says():
    pulled = WorldTask(1, True, "crash-without-started-at", 1.0, 1.0, 1.0).view(2.0)
    never = replace(pulled, pull_stopped_at=None)
    event = Event("e", wall(1.0), f"(service {NAME}) has stopped 1 running tasks: (task {pulled.id}).")
    service = replace(world_of().service(ready_look(1), 1.0), events=(event,))
    assert ran(pulled, service)
    assert not ran(never, service)
    assert stop_cause(pulled, service) == EXITED
    assert stop_cause(never, service) == FAILED_TO_START


@pytest.mark.parametrize("message, ids", [
    ("(service w) has stopped 1 running tasks: (task 0a1b).", {"0a1b"}),
    ("(service w) has stopped 2 running tasks: (task 0a1b) (task c2d3).", {"0a1b", "c2d3"}),
    ("(service w) has started 1 tasks: (task 0a1b).", set()),
    ("(service w) (task 0a1b) (port 8080) is unhealthy in (target-group tg) due to (reason Health checks failed).", set()),
])
def test_the_service_events_that_say_which_running_tasks_stopped(message, ids):
    assert stopped_running(message) == ids
