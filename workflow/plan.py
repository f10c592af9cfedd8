"""What a redeploy or a rollback will move: each component's image now and after (release stamp, Airflow version,
digest), whether the schema moves, and the steps in topology.UPGRADE_ORDER. Read-only: it changes nothing."""

from dataclasses import dataclass

from .airflow_schema import version_from_config
from .database import INFERRED, check_schema, recorded
from .ecr import Ecr, tags_for_digests
from .env import Env
from .errors import WorkflowError
from .image_config import image_config
from .images import ecr_image
from .tags import stamp_of
from .topology import UPGRADE_ORDER, Topology


@dataclass(frozen=True)
class Image:
    digest: str | None
    stamp: str | None = None  # its release stamp in its repository
    version: str | None = None  # the Airflow version its config declares

    def label(self) -> str:
        if not self.digest:
            return "an unknown image"
        parts = [f"Airflow {self.version}" if self.version else "", self.stamp or "", self.digest.split(":")[-1][:8]]
        return " ".join(p for p in parts if p)


@dataclass(frozen=True)
class Move:
    role: str
    services: tuple[str, ...]
    now: tuple[Image, ...]  # what its RUNNING tasks run: one image, or several mid-rollout, or none
    after: Image  # what a new deployment runs: the image its task definition's tag names now

    @property
    def changes(self) -> bool:
        return not (self.after.digest and [i.digest for i in self.now] == [self.after.digest])


@dataclass(frozen=True)
class Plan:
    cluster: str
    moves: tuple[Move, ...]
    migration: tuple[str, ...] = ()  # the migration command, when one runs
    schema: str | None = None  # the Airflow version whose schema the database is at, when recorded or inferred
    schema_inferred: bool = False  # not recorded: every running component runs that version (see `plan`)
    images: tuple[str, ...] = ()  # the image references the task definitions deploy (their tags resolve at launch)
    refusal: str | None = None  # a dry run's: why the real run would be refused (see `schema_refusal`)

    @property
    def nothing_to_change(self) -> bool:
        return not self.migration and bool(self.moves) and not any(m.changes for m in self.moves)

    def versions(self) -> tuple[set[str], set[str]]:
        """The Airflow versions running now, and after."""
        now = {i.version for m in self.moves for i in m.now if i.version}
        return now, {m.after.version for m in self.moves if m.after.version}

    def steps(self) -> list[str]:
        """The plan in UPGRADE_ORDER, one line per step, each role with its image now and after."""
        lines = []
        for step in UPGRADE_ORDER:
            if step.action == "migrate":
                if self.migration:
                    lines.append(f"migrate: {' '.join(self.migration)}")
                continue
            if step.action == "drain":
                lines.append("drain: running task instances finish (at most --drain-timeout)")
                continue
            for move in (m for m in self.moves if m.role in step.roles):
                now = ", ".join(i.label() for i in move.now) or "nothing running"
                if step.action == "stop":
                    lines.append(f"stop {move.role}: {now}")
                else:
                    lines.append(f"{step.action} {move.role}: {now} -> {move.after.label()}")
        return lines

    def schema_moved(self) -> bool:
        """The schema recorded is ahead of (or behind) an image that runs: a migration has moved it under them."""
        if self.schema is None or self.schema_inferred:
            return False
        return any(not check_schema(self.schema, v).fits for v in self.versions()[0])

    def schema_refusal(self, migrating: bool) -> str | None:
        """Why rolling onto the new images would leave the components that check migrations crash-looping, when the
        schema recorded for the database and the images' Airflow version say so; None when it fits or is unknown."""
        if migrating or self.schema is None:
            return None
        return unfit(self.schema, {m.after.version for m in self.moves if m.after.version},
                     "redeploy --migrate moves the schema and every component together",
                     f", {INFERRED}" if self.schema_inferred else "")

    def summary(self) -> str:
        now, after = self.versions()
        moving = f" (Airflow {', '.join(sorted(now)) or '?'} -> {', '.join(sorted(after)) or '?'})" if now != after else ""
        return f"cluster {self.cluster}{moving}" + (", with the migration" if self.migration else "")

    def unchanged(self) -> str | None:
        """What to know when nothing moves: a sentence, or None."""
        if not self.nothing_to_change:
            return None
        return (f"every service of cluster {self.cluster} already runs {self.moves[0].after.label()}: a redeploy only "
                "restarts them, with the scheduler stopped meanwhile")


def plan(env: Env, topology: Topology, migration: list[str] | None = None) -> Plan:
    """Each managed role's image now (from its RUNNING tasks) and after (its task definition's tag, resolved now),
    with release stamps and Airflow versions from ECR. What cannot be read is shown as unknown, never fatal."""
    wanted, now = _images_of(env, topology)
    images = _Images(env)
    moves = []
    for role, names in topology.by_role.items():
        after = images.resolve(wanted.get(names[0], ""))
        seen = {digest: image for name in names for image, digest in now.get(name, [])}
        moves.append(Move(role, tuple(names), tuple(images.describe(image, d) for d, image in sorted(seen.items())),
                          after))
    try:
        schema = recorded(env)
    except WorkflowError:
        schema = None
    inferred = None if schema is not None else _one_version({i.version for m in moves for i in m.now if i.digest})
    return Plan(topology.name, tuple(moves), tuple(migration or ()), schema or inferred, inferred is not None,
                tuple(sorted(set(wanted.values()))))


def database_schema(env: Env, topology: Topology | None) -> tuple[str | None, bool]:
    """The Airflow version whose schema the database is at, and whether it is inferred: as recorded, else (given
    the topology) as `plan` infers it, from the one Airflow version every running component runs. Raises
    WorkflowError when the cluster's tags cannot be read."""
    found = recorded(env)
    if found is not None or topology is None:
        return found, False
    inferred = _running_schema(env, topology)
    return inferred, inferred is not None


def _running_schema(env: Env, topology: Topology) -> str | None:
    """The Airflow version every running component runs, read from its image's config alone, or None when they
    differ or one cannot be read."""
    _, now = _images_of(env, topology)
    versions: set[str | None] = set()
    for image, digest in {pair for pairs in now.values() for pair in pairs}:
        try:
            versions.add(version_from_config(image_config(env.ecr, image, digest)) if env.ecr else None)
        except WorkflowError:
            versions.add(None)
    return _one_version(versions)


def _one_version(versions: set[str | None]) -> str | None:
    """Unrecorded (migrated by other means, or never by this tool): components that check migrations run only on
    their own schema, so one Airflow version running everywhere says which schema the database is at."""
    return next(iter(versions)) if len(versions) == 1 and None not in versions else None


def _images_of(env: Env, topology: Topology) -> tuple[dict[str, str], dict[str, list[tuple[str, str]]]]:
    """For each managed service, the image reference a new deployment launches, and the (image, digest) pairs its
    RUNNING tasks run, of the essential container."""
    services = env.ecs.services(topology.services())
    running = env.ecs.running_tasks([s.name for s in services])
    wanted: dict[str, str] = {}
    now: dict[str, list[tuple[str, str]]] = {}
    for service in services:
        definition = env.ecs.task_definition(service.task_definition)
        essential = next((c for c in definition.containers if c.essential), None)
        if essential is None:
            continue
        wanted[service.name] = essential.image
        pairs = {(c.image, c.image_digest) for t in running[service.name] for c in t.containers
                 if c.name == essential.name and c.image_digest}
        now[service.name] = sorted(pairs)
    return wanted, now


def unfit(recorded: str, versions: set[str], way_out: str, basis: str = "") -> str | None:
    """Why images of these Airflow versions would not start on a database at `recorded`'s schema, or None; `basis`
    says how that schema is known when it is not recorded."""
    for version in sorted(versions):
        check = check_schema(recorded, version)
        if check.needs_migration or check.needs_downgrade:
            direction = "a newer" if check.needs_migration else "an older"
            return (f"the image is Airflow {version}, which needs {direction} schema than the database's (Airflow "
                    f"{recorded}{basis}): its scheduler, dag-processor, api-server and triggerer would exit with 'Database "
                    f"migration required'; {way_out}; nothing was changed")
    return None


def current_digest(env: Env, reference: str) -> str | None:
    """The digest a new deployment of `reference` gets now: its own, or the one its tag names in ECR; None when it
    is not an ECR image or ECR has no such tag. Raises WorkflowError when ECR cannot be read."""
    ref = ecr_image(reference)
    if ref is None or env.ecr is None:
        return None
    if ref.digest is not None:
        return ref.digest
    found = Ecr(env.ecr(ref.region), ref.account).find(ref.repository, tag=ref.tag or "latest")
    return found.digest if found else None


def airflow_version(env: Env, reference: str) -> str | None:
    """The Airflow version of the image a new deployment of `reference` gets now, from its config; None when it is
    not an ECR image or says no version. Raises WorkflowError when ECR cannot be read."""
    digest = current_digest(env, reference)
    return version_from_config(image_config(env.ecr, reference, digest)) if digest and env.ecr else None


class _Images:
    """Digests, stamps and versions of images, each asked of ECR once."""

    def __init__(self, env: Env):
        self.env = env
        self._described: dict[str, Image] = {}

    def resolve(self, reference: str) -> Image:
        """The image a new deployment of `reference` gets now: the digest its tag names in ECR."""
        try:
            digest = current_digest(self.env, reference)
        except WorkflowError:  # shown as unknown: the plan informs, it does not gate
            return Image(None)
        return self.describe(reference, digest) if digest else Image(None)

    def describe(self, reference: str, digest: str) -> Image:
        if digest not in self._described:
            stamp = version = None
            if self.env.ecr is not None:
                try:
                    stamp = stamp_of(tags_for_digests(self.env.ecr, reference, {digest}).get(digest, []))
                    version = version_from_config(image_config(self.env.ecr, reference, digest))
                except WorkflowError:  # shown as unknown: the plan informs, it does not gate
                    pass
            self._described[digest] = Image(digest, stamp, version)
        return self._described[digest]
