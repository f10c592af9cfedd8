import pytest

from workflow.errors import WaitTimedOut
from workflow.poller import Poller
from workflow_sandbox.clock import FakeClock


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


def test_transient_errors_are_pending_with_backoff_and_a_notice():
    from workflow.errors import Transient

    clock, notices = FakeClock(), []
    answers = iter([Transient("DescribeServices failed: ThrottlingException: Rate exceeded"), Transient("again"), "done"])

    def check():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert Poller(clock.now, clock.sleep, 2, 60, notice=notices.append).until(check, str) == "done"
    assert clock.now() == 4 + 8  # 2 * 2, then 2 * 4
    assert notices[0].startswith("DescribeServices failed: ThrottlingException")
    assert "next try in 4s" in notices[0]


def test_a_wait_that_stays_throttled_times_out_naming_the_last_error():
    from workflow.errors import Transient

    clock = FakeClock()

    def check():
        raise Transient("ListTasks failed: ThrottlingException: Rate exceeded")

    with pytest.raises(WaitTimedOut, match="last AWS error: ListTasks failed: ThrottlingException"):
        Poller(clock.now, clock.sleep, 2, 100).until(check, lambda: "x")
    assert clock.now() == 100


def test_a_long_wait_prints_a_heartbeat_at_a_steady_rhythm():
    clock, notices = FakeClock(), []
    with pytest.raises(WaitTimedOut):
        Poller(clock.now, clock.sleep, 2, 61, notice=notices.append).until(lambda: None, lambda: "the scheduler")
    assert notices == [f"waiting for the scheduler: {t}s so far, gives up in {61 - t}s" for t in (16, 32, 48)]


def test_pace_sets_the_delay_before_each_next_poll():
    clock, polled = FakeClock(), []
    answers = iter([None, None, None, "done"])

    def check():
        polled.append(clock.now())
        return next(answers)

    assert Poller(clock.now, clock.sleep, 2, 60).until(check, str, lambda interval: interval / 2 if clock.now() < 2 else 5)
    assert polled == [0, 1, 2, 7]


def test_a_timeout_names_the_throttling_when_every_check_was_throttled():
    from workflow.errors import Throttled

    clock = FakeClock()

    def check():
        raise Throttled("DescribeTasks failed: ThrottlingException: Rate exceeded", "ThrottlingException")

    with pytest.raises(WaitTimedOut, match="AWS throttled every one of the \\d+ requests made while waiting"):
        Poller(clock.now, clock.sleep, 2, 100).until(check, lambda: "x")


def test_a_timeout_names_the_throttling_botocores_retries_hid():
    """Every call succeeded in the end, after throttled attempts botocore retried: the wait still says why it was
    slow (the clients report each attempt's answer to the wait under way)."""
    from workflow.poller import current_wait

    clock = FakeClock()

    def check():
        wait = current_wait()
        for throttled in (True, True, False):
            wait.answered(throttled)
        clock.sleep(10)  # botocore's backoff between those attempts
        return None

    with pytest.raises(WaitTimedOut) as raised:
        Poller(clock.now, clock.sleep, 2, 60).until(check, lambda: "the scheduler to stop")
    assert "AWS throttled 12 of the 18 requests made while waiting" in str(raised.value)  # six checks at 12 s
    assert current_wait() is None  # outside the wait, calls are bounded by --timeout alone


def test_a_check_sees_how_long_its_wait_has_left():
    from workflow.poller import current_wait

    clock, left = FakeClock(), []

    def check():
        left.append(current_wait().remaining())
        return len(left) == 3

    Poller(clock.now, clock.sleep, 2, 60).until(check, str)
    assert left == [60, 58, 56]
