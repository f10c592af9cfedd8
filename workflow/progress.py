"""Progress lines on stderr: plain, stamped, one per phase and per observed change."""

import os
import re
from collections.abc import Callable
from contextlib import contextmanager
from datetime import UTC, datetime

import click

from .ecs import Service, Task


def use_color(stream) -> bool:
    return "NO_COLOR" not in os.environ and getattr(stream, "isatty", lambda: False)()


class Reporter:
    """Plain progress lines stamped with UTC wall-clock time (to match against ECS events and CloudWatch)
    and the seconds since the command began: one per phase start and end, one per observed change."""

    def __init__(
        self,
        clock: Callable[[], float],
        write: Callable[[str], None] | None = None,
        color: bool = False,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.clock, self.now = clock, now
        self.started = clock()
        self.color = color
        self._write = write or (lambda text: click.echo(text, err=True))
        self._last: dict[str, tuple] = {}
        self._seen_events: dict[str, set[str]] = {}

    def line(self, text: str, style: dict | None = None) -> None:
        stamp = f"[{self.now():%H:%M:%S}Z {self.clock() - self.started:+5.0f}s]"
        try:
            self._write(f"{stamp} {click.style(text, **style) if style and self.color else text}")
        except (BrokenPipeError, ValueError):
            # Whoever read the progress has gone (`| head`): the operation itself must finish or stop cleanly.
            self._write = lambda _text: None

    @contextmanager
    def phase(self, title: str):
        began = self.clock()
        self.line(f"==> {title}", {"bold": True})
        try:
            yield
        except BaseException:
            self.line(f"<== {title}: stopped after {self.clock() - began:.0f}s", {"fg": "red"})
            raise
        self.line(f"<== {title}: done in {self.clock() - began:.0f}s", {"fg": "green"})

    def service(self, service: Service, deployment_id: str | None = None) -> None:
        """Report a service when its counts or deployments change, and any events it has not shown yet."""
        deployment = service.deployment(deployment_id) if deployment_id else service.primary
        key = (service.desired, service.running, service.pending, len(service.deployments),
               deployment and deployment.rollout_state, deployment and deployment.running)
        seen = self._seen_events.get(service.name)
        if seen is not None:
            for event in reversed(service.events):
                if event.id not in seen:
                    self.line(f"{service.name}: event: {shorten_ids(_strip_service(event.message, service.name))}")
        self._seen_events[service.name] = {e.id for e in service.events}
        if self._last.get(service.name) == key:
            return
        self._last[service.name] = key
        # Service totals first, then the watched deployment's own counts: both matter, and they differ mid-rollout.
        text = f"{service.name}: total {service.running}/{service.desired} running, {service.pending} pending"
        if deployment:
            text += f" | deploy {short_deployment(deployment.id)} {deployment.rollout_state or deployment.status}"
            text += f" {deployment.running}/{deployment.desired}"
        old = len(service.deployments) - 1
        self.line(text + (f" | {old} old deployment{'s' if old > 1 else ''} draining" if old > 0 else ""))

    def task(self, label: str, task: Task) -> None:
        key = (task.last_status, task.desired_status)
        if self._last.get(task.arn) != key:
            self._last[task.arn] = key
            self.line(f"{label} task {short_task(task.id)}: {task.last_status} (desired {task.desired_status})")


def short_deployment(deployment_id: str) -> str:
    """The tail of a deployment id (ecs-svc/ and 19 digits): enough to tell deployments apart in a log."""
    return deployment_id.rsplit("/", 1)[-1][-6:]


def short_task(task_id: str) -> str:
    return task_id[:8]


def shorten_ids(text: str) -> str:
    """ECS's event text with task UUIDs and deployment ids cut as in our own lines, so lines fit a terminal."""
    text = re.sub(r"\(task ([0-9a-f]{8})[0-9a-f-]{24,}\)", r"(task \1)", text)
    return re.sub(r"ecs-svc/\d+(\d{6})\b", r"deploy \1", text)


def _strip_service(message: str, name: str) -> str:
    prefix = f"(service {name}) "
    return message[len(prefix):] if message.startswith(prefix) else message
