"""The simulated Airflow metadata database, and what Airflow's CLI does with it, as Airflow's source does it
(workflow/airflow_schema.py names the sources): a component that checks migrations refuses to start on another
schema, and the one-off commands `airflow db migrate`, `airflow db downgrade` and `airflow db check-migrations`
read and move the schema.

A one-off command is a process: a generator that yields a line to write now (`Log`) or seconds to let pass
(float), and returns its exit code. The simulation plays it on its clock; stopping the task abandons it.
"""

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from workflow.airflow_schema import REVISION_HEADS, airflow_command, migration_required, parse, schema_of

# Seconds from a container's start to Airflow's first look at the database (the CLI loading).
STARTUP = 1.0
# create_global_lock: `SET LOCK_TIMEOUT to 1800` (milliseconds, Postgres) before `SELECT pg_advisory_lock(1)`:
# a second migration waits that long for the first one's lock, then fails.
LOCK_TIMEOUT_STEPS, LOCK_STEP = 18, 0.1
CHECK_MIGRATIONS_TIMEOUT = 60  # `airflow db check-migrations -t`, default
HEADS = list(REVISION_HEADS.values())

Process = Generator["float | Log", None, int]


@dataclass(frozen=True)
class Log:
    """A line as the process writes it: Airflow 3 logs through structlog's console renderer, Airflow 2 through
    its `[%(asctime)s] {%(filename)s:%(lineno)d} %(levelname)s - %(message)s` format; `level` None is a plain
    line on stdout or stderr (a print, a traceback)."""

    message: str
    level: str | None = None
    where: str = ""  # file:line of the call in Airflow's source
    logger: str = "airflow.utils.db"
    fields: str = ""  # structlog's key=value pairs

    def render(self, wall: datetime, airflow3: bool) -> str:
        if self.level is None:
            return self.message
        if not airflow3:
            stamp = wall.strftime("%Y-%m-%dT%H:%M:%S.") + f"{wall.microsecond // 1000:03d}+0000"
            return f"[{stamp}] {{{self.where}}} {self.level.upper()} - {self.message}"
        stamp = wall.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        extra = f" {self.fields}" if self.fields else ""
        return f"{stamp} [{self.level:<9}] {self.message:<30} [{self.logger}]{extra} loc={self.where}"


def info(message: str, where: str, logger: str = "airflow.utils.db", fields: str = "") -> Log:
    return Log(message, "info", where, logger, fields)


def traceback(error: str) -> list[Log]:
    """An uncaught exception: Python's traceback on stderr, its last line the error."""
    return [Log("Traceback (most recent call last):"),
            Log('  File "/home/airflow/.local/bin/airflow", line 7, in <module>'),
            *(Log(line) for line in error.splitlines())]


@dataclass
class AirflowDatabase:
    """The metadata database's alembic head (None: empty, never migrated) and its migration lock."""

    head: str | None = None
    url: str = "postgresql+psycopg2://airflow:***@airflow-db:5432/airflow"
    holder: Any = field(default=None, repr=False, compare=False)  # the task whose process holds the lock

    def mismatch(self, version: str) -> str | None:
        """The line a component of `version` that checks migrations writes before exiting 1, or None when it
        starts: source heads equal to the database's, in either direction."""
        if schema_of(version) == self.head:
            return None
        return migration_required(version, initialised=self.head is not None)

    def lock_free(self, task: Any, running: Callable[[Any], bool]) -> bool:
        return self.holder is None or self.holder is task or not running(self.holder)


def knows(version: str, head: str | None) -> bool:
    """Whether the image of `version` holds the revision script of `head`: only schemas up to its own."""
    own = schema_of(version)
    if own is None or head is None:
        return False
    if head == own:
        return True
    return head in HEADS and own in HEADS and HEADS.index(head) <= HEADS.index(own)


def is_airflow3(version: str) -> bool:
    release = parse(version)
    return release is None or release >= (3,)


def db_command(command: Sequence[str] | None) -> tuple[str, list[str]] | None:
    """('migrate' | 'downgrade' | 'check-migrations', the words after it) when the command is one of them."""
    words = list(airflow_command(command))
    if len(words) >= 2 and words[0] == "db" and words[1] in ("migrate", "downgrade", "check-migrations"):
        return words[1], words[2:]
    return None


def process(db: AirflowDatabase, task: Any, running: Callable[[Any], bool], version: str, command: str,
            args: list[str], seconds: float) -> Process:
    """The one-off `airflow db <command> <args>` of an image of `version`; `seconds`: how long the migration runs."""
    say = Words(is_airflow3(version), db.url)
    if command == "migrate":
        return migrate(db, task, running, version, seconds, say)
    if command == "downgrade":
        return downgrade(db, task, running, version, args, seconds, say)
    return check_migrations(db, version, args, say)


@dataclass(frozen=True)
class Words:
    """What the commands write, as Airflow 3.3.2 writes it (structlog, in db_command.py and db.py) or as Airflow
    2.11.0 does (prints in db_command.py, log lines in db.py)."""

    airflow3: bool
    url: str

    def _cli(self, text3: str, where: str, text2: str, url: bool = False) -> Log:
        if self.airflow3:
            return info(text3, where, "airflow.cli.commands.db_command", f"url={self.url}" if url else "")
        return Log(f"{text2} {self.url}" if url else text2)

    def _db(self, text3: str, where3: str, text2: str, where2: str) -> Log:
        return info(text3, where3) if self.airflow3 else info(text2, where2)

    def migrating(self) -> list[Log]:
        first = [] if self.airflow3 else [Log(f"DB: {self.url}")]
        upgrade = self._cli("Performing upgrade to the metadata database", "db_command.py:134",
                            "Performing upgrade to the metadata database", url=True)
        return [*first, upgrade]

    def creating(self, initialise: bool) -> Log:
        if initialise:
            return self._db("Creating Airflow database tables from the ORM", "db.py:749", "Creating tables", "db.py:1675")
        return self._db("Migrating the Airflow database", "db.py:1189", "Creating tables", "db.py:1675")

    def migrated(self) -> Log:
        return self._cli("Database migration done!", "db_command.py:152", "Database migrating done!")

    def downgrading(self) -> Log:
        return self._cli("Performing downgrade with database", "db_command.py:188", "Performing downgrade with database",
                         url=True)

    def attempting(self, target: str) -> Log:
        return self._db(f"Attempting downgrade to revision {target}", "db.py:1392",
                        f"Attempting downgrade to revision {target}", "db.py:1755")

    def applying(self) -> Log:
        return self._db("Applying downgrade migrations to Airflow database.", "db.py:1419",
                        "Applying downgrade migrations.", "db.py:1766")

    def downgraded(self) -> Log:
        return self._cli("Downgrade complete", "db_command.py:203", "Downgrade complete")

    def waiting(self, ticker: int) -> Log:
        text = f"Waiting for migrations... {ticker} second(s)"
        return self._db(text, "db.py:923", text, "db.py:859")


def _lock(db: AirflowDatabase, task: Any, running: Callable[[Any], bool]) -> Generator[float | Log, None, bool]:
    for _ in range(LOCK_TIMEOUT_STEPS):
        if db.lock_free(task, running):
            db.holder = task
            return True
        yield LOCK_STEP
    if db.lock_free(task, running):
        db.holder = task
        return True
    yield from traceback("sqlalchemy.exc.OperationalError: (psycopg2.errors.LockNotAvailable) canceling statement "
                         "due to lock timeout\n[SQL: SELECT pg_advisory_lock(%(id)s)]\n[parameters: {'id': 1}]")
    return False


def _unlock(db: AirflowDatabase, task: Any) -> None:
    if db.holder is task:
        db.holder = None


def migrate(db: AirflowDatabase, task: Any, running: Callable[[Any], bool], version: str, seconds: float,
            say: Words) -> Process:
    """`airflow db migrate`: an empty database is created at the image's head, an older one upgraded to it; a
    database the image has no revision script for (a newer release migrated it) fails in alembic."""
    yield STARTUP
    initialise = db.head is None
    yield from say.migrating()
    if say.airflow3:
        yield say.creating(initialise)  # Airflow 3 says so before it takes the lock, Airflow 2 after
    if not (yield from _lock(db, task, running)):
        return 1
    if not say.airflow3:
        yield say.creating(initialise)
    if not initialise and not knows(version, db.head):
        _unlock(db, task)
        yield from traceback(f"alembic.util.exc.CommandError: Can't locate revision identified by '{db.head}'")
        return 1
    yield seconds
    db.head = schema_of(version)
    _unlock(db, task)
    yield say.migrated()
    return 0


def _options(args: list[str], names: dict[str, str]) -> dict[str, str | bool]:
    """argparse's reading of the options Airflow declares: `--name value`, `--name=value`, short forms; a flag
    (value "") is True when present."""
    found: dict[str, str | bool] = {}
    words = iter(args)
    for word in words:
        flag, equals, value = word.partition("=")
        key = names.get(flag)
        if key is None:
            continue
        if key.endswith("?"):
            found[key[:-1]] = True
        else:
            found[key] = value if equals else next(words, "")
    return found


def downgrade(db: AirflowDatabase, task: Any, running: Callable[[Any], bool], version: str, args: list[str],
              seconds: float, say: Words) -> Process:
    """`airflow db downgrade --to-version X -y` (or `--to-revision R`), as run_db_downgrade_command and
    db.downgrade do it: only the image that migrated the database holds the scripts to walk it back."""
    options = _options(args, {"-n": "to_version", "--to-version": "to_version", "-r": "to_revision",
                              "--to-revision": "to_revision", "-y": "yes?", "--yes": "yes?",
                              "-s": "show_sql?", "--show-sql-only": "show_sql?"})
    yield STARTUP
    to_version, to_revision = options.get("to_version"), options.get("to_revision")
    if to_version and to_revision:
        yield Log("Cannot supply both `--to-revision` and `--to-version`.")
        return 1
    if not (to_version or to_revision):
        yield Log("Must provide either --to-revision or --to-version.")
        return 1
    target = schema_of(str(to_version)) if to_version else str(to_revision)
    if target is None:
        yield Log(f"Downgrading to version {to_version} is not supported.")
        return 1
    yield say.downgrading()
    if options.get("show_sql"):
        return 0  # prints the SQL; changes nothing
    if not options.get("yes"):
        yield Log("")
        yield Log("Warning: About to reverse schema migrations for the airflow metastore. Please ensure you have "
                  "backed up your database before any upgrade or downgrade operation. Proceed? (y/n)")
        yield from traceback("EOFError: EOF when reading a line")  # input() with no terminal
        return 1
    yield say.attempting(target)
    if not (yield from _lock(db, task, running)):
        return 1
    yield say.applying()
    error = None
    if db.head is None:
        error = f"Destination {target} is not a valid downgrade target from current head(s)"
    elif not knows(version, db.head):
        error = f"Can't locate revision identified by '{db.head}'"
    elif not knows(version, target):
        error = f"Can't locate revision identified by '{target}'"
    elif HEADS.index(target) > HEADS.index(db.head):  # both known to the image by now, so both listed
        error = f"Destination {target} is not a valid downgrade target from current head(s)"
    if error:
        _unlock(db, task)
        yield from traceback(f"alembic.util.exc.CommandError: {error}")
        return 1
    if target != db.head:
        yield seconds
        db.head = target
    _unlock(db, task)
    yield say.downgraded()
    return 0


def check_migrations(db: AirflowDatabase, version: str, args: list[str], say: Words) -> Process:
    """`airflow db check-migrations [-t SECONDS]`: looks once a second until the database's heads are the image's,
    then exits 0; after the timeout, a TimeoutError (exit 1)."""
    options = _options(args, {"-t": "timeout", "--migration-wait-timeout": "timeout"})
    try:
        timeout = int(options.get("timeout") or CHECK_MIGRATIONS_TIMEOUT)
    except ValueError:
        yield Log(f"airflow db check-migrations: error: argument -t/--migration-wait-timeout: invalid int value: "
                  f"'{options.get('timeout')}'")
        return 2
    timeout = timeout or 1  # run the loop at least once
    source = schema_of(version)
    yield STARTUP
    for ticker in range(timeout):
        if db.head == source:
            return 0
        yield 1.0
        yield say.waiting(ticker)
    in_db = {db.head} if db.head else set()
    yield from traceback(f"TimeoutError: There are still unapplied migrations after {timeout} seconds. "
                         f"MigrationHead(s) in DB: {in_db} | Migration Head(s) in Source Code: {{{source!r}}}")
    return 1
