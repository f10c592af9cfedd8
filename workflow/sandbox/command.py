"""`workflow sandbox`: a local cluster to rehearse on; moto is imported only when it runs."""

import sys

import click

from ..errors import USAGE
from ..options import option


@click.command()
@option("--port", env="PORT", type=click.IntRange(0, 65535), default=0, show_default="a free port",
        help="Loopback port for the AWS endpoint.")
@option("--task-start-seconds", env="TASK_START_SECONDS", type=click.FloatRange(min=0.01), default=3.0,
        help="How long a task takes from PROVISIONING to RUNNING.")
@option("--task-stop-seconds", env="TASK_STOP_SECONDS", type=click.FloatRange(min=0.01), default=2.0,
        help="How long a task takes from RUNNING to STOPPED.")
@option("--web-drain-seconds", env="WEB_DRAIN_SECONDS", type=click.FloatRange(min=0.01), default=3.0,
        help="How long a web task stays DEACTIVATING: the load balancer's deregistration delay.")
@option("--one-off-seconds", env="ONE_OFF_SECONDS", type=click.FloatRange(min=0.01), default=3.0,
        help="How long a one-off task such as initialize runs.")
@option("--fail-deployments", env="FAIL_DEPLOYMENTS", multiple=True, show_default="none",
        help="Service (or scheduler, worker, web) whose new tasks cannot pull their image; repeatable.")
@option("--init-exit-code", env="INIT_EXIT_CODE", type=int, default=0, help="Exit code of one-off tasks.")
@click.pass_obj
def sandbox(app, port, task_start_seconds, task_stop_seconds, web_drain_seconds, one_off_seconds,
            fail_deployments, init_exit_code):
    """Run a local cluster to rehearse on, until Ctrl-C.

    Starts an AWS endpoint on 127.0.0.1 with a simulated ECS cluster (scheduler, three workers and
    web, already steady) and ECR repositories airflow-stage (with an image under latest) and
    airflow-prod, then prints the environment to use it.

    \b
    Example:
      workflow --cluster airflow-prod sandbox --fail-deployments worker
    """
    from ..cli import CommandFailed

    try:
        from .server import Sandbox, SandboxConfig
    except ImportError as error:
        raise CommandFailed(
            f"the sandbox needs moto with its server extra ({error}); install it with "
            "`pipenv install --dev` or `pip install 'workflow[sandbox]'`",
            USAGE,
        ) from None

    config = SandboxConfig(app.cluster or "airflow-prod", port, task_start_seconds, task_stop_seconds,
                           web_drain_seconds, one_off_seconds, tuple(fail_deployments), init_exit_code)
    box = Sandbox(config)
    try:
        box.start()
    except OSError as error:
        raise CommandFailed(f"cannot start the sandbox on 127.0.0.1:{port}: {error.strerror}", USAGE) from None
    try:
        for name, value in box.environment.items():
            click.echo(f"export {name}={value}")
        click.echo(f"sandbox: cluster {config.cluster} is steady at {box.endpoint}; Ctrl-C stops it", err=True)
        sys.stdout.flush()
        wait_for_interrupt()
    finally:
        box.stop()
    click.echo("sandbox: stopped", err=True)


def wait_for_interrupt() -> None:
    """Block until Ctrl-C or SIGTERM (how `make demo` and tests stop a sandbox)."""
    import signal

    def interrupt(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
