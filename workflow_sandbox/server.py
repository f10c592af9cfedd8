"""A local Airflow cluster to rehearse on: moto's server on loopback with the simulated ECS in real time,
optionally misbehaving as ECS does (crash loops, failed starts, health checks, throttling, lag)."""

import gc
import logging
import os
import socket
from contextlib import ExitStack
from dataclasses import dataclass, field

from moto.server import ThreadedMotoServer

from . import moto_models  # first: before the modules that import moto's models
from .clock import RealClock
from .hooks import simulated_ecs
from .images import push_image, random_layers
from .provision import DEFAULT_COUNTS, ROLES, provision_cluster
from .registry import Registry, simulated_ecr
from .simulator import CONTROLLERS, Simulation, Timings

REGION = "us-east-1"
ACCOUNT = "123456789012"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
REGISTRY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
# The release running in production, promoted under `latest` and this stamp, and the one staged after it.
PROMOTED_STAMP = "20261101T000000Z"
LAYER_BYTES = 256 * 1024


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

    def __post_init__(self):
        for service, kind in self.deployment_controllers.items():
            if kind not in CONTROLLERS:
                raise ValueError(f"deployment controller of {service} must be one of {', '.join(CONTROLLERS)}, not {kind}")

    def service(self, name: str) -> str:
        """A role (scheduler, worker, web) names the cluster's service; anything else is a service name."""
        return f"{self.cluster}-{name}" if name in ROLES else name

    def timings(self) -> Timings:
        start, stop = self.task_start_seconds, self.task_stop_seconds
        return Timings(
            provision=start / 3,
            pull=start * 2 / 3,
            drain=stop / 2,
            stop=stop / 2,
            one_off_run=self.one_off_seconds,
            drain_by_service={f"{self.cluster}-web": self.web_drain_seconds},
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

    @property
    def environment(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION, **CREDENTIALS}

    def start(self) -> "Sandbox":
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request on the terminal
        # Nothing here launches instances; moto's 2,600 default AMIs would only slow the start down.
        os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
        if self.config.port:
            # moto's server thread would die on a taken port and leave start() waiting for ever.
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", self.config.port))
        try:
            self._stack.enter_context(simulated_ecs(self.simulation))
            self._stack.enter_context(simulated_ecr(self.registry))
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.config.port, verbose=False)
            server.start()
            self._stack.callback(server.stop)
            host, port = server.get_host_and_port()
            self.endpoint = f"http://{host}:{port}"
            self._provision()
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
        stamp) and deployed, so every service task runs v1's digest, and release v2 staged in airflow-stage."""
        cluster = self.config.cluster
        ecr = self.client("ecr")
        for repository in ("airflow-stage", "airflow-prod"):
            ecr.create_repository(repositoryName=repository)
        v1 = push_image(ecr, "airflow-prod", release_layers(1), PROMOTED_STAMP)
        ecr.put_image(repositoryName="airflow-prod", imageManifest=v1["manifest"],
                      imageManifestMediaType=v1["media_type"], imageTag="latest")
        self.releases["v1"] = v1["digest"]
        self.releases["v2"] = push_image(ecr, "airflow-stage", release_layers(2), "latest")["digest"]
        provision_cluster(self.client, cluster=cluster, counts=DEFAULT_COUNTS, image=f"{REGISTRY}/airflow-prod:latest",
                          deployment_controllers=self.config.deployment_controllers)
        self.clock.advance(600)  # the services have long been steady
        self._misbehave()

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
                for role in ROLES:
                    sim.flaky_starts(config.service(role), config.flaky_starts)
            sim.one_off_exit_code = config.init_exit_code
            sim.missing_seconds, sim.stale_seconds = config.missing_seconds, config.stale_seconds
            sim.log_delay = config.log_delay
            # Only throttling and 5xx answers: a real server cannot fake a broken connection.
            sim.faults.rates = {"throttle": config.throttle, "server": config.server_errors}
