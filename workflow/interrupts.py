"""SIGTERM and SIGHUP as interrupts, handled like Ctrl-C from the moment a command starts; a signal the shell
already ignores stays ignored (`nohup workflow ... redeploy` survives the terminal's hang-up).

Kept small and free of imports beyond the standard library: the CLI installs these before it loads a command.
"""

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from .errors import INTERRUPTED

# True once an operation that may change the cluster has begun (runner.run / runner.stream); before that an
# interrupt has changed nothing, and says so.
operation_began: ContextVar[bool] = ContextVar("workflow_operation_began", default=False)


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (a CI job's timeout, a dropped SSH session): handled like Ctrl-C, with its own exit code."""

    def __init__(self, signum: int):
        super().__init__()
        self.name = f"interrupted by {signal.Signals(signum).name}"
        self.exit_code = 128 + signum


def interruption(interrupt: KeyboardInterrupt) -> tuple[str, int]:
    """What stopped the command and its exit code: Ctrl-C (130), or the signal `signals_as_interrupts` named."""
    return getattr(interrupt, "name", "interrupted"), getattr(interrupt, "exit_code", INTERRUPTED)


def _terminate(signum: int, _frame) -> None:
    raise Terminated(signum)


@contextmanager
def signals_as_interrupts() -> Iterator[None]:
    """SIGTERM and SIGHUP raise Terminated while inside; the handlers found are put back after. A signal whose
    disposition is SIG_IGN (inherited from `nohup`, or set by a supervisor) is left ignored."""
    with _handled((signal.SIGTERM, signal.SIGHUP), _terminate):
        yield


@contextmanager
def finished() -> Iterator[list[str]]:
    """The operation is done: an interrupt from here on (Ctrl-C, SIGTERM, SIGHUP while its result is printed)
    cannot undo it, and must not make a success exit as interrupted. Yields the names of the signals that came
    meanwhile; a signal already ignored stays ignored."""
    came: list[str] = []
    with _handled((signal.SIGINT, signal.SIGTERM, signal.SIGHUP), lambda signum, _frame: came.append(
            signal.Signals(signum).name)):
        yield came


@contextmanager
def _handled(signals: tuple[signal.Signals, ...], handler) -> Iterator[None]:
    """`handler` for these signals while inside, but for one the process ignores; the handlers found are put back
    after. Signal handlers are the main thread's: elsewhere this changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for sig in signals:
        if signal.getsignal(sig) is not signal.SIG_IGN:
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, found in previous.items():
            signal.signal(sig, signal.SIG_DFL if found is None else found)
