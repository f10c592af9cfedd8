"""`workflow sandbox`: a local cluster to rehearse on; moto is imported only when it runs."""

import sys

import click

from workflow.errors import USAGE
from workflow.options import Seconds, option
from workflow.progress import hanging, width_of
from workflow.recovery import shell_lines


def deployments_option(flag: str, env: str, whose_new_tasks: str):
    return option(flag, env=env, multiple=True, show_default="none",
                  help=f"Service (or scheduler, worker, web, dag-processor...) whose new tasks {whose_new_tasks}; "
                       "repeatable.")


def release_versions(ctx, param, value: str | None) -> tuple[str, str] | None:
    """`V1,V2`: the Airflow releases v1 and v2 hold; each must be one whose schema Airflow knows."""
    if value is None:
        return None
    from workflow.airflow_schema import schema_of

    versions = tuple(v.strip() for v in value.split(","))
    if len(versions) != 2 or not all(versions):
        raise click.BadParameter(f"expected V1,V2 such as 3.2.2,3.3.2, got {value!r}")
    unknown = [v for v in versions if schema_of(v) is None]
    if unknown:
        raise click.BadParameter(f"{unknown[0]}: no Airflow schema known for it (releases from 2.6.2 on)")
    return versions[0], versions[1]


@click.command()
@option("--port", env="PORT", type=click.IntRange(0, 65535), default=0, show_default="a free port",
        help="Loopback port for the AWS endpoint.")
@option("--task-start-seconds", env="TASK_START_SECONDS", type=Seconds(min=0.01), default=3.0,
        help="How long a task takes from PROVISIONING to RUNNING.")
@option("--task-stop-seconds", env="TASK_STOP_SECONDS", type=Seconds(min=0.01), default=2.0,
        help="How long a task takes from RUNNING until its containers have stopped.")
@option("--task-deprovision-seconds", env="TASK_DEPROVISION_SECONDS", type=Seconds(min=0), default=None,
        show_default="1.5 x --task-stop-seconds",
        help="How long a task stays DEPROVISIONING (its containers stopped, its network interface detaching) "
             "before it is STOPPED; 0: no such phase.")
@option("--web-drain-seconds", env="WEB_DRAIN_SECONDS", type=Seconds(min=0.01), default=3.0,
        help="How long a web task (the api-server on Airflow 3) stays DEACTIVATING: the load balancer's "
             "deregistration delay.")
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
        help="SERVICE=TYPE: create the service (or scheduler, worker, web...) with deployment controller "
             "ECS, CODE_DEPLOY or EXTERNAL; repeatable.")
@option("--airflow", env="SANDBOX_AIRFLOW", type=click.Choice(["2", "3"]), default="3",
        help="The cluster's shape: Airflow 3 (scheduler, dag-processor, api-server behind a load balancer, "
             "triggerer, workers of queues default and reports) or Airflow 2 (scheduler, worker, web).")
@option("--airflow-versions", env="SANDBOX_AIRFLOW_VERSIONS", callback=release_versions, default=None,
        metavar="V1,V2", show_default="3.2.2,3.3.2 (Airflow 3), 2.10.5,2.11.0 (Airflow 2)",
        help="The Airflow releases v1 (running; the database has its schema) and v2 (staged) hold.")
@option("--db-snapshot-seconds", env="DB_SNAPSHOT_SECONDS", type=Seconds(min=0), default=5.0,
        help="How long an RDS snapshot of the database stays `creating`.")
@option("--airflow-task-seconds", env="SANDBOX_AIRFLOW_TASK_SECONDS", type=Seconds(min=0.01), default=20.0,
        help="How long each task instance the scheduler queues runs (one every 15 s while it runs, three at most): "
             "longer than --drain-timeout rehearses task instances a redeploy interrupts.")
@option("--airflow-silent-scheduler", env="SANDBOX_AIRFLOW_SILENT_SCHEDULER", is_flag=True, default=False,
        help="The scheduler runs in ECS but never heartbeats in Airflow.")
@option("--airflow-api-down", env="SANDBOX_AIRFLOW_API_DOWN", is_flag=True, default=False,
        help="Airflow's API refuses every connection.")
@click.pass_obj
def sandbox(app, port, task_start_seconds, task_stop_seconds, task_deprovision_seconds, web_drain_seconds,
            one_off_seconds, fail_deployments, init_exit_code, crash_deployments, unhealthy_deployments, flaky_starts,
            throttle, server_errors, missing_seconds, stale_seconds, log_delay, deployment_controller, airflow,
            airflow_versions, db_snapshot_seconds, airflow_task_seconds, airflow_silent_scheduler, airflow_api_down):
    """Run a local cluster to rehearse on, until Ctrl-C.

    \b
    Starts an AWS endpoint on 127.0.0.1 with a simulated ECS cluster, already
    steady and running release v1 from airflow-prod:latest, ECR repositories
    airflow-prod (v1 under latest and 20261101T000000Z) and airflow-stage (v2
    under latest), and the Postgres RDS instance <cluster>-db; then prints the
    environment to use it, Airflow's API (its URL and a user) included. When it
    stops, unset those variables.

    \b
    Airflow 3 (the default): <cluster>-scheduler, -dag-processor, -api-server
    (behind a load balancer), -triggerer, -worker and -worker-reports, tagged
    airflow-role but the triggerer; v1 is Airflow 3.2.2, v2 3.3.2, and the
    database is at 3.2.2's schema. Airflow 2 (--airflow 2): the seed's
    <cluster>-scheduler, -worker and -web; v1 2.10.5, v2 2.11.0 (one schema).
    The scheduler, dag-processor, api-server/webserver and triggerer (and an
    Airflow 2 worker) exit 1 about a second after starting on another schema
    ("Database migration required"); one-off `airflow db migrate`,
    `airflow db downgrade --to-version X -y` and `airflow db check-migrations`
    read and move the schema as Airflow does.

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
      a schema change on Airflow 2              --airflow 2
                                                --airflow-versions 2.9.3,2.10.5
      waiting for stopped tasks to be gone      --task-deprovision-seconds
      a slow database snapshot                  --db-snapshot-seconds
      task instances that outlast the drain     --airflow-task-seconds
      a scheduler that never heartbeats         --airflow-silent-scheduler
      Airflow's API unreachable                 --airflow-api-down

    \b
    Example:
      workflow --cluster airflow-prod sandbox --fail-deployments worker
      workflow sandbox --crash-deployments worker --throttle 0.2 \\
        --missing-seconds 3
      workflow sandbox --deployment-controller web=CODE_DEPLOY
      workflow sandbox --airflow 2
    """
    from workflow.runner import CommandFailed

    try:
        from .hooks import MotoVersionError
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
            deployment_controllers=controllers, airflow=int(airflow), airflow_versions=airflow_versions,
            task_deprovision_seconds=task_deprovision_seconds, db_snapshot_seconds=db_snapshot_seconds,
            airflow_task_seconds=airflow_task_seconds, airflow_silent_scheduler=airflow_silent_scheduler,
            airflow_api_down=airflow_api_down,
        )
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    box = Sandbox(config)
    try:
        box.start()
    except OSError as error:
        raise CommandFailed(f"cannot start the sandbox on 127.0.0.1:{port}: {error.strerror}", USAGE) from None
    except MotoVersionError as error:
        raise CommandFailed(str(error), USAGE) from None
    try:
        for name, value in box.environment.items():
            click.echo(f"export {name}={value}")
        for line in [*startup_lines(config, box.releases),
                     f"cluster {config.cluster} is steady at {box.endpoint}; Ctrl-C stops it"]:
            click.echo(hanging(f"sandbox: {line}", width_of(), 0, len("sandbox: ")), err=True)
        sys.stdout.flush()
        wait_for_interrupt()
    finally:
        box.stop()
        # Its fake credentials and endpoint would shadow the real ones in the shell that sourced them.
        click.echo(f"sandbox: stopped; run:\n{shell_lines(['unset', *box.environment], width_of() - 4)}", err=True)


def startup_lines(config, releases: dict[str, str]) -> list[str]:
    """What runs: the shape and its services, each release's digest and Airflow version, the database's schema."""
    from workflow.airflow_schema import schema_of

    cluster, (v1_version, v2_version) = config.cluster, config.versions()
    services = []
    for component in config.components():
        notes = [note for note in (
            "behind a load balancer" if component.port else "",
            f"queue {component.command[-1]}" if "--queues" in component.command else "",
            "no airflow-role tag" if config.airflow == 3 and not component.role else "",
        ) if note]
        services.append(f"{cluster}-{component.name}" + (f" ({', '.join(notes)})" if notes else ""))
    v1_schema, v2_schema = schema_of(v1_version), schema_of(v2_version)
    change = "the same schema" if v1_schema == v2_schema else f"schema {v2_schema}: `airflow db migrate` moves it"
    return [
        f"Airflow {config.airflow} cluster {cluster}: {', '.join(services)}",
        f"services run v1 {releases['v1']} (airflow-prod:latest, Airflow {v1_version}); "
        f"airflow-stage:latest holds v2 {releases['v2']} (Airflow {v2_version})",
        f"database {cluster}-db (RDS, postgres) is at Airflow {v1_version}'s schema {v1_schema}; v2 needs {change}",
    ]


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
