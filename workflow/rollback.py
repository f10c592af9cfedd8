"""Rollback: point `latest` back at an earlier release, then redeploy the cluster onto it, the database's schema
checked first (and, with --downgrade-db, moved back with the newer image before the tag moves).

Above both releases (what to roll back to) and operations (the safe redeploy). A rollback records its target on
the cluster before its first change (tag `workflow-rollback`), so a re-run after an interrupt, a kill or a failed
redeploy finishes that same rollback instead of going one release further back.
"""

from dataclasses import dataclass, replace

from . import database, operations
from .airflow_schema import version_from_config
from .airflow_view import drain
from .ecr import Ecr
from .env import Env, Lease
from .errors import WorkflowError
from .image_config import config_of
from .progress import Reporter
from .releases import SCHEMA_NOTE, RollbackPlan
from .tag_keys import ROLLBACK_TAG
from .tags import LATEST
from .topology import DAG_PROCESSOR, SCHEDULER, Topology


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
    warnings: tuple[str, ...] = ()
    schema: database.SchemaCheck | None = None
    downgraded_to: str | None = None  # the Airflow version the database was downgraded to
    snapshot: str | None = None


@dataclass(frozen=True)
class Options:
    downgrade_db: bool = False
    snapshot: str | None = None  # an RDS instance to snapshot before the schema moves back
    redeploy: operations.RedeployOptions = operations.DEFAULTS


def unfinished(env: Env, repository: str) -> str | None:
    """The digest an earlier rollback of `repository` on this cluster was moving to and did not finish."""
    try:
        value = env.ecs.cluster_tags().get(ROLLBACK_TAG, "")
    except WorkflowError:
        return None
    name, _, digest = value.partition("@")
    return digest if name == repository and digest else None


def finished(env: Env, repository: str, digest: str) -> RollbackOutcome:
    """An earlier rollback to `digest`, stopped after every service ran it: only its record is left to remove (with
    the dead run's leases, which --break-lease breaks)."""
    env.before_change()
    env.ecs.untag_cluster([ROLLBACK_TAG])
    return RollbackOutcome(
        f"the rollback to {digest[:19]} an earlier run began had finished: every service of cluster {env.ecs.cluster} "
        "runs it; its record is removed", repository, digest, None, digest, None, tag="unchanged", redeployed=False,
        dry_run=False, warnings=())


def check_schema(env: Env | None, ecr: Ecr, plan: RollbackPlan, topology: Topology | None = None
                 ) -> database.SchemaCheck:
    """The target release against the schema the cluster records, else (given the topology) the one Airflow
    version every running component runs, as `plan` infers it; unknown parts are a note, never a refusal."""
    recorded, inferred = None, False
    if env is not None:
        from .plan import database_schema

        try:
            recorded, inferred = database_schema(env, topology)
        except WorkflowError:
            recorded, inferred = None, False
    try:
        target = version_from_config(config_of(ecr, plan.repository, plan.to_digest))
    except WorkflowError as error:
        return replace(database.check_schema(recorded, None), unreadable=str(error), inferred=inferred)
    return replace(database.check_schema(recorded, target), inferred=inferred)


def refusal(check: database.SchemaCheck, plan: RollbackPlan, options: Options) -> str | None:
    """Why the rollback may not go ahead as asked, or None."""
    if options.downgrade_db and check.recorded is not None and check.target is None:
        why = f": {check.unreadable}" if check.unreadable else " (its image config declares none)"
        return (f"--downgrade-db: the Airflow version of {plan.target} cannot be read{why}, so there is no version "
                "to downgrade the database to; nothing was changed")
    if check.needs_migration:
        return (f"the database is at Airflow {check.recorded}'s schema{check.basis} and {plan.target} is Airflow "
                f"{check.target}, which needs a newer one: it is no rollback; deploy it with `redeploy --migrate`; "
                "nothing was changed")
    if check.needs_downgrade and not options.downgrade_db:
        return (f"the database is at Airflow {check.recorded}'s schema{check.basis} and {plan.target} is Airflow "
                f"{check.target}: its scheduler, dag-processor, api-server and triggerer would exit with 'Database "
                "migration required'. "
                f"Pass --downgrade-db to run `airflow db downgrade --to-version {check.target} -y` with the current "
                "image first (with --snapshot DB_INSTANCE to snapshot the database before), or restore a backup "
                "taken before the migration; nothing was changed")
    return None


def rollback(ecr: Ecr, report: Reporter, plan: RollbackPlan, dry_run: bool = False,
             env: Env | None = None, topology: Topology | None = None, options: Options | None = None,
             check: database.SchemaCheck | None = None, lease: Lease | None = None) -> RollbackOutcome:
    """Carry out `plan`: with --downgrade-db, stop the schedulers and dag-processors and downgrade the database with
    the image `latest` names now; PutImage of the target's exact manifest as `latest`; then the safe redeploy. The
    operator lease is taken before the first change, and the target is recorded on the cluster with it."""
    options = options or Options()
    for note in plan.notes:
        report.line(note)
    if options.downgrade_db and not (check and check.needs_downgrade):
        report.line(f"--downgrade-db: the database's schema already fits {plan.target}; it is not downgraded")
    warnings = [SCHEMA_NOTE] if check is None or check.recorded is None else [check.note] if check.note else []
    base = dict(repository=plan.repository, from_digest=plan.from_digest, from_stamp=plan.from_stamp,
                to_digest=plan.to_digest, to_stamp=plan.to_stamp, schema=check, warnings=tuple(warnings))
    moves = f"{LATEST} in {plan.repository} from {plan.source} to {plan.target}"
    downgrade = bool(check and check.needs_downgrade and options.downgrade_db)
    if dry_run:
        ecr.manifest(plan.repository, digest=plan.to_digest)  # what PutImage would need can be read
        would = ([f"would downgrade the database to Airflow {check.target}'s schema"] if downgrade and check else [])
        would.append(f"would move {moves}" if plan.move_tag else f"{LATEST} in {plan.repository} already names {plan.target}")
        would.append(f"would redeploy cluster {plan.cluster}" if plan.redeploy else "would not redeploy")
        return RollbackOutcome("; ".join(would) + " (dry run: nothing was changed)", **base,  # type: ignore[arg-type]
                               tag="would move" if plan.move_tag else "unchanged", redeployed=False, dry_run=True)
    by_name = None
    if plan.redeploy:
        assert env is not None and topology is not None, "a plan to redeploy comes with the cluster"
        by_name = operations.check_redeploy(env, topology, options.redeploy)  # refused before anything moves
        if downgrade and options.snapshot:
            database.require_instance(env, options.snapshot)
        env.before_change()  # the operator lease, before the first change
        env.recovery.state = (f"the rollback to {plan.target} is recorded on cluster {plan.cluster} (a re-run finishes "
                              f"it); {LATEST} still names {plan.source}")
        env.ecs.tag_cluster([{"key": ROLLBACK_TAG, "value": f"{plan.repository}@{plan.to_digest}"}])
    snapshot = downgraded = None
    if downgrade and env is not None and topology is not None and by_name is not None and check is not None:
        snapshot, downgraded = _downgrade(env, topology, by_name, check, options)
    tag = "unchanged"
    if plan.move_tag:
        manifest = ecr.manifest(plan.repository, digest=plan.to_digest)
        if lease is not None:  # --no-redeploy: the repository's lease, so no promote or redeploy moves latest beside
            lease.before_change()
        # After a downgrade the components that check the schema stay stopped: the old ones no longer fit it.
        stopped = (f"; the scheduler and dag-processor are stopped and the database is at Airflow {downgraded}'s "
                   "schema") if downgraded else ""
        if env is not None:
            env.recovery.state = f"{LATEST} in {plan.repository} may name {plan.target} now, or still {plan.source}" \
                                 + stopped
        tag = "moved" if ecr.put(plan.repository, manifest, LATEST) == "written" else "unchanged"
        if env is not None:
            env.recovery.state = f"{LATEST} in {plan.repository} names {plan.target}; the cluster still runs " \
                                 f"{plan.source}{stopped}"
        report.line(f"{LATEST} in {plan.repository} now names {plan.target} (was {plan.source}); the same digest, "
                    "no blob copied")
    verb = "moved" if plan.forward else "rolled back"
    said = f"{verb} {moves}" if plan.move_tag else f"{LATEST} in {plan.repository} already named {plan.target}"
    if downgraded:
        said = f"downgraded the database to Airflow {downgraded}'s schema; {said}"
    if not plan.redeploy or env is None or topology is None:
        return RollbackOutcome(said + "; the cluster was not redeployed", **base,  # type: ignore[arg-type]
                               tag=tag, redeployed=False, dry_run=False, snapshot=snapshot)
    report.line(f"redeploying cluster {plan.cluster}; should it fail, run the same rollback again: it finishes this "
                "one (the target is recorded on the cluster)")
    outcome = operations.redeploy(env, topology, options.redeploy)  # which removes this rollback's record
    env.recovery.state = None
    return RollbackOutcome(f"{said}; {outcome.summary}", **base, tag=tag, redeployed=True,  # type: ignore[arg-type]
                           dry_run=False, services=outcome.services, scheduler_downtime=outcome.scheduler_downtime,
                           downgraded_to=downgraded, snapshot=snapshot)


def _downgrade(env: Env, topology: Topology, by_name: dict, check: database.SchemaCheck,
               options: Options) -> tuple[str | None, str | None]:
    """Stop what checks the schema, snapshot, then `airflow db downgrade` with the image `latest` still names (it
    holds the revision scripts the downgrade walks back through): RunTask resolves the tag as it launches."""
    schedulers = [by_name[n] for n in topology.services(SCHEDULER)]
    processors = [by_name[n] for n in topology.services(DAG_PROCESSOR)]
    operations.stop_for_upgrade(env, schedulers, processors)
    if env.airflow is not None and options.redeploy.drain_timeout > 0:  # no running task meets the schema moving
        with env.report.phase("drain the running task instances"):
            drain(env.poller, env.airflow, options.redeploy.drain_timeout)
    snapshot = database.take_snapshot(env, options.snapshot, topology.name).name if options.snapshot else None
    source = operations.migration_source(topology, by_name, options.redeploy.migrate_from)
    command = ["airflow", "db", "downgrade", "--to-version", str(check.target), "-y"]
    operations.migrate(env, source, command, untouched="the other components")
    return snapshot, check.target
