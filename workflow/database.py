"""The schema the Airflow database is at, as this tool records it on the cluster when a migration succeeds.

The record is the ECS cluster tag `workflow-airflow-schema` = the Airflow version of the image that last migrated
(or downgraded) the database. A rollback to a release whose schema differs would leave every component that
checks migrations crash-looping, so it is refused unless the database is downgraded first.
"""

from dataclasses import dataclass

from .airflow_schema import compare, same_schema, version_from_config
from .ecs import Task
from .env import Env
from .errors import OperationFailed, WorkflowError
from .image_config import image_config
from .rds import Rds, Snapshot, snapshot_name
from .recovery import shell_lines
from .tag_keys import SCHEMA_TAG

MIGRATING = ("migrate", "upgrade", "init", "reset", "downgrade")


def is_migration(command: list[str]) -> bool:
    """`airflow db migrate` and its kin: the commands that move the schema."""
    return len(command) >= 3 and command[:2] == ["airflow", "db"] and command[2] in MIGRATING


def downgrade_target(command: list[str]) -> str | None:
    """The version `airflow db downgrade --to-version X` moves the schema to."""
    for flag in ("--to-version", "-n"):
        if flag in command[:-1]:
            return command[command.index(flag) + 1]
    return next((w.split("=", 1)[1] for w in command if w.startswith("--to-version=")), None)


def task_airflow_version(env: Env, task: Task) -> str | None:
    """The Airflow version of the image a task ran (its first container ECS reports a digest for)."""
    container = next((c for c in task.containers if c.image_digest), None)
    if container is None or env.ecr is None:
        return None
    return version_from_config(image_config(env.ecr, container.image, container.image_digest or ""))


def record_migration(env: Env, command: list[str], task: Task) -> str | None:
    """After a one-off task succeeded: when it moved the schema, record the version it moved it to."""
    if not is_migration(command):
        return None
    try:
        version = downgrade_target(command) if command[2] == "downgrade" else task_airflow_version(env, task)
        if version is None:
            env.ecs.untag_cluster([SCHEMA_TAG])
            env.report.line("the migration's image declares no Airflow version: the schema's version is unknown "
                            "(rollback cannot check it)")
            return None
        env.ecs.tag_cluster([{"key": SCHEMA_TAG, "value": version}])
    except WorkflowError as error:  # the migration itself succeeded: say what is not known, do not fail it
        env.report.line(f"could not record the schema's version on the cluster: {error}")
        return None
    env.report.line(f"the database is at Airflow {version}'s schema (cluster tag {SCHEMA_TAG})")
    return version


def recorded(env: Env) -> str | None:
    """The Airflow version whose schema the database was last moved to by this tool, if recorded."""
    return env.ecs.cluster_tags().get(SCHEMA_TAG)


# How the database's schema is known where no migration recorded it: components that check migrations run only on
# their own schema, so one Airflow version running everywhere tells it (plan.database_schema).
INFERRED = "the version every running component runs"


@dataclass(frozen=True)
class SchemaCheck:
    """Whether a release can run on the database's schema, as recorded."""

    recorded: str | None  # the Airflow version the database was last moved to
    target: str | None  # the target release's Airflow version
    needs_downgrade: bool = False
    needs_migration: bool = False
    note: str | None = None  # what is unknown, said as a warning
    unreadable: str | None = None  # why the target's version could not be read, when it could not
    inferred: bool = False  # `recorded` is not recorded: it is the one Airflow version every running component runs

    @property
    def basis(self) -> str:
        """How the database's schema is known, when it is not recorded: words to put after the version."""
        return f" ({INFERRED})" if self.inferred else ""

    @property
    def fits(self) -> bool:
        return not (self.needs_downgrade or self.needs_migration)


def check_schema(recorded: str | None, target: str | None) -> SchemaCheck:
    """Can an image of Airflow `target` run on a database migrated to `recorded`? Components that check migrations
    exit with "Database migration required" when the two schemas differ, in either direction."""
    if recorded is None or target is None:
        unknown = "the database's schema" if recorded is None else "the target release's Airflow version"
        return SchemaCheck(recorded, target, note=f"{unknown} is not known: the schema cannot be checked")
    same = same_schema(recorded, target)
    if same is None:
        return SchemaCheck(recorded, target, note=f"the schemas of Airflow {recorded} and {target} are not known here")
    if same:
        return SchemaCheck(recorded, target)
    older = compare(target, recorded) < 0
    return SchemaCheck(recorded, target, needs_downgrade=older, needs_migration=not older)


def require_instance(env: Env, instance: str) -> None:
    """The instance --snapshot names exists: refused (exit 2) before anything changes, not once the schedulers
    have stopped."""
    if env.rds is None:
        raise WorkflowError("no RDS client to take the snapshot with")
    Rds(env.rds()).require_instance(instance)


def take_snapshot(env: Env, instance: str, cluster: str) -> Snapshot:
    """An RDS snapshot of `instance`, named after the cluster and the UTC time, waited for until available."""
    if env.rds is None:
        raise WorkflowError("no RDS client to take the snapshot with")
    rds = Rds(env.rds())
    name = snapshot_name(cluster, env.report.now())
    with env.report.phase(f"snapshot RDS instance {instance} as {name}"):
        env.before_change()
        # Taken after the stop and the drain: that the task instances were finishing is no longer the news.
        env.recovery.state = (f"the scheduler is stopped; RDS snapshot {name} of {instance} is being taken (RDS "
                              "finishes it whatever this command does); the schema has not moved")
        rds.create_snapshot(instance, name)

        def available() -> Snapshot | None:
            found = rds.snapshot(name, instance)
            if found is not None and found.status in ("failed", "incompatible-restore", "incompatible-parameters"):
                raise OperationFailed(f"RDS snapshot {name} of {instance} ended {found.status}; the schema was not moved")
            return found if found is not None and found.status == "available" else None

        snapshot = env.poller.until(available, lambda: f"RDS snapshot {name} to be available")
    restore = env.aws_words(["rds", "restore-db-instance-from-db-snapshot", "--db-snapshot-identifier", name,
                             "--db-instance-identifier", "NEW_INSTANCE"])
    env.report.line(f"snapshot {name} is available; restore it with:\n{shell_lines(restore)}")
    return snapshot
