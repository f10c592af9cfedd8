"""The one place that waits: poll a check until it passes, fails, or the timeout runs out."""

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

from .errors import Throttled, Transient, WaitTimedOut

T = TypeVar("T")
BACKOFF_CAP = 30.0
HEARTBEAT_SECONDS = 15.0  # a long wait prints at this rhythm, so it never looks hung


class Wait:
    """The wait under way: its deadline, which bounds each call made inside it (workflow/aws.py reads it), and
    what AWS answered those calls, so a timeout can say that throttling is what held it."""

    def __init__(self, clock: Callable[[], float], deadline: float):
        self.clock, self.deadline = clock, deadline
        self.requests = self.throttled = 0

    def remaining(self) -> float:
        return self.deadline - self.clock()

    def answered(self, throttled: bool) -> None:
        """One request's answer (each attempt botocore makes counts)."""
        self.requests += 1
        self.throttled += throttled

    def throttling(self) -> str:
        if not self.throttled:
            return ""
        share = "every one" if self.throttled == self.requests else str(self.throttled)
        return (f"; AWS throttled {share} of the {self.requests} requests made while waiting: its rate limits are "
                "shared per account and Region (console, Terraform, autoscaling)")


_current: ContextVar[Wait | None] = ContextVar("workflow_wait", default=None)


def current_wait() -> Wait | None:
    """The wait under way in this thread, if any."""
    return _current.get()


_outlook: ContextVar[Callable[[], str] | None] = ContextVar("workflow_outlook", default=None)


@contextmanager
def outlook(ahead: Callable[[], str]) -> Iterator[None]:
    """What is still to come once the waits inside are over (a redeploy's remaining steps and their usual length),
    which a long wait's heartbeat adds to what it awaits: the operator sees what is left, not only the deadline."""
    token = _outlook.set(ahead)
    try:
        yield
    finally:
        _outlook.reset(token)


def duration(seconds: float) -> str:
    """A duration as an operator reads it: 45s, 14m05s, 1h02m."""
    if not math.isfinite(seconds):
        return "no end"
    whole = int(round(max(seconds, 0.0)))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class Poller:
    def __init__(
        self,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        interval: float,
        timeout: float,
        notice: Callable[[str], None] = lambda _: None,
    ):
        self.clock, self.sleep = clock, sleep
        self.interval, self.timeout = interval, timeout
        self.notice = notice

    def until(
        self, check: Callable[[], T | None], pending: Callable[[], str],
        pace: Callable[[float], float] = lambda interval: interval,
    ) -> T:
        """Call `check` every interval until it returns something truthy; a check raises to fail fast.

        `pace` turns the interval into the delay before the next poll: shorter while the awaited transition
        is imminent, longer while nothing can be awaited before a known moment.

        A transient AWS error (throttling, 5xx, a broken connection) means "still pending": the next try
        backs off exponentially, and only the deadline ends the wait. `pending` says, on timeout, what was
        still outstanding.
        """
        began = self.clock()
        deadline, beat = began + self.timeout, began + HEARTBEAT_SECONDS
        wait = Wait(self.clock, deadline)
        token = _current.set(wait)
        try:
            return self._poll(wait, began, beat, check, pending, pace)
        finally:
            _current.reset(token)

    def _poll(self, wait: Wait, began: float, beat: float, check: Callable[[], T | None], pending: Callable[[], str],
              pace: Callable[[float], float]) -> T:
        failures = 0
        last_error: Transient | None = None
        while True:
            counted = wait.requests
            try:
                result = check()
            except Transient as error:
                if wait.requests == counted:  # no client reported its answers (a client built elsewhere)
                    wait.answered(isinstance(error, Throttled))
                failures, last_error = failures + 1, error
                delay = min(self.interval * 2**failures, BACKOFF_CAP)
            else:
                if wait.requests == counted:
                    wait.answered(False)
                if result:
                    return result
                failures, delay = 0, pace(self.interval)
            remaining = wait.remaining()
            if remaining <= 0:
                cause = f" (last AWS error: {last_error})" if failures else ""
                raise WaitTimedOut(f"timed out after {self.timeout:g}s waiting for {pending()}{cause}{wait.throttling()}")
            if failures:
                self.notice(f"{last_error}; still waiting, next try in {min(delay, remaining):.0f}s")
            elif self.clock() >= beat:
                now = self.clock()
                beat = now + HEARTBEAT_SECONDS
                ahead = _outlook.get()
                bound = f", gives up in {duration(remaining)}" if math.isfinite(remaining) else ""
                self.notice(f"waiting for {pending()}: {duration(now - began)} so far{bound}"
                            + (f"; then {ahead()}" if ahead else ""))
            self.sleep(min(delay, remaining))
