"""The worlds tests/test_properties.py plays in: a running cluster of either Airflow shape, with or without ECR
releases, what happens to it meanwhile, and what is watched at every simulated instant.

Three worlds, each built once per test process and restored by copy for every example (as snapshots.py does for
the fixtures' clusters, with ECR, the simulated registry's blobs and the Airflow database copied too):

- `seed`: the seed's three services (Airflow 2), images outside ECR, no database;
- `airflow3`: scheduler, dag-processor, api-server, triggerer and two worker queues running release v1 (Airflow
  3.2.2), the database at its schema, and v2 (Airflow 3.3.2, two schemas later) promoted under `latest`;
- `releases`: the seed's three services running release 3 of three stamped releases in `airflow-prod`, and two
  candidate images in `airflow-stage` to promote.

What is watched (`World.watch`, `TagJournal`):
- never more scheduler processes than one, nor two images among them (an old and a new scheduler);
- the desired count of every service a command may not scale (workers, web, api-server, triggerer), at every
  change; the dag-processor is stopped and started with the scheduler, so it is judged with it, at the end;
- each component that exits on "Database migration required", when and on which image;
- each image a service launched, and every tag write in ECR: a stamp tag never moves from one digest to another.
"""

import signal
import threading
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import pytest
import snapshots
from click.testing import CliRunner
from conftest import CLUSTER, NAMES, REGION, SCHEDULER, WEB, WORKER, shared_client
from hypothesis import note
from hypothesis.control import currently_in_test_context
from moto import mock_aws

from workflow.airflow_schema import schema_of
from workflow.app import Runtime
from workflow.aws import Clients
from workflow.cli import main
from workflow.lease import TAG_PREFIX
from workflow.runner import Terminated
from workflow.tags import LATEST, STAMP
from workflow_sandbox.clock import FakeClock
from workflow_sandbox.faults import Faults
from workflow_sandbox.hooks import simulated_ecs
from workflow_sandbox.moto_models import ecr_backends
from workflow_sandbox.simulator import Simulation, Timings

ACCOUNT = snapshots.ACCOUNT
TIMINGS = dict(provision=2, pull=5, drain=3, stop=2, one_off_run=5)
OPTIONS = ["--poll-interval", "1", "--stability-window", "2", "--timeout", "120"]
EXIT_CODES = {0, 1, 2, 3, 4, 130, 128 + signal.SIGTERM, 128 + signal.SIGHUP}
INTERRUPTED = {130, 128 + signal.SIGTERM, 128 + signal.SIGHUP}
PROD, STAGE = "airflow-prod", "airflow-stage"
# Stamps of the releases a world starts with: before the fake clock's epoch (2026-01-01), so every promote made
# in an example is newer.
RELEASE_STAMPS = ["20251101T080000Z", "20251110T080000Z", "20251120T080000Z"]
V1, V2 = "3.2.2", "3.3.2"  # the airflow3 world's releases: two schemas apart
CANDIDATES = ("c1", "c2")  # the releases world's images in airflow-stage, by tag


def say(text: str) -> None:
    """Shown with a failing example (and outside Hypothesis, in a plain test, not at all)."""
    if currently_in_test_context():
        note(text)


class Killed(BaseException):
    """SIGKILL: the process ends where it is, releasing nothing (no handler, no lease released)."""


# --- the shapes ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    name: str
    words: tuple[str, ...]  # how the commands name the cluster
    scheduler: str
    fixed: dict[str, int]  # services no command may scale, and their desired counts
    with_scheduler: dict[str, int]  # services a redeploy stops and starts with the scheduler, and their counts
    commands: dict[str, list[str]]
    final: list[str]  # the re-run that must converge
    web: str  # what the second operator force-deploys
    faulty: tuple[str, ...]  # services that may crash or fail to start
    polls: int  # about how many polls its longest command makes
    ecr: bool = False  # images in the simulated ECR
    database: bool = False  # Airflow's metadata database simulated: components check its schema


SEED = Shape(
    "seed", tuple(NAMES), SCHEDULER, {WORKER: 3, WEB: 1}, {},
    {"redeploy": ["redeploy", "--yes"], "start-scheduler": ["start-scheduler"],
     "stop-scheduler": ["stop-scheduler", "--yes"], "initialize": ["initialize", "--yes"]},
    ["redeploy", "--yes"], WEB, (SCHEDULER, WORKER, WEB), 30,
)
A3 = {name: f"{CLUSTER}-{name}" for name in ("scheduler", "dag-processor", "api-server", "triggerer", "worker",
                                             "worker-reports")}
AIRFLOW3 = Shape(
    "airflow3", ("--cluster", CLUSTER), A3["scheduler"],
    {A3["api-server"]: 1, A3["triggerer"]: 1, A3["worker"]: 3, A3["worker-reports"]: 1}, {A3["dag-processor"]: 1},
    {"redeploy --migrate": ["redeploy", "--migrate", "--yes"], "redeploy": ["redeploy", "--yes"],
     "start-scheduler": ["start-scheduler"], "stop-scheduler": ["stop-scheduler", "--yes"],
     "initialize": ["initialize", "--yes"]},
    ["redeploy", "--migrate", "--yes"], A3["api-server"],
    (A3["scheduler"], A3["dag-processor"], A3["api-server"], A3["triggerer"], A3["worker"]), 60, ecr=True,
    database=True,
)
RELEASES = Shape(
    "releases", tuple(NAMES), SCHEDULER, {WORKER: 3, WEB: 1}, {},
    {"redeploy": ["redeploy", "--yes"], "start-scheduler": ["start-scheduler"],
     "stop-scheduler": ["stop-scheduler", "--yes"], "rollback": ["rollback", "--yes"]},
    ["redeploy", "--yes"], WEB, (SCHEDULER, WORKER, WEB), 30, ecr=True,
)


# --- building a world once, restoring it by copy ----------------------------------------------------------------

def built(name: str, world: "World", build) -> Any:
    """What `build()` returns and leaves behind, from this process's copy when there is one (snapshots.world)."""
    return snapshots.world(name, world.sim, world.clock, world.registry, REGION, build)


def build_seed(world: "World") -> dict:
    from workflow_sandbox.provision import DEFAULT_COUNTS, provision_cluster

    def provision():
        provision_cluster(shared_client, counts=DEFAULT_COUNTS)
        world.clock.sleep(60)

    snapshots.provisioned("properties", world.sim, world.clock, REGION, provision)  # shared with the fixtures' copies
    return {}


def build_airflow3(world: "World") -> dict:
    """As tests/test_upgrade_order.py's `airflow3` fixture: v1 runs, the database at its schema, v2 under latest."""
    from workflow_sandbox.airflow_db import AirflowDatabase
    from workflow_sandbox.images import push_image
    from workflow_sandbox.provision import provision_cluster, running_counts
    from workflow_sandbox.server import airflow_image_config, release_layers

    def build():
        ecr, ecs = shared_client("ecr"), shared_client("ecs")
        ecr.create_repository(repositoryName=PROD)
        v1 = push_image(ecr, PROD, release_layers(1), "20251101T000000Z", config=airflow_image_config(V1))
        tag(ecr, v1, LATEST)
        world.sim.database = AirflowDatabase(head=schema_of(V1))
        provision_cluster(shared_client, counts=running_counts(3), airflow=3)
        world.clock.sleep(60)
        ecs.tag_resource(resourceArn=ecs.describe_clusters(clusters=[CLUSTER])["clusters"][0]["clusterArn"],
                         tags=[{"key": "workflow-airflow-schema", "value": V1}])  # as a recorded migration leaves it
        v2 = push_image(ecr, PROD, release_layers(2), "20251201T000000Z", config=airflow_image_config(V2))
        tag(ecr, v2, LATEST)  # promoted
        return {"v1": v1["digest"], "v2": v2["digest"], "versions": {v1["digest"]: V1, v2["digest"]: V2}}

    return built("airflow3", world, build)


def build_releases(world: "World") -> dict:
    """Releases 1 to 3 in airflow-prod (stamps, latest on 3), the cluster running 3; candidates in airflow-stage."""
    from workflow_sandbox.images import push_image, random_layers
    from workflow_sandbox.provision import DEFAULT_COUNTS, provision_cluster

    def build():
        ecr = shared_client("ecr")
        ecr.create_repository(repositoryName=PROD)
        ecr.create_repository(repositoryName=STAGE)
        releases = []
        for n, stamp in enumerate(RELEASE_STAMPS, start=1):
            image = push_image(ecr, PROD, random_layers(2, 2048 * n, seed=n), stamp)
            tag(ecr, image, LATEST)
            releases.append(image["digest"])
        candidates = {name: push_image(ecr, STAGE, random_layers(2, 3000 + n, seed=10 + n), name)["digest"]
                      for n, name in enumerate(CANDIDATES)}
        provision_cluster(shared_client, counts=DEFAULT_COUNTS)
        world.clock.sleep(60)
        return {"releases": releases, "candidates": candidates}

    return built("releases", world, build)


BUILDS = {"seed": build_seed, "airflow3": build_airflow3, "releases": build_releases}


def tag(ecr, image: dict, name: str) -> None:
    ecr.put_image(repositoryName=PROD, imageManifest=image["manifest"], imageManifestMediaType=image["media_type"],
                  imageTag=name)


# --- what ECR's tags do -----------------------------------------------------------------------------------------


@dataclass
class TagJournal:
    """Every change of a tag in ECR, as moto's backend makes it (PutImage, BatchDeleteImage, through the ECR API or
    the registry API): a stamp that moves from one digest to another is a violation the moment it happens."""

    moves: list[tuple[str, str, str | None, str | None]] = field(default_factory=list)  # (repo, tag, before, after)
    violations: list[str] = field(default_factory=list)

    @staticmethod
    def tags(backend, repository: str) -> dict[str, str]:
        found = backend.repositories.get(repository)
        return {t: image.get_image_digest() for image in list(found.images) for t in image.image_tags if t} if found else {}

    def now(self, repository: str = PROD) -> dict[str, str]:
        return self.tags(ecr_backends[ACCOUNT][REGION], repository)

    def history(self, tag: str, repository: str = PROD) -> list[str | None]:
        return [after for repo, name, _, after in self.moves if repo == repository and name == tag]

    def _compare(self, repository: str, before: dict, after: dict, how: str) -> None:
        for name in sorted(set(before) | set(after)):
            was, now = before.get(name), after.get(name)
            if was == now:
                continue
            self.moves.append((repository, name, was, now))
            if STAMP.fullmatch(name) and was is not None and now is not None:
                self.violations.append(f"{how} moved stamp {repository}:{name} from {was[:19]} to {now[:19]}")

    @contextmanager
    def watching(self):
        from moto.ecr import models

        cls = models.ECRBackend
        depth = threading.local()  # moto's PutImage untags the image a moved tag leaves through BatchDeleteImage

        def watched(operation, original):
            def call(backend, repository_name, *args, **kwargs):
                outermost = not getattr(depth, "calls", 0)
                before = self.tags(backend, repository_name) if outermost else {}
                depth.calls = getattr(depth, "calls", 0) + 1
                try:
                    return original(backend, repository_name, *args, **kwargs)
                finally:
                    depth.calls -= 1
                    if outermost:
                        self._compare(repository_name, before, self.tags(backend, repository_name), operation)
            return call

        with mock.patch.object(cls, "put_image", watched("PutImage", cls.put_image)), \
                mock.patch.object(cls, "batch_delete_image", watched("BatchDeleteImage", cls.batch_delete_image)):
            yield self


@contextmanager
def each_request_of_a_promote(on_request):
    """Calls `on_request()` before each request a command makes to ECR on its main thread: every ECR API call
    (`workflow.ecr.Ecr._call`), every registry API request (`workflow.registry.Registry.request`) and every read or
    write of the repository's lease tags. Blob copies run on worker threads and are not counted: what two promotes
    race on is their tags."""
    from workflow.ecr import Ecr, RepositoryPlace
    from workflow.registry import Registry as RegistryClient

    def counted(method):
        def call(self, *args, **kwargs):
            if threading.current_thread() is threading.main_thread():
                on_request()
            return method(self, *args, **kwargs)
        return call

    with pytest.MonkeyPatch.context() as patch:
        for cls, name in ((Ecr, "_call"), (RegistryClient, "request"),  # the lease's tags, then every other request
                          (RepositoryPlace, "tags"), (RepositoryPlace, "tag"), (RepositoryPlace, "untag")):
            patch.setattr(cls, name, counted(getattr(cls, name)))
        yield


FAULTS = {  # kind -> (ECR API: code, HTTP status; registry API: status, code), as ECR answers them
    "denied": ("AccessDeniedException", 400, 403, "DENIED"),
    "throttle": ("ThrottlingException", 400, 429, "TOOMANYREQUESTS"),
    "server": ("ServerException", 500, 500, "UNKNOWN"),
    "lost": ("ServerException", 500, 500, "UNKNOWN"),  # applied, then the answer is lost
}


@contextmanager
def failing_tag_write(world: "World", via: str, victim: int, tags: list[str] | None, kind: str, times: int):
    """The next `times` writes of one tag fail as `kind` says, through the path `via` names. The tags are written in
    the order promote writes them (every other tag, then latest; by default a new stamp, then latest): `victim`
    picks one. With "lost" the write is applied each time, and its answer lost. Gives the list of the tags whose
    writes failed, as they fail."""
    from moto.core.exceptions import JsonRESTError
    from moto.ecr import models

    from workflow_sandbox import registry as sandbox

    names = ["a new stamp", LATEST] if tags is None else [t for t in tags if t != LATEST] + [t for t in tags if t == LATEST]
    chosen = names[victim % len(names)]
    existing = set(world.journal.now())
    left = [times]
    failed: list[str] = []  # the writes failed, by tag
    code, api_status, status, registry_code = FAULTS[kind]
    message = {"denied": "User: arn:aws:iam::123456789012:user/operator is not authorized to perform: ecr:PutImage",
               "throttle": "Rate exceeded"}.get(kind, "Internal service error")
    say(f"the next {times} write(s) of {chosen} fail: {kind}")

    def hit(tag: str | None) -> bool:
        if not tag or left[0] <= 0:
            return False
        if chosen == "a new stamp" and not (STAMP.fullmatch(tag) and tag not in existing):
            return False
        if chosen != "a new stamp" and tag != chosen:
            return False
        left[0] -= 1
        failed.append(tag)
        return True

    put = models.ECRBackend.put_image

    def put_image(backend, repository_name, image_manifest, image_tag, *args, **kwargs):
        if threading.current_thread() is not threading.main_thread() or not hit(image_tag):
            return put(backend, repository_name, image_manifest, image_tag, *args, **kwargs)
        if kind == "lost":
            put(backend, repository_name, image_manifest, image_tag, *args, **kwargs)
        error = JsonRESTError(code, message)
        error.code = api_status  # the HTTP status; botocore retries 5xx and throttling
        raise error

    put_manifest = sandbox._RegistryApi._put_manifest

    def registry_put(api, method, length, name, ref):  # the server passes the route's groups by name
        if not hit(ref):
            return put_manifest(api, method, length, name=name, ref=ref)
        if kind == "lost":
            api._answer = lambda *args, **kwargs: None  # applied; the answer never leaves
            try:
                put_manifest(api, method, length, name=name, ref=ref)
            finally:
                del api._answer
        else:
            api._body(length)
        raise sandbox._Refusal(status, registry_code, message)

    target = (models.ECRBackend, "put_image", put_image) if via == "ecr-api" else \
        (sandbox._RegistryApi, "_put_manifest", registry_put)
    with mock.patch.object(*target):
        yield failed


# --- the world of one example -----------------------------------------------------------------------------------


def live_scheduler_processes(sim: Simulation, name: str = SCHEDULER) -> list:
    """Scheduler tasks not yet STOPPED whose essential container has not exited.

    A crashed task (its essential container exited) runs no scheduler process while ECS still stops it and starts
    its replacement, as real ECS does."""
    return [
        t for t in sim.service(name).tasks
        if t.is_live and not any(c.essential and c.last_status == "STOPPED" for c in t.containers)
    ]


def digest_of(task) -> str:
    return next(iter(task.images.values()), "")


@dataclass
class World:
    shape: Shape
    clock: FakeClock
    sim: Simulation
    ecs: Any
    registry: Any = None
    facts: dict = field(default_factory=dict)  # what the build returned: digests of the releases
    journal: TagJournal = field(default_factory=TagJournal)
    violations: list = field(default_factory=list)
    interrupted: bool = False
    killed: bool = False
    results: list = field(default_factory=list)  # this step's results
    history: list = field(default_factory=list)  # every result of the example
    schema_crashes: list = field(default_factory=list)  # (time, service, image version, database schema)
    launched: dict = field(default_factory=dict)  # service -> digests its tasks ran
    schema_broken: list = field(default_factory=list)  # what in the scenario itself broke the schema
    stop_during: dict = field(default_factory=dict)  # a second operator's stop-scheduler: what it met and did
    promote_during: dict = field(default_factory=dict)  # a second operator's promote: what it met and did

    # --- watching ---------------------------------------------------------------------------------------------

    def watch(self) -> None:
        shape = self.shape

        def check(sim):
            alive = live_scheduler_processes(sim, shape.scheduler)
            images = {digest_of(t) for t in alive}
            if len(alive) > 1 or len(images) > 1:
                self.violations.append(
                    f"t={self.clock.now():g}: {len(alive)} scheduler processes: "
                    + ", ".join(f"{t.short_id[:8]} {t.sim_status} {digest_of(t)[7:19]} (deployment {t.deployment.id[-6:]})"
                                for t in alive))
            for name, count in shape.fixed.items():
                desired = sim.service(name).model.desired_count
                if desired != count:
                    self.violations.append(f"t={self.clock.now():g}: {name}'s desired count is {desired}, not {count}")
            for service in sim.services.values():
                seen = self.launched.setdefault(service.name, set())
                for task in service.current.values():
                    if task.images:
                        seen.add(digest_of(task))

        self.sim.observers.append(check)
        if shape.database:
            self._watch_schema_checks()

    def _watch_schema_checks(self) -> None:
        sim, original = self.sim, self.sim._check_schema

        def check_schema(task, checks, started, now):
            for _, version in checks:
                if sim.database.mismatch(version):
                    self.schema_crashes.append((now, task.service.name if task.service else "one-off", version,
                                                sim.database.head))
            return original(task, checks, started, now)

        sim._check_schema = check_schema

    def without_faults(self):
        """The second operator's own calls: the injected faults are ECS's answers to the commands under test."""
        world = self

        class Suspended:
            def __enter__(self):
                self.saved, world.sim.faults = world.sim.faults, Faults()

            def __exit__(self, *exc):
                world.sim.faults = self.saved

        return Suspended()

    # --- running commands -----------------------------------------------------------------------------------------

    def runtime(self, sleep=None, clients=None) -> Runtime:
        return Runtime(clock=self.clock.now, sleep=sleep or self.clock.sleep, clients=clients,
                       utcnow=lambda: self.clock.wall(self.clock.now()))

    def cli(self, words: list[str], sleep=None, clients=None, catch: bool = True):
        return CliRunner().invoke(main, words, obj=self.runtime(sleep, clients), catch_exceptions=catch)

    def words(self, command: list[str], *extra: str) -> list[str]:
        return [*self.shape.words, *OPTIONS, *extra, *command]

    def invoke(self, command: str, events: list, label: str, words: list[str] | None = None):
        """Run `command` (a shape's command, or `words`), with `events` [(poll, action)]: at its n-th sleep, things
        happen meanwhile; poll 0 is before it starts."""
        by_poll: dict[int, list] = {}
        for poll, action in events:
            by_poll.setdefault(poll, []).append(action)
        polls = [0]

        def sleep(seconds):
            polls[0] += 1
            self.happen(by_poll.pop(polls[0], []))
            self.clock.sleep(seconds)

        self.happen([a for a in by_poll.pop(0, []) if a[0] not in ("interrupt", "kill")])  # nobody to interrupt yet
        words = words or self.words(self.shape.commands[command])
        if not any(action[0] == "kill" for actions in by_poll.values() for action in actions):
            result = self.cli(words, sleep)
            self.record(label, command, result)
            return result
        from workflow.app import App

        release = App.release_leases
        with pytest.MonkeyPatch.context() as patch:  # a killed process releases nothing
            patch.setattr(App, "release_leases", lambda app: None if self.killed else release(app))
            try:
                result = self.cli(words, sleep, catch=False)
            except Killed:
                say(f"{label} {command}: killed at poll {polls[0]}")
                return None
        self.record(label, command, result)
        return result

    def record(self, label: str, command: str, result) -> None:
        say(f"{label} {command}: exit {result.exit_code}\n{result.output}")
        self.results.append((label, command, result))
        self.history.append((label, command, result))
        if result.exit_code in INTERRUPTED:
            self.interrupted = True

    def second_operator(self, what: str, words: list[str]):
        """A process of its own, beside the command under test: clients of its own (the cached ones are that
        command's, and the second operator's retries would spend their quota)."""
        result = self.cli(words, clients=Clients)
        self.record("  second operator:", what, result)
        return result

    def happen(self, actions: list) -> None:
        for action in actions:
            kind, *args = action
            if kind == "interrupt":
                self.interrupted = True
                if args[0] == "SIGINT":
                    raise KeyboardInterrupt
                raise Terminated(getattr(signal, args[0]))
            if kind == "kill":
                self.killed = True
                raise Killed
            if kind == "scale-scheduler":
                # Scaling up while a scheduler task is still stopping makes ECS itself run two: excluded.
                if args[0] == 1 and self.sim.alive(self.shape.scheduler):
                    continue
                self.schema_broken.append(f"somebody scaled the scheduler to {args[0]} outside the tool")
                with self.without_faults():
                    self.ecs.update_service(cluster=CLUSTER, service=self.shape.scheduler, desiredCount=args[0])
            elif kind == "deploy-web":
                self.schema_broken.append(f"somebody force-deployed {self.shape.web} outside the tool")
                with self.without_faults():
                    self.ecs.update_service(cluster=CLUSTER, service=self.shape.web, forceNewDeployment=True)
            elif kind == "second-operator-runs":
                self.breaks_schema(args[0])
                self.second_operator(args[0], self.words(self.shape.commands[args[0]]))
            elif kind == "second-operator-promotes":
                held, before = bool(self.repository_lease_tags()), self.journal.now()
                result = self.second_operator(f"promote {args[0]}", promote_words(*args))
                self.promote_during = {"lease held": held, "result": result, "before": before,
                                       "after": self.journal.now()}
            elif kind == "second-operator-stops":
                stopping = self.desired(self.shape.scheduler) == 0 and bool(self.sim.alive(self.shape.scheduler))
                self.stop_during = {"lease held": bool(self.lease_tags()), "launched": self.scheduler_launches(),
                                    "stopping": stopping}
                extra = ["--break-lease"] if args[0] else []
                result = self.second_operator(" ".join(["stop-scheduler", *extra]),
                                              self.words(["stop-scheduler", "--yes"], *extra))
                self.stop_during["result"] = result
                self.stop_during["launched after"] = self.scheduler_launches()
            elif kind == "fault":
                operation, fault, times, after = args
                self.sim.faults.inject(operation, fault, times=times, after=after)
            elif kind == "crash":
                self.sim.crash_deployments(args[0], exit_code=1, after=4)
            elif kind == "flaky":
                self.sim.flaky_starts(args[0], args[1])
            elif kind == "stale":
                self.sim.stale_seconds = args[0]
            elif kind == "missing":
                self.sim.missing_seconds = args[0]
            else:
                raise AssertionError(f"unknown action {action!r}")

    def breaks_schema(self, command: str) -> None:
        """A command the scenario runs that moves an image or the schema without the other (Airflow 3 world): a
        plain redeploy onto an image of another schema, or a migration while the components run another image."""
        if not self.shape.database or command not in ("redeploy", "initialize", "start-scheduler"):
            return
        latest = self.facts["versions"].get(self.journal.now().get(LATEST, ""))
        if schema_of(latest or "") == self.sim.database.head:
            return
        if command != "start-scheduler":  # which refuses an image the schema does not fit (exit 2)
            self.schema_broken.append(f"{command} with latest on Airflow {latest} and the database at "
                                      f"{self.sim.database.head}")

    def heal(self) -> None:
        """ECS behaves again."""
        sim = self.sim
        sim.faults.clear()
        sim.crashing.clear()
        sim.flaky.clear()
        sim.stale_seconds = sim.missing_seconds = 0.0

    # --- reading the cluster ----------------------------------------------------------------------------------

    def cluster_tags(self) -> dict[str, str]:
        with self.without_faults():
            arn = self.ecs.describe_clusters(clusters=[CLUSTER])["clusters"][0]["clusterArn"]
            return {t["key"]: t["value"] for t in self.ecs.list_tags_for_resource(resourceArn=arn).get("tags", [])}

    def lease_tags(self) -> list[str]:
        return [key for key in self.cluster_tags() if key.startswith(TAG_PREFIX)]

    def repository_lease_tags(self, repository: str = PROD) -> list[str]:
        ecr = shared_client("ecr")
        arn = ecr.describe_repositories(repositoryNames=[repository])["repositories"][0]["repositoryArn"]
        return [t["Key"] for t in ecr.list_tags_for_resource(resourceArn=arn).get("tags", [])
                if t["Key"].startswith(TAG_PREFIX)]

    def desired(self, name: str) -> int:
        return self.sim.service(name).model.desired_count

    def scheduler_launches(self) -> int:
        with self.sim.lock:
            self.sim.advance()
            return len(self.sim.service(self.shape.scheduler).tasks)

    def running_digests(self, name: str) -> set[str]:
        with self.sim.lock:
            self.sim.advance()
            return {digest_of(t) for t in self.sim.service(name).current.values() if t.sim_status == "RUNNING"}

    def services(self) -> list[str]:
        return [self.shape.scheduler, *self.shape.with_scheduler, *self.shape.fixed]


def promote_words(source: str, via: str, *tags: str) -> list[str]:
    return ["--output", "json", "promote", "--yes", "--source", f"{STAGE}:{source}", "--dest", PROD, "--via", via,
            *(word for t in tags for word in ("--tag", t))]


@contextmanager
def world_of(shape: Shape):
    """A fresh world of `shape`, its cluster running, watched."""
    from workflow_sandbox.image_config import config_reader
    from workflow_sandbox.registry import Registry, simulated_ecr

    clock = FakeClock()
    with mock_aws(), ExitStack() as stack:
        sim = Simulation(clock, Timings(**TIMINGS))
        stack.enter_context(simulated_ecs(sim))
        registry = stack.enter_context(simulated_ecr(Registry())) if shape.ecr else None
        if registry is not None:
            sim.image_config = config_reader(registry)
        world = World(shape, clock, sim, shared_client("ecs"), registry)
        world.facts = BUILDS[shape.name](world)
        world.watch()
        with world.journal.watching() if shape.ecr else nullcontext():
            yield world


def assert_step_invariants(world: World, results: list) -> None:
    assert not world.violations, "\n".join(world.violations[:5])
    assert not world.journal.violations, "\n".join(world.journal.violations[:5])
    for label, command, result in results:
        assert result.exit_code in EXIT_CODES, f"{label} {command}: exit {result.exit_code}\n{result.output}"
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            f"{label} {command} raised {result.exception!r}\n{result.output}")
        # Its own traceback starts a line; Airflow's, quoted from a container's log, comes indented.
        assert not any(line.startswith("Traceback") for line in result.output.splitlines()), (
            f"{label} {command}:\n{result.output}")


def assert_no_schema_crash(world: World) -> None:
    """No component met the wrong schema, unless something the scenario itself did broke it."""
    if world.schema_broken:
        say(f"schema broken by the scenario: {world.schema_broken}")
        return
    crashes = world.schema_crashes
    assert not crashes, (
        "'Database migration required', though nothing in the scenario broke the schema: "
        + "; ".join(f"t={at:g} {who} on Airflow {version} (database at {head})" for at, who, version, head in crashes[:5]))


def play(shape: Shape, scenario: list, finish=None) -> World:
    """Run `scenario` [(command, events)] on a running cluster of `shape`, then `finish` (default: converge)."""
    with world_of(shape) as world:
        stopped_with_scheduler = dict(shape.with_scheduler)  # their counts, once a redeploy has put them back
        for number, (command, events) in enumerate(scenario, 1):
            world.results = []
            world.breaks_schema(command)
            world.invoke(command, events, f"step {number}:")
            assert_step_invariants(world, world.results)
            # Only a redeploy stops and starts them: one that failed leaves them stopped or not, one that succeeded
            # leaves them at their counts, and every other command leaves them as they were.
            redeploys = [r for _, what, r in world.results if what.startswith("redeploy")]
            if redeploys:
                last = redeploys[-1].exit_code == 0
                stopped_with_scheduler = {name: count if last else None for name, count in shape.with_scheduler.items()}
            for name, count in stopped_with_scheduler.items():
                assert count is None or world.desired(name) == count, f"{name}'s desired count is {world.desired(name)}"
        if shape.database:
            assert_no_schema_crash(world)
        (finish or converge)(world)
        return world


def converge(world: World) -> None:
    """Once ECS behaves again, one re-run (with --break-lease only when a lease was left, as announced) leaves
    every service on one deployment of one image at its count, one scheduler, and the database at that image's
    schema."""
    world.heal()
    # An interrupted command leaves its one-off task running, and says so ("keeps running; stopping this command
    # does not stop it", with how to follow it): the operator waits for it, or a second migration would fail on
    # Airflow's lock.
    for _ in range(60):
        with world.sim.lock:
            world.sim.advance()
            if not any(t.is_live for t in world.sim.tasks if t.service is None):
                break
        world.clock.sleep(5)
    leftover = world.lease_tags()
    # Every command that took the lease releases it, interrupted or failed. Only when releasing it failed
    # too (UntagResource failing past botocore's retries) may one stay: it expires on its own, and the
    # command said so. Only then does the re-run need --break-lease.
    announced = any("could not release the lease" in r.output for _, _, r in world.history)
    say(f"lease tags left: {leftover}; interrupted: {world.interrupted}; a failed release announced: {announced}")
    assert not leftover or announced or world.killed, f"lease tags left behind, unannounced: {leftover}"
    world.results = []
    extra = ["--break-lease"] if leftover else []
    # Judged by where it leaves the cluster, not by what it sees on the way: it may poll less often.
    result = world.cli(world.words(world.shape.final, "--poll-interval", "3", *extra))
    world.record("final:", " ".join(world.shape.final), result)
    assert_step_invariants(world, world.results)
    assert result.exit_code == 0, f"the re-run did not converge: exit {result.exit_code}\n{result.output}"
    assert_converged(world)


def assert_converged(world: World, lease: bool = True) -> None:
    """Every service on one deployment of the image latest names, at its count; one scheduler, its deployment
    complete; the database at the image's schema; nothing watched went wrong; (with `lease`) no lease left."""
    world.clock.sleep(30)  # web's old task finishes draining
    sim, shape = world.sim, world.shape
    sim.advance()
    assert world.desired(shape.scheduler) == 1 and len(sim.alive(shape.scheduler)) == 1
    assert [t.sim_status for t in sim.alive(shape.scheduler)] == ["RUNNING"]
    images = set()
    for name, count in {shape.scheduler: 1, **shape.with_scheduler, **shape.fixed}.items():
        service = sim.service(name)
        assert len(service.deployments) == 1, f"{name} has {len(service.deployments)} deployments"
        assert service.model.running_count == count == world.desired(name), f"{name}: {service.model.running_count}"
        images |= world.running_digests(name)
    assert sim.service(shape.scheduler).primary.rollout_state == "COMPLETED"
    assert len(images) == 1, f"the services run {len(images)} images"
    if shape.ecr:
        assert images == {world.journal.now()[LATEST]}, "the services do not run what latest names"
    if shape.database:
        version = world.facts["versions"][images.pop()]
        assert sim.database.head == schema_of(version), f"database at {sim.database.head}, the image is Airflow {version}"
    assert not world.violations, "\n".join(world.violations[:5])
    assert not world.journal.violations, "\n".join(world.journal.violations[:5])
    if lease:
        assert world.lease_tags() == []
        if shape.ecr:
            assert world.repository_lease_tags() == [], "a lease is left on the repository"
