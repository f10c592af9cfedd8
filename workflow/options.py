"""Options declared once and shared: each can come from a WORKFLOW_* variable and shows its default."""

import click
from click.core import ParameterSource


class Seconds(click.FloatRange):
    """A finite number of seconds: NaN would make every comparison false, so a wait would never end."""

    name = "seconds"

    def convert(self, value, param, ctx):
        import math

        seconds = super().convert(value, param, ctx)
        if not math.isfinite(seconds):
            self.fail(f"{value!r} is not a finite number of seconds", param, ctx)
        return seconds


def command_words(ctx, param, value: str | None) -> list[str] | None:
    """A shell-quoted command as words; an empty or unbalanced one is a usage error before anything is sent."""
    import shlex

    if value is None:
        return None
    try:
        words = shlex.split(value)
    except ValueError as error:
        raise click.BadParameter(f"{value!r}: {error}") from None
    if not words:
        raise click.BadParameter("the command is empty")
    return words


def option(*decls: str, env: str, **kwargs):
    kwargs.setdefault("show_default", True)
    return click.option(*decls, envvar=f"WORKFLOW_{env}", show_envvar=True, **kwargs)


def stack(*decorators):
    def apply(function):
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return apply


cluster_options = stack(
    option("--cluster", env="CLUSTER", help="ECS cluster name, e.g. airflow-prod.", show_default=False),
    option("--scheduler", env="SCHEDULER", help="Scheduler service.", show_default="<cluster>-scheduler"),
    option("--worker", env="WORKER", help="Celery worker service.", show_default="<cluster>-worker"),
    option("--web", env="WEB", help="Web server service: the api-server (Airflow 3) or webserver (Airflow 2).",
           show_default="<cluster>-web"),
    option("--service", "services", env="SERVICES", multiple=True, metavar="ROLE=NAME",
           help="The service of a role (scheduler, dag-processor, triggerer, api-server, webserver, worker); "
                "repeatable. Other services get their role from their airflow-role tag, then from their name.",
           show_default="<cluster>-<role>, and <cluster>-worker-<queue> for workers"),
)

aws_options = stack(
    option("--region", env="REGION", help="AWS region.",
           show_default="AWS_REGION, AWS_DEFAULT_REGION, then the profile's region"),
    option("--profile", env="PROFILE", help="AWS profile.", show_default="AWS_PROFILE, then the default chain"),
    option("--endpoint-url", env="ENDPOINT_URL", help="AWS endpoint, e.g. a local sandbox.",
           show_default="AWS_ENDPOINT_URL, then AWS"),
)

wait_tuning_options = stack(
    option("--poll-interval", env="POLL_INTERVAL", type=Seconds(min=0.1), default=1.0,
           help="Seconds between polls while waiting (about one read call each); inside stability windows, "
                "every 5 s or this, if longer."),
    option("--timeout", env="TIMEOUT", type=Seconds(min=1), default=900.0,
           help="Seconds each wait may take before giving up."),
    option("--stability-window", env="STABILITY_WINDOW", type=Seconds(min=0), default=30.0,
           help="Seconds a completed deployment's tasks must keep running before it counts as done."),
    option("--max-failed-tasks", env="MAX_FAILED_TASKS", type=click.IntRange(min=1), default=None,
           show_default="ECS's circuit breaker threshold: its thresholdConfiguration, else max(3, ceil(desired/2)) "
                        "up to 200",
           help="Failed task launches or health checks after which a deployment counts as failed."),
    option("--log-grace", env="LOG_GRACE", type=Seconds(min=0), default=6.0,
           help="Seconds to keep reading a one-off task's log after it stops (initialize, run, redeploy "
                "--migrate), or a crashed service task's before quoting it: the awslogs driver may deliver its "
                "last lines late."),
)

schedulers_option = option(
    "--schedulers", env="SCHEDULERS", type=click.IntRange(min=1), default=None,
    show_default="1, or the count the scheduler had when this tool stopped it",
    help="Scheduler tasks per scheduler service, for Airflow's HA schedulers (Postgres 12+, MySQL 8+): never more, "
         "and never an old one beside a new one.")
lease_option = option("--break-lease", env="BREAK_LEASE", is_flag=True, default=False,
                      help="First remove other operators' leases on the cluster (their commands must have ended).")
yes_option = option("--yes", "-y", env="YES", is_flag=True, default=False, help="Do not ask for confirmation.")
wait_option = option("--wait/--no-wait", env="WAIT", default=True, help="Wait until the cluster has settled.")
task_wait_option = option("--wait/--no-wait", env="WAIT", default=True, help="Wait until the task has stopped.")
output_option = option("--output", "-o", env="OUTPUT", type=click.Choice(["text", "json"]), default="text",
                       help="Result format on stdout.")


def also_after_the_command(group: click.Group, command: click.Command, store) -> None:
    """Let the group's options follow the command name too, as the AWS CLI allows; typed there, they win.

    The command gets a hidden copy of each group option it does not have; `store(ctx, name, value)` records a
    typed value. Adding them again is harmless: options already there are skipped.
    """
    taken = {name for p in command.params for name in p.opts}
    for param in group.params:
        if not isinstance(param, click.Option) or param.is_eager or set(param.opts) & taken:
            continue
        flag = {"is_flag": True, "flag_value": param.flag_value} if param.is_flag else {"type": param.type,
                                                                                        "multiple": param.multiple}
        command.params.append(
            click.Option(
                [param.name or "", *param.opts],
                hidden=True,
                expose_value=False,
                callback=_stored_when_typed(param.name, store),
                **flag,
            )
        )


def _stored_when_typed(name: str, store):
    def callback(ctx: click.Context, param: click.Parameter, value):
        if ctx.get_parameter_source(param.name or name) is ParameterSource.COMMANDLINE:
            store(ctx, name, value)

    return callback
