import pytest

from workflow.errors import WaitTimedOut
from workflow.poller import Poller
from workflow.sandbox.clock import FakeClock


def test_returns_the_first_truthy_result_without_sleeping_after_it():
    clock = FakeClock()
    answers = iter([None, None, "done"])
    assert Poller(clock.now, clock.sleep, 2, 60).until(lambda: next(answers), str) == "done"
    assert clock.now() == 4


def test_times_out_saying_what_is_pending_and_never_sleeps_past_the_deadline():
    clock = FakeClock()
    with pytest.raises(WaitTimedOut, match="timed out after 5s waiting for the thing"):
        Poller(clock.now, clock.sleep, 2, 5).until(lambda: None, lambda: "the thing")
    assert clock.now() == 5


def test_a_check_that_raises_fails_at_once():
    clock = FakeClock()

    def check():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        Poller(clock.now, clock.sleep, 2, 60).until(check, str)
    assert clock.now() == 0
