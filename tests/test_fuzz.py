"""Every command against answers a proxy or a faulty endpoint broke: an HTML page, `{}`, `[]`, truncated or corrupted
JSON, fields of the wrong type, in the successful answers of one operation the command calls. Whatever the answer,
no traceback; an exit code of the tool's own; and, when the cluster was changed, its state said.

The simulated cluster answers every call; a hook swaps the body of the chosen operation's answers before botocore
parses it, from its first answer on. The k-th operation a command calls (in the order it first calls them) is
broken in the k-th test of that command, each with another kind of damage, so every operation of every command
meets some damage, the first ones all kinds.
"""

import json
from dataclasses import dataclass, field

import pytest
import snapshots
from click.testing import CliRunner
from conftest import CLUSTER, NAMES, REGION, SCHEDULER, WEB, WORKER, runtime, shared_client
from helpers import cluster_arn, one_off_tasks, retag

from workflow.aws import Clients  # the real factory (the tests' own caches clients), imported before it is patched
from workflow.cli import main
from workflow.ecs import Ecs
from workflow.errors import Malformed
from workflow.lease import TAG_PREFIX
from workflow_sandbox.images import push_image, random_layers
from workflow_sandbox.provision import DEFAULT_COUNTS, provision_cluster

REPO, STAGE = "airflow-prod", "airflow-stage"
STAMPS = ["20261101T080000Z", "20261110T080000Z"]


def _swap(value):
    """A value of another JSON type."""
    if isinstance(value, dict):
        return ["swapped"]
    if isinstance(value, list):
        return {"swapped": 1}
    if isinstance(value, str):
        return 12345
    if isinstance(value, bool) or value is None:
        return "yes"
    return str(value)


def _deep(value):
    """Every scalar inside replaced by one of another type; the objects and lists around them kept."""
    if isinstance(value, dict):
        return {key: _deep(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_deep(item) for item in value]
    return _swap(value)


def _json(change):
    def damage(body: bytes) -> bytes:
        try:
            document = json.loads(body)
        except ValueError:  # an XML answer (STS): damage its bytes instead
            return body[: len(body) // 2] + b"\xff\xfe" + body[len(body) // 2 + 2:]
        return json.dumps(change(document)).encode()

    return damage


DAMAGE = {
    "an html page": lambda body: b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1>"
                                 b"</body></html>",
    "an empty object": lambda body: b"{}",
    "a list": lambda body: b"[]",
    "a truncated body": lambda body: body[: len(body) // 2],
    "bytes that are not utf-8": lambda body: body[: len(body) // 2] + b"\xff\xfe" + body[len(body) // 2 + 2:],
    "fields of the wrong type": _json(lambda doc: {key: _swap(item) for key, item in doc.items()} if isinstance(doc, dict)
                                      else doc),
    "values of the wrong type inside": _json(_deep),
}
KINDS = list(DAMAGE)

# command -> (its words, how many distinct operations it calls on this cluster)
COMMANDS = {
    "status": (["status"], 10),
    "stop-scheduler": (["stop-scheduler", "--yes"], 9),
    "start-scheduler": (["start-scheduler"], 12),
    "redeploy": (["redeploy", "--yes"], 14),
    "redeploy --migrate": (["redeploy", "--yes", "--migrate"], 16),
    "initialize": (["initialize", "--yes"], 13),
    "run": (["run", "--yes", "--", "airflow", "dags", "list"], 10),
    "logs": (["logs", "worker", "--since", "1h"], 6),
    "releases": (["releases"], 6),
    "rollback": (["rollback", "--yes"], 15),
    "promote --dry-run": (["promote", "--dry-run", "--via", "ecr-api"], 3),
    "iam-policy --lookup-account": (["iam-policy", "--lookup-account"], 1),
}
CASES = [(command, k) for command, (_, count) in COMMANDS.items() for k in range(count)]
GLOBAL = [*NAMES, "--timeout", "60", "--poll-interval", "5", "--stability-window", "0", "--log-grace", "0"]


@dataclass
class Breaker:
    """Damages every successful answer of the `target`-th distinct operation called, from its first on."""

    target: int
    damage: object
    seen: list[str] = field(default_factory=list)
    broken: int = 0

    def __call__(self, operation_model, response_dict, **_):
        name = operation_model.name
        if name not in self.seen:
            self.seen.append(name)
        if self.seen.index(name) != self.target or response_dict["status_code"] >= 300:
            return
        response_dict["body"] = self.damage(response_dict["body"] or b"")
        self.broken += 1

    @property
    def operation(self) -> str | None:
        return self.seen[self.target] if len(self.seen) > self.target else None


def breaking(breaker: Breaker):
    """The CLI's own clients (retries, time bounds, answer checks), each answer passing `breaker` first."""

    def factory(config):
        clients = Clients(config)
        hooked: set[int] = set()

        def build(service, region=None, attempts=None):
            client = clients(service, region, attempts)
            if id(client) not in hooked:
                name = client.meta.service_model.service_id.hyphenize()
                client.meta.events.register_first(f"before-parse.{name}", breaker)
                hooked.add(id(client))
            return client

        return build

    return factory


@pytest.fixture
def images(sim, clock, sim_registry):
    """Two releases in the production repository (latest on the second) and a staging image to promote, then the
    running cluster, whose tasks resolve latest to a release as they start; built once, then restored by copy."""
    ecr = sim_registry.ecr

    def build():
        for name in (REPO, STAGE):
            ecr.create_repository(repositoryName=name)
        for n, stamp in enumerate(STAMPS, start=1):
            image = push_image(ecr, REPO, random_layers(2, 1024 * n, seed=n), stamp)
            retag(ecr, REPO, image, "latest")
        push_image(ecr, STAGE, random_layers(2, 4096, seed=9), "latest")
        provision_cluster(shared_client, counts=DEFAULT_COUNTS)
        clock.sleep(60)

    snapshots.world("fuzz", sim, clock, sim_registry, REGION, build)
    return ecr


def state(ecs, ecr) -> dict:
    """What a command may change: the services' desired counts, deployments and tags, the one-off tasks, the
    cluster's tags (leases aside: a failed release of one is said on its own) and the release tags."""
    services = ecs.describe_services(cluster=CLUSTER, services=[SCHEDULER, WORKER, WEB], include=["TAGS"])["services"]
    tags = ecs.list_tags_for_resource(resourceArn=cluster_arn(ecs))["tags"]
    images = ecr.describe_images(repositoryName=REPO)["imageDetails"]
    return {
        "services": {s["serviceName"]: (s["desiredCount"], sorted(d["id"] for d in s["deployments"]),
                                        sorted((t["key"], t["value"]) for t in s.get("tags", []))) for s in services},
        "one-off tasks": sorted(t["taskArn"] for t in one_off_tasks(ecs)),
        "cluster tags": sorted((t["key"], t["value"]) for t in tags if not t["key"].startswith(TAG_PREFIX)),
        "release tags": sorted((tag, i["imageDigest"]) for i in images for tag in i.get("imageTags", [])),
    }


@pytest.mark.parametrize("command, operation", CASES, ids=[f"{command}-{k}" for command, k in CASES])
def test_a_malformed_answer_never_ends_a_command_in_a_traceback(images, clock, ecs, command, operation):
    words, count = COMMANDS[command]
    if command == "start-scheduler":
        ecs.update_service(cluster=CLUSTER, service=SCHEDULER, desiredCount=0)
        clock.sleep(30)
    kind = KINDS[(operation + list(COMMANDS).index(command)) % len(KINDS)]
    breaker = Breaker(operation, DAMAGE[kind])
    before = state(ecs, images)
    result = CliRunner().invoke(main, [*GLOBAL, *words], obj=runtime(clock, breaking(breaker)))
    after = state(ecs, images)
    what = f"{command}, {kind} from {breaker.operation} on ({breaker.broken} answers):\n{result.output}"
    assert breaker.operation, f"{command} calls {len(breaker.seen)} distinct operations, not {count}: {breaker.seen}"
    if operation == count - 1:
        assert len(breaker.seen) <= count, f"{command} calls more operations than {count}: {breaker.seen}"
    assert result.exception is None or isinstance(result.exception, SystemExit), what + repr(result.exception)
    assert "Traceback" not in result.output, what
    assert result.exit_code in (0, 1, 2, 3, 4), what
    if result.exit_code and after != before and "cluster state:" not in result.stderr:
        raise AssertionError("changed the cluster without saying its state: " + what)


def test_an_ecs_answer_without_the_field_read_is_malformed_not_a_key_error():
    """Read defensively in one place (Ecs's answers and their parse functions), for clients without the checks."""
    from botocore.stub import Stubber
    from conftest import new_client

    client = new_client("ecs")
    stubber = Stubber(client)
    stubber.add_response("describe_services", {"failures": []})
    stubber.add_response("describe_services", {"services": [{"serviceName": "a", "status": "ACTIVE"}]})
    stubber.add_response("describe_tasks", {"tasks": [{"lastStatus": "RUNNING"}]})
    stubber.add_response("list_tasks", {})
    with stubber:
        ecs = Ecs(client, CLUSTER)
        with pytest.raises(Malformed, match="to DescribeServices: the answer has no services"):
            ecs.services(["a"])
        with pytest.raises(Malformed, match="to DescribeServices: the answer's services\\[0\\] has no serviceArn"):
            ecs.services(["a"])
        with pytest.raises(Malformed, match="to DescribeTasks: the answer's tasks\\[0\\] has no taskArn"):
            ecs.tasks(["arn:aws:ecs:us-east-1:123456789012:task/airflow-prod/abc"])
        with pytest.raises(Malformed, match="to ListTasks: the answer has no taskArns"):
            ecs.task_arns(SCHEDULER, "RUNNING")
