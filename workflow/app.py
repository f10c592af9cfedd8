"""The application context a command runs in: the global options, the AWS clients, and what an operation on
the cluster needs (Env: its ECS API, the poller, progress, recovery state, the operator lease, the watch policy).

One App per command invocation; it holds that invocation's progress reporter and recovery state, which the
runner prints when the command stops early.
"""

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import click

from .aws import AwsConfig
from .deployments import WatchPolicy
from .env import Env
from .errors import WorkflowError
from .lease import Lease
from .progress import Reporter, use_color
from .recovery import Recovery
from .topology import Target, default_services


@dataclass
class Runtime:
    """What tests replace: the clock and sleep every wait uses, and how AWS clients are built."""

    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    clients: Callable | None = None
    utcnow: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


@dataclass
class App:
    runtime: Runtime
    options: dict  # the global options, typed before or after the command name
    report: Reporter = field(init=False)
    recovery: Recovery = field(default_factory=Recovery, init=False)
    leases: list[Lease] = field(default_factory=list, init=False, repr=False)
    _clients: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.report = Reporter(self.runtime.clock, color=use_color(sys.stderr), now=self.runtime.utcnow)

    @property
    def aws(self) -> AwsConfig:
        return AwsConfig(self.options["profile"], self.options["region"], self.options["endpoint_url"])

    @property
    def policy(self) -> WatchPolicy:
        options = self.options
        return WatchPolicy(options["stability_window"], options["max_failed_tasks"], log_grace=options["log_grace"])

    @property
    def cluster(self) -> str | None:
        return self.options["cluster"]

    def target(self) -> Target:
        if not self.cluster:
            raise click.UsageError("Missing option '--cluster' (or WORKFLOW_CLUSTER).")
        o, defaults = self.options, default_services(self.cluster)
        return Target(self.cluster, o["scheduler"] or defaults[0], o["worker"] or defaults[1], o["web"] or defaults[2])

    def clients(self):
        if self._clients is None:
            from . import aws

            self._clients = (self.runtime.clients or aws.Clients)(self.aws)
        return self._clients

    def where(self, names: list[str]) -> str:
        """Account, Region and endpoint the command acts in, once the names are known to exist there."""
        from urllib.parse import urlsplit

        from .ecs import Ecs

        clients = self.clients()
        ecs = clients("ecs")
        services = Ecs(ecs, self.target().cluster).services(names)
        account = services[0].arn.split(":")[4] if services else "?"
        text = f"account {account}, {ecs.meta.region_name}"
        if urlsplit(ecs.meta.endpoint_url).hostname in ("127.0.0.1", "localhost", "::1"):
            text += f", sandbox at {ecs.meta.endpoint_url}"
        return text

    def env(self, holds: str | None = None) -> Env:
        """What a cluster operation needs. `holds` names a command that changes the cluster: it takes the
        operator lease before its first change."""
        from .ecs import Ecs
        from .poller import Poller

        interval, timeout = self.options["poll_interval"], self.options["timeout"]
        poller = Poller(self.runtime.clock, self.runtime.sleep, interval, timeout, notice=self.report.line)
        clients = self.clients()
        ecs = clients("ecs")

        def in_region(service: str):
            """Builds `service`'s client for a Region (a task's logs, an image's registry), the default one's when same."""
            return lambda region: clients(service) if region in (None, ecs.meta.region_name) else clients(service, region)

        single_attempt = lambda: clients("ecs", attempts=1)  # noqa: E731  (built only when a scheduler starts)
        env = Env(Ecs(ecs, self.target().cluster, single_attempt), poller, self.report, logs=in_region("logs"),
                  policy=self.policy, ecr=in_region("ecr"), recovery=self.recovery)
        if holds:
            env.lease = self._lease(env, holds)
        return env

    def _lease(self, env: Env, command: str) -> Lease:
        import getpass
        import socket

        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no login name in some containers
            user = "unknown"
        ttl = 4 * self.options["timeout"] + 300  # a crashed holder blocks others for at most this long
        lease = Lease(env.ecs, f"{user}@{socket.gethostname()}", command, ttl, self.runtime.utcnow, self.report,
                      break_others=self.options["break_lease"])
        self.leases.append(lease)
        return lease

    def release_leases(self) -> None:
        while self.leases:
            lease = self.leases.pop()
            try:
                lease.release()
            except WorkflowError as error:  # it expires on its own; say so rather than hide the outcome
                self.report.line(f"could not release the lease on the cluster ({error}); it expires on its own")
