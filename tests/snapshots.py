"""Provisioned clusters and pushed images made once per test process, through the APIs, and restored for each
test by copy.

Provisioning takes thirteen API calls; a copy of what they leave behind (moto's ECS, EC2, CloudWatch Logs, ELBv2
and RDS backends of the Region, and the simulation's services and tasks) is restored in a tenth of the time. A copy
is restored only into a fresh mock and a simulation configured as the one it was taken from, so a test that
sets up faults or timings before its cluster exists still gets a cluster provisioned under them. Pushing a
release takes a dozen; a copy of moto's ECR backend and of the simulated registry's blobs is restored only
where ECR and the registry are as they were when it was taken.
"""

import copy
from dataclasses import dataclass
from typing import Any

from workflow_sandbox.moto_models import (
    ec2_backends,
    ecr_backends,
    ecs_backends,
    elbv2_backends,
    logs_backends,
    rds_backends,
)

ACCOUNT = "123456789012"
BACKENDS = (ecs_backends, ec2_backends, logs_backends, elbv2_backends, rds_backends)
# What the simulation changes as it runs. The Airflow database is a setting: provisioning leaves it as it was.
STATE = ("services", "tasks", "_pending_logs", "_due", "_scheduled", "_launched", "_stopped", "run_task_answers")
OWN = ("clock", "lock", "observers", "image_config")  # each test's own, never copied


@dataclass(frozen=True)
class Snapshot:
    settings: str  # what must be the same for the copy to be restored
    copied: Any  # everything restored, copied together, so shared references stay shared


_taken: dict[str, Snapshot] = {}


def provisioned(name: str, sim, clock, region: str, provision):
    """What `provision()` returns and leaves behind, from this process's snapshot `name` when it may be used."""
    fresh = _fresh(sim, clock, region)
    settings = _settings(sim)
    snapshot = _taken.get(name)
    if fresh and snapshot is not None and snapshot.settings == settings:
        result, cluster = copy.deepcopy(snapshot.copied)
        _restore(sim, clock, region, cluster)
        return result
    result = provision()
    # Provisioning must leave the configuration as it found it (a fault or a flaky start it used up is not copied).
    settled = _settled(sim, settings)
    if fresh and snapshot is None and settled:
        _taken[name] = Snapshot(settings, copy.deepcopy((result, _cluster(sim, clock, region))))
    return result


def _cluster(sim, clock, region: str) -> tuple:
    """What a build leaves in the simulation and in moto's cluster backends, and when, to be copied."""
    return {key: getattr(sim, key) for key in STATE}, tuple(d[ACCOUNT][region] for d in BACKENDS), clock.now()


def _restore(sim, clock, region: str, cluster: tuple) -> None:
    state, backends, now = cluster
    for backend_dict, backend in zip(BACKENDS, backends, strict=True):
        backend_dict[ACCOUNT][region] = backend
    vars(sim).update(state)
    clock.sleep(now)
    for observer in sim.observers:
        observer(sim)


def _settled(sim, settings: str, apart: tuple[str, ...] = ()) -> bool:
    """After a build: configured as before it (no fault or flaky start used up) and with no transition still to
    play (those are closures over this simulation)."""
    with sim.lock:
        sim.advance()
    return _settings(sim, apart) == settings and not any(sim.faults.count.values()) and sim.idle()


def _fresh(sim, clock, region: str) -> bool:
    """Nothing has happened yet: no simulated time, no service, no cluster, log group, VPC, load balancer or
    database of a test's own, and no ECR repository, whose images the tasks would resolve as they start."""
    return (
        clock.now() == 0
        and not sim.services
        and not ecs_backends[ACCOUNT][region].clusters
        and not logs_backends[ACCOUNT][region].groups
        and len(ec2_backends[ACCOUNT][region].vpcs) == 1  # the default VPC
        and not ecr_backends[ACCOUNT][region].repositories
        and not elbv2_backends[ACCOUNT][region].load_balancers
        and not elbv2_backends[ACCOUNT][region].target_groups
        and not rds_backends[ACCOUNT][region].databases
    )


def _settings(sim, apart: tuple[str, ...] = ()) -> str:
    """How the simulation is configured (its timings, faults, failures to rehearse), comparable by equality."""
    own = {key: value for key, value in vars(sim).items() if key not in STATE + OWN + ("faults",) + apart}
    faults = (sim.faults.rates, [repr(injection) for injection in sim.faults._pending])
    return repr((sorted(own.items()), faults))


REGISTRY_STATE = ("blobs", "uploads", "parts")  # what a push changes in workflow/sandbox/registry.py's Registry
_pushed: dict[str, Snapshot] = {}


def pushed(name: str, registry, region: str, push):
    """What `push()` (seeded: the same images every time) returns and leaves in ECR and in `registry`, from this
    process's copy `name` when ECR and the registry are as they were when it was taken."""
    before = _ecr_state(registry, region)
    snapshot = _pushed.get(name)
    if snapshot is not None and snapshot.settings == before:
        result, backend, state = _copy(snapshot.copied)
        ecr_backends[ACCOUNT][region] = backend
        vars(registry).update(state)
        return result
    result = push()
    if snapshot is None:
        state = {key: getattr(registry, key) for key in REGISTRY_STATE}
        _pushed[name] = Snapshot(before, _copy((result, ecr_backends[ACCOUNT][region], state)))
    return result


def _copy(copied: tuple):
    """A deep copy of (result, ECR backend, registry state) that shares the backend's lock, which cannot be
    copied (nor needs to be: tests run one at a time in a process)."""
    lock = copied[1].registry_scanning_configuration_update_lock
    return copy.deepcopy(copied, {id(lock): lock})


def _ecr_state(registry, region: str) -> str:
    """Everything ECR holds (registry settings and tags; each repository's settings, blobs, images and uploads)
    and the registry's state and faults, comparable; a repository's creation time aside."""
    backend = ecr_backends[ACCOUNT][region]
    apart = ("repositories", "tagger", "registry_scanning_configuration_update_lock")  # compared below; a lock
    settings = {key: value for key, value in vars(backend).items() if key not in apart}
    repositories = [
        (sorted((key, value) for key, value in vars(repo).items() if key not in ("created_at", "images")),
         sorted((image.get_image_digest(), image.image_tags) for image in repo.images))
        for _, repo in sorted(backend.repositories.items())
    ]
    own = {key: value for key, value in vars(registry).items() if key not in ("_lock", "_server", "_tokens", "blobs")}
    return repr((sorted(settings.items()), backend.tagger.tags, repositories, sorted(registry.blobs), sorted(own.items())))


_worlds: dict[str, tuple[Snapshot, Any]] = {}


def world(name: str, sim, clock, registry, region: str, build):
    """What `build()` returns and leaves behind in a test that has done nothing yet: moto's ECS, EC2, Logs, ELBv2,
    RDS and ECR backends, the simulation's services, tasks and Airflow database (which `build` may set), and the
    simulated registry's blobs; from this process's copy `name` when the simulation is configured as it was when
    the copy was taken. For a cluster whose tasks run images pushed with it."""
    fresh, settings = _fresh(sim, clock, region), _settings(sim, apart=("database",))
    taken = _worlds.get(name)
    if fresh and taken is not None and taken[0].settings == settings:
        snapshot, lock = taken  # ECR's lock cannot be copied, nor needs to be: the copies share the one taken
        result, cluster, database, ecr, blobs = copy.deepcopy(snapshot.copied, {id(lock): lock})
        ecr_backends[ACCOUNT][region] = ecr
        sim.database = database
        if registry is not None:
            vars(registry).update(blobs)
        _restore(sim, clock, region, cluster)
        return result
    result = build()
    settled = _settled(sim, settings, apart=("database",))
    if fresh and taken is None and settled:
        blobs = {key: getattr(registry, key) for key in REGISTRY_STATE} if registry is not None else {}
        ecr = ecr_backends[ACCOUNT][region]
        lock = ecr.registry_scanning_configuration_update_lock
        copied = copy.deepcopy((result, _cluster(sim, clock, region), sim.database, ecr, blobs), {id(lock): lock})
        _worlds[name] = (Snapshot(settings, copied), lock)
    return result
