"""Options declared once and shared: each can come from a WORKFLOW_* variable and shows its default."""

import click
from click.core import ParameterSource

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DAY = UNITS["d"]
FORMS = "seconds (30, 2.5) or a number with a unit: 30s, 15m, 2h, 1d"


class Duration(click.ParamType):
    """A length of time, in seconds: a bare number is seconds; s, m, h or d name another unit (30, 2.5, 30s, 15m,
    2h, 1d). Every duration option takes the same forms. NaN would make every comparison false (a wait would
    never end), and a value beyond `max` overflows the clocks and dates it is added to, so both are refused."""

    name = "duration"

    def __init__(self, min: float = 0, max: float = 7 * DAY):
        self.min, self.max = min, max

    def convert(self, value, param, ctx) -> float:
        import math
        import re

        if isinstance(value, int | float) and not isinstance(value, bool):
            seconds = float(value)
        else:
            match = re.fullmatch(r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?|[-+]?(?:nan|inf|infinity))\s*([smhd]?)\s*",
                                 str(value), re.IGNORECASE)
            if not match:
                self.fail(f"{value!r} is not a duration: give {FORMS}", param, ctx)
            seconds = float(match[1]) * UNITS[(match[2] or "s").lower()]
        if not math.isfinite(seconds):
            self.fail(f"{value!r} is not a finite number of seconds: give {FORMS}", param, ctx)
        if seconds < self.min:
            self.fail(f"{value!r} is too short: at least {_spoken(self.min)}", param, ctx)
        if seconds > self.max:
            self.fail(f"{value!r} is too long: at most {_spoken(self.max)}", param, ctx)
        return seconds


def _spoken(seconds: float) -> str:
    for unit in ("d", "h", "m"):
        if seconds >= UNITS[unit] and seconds % UNITS[unit] == 0:
            return f"{seconds / UNITS[unit]:g}{unit}"
    return f"{seconds:g}s"


Seconds = Duration  # the name the sandbox's options use


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
    # Every option shows its default: Click shows none for an off flag or an option without a value.
    if kwargs.get("is_flag") and not kwargs.get("default") and not any("/" in d for d in decls):
        kwargs.setdefault("show_default", "off")
    elif kwargs.get("default") is None and not kwargs.get("multiple") and not kwargs.get("required"):
        kwargs.setdefault("show_default", "none")
    kwargs.setdefault("show_default", True)
    return click.option(*decls, envvar=f"WORKFLOW_{env}", show_envvar=True, **kwargs)


def stack(*decorators):
    def apply(function):
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return apply


cluster_options = stack(
    option("--cluster", env="CLUSTER", help="ECS cluster name, e.g. airflow-prod.",
           show_default="none: the cluster commands need it"),
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

airflow_options = stack(
    option("--airflow-url", env="AIRFLOW_URL", default=None,
           show_default="the listener of the load balancer in front of the api-server or webserver",
           help="Airflow's API (its api-server, or an Airflow 2 webserver), for Airflow's own view: health, "
                "heartbeats, running task instances. User and password from WORKFLOW_AIRFLOW_USERNAME and "
                "WORKFLOW_AIRFLOW_PASSWORD, or --airflow-credentials-secret."),
    option("--airflow-credentials-secret", env="AIRFLOW_CREDENTIALS_SECRET", default=None, metavar="ARN",
           show_default="WORKFLOW_AIRFLOW_USERNAME and WORKFLOW_AIRFLOW_PASSWORD",
           help="AWS Secrets Manager secret holding {\"username\": ..., \"password\": ...} for Airflow's API."),
)

wait_tuning_options = stack(
    option("--poll-interval", env="POLL_INTERVAL", type=Duration(min=0.1, max=3600), default=1.0,
           help="Seconds between polls while waiting (about one read call each); inside stability windows, "
                "every 5 s or this, if longer."),
    option("--timeout", env="TIMEOUT", type=Duration(min=1), default=900.0,
           help="Seconds each wait may take before giving up, and each AWS call with its retries (15m, 2h: "
                "any duration)."),
    option("--stability-window", env="STABILITY_WINDOW", type=Duration(min=0), default=30.0,
           help="Seconds a completed deployment's tasks must keep running before it counts as done."),
    option("--max-failed-tasks", env="MAX_FAILED_TASKS", type=click.IntRange(min=1), default=None,
           show_default="ECS's circuit breaker threshold: its thresholdConfiguration, else max(3, ceil(desired/2)) "
                        "up to 200",
           help="Failed task launches or health checks after which a deployment counts as failed."),
    option("--log-grace", env="LOG_GRACE", type=Duration(min=0, max=3600), default=6.0,
           help="Seconds to keep reading a one-off task's log after it stops (initialize, run, redeploy "
                "--migrate), or a crashed service task's before quoting it: the awslogs driver may deliver its "
                "last lines late."),
)

schedulers_option = option(
    "--schedulers", env="SCHEDULERS", type=click.IntRange(min=1), default=None,
    show_default="1, or the count the scheduler had when this tool stopped it",
    help="Scheduler tasks per scheduler service, for Airflow's HA schedulers (Postgres 12+, MySQL 8+): never more, "
         "and never an old one beside a new one.")
DEFAULT_DRAIN = 600.0
drain_option = option(
    "--drain-timeout", env="DRAIN_TIMEOUT", type=Duration(min=0), default=DEFAULT_DRAIN,
    help="Once the scheduler has stopped, wait this long at most for Airflow's running task instances to finish "
         "before the workers roll (0: do not wait); at the bound, go on and name the ones interrupted.")
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
