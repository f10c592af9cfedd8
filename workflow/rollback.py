"""Rollback: point `latest` back at an earlier release, then redeploy the cluster onto it.

Above both releases (what to roll back to) and operations (the safe redeploy).
"""

from dataclasses import dataclass

from . import operations
from .ecr import Ecr
from .env import Env
from .progress import Reporter
from .releases import SCHEMA_NOTE, RollbackPlan
from .tags import LATEST
from .topology import Topology


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


def rollback(ecr: Ecr, report: Reporter, plan: RollbackPlan, dry_run: bool = False,
             env: Env | None = None, topology: Topology | None = None,
             options: operations.RedeployOptions = operations.DEFAULTS) -> RollbackOutcome:
    """Carry out `plan`: PutImage of the target's exact manifest as `latest`, then the safe redeploy of `target`
    through `env` when the plan says so. The operator lease is taken before the tag moves."""
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
        assert env is not None and topology is not None, "a plan to redeploy comes with the cluster"
        operations.check_redeploy(env, topology, options)  # what redeploy refuses, refused before the tag moves
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
    outcome = redeploy(env, topology, options)
    return RollbackOutcome(f"{said}; {outcome.summary}", **base, tag=tag, redeployed=True, dry_run=False,
                           services=outcome.services, scheduler_downtime=outcome.scheduler_downtime)
