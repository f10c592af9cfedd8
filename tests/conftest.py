"""Hermetic AWS for every test: fake credentials, no config files, moto, and a simulated cluster on a fake clock."""

import functools
import gc
import os
from typing import NamedTuple

# moto's EC2 backend loads thousands of default AMIs for every fresh account: a second per test, for nothing.
os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")

import pytest  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from workflow.app import Runtime
from workflow.aws import Clients
from workflow.cli import main
from workflow_sandbox.clock import FakeClock
from workflow_sandbox.provision import DEFAULT_COUNTS, provision_cluster


def pytest_configure(config):
    """moto and the simulation load in the processes that run tests, before any test module: not in pytest-xdist's
    controller, which only hands tests out and would otherwise hold the workers' start back by a second."""
    controller = getattr(config.option, "dist", "no") != "no" and getattr(config.option, "tx", None)  # as xdist decides
    if not controller or hasattr(config, "workerinput"):
        import snapshots  # noqa: F401  (first: it imports moto's models, see there)

@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: known only where xdist is loaded (not with -p no:xdist)
def pytest_xdist_auto_num_workers(config):
    """`-n auto`: one worker more than there are cores. A worker spends part of its time waiting, not computing (the
    real Airflow and registry starting in processes of their own, the real-time tests, the CLI run as a subprocess):
    on the 2-core machine three workers ran the suite in 118 to 124 s where two took 125 to 143, back to back."""
    return (os.cpu_count() or 1) + 1


# Each test leaves moto's objects behind in cycles, so collections are frequent; a full one also walks
# botocore's service models and moto's catalogues, hundreds of thousands of objects loaded once. Rarer
# collections, and those objects set aside once the first test has loaded them, save a sixth of the run.
gc.set_threshold(20_000, 20, 20)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    yield
    if not getattr(pytest_runtest_protocol, "frozen", False):
        gc.collect()
        gc.freeze()
        pytest_runtest_protocol.frozen = True


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Tests that wait in real time go first: each worker starts one, and the others fill in around them.

    Tests of one `xdist_group` (a real Airflow, a real registry) run on one worker, which starts that server once.
    pytest 9 keeps node ids in Item._id while pytest-xdist 3.8 writes the group into _nodeid, which pytest no longer
    reads: without this, --dist loadgroup spreads a group's tests over every worker."""
    from _pytest.nodeid import coerce_node_id

    items.sort(key=lambda item: item.get_closest_marker("realtime") is None)
    if not getattr(config.option, "loadgroup", False):  # what pytest-xdist reads, in each worker
        return
    for item in items:
        names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                        for m in item.iter_markers("xdist_group")})
        if names and not item.nodeid.endswith("@" + "_".join(names)):
            item._id = coerce_node_id(f"{item.nodeid}@{'_'.join(names)}")


REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default
CLUSTER = "airflow-prod"
SCHEDULER, WORKER, WEB = (f"{CLUSTER}-{role}" for role in ("scheduler", "worker", "web"))
NAMES = ["--cluster", CLUSTER, "--scheduler", SCHEDULER, "--worker", WORKER, "--web", WEB]
CLUSTER_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{CLUSTER}"


# No test reads these; being the same for every test, they leave the environment the same too (see `_clients`).
NO_AWS_FILES = os.path.join(os.path.dirname(__file__), "no-such-directory")


@pytest.fixture(autouse=True)
def hermetic_aws(monkeypatch):
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    for name in list(__import__("os").environ):
        if name.startswith("WORKFLOW_"):
            monkeypatch.delenv(name)
    # Lines wrap at the terminal's width (80 without one): tests search long texts whole, except those that test
    # the wrapping itself, which set their own width.
    monkeypatch.setenv("COLUMNS", "1000")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.path.join(NO_AWS_FILES, "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.path.join(NO_AWS_FILES, "credentials"))


# Retries botocore has taken in this process, by any client: each spends some of the retry quota its client keeps.
_retries = [0]


@pytest.fixture(autouse=True)
def no_real_backoff(monkeypatch):
    """botocore's retries keep their count but not their sleep: no test waits in real time."""
    from botocore.retries import standard

    def delay_amount(self, context):
        _retries[0] += 1
        return 0

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", delay_amount)


@pytest.fixture(autouse=True)
def invoked_as_workflow(request, monkeypatch):
    """The CLI in tests was started as `workflow` (how_invoked itself is tested on its own: marked how_invoked)."""
    if request.node.get_closest_marker("how_invoked") is None:
        monkeypatch.setattr("workflow.app.how_invoked", lambda: ["workflow"])


@pytest.fixture(autouse=True)
def cli_clients(monkeypatch):
    """Every CLI invocation in this process builds its clients through `_clients`, unless its test gives others."""
    monkeypatch.setattr("workflow.aws.Clients", _clients)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def sim(clock):
    from moto import mock_aws

    from workflow_sandbox.hooks import simulated_ecs
    from workflow_sandbox.simulator import Simulation, Timings

    with mock_aws():
        simulation = Simulation(clock, Timings(provision=2, pull=5, drain=3, stop=2, one_off_run=6))
        with simulated_ecs(simulation):
            yield simulation


def new_client(name: str, region: str = REGION, **kwargs):
    """A client of the test's own, for a Stubber or an event handler that must not outlive the test.

    moto gives every mock a fresh boto3 default session, which would parse each service's model again (a fifth
    of a second for EC2's); clients built from the one session moto's models were loaded under share the models
    parsed once."""
    from workflow_sandbox.moto_models import SESSION

    return SESSION.client(name, region_name=region, **kwargs)


@functools.cache
def shared_client(name: str, region: str = REGION):
    """A client every test may use: it holds no state of its own, and moto intercepts its calls wherever a
    mock is active."""
    return new_client(name, region)


@pytest.fixture
def ecs(sim):
    return shared_client("ecs")


@pytest.fixture
def empty_cluster(sim, clock):
    """As after the first `terraform apply`: services exist, nothing runs."""
    import snapshots

    return snapshots.provisioned("empty", sim, clock, REGION, lambda: provision_cluster(shared_client))


@pytest.fixture
def cluster(sim, clock):
    """A running cluster: one scheduler, three workers, one web server, all steady."""

    def provision():
        provisioned = provision_cluster(shared_client, counts=DEFAULT_COUNTS)
        clock.sleep(60)
        return provisioned

    import snapshots

    return snapshots.provisioned("running", sim, clock, REGION, provision)


@pytest.fixture
def registry():
    """ECR alone (no cluster) and the simulated registry behind it, `.ecr` a client of it."""
    from moto import mock_aws

    from workflow_sandbox.registry import Registry, simulated_ecr

    with mock_aws(), simulated_ecr(Registry()) as simulated:
        simulated.ecr = shared_client("ecr")
        yield simulated


@pytest.fixture
def sim_registry(sim):
    """The simulated registry in the simulated cluster's moto, `.ecr` a client of it; a test that pushes images for
    the cluster to run requests it before `cluster`, so that the cluster's tasks resolve their tags as they start."""
    from workflow_sandbox.registry import Registry, simulated_ecr

    with simulated_ecr(Registry()) as simulated:
        simulated.ecr = shared_client("ecr")
        yield simulated


@pytest.fixture
def schedulers_alive(sim):
    """The most scheduler tasks alive at any simulated instant (a task DEACTIVATING or STOPPING still runs)."""
    most = [0]

    def check(simulation):
        most[0] = max(most[0], sum(t.is_live for t in simulation.service(SCHEDULER).tasks))

    sim.observers.append(check)
    return most


_built: dict = {}  # (config, AWS environment) -> (clients, _retries when they were built)


def _clients(config):
    """The CLI's own client factory, kept from one command to the next while the AWS configuration it reads (its
    options and the AWS_* environment) is the same: building botocore clients anew for every command was a
    twentieth of the run. moto intercepts the clients under every mock. Their only state, the retry quota of
    standard mode, is whole again only in new clients: once botocore has retried anything in this process, the
    next command builds its own, as a new process would. A command run while another runs (a second operator)
    is given clients of its own."""
    if os.environ.get("AWS_RETRY_MODE") == "adaptive":
        return Clients(config)  # its rate limiter is state too, which a throttled answer changes without a retry
    key = (config, frozenset((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))
    clients, retries = _built.get(key, (None, None))
    if retries != _retries[0]:
        clients = Clients(config)
        _built[key] = clients, _retries[0]
    return clients


def runtime(clock, clients=None) -> Runtime:
    """The CLI's runtime on the fake clock, its wall time the simulated cluster's; its clients `_clients` unless given."""
    return Runtime(clock=clock.now, sleep=clock.sleep, clients=clients, utcnow=lambda: clock.wall(clock.now()))


class Call(NamedTuple):
    name: str  # the operation, e.g. "DescribeServices"
    params: dict
    at: float  # on the fake clock


def invoke_recording(clock, *args):
    """Run the CLI in-process on clients of the test's own; returns its result and every call it made, in order."""
    calls: list[Call] = []

    def record(params, model, **_):
        calls.append(Call(model.name, params, clock.now()))

    def client(name, *_, **__):
        built = new_client(name)
        built.meta.events.register("provide-client-params", record)
        return built

    return CliRunner().invoke(main, list(args), obj=runtime(clock, lambda config: client)), calls


def invoke_interrupted(clock, condition, *args):
    """Run the CLI in-process on the fake clock, interrupted (Ctrl-C) at its first wait once `condition()` holds."""

    def sleep(seconds):
        if condition():
            raise KeyboardInterrupt
        clock.sleep(seconds)

    stopped = runtime(clock)
    stopped.sleep = sleep
    return CliRunner().invoke(main, list(args), obj=stopped)


@pytest.fixture
def run(clock):
    """Invoke the CLI in-process with the fake clock; stdout and stderr stay apart."""

    def invoke(*args, input=None):
        return CliRunner().invoke(main, list(args), obj=runtime(clock), input=input)

    return invoke
