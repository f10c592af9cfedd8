"""A task's CloudWatch Logs stream, as the awslogs driver names it; the only code calling the Logs client.

Reading logs is ancillary: an error while reading them is reported once and never fails a command,
because a false failure of a migration invites a second one beside the first.
"""

from collections.abc import Callable

from .errors import AwsError, WorkflowError, translated

TAIL_LINES = 10


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
        group, prefix = log_options.get("awslogs-group"), log_options.get("awslogs-stream-prefix")
        if not group or not prefix:
            return None
        return cls(logs(log_options.get("awslogs-region")), group, f"{prefix}/{container}/{task_id}")

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
