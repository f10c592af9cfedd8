"""Progress lines on stderr: plain, stamped, one per phase and per observed change, wrapped to the terminal's width."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from .poller import duration

if TYPE_CHECKING:  # annotations only: a command's --help need not build the ECS model's dataclasses
    from .ecs import Service, Task

DEFAULT_WIDTH = 80  # a CI log, or any stream that is not a terminal
NARROWEST = 40  # below this, a hanging indent would leave no room for the text
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_PIECE = re.compile(r"\s*\S+")
_DIGEST = re.compile(r"\b(sha256:[0-9a-f]{12})[0-9a-f]{52}\b")


def use_color(stream) -> bool:
    return "NO_COLOR" not in os.environ and getattr(stream, "isatty", lambda: False)()


def width_of(stream=None) -> int:
    """The columns to fit: COLUMNS when set, else the terminal's width when `stream` (stderr) is a terminal, else 80."""
    columns = os.environ.get("COLUMNS", "").strip()
    if columns.isdigit() and int(columns) > 0:
        return max(int(columns), NARROWEST)
    stream = sys.stderr if stream is None else stream
    try:
        if stream.isatty():
            return max(os.get_terminal_size(stream.fileno()).columns, NARROWEST)
    except (AttributeError, OSError, ValueError):  # no file descriptor behind it (a test's buffer), or none any more
        pass
    return DEFAULT_WIDTH


def visible(text: str) -> int:
    """The columns `text` takes on a terminal: colour codes take none."""
    return len(_ANSI.sub("", text))


def wrap(text: str, width: int, first: int = 0, indent: int = 0) -> list[str]:
    """`text` (one line) in pieces that fit `width` columns when the first starts at column `first` and the others
    at `indent`: broken at spaces only, so a word, an ARN or a URL is never split, and one longer than the room
    left stays whole on a line of its own. Spaces inside a piece are kept as they were; colour codes count for
    nothing. The pieces come without the columns before them."""
    pieces: list[str] = []
    current, used = "", first
    for piece in _PIECE.findall(text):
        word = piece.lstrip()
        if current.strip() and used + visible(piece) > width:
            pieces.append(current)
            current, used = word, indent + visible(word)
        else:
            current, used = current + piece, used + visible(piece)
    pieces.append(current)
    return pieces


def hanging(text: str, width: int, first: int = 0, indent: int | None = None) -> str:
    """`text` wrapped to `width`, each continued line indented under the text (`indent`, by default `first`)."""
    indent = first if indent is None else indent
    lines = []
    for line in text.split("\n"):
        pieces = wrap(line, width, first, indent)
        lines.append(pieces[0] + "".join("\n" + " " * indent + piece for piece in pieces[1:]))
    return "\n".join(lines)


def wrap_message(message: str, width: int | None = None, prefix: int = len("Error: ")) -> str:
    """An error message that explains the state and the way out, wrapped as it is printed after `prefix`: its
    first line continues under its text; a line indented by two continues two columns further in; a line indented
    by four or more (a command to paste, with its own continued lines, or a quoted log line) is left as it is."""
    width = width_of() if width is None else width
    lines = []
    for n, line in enumerate(message.split("\n")):
        lead = len(line) - len(line.lstrip(" "))
        if lead >= 4 or visible(line) + (prefix if n == 0 else 0) <= width:
            lines.append(line)
            continue
        first, indent = (prefix, prefix + lead) if n == 0 else (0, lead + 2)
        lines.append(hanging(line, width, first, indent))
    return "\n".join(lines)


class Reporter:
    """Plain progress lines stamped with UTC wall-clock time (to match against ECS events and CloudWatch)
    and the seconds since the command began: one per phase start and end, one per observed change.

    A line longer than the width wraps at spaces, continued under its text. A service of the cluster is named
    without the cluster's prefix (`worker` for airflow-prod-worker) in every line once it has been seen."""

    def __init__(
        self,
        clock: Callable[[], float],
        write: Callable[[str], None] | None = None,
        color: bool = False,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        width: int | None = None,
    ):
        self.clock, self.now = clock, now
        self.started = clock()
        self.color = color
        self.width = width_of() if width is None else width
        self._write = write or (lambda text: click.echo(text, err=True))
        self._last: dict[str, tuple] = {}
        self._seen_events: dict[str, set[str]] = {}
        self._short: dict[str, str] = {}  # service name -> its name without the cluster's prefix
        self._names: re.Pattern | None = None

    def stamp(self) -> str:
        """`21:48:53Z   +1s `: the wall-clock time in UTC, then the seconds since the command began."""
        return f"{self.now():%H:%M:%S}Z {self.clock() - self.started:+4.0f}s "

    def line(self, text: str, style: dict | None = None) -> None:
        """One progress line; its own further lines (after a newline) go under its text, and those indented by four
        or more (a command to paste, with its own continued lines) are left as they are."""
        stamp = self.stamp()
        pad = " " * len(stamp)
        out = []
        for n, line in enumerate(short_digests(self.short(text)).split("\n")):
            lead = len(line) - len(line.lstrip(" "))
            pieces = [line] if n and lead >= 4 else wrap(line, self.width, len(stamp), len(stamp) + lead)
            if style and self.color:
                pieces = [click.style(piece, **style) for piece in pieces]
            out.append((pad if n else stamp) + pieces[0] + "".join(f"\n{pad}{' ' * lead}{piece}" for piece in pieces[1:]))
        try:
            self._write("\n".join(out))
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
            self.line(f"<== {title}: stopped after {duration(self.clock() - began)}", {"fg": "red"})
            raise
        self.line(f"<== {title}: done in {duration(self.clock() - began)}", {"fg": "green"})

    def service(self, service: Service, deployment_id: str | None = None) -> None:
        """Report a service when its counts or deployments change, and any events it has not shown yet."""
        self.learn(service.arn, service.name)
        deployment = service.deployment(deployment_id) if deployment_id else service.primary
        key = (service.desired, service.running, service.pending, len(service.deployments),
               deployment and deployment.rollout_state, deployment and deployment.running)
        name = self.short(service.name)
        seen = self._seen_events.get(service.name)
        if seen is not None:
            for event in reversed(service.events):
                if event.id not in seen:
                    self.line(f"{name}: event: {shorten_ids(_strip_service(event.message, service.name))}")
        self._seen_events[service.name] = {e.id for e in service.events}
        if self._last.get(service.name) == key:
            return
        self._last[service.name] = key
        self.line(f"{name}: {counts(service, deployment)}")

    def task(self, label: str, task: Task) -> None:
        if task.group.startswith("service:"):
            self.learn(task.arn, task.group.removeprefix("service:"))
        key = (task.last_status, task.desired_status)
        if self._last.get(task.arn) != key:
            self._last[task.arn] = key
            self.line(f"{label} task {short_task(task.id)}: {task.last_status} (desired {task.desired_status})")

    def learn(self, arn: str, name: str) -> None:
        """A service of the cluster the ARN names (service/<cluster>/<name>, task/<cluster>/<id>) is named without
        the cluster's prefix from now on."""
        cluster = cluster_of(arn)
        if name in self._short or not cluster or not name.startswith(cluster + "-") or len(name) <= len(cluster) + 1:
            return
        self._short[name] = name[len(cluster) + 1:]
        names = "|".join(re.escape(n) for n in sorted(self._short, key=len, reverse=True))
        # A task definition (name:revision), an ARN or a longer name that begins with it is not the service.
        self._names = re.compile(rf"(?:(?<![\w./:-])([\w-]+) )?(?<![\w./:-])({names})(?![\w-]|:\d)")

    def short(self, text: str) -> str:
        """The text with each service seen named without the cluster's prefix; `stop scheduler airflow-prod-scheduler`
        says its name once: `stop scheduler`."""
        if self._names is None:
            return text

        def named(match: re.Match) -> str:
            before, short = match.group(1), self._short[match.group(2)]
            return short if before == short else f"{before} {short}" if before else short

        return self._names.sub(named, text)


def counts(service: Service, deployment) -> str:
    """`3/3 running, 1 pending | deploy 177151 IN_PROGRESS 0/3 | 1 old draining`: the service's totals, then the
    watched deployment's own counts (they differ mid-rollout), then the older deployments not gone yet."""
    text = f"{service.running}/{service.desired} running" + (f", {service.pending} pending" if service.pending else "")
    if deployment:
        text += f" | deploy {short_deployment(deployment.id)} {deployment.rollout_state or deployment.status}"
        text += f" {deployment.running}/{deployment.desired}"
    old = len(service.deployments) - 1
    return text + (f" | {old} old draining" if old > 0 else "")


def cluster_of(arn: str) -> str | None:
    """The cluster an ECS service or task ARN names (the long ARN format); None for any other text."""
    if not arn.startswith("arn:"):
        return None
    parts = arn.split(":", 5)[-1].split("/")
    return parts[1] if len(parts) == 3 and parts[0] in ("service", "task") and parts[1] else None


def short_deployment(deployment_id: str) -> str:
    """The tail of a deployment id (ecs-svc/ and 19 digits): enough to tell deployments apart in a log."""
    return deployment_id.rsplit("/", 1)[-1][-6:]


def short_task(task_id: str) -> str:
    return task_id[:8]


def shorten_ids(text: str) -> str:
    """ECS's event text with task UUIDs and deployment ids cut as in our own lines, so lines fit a terminal."""
    text = re.sub(r"\(task ([0-9a-f]{8})[0-9a-f-]{24,}\)", r"(task \1)", text)
    return re.sub(r"ecs-svc/\d+(\d{6})\b", r"deploy \1", text)


def short_digests(text: str) -> str:
    """Image and blob digests cut to `sha256:` and 12 hex digits, as `docker images` shows them: a whole one takes
    most of a line. Results and errors keep them whole."""
    return _DIGEST.sub(r"\1", text)


def _strip_service(message: str, name: str) -> str:
    prefix = f"(service {name}) "
    return message[len(prefix):] if message.startswith(prefix) else message
