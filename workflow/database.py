"""The schema the Airflow database is at, as this tool records it on the cluster when a migration succeeds.

The record is the ECS cluster tag `workflow-airflow-schema` = the Airflow version of the image that last migrated
(or downgraded) the database. A rollback to a release whose schema differs would leave every component that
checks migrations crash-looping, so it is refused unless the database is downgraded first.
"""

from .ecs import Task
from .env import Env
from .errors import WorkflowError
from .image_config import airflow_version, image_config

SCHEMA_TAG = "workflow-airflow-schema"
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
    return airflow_version(image_config(env.ecr, container.image, container.image_digest or ""))


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
