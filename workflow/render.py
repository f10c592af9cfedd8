"""Results as the operator reads them on stdout: text with tables that fit the terminal's width, or one JSON document."""

import json
import sys
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime

from .images import short, short_reference
from .progress import cluster_of, hanging, short_deployment, short_task, visible, width_of

INDENT = "  "  # a result's lines under its summary
FLOOR = 12  # a wrapped column keeps at least this many columns (or its longest word)


def result(outcome, output: str, width: int | None = None) -> str:
    """The whole result of a command, as text or as one JSON document (for programs: never shortened or wrapped)."""
    if output == "json":
        return to_json(outcome)
    from .oneoff import TaskOutcome
    from .plan import Plan
    from .promote import PromoteOutcome
    from .releases import ReleasesOutcome

    width = width_of(sys.stdout) if width is None else width
    if isinstance(outcome, Plan):
        refused = [hanging(f"a real run would be refused: {outcome.refusal}", width, 0, 2)] if outcome.refusal else []
        unchanged = [hanging(f"note: {outcome.unchanged()}", width, 0, 2)] if outcome.unchanged() else []
        return "\n".join([hanging(f"plan for {outcome.summary()} (dry run: nothing was changed):", width, 0, 2),
                          indented(plan_table(outcome, width - len(INDENT))), *unchanged, *refused])
    lines = [hanging(outcome.summary, width, 0, 2)]
    if isinstance(outcome, PromoteOutcome):
        lines.append(promote_table(outcome, width))
    elif isinstance(outcome, ReleasesOutcome):
        if outcome.releases:
            lines.append(releases_table(outcome, width))
    elif isinstance(outcome, TaskOutcome):
        lines.append(containers_table(outcome.task, outcome.essential, width))
        if outcome.task.stopped_reason:
            lines.append(hanging(f"stopped reason: {outcome.task.stopped_reason}", width, 0, 2))
        if outcome.log:
            lines.append(hanging(f"log: {outcome.log}", width, 0, 2))
        lines += [step.lines(width) for step in outcome.next_steps]  # each command continued with backslashes
    elif getattr(outcome, "services", None):
        if getattr(outcome, "plan", None):
            drain = getattr(outcome, "drain", None)
            lines.append(indented(plan_table(outcome.plan, width - len(INDENT), moved=True,
                                             drained="not drained" if drain and drain.skipped else "finished")))
        lines.append(services_table(outcome.services, width))
        if getattr(outcome, "images", None):
            lines += ["", images_table(outcome.images, width, prefix_of(outcome.services))]
        if getattr(outcome, "airflow", None):
            lines += ["", airflow_lines(outcome.airflow, width)]
        if getattr(outcome, "unmanaged", None):
            lines += ["", hanging(f"not managed (no Airflow role by tag or name): {', '.join(outcome.unmanaged)}",
                                  width, 0, 2)]
    lines += [hanging(f"warning: {warning}", width, 0, len("warning: ")) for warning in getattr(outcome, "warnings", ())]
    return "\n".join(lines)


def indented(text: str) -> str:
    return "\n".join(INDENT + line if line else line for line in text.split("\n"))


# --- tables that fit ---------------------------------------------------------------------------------------------


def fitted(rows: list[list], headers: list[str], width: int, wrap: tuple[int, ...] = (), drop: tuple[int, ...] = (),
           tablefmt: str = "simple", colalign: tuple[str, ...] | None = None) -> str:
    """A table in `width` columns: the `wrap` columns' cells wrapped at spaces (tabulate's maxcolwidths, never
    splitting a word), then, while still too wide, the `drop` columns left out, the least useful first."""
    keep = list(range(len(headers) if headers else len(rows[0]) if rows else 0))
    order = [c for c in drop if c in keep]
    while True:
        table = _wrapped([[row[c] for c in keep] for row in rows], [headers[c] for c in keep] if headers else [], width,
                         tuple(keep.index(c) for c in wrap if c in keep), tablefmt,
                         tuple(colalign[c] for c in keep) if colalign else None)
        if _widest(table) <= width or not order:
            return table
        keep.remove(order.pop(0))


def _wrapped(rows: list[list], headers: list[str], width: int, wrap: tuple[int, ...], tablefmt: str,
             colalign: tuple[str, ...] | None) -> str:
    import tabulate

    def render(limits: list[int | None] | None) -> str:
        # tabulate makes every column two wider than its header; the two spaces between columns are room enough.
        padding, tabulate.MIN_PADDING = tabulate.MIN_PADDING, 0
        try:
            return tabulate.tabulate(rows, headers=headers or (), tablefmt=tablefmt, maxcolwidths=limits,
                                     break_long_words=False, break_on_hyphens=False, colalign=colalign,
                                     disable_numparse=True)  # ids such as 024513 are text
        finally:
            tabulate.MIN_PADDING = padding

    table = render(None)
    over = _widest(table) - width
    if over <= 0 or not wrap:
        return table
    columns = len(headers) if headers else len(rows[0]) if rows else 0
    cells = [[str(v) for v in row] for row in rows]
    natural = {c: max((visible(line) for row in cells for line in row[c].split("\n")), default=0) for c in wrap}
    least = {c: max([FLOOR, visible(headers[c]) if headers else 0,
                     *(visible(word) for row in cells for word in row[c].split())]) for c in wrap}
    limits = dict(natural)
    for c in wrap:  # the first named gives way first, down to its longest word
        give = min(over, max(0, limits[c] - least[c]))
        limits[c] -= give
        over -= give
    return render([limits.get(c) if c in limits and limits[c] < natural[c] else None for c in range(columns)])


def _widest(table: str) -> int:
    return max((visible(line) for line in table.split("\n")), default=0)


def prefix_of(services) -> str:
    """`airflow-prod-` when every service is named after the cluster its ARN names; tables then leave it out, as
    progress does (the summary names the cluster, or the service in full)."""
    clusters = {cluster_of(s.arn) for s in services}
    if len(clusters) != 1 or None in clusters:
        return ""
    prefix = f"{clusters.pop()}-"
    return prefix if all(s.name.startswith(prefix) and len(s.name) > len(prefix) for s in services) else ""


def short_digest(digest: str | None) -> str:
    """The first 12 hex digits of a digest (`sha256:` left out): enough to tell images apart in a table."""
    return digest.partition(":")[2][:12] if digest and ":" in digest else digest or "-"


def services_table(services, width: int = 80) -> str:
    prefix = prefix_of(services)
    rows = []
    for s in services:
        primary = s.primary
        rows.append([s.name.removeprefix(prefix), s.desired, s.running, s.pending,
                     short_deployment(primary.id) if primary else "-",
                     (primary.rollout_state or primary.status) if primary else "-"])
    return fitted(rows, ["service", "desired", "running", "pending", "deployment", "rollout"], width, wrap=(0,),
                  colalign=("left", "right", "right", "right", "left", "left"))


def airflow_lines(view, width: int = 80) -> str:
    """Airflow's own view, as its health endpoint reports it."""
    parts = [f"metadatabase {view.metadatabase or 'unknown'}"]
    for c in view.components:
        # A heartbeat a moment after the look, by Airflow's clock, is one just now.
        age = f", heartbeat {max(c.heartbeat_age, 0.0):.0f}s ago" if c.heartbeat_age is not None else ", no heartbeat yet"
        parts.append(f"{c.name} {c.status or 'never ran'}{age if c.status or c.heartbeat_age is not None else ''}")
    return "\n".join([hanging(f"Airflow {view.version} at {view.url}:", width, 0, 2),
                      *(hanging(INDENT + part, width, 0, 4) for part in parts)])


def images_table(images, width: int = 80, prefix: str = "") -> str:
    """What runs: per service, each image digest its RUNNING tasks run (two while a rollout is under way)."""
    rows = [[i.service.removeprefix(prefix), i.task_definition.removeprefix(prefix), short_digest(i.digest), i.tasks,
             i.airflow_version or "-", ", ".join(i.tags) or "-"]
            for i in sorted(images, key=lambda i: (i.service, -i.tasks))]
    return fitted(rows, ["service", "task definition", "digest", "tasks", "airflow", "tags"], width, wrap=(5, 0),
                  drop=(1,), colalign=("left", "left", "left", "right", "left", "left"))


def containers_table(task, essential: frozenset[str], width: int = 80) -> str:
    rows = [[c.name, "yes" if c.name in essential else "no", c.last_status,
             "-" if c.exit_code is None else c.exit_code, c.reason or ""] for c in task.containers]
    return fitted(rows, ["container", "essential", "status", "exit code", "reason"], width, wrap=(4, 0),
                  colalign=("left", "left", "left", "right", "left"))


def promote_table(outcome, width: int = 80) -> str:
    """Where it went and through which API, what each tag did, and what moved: blobs mounted, copied and already
    there, and the bytes uploaded; then what to run next. The summary above names the whole digest."""
    moved = "would move" if outcome.dry_run else "moved"
    # A source named by its digest is the same image: its digest shortened as the destination's (the summary above
    # names it whole).
    rows = [
        ["source", short_reference(outcome.source)],
        ["destination", f"{outcome.destination} ({short(outcome.digest)})"],
        ["through", f"the {outcome.path}" + (f" ({outcome.where})" if outcome.where else "")],
        ["tags", ", ".join(f"{tag} ({state})" for tag, state in outcome.tags.items())],
        ["blobs", f"{outcome.blobs_to_move} to mount or copy, {outcome.blobs_present} already there" if outcome.dry_run
         else f"{outcome.blobs_mounted} mounted, {outcome.blobs_copied} copied, {outcome.blobs_present} already there"],
        [f"bytes {moved}", ("at most " if outcome.dry_run else "") + f"{outcome.bytes_copied} ({size(outcome.bytes_copied)})"
         + (" (none for a blob mounted)" if outcome.dry_run and outcome.bytes_copied else "")],
        ["elapsed", f"{outcome.seconds:.1f}s"],
    ]
    lines = [fitted(rows, [], width, wrap=(1,), tablefmt="plain")]
    lines += [hanging(f"note: {note}", width, 0, len("note: ")) for note in outcome.notes]
    lines += [step.lines(width) for step in outcome.next_steps]
    return "\n".join(lines)


def releases_table(outcome, width: int = 80) -> str:
    from .tags import LATEST

    headers = ["stamp", "digest", "airflow", "pushed at", "size", "latest"] + (
        ["running on"] if outcome.running is not None else [])
    rows = []
    for r in outcome.releases:
        row = [r.stamp, short_digest(r.digest), r.airflow_version or "-", _when(r.pushed_at), size(r.size),
               LATEST if r.latest else ""]
        if outcome.running is not None:
            row.append(_running_on(r.running_on, outcome.running))
        rows.append(row)
    # The stamp is when promote released it: the push time and the size are what a narrow table does without, and
    # it says so.
    table = fitted(rows, headers, width, wrap=(6,) if outcome.running is not None else (), drop=(4, 3))
    shown = table.split("\n", 1)[0]
    left_out = [h for h in ("pushed at", "size") if h not in shown]
    if left_out and rows:
        table += "\n" + hanging(f"({' and '.join(left_out)} left out at this width: a wider terminal or --output json "
                                "shows them)", width, 0, 1)
    return table


def _running_on(running_on: dict[str, int], running: dict[str, dict[str, int]]) -> str:
    if len(running) > 1 and running_on.keys() == running.keys() and \
            all(n == sum(running[role].values()) for role, n in running_on.items()):
        return "every service"
    return ", ".join(_on(role, n, running[role]) for role, n in running_on.items()) or "-"


def _on(role: str, count: int, digests: dict[str, int]) -> str:
    total = sum(digests.values())
    return role if count == total else f"{role} ({count} of {total} tasks)"


# --- the plan ----------------------------------------------------------------------------------------------------


def plan_table(plan, width: int = 80, moved: bool = False, drained: str = "finished") -> str:
    """The plan as a table, a row per step in topology.UPGRADE_ORDER: each role with its image now and after
    (Airflow version and release stamp; the digest's first 8 hex digits only where they tell images apart).
    Where that is too wide and a column's images share one Airflow version, the header names it and the cells
    the releases alone. `moved`: the plan of a redeploy that ran, whose stop steps are history; `drained`, what
    became of its running task instances."""
    label = _labeller(plan)
    rows, headers = _plan_rows(plan, moved, label, drained)
    table = fitted(rows, headers, width, wrap=(1, 2, 0))
    if len(table.split("\n")) == len(rows) + 2:
        return table
    versions = [{i.version for m in plan.moves for i in m.now if i.digest},
                {m.after.version for m in plan.moves if m.after.digest}]
    if any(len(v) > 1 or None in v for v in versions):
        return table  # the version tells a column's images apart: it stays in the cells
    narrow = fitted(*_plan_rows(plan, moved, lambda i: label(i, False), drained,
                                *(next(iter(v), None) for v in versions)),
                    width, wrap=(1, 2, 0))
    return narrow if len(narrow.split("\n")) < len(table.split("\n")) else table


def _plan_rows(plan, moved: bool, label, drained: str = "finished", now_version: str | None = None,
               after_version: str | None = None) -> tuple[list[list[str]], list[str]]:
    """The plan's rows and headers; a version given is named in its column's header."""
    from .topology import UPGRADE_ORDER

    rows: list[tuple[str, str, str, str]] = []  # (action, what, now, after)
    for step in UPGRADE_ORDER:
        if step.action == "migrate":
            if plan.migration:  # the command says it migrates; the schema moves from the recorded version
                after = plan.versions()[1]
                rows.append(("run", " ".join(plan.migration), f"{plan.schema} schema" if plan.schema else "",
                             f"{after.pop()} schema" if len(after) == 1 else ""))
            continue
        if step.action == "drain":
            rows.append(("drain", "task instances", "running", drained))
            continue
        for move in (m for m in plan.moves if m.role in step.roles):
            now = ", ".join(label(i) for i in move.now) or "nothing running"
            rows.append((step.action, move.role, now, "stopped" if step.action == "stop" else label(move.after)))
    numbered = [[f"{n} {action} {what}", now, after] for n, (action, what, now, after) in enumerate(rows, 1)
                if not (moved and action == "stop")]
    headers = ["step", f"now ({now_version})" if now_version else "now",
               f"after ({after_version})" if after_version else "after"]
    return numbered, headers


def _labeller(plan):
    """How the plan names an image: its Airflow version and release stamp, with the digest's first 8 hex digits
    where two images of the plan would otherwise read the same; without the version, when a header names it."""
    images = [i for m in plan.moves for i in (*m.now, m.after) if i.digest]
    plain: dict[str, set[str]] = {}
    for image in images:
        plain.setdefault(_plain(image), set()).add(image.digest or "")

    def label(image, version: bool = True) -> str:
        if not image.digest:
            return "unknown"
        text = _plain(image)
        shown = text if version else image.stamp or ""
        if shown and len(plain.get(text, ())) == 1:
            return shown
        return f"{shown} {image.digest.split(':')[-1][:8]}".strip()

    return label


def _plain(image) -> str:
    return " ".join(p for p in (image.version, image.stamp) if p)


# --- the rest ----------------------------------------------------------------------------------------------------


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
