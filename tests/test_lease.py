"""The operator lease: another operator's live command is named and nothing is changed."""

from datetime import UTC, datetime, timedelta

import pytest
from conftest import CLUSTER, NAMES, SCHEDULER, WEB
from helpers import cluster_arn, describe, hold

from workflow.ecs import Ecs
from workflow.lease import TAG_PREFIX, Holder, Lease, LeaseHeld
from workflow.progress import Reporter


def tags(ecs):
    return {t["key"]: t["value"] for t in ecs.list_tags_for_resource(resourceArn=cluster_arn(ecs))["tags"]}


def desired(ecs):
    return describe(ecs, SCHEDULER)["desiredCount"]


def lease(ecs, clock, owner):
    return Lease(Ecs(ecs, CLUSTER), owner, "redeploy", 600, lambda: datetime.now(UTC), Reporter(clock.now, write=print))


def test_a_live_lease_of_another_operator_refuses_naming_it_and_changes_nothing(cluster, run, ecs, clock):
    hold(ecs, clock)
    result = run(*NAMES, "stop-scheduler", "--yes")
    assert result.exit_code == 4, result.output
    assert "held by alice@bastion (redeploy) since" in result.stderr
    assert "--break-lease" in result.stderr
    assert desired(ecs) == 1


def test_a_start_while_another_operators_command_holds_the_cluster_is_refused_before_waiting(cluster, run, ecs, clock):
    """The scheduler was just scaled to zero and its task still runs: under another operator's lease, a start is
    refused at once, not after waiting on that task (which may be the other command's new scheduler)."""
    ecs.update_service(cluster=CLUSTER, service=SCHEDULER, desiredCount=0)
    hold(ecs, clock, command="start-scheduler")
    result = run(*NAMES, "start-scheduler")
    assert result.exit_code == 4, result.output
    assert "waiting for scheduler tasks to stop" not in result.stderr
    assert desired(ecs) == 0


def test_break_lease_removes_a_crashed_holder_and_proceeds(cluster, run, ecs, clock):
    hold(ecs, clock)
    result = run(*NAMES, "--break-lease", "stop-scheduler", "--yes")
    assert result.exit_code == 0, result.output
    assert "broke the lease of alice@bastion" in result.stderr
    assert desired(ecs) == 0
    assert tags(ecs) == {}


def test_an_expired_lease_does_not_block(cluster, run, ecs, clock):
    hold(ecs, clock, minutes=-1)
    assert run(*NAMES, "stop-scheduler", "--yes").exit_code == 0


def test_the_lease_is_visible_while_the_command_runs_and_gone_after(cluster, ecs, clock, sim):
    from click.testing import CliRunner

    from workflow.app import Runtime
    from workflow.cli import main

    seen = []

    def sleep(seconds):
        seen.append(dict(tags(ecs)))
        clock.sleep(seconds)

    result = CliRunner().invoke(main, [*NAMES, "stop-scheduler", "--yes"], obj=Runtime(clock=clock.now, sleep=sleep))
    assert result.exit_code == 0, result.output
    (value,) = seen[0].values()
    assert "command=stop-scheduler" in value
    assert "owner=" in value
    assert tags(ecs) == {}


def test_a_lease_broken_mid_command_stops_it_before_its_next_change(cluster, ecs, clock, sim):
    from click.testing import CliRunner

    from workflow.app import Runtime
    from workflow.cli import main

    def sleep(seconds):
        for key in tags(ecs):  # another operator's --break-lease
            ecs.untag_resource(resourceArn=cluster_arn(ecs), tagKeys=[key])
        clock.sleep(seconds)

    result = CliRunner().invoke(main, [*NAMES, "redeploy", "--yes"], obj=Runtime(clock=clock.now, sleep=sleep))
    assert result.exit_code == 4, result.output
    assert "lease on cluster airflow-prod was broken" in result.stderr
    assert len(describe(ecs, WEB)["deployments"]) == 1  # web was never force-deployed


def test_two_operators_taking_the_lease_at_once_never_both_hold_it(cluster, ecs, clock):
    first, second = lease(ecs, clock, "alice"), lease(ecs, clock, "bob")
    # Both write before either reads: the first to look withdraws; the other then finds itself alone.
    for each in (first, second):
        each.place.tag([each.me.tag])
        each.held = True
    outcomes = []
    for each in (first, second):
        try:
            each.check(just_taken=True)
            outcomes.append("holds")
        except LeaseHeld as refused:
            outcomes.append("refused")
            said = " ".join(str(refused).split())
            assert "was taken at the same moment by bob" in said and "nothing was changed" in said
            assert "if that one did too, run this command again" in said  # not "wait for it": it may not run
    assert outcomes == ["refused", "holds"]
    assert len([k for k in tags(ecs) if k.startswith(TAG_PREFIX)]) == 1


def test_a_holder_that_passed_its_check_is_never_pushed_out_by_an_earlier_starter(cluster, ecs, clock):
    early, late = lease(ecs, clock, "alice"), lease(ecs, clock, "bob")
    early.me = Holder(early.me.id, "alice", "rollback", early.me.since - timedelta(minutes=1), early.me.expires)
    late.acquire()  # bob takes the lease completely while alice was still at her prompt
    with pytest.raises(LeaseHeld, match="held by bob"):
        early.acquire()
    late.check()  # bob still holds it
    assert late.held
    assert not early.held


def test_a_tag_that_is_not_a_lease_is_ignored():
    assert Holder.parse(TAG_PREFIX + "x", "something else") is None


@pytest.mark.parametrize("owner", ["root@host.example", "me|you@host", "a b"])
def test_lease_tags_are_valid_ecs_tag_values(cluster, ecs, owner):
    now = datetime.now(UTC).replace(microsecond=0)
    holder = Holder("id1", owner, "redeploy", now, now + timedelta(minutes=5))
    ecs.tag_resource(resourceArn=cluster_arn(ecs), tags=[holder.tag])
    parsed = Holder.parse(TAG_PREFIX + "id1", tags(ecs)[TAG_PREFIX + "id1"])
    assert parsed.since == now
    assert parsed.command == "redeploy"


def test_the_module_says_what_the_code_does_when_two_write_at_once(cluster, ecs, clock):
    """Any holder that finds another live lease beside its own withdraws, whoever came first (by `since`)."""
    import workflow.lease

    early, late = lease(ecs, clock, "alice"), lease(ecs, clock, "bob")
    early.me = Holder(early.me.id, "alice", "redeploy", early.me.since - timedelta(minutes=1), early.me.expires)
    for each in (early, late):
        each.place.tag([each.me.tag])
        each.held = True
    with pytest.raises(LeaseHeld, match="held by bob"):
        early.check()  # the earlier one withdraws too: no order by `since` decides
    assert not early.held
    doc = " ".join(workflow.lease.__doc__.split())
    assert "the later one" not in doc
    assert "it withdraws (removes its tag and stops), whoever came first" in doc
