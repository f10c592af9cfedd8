"""Releases: the production repository's stamp-tagged images, which services run them, and rolling `latest` back.

A release is an image in the production repository that carries a stamp tag (`YYYYMMDDTHHMMSSZ`, written
by promote). A rollback points `latest` at an earlier release with PutImage of that image's exact manifest:
no blob moves and the digest stays the same. It never touches the database: see SCHEMA_NOTE.
"""

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from .ecr import Ecr, ImageDetail
from .errors import NotFound, Refused
from .image_config import airflow_versions
from .images import ecr_image, short
from .tags import LATEST, label, ordered_tags, stamp_of

SCHEMA_NOTE = (
    "The database's schema is not recorded (no migration by this tool yet), so it cannot be checked: the earlier "
    "image runs against the schema the later one migrated to. Roll back only to a release that works with that "
    "schema, or restore the database first."
)


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
    ref = ecr_image(image)
    return ref is not None and ref.repository == repository


# Releases ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Release:
    stamp: str
    digest: str
    tags: tuple[str, ...]
    pushed_at: datetime | None
    size: int | None
    latest: bool
    running_on: dict[str, int] = field(default_factory=dict)  # role -> RUNNING tasks on this digest
    airflow_version: str | None = None  # what the image's config declares


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


def image_sizes(ecr: Ecr, repository: str, digests: list[str]) -> dict[str, int]:
    """Each image's size as its manifest adds it up: its layers and its config (for an index, each platform's image;
    a blob two platforms share counts once). ECR's own imageSizeInBytes is not that; one BatchGetImage per 100 images,
    and one more for the platforms of indexes. An image whose manifest cannot be read is left out."""
    if not digests:
        return {}
    manifests = ecr.manifests(repository, digests)
    children = sorted({child for m in manifests.values() for child in m.children} - set(manifests))
    if children:
        manifests.update(ecr.manifests(repository, children))
    sizes = {}
    for digest in digests:
        manifest = manifests.get(digest)
        if manifest is None:
            continue
        parts = [manifests.get(child) for child in manifest.children] if manifest.is_index else [manifest]
        if any(part is None for part in parts):
            continue
        blobs = {blob.digest: blob.size for part in parts if part is not None for blob in part.blobs}
        sizes[digest] = sum(blobs.values())
    return sizes


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
        return head


def list_releases(ecr: Ecr, repository: str, limit: int | None = None, running: Running | None = None) -> ReleasesOutcome:
    """The repository's releases, newest first, each with `latest` marked and the services that run it."""
    found = catalog(ecr, repository)
    latest = found.latest
    releases = found.releases
    sizes = image_sizes(ecr, repository, [i.digest for i in releases[:limit]])
    versions = airflow_versions(ecr, repository, [i.digest for i in releases[:limit]])
    rows = tuple(
        Release(
            stamp=stamp_of(i.tags) or "",  # every release has one: that is what makes it a release
            digest=i.digest,
            tags=tuple(ordered_tags(i.tags)),
            pushed_at=i.pushed_at,
            size=sizes.get(i.digest, i.size),
            latest=latest is not None and i.digest == latest.digest,
            running_on=running.roles_running(i.digest) if running else {},
            airflow_version=versions.get(i.digest),
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
    def forward(self) -> bool:
        """`--to` a release newer than the one `latest` names (stamps sort by time): a move forward, said as one."""
        return bool(self.from_stamp and self.to_stamp and self.to_stamp > self.from_stamp)

    @property
    def target(self) -> str:
        return label(self.to_digest, self.to_stamp)

    def question(self, schema_known: bool = False) -> str:
        """What is asked; the schema's note above it unless the schema is known (recorded, or told by what runs)."""
        verb = "Move" if self.forward else "Roll back"
        moves = (f"{verb} {LATEST} in {self.repository} from {self.source} to {self.target}" if self.move_tag
                 else f"{LATEST} in {self.repository} already names {self.target}: redeploy onto it")
        if self.redeploy:
            moves += f", then redeploy cluster {self.cluster} (the scheduler stops until web and worker are redeployed)"
        return ("" if schema_known else f"{SCHEMA_NOTE}\n") + f"{moves}?"


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
            recent = ", ".join(stamp_of(i.tags) or i.digest for i in found.releases[:5]) or "none"
            raise NotFound(f"no image tagged {to} in {repository}; its newest releases: {recent}")
    else:
        older = [i for i in found.releases
                 if i.digest != current.digest and (current_stamp is None or (stamp_of(i.tags) or "") < current_stamp)]
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
        if all_run and running is not None:
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
    elif redeploy and all_run and running is not None:
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
