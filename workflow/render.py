"""Results as the operator reads them on stdout: text with tables, or one JSON document."""

import json
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime

from .progress import short_task


def result(outcome, output: str) -> str:
    """The whole result of a command, as text or as one JSON document."""
    if output == "json":
        return to_json(outcome)
    from .oneoff import TaskOutcome
    from .plan import Plan
    from .promote import PromoteOutcome
    from .releases import ReleasesOutcome

    if isinstance(outcome, Plan):
        return "\n".join([f"plan for {outcome.summary()} (dry run: nothing was changed):",
                          *(f"  {n}. {line}" for n, line in enumerate(outcome.steps(), 1))])
    lines = [outcome.summary]
    if isinstance(outcome, PromoteOutcome):
        lines.append(promote_table(outcome))
    elif isinstance(outcome, ReleasesOutcome):
        if outcome.releases:
            lines.append(releases_table(outcome))
    elif isinstance(outcome, TaskOutcome):
        lines.append(containers_table(outcome.task, outcome.essential))
        if outcome.task.stopped_reason:
            lines.append(f"stopped reason: {outcome.task.stopped_reason}")
        if outcome.log:
            lines.append(f"log: {outcome.log}")
        lines += outcome.next_steps
    elif getattr(outcome, "services", None):
        if getattr(outcome, "plan", None):
            lines += [f"  {line}" for line in outcome.plan.steps() if not line.startswith("stop ")]
        lines.append(services_table(outcome.services))
        if getattr(outcome, "images", None):
            lines += ["", images_table(outcome.images)]
        if getattr(outcome, "airflow", None):
            lines += ["", airflow_lines(outcome.airflow)]
    lines += [f"warning: {warning}" for warning in getattr(outcome, "warnings", ())]
    return "\n".join(lines)


def services_table(services) -> str:
    from tabulate import tabulate

    rows = []
    for s in services:
        primary = s.primary
        rows.append([s.name, s.desired, s.running, s.pending, primary.id if primary else "-",
                     (primary.rollout_state or primary.status) if primary else "-"])
    return tabulate(rows, headers=["service", "desired", "running", "pending", "deployment", "rollout"])


def airflow_lines(view) -> str:
    """Airflow's own view, as its health endpoint reports it."""
    parts = [f"metadatabase {view.metadatabase or 'unknown'}"]
    for c in view.components:
        age = f", heartbeat {c.heartbeat_age:.0f}s ago" if c.heartbeat_age is not None else ", no heartbeat yet"
        parts.append(f"{c.name} {c.status or 'never ran'}{age if c.status or c.heartbeat_age is not None else ''}")
    return f"Airflow {view.version} at {view.url}:\n  " + "\n  ".join(parts)


def images_table(images) -> str:
    """What runs: per service, each image digest its RUNNING tasks run (two while a rollout is under way)."""
    from tabulate import tabulate

    rows = [[i.service, i.task_definition, (i.digest or "unknown")[:19], i.tasks, ", ".join(i.tags) or "-"]
            for i in sorted(images, key=lambda i: (i.service, -i.tasks))]
    return tabulate(rows, headers=["service", "task definition", "image digest", "tasks", "tags"])


def containers_table(task, essential: frozenset[str]) -> str:
    from tabulate import tabulate

    rows = [[c.name, "yes" if c.name in essential else "no", c.last_status,
             "-" if c.exit_code is None else c.exit_code, c.reason or ""] for c in task.containers]
    return tabulate(rows, headers=["container", "essential", "status", "exit code", "reason"])


def promote_table(outcome) -> str:
    """Where it went and through which API, what each tag did, and what moved: blobs mounted, copied and already
    there, and the bytes uploaded; then what to run next."""
    from tabulate import tabulate

    moved = "would move" if outcome.dry_run else "moved"
    rows = [
        ["source", outcome.source],
        ["destination", f"{outcome.destination} ({outcome.digest})"],
        ["through", f"the {outcome.path}" + (f" ({outcome.where})" if outcome.where else "")],
        ["tags", ", ".join(f"{tag} ({state})" for tag, state in outcome.tags.items())],
        ["blobs", f"{outcome.blobs_mounted} mounted, {outcome.blobs_copied} copied, {outcome.blobs_present} already there"],
        [f"bytes {moved}", f"{outcome.bytes_copied} ({size(outcome.bytes_copied)})"],
        ["elapsed", f"{outcome.seconds:.1f}s"],
    ]
    lines = [tabulate(rows, tablefmt="plain")]
    lines += [f"note: {note}" for note in outcome.notes]
    lines += [f"next: {step}" for step in outcome.next_steps]
    return "\n".join(lines)


def releases_table(outcome) -> str:
    from tabulate import tabulate

    from .images import short
    from .tags import LATEST

    headers = ["stamp", "digest", "pushed at", "size", "latest"] + (["running on"] if outcome.running is not None else [])
    rows = []
    for r in outcome.releases:
        row = [r.stamp, short(r.digest), _when(r.pushed_at), size(r.size), LATEST if r.latest else ""]
        if outcome.running is not None:
            row.append(", ".join(_on(role, n, outcome.running[role]) for role, n in r.running_on.items()) or "-")
        rows.append(row)
    return tabulate(rows, headers=headers)


def _on(role: str, count: int, digests: dict[str, int]) -> str:
    total = sum(digests.values())
    return role if count == total else f"{role} ({count} of {total} tasks)"


def _when(at: datetime | None) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if at else "-"


def size(count: int | None) -> str:
    """Bytes in binary units: 512 B, 1.5 KiB, 230.0 MiB."""
    if count is None:
        return "-"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"  # not reached


def log_line(event) -> str:
    """One log line on stdout: time (UTC), short task id, container, message."""
    return f"{event.at:%H:%M:%S}Z {short_task(event.task_id)} {event.container} | {event.message.rstrip(chr(10))}"


def log_event(event) -> dict:
    return {
        "time": event.at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "task": event.task_id,
        "container": event.container,
        "message": event.message.rstrip("\n"),
        "stream": event.stream,
        "id": event.id,
    }


def to_json(value) -> str:
    """One JSON document: dataclasses as objects, sets as sorted lists, times in ISO 8601."""

    def plain(obj):
        if is_dataclass(obj) and not isinstance(obj, type):
            return asdict(obj)
        if isinstance(obj, set | frozenset):
            return sorted(obj)
        if isinstance(obj, datetime):
            return obj.isoformat()
        return str(obj)

    document = asdict(value) if is_dataclass(value) and not isinstance(value, type) else value
    return json.dumps(document, indent=2, default=plain)
