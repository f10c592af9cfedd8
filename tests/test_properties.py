"""Property-based tests: random interleavings of commands, a second operator, interrupts, kills and faults.

Hypothesis draws what happens; tests/properties_world.py holds the worlds (the seed's three services, the Airflow 3
shape, a cluster with ECR releases), how commands run in them and what is watched at every simulated instant.

Interleavings of commands (redeploy, start-scheduler, stop-scheduler, initialize; on Airflow 3 also
`redeploy --migrate`), each run in-process on the simulated cluster. At a drawn poll of a command (its n-th sleep)
things happen meanwhile: an interrupt (Ctrl-C, SIGTERM, SIGHUP), a second operator (scaling the scheduler with
boto3, force-deploying web or the api-server, or running a command of its own to the end, as a nested CLI
invocation), or ECS misbehaving (failed API calls, crashing or flaky tasks, stale reads, invisible tasks).
Whatever happens:

- never two scheduler processes, nor an old and a new one, at any simulated instant;
- every service no command may scale keeps its desired count, at every change (worker and web; on Airflow 3 the
  api-server, the triggerer and both worker queues); the dag-processor, which the upgrade order stops and starts
  with the scheduler, is changed by no other command, and a redeploy that succeeds leaves it at its count;
- on Airflow 3, no component exits with "Database migration required" unless the scenario itself broke the schema
  (a plain redeploy or initialize while latest and the database's schema differ, or somebody force-deploying or
  scaling outside the tool);
- every command exits with a documented code and never with a traceback;
- no lease is left behind;
- once ECS behaves again (and a one-off task an interrupted command left running, as it says, has ended), one
  re-run (`redeploy --yes`; on Airflow 3 `redeploy --migrate --yes`) exits 0 and leaves every service on one
  deployment of the image `latest` names, at its count, one scheduler, and the database at that image's schema.

"Never two scheduler processes" counts scheduler tasks not yet STOPPED, except one whose essential container has
already exited (a crash: ECS starts its replacement while the dead task is still STOPPING, as real ECS does). The
second operator scales the scheduler to 1 only while no scheduler task is alive: scaling up a service whose task
is still stopping makes ECS itself run two (maximumPercent counts only PENDING and RUNNING tasks), which no tool
can prevent.

On a cluster with ECR releases (release 1 < 2 < 3 stamped in airflow-prod, 3 running, candidates in
airflow-stage), with every tag write in ECR watched as it happens (a stamp never moves from one digest to another):

- a rollback killed (SIGKILL: no lease released) at any poll, then re-run as typed (with --break-lease, as the
  lease message advises) converges to the release the first run was asked for, never one release further, and
  leaves nothing that would send the next rollback to the same release again;
- two promotes at once (the second nested at a drawn request of the first to ECR, its "poll": an ECR API call, a
  registry request, a read or write of the repository's lease): no stamp moves, each release keeps its stamp,
  `latest` ends on one of the two;
- a promote during a redeploy is refused while the redeploy holds the repository's lease, and a redeploy that
  succeeds ends on one image;
- a promote whose tag write fails (refused, throttled, 5xx, or applied with its answer lost) moves no tag;
- a stop-scheduler during another operator's redeploy, with and without --break-lease: never a success that the
  other command undoes, never two schedulers.

Defects these properties found are kept at the end of the file, each as its minimal example, so that the fix
stays guarded by a test that names it.

CI runs a small, derandomized number of examples (the file in about 20 s with `-n 2` on 2 cores). A longer,
random run (300 examples a property, half for the Airflow 3 ones: about 10 minutes with `-n 2` on 2 cores):

    HYPOTHESIS_PROFILE=long pipenv run pytest -n 2 tests/test_properties.py
    HYPOTHESIS_PROFILE=long HYPOTHESIS_MAX_EXAMPLES=2000 pipenv run pytest tests/test_properties.py -x
"""

import json
import os
from contextlib import contextmanager

from conftest import SCHEDULER
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from properties_world import (
    AIRFLOW3,
    CANDIDATES,
    RELEASE_STAMPS,
    RELEASES,
    SEED,
    Shape,
    World,
    assert_converged,
    assert_step_invariants,
    converge,
    each_request_of_a_promote,
    failing_tag_write,
    play,
    promote_words,
    say,
    world_of,
)

from workflow.rollback import ROLLBACK_TAG
from workflow.tags import LATEST, STAMP

_COMMON = dict(
    deadline=None,
    database=None,  # nothing written into the checkout; a failure prints its @reproduce_failure blob
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
LONG = int(os.environ.get("HYPOTHESIS_MAX_EXAMPLES", "300"))
PROFILES = {
    # The suite's time budget: a few deterministic examples per property (the file in about 30 s on 2 cores).
    "ci": settings(max_examples=5, derandomize=True, **_COMMON),
    # The documented longer run: random, many examples.
    "long": settings(max_examples=LONG, **_COMMON),
}
PROFILE = PROFILES[os.environ.get("HYPOTHESIS_PROFILE", "ci")]
IN_CI = PROFILE is PROFILES["ci"]


def budget(ci: int, share: float = 1.0) -> settings:
    """`ci` examples in CI; in the long run `share` of HYPOTHESIS_MAX_EXAMPLES (less for the dearest examples)."""
    return settings(PROFILE, max_examples=ci if IN_CI else max(1, round(LONG * share)))


# A property that once found a defect: in CI its minimal example (explicit), in the long run a search around it too.
REGRESSION = settings(PROFILE, phases=[Phase.explicit]) if IN_CI else settings(PROFILE, max_examples=max(1, LONG // 5))

OPERATIONS = ["UpdateService", "DescribeServices", "ListTasks", "DescribeTasks", "RunTask", "TagResource",
              "UntagResource", "ListTagsForResource", "DescribeClusters", "GetLogEvents", "*"]
# How many attempts in a row a fault fails: 1 and 3 are cured by botocore's retries (8 attempts, workflow/aws.py);
# 8 and 12 reach the command. With `after`, each attempt takes effect and only its answer is lost.
RETRIES_OUTLIVED = [1, 3, 8, 12]


# --- what happens meanwhile -------------------------------------------------------------------------


def meanwhile(shape: Shape):
    interrupts = st.tuples(st.just("interrupt"), st.sampled_from(["SIGINT", "SIGTERM", "SIGHUP"]))
    second_operator = st.one_of(
        st.tuples(st.just("scale-scheduler"), st.sampled_from([0, 1])),
        st.just(("deploy-web",)),
        st.tuples(st.just("second-operator-runs"), st.sampled_from(sorted(shape.commands))),
    )
    ecs_faults = st.one_of(
        st.tuples(st.just("fault"), st.sampled_from(OPERATIONS), st.sampled_from(["throttle", "server", "connection"]),
                  st.sampled_from(RETRIES_OUTLIVED), st.booleans()),
        st.tuples(st.just("crash"), st.sampled_from(shape.faulty)),
        st.tuples(st.just("flaky"), st.sampled_from(shape.faulty), st.integers(1, 2)),
        st.tuples(st.just("stale"), st.sampled_from([2.0, 5.0])),
        st.tuples(st.just("missing"), st.sampled_from([2.0, 5.0])),
    )
    return st.one_of(interrupts, second_operator, ecs_faults)


def steps(shape: Shape, most: int = 4):
    # Poll 0 is before the command starts: a fault or a second operator there meets its first calls.
    return st.lists(
        st.tuples(st.sampled_from(sorted(shape.commands)),
                  st.lists(st.tuples(st.integers(0, shape.polls), meanwhile(shape)), max_size=3)),
        min_size=1,
        max_size=most,
    )


# --- the properties: the seed's three services ------------------------------------------------------


@PROFILE
@given(scenario=steps(SEED))
def test_any_interleaving_keeps_one_scheduler_and_the_counts_and_a_rerun_converges(scenario):
    play(SEED, scenario)


@PROFILE
@given(command=st.sampled_from(sorted(SEED.commands)), poll=st.integers(1, SEED.polls),
       how=st.sampled_from(["SIGINT", "SIGTERM", "SIGHUP"]))
def test_an_interrupt_at_any_poll_releases_the_lease_and_a_rerun_converges(command, poll, how):
    interrupted_at_poll(SEED, command, poll, how)


def interrupted_at_poll(shape: Shape, command: str, poll: int, how: str) -> None:
    world = play(shape, [(command, [(poll, ("interrupt", how))])])
    (_, _, result), *_ = world.history
    if world.interrupted:
        assert result.exit_code == {"SIGINT": 130, "SIGTERM": 143, "SIGHUP": 129}[how], result.output


# --- the properties: the Airflow 3 shape ----------------------------------------------------------------


@budget(3, share=0.5)
@given(scenario=steps(AIRFLOW3, most=3))
def test_on_airflow3_any_interleaving_keeps_one_scheduler_the_counts_and_the_schema_and_a_rerun_converges(scenario):
    play(AIRFLOW3, scenario)


@budget(2, share=0.5)
@example(command="redeploy --migrate", poll=8, how="SIGINT")  # its migration keeps running: the re-run waits for it
@given(command=st.sampled_from(sorted(AIRFLOW3.commands)), poll=st.integers(1, AIRFLOW3.polls),
       how=st.sampled_from(["SIGINT", "SIGTERM", "SIGHUP"]))
def test_on_airflow3_an_interrupt_at_any_poll_releases_the_lease_and_a_rerun_converges(command, poll, how):
    interrupted_at_poll(AIRFLOW3, command, poll, how)


# --- the properties: a cluster with ECR releases ----------------------------------------------------------


@contextmanager
def killed_rollback(poll: int, to: str | None):
    """A rollback (to the previous release, or `--to`) killed at its `poll`-th sleep, then run again as typed: first
    as is, then with --break-lease when the dead run's lease is left. Gives the world, the last re-run's result (None
    when the first run ended before that poll: nothing was killed) and the release the rollback was asked for."""
    with world_of(RELEASES) as world:
        v1, v2, _ = world.facts["releases"]
        target = v1 if to else v2
        command = ["rollback", "--yes", *(["--to", to] if to else [])]
        first = world.invoke("rollback", [(poll, ("kill",))], "first:", world.words(command))
        again = None
        if first is not None:
            assert_step_invariants(world, world.results)
            assert first.exit_code == 0, first.output
        else:
            before = world.journal.now()
            again = world.cli(world.words(command))
            world.record("re-run:", "rollback", again)
            if world.lease_tags() and again.exit_code != 0:
                assert world.journal.now() == before, "a refused re-run moved a tag"
                if again.exit_code == 4:
                    assert "--break-lease" in again.stderr, again.output
                    again = world.cli(world.words(command, "--break-lease"))
                    world.record("re-run:", "rollback --break-lease", again)
            assert_step_invariants(world, world.history)
        yield world, again, target


def assert_finished(world: World, target: str) -> None:
    """Nothing left of the rollback: no record of it, no lease, and the next rollback goes one release further."""
    v1 = world.facts["releases"][0]
    assert ROLLBACK_TAG not in world.cluster_tags(), "the rollback is still recorded as under way"
    assert world.lease_tags() == [] and world.repository_lease_tags() == [], "a lease is left"
    after = world.cli(world.words(["--output", "json", "rollback", "--dry-run"]))
    world.record("next:", "rollback --dry-run", after)
    if target == v1:
        assert after.exit_code == 2 and "nothing to roll back to" in after.stderr, after.output
    else:
        assert after.exit_code == 0 and json.loads(after.stdout)["to_digest"] == v1, after.output


@budget(3)
@example(poll=12, to=None)
@given(poll=st.integers(1, 34), to=st.sampled_from([None, RELEASE_STAMPS[0]]))
def test_a_killed_rollback_re_run_converges_to_its_target_never_one_release_further(poll, to):
    """A rollback killed at its `poll`-th sleep (SIGKILL: its lease stays, nothing is said), then the same command
    again: refused by the dead run's lease (exit 4, naming --break-lease, nothing changed), then with --break-lease
    it finishes the rollback the first run began: latest names that release, every service runs it, and no other
    release was ever named by latest or run by a service.

    A rollback killed once every service ran its target (in the scheduler's stability window) is re-run with
    "already runs": its record and lease are left behind, a defect kept below
    (`test_a_rollback_killed_once_every_service_runs_its_target_is_finished_by_its_re_run`)."""
    with killed_rollback(poll, to) as (world, again, target):
        v3 = world.facts["releases"][2]
        assert world.journal.now()[LATEST] == target, "latest does not name the release the rollback was asked for"
        assert set(world.journal.history(LATEST)) <= {target}, f"latest named {world.journal.history(LATEST)}"
        ran = set().union(*world.launched.values())
        assert ran <= {v3, target}, "a service ran a release the rollback was not asked for"
        if again is not None and again.exit_code != 0:
            assert again.exit_code == 2 and "already runs" in again.stderr, again.output
            assert_converged(world, lease=False)
            return
        assert_converged(world)
        assert_finished(world, target)


@budget(8)
@given(point=st.integers(1, 14), second=st.sampled_from(CANDIDATES), via=st.sampled_from(["registry", "ecr-api"]),
       tags=st.sampled_from([(), ("nightly", LATEST)]))
def test_two_promotes_at_once_never_move_a_stamp_and_latest_ends_on_one_of_them(point, second, via, tags):
    """Two operators promote in the same second: c1, and c1 or c2 nested at the first's `point`-th request to ECR
    (an ECR API call or a registry request, on its main thread: the tag checks and writes)."""
    with world_of(RELEASES) as world:
        before = world.journal.now()
        requests = [0]

        def meanwhile():
            requests[0] += 1
            if requests[0] == point:
                world.second_operator(f"promote {second}", promote_words(second, via, *tags))

        with each_request_of_a_promote(meanwhile):
            first = world.cli(promote_words(CANDIDATES[0], via, *tags))
        world.record("first operator:", f"promote {CANDIDATES[0]}", first)
        assert_step_invariants(world, world.history)
        final = world.journal.now()
        promoted = []
        for label, _, result in world.history:
            assert "immutable" not in result.output, f"{label} says immutable of a mutable repository:\n{result.output}"
            if result.exit_code == 0:
                outcome = json.loads(result.stdout)
                promoted.append(outcome["digest"])
                for name in outcome["tags"]:
                    assert final.get(name) == outcome["digest"] or (name == LATEST or not STAMP.fullmatch(name)), (
                        f"{label}: {name} was written for {outcome['digest'][:19]} and names {final.get(name)}")
        stamped = {digest for name, digest in final.items() if STAMP.fullmatch(name)}
        assert {d for n, d in before.items() if STAMP.fullmatch(n)} <= stamped, "an earlier release lost its stamp"
        if not tags:
            assert set(promoted) <= stamped, "a promoted release has no stamp"
        if promoted and LATEST in (tags or (LATEST,)):
            assert final[LATEST] in promoted, "latest names neither promoted image"
        elif not promoted:
            assert final == before, "two failed promotes moved a tag"


@budget(8)
@given(via=st.sampled_from(["registry", "ecr-api"]),
       tags=st.sampled_from([(), ("a", "b"), ("a", LATEST), ("a", "b", LATEST)]), victim=st.integers(0, 2),
       kind=st.sampled_from(["denied", "throttle", "server", "lost"]), times=st.sampled_from([1, 3, 10]))
def test_a_promote_whose_tag_write_fails_moves_no_tag(via, tags, victim, kind, times):
    """One tag write fails `times` times: refused (access denied), throttled, a 5xx, or applied with its answer lost
    (then retried, the retry applied again). A promote that fails leaves every tag as it was; one that succeeds
    moved exactly the tags it names."""
    failed_promote(via, tags, victim, kind, times)


def failed_promote(via: str, tags: tuple, victim: int, kind: str, times: int) -> None:
    with world_of(RELEASES) as world:
        before = world.journal.now()
        with failing_tag_write(world, via, victim, list(tags) if tags else None, kind, times) as failed:
            result = world.cli(promote_words(CANDIDATES[0], via, *tags))
        world.record("promote:", f"{CANDIDATES[0]}, {kind} x{times} on {failed[:1]}", result)
        assert_step_invariants(world, world.history)
        after = world.journal.now()
        moved = {t: after.get(t) for t in set(after) | set(before) if after.get(t) != before.get(t)}
        if result.exit_code != 0:
            assert not moved, f"a failed promote moved {sorted(moved)}"
            return
        outcome = json.loads(result.stdout)
        assert set(outcome["tags"]) >= set(tags)
        assert set(moved) <= set(outcome["tags"]), f"moved {sorted(moved)}, asked {sorted(outcome['tags'])}"
        assert all(after[t] == outcome["digest"] for t in outcome["tags"])


@budget(2)
@example(poll=10, via="ecr-api")
@given(poll=st.integers(0, 45), via=st.sampled_from(["registry", "ecr-api"]))
def test_a_promote_during_a_redeploy_is_refused_and_the_redeploy_ends_on_one_image(poll, via):
    """What the code guarantees (workflow/commands/deploy.py, workflow/commands/promote.py, workflow/lease.py): the
    redeploy holds the lease of the repository whose `latest` its task definitions deploy, from its first change to
    its end, and promote takes that lease before it reads a destination tag. So a promote while the redeploy holds it
    is refused (exit 4, naming the holder) and moves no tag; one before the redeploy's first change succeeds, and the
    redeploy then deploys the promoted image. Either way a redeploy that succeeds leaves every service on the one
    image `latest` names (ECS resolves the tag once per deployment)."""

    def finish(world: World) -> None:
        during, redeploy = world.promote_during, world.history[-1][2]
        if during:
            result = during["result"]
            say(f"the promote met the repository's lease held: {during['lease held']}")
            if during["lease held"]:
                assert result.exit_code == 4 and "held by" in result.stderr, result.output
                assert during["after"] == during["before"], "a refused promote moved a tag"
            else:
                assert result.exit_code == 0, result.output
        if redeploy.exit_code == 0:
            images = set().union(*(world.running_digests(name) for name in world.services()))
            assert images == {world.journal.now()[LATEST]}, f"redeployed onto {len(images)} images"
        converge(world)

    play(RELEASES, [("redeploy", [(poll, ("second-operator-promotes", CANDIDATES[0], via))])], finish)


@budget(2)
@example(poll=10, break_lease=True)
@example(poll=12, break_lease=False)
@given(poll=st.integers(0, 32), break_lease=st.booleans())
def test_a_stop_during_another_operators_redeploy_is_never_a_false_success(poll, break_lease):
    """A second operator runs stop-scheduler (with or without --break-lease) at the redeploy's `poll`-th sleep.

    Without --break-lease, while the redeploy holds the lease, it is refused (exit 4, naming the holder) and changes
    nothing. A stop that says it stopped the scheduler (exit 0) while the redeploy held the lease is not undone: the
    redeploy starts no scheduler after it (its broken lease stops it at its next change), and does not say it
    redeployed. A redeploy that exits 0 leaves the scheduler running.
    """
    stop_during_redeploy(poll, break_lease)


def stop_during_redeploy(poll: int, break_lease: bool) -> None:
    def finish(world: World) -> None:
        stop = world.stop_during
        redeploy = next(r for label, _, r in world.history if label.startswith("step"))
        if stop:
            result = stop["result"]
            say(f"the stop met the lease held: {stop['lease held']}; the scheduler stopping: {stop['stopping']}")
            if stop["lease held"] and not break_lease:
                assert result.exit_code == 4 and "held by" in result.stderr, result.output
                assert stop["launched after"] == stop["launched"]
            if result.exit_code == 0 and stop["lease held"]:
                assert world.scheduler_launches() == stop["launched after"], (
                    "the redeploy started the scheduler again after the stop said it was stopped")
                assert redeploy.exit_code != 0, "the redeploy says it redeployed, with the scheduler stopped"
        if redeploy.exit_code == 0:
            alive = world.sim.alive(SCHEDULER)
            assert world.desired(SCHEDULER) == 1 and len(alive) == 1, "redeployed, but the scheduler is not running"
        converge(world)

    play(RELEASES, [("redeploy", [(poll, ("second-operator-stops", break_lease))])], finish)


# --- defects these properties found, each kept as its minimal example --------------------------------------
# The first two were fixed in dccf6cf, the others with the commit that added their test's "Failed before" note.


@REGRESSION
@example(poll=8)
@given(poll=st.integers(6, 18))
def test_a_scheduler_someone_starts_during_a_redeploys_rollout_is_never_force_deployed(poll):
    """Failed before `operations.redeploy` looked again before starting the scheduler (fixed in dccf6cf).

    The redeploy has stopped the scheduler and waits for web and worker (polls 6 to about 18). Meanwhile
    somebody starts the scheduler outside the lease (console, `terraform apply`, an old script): desired 1
    with nothing alive, so ECS starts one task. The redeploy then starts "its" scheduler without looking
    (`_start_stopped_scheduler(..., alive_checked=True)`): forceNewDeployment with desired 1 on a running
    scheduler, and since maximumPercent counts only PENDING and RUNNING tasks, ECS starts the new task while
    the old one is still DEACTIVATING: two schedulers for about five seconds. Now it refuses (exit 1).
    """
    play(SEED, [("redeploy", [(poll, ("scale-scheduler", 1))])])


@REGRESSION
@example(command="stop-scheduler", kind="server")
@given(command=st.sampled_from(["redeploy", "stop-scheduler", "initialize"]),
       kind=st.sampled_from(["throttle", "server", "connection"]))
def test_a_lease_whose_tag_request_lost_its_answer_is_not_left_behind(command, kind):
    """Failed before `Lease.acquire` counted the lease as held before tagging (fixed in dccf6cf).

    TagResource takes effect but every attempt's answer is lost, so the command fails (exit 1) with its
    lease tag on the cluster and `held` still False: `App.run` releases nothing and says nothing, and every
    later command on the cluster is refused (exit 4) until the lease expires (4 x --timeout + 300 s, an hour
    by default) or somebody passes --break-lease.
    """
    play(SEED, [(command, [(0, ("fault", "TagResource", kind, 8, True))])])


@REGRESSION
@example(poll=28, to=None)
@given(poll=st.integers(26, 30), to=st.sampled_from([None, RELEASE_STAMPS[0]]))
def test_a_rollback_killed_once_every_service_runs_its_target_is_finished_by_its_re_run(poll, to):
    """Failed before the fix named at its end.

    A rollback killed in its scheduler's stability window (poll 26 to 29 here: every service already
    runs the target, latest names it) is re-run as typed: `rollback --yes` "finishes the rollback to ... that an
    earlier run began", finds the cluster already running it, and refuses, exit 2 ("already runs ..., nothing to roll
    back; nothing was changed"), with or without --break-lease. The refusal comes before the lease is taken, so the
    dead run's lease stays (every command on the cluster is refused, exit 4, until it expires or somebody breaks
    it), and the `workflow-rollback` record stays: every later `rollback` again "finishes" the rollback to the same
    release and is refused, so no rollback goes further back until somebody removes the tag by hand (or uses --to).
    Fixed by `rollback.finished`: the re-run that finds every service on its target takes the lease, removes the
    record, answers "finished" (exit 0) and leaves the lease free.
    """
    with killed_rollback(poll, to) as (world, again, target):
        assert again is not None and again.exit_code == 0, again and again.output
        assert_finished(world, target)



@REGRESSION
@example(scenario=[("stop-scheduler", []), ("start-scheduler", [])])
@example(scenario=[("redeploy --migrate", [(5, ("interrupt", "SIGINT"))]), ("start-scheduler", [])])
@given(scenario=st.tuples(
    st.sampled_from([("stop-scheduler", []), ("redeploy --migrate", [(5, ("interrupt", "SIGINT"))])]),
    st.just(("start-scheduler", []))).map(list))
def test_start_scheduler_never_starts_an_image_the_schema_does_not_fit(scenario):
    """Failed before the fix named at its end.

    On Airflow 3 with a new release promoted (latest on Airflow 3.3.2, the database at 3.2.2's schema,
    every component running 3.2.2): `stop-scheduler` then `start-scheduler`, or `start-scheduler` after a
    `redeploy --migrate` interrupted before its migration (the way out the interrupted redeploy and README offer, "to
    schedule on the old workers" / "restore scheduling on the old image"), start a deployment that resolves `latest`:
    the scheduler starts on 3.3.2, exits 1 with "Database migration required", and ECS keeps replacing it (exit 1,
    "no old task is left"). The cluster had a working scheduler on the old image and is left with none.
    Fixed by `operations.unfit_start`: start-scheduler refuses (exit 2) an image the recorded schema does not fit,
    naming both, before it changes anything.
    """
    play(AIRFLOW3, scenario)


@REGRESSION
@example(via="registry", tags=(), victim=1, kind="lost", times=10)
@given(via=st.just("registry"), tags=st.sampled_from([(), ("a", "b"), ("a", LATEST)]), victim=st.integers(0, 2),
       kind=st.just("lost"), times=st.just(10))
def test_a_promote_whose_last_write_lost_its_answer_moves_no_tag(via, tags, victim, kind, times):
    """Failed before the fix named at its end.

    Through the registry API, PUT of the manifest as `latest` is applied and its answer lost (a 500
    after the write, a dropped connection) on every attempt: the promote fails (exit 1, "every tag this promote had
    moved was put back (<stamp> removed)") and `latest` names the new image. `_write_tags` puts back only the tags
    whose writes answered; a write that failed may have been applied. The ECR API path reads the tag back after a
    failed PutImage and passes. Fixed by `promote._write_tags`: a failed write is read back, and put back if it was
    applied.
    """
    failed_promote(via, tags, victim, kind, times)


@REGRESSION
@example(poll=3, break_lease=False)
@example(poll=3, break_lease=True)
@given(poll=st.integers(1, 7), break_lease=st.booleans())
def test_a_stop_while_a_redeploy_stops_the_scheduler_is_no_false_success(poll, break_lease):
    """Failed before the fix named at its end.

    The redeploy has set the scheduler's desired count to 0 and waits for its task to stop (polls 1 to
    about 7). A second operator's `stop-scheduler` (with or without --break-lease) finds desired 0 with a task
    still stopping: `scale_to_zero` skips the service, so `before_change` is never called, the lease is neither
    checked nor broken, and the stop waits for the task and answers "scheduler ... stopped", exit 0, without a word
    about the redeploy. The redeploy goes on and starts the scheduler about 17 s later (issue 21, item 7, in the
    window the "already stopped" fix does not cover). Fixed by `operations.stop_scheduler`: its stop phase always
    calls `before_change`, so the lease is checked (exit 4) or broken, and a broken one stops the redeploy.
    """
    stop_during_redeploy(poll, break_lease)

