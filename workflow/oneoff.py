"""One-off tasks shaped like the worker's own (initialize's migration): run, follow, and judge them.

A one-off task succeeded only when the container whose command we replaced exited 0 and the task stopped
because an essential container exited. A Spot interruption or a StopTask ends the process early, often
with exit code 0, and is a failure that says so.
"""

import shlex
from dataclasses import dataclass

from .ecs import Service, Task, TaskDefinition
from .errors import NotApplied, OperationFailed, Refused, TaskFailed, Transient, WaitTimedOut
from .logs import LogFollower
from .recovery import NextStep, shell_lines

# The awslogs driver sends what it buffered every few seconds: lines may arrive after the task has stopped.
LOG_POLL_SECONDS = 2.0  # CloudWatch Logs read quotas are low, and a log line is never urgent
STOP_CODES = {
    "SpotInterruption": "was interrupted by Fargate Spot",
    "TerminationNotice": "was stopped by a termination notice",
    "UserInitiated": "was stopped by a user (StopTask)",
    "ServiceSchedulerInitiated": "was stopped by the service scheduler",
}


@dataclass(frozen=True)
class TaskOutcome:
    summary: str
    task: Task
    essential: frozenset[str]
    failure: str | None = None
    log: str | None = None  # where the container's whole log is
    next_steps: tuple[NextStep, ...] = ()  # commands that follow or stop a task still running


def choose_container(definition: TaskDefinition, container: str | None) -> str:
    """The container whose command is replaced: an essential one, or the task would never stop on its exit."""
    essential = sorted(definition.essential)
    names = [c.name for c in definition.containers]
    if container is None:
        if len(essential) != 1:
            raise Refused(
                f"task definition {definition.arn} has essential containers {', '.join(essential)}; "
                "choose one with --container"
            )
        return essential[0]
    if container not in names:
        raise Refused(f"task definition {definition.arn} has no container {container}; it has {', '.join(names)}")
    if container not in essential:
        raise Refused(
            f"container {container} of {definition.arn} is not essential: the task would not stop when its command "
            f"ends, and its exit code would not be checked; choose an essential one: {', '.join(essential)}"
        )
    return container


def run_one_off(env, service: Service, command: list[str], container: str | None, wait: bool,
                rerun_once_stopped: bool = False) -> TaskOutcome:
    """Run `command` in one task with `service`'s deployed task definition and network, and judge how it ended.

    `rerun_once_stopped`: running the command again is safe once this task has stopped (an idempotent migration),
    so a command stopped while it runs says to resume then; otherwise no resume is offered while it runs."""
    definition = env.ecs.task_definition(service.task_definition)
    container = choose_container(definition, container)
    essential = definition.essential
    with env.report.phase(f"run {shlex.join(command)} in {container} ({definition.arn.rsplit('/', 1)[-1]})"):
        env.before_change()
        task = _start(env, service, definition.arn, container, command)
        env.report.line(f"started task {task.id}")
        follow = LogFollower(env, definition.container(container).log_options, container, task.id)
        steps = _next_steps(env, task, follow)
        if not wait:
            return TaskOutcome(f"task {task.id} started in cluster {env.ecs.cluster}", task, essential,
                               log=follow.location, next_steps=steps)  # its ARN is the JSON's, a line's width alone
        env.recovery.state = f"one-off task {task.id} keeps running; stopping this command does not stop it"
        env.recovery.next_steps = steps
        # Running the command again now would start a second task beside this one.
        if rerun_once_stopped:
            env.recovery.resume_when = f"once task {task.id} has stopped"
        else:
            env.recovery.resumable = False
        began = env.poller.clock()
        task = _await_stopped(env, task, follow)
        _read_late_lines(env, follow, began + env.poller.timeout)
        env.recovery.state, env.recovery.resumable, env.recovery.resume_when = None, True, None
        env.recovery.next_steps = []
        failure = judge(task, container, essential)
        if failure:
            if follow.lines:
                failure += f"\n  last log lines of {container}:\n    " + "\n    ".join(follow.lines[-10:])
            if follow.location:
                failure += f"\n  the whole log: {follow.location}"
            raise TaskFailed(failure, TaskOutcome(f"task {task.id} failed", task, essential, failure, follow.location))
    return TaskOutcome(f"task {task.id} succeeded: {task.stopped_reason or 'stopped'}", task, essential,
                       log=follow.location)


def _start(env, service: Service, definition: str, container: str, command: list[str]) -> Task:
    """RunTask, asked again while AWS refuses it without acting (throttling, no connection) until the wait's
    deadline; an answer lost otherwise (a 5xx, a connection dropped after the request went out) may mean a
    task runs, and is never followed by a second request."""
    before, resumable = env.recovery.state, env.recovery.resumable

    def started() -> Task:
        # Said before the call: botocore repeats RunTask with the same clientToken, so a lost answer may still
        # mean one task runs, and running the command again would start a second.
        env.recovery.state = "a one-off task may have been started: its request's answer was lost"
        env.recovery.resumable = False
        try:
            return env.ecs.run_task(service, definition, container, command)
        except NotApplied:
            env.recovery.state, env.recovery.resumable = before, resumable  # nothing was started
            raise  # the poller asks again after a backoff
        except Transient as error:
            raise OperationFailed(
                f"RunTask's answer was lost ({error}); a task may be running: look for it before running this "
                "again:\n" + shell_lines(env.aws_words(["ecs", "list-tasks", "--cluster", env.ecs.cluster,
                                                        "--started-by", "workflow"]))
            ) from None

    task = env.poller.until(started, lambda: "ECS to accept RunTask, which it refused without starting a task")
    env.recovery.state, env.recovery.resumable = None, True
    return task


def _next_steps(env, task: Task, follow: LogFollower) -> tuple[NextStep, ...]:
    cluster = env.ecs.cluster
    watch = follow.tail_words or env.aws_words(["ecs", "describe-tasks", "--cluster", cluster, "--tasks", task.id])
    stop = env.aws_words(["ecs", "stop-task", "--cluster", cluster, "--task", task.id])
    return NextStep("read its log" if follow.tail_words else "look at it", shlex.join(watch)), \
        NextStep("stop it", shlex.join(stop))


def judge(task: Task, container: str, essential: frozenset[str]) -> str | None:
    """Why the stopped one-off task failed, or None when its command ran to exit code 0."""
    if task.stop_code in ("EssentialContainerExited", "TaskFailedToStart"):
        return task.failure(essential)
    how = STOP_CODES.get(task.stop_code or "", f"stopped ({task.stop_code or 'no stop code'})")
    code = task.exit_codes(frozenset([container])).get(container)
    return (
        f"task {task.id} {how} before its command finished: {task.stopped_reason or 'no reason given'}; "
        f"{container} exited with code {code}, which does not show that the command completed"
    )


def _await_stopped(env, task: Task, follow: LogFollower) -> Task:
    started = env.poller.clock()
    latest = task
    logs_read_at = started - LOG_POLL_SECONDS

    def stopped():
        nonlocal latest, logs_read_at
        current = env.ecs.task(task.arn)
        if env.poller.clock() - logs_read_at >= LOG_POLL_SECONDS:
            follow.poll()
            logs_read_at = env.poller.clock()
        if current is None:
            if env.poller.clock() - started < env.policy.visibility_grace:
                return None  # RunTask's task may be MISSING from DescribeTasks for a moment
            raise OperationFailed(
                f"task {task.id} has not been visible to DescribeTasks for {env.policy.visibility_grace:g}s "
                "after it was started; it may still run: check it before running the command again"
            )
        latest = current
        env.report.task("one-off", current)
        # Its containers have stopped, with their exit codes: DEPROVISIONING (ECS detaching the network interface)
        # changes nothing the judgement reads, so it is not waited for.
        return current if current.process_ended else None

    return env.poller.until(stopped, lambda: f"task {task.id} to stop (last seen {latest.last_status})")


def _read_late_lines(env, follow: LogFollower, deadline: float) -> None:
    """Keep reading for a few seconds after the stop: the awslogs driver's last batch may still be on its way.

    Only for as long as the wait for the stop had left (--timeout bounds the whole wait, --log-grace within it);
    the lines are a courtesy, so running out of time reading them never fails a task that has stopped.
    """
    grace = min(env.policy.log_grace, deadline - env.poller.clock())
    if not follow.following or grace <= 0:
        return
    settle = env.poller.clock() + grace
    env.report.line(f"reading the log for {round(grace, 1):g}s more: the awslogs driver sends its last lines late")

    def settled():
        follow.poll()
        return not follow.following or env.poller.clock() >= settle

    try:
        env.poller.until(settled, lambda: "the task's last log lines")
    except WaitTimedOut:
        pass
