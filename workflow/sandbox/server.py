"""A local Airflow cluster to rehearse on: moto's server on loopback with the simulated ECS in real time."""

import logging
import socket
from contextlib import ExitStack
from dataclasses import dataclass, field

import boto3
from moto.server import ThreadedMotoServer

from .clock import RealClock
from .hooks import simulated_ecs
from .images import push_image, random_layers
from .provision import DEFAULT_COUNTS, ROLES, provision_cluster
from .registry import Registry, simulated_ecr
from .simulator import Simulation, Timings

REGION = "us-east-1"
ACCOUNT = "123456789012"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


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

    @property
    def environment(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION, **CREDENTIALS}

    def start(self) -> "Sandbox":
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request on the terminal
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
        except BaseException:
            self._stack.close()
            raise
        return self

    def stop(self) -> None:
        self._stack.close()

    def client(self, name: str):
        return boto3.client(
            name,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def _provision(self) -> None:
        """What Terraform and the staging pipeline leave behind: a running cluster and a staged image."""
        cluster = self.config.cluster
        ecr = self.client("ecr")
        for repository in ("airflow-stage", "airflow-prod"):
            ecr.create_repository(repositoryName=repository)
        push_image(ecr, "airflow-stage", random_layers(3, 256 * 1024, seed=1), "latest")
        image = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/airflow-prod:latest"
        provision_cluster(self.client, cluster=cluster, counts=DEFAULT_COUNTS, image=image)
        self.clock.advance(600)  # the services have long been steady
        with self.simulation.lock:
            self.simulation.advance()
        for service in self.config.fail_deployments:
            self.simulation.fail_deployments(f"{cluster}-{service}" if service in ROLES else service, "pull")
        self.simulation.one_off_exit_code = self.config.init_exit_code
