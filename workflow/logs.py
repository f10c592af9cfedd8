"""Follows a task's CloudWatch Logs stream, as the awslogs driver names it; the only code calling the Logs client."""

from collections.abc import Callable

from .errors import AwsError, translated


class LogStream:
    """New lines since the last call; a stream not created yet simply has none."""

    def __init__(self, client, group: str, name: str):
        self.client, self.group, self.name = client, group, name
        self._token: str | None = None

    @classmethod
    def for_container(cls, client: Callable[[], object], log_options: dict, container: str, task_id: str):
        """The awslogs stream of `container` in a task: <prefix>/<container>/<task id>, or None if not awslogs.

        `client` builds the Logs client, so a container that does not log to CloudWatch costs nothing.
        """
        group, prefix = log_options.get("awslogs-group"), log_options.get("awslogs-stream-prefix")
        if not group or not prefix:
            return None
        return cls(client(), group, f"{prefix}/{container}/{task_id}")

    def new_lines(self) -> list[str]:
        lines: list[str] = []
        while True:
            kwargs = {"nextToken": self._token} if self._token else {}
            try:
                with translated():
                    answer = self.client.get_log_events(
                        logGroupName=self.group, logStreamName=self.name, startFromHead=True, **kwargs
                    )
            except AwsError as error:
                if error.code == "ResourceNotFoundException":
                    return lines
                raise
            lines += [event["message"] for event in answer.get("events", [])]
            token = answer.get("nextForwardToken")
            if not answer.get("events") or token == self._token:
                self._token = token or self._token
                return lines
            self._token = token

