"""The one place that waits: poll a check until it passes, fails, or the timeout runs out."""

from collections.abc import Callable
from typing import TypeVar

from .errors import WaitTimedOut

T = TypeVar("T")


class Poller:
    def __init__(self, clock: Callable[[], float], sleep: Callable[[float], None], interval: float, timeout: float):
        self.clock, self.sleep = clock, sleep
        self.interval, self.timeout = interval, timeout

    def until(self, check: Callable[[], T], pending: Callable[[], str]) -> T:
        """Call `check` every interval until it returns something truthy; a check raises to fail fast.

        `pending` says, on timeout, what was still outstanding.
        """
        deadline = self.clock() + self.timeout
        while True:
            result = check()
            if result:
                return result
            remaining = deadline - self.clock()
            if remaining <= 0:
                raise WaitTimedOut(f"timed out after {self.timeout:g}s waiting for {pending()}")
            self.sleep(min(self.interval, remaining))
