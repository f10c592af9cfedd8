"""Property-based tests: random interleavings of commands, a second operator, interrupts and ECS faults.

Hypothesis draws a short sequence of commands (redeploy, start-scheduler, stop-scheduler, initialize),
each run in-process on the simulated cluster. At a drawn poll of a command (its n-th sleep) things happen
meanwhile: an interrupt (Ctrl-C, SIGTERM, SIGHUP), a second operator (scaling the scheduler with boto3,
force-deploying web, or running a command of its own to the end, as a nested CLI invocation), or ECS
misbehaving (failed API calls, crashing or flaky tasks, stale reads, invisible tasks). Whatever happens:

- never two scheduler processes, at any simulated instant;
- worker and web keep their desired counts (3 and 1): nobody here changes them;
- every command exits with a documented code and never with a traceback;
- no lease is left behind;
- once ECS behaves again, one `redeploy --yes` exits 0 and leaves one scheduler, three workers, one web
  server, each service on one deployment (a re-run converges).

"Never two scheduler processes" counts scheduler tasks not yet STOPPED, except one whose essential
container has already exited (a crash: ECS starts its replacement while the dead task is still STOPPING,
as real ECS does; no scheduler process runs in it). The second operator scales the scheduler to 1 only
while no scheduler task is alive: scaling up a service whose task is still stopping makes ECS itself run
two (maximumPercent counts only PENDING and RUNNING tasks), which no tool can prevent.

CI runs a small, derandomized number of examples. A longer, random run:

    HYPOTHESIS_PROFILE=long pipenv run pytest tests/test_properties.py
    HYPOTHESIS_PROFILE=long HYPOTHESIS_MAX_EXAMPLES=2000 pipenv run pytest tests/test_properties.py -x
"""

import os
import signal
from dataclasses import dataclass, field

import snapshots
from click.testing import CliRunner
from conftest import CLUSTER, NAMES, REGION, SCHEDULER, WEB, WORKER, shared_client
from hypothesis import HealthCheck, Phase, example, given, note, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from moto import mock_aws

from workflow.app import Runtime
from workflow.aws import Clients
from workflow.cli import main
from workflow.lease import TAG_PREFIX
from workflow.runner import Terminated
from workflow_sandbox.clock import FakeClock
from workflow_sandbox.faults import Faults
from workflow_sandbox.hooks import simulated_ecs
from workflow_sandbox.provision import DEFAULT_COUNTS, provision_cluster
from workflow_sandbox.simulator import Simulation, Timings

_COMMON = dict(
    deadline=None,
    database=None,  # nothing written into the checkout; a failure prints its @reproduce_failure blob
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
PROFILES = {
    # The suite's time budget: a few deterministic examples per property (about 20 s for the file on 2 cores).
    "ci": settings(max_examples=6, derandomize=True, **_COMMON),
    # The documented longer run: random, many examples.
    "long": settings(max_examples=int(os.environ.get("HYPOTHESIS_MAX_EXAMPLES", "300")), **_COMMON),
}
PROFILE = PROFILES[os.environ.get("HYPOTHESIS_PROFILE", "ci")]
# A found defect's property: in CI only its minimal example (explicit), in the long run a search around it too.
DEFECT = settings(PROFILE, phases=[Phase.explicit]) if PROFILE is PROFILES["ci"] else PROFILE

OPTIONS = ["--poll-interval", "1", "--stability-window", "2", "--timeout", "120"]
COMMANDS = {
    "redeploy": ["redeploy", "--yes"],
    "start-scheduler": ["start-scheduler"],
    "stop-scheduler": ["stop-scheduler", "--yes"],
    "initialize": ["initialize", "--yes"],
}
EXIT_CODES = {0, 1, 2, 3, 4, 130, 128 + signal.SIGTERM, 128 + signal.SIGHUP}
COUNTS = {WORKER: 3, WEB: 1}
OPERATIONS = ["UpdateService", "DescribeServices", "ListTasks", "DescribeTasks", "RunTask", "TagResource",
              "UntagResource", "ListTagsForResource", "DescribeClusters", "GetLogEvents", "*"]
MAX_POLL = 30
# How many attempts in a row a fault fails: 1 and 3 are cured by botocore's retries (8 attempts, workflow/aws.py);
# 8 and 12 reach the command. With `after`, each attempt takes effect and only its answer is lost.
RETRIES_OUTLIVED = [1, 3, 8, 12]


# --- what happens meanwhile -------------------------------------------------------------------------

interrupts = st.tuples(st.just("interrupt"), st.sampled_from(["SIGINT", "SIGTERM", "SIGHUP"]))
second_operator = st.one_of(
    st.tuples(st.just("scale-scheduler"), st.sampled_from([0, 1])),
    st.just(("deploy-web",)),
    st.tuples(st.just("second-operator-runs"), st.sampled_from(sorted(COMMANDS))),
)
ecs_faults = st.one_of(
    st.tuples(st.just("fault"), st.sampled_from(OPERATIONS), st.sampled_from(["throttle", "server", "connection"]),
              st.sampled_from(RETRIES_OUTLIVED), st.booleans()),
    st.tuples(st.just("crash"), st.sampled_from([SCHEDULER, WORKER, WEB])),
    st.tuples(st.just("flaky"), st.sampled_from([SCHEDULER, WORKER, WEB]), st.integers(1, 2)),
    st.tuples(st.just("stale"), st.sampled_from([2.0, 5.0])),
    st.tuples(st.just("missing"), st.sampled_from([2.0, 5.0])),
)
meanwhile = st.one_of(interrupts, second_operator, ecs_faults)
# Poll 0 is before the command starts: a fault or a second operator there meets its first calls.
steps = st.lists(
    st.tuples(st.sampled_from(sorted(COMMANDS)), st.lists(st.tuples(st.integers(0, MAX_POLL), meanwhile), max_size=3)),
    min_size=1,
    max_size=4,
)


# --- the world of one example -----------------------------------------------------------------------


def say(text: str) -> None:
    """Shown with a failing example (and outside Hypothesis, in a plain test, not at all)."""
    if currently_in_test_context():
        note(text)


def live_scheduler_processes(sim: Simulation) -> list:
    """Scheduler tasks not yet STOPPED whose essential container has not exited."""
    return [
        t for t in sim.service(SCHEDULER).tasks
        if t.is_live and not any(c.essential and c.last_status == "STOPPED" for c in t.containers)
    ]


@dataclass
class World:
    clock: FakeClock
    sim: Simulation
    ecs: object
    violations: list = field(default_factory=list)
    interrupted: bool = False
    results: list = field(default_factory=list)  # this step's results
    history: list = field(default_factory=list)  # every result of the example

    def watch(self) -> None:
        def check(sim):
            alive = live_scheduler_processes(sim)
            if len(alive) > 1:
                self.violations.append(
                    f"t={self.clock.now():g}: {len(alive)} scheduler processes: "
                    + ", ".join(f"{t.short_id[:8]} {t.sim_status} (deployment {t.deployment.id[-6:]})" for t in alive)
                )

        self.sim.observers.append(check)

    def without_faults(self):
        """The second operator's own calls: the injected faults are ECS's answers to the commands under test."""
        world = self

        class Suspended:
            def __enter__(self):
                self.saved, world.sim.faults = world.sim.faults, Faults()

            def __exit__(self, *exc):
                world.sim.faults = self.saved

        return Suspended()

    def invoke(self, command: str, events: list, label: str):
        by_poll: dict[int, list] = {}
        for poll, action in events:
            by_poll.setdefault(poll, []).append(action)
        polls = [0]

        def sleep(seconds):
            polls[0] += 1
            self.happen(by_poll.pop(polls[0], []))
            self.clock.sleep(seconds)

        self.happen([a for a in by_poll.pop(0, []) if a[0] != "interrupt"])  # nobody to interrupt yet
        result = CliRunner().invoke(main, [*NAMES, *OPTIONS, *COMMANDS[command]],
                                    obj=Runtime(clock=self.clock.now, sleep=sleep))
        self.record(label, command, result)
        return result

    def record(self, label: str, command: str, result) -> None:
        say(f"{label} {command}: exit {result.exit_code}\n{result.output}")
        self.results.append((label, command, result))
        self.history.append((label, command, result))
        if result.exit_code in (130, 129, 143):
            self.interrupted = True

    def happen(self, actions: list) -> None:
        for action in actions:
            kind, *args = action
            if kind == "interrupt":
                self.interrupted = True
                if args[0] == "SIGINT":
                    raise KeyboardInterrupt
                raise Terminated(getattr(signal, args[0]))
            if kind == "scale-scheduler":
                # Scaling up while a scheduler task is still stopping makes ECS itself run two: excluded.
                if args[0] == 1 and self.sim.alive(SCHEDULER):
                    continue
                with self.without_faults():
                    self.ecs.update_service(cluster=CLUSTER, service=SCHEDULER, desiredCount=args[0])
            elif kind == "deploy-web":
                with self.without_faults():
                    self.ecs.update_service(cluster=CLUSTER, service=WEB, forceNewDeployment=True)
            elif kind == "second-operator-runs":
                # A process of its own, beside the command under test: clients of its own (the cached ones are that
                # command's, and the second operator's retries would spend their quota).
                result = CliRunner().invoke(main, [*NAMES, *OPTIONS, *COMMANDS[args[0]]],
                                            obj=Runtime(clock=self.clock.now, sleep=self.clock.sleep, clients=Clients))
                self.record("  second operator:", args[0], result)
            elif kind == "fault":
                operation, fault, times, after = args
                self.sim.faults.inject(operation, fault, times=times, after=after)
            elif kind == "crash":
                self.sim.crash_deployments(args[0], exit_code=1, after=4)
            elif kind == "flaky":
                self.sim.flaky_starts(args[0], args[1])
            elif kind == "stale":
                self.sim.stale_seconds = args[0]
            elif kind == "missing":
                self.sim.missing_seconds = args[0]

    def heal(self) -> None:
        """ECS behaves again."""
        sim = self.sim
        sim.faults.clear()
        sim.crashing.clear()
        sim.flaky.clear()
        sim.stale_seconds = sim.missing_seconds = 0.0

    def lease_tags(self) -> list[str]:
        with self.without_faults():
            arn = self.ecs.describe_clusters(clusters=[CLUSTER])["clusters"][0]["clusterArn"]
            tags = self.ecs.list_tags_for_resource(resourceArn=arn).get("tags", [])
        return [t["key"] for t in tags if t["key"].startswith(TAG_PREFIX)]

    def desired(self, name: str) -> int:
        return self.sim.service(name).model.desired_count


def assert_step_invariants(world: World, results: list) -> None:
    assert not world.violations, "two schedulers:\n" + "\n".join(world.violations[:5])
    for label, command, result in results:
        assert result.exit_code in EXIT_CODES, f"{label} {command}: exit {result.exit_code}\n{result.output}"
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            f"{label} {command} raised {result.exception!r}\n{result.output}")
        assert "Traceback" not in result.output, f"{label} {command}:\n{result.output}"
    for name, count in COUNTS.items():
        assert world.desired(name) == count, f"{name}'s desired count is {world.desired(name)}, not {count}"


def play(scenario: list, finish=None) -> World:
    """Run `scenario` on a running cluster, as tests/conftest.py's `cluster` fixture makes one."""
    clock = FakeClock()

    def provision():
        provision_cluster(shared_client, counts=DEFAULT_COUNTS)
        clock.sleep(60)

    with mock_aws():
        sim = Simulation(clock, Timings(provision=2, pull=5, drain=3, stop=2, one_off_run=5))
        with simulated_ecs(sim):
            snapshots.provisioned("properties", sim, clock, REGION, provision)
            world = World(clock, sim, shared_client("ecs"))
            world.watch()
            for number, (command, events) in enumerate(scenario, 1):
                world.results = []
                world.invoke(command, events, f"step {number}:")
                assert_step_invariants(world, world.results)
            (finish or converge)(world)
            return world


def converge(world: World) -> None:
    world.heal()
    leftover = world.lease_tags()
    # Every command that took the lease releases it, interrupted or failed. Only when releasing it failed
    # too (UntagResource failing past botocore's retries) may one stay: it expires on its own, and the
    # command said so. Only then does the re-run need --break-lease.
    announced = any("could not release the lease" in r.output for _, _, r in world.history)
    say(f"lease tags left: {leftover}; interrupted: {world.interrupted}; a failed release announced: {announced}")
    assert not leftover or announced, f"lease tags left behind, unannounced: {leftover}"
    world.results = []
    extra = ["--break-lease"] if leftover else []
    # Judged by where it leaves the cluster, not by what it sees on the way: it may poll less often.
    result = CliRunner().invoke(main, [*NAMES, *OPTIONS, "--poll-interval", "3", *extra, "redeploy", "--yes"],
                                obj=Runtime(clock=world.clock.now, sleep=world.clock.sleep))
    world.record("final:", "redeploy", result)
    assert_step_invariants(world, world.results)
    assert result.exit_code == 0, f"the re-run did not converge: exit {result.exit_code}\n{result.output}"
    world.clock.sleep(30)  # web's old task finishes draining
    sim = world.sim
    sim.advance()
    scheduler = sim.service(SCHEDULER)
    assert world.desired(SCHEDULER) == 1 and len(sim.alive(SCHEDULER)) == 1
    assert [t.sim_status for t in sim.alive(SCHEDULER)] == ["RUNNING"]
    for name, count in {SCHEDULER: 1, **COUNTS}.items():
        service = sim.service(name)
        assert len(service.deployments) == 1, f"{name} has {len(service.deployments)} deployments"
        assert service.model.running_count == count == world.desired(name), f"{name}: {service.model.running_count}"
    assert scheduler.primary.rollout_state == "COMPLETED"
    assert not world.violations, "two schedulers:\n" + "\n".join(world.violations[:5])
    assert world.lease_tags() == []


# --- the properties ---------------------------------------------------------------------------------


@PROFILE
@given(scenario=steps)
def test_any_interleaving_keeps_one_scheduler_and_the_counts_and_a_rerun_converges(scenario):
    play(scenario)


@PROFILE
@given(command=st.sampled_from(sorted(COMMANDS)), poll=st.integers(1, MAX_POLL),
       how=st.sampled_from(["SIGINT", "SIGTERM", "SIGHUP"]))
def test_an_interrupt_at_any_poll_releases_the_lease_and_a_rerun_converges(command, poll, how):
    world = play([(command, [(poll, ("interrupt", how))])])
    (_, _, result), *_ = world.history
    if world.interrupted:
        assert result.exit_code == {"SIGINT": 130, "SIGTERM": 143, "SIGHUP": 129}[how], result.output


# --- defects these properties found, each kept as its minimal example (both fixed in dccf6cf) ----------


@DEFECT
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
    play([("redeploy", [(poll, ("scale-scheduler", 1))])])


@DEFECT
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
    play([(command, [(0, ("fault", "TagResource", kind, 8, True))])])
