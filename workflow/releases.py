"""Releases: the production repository's stamp-tagged images, which services run them, and rolling `latest` back.

A release is an image in the production repository that carries a stamp tag (`YYYYMMDDTHHMMSSZ`, written
by promote). A rollback points `latest` at an earlier release with PutImage of that image's exact manifest:
no blob moves and the digest stays the same. It never touches the database: see SCHEMA_NOTE.
"""

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .ecr import Ecr, ImageDetail
from .errors import NotFound, Refused
from .promote import stamp_of

LATEST = "latest"
SCHEMA_NOTE = (
    "A rollback does not downgrade the database schema: the earlier image runs against the schema the later "
    "one migrated to. Roll back only to a release that works with that schema, or restore the database first."
)
# <account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]/<repository>[:<tag>][@<digest>]
ECR_IMAGE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?"
    r"/(?P<repository>[a-z0-9][a-z0-9._/-]*?)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)


# ECR image references ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EcrImage:
    account: str
    region: str
    repository: str
    tag: str | None = None
    digest: str | None = None


def parse_ecr_image(uri: str) -> EcrImage | None:
    """`<account>.dkr.ecr.<region>.amazonaws.com/<repo>[:tag][@digest]`; None for any other registry."""
    match = ECR_IMAGE.match(uri or "")
    if match is None:
        return None
    return EcrImage(match["account"], match["region"], match["repository"], match["tag"], match["digest"])


def tags_for_digests(ecr: "Ecr | Callable[[str], object]", image_uri: str, digests: set[str]) -> dict[str, list[str]]:
    """The tags in `image_uri`'s ECR repository on each digest (`latest` first, then newest first), with one
    DescribeImages call; a digest the repository lacks gets no tags. Empty when the image is not in ECR.

    `ecr` is an `Ecr` for the image's registry, or a function from a Region to a boto3 ECR client (then the
    image's own account and Region are asked). AWS errors are WorkflowErrors, for the caller to show or skip.
    """
    ref = parse_ecr_image(image_uri)
    if ref is None or not digests:
        return {}
    registry = ecr if isinstance(ecr, Ecr) else Ecr(ecr(ref.region), ref.account)
    found = {image.digest: ordered_tags(image.tags) for image in registry.images(ref.repository, sorted(digests))}
    return {digest: found.get(digest, []) for digest in sorted(digests)}


def ordered_tags(tags) -> list[str]:
    return sorted(sorted(tags, reverse=True), key=lambda tag: tag != LATEST)


# What the cluster runs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Running:
    """The digests each service's RUNNING tasks run, counting only containers whose image is in `repository`."""

    cluster: str
    repository: str
    tasks: dict[str, list[frozenset]]  # role -> one set of digests per task (None: a digest ECS did not report)

    def count(self, role: str, digest: str) -> int:
        return sum(digest in task for task in self.tasks.get(role, []))

    def roles_running(self, digest: str) -> dict[str, int]:
        return {role: n for role in self.tasks if (n := self.count(role, digest))}

    def all_run(self, digest: str) -> bool:
        """Every service has a running task, and every running task runs only `digest`."""
        return bool(self.tasks) and all(tasks and all(t == {digest} for t in tasks) for tasks in self.tasks.values())

    def by_role(self) -> dict[str, dict[str, int]]:
        """role -> digest -> RUNNING tasks that run it ("unknown" when ECS reported no digest)."""
        return {
            role: dict(Counter(d or "unknown" for task in tasks for d in task).most_common())
            for role, tasks in self.tasks.items()
        }

    def describe(self) -> str:
        parts = []
        for role, digests in self.by_role().items():
            images = ", ".join(f"{short(d)} ({n})" if d != "unknown" else f"unknown ({n})" for d, n in digests.items())
            parts.append(f"{role} runs {images or 'nothing'}")
        return "; ".join(parts)


def running_images(ecs, services: dict[str, str], repository: str) -> Running:
    """For each role's service (role -> name): the digests its RUNNING tasks run, from `containers[].imageDigest`.

    One ListTasks per service and one DescribeTasks per 100 tasks, whatever the services' sizes.
    """
    running = ecs.running_tasks(list(services.values()))
    tasks: dict[str, list[frozenset]] = {role: [] for role in services}
    for role, name in services.items():
        for task in running[name]:
            digests = frozenset(c.image_digest for c in task.containers if _in_repository(c.image, repository))
            if digests:
                tasks[role].append(digests)
    return Running(ecs.cluster, repository, tasks)


def _in_repository(image: str | None, repository: str) -> bool:
    ref = parse_ecr_image(image or "")
    return ref is not None and ref.repository == repository


# Releases ------------------------------------------------------------------------------------------------


def short(digest: str | None) -> str:
    if not digest:
        return "-"
    algorithm, _, value = digest.partition(":")
    return f"{algorithm}:{value[:12]}"


def label(digest: str, stamp: str | None) -> str:
    return f"{stamp} ({short(digest)})" if stamp else short(digest)


@dataclass(frozen=True)
class Release:
    stamp: str
    digest: str
    tags: tuple[str, ...]
    pushed_at: datetime | None
    size: int | None
    latest: bool
    running_on: dict[str, int] = field(default_factory=dict)  # role -> RUNNING tasks on this digest


@dataclass(frozen=True)
class Catalog:
    """Every image in the repository; the releases among them, newest stamp first."""

    repository: str
    images: tuple[ImageDetail, ...]

    @property
    def latest(self) -> ImageDetail | None:
        return next((i for i in self.images if LATEST in i.tags), None)

    @property
    def releases(self) -> list[ImageDetail]:
        stamped = [i for i in self.images if stamp_of(i.tags)]
        return sorted(stamped, key=lambda i: (stamp_of(i.tags), i.digest), reverse=True)

    def named(self, name: str) -> ImageDetail | None:
        """The image a tag or a digest names."""
        return next((i for i in self.images if name == i.digest or name in i.tags), None)


def catalog(ecr: Ecr, repository: str) -> Catalog:
    return Catalog(repository, tuple(ecr.images(repository)))


@dataclass(frozen=True)
class ReleasesOutcome:
    repository: str
    latest: str | None  # the digest `latest` names
    latest_stamp: str | None
    total: int
    releases: tuple[Release, ...]
    cluster: str | None = None
    running: dict[str, dict[str, int]] | None = None  # role -> digest -> RUNNING tasks; None without --cluster
    warnings: tuple[str, ...] = ()

    @property
    def summary(self) -> str:
        shown = f"; the newest {len(self.releases)} shown" if len(self.releases) < self.total else ""
        head = f"{self.total} release(s) in {self.repository}{shown}; "
        head += f"latest is {label(self.latest, self.latest_stamp)}" if self.latest else f"no {LATEST} tag"
        return head + ("\n" + releases_table(self) if self.releases else "")


def releases_table(outcome: ReleasesOutcome) -> str:
    from tabulate import tabulate

    headers = ["stamp", "digest", "pushed at", "size", "latest"] + (["running on"] if outcome.running is not None else [])
    rows = []
    for r in outcome.releases:
        row = [r.stamp, short(r.digest), _when(r.pushed_at), _size(r.size), LATEST if r.latest else ""]
        if outcome.running is not None:
            row.append(", ".join(_on(role, n, outcome.running[role]) for role, n in r.running_on.items()) or "-")
        rows.append(row)
    return tabulate(rows, headers=headers)


def _on(role: str, count: int, digests: dict[str, int]) -> str:
    total = sum(digests.values())
    return role if count == total else f"{role} ({count} of {total} tasks)"


def _when(at: datetime | None) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if at else "-"


def _size(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # not reached


def list_releases(ecr: Ecr, repository: str, limit: int | None = None, running: Running | None = None) -> ReleasesOutcome:
    """The repository's releases, newest first, each with `latest` marked and the services that run it."""
    found = catalog(ecr, repository)
    latest = found.latest
    releases = found.releases
    rows = tuple(
        Release(
            stamp=stamp_of(i.tags),
            digest=i.digest,
            tags=tuple(ordered_tags(i.tags)),
            pushed_at=i.pushed_at,
            size=i.size,
            latest=latest is not None and i.digest == latest.digest,
            running_on=running.roles_running(i.digest) if running else {},
        )
        for i in releases[:limit]
    )
    warnings = []
    if latest is None:
        warnings.append(f"{repository} has no {LATEST} tag")
    elif not stamp_of(latest.tags):
        warnings.append(f"{LATEST} names {short(latest.digest)}, which has no stamp tag: it was not released by promote")
    if running:
        known = {i.digest for i in releases}
        for role, digests in running.by_role().items():
            for digest, n in digests.items():
                if digest not in known:
                    what = "an image ECS reported no digest for" if digest == "unknown" else short(digest)
                    warnings.append(f"{role} runs {what} on {n} task(s), which is no release in {repository}")
    return ReleasesOutcome(
        repository=repository,
        latest=latest.digest if latest else None,
        latest_stamp=stamp_of(latest.tags) if latest else None,
        total=len(releases),
        releases=rows,
        cluster=running.cluster if running else None,
        running=running.by_role() if running else None,
        warnings=tuple(warnings),
    )


# Rollback ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RollbackPlan:
    repository: str
    from_digest: str
    from_stamp: str | None
    to_digest: str
    to_stamp: str | None
    move_tag: bool
    redeploy: bool
    cluster: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def source(self) -> str:
        return label(self.from_digest, self.from_stamp)

    @property
    def target(self) -> str:
        return label(self.to_digest, self.to_stamp)

    def question(self) -> str:
        moves = (f"Roll back {LATEST} in {self.repository} from {self.source} to {self.target}" if self.move_tag
                 else f"{LATEST} in {self.repository} already names {self.target}: redeploy onto it")
        if self.redeploy:
            moves += f", then redeploy cluster {self.cluster} (the scheduler stops until web and worker are redeployed)"
        return f"{SCHEMA_NOTE}\n{moves}?"


def plan_rollback(ecr: Ecr, repository: str, to: str | None, redeploy: bool, running: Running | None) -> RollbackPlan:
    """What a rollback would do; refuses (before any change) when there is nothing to roll back to.

    `running` is what the cluster runs now, or None when no cluster was named (then nothing is redeployed).
    """
    found = catalog(ecr, repository)
    current = found.latest
    if current is None:
        raise NotFound(f"repository {repository} has no {LATEST} tag: nothing to roll back from")
    current_stamp = stamp_of(current.tags)
    if to:
        target = found.named(to)
        if target is None:
            recent = ", ".join(stamp_of(i.tags) for i in found.releases[:5]) or "none"
            raise NotFound(f"no image tagged {to} in {repository}; its newest releases: {recent}")
    else:
        older = [i for i in found.releases
                 if i.digest != current.digest and (current_stamp is None or stamp_of(i.tags) < current_stamp)]
        if not older:
            raise Refused(
                f"no release in {repository} is older than {label(current.digest, current_stamp)}, which {LATEST} "
                "names: nothing to roll back to; nothing was changed"
            )
        target = older[0]
    target_stamp = stamp_of(target.tags)
    notes = []
    all_run = running is not None and running.all_run(target.digest)
    move_tag = target.digest != current.digest
    if not move_tag:
        if all_run:
            raise Refused(
                f"cluster {running.cluster} already runs {label(target.digest, target_stamp)}, and {LATEST} in "
                f"{repository} names it: nothing to roll back; nothing was changed"
            )
        if not redeploy or running is None:
            raise Refused(
                f"{LATEST} in {repository} already names {label(target.digest, target_stamp)}: nothing to move; "
                "nothing was changed" + ("" if running is None else f" (without --no-redeploy the cluster, where "
                                         f"{running.describe()}, would be redeployed onto it)")
            )
        notes.append(f"{LATEST} already names {label(target.digest, target_stamp)}, but {running.describe()}: "
                     "redeploying onto it")
    elif redeploy and all_run:
        redeploy = False
        notes.append(f"cluster {running.cluster} already runs {label(target.digest, target_stamp)}: "
                     "the tag moves, no redeploy is needed")
    return RollbackPlan(
        repository=repository,
        from_digest=current.digest,
        from_stamp=current_stamp,
        to_digest=target.digest,
        to_stamp=target_stamp,
        move_tag=move_tag,
        redeploy=redeploy and running is not None,
        cluster=running.cluster if running else None,
        notes=tuple(notes),
    )


@dataclass(frozen=True)
class RollbackOutcome:
    summary: str
    repository: str
    from_digest: str
    from_stamp: str | None
    to_digest: str
    to_stamp: str | None
    tag: str  # moved, unchanged (already so), would move, not moved
    redeployed: bool
    dry_run: bool
    services: tuple = ()  # the services as the redeploy left them
    scheduler_downtime: float | None = None
    warnings: tuple[str, ...] = (SCHEMA_NOTE,)


def rollback(ecr: Ecr, report, plan: RollbackPlan, dry_run: bool = False,
             env=None, target=None) -> RollbackOutcome:
    """Carry out `plan`: PutImage of the target's exact manifest as `latest`, then the safe redeploy of `target`
    (an operations.Target) through `env` when the plan says so. The operator lease is taken before the tag moves."""
    for note in plan.notes:
        report.line(note)
    base = dict(repository=plan.repository, from_digest=plan.from_digest, from_stamp=plan.from_stamp,
                to_digest=plan.to_digest, to_stamp=plan.to_stamp)
    moves = f"{LATEST} in {plan.repository} from {plan.source} to {plan.target}"
    if dry_run:
        ecr.manifest(plan.repository, digest=plan.to_digest)  # what PutImage would need can be read
        would = [f"would move {moves}" if plan.move_tag else f"{LATEST} in {plan.repository} already names {plan.target}"]
        would.append(f"would redeploy cluster {plan.cluster}" if plan.redeploy else "would not redeploy")
        return RollbackOutcome("; ".join(would) + " (dry run: nothing was changed)", **base,
                               tag="would move" if plan.move_tag else "unchanged", redeployed=False, dry_run=True)
    redeploy = None
    if plan.redeploy:
        from . import operations

        # What redeploy refuses, refused before the tag moves.
        scheduler = operations.preflight(env, [target.web, target.worker, target.scheduler])[2]
        if scheduler.desired > 1:
            raise Refused(f"scheduler {scheduler.name} has desired count {scheduler.desired}; only one may run; "
                          "nothing was changed")
        env.before_change()  # the operator lease, before the first change
        redeploy = operations.redeploy
    tag = "unchanged"
    if plan.move_tag:
        manifest = ecr.manifest(plan.repository, digest=plan.to_digest)
        tag = "moved" if ecr.put(plan.repository, manifest, LATEST) == "written" else "unchanged"
        report.line(f"{LATEST} in {plan.repository} now names {plan.target} (was {plan.source}); the same digest, "
                    "no blob copied")
    said = f"rolled back {moves}" if plan.move_tag else f"{LATEST} in {plan.repository} already named {plan.target}"
    if redeploy is None:
        return RollbackOutcome(said + "; the cluster was not redeployed", **base, tag=tag, redeployed=False,
                               dry_run=False)
    report.line(f"redeploying cluster {plan.cluster}; should it fail, resume with redeploy, not rollback "
                "(another rollback would go one release further back)")
    outcome = redeploy(env, target)
    return RollbackOutcome(f"{said}; {outcome.summary}", **base, tag=tag, redeployed=True, dry_run=False,
                           services=outcome.services, scheduler_downtime=outcome.scheduler_downtime)
