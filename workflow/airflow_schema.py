"""Airflow's own facts about its metadata database: the schema each version needs, how Airflow reads versions,
which components refuse to start on another schema and what they write when they do, and where an image says
which Airflow it holds.

Read from Airflow's source: apache-airflow-core 3.3.2 (`airflow/utils/db.py`, `airflow/utils/cli.py`,
`airflow/cli/commands/db_command.py`), the Celery provider's `cli/celery_command.py`, and apache-airflow 2.11.0
for what Airflow 2 writes.
"""

import shlex
from collections.abc import Mapping, Sequence
from typing import Any

# `_REVISION_HEADS_MAP` in airflow/utils/db.py of apache-airflow-core 3.3.2: the alembic head each release's
# `airflow db migrate` leaves, in ascending order. A release not listed has the schema of the nearest listed one
# below it: patch releases usually add no migration (3.2.2 has 3.2.0's schema, 2.11.0 has 2.10.3's).
REVISION_HEADS: dict[str, str] = {
    "2.6.2": "4bc4d934e2bc",
    "2.7.0": "405de8318b3a",
    "2.8.0": "10b52ebd31f7",
    "2.8.1": "88344c1d9134",
    "2.9.0": "1949afb29106",
    "2.9.2": "686269002441",
    "2.10.0": "22ed7efa9da2",
    "2.10.3": "5f2621c13b39",
    "3.0.0": "29ce7909c52b",
    "3.0.3": "fe199e1abd77",
    "3.1.0": "cc92b33c6709",
    "3.1.8": "509b94a1042d",
    "3.2.0": "1d6611b6ab7c",
    "3.3.0": "d2f4e1b3c5a7",
}

# What the official image sets (Dockerfile: ENV AIRFLOW_VERSION, LABEL org.apache.airflow.version).
VERSION_ENV = "AIRFLOW_VERSION"
VERSION_LABEL = "org.apache.airflow.version"

# Subcommands decorated with `@cli_utils.action_cli` and check_db left True: airflow/utils/cli.py runs
# `check_and_run_migrations` before them when `[database] check_migrations` is on (the default).
CHECKS_AT_START = frozenset({("scheduler",), ("dag-processor",), ("triggerer",), ("api-server",), ("webserver",)})
# The Celery provider's worker is `action_cli(check_db=not AIRFLOW_V_3_0_PLUS)`: only Airflow 2 workers check.
CELERY_WORKER = ("celery", "worker")
SUBCOMMANDS = frozenset(words[0] for words in CHECKS_AT_START) | {"celery", "db", "dags", "tasks", "version"}

# The start of what a component that checks migrations writes before it exits 1 (see `migration_required`).
MIGRATION_REQUIRED = (
    "Database migration required. Please run `airflow db migrate`.",  # Airflow 3, logged as an error
    "ERROR: You need to upgrade the database.",  # Airflow 2, printed on stderr
    "ERROR: You need to initialize the database.",  # Airflow 2, on a database never migrated
)


def parse(version: str) -> tuple[int, ...] | None:
    """A version as Airflow's `_get_version_revision` reads it: dot-separated integers. None for anything else,
    a pre-release such as 3.3.0rc1 included."""
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        return None


def compare(a: str, b: str) -> int:
    """-1, 0 or 1 as release `a` is older than, the same as, or newer than `b`; ValueError when either is not a
    release number."""
    left, right = parse(a), parse(b)
    if left is None or right is None:
        raise ValueError(f"not an Airflow release number: {a if left is None else b!r}")
    return (left > right) - (left < right)


# The newest release this table was read from: a later one may add a migration the table cannot know of, so its
# schema is unknown here (a rollback then cannot check it, and says so) rather than assumed to be 3.3.0's.
KNOWN_THROUGH = "3.3.2"


def schema_of(version: str) -> str | None:
    """The schema head of `version`: its own entry, else the nearest listed release below it, walked back as
    `_get_version_revision` does; None when it is older than every entry or not a release number (Airflow then
    answers `airflow db downgrade --to-version` with "Downgrading to version X is not supported.")."""
    if version in REVISION_HEADS:
        return REVISION_HEADS[version]
    wanted = parse(version)
    if wanted is None or wanted > (parse(KNOWN_THROUGH) or ()):
        return None
    for listed, head in reversed(REVISION_HEADS.items()):
        if tuple(int(part) for part in listed.split(".")) < wanted:
            return head
    return None


def same_schema(a: str, b: str) -> bool | None:
    """Whether images of releases `a` and `b` run on one schema; None when either schema is unknown."""
    head_a, head_b = schema_of(a), schema_of(b)
    return None if head_a is None or head_b is None else head_a == head_b


def version_from_config(config: Mapping[str, Any] | None) -> str | None:
    """The Airflow release an image holds, from its image config: `AIRFLOW_VERSION` in `config.Env`, else the
    `org.apache.airflow.version` label; None when it says neither."""
    settings = (config or {}).get("config") or {}
    for entry in settings.get("Env") or []:
        name, _, value = str(entry).partition("=")
        if name == VERSION_ENV and value:
            return value
    label = (settings.get("Labels") or {}).get(VERSION_LABEL)
    return str(label) if label else None


def airflow_command(command: Sequence[str] | None) -> tuple[str, ...]:
    """The words after `airflow` in a container's command (`airflow celery worker -q x` -> celery, worker, -q, x).
    The official image's entrypoint runs a bare subcommand (`scheduler`) as `airflow scheduler`; a shell's `-c`
    script is read too. Empty when the command runs no Airflow subcommand."""
    words = list(command or [])
    if len(words) >= 3 and words[0].rsplit("/", 1)[-1] in ("bash", "sh") and words[1] == "-c":
        try:
            words = shlex.split(words[2])
        except ValueError:
            return ()
    for at, word in enumerate(words):
        if word.rsplit("/", 1)[-1] == "airflow":
            return tuple(words[at + 1:])
    return tuple(words) if words and words[0] in SUBCOMMANDS else ()


def checks_migrations(command: Sequence[str] | None, version: str | None) -> bool:
    """Whether the command exits 1 at start when its image's schema is not the database's (with `[database]
    check_migrations` on, the default). A Celery worker checks only on Airflow 2; `version` None counts as 3."""
    words = airflow_command(command)
    if words[:1] and (words[0],) in CHECKS_AT_START:
        return True
    if words[:2] == CELERY_WORKER:
        release = parse(version) if version else None
        return release is not None and release < (3,)
    return False


def migration_required(version: str, initialised: bool = True) -> str:
    """The line a component that checks migrations writes before it exits 1 when the database's schema is not
    its own: Airflow 3 logs it as an error (`check_and_run_migrations`), Airflow 2 prints it on stderr."""
    release = parse(version)
    if release is None or release >= (3,):
        return ("Database migration required. Please run `airflow db migrate`. "
                f"Make sure the command is run using Airflow version {version}.")
    verb, command = ("upgrade", "upgrade") if initialised else ("initialize", "init")
    return (f"ERROR: You need to {verb} the database. Please run `airflow db {command}`. "
            f"Make sure the command is run using Airflow version {version}.")


def says_migration_required(line: str) -> bool:
    """Whether a log line is a component's refusal to start on another schema (a timestamp before it allowed)."""
    return any(text in line for text in MIGRATION_REQUIRED)
