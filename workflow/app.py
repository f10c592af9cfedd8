"""The application context a command runs in: the global options, the AWS clients, and what an operation on
the cluster needs (Env: its ECS API, the poller, progress, recovery state, the operator lease, the watch policy).

One App per command invocation; it holds that invocation's progress reporter and recovery state, which the
runner prints when the command stops early.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from .aws import AwsConfig
from .errors import ServicesMissing, WorkflowError
from .progress import Reporter, use_color
from .recovery import Recovery
from .topology import API_SERVER, ROLE_TAG, SCHEDULER, WEB, WEBSERVER, WORKER, Topology, assign, cluster_name, role_of

if TYPE_CHECKING:  # imported where used: the group's callback builds an App before a command's --help prints
    from .deployments import WatchPolicy
    from .env import Env
    from .lease import Lease


@dataclass
class Runtime:
    """What tests replace: the clock and sleep every wait uses, and how AWS clients are built."""

    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    clients: Callable | None = None
    utcnow: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    invocation: Callable[[], list[str]] = field(default=lambda: how_invoked())  # the words that start this tool


@dataclass
class App:
    runtime: Runtime
    options: dict  # the global options, typed before or after the command name
    given: set[str] = field(default_factory=set)  # the global options typed or set in WORKFLOW_* (not defaults)
    changed: bool = field(default=False, init=False)  # whether this command began changing anything (its leases say)
    report: Reporter = field(init=False)
    recovery: Recovery = field(default_factory=Recovery, init=False)
    leases: list[Lease] = field(default_factory=list, init=False, repr=False)
    _clients: Any = field(default=None, init=False, repr=False)
    _topology: Topology | None = field(default=None, init=False, repr=False)
    _service_arns: list[str] = field(default_factory=list, init=False, repr=False)
    _listed: dict = field(default_factory=dict, init=False, repr=False)  # service name -> Service, as discovered
    _airflow: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.report = Reporter(self.runtime.clock, color=use_color(sys.stderr), now=self.runtime.utcnow)

    @property
    def aws(self) -> AwsConfig:
        """The AWS configuration; a cluster given as an ARN sets the Region, and another --region is refused."""
        region, cluster = self.options["region"], self.cluster or ""
        in_arn = cluster.split(":")[3] if cluster.startswith("arn:") and cluster.count(":") >= 5 else None
        if in_arn and region and region != in_arn:
            raise click.UsageError(f"--cluster {cluster} is in Region {in_arn}, not {region} (--region)")
        return AwsConfig(self.options["profile"], region or in_arn or None, self.options["endpoint_url"],
                         self.options["timeout"])

    @property
    def policy(self) -> WatchPolicy:
        options = self.options
        from .deployments import WatchPolicy

        return WatchPolicy(options["stability_window"], options["max_failed_tasks"], log_grace=options["log_grace"])

    @property
    def cluster(self) -> str | None:
        return self.options["cluster"]

    def require_cluster(self) -> str:
        if not self.cluster:
            raise click.UsageError("Missing option '--cluster' (or WORKFLOW_CLUSTER).")
        return self.cluster

    def explicit_services(self) -> list[tuple[str, str]]:
        """(role, service) pairs the operator named: --scheduler, --worker, --web and each --service ROLE=NAME.
        A usage error, before any AWS call, for a pair that is not ROLE=NAME or names no role."""
        o = self.options
        pairs = [(role, o[key]) for role, key in ((SCHEDULER, "scheduler"), (WORKER, "worker"), (WEB, "web")) if o[key]]
        for text in o.get("services") or ():
            role, _, name = text.partition("=")
            try:
                pairs.append((role_of(role.strip()) if role.strip() != WEB else WEB, name.strip()))
            except ValueError as error:
                raise click.BadParameter(str(error), param_hint="--service") from None
            if not name.strip():
                raise click.BadParameter(f"expected ROLE=NAME, got {text!r}", param_hint="--service")
        return pairs

    def topology(self) -> Topology:
        """Each service's role, found once per command: one ListServices and a DescribeServices per ten services.

        Raises ServicesMissing (with the closest names) for a service the operator named that is not there."""
        if self._topology is None:
            from .ecs import Ecs

            cluster = self.require_cluster()
            explicit = self.explicit_services()
            ecs = Ecs(self.clients()("ecs"), cluster)
            listed = ecs.described(ecs.service_names(), tags=True)
            named = [name.rsplit("/", 1)[-1] for _, name in explicit]
            missing = [(role, n) for role, n in ((r, name.rsplit("/", 1)[-1]) for r, name in explicit) if n not in listed]
            if missing:
                self._missing_by_role(cluster, missing, listed)
            ecs.services([n for n in named if n not in listed])  # the missing ones fail here, with the closest names
            resolved = [(_web_role(listed[name.rsplit("/", 1)[-1]]) if role == WEB else role, name)
                        for role, name in explicit]
            self._topology = assign(cluster, {s.name: s.tags for s in listed.values()}, resolved)
            self._listed = {s.name: s for s in listed.values()}
            self._service_arns = [s.arn for s in listed.values()]
        return self._topology

    @staticmethod
    def _missing_by_role(cluster: str, missing: list[tuple[str, str]], listed: dict) -> None:
        """A flag naming a service the cluster does not have, where another service has that role by its tag or
        name (`--web airflow-prod-web` on Airflow 3, whose web server is the api-server): that one is named."""
        import difflib

        roles = assign(cluster, {s.name: s.tags for s in listed.values()})
        hints = []
        for role, name in missing:
            wanted = (WEBSERVER, API_SERVER) if role in (WEB, WEBSERVER, API_SERVER) else (role,)
            others = roles.services(*wanted)
            close = difflib.get_close_matches(name, others, n=1, cutoff=0.85)
            if close:  # a typo of the very service
                hints.append(f"did you mean {close[0]} (for {name})?")
            elif others:
                hints.append(f"{', '.join(others)} is the cluster's {roles.role(others[0])} (for {name})")
        if len(hints) == len(missing):
            raise ServicesMissing(cluster_name(cluster), [name for _, name in missing], "; " + "; ".join(hints))

    def service_named(self, text: str) -> str:
        """A role (scheduler, worker, web, api-server, ...) names the cluster's service for it (for several, such as
        workers by queue, the one named <cluster>-<role>, else the first); anything else is a service name."""
        return self.services_named(text)[0]

    def services_named(self, text: str) -> list[str]:
        """Every service of a role (the one named <cluster>-<role> first), or the service named."""
        try:
            role = role_of(text)
        except ValueError:
            return [text]
        topology = self.topology()
        names = topology.services(API_SERVER, WEBSERVER) if text == WEB else topology.services(role)
        if not names:
            raise click.UsageError(f"cluster {topology.name} has no {text} service; name it with --service "
                                   f"{role}=NAME, or give the service's name")
        conventional = f"{topology.name}-{text}"
        return sorted(names, key=lambda name: name != conventional)

    def cluster_arn(self) -> str:
        """The cluster's ARN once a call has shown it (it names the account and Region), else what was given."""
        cluster = self.require_cluster()
        if cluster.startswith("arn:") or self._topology is None:
            return cluster
        arn = next(iter(self._service_arns), None)
        if arn is None:
            return cluster
        head = arn.split(":service/", 1)[0]
        return f"{head}:cluster/{self._topology.name}"

    def _aws_settings(self) -> tuple[str | None, str | None, str | None]:
        """The Region, endpoint and profile in effect: typed, else from the environment (or, for the Region, the
        profile's, as the clients resolved it)."""
        import os

        o = self.options
        region = o["region"] or (self._clients and self._clients("ecs").meta.region_name) or os.environ.get("AWS_REGION")
        return (region, o["endpoint_url"] or os.environ.get("AWS_ENDPOINT_URL"),
                o["profile"] or os.environ.get("AWS_PROFILE"))

    def aws_words(self, words: list[str], region: str | None = None) -> list[str]:
        """An AWS CLI command that acts where this command did: in `region` when given, else this command's."""
        in_effect, endpoint, profile = self._aws_settings()
        flags = [("--region", region or in_effect), ("--endpoint-url", endpoint), ("--profile", profile)]
        return ["aws", *words, *(word for flag, value in flags if value for word in (flag, value))]

    def resume_words(self, command: str) -> list[str]:
        """The command line that runs `command` on the same cluster, account, Region and endpoint, pasted into
        any shell: the way this tool was started, every global option that was typed or set in the environment,
        the cluster by ARN, and the Region, endpoint and profile in effect."""
        import shlex

        from .topology import role_by_name

        o = self.options
        words = [*self.runtime.invocation(), "--cluster", self.cluster_arn()]
        region, endpoint, profile = self._aws_settings()
        for flag, value in (("--region", region), ("--endpoint-url", endpoint), ("--profile", profile)):
            if value:
                words += [flag, value]
        for flag, key, role in (("--scheduler", "scheduler", SCHEDULER), ("--worker", "worker", WORKER),
                                ("--web", "web", WEBSERVER)):
            if o[key] and role_by_name(self.require_cluster(), o[key]) != role:  # only what had to be typed
                words += [flag, o[key]]
        for pair in o.get("services") or ():
            words += ["--service", pair]
        for key in ("airflow_url", "airflow_credentials_secret", "poll_interval", "timeout", "stability_window",
                    "max_failed_tasks", "log_grace", "output"):
            if key in self.given and o[key] is not None:
                words += ["--" + key.replace("_", "-"), f"{o[key]:g}" if isinstance(o[key], float) else str(o[key])]
        return words + shlex.split(command)

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
        services = Ecs(ecs, self.require_cluster()).services(names)
        self._service_arns += [s.arn for s in services]
        account = services[0].arn.split(":")[4] if services else "?"
        text = f"account {account}, {ecs.meta.region_name}"
        if urlsplit(ecs.meta.endpoint_url).hostname in ("127.0.0.1", "localhost", "::1"):
            text += f", sandbox at {ecs.meta.endpoint_url}"
        return text

    def env(self, holds: str | None = None, repositories: Iterable[str] = ()) -> Env:
        """What a cluster operation needs. `holds` names a command that changes the cluster: it takes the
        operator lease before its first change, on the cluster and on the ECR repositories of `repositories`
        (image references whose `latest` it deploys), so no promote moves those under it."""
        from .ecs import Ecs
        from .env import Env
        from .lease import Leases
        from .poller import Poller

        interval, timeout = self.options["poll_interval"], self.options["timeout"]
        poller = Poller(self.runtime.clock, self.runtime.sleep, interval, timeout, notice=self.report.line)
        clients = self.clients()
        ecs = clients("ecs")

        def in_region(service: str):
            """Builds `service`'s client for a Region (a task's logs, an image's registry), the default one's when same."""
            return lambda region: clients(service) if region in (None, ecs.meta.region_name) else clients(service, region)

        single_attempt = lambda: clients("ecs", attempts=1)  # noqa: E731  (built only when a scheduler starts)
        env = Env(Ecs(ecs, self.require_cluster(), single_attempt), poller, self.report, logs=in_region("logs"),
                  policy=self.policy, ecr=in_region("ecr"), recovery=self.recovery, rds=lambda: clients("rds"),
                  airflow=self.airflow(), aws_words=self.aws_words)
        if holds:
            env.lease = Leases([self.lease(env.ecs, holds), *self.repository_leases(repositories, holds)])
        return env

    def repository_leases(self, images: Iterable[str], command: str, registry_id: str | None = None) -> list[Lease]:
        """A lease on the ECR repository of each image reference (the caller's registry for a bare name)."""
        from .ecr import Ecr, RepositoryPlace
        from .images import ImageRef, ecr_image

        leases, seen = [], set()
        for image in images:
            ref = ecr_image(image) or ImageRef.parse(image)
            if ref.registry and not ref.ecr:
                continue  # another registry: nothing to hold there
            key = (ref.account or registry_id, ref.region, ref.repository)
            if key in seen:
                continue
            seen.add(key)
            default = self.clients()("ecr")
            client = default if ref.region in (None, default.meta.region_name) else self.clients()("ecr", ref.region)
            leases.append(self.lease(RepositoryPlace(Ecr(client, ref.account or registry_id), ref.repository), command))
        return leases

    def airflow(self):
        """Airflow's own view for this command (one per command, connected on first use)."""
        if self._airflow is None:
            from .airflow_view import AirflowView

            self._airflow = AirflowView(self._airflow_api, self.report)
        return self._airflow

    def _airflow_api(self):
        """A client of Airflow's API at --airflow-url, else at the load balancer in front of the api-server or
        webserver (through ELBv2); None when there is neither. Credentials from the environment or the secret."""
        import os

        from .airflow_api import AirflowApi, AirflowUnreachable, Credentials

        url = self.options.get("airflow_url")
        if not url:
            web = [self._listed[name] for name in self.topology().services(API_SERVER, WEBSERVER) if name in self._listed]
            groups = [arn for service in web for arn in service.target_groups]
            if not groups:
                return None
            from .elb import discover_airflow_url

            try:
                url = discover_airflow_url(self.clients()("elbv2"), groups)
            except WorkflowError as error:
                raise AirflowUnreachable(f"cannot find Airflow's URL behind the load balancer: {error}") from None
            if not url:
                return None
        secret = self.options.get("airflow_credentials_secret")
        credentials: Credentials | None
        if secret:
            from .secrets import read_airflow_credentials

            credentials = read_airflow_credentials(self.clients()("secretsmanager"), secret)
        else:
            user, password = os.environ.get("WORKFLOW_AIRFLOW_USERNAME"), os.environ.get("WORKFLOW_AIRFLOW_PASSWORD")
            credentials = Credentials(user, password) if user and password else None
        return AirflowApi(url, credentials, sleep=self.runtime.sleep, monotonic=self.runtime.clock)

    def lease(self, place: Any, command: str) -> Lease:
        """This command's lease on `place` (an Ecs for its cluster, or a lease Place), released when it ends."""
        import getpass
        import socket

        from .lease import Lease

        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no login name in some containers
            user = "unknown"
        ttl = 4 * self.options["timeout"] + 300  # a crashed holder blocks others for at most this long
        lease = Lease(place, f"{user}@{socket.gethostname()}", command, ttl, self.runtime.utcnow, self.report,
                      break_others=self.options["break_lease"])
        self.leases.append(lease)
        return lease

    def release_leases(self) -> None:
        self.changed = self.changed or any(lease.changed for lease in self.leases)
        while self.leases:
            lease = self.leases.pop()
            try:
                lease.release()
            except WorkflowError as error:  # it expires on its own; say so rather than hide the outcome
                self.report.line(f"could not release the lease on {lease.place.name} ({error}); it expires on its own")


def _web_role(service) -> str:
    """What `--web` names: the api-server when its tag or name says so, else the webserver."""
    tagged = service.tags.get(ROLE_TAG)
    return API_SERVER if tagged == API_SERVER or service.name.endswith("-" + API_SERVER) else WEBSERVER


def how_invoked() -> list[str]:
    """The words that start this tool the way the operator did: `pipenv run workflow` inside pipenv's
    environment, `workflow` when that is what PATH finds, else the program's path."""
    import os
    import shutil

    if os.environ.get("PIPENV_ACTIVE") == "1":
        return ["pipenv", "run", "workflow"]
    program = sys.argv[0] if sys.argv else "workflow"
    if program.endswith("__main__.py"):
        # This interpreter: a virtualenv's python that is not on PATH is the one that has this tool installed.
        name = os.path.basename(sys.executable)
        on_path = shutil.which(name) if name else None
        same = on_path is not None and os.path.abspath(on_path) == os.path.abspath(sys.executable)
        return [name if same else sys.executable or "python3", "-m", "workflow"]
    found = shutil.which("workflow")
    if found and os.path.realpath(found) == os.path.realpath(program):
        return ["workflow"]
    return [program] if os.sep in program else ["workflow"]
