"""`workflow iam-policy`: the policy is valid IAM (parliament), and it is exactly enough (moto's IAM enforcement).

moto checks each request's action against the caller's policies, but sees every request as resource `*` and
cannot evaluate most conditions; so the enforcement tests run the commands under the policy's actions with
resources widened to `*` (`iam_policy.widened`), while parliament checks the real resources and conditions.
The commands run on both cluster shapes: the seed's three Airflow 2 services, and Airflow 3's parts behind an
application load balancer with an RDS database, where redeploy migrates with a snapshot, rollback downgrades, and
Airflow's URL is found through ELBv2 and its credentials read from Secrets Manager.
"""

import fnmatch
import importlib.resources
import json
import re
import sys
import types
from contextlib import contextmanager
from datetime import datetime
from unittest import mock

import pytest
import snapshots
from botocore.client import BaseClient
from click.testing import CliRunner
from conftest import ACCOUNT, CLUSTER, NAMES, REGION, SCHEDULER, WORKER, shared_client
from helpers import cluster_arn, describe, describe_services, flat, free_port, retag
from moto.core import enable_iam_authentication

from workflow.cli import main
from workflow.iam_policy import (
    CLUSTER_TAGS,
    COMMANDS,
    GRANTS,
    LEASE_TAG_PREFIX,
    SERVICE_TAGS,
    Scope,
    actions,
    explain,
    needs_of,
    policy,
    widened,
)

ROLE = f"arn:aws:iam::{ACCOUNT}:role/airflow-task"
SECRET_NAME = "airflow-api"


def iam_policy(*args, env=None):
    return CliRunner().invoke(main, ["--cluster", CLUSTER, "iam-policy", *args], env=env)


def printed(*args) -> dict:
    result = iam_policy(*args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def statement(document: dict, action: str, sid: str = "") -> dict:
    (found,) = [s for s in document["Statement"] if action in s["Action"] and s["Sid"].startswith(sid)]
    return found


def grant_of(sid: str) -> str:
    """The grant a Sid names (its part before `For`), under either of its names."""
    label = sid.split("For", 1)[0]
    return next(key for key, grant in GRANTS.items() if label in (key, grant.any_sid))


# --- the document ---------------------------------------------------------------------------------------------


def test_prints_the_policy_for_the_default_names():
    document = printed()
    assert document == policy(Scope())
    assert document["Version"] == "2012-10-17"
    # The commands find the services, and their roles, when they run: the policy covers the cluster's every service.
    update = statement(document, "ecs:UpdateService")
    assert update["Resource"] == f"arn:aws:ecs:*:*:service/{CLUSTER}/*"
    assert update["Sid"].startswith("UpdateAnyService")
    assert statement(document, "ecs:DescribeServices")["Resource"] == f"arn:aws:ecs:*:*:service/{CLUSTER}/*"
    assert statement(document, "ecs:ListTasks")["Condition"] == {"ArnLike": {"ecs:cluster": f"arn:aws:ecs:*:*:cluster/{CLUSTER}"}}
    assert statement(document, "ecs:ListServices")["Condition"] == statement(document, "ecs:ListTasks")["Condition"]
    run_task = statement(document, "ecs:RunTask")
    assert run_task["Resource"] == f"arn:aws:ecs:*:*:task-definition/{CLUSTER}-*:*"
    assert run_task["Sid"].startswith("RunClusterFamilies")
    assert statement(document, "ecr:PutImage")["Resource"] == "arn:aws:ecr:*:*:repository/airflow-prod"
    source = statement(document, "ecr:GetDownloadUrlForLayer", "ReadSourceImage")
    assert source["Resource"] == "arn:aws:ecr:*:*:repository/airflow-stage"
    assert "ecr:PutImage" not in source["Action"]
    assert statement(document, "ecr:GetAuthorizationToken")["Resource"] == "*"  # the registry API's token
    # Airflow's URL through ELBv2, whose Describe actions support no resource.
    elb = statement(document, "elasticloadbalancing:DescribeTargetGroups")
    assert elb["Resource"] == "*"
    assert set(elb["Action"]) == {
        f"elasticloadbalancing:Describe{what}" for what in ("TargetGroups", "LoadBalancers", "Listeners", "Rules")}
    # The snapshot: the instance, and only snapshots named as database.take_snapshot names them.
    snapshot = statement(document, "rds:CreateDBSnapshot")
    assert snapshot["Resource"] == ["arn:aws:rds:*:*:db:airflow-prod-db",
                                    "arn:aws:rds:*:*:snapshot:airflow-prod-????????-??????"]
    assert statement(document, "rds:DescribeDBSnapshots")["Resource"] == snapshot["Resource"][1]
    assert not [a for a in actions(document) if a.startswith(("secretsmanager:", "kms:"))]  # no secret named


def test_the_snapshot_pattern_is_the_names_the_snapshots_get():
    from workflow.rds import snapshot_name

    for cluster in ("airflow-prod", "Airflow_Prod", "9lives"):
        pattern = Scope(cluster=cluster).snapshot_pattern.rsplit(":", 1)[1]
        name = snapshot_name(cluster, datetime(2026, 12, 1, 8, 30, 5))
        assert fnmatch.fnmatchcase(name, pattern), (name, pattern)
        assert not fnmatch.fnmatchcase(snapshot_name(cluster + "-eu", datetime(2026, 12, 1)), pattern)  # another cluster's


def test_each_sid_names_the_commands_it_serves():
    for document in (printed(), printed("--airflow-credentials-secret", SECRET_NAME)):
        for s in document["Statement"]:
            assert re.fullmatch(r"[A-Za-z0-9]+", s["Sid"])
            grant = grant_of(s["Sid"])
            served = [c for c in COMMANDS if any(u.grant == grant for u in COMMANDS[c])]
            assert s["Sid"].split("For", 1)[1] == "".join(w.capitalize() for c in served for w in c.split("-")), s["Sid"]
    assert not [key for key, grant in GRANTS.items() if "For" in key + (grant.any_sid or "")]  # the Sid's separator


def test_a_command_gets_only_what_it_calls():
    document = printed("--command", "stop-scheduler")
    assert actions(document) == sorted([
        "ecs:ListServices", "ecs:DescribeServices",  # the cluster's services, and their roles
        "ecs:UpdateService", "ecs:ListTasks", "ecs:DescribeTasks",  # the stop and its wait
        "ecs:DescribeClusters", "ecs:ListTagsForResource", "ecs:TagResource", "ecs:UntagResource",  # lease, count
        "ecs:ListClusters",  # the hint when the cluster is not found
    ])
    # It tags a scheduler with its count and never removes that tag; start-scheduler only removes it.
    assert statement(document, "ecs:TagResource", "TagAnyService")["Action"] == "ecs:TagResource"
    start = printed("--command", "start-scheduler")
    assert statement(start, "ecs:UntagResource", "TagAnyService")["Action"] == "ecs:UntagResource"
    promote = printed("--command", "promote", "--source-repository", "stage", "--dest-repository", "prod")
    assert {a.split(":")[0] for a in actions(promote)} == {"ecr"}
    assert statement(promote, "ecr:PutImage")["Resource"].endswith(":repository/prod")
    both = printed("--command", "promote", "--command", "status")
    assert set(actions(both)) == set(actions(promote)) | set(actions(printed("--command", "status")))
    status = printed("--command", "status")
    assert statement(status, "ecr:DescribeImages")["Sid"] == "ReadReleasesForStatus"  # the tags and versions of what runs
    assert not {"ecs:UpdateService", "ecs:RunTask", "ecs:TagResource", "rds:CreateDBSnapshot"} & set(actions(status))


def test_promote_alone_needs_no_cluster():
    result = CliRunner().invoke(main, ["iam-policy", "--command", "promote"])
    assert result.exit_code == 0, result.output
    assert "ecr:PutImage" in result.stdout
    assert CliRunner().invoke(main, ["iam-policy", "--command", "status"]).exit_code == 2  # Missing option '--cluster'


def test_names_account_region_and_partition():
    document = printed("--account", ACCOUNT, "--region", "eu-west-1", "--command", "initialize", "--pass-role", ROLE)
    assert statement(document, "ecs:RunTask")["Condition"] == {
        "ArnEquals": {"ecs:cluster": f"arn:aws:ecs:eu-west-1:{ACCOUNT}:cluster/{CLUSTER}"}}
    by_arn = CliRunner().invoke(main, ["--cluster", f"arn:aws-cn:ecs:cn-north-1:{ACCOUNT}:cluster/{CLUSTER}",
                                       "iam-policy", "--command", "status", "--airflow-credentials-secret", SECRET_NAME])
    assert by_arn.exit_code == 0, by_arn.output
    assert f"arn:aws-cn:ecs:cn-north-1:{ACCOUNT}:service/{CLUSTER}/*" in by_arn.stdout
    decrypt = statement(json.loads(by_arn.stdout), "kms:Decrypt")
    assert decrypt["Condition"]["StringEquals"] == {"kms:ViaService": "secretsmanager.cn-north-1.amazonaws.com.cn"}


def test_pass_role_is_towards_ecs_tasks_and_warns_when_unnamed():
    unnamed = iam_policy("--command", "initialize")
    assert unnamed.exit_code == 0, unnamed.output
    assert "warning: iam:PassRole is allowed on every role" in unnamed.stderr
    assert statement(json.loads(unnamed.stdout), "iam:PassRole")["Resource"] == "arn:aws:iam::*:role/*"
    named = iam_policy("--command", "initialize", "--pass-role", ROLE, "--pass-role", ROLE + "-execution")
    assert named.exit_code == 0, named.output
    assert "warning" not in named.stderr
    passing = statement(json.loads(named.stdout), "iam:PassRole")
    assert passing["Resource"] == [ROLE, ROLE + "-execution"]
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}
    assert "warning" not in iam_policy("--command", "status").stderr


def test_tagging_names_exactly_the_keys_each_command_writes():
    from workflow import changes, database, lease, rollback

    assert lease.TAG_PREFIX == LEASE_TAG_PREFIX
    assert CLUSTER_TAGS == (LEASE_TAG_PREFIX + "*", database.SCHEMA_TAG, rollback.ROLLBACK_TAG)
    assert SERVICE_TAGS == (changes.STOPPED_COUNT_TAG,)

    def keys(document: dict, sid: str) -> list[str]:
        condition = statement(document, "ecs:TagResource" if "ecs:TagResource" in json.dumps(document) else
                              "ecs:UntagResource", sid)["Condition"]
        assert condition["Null"] == {"aws:TagKeys": "false"}  # a request must name its keys
        return condition["ForAllValues:StringLike"]["aws:TagKeys"]

    everything = printed()
    assert keys(everything, "WriteClusterTags") == ["workflow-lease-*", "workflow-airflow-schema", "workflow-rollback"]
    assert keys(everything, "TagAnyService") == ["workflow-stopped-count"]
    assert keys(printed("--command", "stop-scheduler"), "WriteClusterTags") == ["workflow-lease-*"]
    assert keys(printed("--command", "initialize"), "WriteClusterTags") == ["workflow-lease-*", "workflow-airflow-schema"]
    assert keys(printed("--command", "redeploy"), "WriteClusterTags") == [  # a rollback left over is removed
        "workflow-lease-*", "workflow-airflow-schema", "workflow-rollback"]
    repository = statement(everything, "ecr:TagResource")
    assert repository["Resource"] == "arn:aws:ecr:*:*:repository/airflow-prod"
    assert repository["Condition"]["ForAllValues:StringLike"] == {"aws:TagKeys": ["workflow-lease-*"]}


def test_the_credentials_secret_only_when_named():
    arn = f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:{SECRET_NAME}-AbCdEf"
    for document in (printed("--airflow-credentials-secret", arn),
                     json.loads(CliRunner().invoke(main, ["--cluster", CLUSTER, "--airflow-credentials-secret", arn,
                                                          "iam-policy"]).stdout)):
        read = statement(document, "secretsmanager:GetSecretValue")
        assert read["Resource"] == arn
        assert read["Sid"] == "ReadAirflowSecretForRedeployStartSchedulerStatusRollback"
        decrypt = statement(document, "kms:Decrypt")
        assert decrypt["Resource"] == "arn:aws:kms:eu-west-1:*:key/*"
        assert decrypt["Condition"] == {"StringEquals": {"kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com",
                                                         "kms:EncryptionContext:SecretARN": arn}}
    by_name = printed("--airflow-credentials-secret", SECRET_NAME, "--account", ACCOUNT, "--region", "eu-west-1")
    suffixed = f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:{SECRET_NAME}-??????"  # Secrets Manager's suffix
    assert statement(by_name, "secretsmanager:GetSecretValue")["Resource"] == suffixed
    assert statement(by_name, "kms:Decrypt")["Condition"]["StringLike"] == {"kms:EncryptionContext:SecretARN": suffixed}
    assert "secretsmanager" not in json.dumps(printed("--airflow-credentials-secret", SECRET_NAME, "--command", "logs"))


def test_an_airflow_url_given_needs_no_load_balancer():
    given = CliRunner().invoke(main, ["--cluster", CLUSTER, "--airflow-url", "https://airflow.example.com",
                                      "iam-policy"])
    assert given.exit_code == 0, given.output
    assert "elasticloadbalancing" not in given.stdout
    assert "elasticloadbalancing" in iam_policy().stdout


def test_the_database_instance_is_named():
    document = printed("--db-instance", "metadata", "--account", ACCOUNT, "--region", "eu-west-1")
    assert statement(document, "rds:CreateDBSnapshot")["Resource"][0] == f"arn:aws:rds:eu-west-1:{ACCOUNT}:db:metadata"
    assert "rds:" not in json.dumps(printed("--command", "initialize", "--command", "status"))  # only --snapshot's commands


def test_a_policy_over_the_managed_policy_limit_says_how_to_split_it():
    def size(document: dict) -> int:
        return len(json.dumps(document, separators=(",", ":")))  # as IAM counts: no whitespace

    fits = iam_policy("--account", ACCOUNT, "--region", "eu-west-1", "--pass-role", ROLE)
    assert fits.exit_code == 0, fits.output
    assert size(json.loads(fits.stdout)) <= 6144
    assert "warning: this policy" not in fits.stderr
    over = iam_policy("--account", ACCOUNT, "--region", "eu-west-1", "--pass-role", ROLE, "--pass-role", ROLE + "-exec",
                      "--airflow-credentials-secret", SECRET_NAME)
    assert size(json.loads(over.stdout)) > 6144
    assert "more than the 6,144 IAM allows" in flat(over.stderr)
    for part in (["redeploy", "rollback"], [c for c in COMMANDS if c not in ("redeploy", "rollback")]):
        split = iam_policy("--account", ACCOUNT, "--region", "eu-west-1", "--pass-role", ROLE, "--pass-role",
                           ROLE + "-exec", "--airflow-credentials-secret", SECRET_NAME,
                           *[w for c in part for w in ("--command", c)])
        assert size(json.loads(split.stdout)) <= 6144, part
        assert "warning: this policy" not in split.stderr, part


def test_explain_says_why_and_what_is_lost(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    result = iam_policy("--explain")
    assert result.exit_code == 0, result.output
    assert "FindAirflowUrl (for redeploy, start-scheduler, status, rollback)" in result.stdout
    assert [line for line in result.stdout.splitlines() if len(line) > 80] == []  # a Sid ran to 93 columns
    assert "need: ancillary" in result.stdout
    assert "need: authorization" in result.stdout
    assert "but status: ancillary" in " ".join(result.stdout.split())  # the lease read: only a warning in status
    rows = explain(Scope())
    assert [r["sid"] for r in rows] == [s["Sid"] for s in policy(Scope())["Statement"]]
    assert all(r["why"] for r in rows)


def test_no_aws_call_unless_asked(monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with mock.patch.object(BaseClient, "_make_api_call", side_effect=AssertionError("an AWS call")):
        assert iam_policy().exit_code == 0
    no_credentials = iam_policy("--lookup-account")
    assert no_credentials.exit_code == 2, no_credentials.output
    assert "Unable to locate credentials" in no_credentials.stderr


def test_lookup_account_asks_sts(sim):
    document = printed("--lookup-account", "--command", "status")
    assert f":{ACCOUNT}:service/" in statement(document, "ecs:DescribeServices")["Resource"]


def test_every_operation_the_code_names_is_in_the_policy():
    """Read from the code: each operation the modules that call AWS name (every client module but sts's)."""
    import ast
    from pathlib import Path

    import botocore.session
    from botocore import xform_name

    import workflow

    allowed = set(actions(policy(Scope(airflow_secret=SECRET_NAME))))
    session = botocore.session.get_session()
    root = Path(workflow.__file__).parent
    named = set()
    for module, service in (("ecs.py", "ecs"), ("ecr.py", "ecr"), ("logs.py", "logs"), ("elb.py", "elbv2"),
                            ("secrets.py", "secretsmanager"), ("rds.py", "rds")):
        model = session.get_service_model(service)
        operations = {xform_name(op): op for op in model.operation_names}
        tree = ast.parse((root / module).read_text())
        words = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        words |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        found = {f"{model.signing_name}:{operations[w]}" for w in words if w in operations}
        assert found, f"no operation found in {module}: has the code moved?"
        named |= found
    assert named <= allowed, sorted(named - allowed)
    # ... and nothing more: every action but those AWS checks inside another call is one the code calls.
    checked_inside = {a for a in allowed if needs_of(a) == "authorization"}
    assert checked_inside == {"iam:PassRole", "kms:Decrypt"}
    assert allowed - checked_inside <= named, sorted(allowed - checked_inside - named)


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


DESCRIBED = (("scheduler", f"{CLUSTER}-scheduler"), ("dag-processor", f"{CLUSTER}-dag-processor"),
             ("worker", f"{CLUSTER}-worker"), ("worker", f"{CLUSTER}-worker-reports"))


@pytest.mark.parametrize("scope", [
    Scope(),
    Scope(region="eu-west-1", account=ACCOUNT, pass_roles=(ROLE,), log_groups=("/ecs/a", "/aws/ecs/b"),
          airflow_secret=SECRET_NAME, db_instance="metadata"),
    Scope(region="eu-west-1", account=ACCOUNT, services=DESCRIBED, task_families=(f"{CLUSTER}-scheduler",),
          airflow_secret=f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:{SECRET_NAME}-AbCdEf"),
], ids=["wildcards", "named", "described"])
def test_parliament_finds_nothing_of_substance(parliament, scope):
    assert findings(parliament, policy(scope)) <= ACCEPTED
    for command in COMMANDS:
        assert findings(parliament, policy(scope, [command])) <= ACCEPTED, command


def test_parliament_catches_what_it_checks(parliament):
    """The check is not vacuous: a resource of the wrong type, an unknown action, a condition key the action does
    not take, and an ARN for an action that supports none are found."""
    document = policy(Scope(airflow_secret=SECRET_NAME))
    statement(document, "ecs:DescribeTasks")["Resource"] = f"arn:aws:ecs:*:*:service/{CLUSTER}/{SCHEDULER}"
    statement(document, "kms:Decrypt")["Condition"]["StringLike"] = {"kms:ViaServices": "secretsmanager.*"}
    statement(document, "elasticloadbalancing:DescribeRules")["Resource"] = \
        "arn:aws:elasticloadbalancing:*:*:listener-rule/app/*"
    document["Statement"].append({"Effect": "Allow", "Action": "ecs:DescribeServicez", "Resource": "*"})
    issues = {issue for issue, _ in findings(parliament, document)}
    assert {"RESOURCE_MISMATCH", "UNKNOWN_ACTION", "UNKNOWN_CONDITION_FOR_ACTION"} <= issues


# --- moto's IAM enforcement: the actions are enough, and each one is needed -------------------------------------

_keys: dict[str, dict] = {}  # the operator user's id -> its access key, whose secret IAM shows only at creation


@contextmanager
def operator(monkeypatch, document: dict):
    """Run as the IAM user `operator` with `document` as its one policy, under enforcement; yields the calls made, in
    order, each as (action, parameters), requests to the sandbox's registry API as the ECR actions they stand for.
    The user and its key last the whole test, its policy replaced at each run, so the CLI's AWS environment stays the
    same and its clients are built once per test (see conftest's `_clients`)."""
    iam = shared_client("iam")
    try:
        user = iam.get_user(UserName="operator")["User"]
    except iam.exceptions.NoSuchEntityException:
        user = iam.create_user(UserName="operator")["User"]
        _keys[user["UserId"]] = iam.create_access_key(UserName="operator")["AccessKey"]
    key = _keys[user["UserId"]]
    iam.put_user_policy(UserName="operator", PolicyName="workflow", PolicyDocument=json.dumps(document))
    calls: list[tuple[str, dict]] = []
    original = BaseClient._make_api_call

    def recorded(client, operation, params):
        calls.append((f"{client.meta.service_model.signing_name}:{operation}", params))
        return original(client, operation, params)

    from workflow_sandbox.registry import _RegistryApi  # loaded with moto's models, in the process that runs tests

    authorize = _RegistryApi._authorize

    def asked(handler, action: str) -> None:  # a registry API request: the ECR action it stands for
        calls.append((f"ecr:{action}", {}))
        authorize(handler, action)

    with monkeypatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
        env.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
        with mock.patch.object(BaseClient, "_make_api_call", recorded), mock.patch.object(_RegistryApi, "_authorize", asked), \
                enable_iam_authentication():
            yield calls


def called(calls) -> list[str]:
    return list(dict.fromkeys(action for action, _ in calls))


def is_write(action: str, params: dict) -> bool:
    """A change to the cluster, its repository or its database. A lease tag is not one (it is taken and released),
    nor a scheduler's remembered count (bookkeeping, read only by this tool)."""
    if action in ("ecs:UpdateService", "ecs:RunTask", "ecr:PutImage", "ecr:InitiateLayerUpload", "rds:CreateDBSnapshot"):
        return True
    if action in ("ecs:TagResource", "ecs:UntagResource") and ":cluster/" in params.get("resourceArn", ""):
        keys = [t.get("key") for t in params.get("tags", [])] + list(params.get("tagKeys", []))
        return any(not str(k).startswith(LEASE_TAG_PREFIX) for k in keys)  # the schema's, or a rollback's record
    return False


def cluster_state(ecs, services: list[str]) -> dict:
    arn = cluster_arn(ecs)
    return {
        "services": {name: (s["desiredCount"], sorted(d["id"] for d in s["deployments"]))
                     for name, s in describe_services(ecs, *services).items()},
        "tasks": sorted(ecs.list_tasks(cluster=CLUSTER)["taskArns"]),
        "tags": ecs.list_tags_for_resource(resourceArn=arn).get("tags", []),
    }


# The seed's three-service Airflow 2 cluster: each command on its own policy, with nothing else.

RUNS = {  # command -> (arguments, what to do to the running cluster first)
    "status": (["status"], None),
    "stop-scheduler": (["stop-scheduler", "--yes"], None),
    "start-scheduler": (["start-scheduler"], lambda ecs, clock: stopped(ecs, clock, SCHEDULER)),
    "redeploy": (["redeploy", "--yes", "--stability-window", "0"], None),
    "initialize": (["initialize", "--yes"], None),
    "run": (["run", "--service", "scheduler", "--yes", "--", "airflow", "dags", "reserialize"], None),
    "logs": (["logs", "worker", "--since", "1h"], None),
}


def stopped(ecs, clock, scheduler: str, count: int | None = None):
    """The scheduler stopped; with `count`, as stop-scheduler leaves one that ran `count` tasks."""
    ecs.update_service(cluster=CLUSTER, service=scheduler, desiredCount=0)
    if count:
        arn = describe(ecs, scheduler)["serviceArn"]
        ecs.tag_resource(resourceArn=arn, tags=[{"key": SERVICE_TAGS[0], "value": str(count)}])
    clock.sleep(30)


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
    assert set(called(calls)) <= set(actions(document)), sorted(set(called(calls)) - set(actions(document)))
    assert cluster_state(ecs, [SCHEDULER, WORKER])["tags"] == []  # the lease was released
    assert {"run": "ecs:RunTask", "logs": "logs:FilterLogEvents"}.get(command, "ecs:DescribeServices") in called(calls)


def test_a_crashing_deployment_is_diagnosed_under_the_policy(cluster, run, ecs, sim, monkeypatch):
    """The failure path's reads (the task definition, the crashed task's log lines) are in the policy too."""
    sim.crash_deployments(WORKER, exit_code=3)
    document = policy(Scope(), ["redeploy"])
    with operator(monkeypatch, widened(document)) as calls:
        result = run(*NAMES, "redeploy", "--yes")
    assert result.exit_code == 1, result.output
    assert "access denied" not in result.stderr, result.output
    assert "exited with code 3" in result.stderr
    assert "last log lines" in result.stderr
    assert {"ecs:DescribeTaskDefinition", "logs:GetLogEvents"} <= set(called(calls)) <= set(actions(document))


# An Airflow 3 cluster: scheduler, dag-processor, api-server behind an application load balancer, triggerer, two
# worker queues, an RDS database. Airflow's URL is behind a listener rule (so the discovery reads the rules too), on
# loopback where nothing answers (the discovery's calls are made all the same), and its credentials are in Secrets
# Manager.

V1, V2 = "3.2.2", "3.3.2"  # two schemas apart
REPO = "airflow-prod"
A3 = [f"{CLUSTER}-{name}" for name in ("scheduler", "dag-processor", "api-server", "triggerer", "worker",
                                       "worker-reports")]


@pytest.fixture
def world(sim, clock, sim_registry):
    """`world(running, latest, schedulers)` builds the Airflow 3 cluster running release `running` (v1 or v2) with the
    database at its schema, `latest` naming release `latest`, the scheduler at `schedulers` tasks; returns the ARN of
    the secret holding Airflow's credentials."""
    from workflow.airflow_schema import schema_of
    from workflow_sandbox.airflow_db import AirflowDatabase
    from workflow_sandbox.image_config import config_reader
    from workflow_sandbox.images import push_image
    from workflow_sandbox.provision import provision_cluster, running_counts
    from workflow_sandbox.server import airflow_image_config, release_layers

    def build(running: str = "v1", latest: str = "v1", schedulers: int = 1) -> str:
        ecr = sim_registry.ecr
        version = {"v1": V1, "v2": V2}[running]
        sim.image_config = config_reader(sim_registry)

        def make():
            ecr.create_repository(repositoryName=REPO)
            pushed = {name: push_image(ecr, REPO, release_layers(n), stamp, config=airflow_image_config(airflow))
                      for name, n, stamp, airflow in (("v1", 1, "20261101T000000Z", V1),
                                                      ("v2", 2, "20261201T000000Z", V2))}
            retag(ecr, REPO, pushed[running], "latest")
            sim.database = AirflowDatabase(head=schema_of(version))
            provisioned = provision_cluster(shared_client, counts={**running_counts(3), "scheduler": schedulers},
                                            airflow=3)
            clock.sleep(60)
            ecs = shared_client("ecs")
            ecs.tag_resource(resourceArn=cluster_arn(ecs),
                             tags=[{"key": "workflow-airflow-schema", "value": version}])  # as a migration leaves it
            return provisioned, pushed

        provisioned, pushed = snapshots.world(f"iam-policy airflow3 {running} {schedulers}", sim, clock, sim_registry,
                                              REGION, make)
        # Airflow's URL: on a port where nothing answers now, behind a listener rule.
        elbv2 = shared_client("elbv2")
        elbv2.modify_listener(ListenerArn=provisioned.listener, Port=free_port(), DefaultActions=[
            {"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404"}}])
        elbv2.create_rule(ListenerArn=provisioned.listener, Priority=10, Actions=[
            {"Type": "forward", "TargetGroupArn": provisioned.target_group}],
            Conditions=[{"Field": "host-header", "HostHeaderConfig": {"Values": ["127.0.0.1"]}}])
        if latest != running:
            retag(ecr, REPO, pushed[latest], "latest")
        return shared_client("secretsmanager").create_secret(
            Name=SECRET_NAME, SecretString=json.dumps({"username": "admin", "password": "admin"}))["ARN"]

    return build


def ha_stopped(ecs, clock):
    """As stop-scheduler leaves Airflow's HA schedulers: stopped, their count remembered for the start."""
    stopped(ecs, clock, A3[0], count=2)


# command -> (arguments, the world it runs in, what to do to it first). The scheduler commands, redeploy and rollback
# run Airflow's HA schedulers, so their count is remembered (a service tag) and restored.
A3_RUNS = {
    "status": (["status"], {}, None),
    "stop-scheduler": (["stop-scheduler", "--yes"], {"schedulers": 2}, None),
    "start-scheduler": (["start-scheduler"], {"schedulers": 2}, ha_stopped),
    "redeploy": (["redeploy", "--yes", "--migrate", "--snapshot", f"{CLUSTER}-db", "--stability-window", "0"],
                 {"latest": "v2", "schedulers": 2}, ha_stopped),
    "rollback": (["rollback", "--yes", "--downgrade-db", "--snapshot", f"{CLUSTER}-db", "--stability-window", "0"],
                 {"running": "v2", "latest": "v2", "schedulers": 2}, ha_stopped),
    "initialize": (["initialize", "--yes", "--from", "scheduler"], {}, None),
    "run": (["run", "--service", "scheduler", "--yes", "--", "airflow", "dags", "reserialize"], {}, None),
    "logs": (["logs", "worker", "--since", "1h"], {}, None),
    "releases": (["releases"], {}, None),
}
FULL = Scope(airflow_secret=SECRET_NAME)  # the policy's actions as these runs need them: a secret is read

# Actions a command's success path does not call: the hint of a 'not found' error, what AWS checks inside another
# call (moto does not), and the reads of a failure's diagnosis (exercised by the crash test above) or of a migration's
# log. Checked by the runs on their own policy, not by running the command without them.
OFF_THE_SUCCESS_PATH = {"ecs:ListClusters", "iam:PassRole", "kms:Decrypt"}
DIAGNOSIS = {"logs:GetLogEvents", "ecs:DescribeTaskDefinition"}
# What a command does without an action where that is not what its need says, each with why. These are the code's
# gaps, not the policy's: an ancillary read lost without a word, a denial that is not named as one.
SILENT = {  # (command, action): the read is lost and the command says nothing of it
    ("redeploy", "ecr:DescribeImages"): "plan.py shows the release as unknown without saying why",
    ("status", "ecr:BatchGetImage"): "status.py shows no Airflow version without saying why",
    ("status", "ecr:GetDownloadUrlForLayer"): "the same",
    ("releases", "ecr:GetDownloadUrlForLayer"): "image_config.airflow_versions leaves the version out without a word",
}
OTHERWISE: dict[tuple[str, str], tuple[int, str]] = {}  # (command, action): (exit code, what it says instead)


def run_airflow3(command: str, world, run, ecs, clock, monkeypatch, without: tuple[str, ...] = ()):
    """The command on the Airflow 3 cluster under its own policy, less `without`: (result, calls, document, state
    before)."""
    args, shape, prepare = A3_RUNS[command]
    secret = world(**shape)
    if prepare:
        prepare(ecs, clock)
    document = policy(Scope(airflow_secret=secret), [command])
    before = cluster_state(ecs, A3)
    with operator(monkeypatch, widened(document, without)) as calls:
        result = run("--cluster", CLUSTER, "--airflow-credentials-secret", secret, *args)
    return result, calls, document, before


@pytest.mark.parametrize("command", list(A3_RUNS))
def test_each_command_runs_on_its_own_policy_on_airflow3(command, world, run, ecs, clock, sim, monkeypatch):
    result, calls, document, _ = run_airflow3(command, world, run, ecs, clock, monkeypatch)
    assert result.exit_code == 0, result.stderr[-3000:]
    assert "access denied" not in result.stderr
    made, allowed = set(called(calls)), set(actions(document))
    assert made <= allowed, sorted(made - allowed)
    assert allowed - made <= OFF_THE_SUCCESS_PATH | DIAGNOSIS, sorted(allowed - made)  # the rest is called
    assert not [t for t in cluster_state(ecs, A3)["tags"] if t["key"].startswith(LEASE_TAG_PREFIX)]  # released
    if command in ("status", "start-scheduler", "redeploy", "rollback"):  # Airflow's URL, then its credentials
        assert {"elasticloadbalancing:DescribeRules", "secretsmanager:GetSecretValue"} <= made
        assert "cannot reach Airflow at http://127.0.0.1:" in flat(result.stderr)  # found behind the rule
    if command in ("redeploy", "rollback"):
        from workflow.airflow_schema import schema_of

        assert {"rds:CreateDBSnapshot", "ecs:RunTask", "ecr:TagResource"} <= made
        assert sim.database.head == schema_of(V2 if command == "redeploy" else V1)  # migrated, or downgraded


def test_describe_cluster_names_the_services_by_role(world, run, monkeypatch):
    world()
    with operator(monkeypatch, {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*", "Action": [
            "ecs:ListServices", "ecs:DescribeServices", "ecs:DescribeTaskDefinition"]}]}) as calls:
        result = run("--cluster", CLUSTER, "iam-policy", "--describe-cluster")
    assert result.exit_code == 0, result.output
    assert set(called(calls)) == {"ecs:ListServices", "ecs:DescribeServices", "ecs:DescribeTaskDefinition"}  # reads
    document = json.loads(result.stdout)
    arn = f"arn:aws:ecs:us-east-1:{ACCOUNT}"  # the account and Region the cluster is in
    update = statement(document, "ecs:UpdateService")
    assert update["Sid"].startswith("UpdateNamedServices")
    assert sorted(update["Resource"]) == sorted(f"{arn}:service/{CLUSTER}/{name}" for name in A3)
    assert statement(document, "ecs:DescribeServices")["Resource"] == f"{arn}:service/{CLUSTER}/*"  # all, to find roles
    counts = statement(document, "ecs:TagResource", "TagNamedSchedulers")  # only schedulers and dag-processors
    assert counts["Resource"] == [f"{arn}:service/{CLUSTER}/{name}" for name in A3[:2]]
    families = statement(document, "ecs:RunTask")
    assert families["Sid"].startswith("RunNamedFamilies")
    assert sorted(families["Resource"]) == sorted(f"{arn}:task-definition/{name}:*" for name in A3)
    assert statement(document, "logs:FilterLogEvents")["Resource"] == \
        f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/ecs/{CLUSTER}:*"  # from the task definitions' awslogs options
    stop = json.loads(run("--cluster", CLUSTER, "iam-policy", "--describe-cluster", "--command", "stop-scheduler").stdout)
    assert statement(stop, "ecs:UpdateService")["Resource"] == f"{arn}:service/{CLUSTER}/{A3[0]}"
    assert run("iam-policy", "--describe-cluster", "--command", "promote").exit_code == 2  # no cluster to describe


@pytest.fixture
def registry(sim_registry):
    from workflow_sandbox.images import push_image, random_layers

    for name in ("airflow-stage", "airflow-prod"):
        sim_registry.ecr.create_repository(repositoryName=name)
    push_image(sim_registry.ecr, "airflow-stage", random_layers(2, 1024, seed=3), "latest")
    return sim_registry


PROMOTE_PATHS = {"registry API": [], "ECR API": ["--via", "ecr-api"]}
# The registry API's refusals are a failed copy (exit 1), an HTTP status or IAM's own words, not a denial named as one.
REGISTRY_REFUSALS = {
    "ecr:BatchCheckLayerAvailability": (2, "HTTP 403"),
    "ecr:GetDownloadUrlForLayer": (1, "fresh URLs were refused too"),
    "ecr:InitiateLayerUpload": (2, "not authorized to perform: ecr:InitiateLayerUpload"),
    "ecr:CompleteLayerUpload": (1, "not authorized to perform: ecr:CompleteLayerUpload"),
}


def test_promote_runs_on_its_own_policy_on_either_path(registry, run, monkeypatch):
    """The registry API (through the sandbox's registry, which authorizes each request as the ECR action it stands
    for) and the ECR API: each within the policy, and every action of it used by one path or the other."""
    document = policy(Scope(), ["promote"])
    made: set[str] = set()
    for path, args in reversed(PROMOTE_PATHS.items()):  # the ECR API copies the blobs, the registry API finds them
        with operator(monkeypatch, widened(document)) as calls:
            result = run("promote", "--yes", *args, *(["--tag", "again"] if made else []))
        assert result.exit_code == 0, result.output
        assert path in result.stderr, result.output
        assert set(called(calls)) <= set(actions(document)), (path, sorted(set(called(calls)) - set(actions(document))))
        made |= set(called(calls))
    assert set(actions(document)) - made == {"ecr:BatchDeleteImage"}  # only to undo the tags of a failed promote


# Without each action in turn: the command stops at that call, naming it, with nothing changed when no change came
# before it (else saying the cluster's state); or, for what it can do without, goes on and says what it lost.


# Airflow's URL is looked up by the same code for every command (App._airflow_api), and its loss is the same warning:
# checked without each ELBv2 read on the two quickest commands; redeploy's and rollback's runs show they call them.
ELBV2_CHECKED_ON = ("status", "start-scheduler")


def removals(commands) -> list[tuple[str, str]]:
    return [(command, action) for command in commands for action in actions(policy(FULL, [command]))
            if action not in OFF_THE_SUCCESS_PATH
            and (not action.startswith("elasticloadbalancing:") or command in ELBV2_CHECKED_ON)]


@pytest.mark.parametrize("command, action", removals(A3_RUNS))
def test_without_any_one_action_the_command_fails_naming_it(command, action, world, run, ecs, clock, monkeypatch):
    result, calls, _, before = run_airflow3(command, world, run, ecs, clock, monkeypatch, (action,))
    check_without(command, action, result, calls, before, cluster_state(ecs, A3))


@pytest.mark.parametrize("path", list(PROMOTE_PATHS))
@pytest.mark.parametrize("action", [a for _, a in removals(["promote"])])
def test_without_any_one_action_promote_fails_naming_it(path, action, registry, run, monkeypatch):
    with operator(monkeypatch, widened(policy(Scope(), ["promote"]), [action])) as calls:
        result = run("promote", "--yes", *PROMOTE_PATHS[path])
    if action == "ecr:GetAuthorizationToken" and not PROMOTE_PATHS[path]:  # the registry API's token: the ECR API then
        assert result.exit_code == 0, result.output
        assert "access denied to GetAuthorizationToken" in flat(result.stderr)
        return
    if action in REGISTRY_REFUSALS and not PROMOTE_PATHS[path]:
        code, said = REGISTRY_REFUSALS[action]
        assert result.exit_code == code, result.output
        assert said in flat(result.output), result.output
        return
    check_without("promote", action, result, calls, None, None)


def check_without(command: str, action: str, result, calls, before: dict | None, after: dict | None) -> None:
    made = called(calls)
    output = flat(result.output)  # a warning may be in the result, on stdout
    if action not in made:  # not on this path: a diagnosis's read, or another path's
        assert action in DIAGNOSIS or command == "promote", (action, result.output)
        assert result.exit_code == 0, result.output
        return
    need = needs_of(action, command, FULL)
    name = action.split(":")[1]
    if (command, action) in OTHERWISE:
        code, said = OTHERWISE[command, action]
        assert result.exit_code == code, (action, result.output)
        assert said in output, (action, result.output)
        return
    if need == "ancillary" or (need == "lease" and name == "UntagResource"):  # a lease left expires on its own
        assert result.exit_code == 0, (need, result.output)
        assert (command, action) in SILENT or f"access denied to {name}" in output, (need, result.output)
        return
    assert result.exit_code == 2, (need, result.output)
    assert f"access denied to {name}" in output, (need, result.output)
    if before is None:
        return
    denied_at = max(i for i, (made_as, _) in enumerate(calls) if made_as == action)  # where it stopped: the last
    if any(is_write(made_as, params) for made_as, params in calls[:denied_at]):
        assert "cluster state:" in output, result.output
    else:
        assert {**after, "tags": [t for t in after["tags"] if not t["key"].startswith(LEASE_TAG_PREFIX)]} == before
