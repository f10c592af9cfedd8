"""Options declared once and shared: each can come from a WORKFLOW_* variable and shows its default."""

import click


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
    option("--web", env="WEB", help="Webserver service.", show_default="<cluster>-web"),
)

aws_options = stack(
    option("--region", env="REGION", help="AWS region.", show_default="AWS_REGION, then the profile's region"),
    option("--profile", env="PROFILE", help="AWS profile.", show_default="AWS_PROFILE, then the default chain"),
    option("--endpoint-url", env="ENDPOINT_URL", help="AWS endpoint, e.g. a local sandbox.",
           show_default="AWS_ENDPOINT_URL, then AWS"),
)

wait_tuning_options = stack(
    option("--poll-interval", env="POLL_INTERVAL", type=click.FloatRange(min=0.1), default=2.0,
           help="Seconds between polls while waiting."),
    option("--timeout", env="TIMEOUT", type=click.FloatRange(min=1), default=900.0,
           help="Seconds each wait may take before giving up."),
)

yes_option = option("--yes", "-y", env="YES", is_flag=True, default=False, help="Do not ask for confirmation.")
wait_option = option("--wait/--no-wait", env="WAIT", default=True, help="Wait until the cluster has settled.")
output_option = option("--output", "-o", env="OUTPUT", type=click.Choice(["text", "json"]), default="text",
                       help="Result format on stdout.")
