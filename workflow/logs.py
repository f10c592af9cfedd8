"""Tasks' CloudWatch Logs streams, as the awslogs driver names them; the only code calling the Logs client.

Following a one-off task (LogStream, LogFollower, tail) is ancillary: an error while reading its lines is
reported once and never fails a command, because a false failure of a migration invites a second one beside
the first. Reading a service's lines (ServiceLogs, for `workflow logs`) is the command itself: errors fail it.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .ecs import Service, Task
from .errors import AwsError, NotFound, Refused, WorkflowError, translated

TAIL_LINES = 10
STREAM_NAMES_MAX = 100  # FilterLogEvents names at most 100 streams a call
# The awslogs driver ships what it buffered every few seconds, and CloudWatch indexes it a little later: each
# read while following looks this far back before the newest line already shown (event ids stop repeats).
LATE_SECONDS = 30.0


@dataclass(frozen=True)
class LogSource:
    """Where the awslogs driver sends one container's lines: stream <prefix>/<container>/<task id> of a group."""

    container: str
    group: str
    prefix: str
    region: str | None

    @classmethod
    def of(cls, container: str, log_options: dict) -> "LogSource | None":
        """The container's destination, or None when it does not log through awslogs with a stream prefix."""
        group, prefix = log_options.get("awslogs-group"), log_options.get("awslogs-stream-prefix")
        if not group or not prefix:
            return None
        return cls(container, group, prefix, log_options.get("awslogs-region"))

    def stream(self, task_id: str) -> str:
        return f"{self.prefix}/{self.container}/{task_id}"


class LogStream:
    """New lines since the last call; a stream not created yet simply has none."""

    def __init__(self, client, group: str, name: str):
        self.client, self.group, self.name = client, group, name
        self._token: str | None = None

    @classmethod
    def for_container(cls, logs: Callable, log_options: dict, container: str, task_id: str) -> "LogStream | None":
        """The awslogs stream of `container` in a task: <prefix>/<container>/<task id>, or None if not awslogs.

        `logs(region)` builds the Logs client for the Region the driver sends to, so a container that does
        not log to CloudWatch costs nothing.
        """
        source = LogSource.of(container, log_options)
        if source is None:
            return None
        return cls(logs(source.region), source.group, source.stream(task_id))

    def _get(self, **kwargs) -> dict | None:
        try:
            with translated():
                return self.client.get_log_events(logGroupName=self.group, logStreamName=self.name, **kwargs)
        except AwsError as error:
            if error.code == "ResourceNotFoundException":
                return None
            raise

    def new_lines(self) -> list[str]:
        """Every line after the last read. A page can be empty before the end; the end is the token coming back."""
        lines: list[str] = []
        while True:
            answer = self._get(startFromHead=True, **({"nextToken": self._token} if self._token else {}))
            if answer is None:
                return lines
            lines += [event["message"] for event in answer.get("events", [])]
            token = answer.get("nextForwardToken")
            if not token or token == self._token:
                return lines
            self._token = token

    def last_lines(self, count: int = TAIL_LINES) -> list[str]:
        answer = self._get(startFromHead=False, limit=count)
        return [event["message"] for event in (answer or {}).get("events", [])]


class LogFollower:
    """Prints a container's new log lines as progress and keeps them; gives up quietly after one error."""

    def __init__(self, env, log_options: dict, container: str, task_id: str):
        self.report, self.container = env.report, container
        self._open = (lambda: LogStream.for_container(env.logs, log_options, container, task_id)) if env.logs else None
        self._stream: LogStream | None = None
        self.lines: list[str] = []
        # Where the whole log can be read, whether or not this command could follow it.
        self.location: str | None = None
        # The AWS CLI command that reads its latest lines, as words: get-log-events, which AWS CLI v1 (Debian's
        # awscli) has too, where `aws logs tail` is v2's alone.
        self.tail_words: list[str] | None = None
        source = LogSource.of(container, log_options)
        if source is not None:
            stream, region = source.stream(task_id), source.region
            self.location = f"log group {source.group}, stream {stream}" + (f" ({region})" if region else "")
            self.tail_words = env.aws_words(["logs", "get-log-events", "--log-group-name", source.group,
                                             "--log-stream-name", stream], region)

    @property
    def following(self) -> bool:
        return self._open is not None

    def poll(self) -> bool:
        """Read what is new; True when there was something."""
        if self._open is None:
            return False
        try:
            self._stream = self._stream or self._open()  # built on first use: its client may fail to build
            new = self._stream.new_lines() if self._stream else []
        except WorkflowError as error:
            self.report.line(f"not following {self.container}'s logs: {error}")
            self._open = None
            return False
        if self._stream is None:
            self._open = None  # the container does not log to CloudWatch
        for line in new:
            self.report.line(f"{self.container} | {line}")
        self.lines += new
        return bool(new)


def tail(env, log_options: dict, container: str, task_id: str) -> list[str]:
    """The last lines a task's container logged, or none when they cannot be read (said once, as progress)."""
    if not env.logs:
        return []
    try:
        stream = LogStream.for_container(env.logs, log_options, container, task_id)
        return stream.last_lines() if stream else []
    except WorkflowError as error:
        env.report.line(f"cannot read {container}'s logs: {error}")
        return []


@dataclass(frozen=True)
class LogEvent:
    id: str
    at: datetime
    task_id: str
    container: str
    message: str
    stream: str


def read_streams(client, group: str, streams: dict[str, tuple[str, str]], start: datetime) -> list[LogEvent]:
    """Every event since `start` in the named streams of one group, each stream mapped to (task id, container).

    FilterLogEvents takes at most 100 stream names a call. It refuses the whole call when one named stream does
    not exist (a container that has not logged yet): that batch is read again by each stream's common prefix
    <prefix>/<container>/, keeping only the streams asked for.
    """
    start_ms = int(start.timestamp() * 1000)
    names = sorted(streams)
    raw: list[dict] = []
    for first in range(0, len(names), STREAM_NAMES_MAX):
        batch = names[first : first + STREAM_NAMES_MAX]
        try:
            raw += _filtered(client, group, start_ms, logStreamNames=batch)
        except AwsError as error:
            if error.code != "ResourceNotFoundException":
                raise
            for prefix in sorted({name.rsplit("/", 1)[0] + "/" for name in batch}):
                raw += _filtered(client, group, start_ms, logStreamNamePrefix=prefix)
    events = []
    for event in raw:
        owner = streams.get(event.get("logStreamName", ""))
        if owner is not None:
            at = datetime.fromtimestamp(event["timestamp"] / 1000, UTC)
            events.append(LogEvent(event["eventId"], at, *owner, event.get("message", ""), event["logStreamName"]))
    return events


def _filtered(client, group: str, start_ms: int, **streams) -> list[dict]:
    """All pages of one FilterLogEvents query; a page may be empty before the last (the search goes on)."""
    events: list[dict] = []
    token = None
    while True:
        try:
            with translated():
                answer = client.filter_log_events(
                    logGroupName=group, startTime=start_ms, **streams, **({"nextToken": token} if token else {})
                )
        except AwsError as error:
            if error.code == "ResourceNotFoundException" and "logStreamNamePrefix" in streams:
                region = client.meta.region_name
                raise NotFound(f"log group {group} not found in region {region}: {error}") from None
            raise
        events += answer.get("events", [])
        if not answer.get("nextToken") or answer["nextToken"] == token:
            return events
        token = answer["nextToken"]


class ServiceLogs:
    """The awslogs lines of one service's tasks, interleaved by time; each read answers only lines not seen before.

    Tasks come from ListTasks and DescribeTasks: those ECS wants running and those it stopped (ECS lists stopped
    tasks for about an hour); `refresh` lists them again, so a follower sees replacements. Each read asks for the
    streams of the containers that have started, from `start` on; after a read, `start` moves to LATE_SECONDS
    before the newest line, so lines the driver ships late still come, and ids seen since then are skipped.
    """

    def __init__(self, env, service: Service, since: datetime, container: str | None = None, task: str | None = None):
        self.env, self.service = env, service
        self.container, self.task_prefix = container, task
        self.start = since
        self.tasks: dict[str, Task] = {}
        self._known_stopped: set[str] = set()
        self._seen: dict[tuple[str, str], datetime] = {}  # (stream, event id) -> time, of events a read may answer again
        logging = self._logging(service.task_definition)
        if not logging:
            raise Refused(
                f"no container of {service.task_definition} logs to CloudWatch Logs "
                "(logDriver awslogs with awslogs-group and awslogs-stream-prefix)"
            )
        if container is not None and container not in {s.container for s in logging}:
            raise Refused(
                f"container {container} of {service.task_definition} does not log to CloudWatch Logs; "
                f"these do: {', '.join(s.container for s in logging)}"
            )

    def _logging(self, definition_arn: str) -> list[LogSource]:
        definition = self.env.ecs.task_definition(definition_arn)
        found = (LogSource.of(c.name, c.log_options) for c in definition.containers)
        return [source for source in found if source is not None]

    def sources(self, task: Task) -> list[LogSource]:
        return [s for s in self._logging(task.task_definition) if self.container in (None, s.container)]

    def refresh(self) -> list[Task]:
        """List the service's tasks again (two ListTasks, one DescribeTasks); answers those seen for the first time.

        A task seen STOPPED is not described again; one ECS no longer lists is dropped, with its streams.
        """
        ecs, name = self.env.ecs, self.service.name
        listed = [
            arn for arn in ecs.task_arns(name, "RUNNING") + ecs.task_arns(name, "STOPPED")
            if not self.task_prefix or arn.rsplit("/", 1)[-1].startswith(self.task_prefix)
        ]
        still_listed = set(listed)
        self.tasks = {arn: task for arn, task in self.tasks.items() if arn in still_listed}
        new = []
        for task in ecs.tasks([arn for arn in listed if arn not in self._known_stopped]):
            if task.is_stopped:
                self._known_stopped.add(task.arn)
            if task.arn not in self.tasks:
                new.append(task)
            self.tasks[task.arn] = task
        return new

    def read(self) -> list[LogEvent]:
        """The lines not answered before, oldest first; lines of one stream keep their order."""
        groups: dict[tuple[str | None, str], dict[str, tuple[str, str]]] = {}
        for task in self.tasks.values():
            started = {c.name for c in task.containers if c.last_status == "RUNNING" or c.exit_code is not None}
            for source in self.sources(task):
                if source.container in started:  # before it starts, a container has no stream
                    groups.setdefault((source.region, source.group), {})[source.stream(task.id)] = (task.id, source.container)
        events: list[LogEvent] = []
        for (region, group), streams in sorted(groups.items(), key=lambda item: (item[0][0] or "", item[0][1])):
            events += read_streams(self.env.logs(region), group, streams, self.start)
        fresh = sorted((e for e in events if (e.stream, e.id) not in self._seen), key=lambda e: e.at)
        for event in fresh:
            self._seen[event.stream, event.id] = event.at
        if fresh:
            self.start = max(self.start, fresh[-1].at - timedelta(seconds=LATE_SECONDS))
            self._seen = {i: at for i, at in self._seen.items() if at >= self.start}
        return fresh
