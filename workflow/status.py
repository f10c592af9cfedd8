"""`status`: what each service runs, and what an operator should know before the next command."""

from dataclasses import dataclass

from .airflow_schema import version_from_config
from .airflow_view import status as airflow_status
from .changes import SCHEDULER_DEPLOYMENT
from .deployments import stop_cause
from .ecr import tags_for_digests
from .ecs import EXITED, FAILED_TO_START, UNHEALTHY, Service, Task
from .env import Env
from .errors import WorkflowError
from .image_config import image_config
from .images import ecr_image
from .operations import Outcome
from .topology import SCHEDULER, Topology


@dataclass(frozen=True)
class Image:
    """One image a service's RUNNING tasks run: its digest, how many tasks, and its tags in ECR."""

    service: str
    task_definition: str  # family:revision
    image: str
    digest: str | None
    tasks: int
    tags: tuple[str, ...] = ()
    airflow_version: str | None = None  # what the image's config declares


def status(env: Env, topology: Topology) -> Outcome:
    services = env.ecs.services(topology.services())
    tasks = env.ecs.service_tasks([s.name for s in services])  # listed and described once, for all that follows
    schedulers = topology.services(SCHEDULER)
    alive = [t for name in schedulers for t in tasks[name] if not t.process_ended]
    running = {name: [t for t in found if t.desired_status == t.last_status == "RUNNING"] for name, found in tasks.items()}
    images, notes = running_images(env, running)
    warnings = _warnings(env, [s for s in services if s.name in schedulers], services, tasks) + notes
    if not schedulers:
        warnings.insert(0, f"cluster {topology.name} has no scheduler service: name it with --scheduler or tag it "
                           "airflow-role=scheduler")
    return Outcome(
        f"cluster {topology.name}: {len(alive)} scheduler task(s) alive",
        tuple(services),
        warnings=tuple(warnings),
        images=tuple(images),
        scheduler_tasks_alive=len(alive),
        unmanaged=topology.unmanaged,
        roles={c.service: c.role for c in topology.components},
        airflow=airflow_status(env.airflow, env.report.now(), frozenset(topology.by_role)) if env.airflow else None,
    )


def running_images(env: Env, running: dict[str, list[Task]]) -> tuple[list[Image], list[str]]:
    """What each service's RUNNING tasks run, and their tags: one DescribeImages per ECR repository."""
    counts: dict[tuple, int] = {}
    for name, tasks in running.items():
        for task in tasks:
            essential = env.ecs.task_definition(task.task_definition).essential
            for c in task.containers:
                if c.name in essential:
                    key = (name, task.task_definition.rsplit("/", 1)[-1], c.image, c.image_digest)
                    counts[key] = counts.get(key, 0) + 1
    by_repository: dict[tuple, set] = {}
    for _, _, image, digest in counts:
        ref = ecr_image(image)
        if ref and digest:
            by_repository.setdefault((ref.account, ref.region, ref.repository), set()).add((image, digest))
    tags: dict[str, list[str]] = {}
    notes = []
    for (_, _, repository), pairs in by_repository.items():
        image = next(iter(pairs))[0]
        try:
            tags.update(tags_for_digests(env.ecr, image, {d for _, d in pairs}) if env.ecr else {})
        except WorkflowError as error:  # the tags are a courtesy: the digests alone answer "what runs"
            notes.append(f"cannot read the tags of {image.split('@')[0].split(':')[0]}: {error}")
            continue
        # A tag the task definitions name (`latest`) that no running digest carries has moved on: promote ran since.
        for tag in sorted({ref.tag for i, _ in pairs if (ref := ecr_image(i)) and ref.tag and not ref.digest}):
            if not any(tag in tags.get(d, []) for _, d in pairs):
                notes.append(f"{tag} in {repository} names an image no service runs yet (promoted since the last "
                             "redeploy): `redeploy` moves them onto it (`redeploy --migrate` when its Airflow version "
                             "needs a new schema; `redeploy --dry-run` shows the plan)")
    versions: dict[str, str | None] = {}
    for _, _, image, digest in counts:
        if digest and digest not in versions and env.ecr is not None:
            try:
                versions[digest] = version_from_config(image_config(env.ecr, image, digest))
            except WorkflowError:  # a courtesy, as the tags are
                versions[digest] = None
    images = [Image(name, revision, image, digest, n, tuple(tags.get(digest, ())), versions.get(digest or ""))
              for (name, revision, image, digest), n in counts.items()]
    return images, notes


def _warnings(env: Env, schedulers: list[Service], services: list[Service], tasks: dict[str, list[Task]]) -> list[str]:
    """What an operator should know before the next command: nothing here changes the cluster."""
    found = []
    for scheduler in schedulers:
        config = scheduler.deployment_configuration
        if any(config.get(key) != value for key, value in SCHEDULER_DEPLOYMENT.items()):
            found.append(
                f"{scheduler.name} has maximumPercent {config.get('maximumPercent')}, minimumHealthyPercent "
                f"{config.get('minimumHealthyPercent')}: ECS may run two schedulers while it replaces one. Set "
                "deployment_maximum_percent = 100 and deployment_minimum_healthy_percent = 0 in Terraform "
                "(start-scheduler and stop-scheduler set them too)"
            )
    holder = _lease_holder(env)
    if holder:
        found.append(f"another command is changing the cluster: {holder}")
    for scheduler in schedulers:
        if scheduler.desired == 0:
            found.append(f"{scheduler.name} is stopped (desired 0): nothing is scheduling; start-scheduler starts it"
                         + (", once that command has ended" if holder else ""))
    for service in services:
        primary = service.primary
        if primary is None:
            continue
        # failedTasks misses tasks that crash after RUNNING, and COMPLETED never turns back: look at the tasks.
        failed = [
            t for t in tasks[service.name]
            if t.desired_status == "STOPPED" and t.started_by == primary.id
            and stop_cause(t, service) in (EXITED, FAILED_TO_START, UNHEALTHY)
        ]
        if failed:
            last = failed[-1]
            why = last.failure(frozenset(c.name for c in last.containers)) or last.stopped_reason
            found.append(
                f"{service.name}: {len(failed)} task(s) of deployment {primary.id} ({primary.rollout_state}) "
                f"{stop_cause(last, service)} recently; last: {why}"
            )
    return found


def _lease_holder(env: Env) -> str | None:
    from .lease import live_holders

    try:
        holders = live_holders(env.ecs, env.report.now())
    except WorkflowError as error:  # reading the lease is a courtesy here, and its absence is said
        env.report.line(f"cannot tell whether another command is changing the cluster: {error}")
        return None
    return holders[0].describe() if holders else None
