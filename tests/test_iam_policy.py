"""`workflow iam-policy`: the policy is valid IAM (parliament), and it is exactly enough (moto's IAM enforcement).

moto checks each request's action against the caller's policies, but sees every ECS request as resource `*` and
cannot evaluate most conditions; so the enforcement tests run the commands under the policy's actions with
resources widened to `*` (`iam_policy.widened`), while parliament checks the real resources and conditions.
"""

import importlib.resources
import json
import re
import sys
import types
from contextlib import contextmanager
from unittest import mock

import pytest
from botocore.client import BaseClient
from click.testing import CliRunner
from conftest import CLUSTER, NAMES, SCHEDULER, WEB, WORKER, shared_client
from moto.core import enable_iam_authentication

from workflow.cli import main
from workflow.iam_policy import COMMANDS, LEASE_TAG_PREFIX, Scope, actions, needs_of, policy, widened

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/airflow-task"


def iam_policy(*args, env=None):
    return CliRunner().invoke(main, ["--cluster", CLUSTER, "iam-policy", *args], env=env)


def printed(*args) -> dict:
    result = iam_policy(*args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def statement(document: dict, action: str) -> dict:
    (found,) = [s for s in document["Statement"] if action in s["Action"]]
    return found


# --- the document ---------------------------------------------------------------------------------------------


def test_prints_the_policy_for_the_default_names():
    document = printed()
    assert document == policy(Scope())
    assert document["Version"] == "2012-10-17"
    assert statement(document, "ecs:UpdateService")["Resource"] == [
        f"arn:aws:ecs:*:*:service/{CLUSTER}/{name}" for name in (SCHEDULER, WORKER, WEB)
    ]
    assert statement(document, "ecs:ListTasks")["Condition"] == {"ArnLike": {"ecs:cluster": f"arn:aws:ecs:*:*:cluster/{CLUSTER}"}}
    assert statement(document, "ecs:RunTask")["Resource"] == [  # run takes --service; initialize only the worker's
        f"arn:aws:ecs:*:*:task-definition/{name}:*" for name in (SCHEDULER, WORKER, WEB)
    ]
    initialize = printed("--command", "initialize")
    assert statement(initialize, "ecs:RunTask")["Resource"] == f"arn:aws:ecs:*:*:task-definition/{WORKER}:*"
    assert statement(initialize, "ecs:DescribeServices")["Resource"] == f"arn:aws:ecs:*:*:service/{CLUSTER}/{WORKER}"
    assert statement(document, "ecr:PutImage")["Resource"] == "arn:aws:ecr:*:*:repository/airflow-prod"
    assert "ecr:PutImage" not in statement(document, "ecr:GetDownloadUrlForLayer")["Action"]  # the source is read only
    assert statement(document, "ecr:GetAuthorizationToken")["Resource"] == "*"  # the registry API's token


def test_each_sid_names_the_commands_it_serves():
    document = printed()
    for s in document["Statement"]:
        assert re.fullmatch(r"[A-Za-z0-9]+", s["Sid"])
        grant = s["Sid"].split("For", 1)[0]
        served = [c for c in COMMANDS if grant in COMMANDS[c].grants]
        assert s["Sid"] == grant + "For" + "".join(w.capitalize() for c in served for w in c.split("-")), s["Sid"]


def test_a_command_gets_only_what_it_calls():
    document = printed("--command", "stop-scheduler")
    assert actions(document) == sorted([
        "ecs:DescribeServices", "ecs:UpdateService", "ecs:ListTasks", "ecs:DescribeTasks",  # the stop and its wait
        "ecs:DescribeClusters", "ecs:ListTagsForResource", "ecs:TagResource", "ecs:UntagResource",  # the lease
        "ecs:ListServices", "ecs:ListClusters",  # hints when something is not found
    ])
    assert statement(document, "ecs:UpdateService")["Resource"] == f"arn:aws:ecs:*:*:service/{CLUSTER}/{SCHEDULER}"
    promote = printed("--command", "promote", "--source-repository", "stage", "--dest-repository", "prod")
    assert {a.split(":")[0] for a in actions(promote)} == {"ecr"}
    assert statement(promote, "ecr:PutImage")["Resource"].endswith(":repository/prod")
    both = printed("--command", "promote", "--command", "status")
    assert set(actions(both)) == set(actions(promote)) | set(actions(printed("--command", "status")))


def test_promote_alone_needs_no_cluster():
    result = CliRunner().invoke(main, ["iam-policy", "--command", "promote"])
    assert result.exit_code == 0 and "ecr:PutImage" in result.stdout
    assert CliRunner().invoke(main, ["iam-policy", "--command", "status"]).exit_code == 2  # Missing option '--cluster'


def test_names_account_region_and_partition():
    document = printed("--account", ACCOUNT, "--region", "eu-west-1", "--command", "initialize", "--pass-role", ROLE)
    assert statement(document, "ecs:RunTask")["Condition"] == {
        "ArnEquals": {"ecs:cluster": f"arn:aws:ecs:eu-west-1:{ACCOUNT}:cluster/{CLUSTER}"}}
    by_arn = CliRunner().invoke(main, ["--cluster", f"arn:aws-cn:ecs:cn-north-1:{ACCOUNT}:cluster/{CLUSTER}",
                                       "iam-policy", "--command", "status"])
    assert by_arn.exit_code == 0, by_arn.output
    assert f"arn:aws-cn:ecs:cn-north-1:{ACCOUNT}:service/{CLUSTER}/{SCHEDULER}" in by_arn.stdout


def test_pass_role_is_towards_ecs_tasks_and_warns_when_unnamed():
    unnamed = iam_policy("--command", "initialize")
    assert unnamed.exit_code == 0 and "warning: iam:PassRole is allowed on every role" in unnamed.stderr
    assert statement(json.loads(unnamed.stdout), "iam:PassRole")["Resource"] == "arn:aws:iam::*:role/*"
    named = iam_policy("--command", "initialize", "--pass-role", ROLE, "--pass-role", ROLE + "-execution")
    assert named.exit_code == 0 and "warning" not in named.stderr
    passing = statement(json.loads(named.stdout), "iam:PassRole")
    assert passing["Resource"] == [ROLE, ROLE + "-execution"]
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}
    assert "warning" not in iam_policy("--command", "status").stderr


def test_lease_tags_are_the_only_tags_written():
    from workflow import lease

    assert lease.TAG_PREFIX == LEASE_TAG_PREFIX
    condition = statement(printed(), "ecs:TagResource")["Condition"]
    assert condition["ForAllValues:StringLike"] == {"aws:TagKeys": [LEASE_TAG_PREFIX + "*"]}


def test_no_aws_call_unless_asked(monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with mock.patch.object(BaseClient, "_make_api_call", side_effect=AssertionError("an AWS call")):
        assert iam_policy().exit_code == 0
    no_credentials = iam_policy("--lookup-account")
    assert no_credentials.exit_code == 2 and "Unable to locate credentials" in no_credentials.stderr


def test_lookup_account_asks_sts(sim):
    document = printed("--lookup-account", "--command", "status")
    assert f":{ACCOUNT}:service/" in statement(document, "ecs:DescribeServices")["Resource"][0]


def test_every_operation_the_code_names_is_in_the_policy():
    """Read from the code: each ECS, ECR and CloudWatch Logs operation the modules that call those clients name."""
    import ast
    from pathlib import Path

    import botocore.session
    from botocore import xform_name

    import workflow

    allowed = set(actions(policy(Scope())))
    session = botocore.session.get_session()
    root = Path(workflow.__file__).parent
    named = set()
    for module, service in (("ecs.py", "ecs"), ("ecr.py", "ecr"), ("logs.py", "logs")):
        operations = {xform_name(op): op for op in session.get_service_model(service).operation_names}
        tree = ast.parse((root / module).read_text())
        words = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        words |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        named |= {f"{service}:{operations[w]}" for w in words if w in operations}
    assert named, "no operation found: has the code moved?"
    assert named <= allowed, sorted(named - allowed)
    # ... and nothing more: every action but PassRole (checked by ECS inside RunTask) is one the code calls.
    assert allowed - {"iam:PassRole"} <= named, sorted(allowed - {"iam:PassRole"} - named)


# --- parliament: every action exists, every resource fits the action, every condition key is the action's ----


@pytest.fixture(scope="module")
def parliament():
    try:
        import pkg_resources  # noqa: F401  (parliament 1.6 imports it; setuptools 81 and later no longer ship it)
    except ImportError:
        shim = types.ModuleType("pkg_resources")
        shim.resource_filename = lambda package, name: str(importlib.resources.files(package) / name)
        sys.modules["pkg_resources"] = shim
    import parliament as checker  # a development dependency: its absence is a failed install, not a skip

    return checker


# Findings that are not errors of this policy, each with why.
ACCEPTED = {
    # ListTasks's only resource type is container-instance, which a Fargate service's task listing names none of;
    # the ecs:cluster condition is how AWS scopes it.
    ("RESOURCE_STAR", "ecs:ListTasks"),
    # A community auditor lists every permissions-management action: PassRole is needed by RunTask, and limited
    # to the named roles and to ecs-tasks.amazonaws.com.
    ("PERMISSIONS_MANAGEMENT_ACTIONS", "iam:passrole"),
    # The registry API's token is a credential by design: it is what `docker login` gets, for the caller's registry.
    ("CREDENTIALS_EXPOSURE", "ecr:getauthorizationtoken"),
}


def findings(parliament, document: dict) -> set:
    found = set()
    for finding in parliament.analyze_policy_string(json.dumps(document), include_community_auditors=True).findings:
        # An action-level finding names its actions in `detail` or in `location`; others describe themselves.
        subjects = finding.detail if isinstance(finding.detail, list) else finding.location.get("actions") or [finding.detail]
        found |= {(finding.issue, str(subject)) for subject in subjects}
    return found


@pytest.mark.parametrize("scope", [
    Scope(),
    Scope(region="eu-west-1", account=ACCOUNT, pass_roles=(ROLE,), log_groups=("/ecs/a", "/aws/ecs/b")),
], ids=["wildcards", "named"])
def test_parliament_finds_nothing_of_substance(parliament, scope):
    assert findings(parliament, policy(scope)) <= ACCEPTED
    for command in COMMANDS:
        assert findings(parliament, policy(scope, [command])) <= ACCEPTED, command


def test_parliament_catches_what_it_checks(parliament):
    """The check is not vacuous: a resource of the wrong type and an unknown action are found."""
    document = policy(Scope())
    statement(document, "ecs:DescribeTasks")["Resource"] = f"arn:aws:ecs:*:*:service/{CLUSTER}/{SCHEDULER}"
    document["Statement"].append({"Effect": "Allow", "Action": "ecs:DescribeServicez", "Resource": "*"})
    issues = {issue for issue, _ in findings(parliament, document)}
    assert {"RESOURCE_MISMATCH", "UNKNOWN_ACTION"} <= issues


# --- moto's IAM enforcement: the actions are enough, and each one is needed -------------------------------------

WRITES = {"ecs:UpdateService", "ecs:RunTask", "ecr:PutImage", "ecr:InitiateLayerUpload"}
# Actions whose denial the command survives, saying so: the outcome is the same, something ancillary is lost.
SURVIVES = {
    "logs:GetLogEvents": "not following",  # initialize's log lines are progress only
    "ecs:UntagResource": "could not release the lease",  # the lease then expires on its own
}
_keys: dict[str, dict] = {}  # the operator user's id -> its access key, whose secret IAM shows only at creation


@contextmanager
def operator(monkeypatch, document: dict):
    """Run as the IAM user `operator` with `document` as its one policy, under enforcement; yields the actions each
    call asked for, in order. The user and its key last the whole test, its policy replaced at each run, so the
    CLI's AWS environment stays the same and its clients are built once per test (see conftest's `_clients`)."""
    iam = shared_client("iam")
    try:
        user = iam.get_user(UserName="operator")["User"]
    except iam.exceptions.NoSuchEntityException:
        user = iam.create_user(UserName="operator")["User"]
        _keys[user["UserId"]] = iam.create_access_key(UserName="operator")["AccessKey"]
    key = _keys[user["UserId"]]
    iam.put_user_policy(UserName="operator", PolicyName="workflow", PolicyDocument=json.dumps(document))
    calls: list[str] = []
    original = BaseClient._make_api_call

    def recorded(client, operation, params):
        calls.append(f"{client.meta.service_model.signing_name}:{operation}")
        return original(client, operation, params)

    with monkeypatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
        env.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
        with mock.patch.object(BaseClient, "_make_api_call", recorded), enable_iam_authentication():
            yield calls


def cluster_state(ecs) -> dict:
    services = ecs.describe_services(cluster=CLUSTER, services=[SCHEDULER, WORKER, WEB])["services"]
    arn = ecs.describe_clusters(clusters=[CLUSTER])["clusters"][0]["clusterArn"]
    return {
        "services": {s["serviceName"]: (s["desiredCount"], sorted(d["id"] for d in s["deployments"])) for s in services},
        "tasks": sorted(ecs.list_tasks(cluster=CLUSTER)["taskArns"]),
        "tags": ecs.list_tags_for_resource(resourceArn=arn).get("tags", []),
    }


def restore(ecs, clock, before: dict) -> None:
    """Undo what a failed run left: the lease tag, the scheduler's desired count; then let the cluster settle."""
    arn = ecs.describe_clusters(clusters=[CLUSTER])["clusters"][0]["clusterArn"]
    leases = [t["key"] for t in ecs.list_tags_for_resource(resourceArn=arn).get("tags", [])
              if t["key"].startswith(LEASE_TAG_PREFIX)]
    if leases:
        ecs.untag_resource(resourceArn=arn, tagKeys=leases)
    wanted = before["services"][SCHEDULER][0]
    if cluster_state(ecs)["services"][SCHEDULER][0] != wanted:
        ecs.update_service(cluster=CLUSTER, service=SCHEDULER, desiredCount=wanted)
    clock.sleep(60)


def stopped_scheduler(ecs, clock):
    ecs.update_service(cluster=CLUSTER, service=SCHEDULER, desiredCount=0)
    clock.sleep(30)


RUNS = {  # command -> (arguments, what to do to the running cluster first)
    "status": (["status"], None),
    "stop-scheduler": (["stop-scheduler", "--yes"], None),
    "start-scheduler": (["start-scheduler"], stopped_scheduler),
    "redeploy": (["redeploy", "--yes", "--stability-window", "0"], None),
    "initialize": (["initialize", "--yes"], None),
    "run": (["run", "--service", "scheduler", "--yes", "--", "airflow", "dags", "reserialize"], None),
    "logs": (["logs", "worker", "--since", "1h"], None),
}


@pytest.mark.parametrize("command", list(RUNS))
def test_each_command_runs_on_its_own_policy_and_calls_nothing_else(command, cluster, run, ecs, clock, monkeypatch):
    args, prepare = RUNS[command]
    if prepare:
        prepare(ecs, clock)
    document = policy(Scope(), [command])
    with operator(monkeypatch, widened(document)) as calls:
        result = run(*NAMES, *args)
    assert result.exit_code == 0, result.output
    assert "access denied" not in result.stderr
    assert set(calls) <= set(actions(document)), sorted(set(calls) - set(actions(document)))
    assert cluster_state(ecs)["tags"] == []  # the lease was released
    assert {"run": "ecs:RunTask", "logs": "logs:FilterLogEvents"}.get(command, "ecs:DescribeServices") in calls


def test_a_crashing_deployment_is_diagnosed_under_the_policy(cluster, run, ecs, sim, monkeypatch):
    """The failure path's reads (the task definition, the crashed task's log lines) are in the policy too."""
    sim.crash_deployments(WORKER, exit_code=3)
    document = policy(Scope(), ["redeploy"])
    with operator(monkeypatch, widened(document)) as calls:
        result = run(*NAMES, "redeploy", "--yes")
    assert result.exit_code == 1 and "access denied" not in result.stderr, result.output
    assert "exited with code 3" in result.stderr and "last log lines" in result.stderr
    assert {"ecs:DescribeTaskDefinition", "logs:GetLogEvents"} <= set(calls) <= set(actions(document))


@pytest.fixture
def registry(sim):
    from workflow_sandbox.images import push_image, random_layers
    from workflow_sandbox.registry import Registry, simulated_ecr

    with simulated_ecr(Registry()) as simulated:
        ecr = shared_client("ecr")
        for name in ("airflow-stage", "airflow-prod"):
            ecr.create_repository(repositoryName=name)
        push_image(ecr, "airflow-stage", random_layers(2, 1024, seed=3), "latest")
        yield simulated


def test_promote_runs_on_its_own_policy(registry, run, monkeypatch):
    document = policy(Scope(), ["promote"])
    with operator(monkeypatch, widened(document)) as calls:
        result = run("promote", "--yes")
    assert result.exit_code == 0, result.output
    assert set(calls) <= set(actions(document))
    with operator(monkeypatch, widened(document, without=["ecr:PutImage"])):
        denied = run("promote", "--yes", "--tag", "again")
    assert denied.exit_code == 2 and "access denied to PutImage" in denied.stderr


@pytest.mark.parametrize("command", ["stop-scheduler", "redeploy", "initialize", "logs"])
def test_without_any_one_action_the_command_fails_naming_it(command, cluster, run, ecs, clock, monkeypatch):
    """Each action the command calls is needed: without it the command stops at that call, naming the action;
    nothing was changed if the call came before the command's first change, else it says the cluster's state."""
    args, _ = RUNS[command]
    document = policy(Scope(), [command])
    initial = cluster_state(ecs)
    with operator(monkeypatch, widened(document)) as calls:
        assert run(*NAMES, *args).exit_code == 0
    called = list(dict.fromkeys(calls))
    restore(ecs, clock, initial)
    for action in actions(document):
        if action not in called:
            # Not on the success path: hints for a 'not found' error, a crashed task's diagnosis, and
            # iam:PassRole, which ECS checks inside RunTask (moto does not).
            assert needs_of(action) in ("hint", "authorization") or action in (
                "ecs:DescribeTaskDefinition", "logs:GetLogEvents"), action
            continue
        before = cluster_state(ecs)
        with operator(monkeypatch, widened(document, without=[action])) as calls:
            result = run(*NAMES, *args)
        name = action.split(":")[1]
        assert f"access denied to {name}" in result.stderr, (action, result.output)
        if action in SURVIVES:
            assert result.exit_code == 0 and SURVIVES[action] in result.stderr, (action, result.output)
        else:
            assert result.exit_code == 2, (action, result.output)
            denied_at = calls.index(action)
            if not WRITES & set(calls[:denied_at]):
                assert cluster_state(ecs) == before, action
            else:
                assert "cluster state:" in result.stderr, (action, result.output)
        restore(ecs, clock, initial)

