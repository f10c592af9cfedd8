"""Clocks for the simulated cluster: a fake one that tests advance, and real time for the sandbox."""

import time
from datetime import UTC, datetime, timedelta


class FakeClock:
    """Time that moves only when somebody sleeps, so waiting costs tests nothing."""

    def __init__(self, start: float = 0.0):
        self._now = start
        self._epoch = datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> None:
        self._now += max(seconds, 0.0)

    def wall(self, at: float) -> datetime:
        return self._epoch + timedelta(seconds=at)


class RealClock:
    """Monotonic seconds for the model, the wall clock for timestamps ECS shows."""

    def __init__(self):
        self._start = time.monotonic()
        self._epoch = datetime.now(UTC)
        self._skipped = 0.0

    def now(self) -> float:
        return time.monotonic() - self._start + self._skipped

    def advance(self, seconds: float) -> None:
        """Jump ahead, as when the sandbox starts with services that have long been steady."""
        self._skipped += seconds

    def sleep(self, seconds: float) -> None:
        time.sleep(max(seconds, 0.0))

    def wall(self, at: float) -> datetime:
        # The skipped time lies in the past: "now" is the real wall clock, not ten minutes ahead of it.
        return self._epoch + timedelta(seconds=at - self._skipped)
