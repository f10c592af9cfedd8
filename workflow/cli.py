"""The `workflow` command group: its global options, and where each command lives (imported when it runs)."""

import importlib

import click

from . import __version__
from .options import (
    airflow_options,
    also_after_the_command,
    aws_options,
    cluster_options,
    lease_option,
    output_option,
    wait_tuning_options,
)

# name -> (module:function, one-line help shown by `workflow --help` without importing the module)
COMMANDS = {
    "initialize": ("workflow.commands.deploy:initialize", "Initialize the Airflow database in a one-off task."),
    "redeploy": ("workflow.commands.deploy:redeploy", "Stop the scheduler, roll web and worker, start the scheduler."),
    "stop-scheduler": ("workflow.commands.scheduler:stop_scheduler",
                       "Scale the scheduler to zero and wait until its tasks stop."),
    "start-scheduler": ("workflow.commands.scheduler:start_scheduler",
                        "Start exactly one scheduler, once no other scheduler task is alive."),
    "status": ("workflow.commands.status:status", "Show what runs, and what needs attention."),
    "logs": ("workflow.commands.logs:logs", "Print a service's CloudWatch Logs lines, interleaved by time."),
    "run": ("workflow.commands.run:run", "Run any command in a one-off task, as initialize runs the migration."),
    "promote": ("workflow.commands.promote:promote", "Publish an image to another repository, copying only missing blobs."),
    "releases": ("workflow.commands.releases:releases", "List the releases in the production repository, newest first."),
    "rollback": ("workflow.commands.releases:rollback", "Point latest at the previous release, then redeploy onto it."),
    "iam-policy": ("workflow.commands.iam:iam_policy", "Print the least-privilege IAM policy for the commands, as JSON."),
}
TYPED = "workflow.typed"  # ctx.meta: the words the command line gave, as typed
# Commands other distributions add by entry point (the sandbox, from workflow_sandbox): the product imports none of
# their code. Those listed here show in `workflow --help` without reading every installed distribution's metadata.
PLUGINS = "workflow.commands"
OPTIONAL = {
    "sandbox": ("the sandbox extra: `pipenv install --dev` in a checkout, or pip install '.[sandbox]'",
                "Run a local cluster to rehearse on, until Ctrl-C."),
}


def _store(ctx: click.Context, name: str, value) -> None:
    """A global option typed after the command name: it wins over the one typed before."""
    from .app import App

    app = ctx.find_object(App)
    if app is not None:
        app.options[name] = value
        app.given.add(name)


class Commands(click.Group):
    """Each command's module is imported only when that command runs, so `--help` and completion stay quick."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*COMMANDS, *OPTIONAL]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in COMMANDS:
            path = COMMANDS[name][0]
        elif name in OPTIONAL or name in _plugins():
            path = _plugins().get(name, "")
            if not path:
                return _missing(name)
        else:
            return None
        module, _, attribute = path.partition(":")
        command = getattr(importlib.import_module(module), attribute)
        also_after_the_command(self, command, _store)
        return command

    def main(self, *args, **kwargs):
        """SIGTERM and SIGHUP are interrupts from here on, before the command and boto3 load (a second or so)."""
        from .interrupts import operation_began, signals_as_interrupts

        began = operation_began.set(False)
        try:
            with signals_as_interrupts():
                return super().main(*args, **kwargs)
        finally:
            operation_began.reset(began)

    def make_context(self, info_name, args, parent=None, **extra) -> click.Context:
        typed = list(args)
        try:
            ctx = super().make_context(info_name, args, parent, **extra)
        except KeyboardInterrupt as interrupt:
            raise _interrupted(interrupt) from None
        except click.ClickException as error:
            raise _reported(error, typed) from None
        ctx.meta[TYPED] = typed
        return ctx

    def invoke(self, ctx: click.Context):
        """A domain error raised while a command prepares (finding its services, say) ends it as the runner would;
        so does an interrupt before its operation began, which has changed nothing."""
        from .errors import WorkflowError

        try:
            try:
                return super().invoke(ctx)
            except WorkflowError as error:
                from .runner import CommandFailed

                raise CommandFailed.of(error) from None
            except KeyboardInterrupt as interrupt:
                raise _interrupted(interrupt) from None
        except click.ClickException as error:
            raise _reported(error, ctx.meta.get(TYPED, [])) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help) for name, (_, help) in (*COMMANDS.items(), *OPTIONAL.items())]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _reported(error: click.ClickException, typed: list[str]) -> click.ClickException:
    """A failure Click is about to print: with `--output json`, its document first, on stdout (one per command,
    also for a usage error); a usage error's message wrapped to the terminal, as every other message is."""
    from .progress import wrap_message
    from .runner import CommandFailed, error_document, wants_json

    if wants_json(typed) and not getattr(error, "documented", False):
        click.echo(error_document(getattr(error, "plain", None) or error.format_message(), error.exit_code))
        if isinstance(error, CommandFailed):
            error.documented = True
    if isinstance(error, click.UsageError) and not isinstance(error, CommandFailed):
        return click.UsageError(wrap_message(error.format_message()), error.ctx)
    return error


def _interrupted(interrupt: KeyboardInterrupt) -> click.ClickException:
    from .interrupts import interruption, operation_began
    from .runner import CommandFailed

    name, code = interruption(interrupt)
    if operation_began.get():  # the runner said what the cluster's state is; this interrupt came after
        return CommandFailed(name, code)
    return CommandFailed(f"{name}; nothing was changed", code)


def _missing(name: str) -> click.Command:
    """An optional command whose distribution is not installed: it says how to install it."""
    where, help = OPTIONAL[name]

    def explain() -> None:
        raise click.UsageError(f"`workflow {name}` comes with {where}")

    return click.Command(name, callback=explain, help=help, add_help_option=False,
                         context_settings={"ignore_unknown_options": True, "allow_extra_args": True})


def _plugins() -> dict[str, str]:
    if not hasattr(_plugins, "found"):
        from importlib.metadata import entry_points

        _plugins.found = {e.name: e.value for e in entry_points(group=PLUGINS) if e.name not in COMMANDS}  # type: ignore[attr-defined]
    return _plugins.found  # type: ignore[attr-defined]


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@cluster_options
@aws_options
@airflow_options
@wait_tuning_options
@output_option
@lease_option
@click.version_option(__version__, prog_name="workflow")
@click.pass_context
def main(ctx: click.Context, **options) -> None:
    """Operate an Apache Airflow cluster on AWS ECS Fargate.

    \b
    Example:
      workflow --cluster airflow-prod --scheduler airflow-prod-scheduler \\
        --worker airflow-prod-worker --web airflow-prod-web initialize

    Global options may also follow the command name.
    """
    from click.core import ParameterSource

    from .app import App, Runtime

    runtime = ctx.obj if isinstance(ctx.obj, Runtime) else Runtime()
    typed = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    ctx.obj = App(runtime, options, given={name for name in options if ctx.get_parameter_source(name) in typed})
