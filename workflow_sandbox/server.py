"""A local Airflow cluster to rehearse on: moto's server on loopback with the simulated ECS in real time, an Airflow
2 or 3 cluster whose releases carry Airflow versions and whose metadata database has a schema, optionally
misbehaving as ECS does (crash loops, failed starts, health checks, throttling, lag)."""

import gc
import logging
import os
import socket
from contextlib import ExitStack
from dataclasses import dataclass, field

from moto.server import ThreadedMotoServer

from workflow.airflow_schema import VERSION_ENV, VERSION_LABEL, schema_of

from . import moto_models  # first: before the modules that import moto's models
from .airflow_api import FakeAirflowApi
from .airflow_db import AirflowDatabase
from .airflow_link import SimulatedAirflow, Work
from .clock import RealClock
from .hooks import MotoPatches
from .image_config import config_reader
from .images import push_image, random_layers
from .provision import SHAPES, Component, Provisioned, provision_cluster, running_counts
from .registry import Registry
from .simulator import CONTROLLERS, Simulation, Timings

REGION = "us-east-1"
ACCOUNT = "123456789012"
AIRFLOW_USER = {"WORKFLOW_AIRFLOW_USERNAME": "admin", "WORKFLOW_AIRFLOW_PASSWORD": "sandbox"}  # the fake's only user
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
REGISTRY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
# The release running in production, promoted under `latest` and this stamp, and the one staged after it.
PROMOTED_STAMP = "20261101T000000Z"
LAYER_BYTES = 256 * 1024
# The Airflow releases v1 (running, its schema in the database) and v2 (staged) hold, by shape. 3.2.2 -> 3.3.2
# crosses a schema change; 2.10.5 and 2.11.0 share one (Airflow's revision heads map: 2.11 added no migration).
RELEASE_VERSIONS = {2: ("2.10.5", "2.11.0"), 3: ("3.2.2", "3.3.2")}
DEPROVISION_PER_STOP = 1.5  # --task-deprovision-seconds, unless given: 3 s for the default 2 s stop


def airflow_image_config(version: str) -> dict:
    """What the official image's config says about itself (its Dockerfile's ENV and LABEL)."""
    return {"config": {
        "User": "50000",
        "Env": ["PATH=/home/airflow/.local/bin:/usr/local/bin:/usr/bin:/bin", f"{VERSION_ENV}={version}",
                "AIRFLOW_HOME=/opt/airflow", "AIRFLOW_USER_HOME_DIR=/home/airflow"],
        "Entrypoint": ["/usr/bin/dumb-init", "--", "/entrypoint"],
        "Cmd": ["--help"],
        "WorkingDir": "/opt/airflow",
        "Labels": {VERSION_LABEL: version, "org.apache.airflow.component": "airflow"},
    }}


def release_layers(release: int) -> list[bytes]:
    """A shared base layer and two of the release's own, so releases share a blob but differ in digest."""
    (base,) = random_layers(1, LAYER_BYTES, seed=0)
    return [base, *random_layers(2, LAYER_BYTES, seed=release)]


@dataclass
class SandboxConfig:
    cluster: str = "airflow-prod"
    port: int = 0
    task_start_seconds: float = 3.0
    task_stop_seconds: float = 2.0
    web_drain_seconds: float = 3.0
    one_off_seconds: float = 3.0
    fail_deployments: tuple[str, ...] = field(default_factory=tuple)
    init_exit_code: int = 0
    crash_deployments: tuple[str, ...] = field(default_factory=tuple)
    unhealthy_deployments: tuple[str, ...] = field(default_factory=tuple)
    flaky_starts: int = 0
    throttle: float = 0.0
    server_errors: float = 0.0
    missing_seconds: float = 0.0
    stale_seconds: float = 0.0
    log_delay: float = 0.0
    deployment_controllers: dict[str, str] = field(default_factory=dict)  # role or service name -> type
    airflow: int = 3  # the cluster's shape: 3 (provision.SHAPES) or 2 (the seed's three services)
    airflow_versions: tuple[str, str] | None = None  # releases v1 and v2; default RELEASE_VERSIONS[airflow]
    task_deprovision_seconds: float | None = None  # default DEPROVISION_PER_STOP x task_stop_seconds
    db_snapshot_seconds: float = 5.0
    airflow_task_seconds: float = 20.0  # how long each task instance the scheduler queues runs
    airflow_silent_scheduler: bool = False  # the scheduler runs but never heartbeats
    airflow_api_down: bool = False  # Airflow's API refuses every connection

    def __post_init__(self):
        if self.airflow not in RELEASE_VERSIONS:
            raise ValueError(f"the sandbox runs Airflow {' or '.join(map(str, RELEASE_VERSIONS))}, not {self.airflow}")
        for version in self.versions():
            if schema_of(version) is None:
                raise ValueError(f"Airflow {version}: no schema known for it (Airflow releases from 2.6.2 on, "
                                 "such as 2.10.5 or 3.3.2)")
        for service, kind in self.deployment_controllers.items():
            if kind not in CONTROLLERS:
                raise ValueError(f"deployment controller of {service} must be one of {', '.join(CONTROLLERS)}, not {kind}")
        # A name the shape does not have would rehearse nothing, without a word.
        known = {f"{self.cluster}-{c.name}" for c in self.components()}
        for service in (*self.deployment_controllers, *self.fail_deployments, *self.crash_deployments,
                        *self.unhealthy_deployments):
            if self.service(service) not in known:
                raise ValueError(f"the Airflow {self.airflow} sandbox has no service {service!r}: name one of "
                                 f"{', '.join(c.name for c in self.components())} (or web), or its full name")

    def versions(self) -> tuple[str, str]:
        return self.airflow_versions or RELEASE_VERSIONS[self.airflow]

    def components(self) -> tuple[Component, ...]:
        return SHAPES[self.airflow]

    def service(self, name: str) -> str:
        """A service's name after `<cluster>-` (scheduler, worker, web...; web is the api-server on Airflow 3) names
        the cluster's service; anything else is a service name."""
        names = {c.name for c in self.components()}
        if name == "web" and "web" not in names:
            name = "api-server"
        return f"{self.cluster}-{name}" if name in names else name

    def controllers(self) -> dict[str, str]:
        """The deployment controllers by each service's name after `<cluster>-` (`web` is the api-server on
        Airflow 3), as provision_cluster takes them."""
        return {self.service(name).removeprefix(f"{self.cluster}-"): kind
                for name, kind in self.deployment_controllers.items()}

    @property
    def deprovision_seconds(self) -> float:
        if self.task_deprovision_seconds is not None:
            return self.task_deprovision_seconds
        return DEPROVISION_PER_STOP * self.task_stop_seconds

    def timings(self) -> Timings:
        start, stop = self.task_start_seconds, self.task_stop_seconds
        return Timings(
            provision=start / 3,
            pull=start * 2 / 3,
            drain=stop / 2,
            stop=stop / 2,
            one_off_run=self.one_off_seconds,
            drain_by_service={self.service("web"): self.web_drain_seconds},
            deprovision=self.deprovision_seconds,
        )


class Sandbox:
    """After `start()` the cluster exists and its services are steady; `stop()` shuts it down."""

    def __init__(self, config: SandboxConfig):
        self.config = config
        self.clock = RealClock()
        self.simulation = Simulation(self.clock, config.timings())
        self.registry = Registry()
        self._stack = ExitStack()
        self.endpoint = ""
        self.releases: dict[str, str] = {}  # "v1" (deployed, airflow-prod), "v2" (staged, airflow-stage) -> digest
        self.provisioned: Provisioned | None = None
        self.airflow: FakeAirflowApi | None = None

    @property
    def environment(self) -> dict[str, str]:
        airflow = {"WORKFLOW_AIRFLOW_URL": self.airflow.url, **AIRFLOW_USER} if self.airflow else {}
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION, **CREDENTIALS,
                **airflow}

    def start(self) -> "Sandbox":
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request on the terminal
        # Nothing here launches instances; moto's 2,600 default AMIs would only slow the start down.
        os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
        if self.config.port:
            # moto's server thread would die on a taken port and leave start() waiting for ever.
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", self.config.port))
        try:
            self._stack.enter_context(MotoPatches(self.simulation, self.registry))
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.config.port, verbose=False)
            server.start()
            self._stack.callback(server.stop)
            host, port = server.get_host_and_port()
            self.endpoint = f"http://{host}:{port}"
            self._provision()
            self._serve_airflow()
            # moto's catalogues and botocore's models, all loaded by now, live as long as the sandbox: keep
            # them out of the garbage collections every request's leftovers cause.
            gc.collect()
            gc.freeze()
        except BaseException:
            self._stack.close()
            raise
        return self

    def stop(self) -> None:
        self._stack.close()

    def client(self, name: str):
        return moto_models.SESSION.client(
            name,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def _provision(self) -> None:
        """What Terraform and the pipelines leave behind: release v1 promoted to airflow-prod (`latest` and a
        stamp) and deployed, so every service task runs v1's digest, the database migrated to v1's schema, and
        release v2 staged in airflow-stage."""
        config, sim = self.config, self.simulation
        cluster = config.cluster
        v1_version, v2_version = config.versions()
        ecr = self.client("ecr")
        for repository in ("airflow-stage", "airflow-prod"):
            ecr.create_repository(repositoryName=repository)
        v1 = push_image(ecr, "airflow-prod", release_layers(1), PROMOTED_STAMP, config=airflow_image_config(v1_version))
        ecr.put_image(repositoryName="airflow-prod", imageManifest=v1["manifest"],
                      imageManifestMediaType=v1["media_type"], imageTag="latest")
        self.releases["v1"] = v1["digest"]
        self.releases["v2"] = push_image(ecr, "airflow-stage", release_layers(2), "latest",
                                         config=airflow_image_config(v2_version))["digest"]
        with sim.lock:
            sim.image_config = config_reader(self.registry, ACCOUNT, REGION)
            sim.database = AirflowDatabase(
                head=schema_of(v1_version),
                url=f"postgresql+psycopg2://airflow:***@{cluster}-db.sandbox.{REGION}.rds.amazonaws.com:5432/airflow")
            sim.db_snapshot_seconds = config.db_snapshot_seconds
        self.provisioned = provision_cluster(
            self.client, cluster=cluster, counts=running_counts(config.airflow), image=f"{REGISTRY}/airflow-prod:latest",
            deployment_controllers=config.controllers(), airflow=config.airflow, db_instance=True)
        self.clock.advance(600)  # the services have long been steady
        self._misbehave()

    def _serve_airflow(self) -> None:
        """Airflow's API for the cluster, answering as the simulated components run."""
        config = self.config
        roles = {name: [f"{config.cluster}-{c.name}" for c in config.components() if c.name == name]
                 for name in ("scheduler", "dag-processor", "triggerer")}
        workers = [f"{config.cluster}-{c.name}" for c in config.components() if c.name.startswith("worker")]
        model = SimulatedAirflow(self.simulation, roles, workers, Work(seconds=config.airflow_task_seconds),
                                 major=config.airflow, version=config.versions()[0],
                                 users={AIRFLOW_USER["WORKFLOW_AIRFLOW_USERNAME"]: AIRFLOW_USER["WORKFLOW_AIRFLOW_PASSWORD"]})
        if config.airflow_silent_scheduler:
            model.silence("scheduler")
        if config.airflow_api_down:
            model.fault = "refuse"
        self.airflow = FakeAirflowApi(model).start()
        self._stack.callback(self.airflow.stop)

    def _misbehave(self) -> None:
        """The failures to rehearse, from now on; a crash or failed health check comes a task start after RUNNING."""
        config, sim = self.config, self.simulation
        with sim.lock:
            sim.advance()
            for service in config.fail_deployments:
                sim.fail_deployments(config.service(service), "pull")
            for service in config.crash_deployments:
                sim.crash_deployments(config.service(service), exit_code=1, after=config.task_start_seconds)
            for service in config.unhealthy_deployments:
                sim.unhealthy_deployments(config.service(service), after=config.task_start_seconds)
            if config.flaky_starts:
                for component in config.components():
                    sim.flaky_starts(config.service(component.name), config.flaky_starts)
            sim.one_off_exit_code = config.init_exit_code
            sim.missing_seconds, sim.stale_seconds = config.missing_seconds, config.stale_seconds
            sim.log_delay = config.log_delay
            # Only throttling and 5xx answers: a real server cannot fake a broken connection.
            sim.faults.rates = {"throttle": config.throttle, "server": config.server_errors}
