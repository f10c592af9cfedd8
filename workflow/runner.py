"""Runs a command's operation: signals as interrupts, domain errors as exit codes with one clear message (and
one JSON document on stdout with --output json), the cluster's state and the commands that resume or undo."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

import click

from .errors import INTERRUPTED, USAGE, WorkflowError
from .interrupts import Terminated as Terminated  # where the commands find it
from .interrupts import finished, interruption, operation_began, signals_as_interrupts
from .progress import wrap_message
from .recovery import Recovery, shell_lines

if TYPE_CHECKING:  # the context, for annotations only: importing it costs `--help` its speed
    from .app import App


class CommandFailed(click.ClickException):
    def __init__(self, message: str, exit_code: int, documented: bool = False):
        super().__init__(wrap_message(message))  # as click prints it, after "Error: "
        self.plain = message  # unwrapped, for a JSON document
        self.exit_code = exit_code  # type: ignore[misc]  # per failure
        self.documented = documented  # its JSON document is on stdout already

    @classmethod
    def of(cls, error: WorkflowError) -> CommandFailed:
        return cls(str(error), error.exit_code)


def silence_stdout() -> None:
    """Once stdout's reader has gone (`| head`), point it at /dev/null: Python's flush at exit must not fail."""
    import os

    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # io.UnsupportedOperation is both
        pass


def run(app: App, resume: str | None, operation: Callable[[], Any]) -> Any:
    """Run one operation; its result goes to stdout, expected failures become one clear message.

    `resume` names the command that continues safely after a failure, when re-running one does.
    """
    output = app.options["output"]
    operation_began.set(True)
    returned, outcome = False, None
    try:
        with signals_as_interrupts():
            try:
                outcome, returned = operation(), True
            finally:
                if not returned:
                    app.release_leases()
    except WorkflowError as error:
        if error.refusal and not app.changed:  # the state the cluster is in is not this command's to recover
            app.recovery = Recovery()
        _failed(app, str(error), error.exit_code, resume, getattr(error, "result", None))
    except KeyboardInterrupt as interrupt:
        if not returned:
            name, code = interruption(interrupt)
            if not app.changed and app.recovery.state is None:  # no lease was taken: no change was begun
                name += "; nothing was changed"
            _failed(app, name, code, resume, None)
    # The operation is done: a signal from here on cannot undo it, and must not make a success exit as
    # interrupted. The result first; then the leases, which a signal may cut short (they expire on their own).
    with finished() as came:
        _print(outcome, output)
    if came:
        click.echo(f"{came[0]} came as the command finished: the result above stands", err=True)
    try:
        with signals_as_interrupts():
            app.release_leases()
    except KeyboardInterrupt as interrupt:
        click.echo(f"{interruption(interrupt)[0]} while the lease was released: the result above stands, and the "
                   "lease expires on its own", err=True)
    return outcome


def _print(outcome, output: str) -> None:
    from . import render

    try:
        click.echo(render.result(outcome, output))
    except BrokenPipeError:
        silence_stdout()  # whoever reads stdout has gone: the operation succeeded, and that is the exit status


class ReaderGone(Exception):
    """Whoever read stdout has gone (`| head`): stop quietly."""


def echo(text: str) -> None:
    """A line of a streamed result on stdout."""
    try:
        click.echo(text)
    except BrokenPipeError:
        raise ReaderGone from None


def stream(app: App, operation: Callable[[], None]) -> None:
    """Like `run`, for a command whose result is the lines it prints as it goes (`echo`)."""
    operation_began.set(True)
    try:
        with signals_as_interrupts():
            operation()
    except ReaderGone:
        silence_stdout()
    except WorkflowError as error:
        _failed(app, str(error), error.exit_code, None, None)
    except KeyboardInterrupt as interrupt:
        _failed(app, *interruption(interrupt), None, None)


def _failed(app: App, message: str, code: int, resume: str | None, result) -> NoReturn:
    """Say why on stderr; with JSON output, stdout still gets one document, with the error in it."""
    from . import render

    recovery = app.recovery
    resume = _resume(app, resume)
    documented = app.options["output"] == "json"
    if documented:
        click.echo(error_document(
            message, code, cluster_state=recovery.state,
            resume=shlex.join(app.resume_words(resume)) if resume else None,
            resume_when=recovery.resume_when if resume else None,
            alternatives=[shlex.join(app.resume_words(command)) for _, command in _alternatives(app, resume)],
            next_steps=[{"purpose": s.purpose, "command": s.command} for s in recovery.next_steps],
            result=result))
    elif result is not None:
        click.echo(render.result(result, "text"))
    raise CommandFailed(_explain(app, message, resume, failed=code != INTERRUPTED and code < 128), code,
                        documented) from None


def error_document(message: str, code: int, cluster_state: str | None = None, resume: str | None = None,
                   resume_when: str | None = None, alternatives: list[str] | None = None,
                   next_steps: list[dict] | None = None, result=None) -> str:
    """A failure as the one JSON document `--output json` promises on stdout, whatever failed."""
    from . import render

    return render.to_json({"error": message, "exit_code": code, "cluster_state": cluster_state, "resume": resume,
                           "resume_when": resume_when, "alternatives": alternatives or [],
                           "next_steps": next_steps or [], "result": result})


def wants_json(words: list[str]) -> bool:
    """Whether the command line (or WORKFLOW_OUTPUT) asks for JSON: read from the words themselves, for a failure
    that comes before or while Click parses them."""
    import os

    chosen = os.environ.get("WORKFLOW_OUTPUT")
    for at, word in enumerate(words):
        if word == "--":
            break
        if word in ("-o", "--output") and at + 1 < len(words):
            chosen = words[at + 1]
        elif word.startswith("--output="):
            chosen = word.split("=", 1)[1]
        elif word.startswith("-o") and not word.startswith("--") and len(word) > 2:
            chosen = word[2:]
    return chosen == "json"


def _resume(app: App, command: str | None) -> str | None:
    """The command that resumes, when one does now: some state to resume from, and nothing still under way."""
    recovery = app.recovery
    resume = recovery.resume(command)
    return resume if resume and recovery.state and recovery.resumable else None


def _alternatives(app: App, resume: str | None) -> list[tuple[str, str]]:
    """The other ways out, less the resumed command itself: a failed rollback's "go back a release" would only
    finish the same rollback (its record says where it goes), as its resume does."""
    resumed = resume.split()[0] if resume else None
    return [(purpose, command) for purpose, command in app.recovery.alternatives if command.split()[0] != resumed]


def _explain(app: App, message: str, resume: str | None, failed: bool = True) -> str:
    recovery = app.recovery
    resume = _resume(app, resume)
    if recovery.state is not None:
        message += f"\n  cluster state: {recovery.state}"
        for step in recovery.next_steps:
            message += "\n  " + step.lines().replace("\n", "\n  ")
        if resume:
            when = "once the cause is fixed, resume with" if failed else "resume with"
            if recovery.resume_when:
                when = f"{recovery.resume_when}, resume with"
            message += f"\n  {when}:\n{resume_command(app, resume)}"
        for purpose, command in _alternatives(app, resume):
            message += f"\n  or, {purpose}:\n{resume_command(app, command)}"
    return message


def resume_command(app: App, command: str) -> str:
    """The exact command that picks up where an interrupted or failed one stopped, as the shell takes it."""
    return shell_lines(app.resume_words(command))


def confirm(yes: bool, question: str, where: Callable[[], str] | None = None) -> None:
    """Ask before a change, naming where it lands; `where` also validates the names first (it may fail).

    A refusal, however it comes (no, Ctrl-C, end of input), says that nothing was changed. Without a terminal
    and with nothing to read, the question cannot be answered: one line says to pass --yes (exit 2)."""
    if yes:
        return
    if where is not None:
        try:
            question = f"{question.rstrip('?')} ({where()})?"
        except WorkflowError as error:
            raise CommandFailed.of(error) from None
    from .progress import width_of

    # Its last paragraph wrapped, leaving room for the " [y/N]: " click adds; a table above it is fitted already,
    # and a sentence above it (a warning) that is too long is wrapped too.
    width = width_of()
    *above, asked = question.split("\n")
    above = [wrap_message(line, width, prefix=0) if len(line) > width and "  " not in line.strip() else line
             for line in above]
    question = "\n".join([*above, wrap_message(asked, width - len(" [y/N]: "), prefix=0)])
    try:
        agreed = click.confirm(question, default=False, err=True)
    except click.Abort:
        click.echo(err=True)  # the prompt's line was left open
        if sys.stdin.isatty():
            raise CommandFailed("Aborted: nothing was changed", 1) from None
        raise CommandFailed("this command asks for confirmation and there is no terminal to answer it; nothing was "
                            "changed: pass --yes (or set WORKFLOW_YES=1)", USAGE) from None
    if not agreed:
        raise CommandFailed("Aborted: nothing was changed", 1)
