"""`workflow sandbox`: a local cluster to rehearse on; moto is imported only when it runs."""

import sys

import click

from workflow.errors import USAGE
from workflow.options import Seconds, option


def deployments_option(flag: str, env: str, whose_new_tasks: str):
    return option(flag, env=env, multiple=True, show_default="none",
                  help=f"Service (or scheduler, worker, web) whose new tasks {whose_new_tasks}; repeatable.")


@click.command()
@option("--port", env="PORT", type=click.IntRange(0, 65535), default=0, show_default="a free port",
        help="Loopback port for the AWS endpoint.")
@option("--task-start-seconds", env="TASK_START_SECONDS", type=Seconds(min=0.01), default=3.0,
        help="How long a task takes from PROVISIONING to RUNNING.")
@option("--task-stop-seconds", env="TASK_STOP_SECONDS", type=Seconds(min=0.01), default=2.0,
        help="How long a task takes from RUNNING to STOPPED.")
@option("--web-drain-seconds", env="WEB_DRAIN_SECONDS", type=Seconds(min=0.01), default=3.0,
        help="How long a web task stays DEACTIVATING: the load balancer's deregistration delay.")
@option("--one-off-seconds", env="ONE_OFF_SECONDS", type=Seconds(min=0.01), default=3.0,
        help="How long a one-off task such as initialize runs.")
@deployments_option("--fail-deployments", env="FAIL_DEPLOYMENTS", whose_new_tasks="cannot pull their image")
@option("--init-exit-code", env="INIT_EXIT_CODE", type=int, default=0, help="Exit code of one-off tasks.")
@deployments_option("--crash-deployments", env="CRASH_DEPLOYMENTS",
                    whose_new_tasks="exit with code 1 one task-start time after reaching RUNNING, logging the "
                                    "error, and are relaunched for ever")
@deployments_option("--unhealthy-deployments", env="UNHEALTHY_DEPLOYMENTS",
                    whose_new_tasks="fail their load balancer health check one task-start time after reaching "
                                    "RUNNING")
@option("--flaky-starts", env="FLAKY_STARTS", type=click.IntRange(min=0), default=0,
        help="The next N tasks each service launches fail to start (ResourceInitializationError); later ones start.")
@option("--throttle", env="THROTTLE", type=click.FloatRange(0, 1), default=0.0,
        help="Fraction of ECS and CloudWatch Logs API calls answered ThrottlingException.")
@option("--server-errors", env="SERVER_ERRORS", type=click.FloatRange(0, 1), default=0.0,
        help="Fraction of ECS and CloudWatch Logs API calls answered HTTP 500.")
@option("--missing-seconds", env="MISSING_SECONDS", type=Seconds(min=0), default=0.0,
        help="How long after RunTask DescribeTasks answers the task MISSING and ListTasks omits it.")
@option("--stale-seconds", env="STALE_SECONDS", type=Seconds(min=0), default=0.0,
        help="How long after UpdateService DescribeServices still shows the service as it was.")
@option("--log-delay", env="LOG_DELAY", type=Seconds(min=0), default=0.0,
        help="Seconds before a logged line is readable with GetLogEvents.")
@option("--deployment-controller", env="DEPLOYMENT_CONTROLLER", multiple=True, show_default="ECS",
        help="SERVICE=TYPE: create the service (or scheduler, worker, web) with deployment controller "
             "ECS, CODE_DEPLOY or EXTERNAL; repeatable.")
@click.pass_obj
def sandbox(app, port, task_start_seconds, task_stop_seconds, web_drain_seconds, one_off_seconds,
            fail_deployments, init_exit_code, crash_deployments, unhealthy_deployments, flaky_starts, throttle,
            server_errors, missing_seconds, stale_seconds, log_delay, deployment_controller):
    """Run a local cluster to rehearse on, until Ctrl-C.

    \b
    Starts an AWS endpoint on 127.0.0.1 with a simulated ECS cluster (scheduler,
    three workers and web, already steady, running release v1 from
    airflow-prod:latest) and ECR repositories airflow-prod (v1 under latest and
    20261101T000000Z) and airflow-stage (v2 under latest), then prints the
    environment to use it. When it stops, unset those variables.

    \b
    To rehearse failures:
      new tasks that cannot pull their image    --fail-deployments
      new tasks that crash after starting       --crash-deployments
      new tasks that fail health checks         --unhealthy-deployments
      launches that fail before ECS retries     --flaky-starts
      throttled or failing API calls            --throttle, --server-errors
      ECS's eventual consistency                --missing-seconds, --stale-seconds
      late logs                                 --log-delay
      services deployed by CodeDeploy or
      an external controller                    --deployment-controller

    \b
    Example:
      workflow --cluster airflow-prod sandbox --fail-deployments worker
      workflow sandbox --crash-deployments worker --throttle 0.2 --missing-seconds 3
      workflow sandbox --deployment-controller web=CODE_DEPLOY
    """
    from workflow.runner import CommandFailed

    try:
        from .server import Sandbox, SandboxConfig
    except ImportError as error:
        raise CommandFailed(
            f"the sandbox needs moto with its server extra ({error}); install it with "
            "`pipenv install --dev` in a checkout (or `pip install '.[sandbox]'` there)",
            USAGE,
        ) from None

    controllers = {}
    for pair in deployment_controller:
        service, _, kind = pair.partition("=")
        if not service or not kind:
            raise click.BadParameter(f"expected SERVICE=TYPE, got {pair!r}", param_hint="--deployment-controller")
        controllers[service] = kind
    try:
        config = SandboxConfig(
            cluster=app.cluster or "airflow-prod", port=port, task_start_seconds=task_start_seconds,
            task_stop_seconds=task_stop_seconds, web_drain_seconds=web_drain_seconds, one_off_seconds=one_off_seconds,
            fail_deployments=tuple(fail_deployments), init_exit_code=init_exit_code,
            crash_deployments=tuple(crash_deployments), unhealthy_deployments=tuple(unhealthy_deployments),
            flaky_starts=flaky_starts, throttle=throttle, server_errors=server_errors,
            missing_seconds=missing_seconds, stale_seconds=stale_seconds, log_delay=log_delay,
            deployment_controllers=controllers,
        )
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--deployment-controller") from None
    box = Sandbox(config)
    try:
        box.start()
    except OSError as error:
        raise CommandFailed(f"cannot start the sandbox on 127.0.0.1:{port}: {error.strerror}", USAGE) from None
    try:
        for name, value in box.environment.items():
            click.echo(f"export {name}={value}")
        v1, v2 = box.releases["v1"], box.releases["v2"]
        click.echo(f"sandbox: services run v1 {v1} (airflow-prod:latest); airflow-stage:latest holds v2 {v2}", err=True)
        click.echo(f"sandbox: cluster {config.cluster} is steady at {box.endpoint}; Ctrl-C stops it", err=True)
        sys.stdout.flush()
        wait_for_interrupt()
    finally:
        box.stop()
        # Its fake credentials and endpoint would shadow the real ones in the shell that sourced them.
        click.echo(f"sandbox: stopped; run: unset {' '.join(box.environment)}", err=True)


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
