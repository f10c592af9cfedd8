"""releases lists the production repository's stamp-tagged images; rollback points latest back at one and redeploys."""

import json

import pytest
import snapshots
from botocore.stub import Stubber
from conftest import ACCOUNT, CLUSTER, NAMES, REGION, SCHEDULER, WEB, WORKER, invoke_interrupted, new_client
from helpers import (
    cluster_arn,
    describe_services,
    failed_cleanly,
    primary_id,
    repository_tags,
    resume_of,
    retag,
    running_digests,
    tag_digest,
    tagged,
)

from workflow.ecr import Ecr, tags_for_digests
from workflow.ecs import Ecs
from workflow.images import ecr_image, short
from workflow.releases import SCHEMA_NOTE, running_images
from workflow_sandbox.images import push_image, random_layers

REPO = "airflow-prod"
STAMPS = ["20261101T080000Z", "20261110T080000Z", "20261120T080000Z"]  # releases 1, 2 and 3, oldest first
URI = f"123456789012.dkr.ecr.{REGION}.amazonaws.com/{REPO}"


def push_releases(registry, count: int = 3) -> list[str]:
    """Releases 1..count, each as promote leaves it (a stamp tag; latest on the newest); returns their digests."""
    ecr = registry.ecr

    def push():
        ecr.create_repository(repositoryName=REPO)
        digests = []
        for n, stamp in enumerate(STAMPS[:count], start=1):
            image = push_image(ecr, REPO, random_layers(2, 2048 * n, seed=n), stamp)
            retag(ecr, REPO, image, "latest")
            digests.append(image["digest"])
        return digests

    return snapshots.pushed(f"releases {count}", registry, REGION, push)


@pytest.fixture
def released(registry):
    registry.digests = push_releases(registry)
    return registry


@pytest.fixture
def cluster_registry(sim_registry):
    """ECR in the simulated cluster's moto, with three releases; request it before `cluster` so that the
    cluster's tasks resolve latest to release 3 as they start."""
    sim_registry.digests = push_releases(sim_registry)
    return sim_registry


def primaries(ecs) -> dict[str, str]:
    return {name: primary_id(s) for name, s in describe_services(ecs, SCHEDULER, WORKER, WEB).items()}


# releases ------------------------------------------------------------------------------------------------


def test_releases_lists_newest_first_with_latest_marked(released, run):
    push_image(released.ecr, REPO, random_layers(1, 512, seed=9), "nightly")  # no stamp tag: not a release
    result = run("releases")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"3 release(s) in {REPO}; latest is {STAMPS[2]} ({short(released.digests[2])})"
    rows = [line for line in lines if line[:8].isdigit()]
    assert [row.split()[0] for row in rows] == STAMPS[::-1]
    assert [row.split()[1] for row in rows] == [short(d).removeprefix("sha256:") for d in released.digests[::-1]]
    assert rows[0].rstrip().endswith("latest")
    assert "latest" not in rows[1] + rows[2]
    assert "running on" not in result.stdout  # no --cluster: no column


@pytest.mark.parametrize("columns, left_out", [("200", None), ("60", "pushed at and size")])
def test_releases_says_which_columns_a_narrow_terminal_left_out(released, run, monkeypatch, columns, left_out):
    """Its --help promises when each was pushed and its size: at 80 columns they went without a word."""
    monkeypatch.setenv("COLUMNS", columns)
    result = run("releases")
    assert result.exit_code == 0, result.output
    said = " ".join(result.stdout.split())
    if left_out:
        assert f"({left_out} left out at this width: a wider terminal or --output json shows them)" in said
    else:
        assert "left out" not in said and "pushed at" in said


def test_releases_as_json_with_a_limit(released, run):
    result = run("releases", "--limit", "2", "--output", "json")
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.stdout)
    assert outcome["total"] == 3
    assert outcome["latest"] == released.digests[2]
    assert [(r["stamp"], r["digest"], r["latest"]) for r in outcome["releases"]] == [
        (STAMPS[2], released.digests[2], True), (STAMPS[1], released.digests[1], False)]
    newest = outcome["releases"][0]
    assert newest["tags"] == ["latest", STAMPS[2]]
    assert newest["size"] > 0
    assert newest["pushed_at"]
    assert outcome["running"] is None


def test_releases_of_a_missing_repository_is_exit_2(registry, run):
    result = run("releases", "--repository", "nowhere")
    assert failed_cleanly(result, 2), result.output
    assert "repository nowhere not found" in result.stderr


# rollback without a cluster --------------------------------------------------------------------------------


def test_rollback_moves_latest_to_the_previous_release_with_its_digest(released, run):
    before = repository_tags(released.ecr, REPO)
    released.uploads.clear()
    result = run("rollback", "--no-redeploy", "--yes")
    assert result.exit_code == 0, result.output
    image = tagged(released.ecr, REPO, "latest")
    assert image["imageId"]["imageDigest"] == released.digests[1]
    assert image["imageManifest"] == tagged(released.ecr, REPO, STAMPS[1])["imageManifest"]
    assert released.uploads == []  # no blob copied
    assert repository_tags(released.ecr, REPO) == {**before, "latest": released.digests[1]}  # only latest moved
    assert f"rolled back latest in {REPO} from {STAMPS[2]}" in result.stdout
    assert f"to {STAMPS[1]} ({short(released.digests[1])})" in result.stdout
    assert "the cluster was not redeployed" in result.stdout
    assert f"warning: {SCHEMA_NOTE}" in result.stdout


def test_rollback_with_no_earlier_release_is_refused(released, run):
    assert run("rollback", "--no-redeploy", "--yes").exit_code == 0  # 3 -> 2
    assert run("rollback", "--no-redeploy", "--yes").exit_code == 0  # 2 -> 1
    result = run("rollback", "--no-redeploy", "--yes")
    assert failed_cleanly(result, 2), result.output
    assert f"no release in {REPO} is older than {STAMPS[0]}" in result.stderr
    assert "nothing to roll back to" in result.stderr
    assert tag_digest(released.ecr, REPO, "latest") == released.digests[0]


def test_rollback_to_a_tag_that_does_not_exist_is_not_found(released, run):
    result = run("rollback", "--no-redeploy", "--yes", "--to", "20990101T000000Z")
    assert failed_cleanly(result, 2), result.output
    assert f"no image tagged 20990101T000000Z in {REPO}" in result.stderr
    assert f"its newest releases: {STAMPS[2]}, {STAMPS[1]}, {STAMPS[0]}" in result.stderr
    assert tag_digest(released.ecr, REPO, "latest") == released.digests[2]


def test_rollback_to_a_named_release(released, run):
    result = run("rollback", "--no-redeploy", "--yes", "--to", STAMPS[0])
    assert result.exit_code == 0, result.output
    assert tag_digest(released.ecr, REPO, "latest") == released.digests[0]
    assert result.stdout.startswith("rolled back latest")
    forward = run("rollback", "--no-redeploy", "--yes", "--to", STAMPS[2])  # to a newer release: not a roll back
    assert forward.exit_code == 0, forward.output
    assert forward.stdout.startswith(f"moved latest in {REPO} from {STAMPS[0]}"), forward.stdout


def test_rollback_to_what_latest_already_names_without_a_cluster_is_refused(released, run):
    result = run("rollback", "--no-redeploy", "--yes", "--to", STAMPS[2])
    assert failed_cleanly(result, 2), result.output
    assert f"latest in {REPO} already names {STAMPS[2]}" in result.stderr


def test_rollback_dry_run_changes_nothing(released, run):
    before = repository_tags(released.ecr, REPO)
    result = run("rollback", "--no-redeploy", "--dry-run")  # no --yes: a dry run asks nothing
    assert result.exit_code == 0, result.output
    assert f"would move latest in {REPO} from {STAMPS[2]}" in result.stdout
    assert "nothing was changed" in result.stdout
    assert repository_tags(released.ecr, REPO) == before


def test_declining_the_confirmation_changes_nothing_and_it_names_from_and_to(released, run, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    result = run("rollback", "--no-redeploy", input="n\n")
    assert result.exit_code == 1
    said = " ".join(result.stderr.split())
    assert SCHEMA_NOTE in said
    # Where it acts, as every other question says (it named neither account nor Region), and within 80 columns.
    assert (f"Roll back latest in {REPO} from {STAMPS[2]} ({short(released.digests[2])}) "
            f"to {STAMPS[1]} ({short(released.digests[1])}) (account {ACCOUNT}, {REGION})?") in said
    assert max(len(line) for line in result.stderr.splitlines()) <= 80
    assert tag_digest(released.ecr, REPO, "latest") == released.digests[2]


def test_rollback_needs_a_cluster_to_redeploy(released, run):
    result = run("rollback", "--yes")
    assert result.exit_code == 2, result.output
    assert "--cluster" in result.stderr
    assert tag_digest(released.ecr, REPO, "latest") == released.digests[2]


def test_help_says_the_schema_is_checked_and_downgraded_only_when_asked(run):
    text = " ".join(run("rollback", "--help").output.split())
    assert "The database's schema is checked first" in text
    assert "which downgrades the database with the current image before the tag moves" in text


# rollback with the simulated cluster --------------------------------------------------------------------


def test_rollback_redeploys_the_cluster_onto_the_previous_release(cluster_registry, cluster, run, ecs):
    ecr, (_, v2, v3) = cluster_registry.ecr, cluster_registry.digests
    assert {name: running_digests(ecs, name) for name in (SCHEDULER, WORKER, WEB)} == dict.fromkeys(
        (SCHEDULER, WORKER, WEB), {v3})
    before = primaries(ecs)
    listed = run(*NAMES, "releases", "--output", "json")
    assert listed.exit_code == 0, listed.output
    outcome = json.loads(listed.stdout)
    assert outcome["releases"][0]["running_on"] == {"scheduler": 1, "worker": 3, "web": 1}
    assert outcome["running"]["worker"] == {v3: 3}
    assert outcome["warnings"] == []

    dry = run(*NAMES, "rollback", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert f"would redeploy cluster {CLUSTER}" in dry.stdout
    assert primaries(ecs) == before
    assert tag_digest(ecr, REPO, "latest") == v3

    result = run(*NAMES, "rollback", "--yes")
    assert result.exit_code == 0, result.output
    assert tag_digest(ecr, REPO, "latest") == v2
    after = primaries(ecs)
    assert after[WEB] != before[WEB]
    assert after[WORKER] != before[WORKER]
    assert after[SCHEDULER] != before[SCHEDULER]
    services = describe_services(ecs, SCHEDULER, WORKER, WEB)
    assert services[SCHEDULER]["runningCount"] == services[SCHEDULER]["desiredCount"] == 1
    assert services[WORKER]["runningCount"] == 3
    for name in (SCHEDULER, WORKER, WEB):
        assert running_digests(ecs, name) == {v2}, name
    assert f"cluster {CLUSTER} redeployed" in result.stdout

    listed = run(*NAMES, "releases")
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.stdout.splitlines() if line.startswith(STAMPS[1]))
    assert "latest" in row
    assert "every service" in row

    again = run(*NAMES, "rollback", "--yes", "--to", STAMPS[1])
    assert failed_cleanly(again, 2), again.output
    assert f"cluster {CLUSTER} already runs {STAMPS[1]} ({short(v2)})" in again.stderr
    assert primaries(ecs) == after


def test_a_failed_rollback_offers_its_resume_and_not_the_same_rollback_again(cluster_registry, cluster, run, sim):
    """A redeploy's failure offers `rollback --yes` to go back a release; a rollback's own failure does not: run
    again, it would only finish this rollback (its record says where it goes), which is what its resume does."""
    sim.crash_deployments(WORKER, exit_code=1, after=2)  # its new tasks start, then exit: no old worker is left
    failed = run(*NAMES, "redeploy", "--yes")
    assert failed.exit_code == 1, failed.output
    assert resume_of(failed.stderr, "or, to go back to the previous release")[-2:] == ["rollback", "--yes"]
    result = run(*NAMES, "rollback", "--yes")  # as offered; the workers crash on the previous release too
    assert result.exit_code == 1, result.output
    resume = resume_of(result.stderr, "resume with")
    assert resume is not None and resume[-2:] == ["rollback", "--yes"], result.stderr
    assert "go back to the previous release" not in result.stderr
    document = json.loads(run(*NAMES, "--output", "json", "rollback", "--yes").stdout)
    assert document["resume"].endswith("rollback --yes")
    assert all(not words.endswith("rollback --yes") for words in document["alternatives"]), document


def test_rollback_no_redeploy_only_moves_the_tag(cluster_registry, cluster, run, ecs):
    before = primaries(ecs)
    result = run(*NAMES, "rollback", "--yes", "--no-redeploy")
    assert result.exit_code == 0, result.output
    assert tag_digest(cluster_registry.ecr, REPO, "latest") == cluster_registry.digests[1]
    assert primaries(ecs) == before
    assert running_digests(ecs, WORKER) == {cluster_registry.digests[2]}

    # latest names release 2, the cluster runs release 3: back to 2 is a redeploy only ...
    only = run(*NAMES, "rollback", "--to", STAMPS[1], "--dry-run")
    assert only.exit_code == 0, only.output
    assert f"latest in {REPO} already names {STAMPS[1]}" in only.stdout
    assert "would redeploy" in only.stdout
    # ... and to 3, which every service runs, a tag move only.
    tag_only = run(*NAMES, "rollback", "--to", STAMPS[2], "--dry-run")
    assert tag_only.exit_code == 0, tag_only.output
    assert f"would move latest in {REPO} from {STAMPS[1]}" in tag_only.stdout
    assert "would not redeploy" in tag_only.stdout
    assert f"cluster {CLUSTER} already runs {STAMPS[2]}" in tag_only.stderr
    assert "no redeploy is needed" in tag_only.stderr
    assert primaries(ecs) == before
    assert tag_digest(cluster_registry.ecr, REPO, "latest") == cluster_registry.digests[1]


def test_another_operators_lease_stops_the_rollback_before_the_tag_moves(cluster_registry, cluster, run, ecs):
    from datetime import UTC, datetime, timedelta

    from workflow.lease import Holder

    now = datetime.now(UTC).replace(microsecond=0)
    holder = Holder("other", "alice@bastion", "redeploy", now - timedelta(minutes=1), now + timedelta(minutes=30))
    arn = cluster_arn(ecs)
    ecs.tag_resource(resourceArn=arn, tags=[holder.tag])
    before = primaries(ecs)
    result = run(*NAMES, "rollback", "--yes")
    assert failed_cleanly(result, 4), result.output
    assert "held by alice@bastion (redeploy)" in result.stderr
    assert tag_digest(cluster_registry.ecr, REPO, "latest") == cluster_registry.digests[2]
    assert primaries(ecs) == before


# Building blocks ------------------------------------------------------------------------------------------


DIGEST = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64


@pytest.mark.parametrize(
    "uri, expected",
    [
        (f"{URI}:latest", ("123456789012", REGION, REPO, "latest", None)),
        (f"{URI}@{DIGEST}", ("123456789012", REGION, REPO, None, DIGEST)),
        (f"{URI}:v1@{DIGEST}", ("123456789012", REGION, REPO, "v1", DIGEST)),
        ("210987654321.dkr.ecr.eu-west-1.amazonaws.com/team/airflow", ("210987654321", "eu-west-1", "team/airflow",
                                                                        None, None)),
        ("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/airflow:7", ("123456789012", "cn-north-1", "airflow", "7",
                                                                         None)),
        ("apache/airflow:2.10.3", None),
        ("fluent-bit:latest", None),
        ("ghcr.io/apache/airflow:latest", None),
    ],
)
def test_ecr_image(uri, expected):
    found = ecr_image(uri)
    assert (found and (found.account, found.region, found.repository, found.tag, found.digest)) == expected


def stubbed(service: str, region: str = REGION):
    client = new_client(service, region)
    return client, Stubber(client)


def test_tags_for_digests_is_one_describe_images_call_in_the_images_own_registry():
    client, stub = stubbed("ecr", "eu-west-1")
    stub.add_response(
        "describe_images",
        {"imageDetails": [{"imageDigest": DIGEST, "imageTags": ["20261120T080000Z", "latest", "20261125T101500Z"]},
                          {"imageDigest": OTHER}]},
        {"repositoryName": "airflow", "registryId": "210987654321",
         "imageIds": [{"imageDigest": DIGEST}, {"imageDigest": OTHER}]},
    )
    regions = []
    with stub:
        found = tags_for_digests(lambda region: regions.append(region) or client,
                                 "210987654321.dkr.ecr.eu-west-1.amazonaws.com/airflow:latest", {OTHER, DIGEST})
        stub.assert_no_pending_responses()
    assert found == {DIGEST: ["latest", "20261125T101500Z", "20261120T080000Z"], OTHER: []}
    assert regions == ["eu-west-1"]


def test_tags_for_digests_leaves_out_a_digest_the_repository_lacks():
    client, stub = stubbed("ecr")
    both = {"repositoryName": REPO, "imageIds": [{"imageDigest": DIGEST}, {"imageDigest": OTHER}]}
    stub.add_client_error("describe_images", "ImageNotFoundException", "The image with imageId ... does not exist",
                          expected_params=both)
    stub.add_response("describe_images", {"imageDetails": [{"imageDigest": DIGEST, "imageTags": ["latest"]}]},
                      {"repositoryName": REPO, "imageIds": [{"imageDigest": DIGEST}]})
    stub.add_client_error("describe_images", "ImageNotFoundException", "does not exist",
                          expected_params={"repositoryName": REPO, "imageIds": [{"imageDigest": OTHER}]})
    with stub:
        assert tags_for_digests(Ecr(client), f"{URI}:latest", {DIGEST, OTHER}) == {DIGEST: ["latest"], OTHER: []}
        stub.assert_no_pending_responses()


def test_tags_for_digests_of_an_image_outside_ecr_asks_nothing():
    assert tags_for_digests(lambda region: pytest.fail("no client for another registry"), "apache/airflow:2", {DIGEST}) == {}


def test_tags_for_digests_says_access_denied_with_the_action():
    from workflow.errors import AccessDenied

    client, stub = stubbed("ecr")
    stub.add_client_error("describe_images", "AccessDeniedException", "not authorized to perform ecr:DescribeImages")
    with stub, pytest.raises(AccessDenied, match="access denied to DescribeImages"):
        tags_for_digests(Ecr(client), f"{URI}:latest", {DIGEST})


def test_running_images_describes_every_services_tasks_in_one_call():
    client, stub = stubbed("ecs")
    arns = {role: [f"arn:aws:ecs:{REGION}:123456789012:task/{CLUSTER}/{role}{n}" for n in range(2)]
            for role in ("scheduler", "worker", "web")}
    for role, listed in arns.items():
        stub.add_response("list_tasks", {"taskArns": listed},
                          {"cluster": CLUSTER, "serviceName": f"{CLUSTER}-{role}", "desiredStatus": "RUNNING"})

    def task(arn, digest, status="RUNNING"):
        containers = [{"name": "app", "image": f"{URI}:latest", "imageDigest": digest},
                      {"name": "log-router", "image": "fluent-bit:latest", "imageDigest": OTHER}]
        return {"taskArn": arn, "lastStatus": status, "containers": containers}

    every = [a for listed in arns.values() for a in listed]
    described = [task(arns["scheduler"][0], DIGEST), task(arns["scheduler"][1], OTHER, "PENDING"),
                 task(arns["worker"][0], DIGEST), task(arns["worker"][1], OTHER),
                 task(arns["web"][0], DIGEST), task(arns["web"][1], DIGEST)]
    stub.add_response("describe_tasks", {"tasks": described}, {"cluster": CLUSTER, "tasks": every})
    with stub:
        running = running_images(Ecs(client, CLUSTER), {role: f"{CLUSTER}-{role}" for role in arns}, REPO)
        stub.assert_no_pending_responses()
    assert running.by_role() == {"scheduler": {DIGEST: 1}, "worker": {DIGEST: 1, OTHER: 1}, "web": {DIGEST: 2}}
    assert running.roles_running(DIGEST) == {"scheduler": 1, "worker": 1, "web": 2}
    assert not running.all_run(DIGEST)  # one worker runs another image (the PENDING scheduler does not count)


class Killed(BaseException):
    """SIGKILL: the process ends where it is, releasing nothing (no handler, no finally that matters)."""


def test_a_killed_rollback_re_run_finishes_that_rollback_not_one_release_further(cluster_registry, cluster, clock, ecs):
    from click.testing import CliRunner
    from conftest import runtime

    from workflow.cli import main

    ecr, (v1, v2, _) = cluster_registry.ecr, cluster_registry.digests

    def killed_once_latest_moved(seconds):
        if tag_digest(ecr, REPO, "latest") == v2:
            raise Killed
        clock.sleep(seconds)

    killed = runtime(clock)
    killed.sleep = killed_once_latest_moved
    with pytest.MonkeyPatch.context() as patch, pytest.raises(Killed):
        patch.setattr("workflow.app.App.release_leases", lambda self: None)  # a killed process releases nothing
        CliRunner().invoke(main, [*NAMES, "rollback", "--yes"], obj=killed, catch_exceptions=False)
    assert tag_digest(ecr, REPO, "latest") == v2

    held = CliRunner().invoke(main, [*NAMES, "rollback", "--yes"], obj=runtime(clock))
    assert failed_cleanly(held, 4), held.output  # the dead run's lease, as the message then advises breaking it
    assert "--break-lease" in held.stderr

    again = CliRunner().invoke(main, [*NAMES, "--break-lease", "rollback", "--yes"], obj=runtime(clock))
    assert again.exit_code == 0, again.output
    assert f"finishing the rollback to {v2[:19]}" in again.stderr
    assert tag_digest(ecr, REPO, "latest") == v2  # not v1: the same rollback, finished
    for name in (SCHEDULER, WORKER, WEB):
        assert running_digests(ecs, name) == {v2}, name
    assert "workflow-rollback" not in {t["key"] for t in ecs.list_tags_for_resource(resourceArn=cluster_arn(ecs))["tags"]}
    assert v1 not in {d for name in (SCHEDULER, WORKER, WEB) for d in running_digests(ecs, name)}


def test_a_rollback_left_unfinished_is_over_once_a_redeploy_runs_latest(cluster_registry, cluster, clock, ecs, run):
    """Stopped as it redeployed onto v2, the rollback is left; the operator moves forward instead (latest back to
    v3, a redeploy). The record of the rollback goes with that redeploy: the next rollback goes one release back
    from what runs (v2), not to the old record's target by way of "finishing" it."""


    ecr, (_, v2, v3) = cluster_registry.ecr, cluster_registry.digests

    stopped = invoke_interrupted(clock, lambda: tag_digest(ecr, REPO, "latest") == v2, *NAMES, "rollback", "--yes")
    assert stopped.exit_code == 130, stopped.output
    assert "workflow-rollback" in {t["key"] for t in ecs.list_tags_for_resource(resourceArn=cluster_arn(ecs))["tags"]}
    manifest = ecr.batch_get_image(repositoryName=REPO, imageIds=[{"imageDigest": v3}])["images"][0]
    ecr.put_image(repositoryName=REPO, imageManifest=manifest["imageManifest"], imageTag="latest",
                  imageManifestMediaType=manifest["imageManifestMediaType"])  # forward again, as a promote would
    assert run(*NAMES, "redeploy", "--yes").exit_code == 0
    assert "workflow-rollback" not in {t["key"] for t in ecs.list_tags_for_resource(resourceArn=cluster_arn(ecs))["tags"]}
    rehearsed = run(*NAMES, "rollback", "--dry-run")
    assert rehearsed.exit_code == 0, rehearsed.output
    assert "finishing the rollback" not in rehearsed.stderr
    assert f"would move latest in {REPO} from {STAMPS[2]}" in " ".join(rehearsed.stdout.split())
    assert f"to {STAMPS[1]}" in " ".join(rehearsed.stdout.split())


def test_an_empty_to_is_a_usage_error_before_anything_moves(released, run):
    result = run("rollback", "--no-redeploy", "--yes", "--to", "")
    assert failed_cleanly(result, 2), result.output
    assert "--to" in result.stderr
    assert tag_digest(released.ecr, REPO, "latest") == released.digests[2]


def test_rollback_no_redeploy_never_moves_latest_under_a_redeploy(released, run):
    from datetime import UTC, datetime, timedelta

    from workflow.lease import TAG_PREFIX

    ecr = released.ecr
    arn = ecr.describe_repositories(repositoryNames=[REPO])["repositories"][0]["repositoryArn"]
    since = datetime.now(UTC)
    ecr.tag_resource(resourceArn=arn, tags=[{"Key": TAG_PREFIX + "other", "Value":
        f"owner=ada@ops command=redeploy since={since:%Y-%m-%dT%H:%M:%SZ} "
        f"expires={since + timedelta(hours=1):%Y-%m-%dT%H:%M:%SZ}"}])
    result = run("rollback", "--no-redeploy", "--yes")
    assert failed_cleanly(result, 4), result.output
    assert "held by ada@ops (redeploy)" in " ".join(result.stderr.split())
    assert tag_digest(ecr, REPO, "latest") == released.digests[2]
