"""The `workflow` command line: options, confirmation, one call into operations, and the rendered result."""

import shlex
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import click

from . import __version__
from .errors import INTERRUPTED, WorkflowError
from .options import (
    also_after_the_command,
    aws_options,
    cluster_options,
    command_words,
    lease_option,
    option,
    output_option,
    task_wait_option,
    wait_option,
    wait_tuning_options,
    yes_option,
)


@dataclass
class Runtime:
    """What tests replace: the clock and sleep every wait uses, and how AWS clients are built."""

    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    clients: Callable | None = None
    utcnow: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


class CommandFailed(click.ClickException):
    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code

    @classmethod
    def of(cls, error: WorkflowError) -> "CommandFailed":
        return cls(str(error), error.exit_code)


def interruption(interrupt: KeyboardInterrupt) -> tuple[str, int]:
    """What stopped the command and its exit code: Ctrl-C (130), or the signal `signals_as_interrupts` named."""
    return getattr(interrupt, "name", "interrupted"), getattr(interrupt, "exit_code", INTERRUPTED)


def silence_stdout() -> None:
    """Once stdout's reader has gone (`| head`), point it at /dev/null: Python's flush at exit must not fail."""
    import os

    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # io.UnsupportedOperation is both
        pass


@dataclass
class App:
    runtime: Runtime
    options: dict  # the global options, typed before or after the command name
    _clients: object = field(default=None, repr=False)
    _leases: list = field(default_factory=list, repr=False)

    @property
    def aws(self):
        from .aws import AwsConfig

        return AwsConfig(self.options["profile"], self.options["region"], self.options["endpoint_url"])

    @property
    def policy(self):
        from .deployments import WatchPolicy

        options = self.options
        return WatchPolicy(options["stability_window"], options["max_failed_tasks"], log_grace=options["log_grace"])

    @property
    def cluster(self) -> str | None:
        return self.options["cluster"]

    def target(self):
        from .operations import Target

        if not self.cluster:
            raise click.UsageError("Missing option '--cluster' (or WORKFLOW_CLUSTER).")
        o, defaults = self.options, default_services(self.cluster)
        return Target(self.cluster, o["scheduler"] or defaults[0], o["worker"] or defaults[1], o["web"] or defaults[2])

    def clients(self):
        if self._clients is None:
            from .aws import Clients

            self._clients = (self.runtime.clients or Clients)(self.aws)
        return self._clients

    def where(self, names: list[str]) -> str:
        """Account, Region and endpoint the command acts in, once the names are known to exist there."""
        from urllib.parse import urlsplit

        from .ecs import Ecs

        try:
            clients = self.clients()
            ecs = clients("ecs")
            services = Ecs(ecs, self.target().cluster).services(names)
        except WorkflowError as error:
            raise CommandFailed.of(error) from None
        account = services[0].arn.split(":")[4] if services else "?"
        text = f"account {account}, {ecs.meta.region_name}"
        if urlsplit(ecs.meta.endpoint_url).hostname in ("127.0.0.1", "localhost", "::1"):
            text += f", sandbox at {ecs.meta.endpoint_url}"
        return text

    def resume_command(self, command: str) -> str:
        """The exact command that picks up where an interrupted or failed one stopped."""
        t = self.target()
        words = ["workflow", "--cluster", t.cluster]
        defaults = default_services(t.cluster)
        for flag, name, default in (("--scheduler", t.scheduler, defaults[0]), ("--worker", t.worker, defaults[1]),
                                    ("--web", t.web, defaults[2])):
            if name != default:  # only what the operator had to type
                words += [flag, name]
        return shlex.join(words + shlex.split(command))

    def env(self, report, holds: str | None = None):
        """What a cluster operation needs: the cluster's ECS API, the poller and the progress reporter.

        `holds` names a command that changes the cluster: it takes the operator lease before its first change.
        """
        from .ecs import Ecs
        from .operations import Env
        from .poller import Poller

        interval, timeout = self.options["poll_interval"], self.options["timeout"]
        poller = Poller(self.runtime.clock, self.runtime.sleep, interval, timeout, notice=report.line)
        clients = self.clients()
        ecs = clients("ecs")

        def in_region(service: str):
            """Builds `service`'s client for a Region (a task's logs, an image's registry), the default one's when same."""
            return lambda region: clients(service) if region in (None, ecs.meta.region_name) else clients(service, region)

        single_attempt = lambda: clients("ecs", attempts=1)  # noqa: E731  (built only when a scheduler starts)
        env = Env(Ecs(ecs, self.target().cluster, single_attempt), poller, report, logs=in_region("logs"),
                  policy=self.policy, ecr=in_region("ecr"))
        if holds:
            env.lease = self._lease(env, holds, report)
        return env

    def _lease(self, env, command: str, report):
        import getpass
        import socket

        from .lease import Lease

        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no login name in some containers
            user = "unknown"
        ttl = 4 * self.options["timeout"] + 300  # a crashed holder blocks others for at most this long
        lease = Lease(env.ecs, f"{user}@{socket.gethostname()}", command, ttl, self.runtime.utcnow, report,
                      break_others=self.options["break_lease"])
        self._leases.append(lease)
        return lease

    def run(self, resume: str | None, operation: Callable):
        """Run one operation with a progress reporter; expected failures become one clear message.

        `resume` names the command that continues safely after a failure, when re-running one does.
        """
        output = self.options["output"]
        from .render import Reporter, use_color

        report = Reporter(self.runtime.clock, color=use_color(sys.stderr), now=self.runtime.utcnow)
        try:
            with signals_as_interrupts():
                try:
                    outcome = operation(report)
                finally:
                    self._release_leases(report)
        except WorkflowError as error:
            self._failed(str(error), error.exit_code, report, resume, output, getattr(error, "result", None))
        except KeyboardInterrupt as interrupt:
            self._failed(*interruption(interrupt), report, resume, output, None)
        try:
            show(outcome, output)
        except BrokenPipeError:
            silence_stdout()  # whoever reads stdout has gone: the operation succeeded, and that is the exit status
        return outcome

    def _failed(self, message: str, code: int, report, resume: str | None, output: str, result) -> None:
        """Say why on stderr; with JSON output, stdout still gets one document, with the error in it."""
        from . import render

        if output == "json":
            click.echo(render.to_json({
                "error": message,
                "exit_code": code,
                "cluster_state": report.state,
                "resume": self.resume_command(resume) if resume and report.state and report.resumable else None,
                "alternatives": [self.resume_command(command) for _, command in report.alternatives],
                "result": result,
            }))
        elif result is not None:
            show(result, output)
        raise CommandFailed(self._explain(message, report, resume, failed=code != INTERRUPTED and code < 128),
                            code) from None

    def _release_leases(self, report) -> None:
        while self._leases:
            lease = self._leases.pop()
            try:
                lease.release()
            except WorkflowError as error:  # it expires on its own; say so rather than hide the outcome
                report.line(f"could not release the lease on the cluster ({error}); it expires on its own")

    def _explain(self, message: str, report, resume: str | None, failed: bool = True) -> str:
        if report.state is not None:
            message += f"\n  cluster state: {report.state}"
            if resume and report.resumable:
                when = "once the cause is fixed, resume with" if failed else "resume with"
                message += f"\n  {when}: {self.resume_command(resume)}"
            for purpose, command in report.alternatives:
                message += f"\n  or, {purpose}: {self.resume_command(command)}"
        return message


def default_services(cluster: str) -> tuple[str, str, str]:
    """<cluster>-scheduler, -worker and -web, from the cluster's name even when it is given as an ARN."""
    name = cluster.rsplit("/", 1)[-1]
    return f"{name}-scheduler", f"{name}-worker", f"{name}-web"


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (a CI job's timeout, a dropped SSH session): handled like Ctrl-C, with its own exit code."""

    def __init__(self, signum: int):
        import signal

        super().__init__()
        self.name = f"interrupted by {signal.Signals(signum).name}"
        self.exit_code = 128 + signum


@contextmanager
def signals_as_interrupts():
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, _frame):
        raise Terminated(signum)

    previous = {sig: signal.signal(sig, terminate) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def show(outcome, output: str) -> None:
    from . import render
    from .oneoff import TaskOutcome
    from .promote import PromoteOutcome

    if output == "json":
        click.echo(render.to_json(outcome))
        return
    click.echo(outcome.summary)
    if isinstance(outcome, PromoteOutcome):
        click.echo(render.promote_table(outcome))
    elif isinstance(outcome, TaskOutcome):
        click.echo(render.containers_table(outcome.task, outcome.essential))
        if outcome.task.stopped_reason:
            click.echo(f"stopped reason: {outcome.task.stopped_reason}")
        if outcome.log:
            click.echo(f"log: {outcome.log}")
        for step in outcome.next_steps:
            click.echo(step)
    elif getattr(outcome, "services", None):
        click.echo(render.services_table(outcome.services))
        if getattr(outcome, "images", None):
            click.echo()
            click.echo(render.images_table(outcome.images))
    for warning in getattr(outcome, "warnings", ()):
        click.echo(f"warning: {warning}")


def confirm(yes: bool, question: str, where: Callable[[], str] | None = None) -> None:
    """Ask before a change, naming where it lands; `where` also validates the names first (it may fail)."""
    if yes:
        return
    if where is not None:
        question = f"{question.rstrip('?')} ({where()})?"
    try:
        agreed = click.confirm(question, default=False, err=True)
    except click.Abort:
        if sys.stdin.isatty():
            raise
        raise click.UsageError("this command asks for confirmation and there is no terminal to ask on: "
                               "pass --yes (or set WORKFLOW_YES=1)") from None
    if not agreed:
        raise click.Abort()


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@cluster_options
@aws_options
@wait_tuning_options
@output_option
@lease_option
@click.version_option(__version__, prog_name="workflow")
@click.pass_context
def main(ctx, **options):
    """Operate an Apache Airflow cluster on AWS ECS Fargate.

    \b
    Example:
      workflow --cluster airflow-prod --scheduler airflow-prod-scheduler \\
        --worker airflow-prod-worker --web airflow-prod-web initialize

    Global options may also follow the command name.
    """
    runtime = ctx.obj if isinstance(ctx.obj, Runtime) else Runtime()
    ctx.obj = App(runtime, options)


@main.command()
@yes_option
@task_wait_option
@option("--command", env="COMMAND", default="airflow db migrate", callback=command_words,
        help="Command to run in place of the container's own (shell-quoted).")
@option("--container", env="CONTAINER", default=None, show_default="the task definition's essential container",
        help="Container whose command to override.")
@click.pass_obj
def initialize(app: App, yes, wait, command, container):
    """Initialize the Airflow database in a one-off task.

    Runs one task with the worker service's deployed task definition and network settings, the
    essential container's command replaced by --command, and waits until it stops.

    \b
    Example:
      workflow --cluster airflow-prod --scheduler airflow-prod-scheduler \\
        --worker airflow-prod-worker --web airflow-prod-web initialize
    """
    from . import operations

    target = app.target()
    confirm(yes, f"Run '{shlex.join(command)}' as a one-off task in cluster {target.cluster}?",
            lambda: app.where([target.worker]))
    app.run(None, lambda report: operations.initialize(app.env(report, holds="initialize"), target, command, container, wait))


@main.command()
@yes_option
@option("--wait-for-drain", env="WAIT_FOR_DRAIN", is_flag=True, default=False,
        help="Also wait until web's old tasks have drained behind the load balancer.")
@option("--migrate", env="MIGRATE", is_flag=True, default=False,
        help="Run the database migration as a one-off task after the scheduler has drained and before web and "
             "worker roll. RunTask resolves the image tag when it launches, so it runs the newly promoted image.")
@option("--migrate-command", env="MIGRATE_COMMAND", default="airflow db migrate", callback=command_words,
        help="The migration command (shell-quoted), with --migrate.")
@click.pass_obj
def redeploy(app: App, yes, wait_for_drain, migrate, migrate_command):
    """Stop the scheduler, roll web and worker onto new tasks, start the scheduler.

    Web and worker keep their desired counts. The scheduler starts again as soon as the new
    workers are stable and no old worker runs; web's rollout goes on meanwhile. Fails as soon
    as a new deployment cannot succeed, and says how to resume.

    \b
    Example:
      workflow --cluster airflow-prod --scheduler airflow-prod-scheduler \\
        --worker airflow-prod-worker --web airflow-prod-web redeploy
    """
    from . import operations

    target = app.target()
    confirm(yes, f"Redeploy cluster {target.cluster}: the scheduler stops until the new workers are stable?",
            lambda: app.where([target.scheduler, target.worker, target.web]))
    resume = "redeploy --yes" + (f" --migrate --migrate-command {shlex.quote(shlex.join(migrate_command))}" if migrate else "")
    app.run(resume, lambda report: operations.redeploy(
        app.env(report, holds="redeploy"), target, wait_for_drain, migrate_command if migrate else None))


@main.command("stop-scheduler")
@yes_option
@wait_option
@click.pass_obj
def stop_scheduler(app: App, yes, wait):
    """Scale the scheduler to zero and wait until every scheduler task has stopped.

    \b
    Example:
      workflow --cluster airflow-prod --scheduler airflow-prod-scheduler stop-scheduler
    """
    from . import operations

    target = app.target()
    confirm(yes, f"Stop scheduler {target.scheduler} in cluster {target.cluster}?", lambda: app.where([target.scheduler]))
    app.run("stop-scheduler --yes",
            lambda report: operations.stop_scheduler(app.env(report, holds="stop-scheduler"), target.scheduler, wait))


@main.command("start-scheduler")
@option("--yes", "-y", env="YES", is_flag=True, default=False, hidden=True,
        help="Accepted for scripts that pass it to every command; starting asks nothing.")
@wait_option
@click.pass_obj
def start_scheduler(app: App, yes, wait):
    """Start exactly one scheduler, once no other scheduler task is alive.

    With --no-wait it still waits for old scheduler tasks to stop, but not for the new one to run.

    \b
    Example:
      workflow --cluster airflow-prod --scheduler airflow-prod-scheduler start-scheduler
    """
    from . import operations

    target = app.target()
    app.run("start-scheduler",
            lambda report: operations.start_scheduler(app.env(report, holds="start-scheduler"), target.scheduler, wait))


@main.command()
@option("--source", env="SOURCE", default="airflow-stage:latest", help="Image to promote: REPO:TAG or REPO@sha256:...")
@option("--dest", env="DEST", default="airflow-prod", help="Destination repository.")
@option("--tag", "tags", env="TAG", multiple=True,
        show_default="latest and a UTC timestamp YYYYMMDDTHHMMSSZ, unless the image already has a timestamp tag there",
        help="Tag to write; repeat for several. Replaces the defaults.")
@option("--registry-id", env="REGISTRY_ID", default=None, show_default="the caller's account",
        help="Registry holding both repositories.")
@option("--dry-run", env="DRY_RUN", is_flag=True, default=False, help="Say what would be copied and tagged, and stop.")
@yes_option
@click.pass_obj
def promote(app: App, source, dest, tags, registry_id, dry_run, yes):
    """Publish an image to another repository, copying only the blobs it lacks.

    Uses the ECR API only (no Docker): the destination gets the exact manifest, so its digest
    equals the source's. Nothing is tagged unless every blob is in place.

    \b
    Example:
      workflow promote --source airflow-stage:latest --dest airflow-prod
    """
    from .ecr import Ecr
    from .promote import ImageRef
    from .promote import promote as run_promote

    ref = ImageRef.parse(source)
    if not ref.repository or not (ref.tag or ref.digest):
        raise click.BadParameter(f"{source!r} names no image; use REPO:TAG or REPO@sha256:...", param_hint="--source")
    if not dest.strip():
        raise click.BadParameter("the destination repository is empty", param_hint="--dest")
    tags = list(tags)
    if not dry_run:
        as_what = ", ".join(tags) if tags else "latest and a UTC timestamp tag (none if already released)"
        confirm(yes, f"Promote {ref} to {dest} as {as_what}?")
    app.run(
        None,
        lambda report: run_promote(
            Ecr(app.clients()("ecr"), registry_id), report, ref, dest, tags, dry_run,
            sleep=app.runtime.sleep, now=app.runtime.utcnow(),
        ),
    )


@main.command()
@click.pass_obj
def status(app: App):
    """Show what runs: each service's counts, deployment and image digests, and what needs attention.

    For each service: desired, running and pending counts, the primary deployment and its rollout state,
    and the task definition revision, image digest and ECR tags its RUNNING tasks run. Warns about a
    stopped scheduler, failing or crashing deployments, another command changing the cluster, and a
    scheduler deployment configuration that lets ECS run two. Changes nothing.

    \b
    Example:
      workflow --cluster airflow-prod --scheduler airflow-prod-scheduler \\
        --worker airflow-prod-worker --web airflow-prod-web status
    """
    from .status import status as cluster_status

    target = app.target()
    app.run(None, lambda report: cluster_status(app.env(report), target))


# Commands that live in their own modules; each imports boto3 and moto only when it runs.
from .commands.iam import iam_policy  # noqa: E402
from .commands.logs import logs  # noqa: E402
from .commands.releases import releases, rollback  # noqa: E402
from .commands.run import run  # noqa: E402
from .sandbox.command import sandbox  # noqa: E402

for _command in (run, logs, releases, rollback, iam_policy, sandbox):
    main.add_command(_command)
also_after_the_command(main, lambda ctx, name, value: ctx.find_object(App).options.__setitem__(name, value))
