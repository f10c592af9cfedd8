"""promote copies exactly the blobs the destination lacks, then tags the exact manifest."""

import io
import json
import re
import shlex
from datetime import UTC, datetime

import pytest
import snapshots
from botocore.config import Config
from botocore.exceptions import ClientError
from click.testing import CliRunner
from conftest import new_client
from helpers import failed_cleanly, resume_of, tag_digest, tagged

from workflow.app import Runtime
from workflow.cli import main
from workflow.errors import OperationFailed
from workflow.promote import verified_parts
from workflow.tags import release_tags
from workflow_sandbox.images import digest_of, push_blob, push_image, push_index, random_layers

NOW = datetime(2026, 11, 25, 14, 25, 1, tzinfo=UTC)
STAMP = "20261125T142501Z"
command: dict = {}  # what each `promote` invocation shares with the test: its ECR client and the sleeps it asked for


@pytest.fixture
def ecr(registry):
    # Retries as workflow's own clients have them; the command shares this client, so a test builds only one.
    client = new_client("ecr", config=Config(retries={"mode": "standard"}))
    for name in ("airflow-stage", "airflow-prod"):
        client.create_repository(repositoryName=name)
    command["client"] = client
    return client


@pytest.fixture(autouse=True, params=["registry", "ecr-api"])
def via(request):
    """Every test runs on both paths unless it names one (`command["via"]`)."""
    command["via"] = request.param
    return request.param


@pytest.fixture(autouse=True)
def sleeps():
    """Every sleep promote asks for; none is taken."""
    command["sleeps"] = []
    return command["sleeps"]


def promote(*args, input=None, now=NOW):
    runtime = Runtime(utcnow=lambda: now, sleep=command["sleeps"].append, clients=lambda config: lambda name: command["client"])
    return CliRunner().invoke(main, ["promote", *args, "--via", command["via"]], obj=runtime, input=input)


@pytest.fixture
def layers():
    return random_layers(3, 64 * 1024, seed=1)


@pytest.fixture
def source(ecr, registry, layers):
    push = lambda: push_image(ecr, "airflow-stage", layers, "latest")  # noqa: E731
    return snapshots.pushed(f"source {[digest_of(x) for x in layers]}", registry, "us-east-1", push)


def uploads_to(registry, repository):
    return sorted((digest, size) for repo, digest, size in registry.uploads if repo == repository)


def test_the_destination_refuses_a_manifest_whose_blobs_are_missing(ecr, source):
    """Why promote copies blobs: ECR (here, the simulated registry) checks them on PutImage."""
    with pytest.raises(ClientError, match="LayersNotFoundException"):
        ecr.put_image(repositoryName="airflow-prod", imageManifest=source["manifest"], imageTag="latest")


def test_promote_copies_every_missing_blob_and_writes_both_tags(ecr, registry, source, layers):
    registry.uploads.clear()
    result = promote("--yes")
    assert result.exit_code == 0, result.output
    config = json.loads(source["manifest"])["config"]
    expected = sorted([(config["digest"], config["size"])] + [(digest_of(x), len(x)) for x in layers])
    assert uploads_to(registry, "airflow-prod") == expected
    assert tag_digest(ecr, "airflow-prod", "latest") == source["digest"]
    assert tag_digest(ecr, "airflow-prod", STAMP) == source["digest"]
    stored = tagged(ecr, "airflow-prod", "latest")
    assert stored["imageManifest"] == source["manifest"]  # the exact bytes, so the same digest
    assert "destination digest matches source" in result.stdout
    assert re.search(r"blobs\s+0 mounted, 4 copied, 0 already there", result.stdout)
    assert re.search(rf"bytes moved\s+{sum(s for _, s in expected)} ", result.stdout)


def test_promote_copies_only_what_the_destination_lacks(ecr, registry, source, layers):
    push_blob(ecr, "airflow-prod", layers[0])
    push_blob(ecr, "airflow-prod", layers[1])
    registry.uploads.clear()
    registry.downloads.clear()
    assert promote("--yes").exit_code == 0
    copied = {digest for digest, _ in uploads_to(registry, "airflow-prod")}
    assert copied == {digest_of(layers[2]), json.loads(source["manifest"])["config"]["digest"]}
    assert sorted(registry.downloads) == sorted(copied)


def test_rerunning_promote_copies_nothing_and_succeeds(ecr, registry, source):
    assert promote("--yes", "--tag", "latest").exit_code == 0
    registry.uploads.clear()
    registry.downloads.clear()
    again = promote("--yes", "--tag", "latest", "--output", "json")
    assert again.exit_code == 0, again.output
    outcome = json.loads(again.stdout)
    assert outcome["blobs_copied"] == 0
    assert outcome["tags"] == {"latest": "unchanged"}
    assert registry.uploads == []
    assert registry.downloads == []


def test_a_failed_copy_leaves_the_destination_tags_untouched(ecr, registry, source, layers):
    old = push_image(ecr, "airflow-prod", random_layers(1, 1024, seed=9), "latest")
    registry.corrupt.add(digest_of(layers[1]))
    result = promote("--yes")
    assert result.exit_code == 1
    assert f"blob {digest_of(layers[1])} downloaded with digest" in result.stderr
    assert tag_digest(ecr, "airflow-prod", "latest") == old["digest"]
    assert tag_digest(ecr, "airflow-prod", STAMP) is None
    assert digest_of(layers[1]) not in {d for d, _ in uploads_to(registry, "airflow-prod")}


def test_a_mutable_tag_pointing_elsewhere_is_moved(ecr, source):
    push_image(ecr, "airflow-prod", random_layers(1, 1024, seed=9), "latest")
    assert promote("--yes", "--tag", "latest").exit_code == 0
    assert tag_digest(ecr, "airflow-prod", "latest") == source["digest"]


def test_an_immutable_tag_pointing_elsewhere_is_a_clear_error(ecr, source):
    ecr.create_repository(repositoryName="airflow-locked", imageTagMutability="IMMUTABLE")
    other = push_image(ecr, "airflow-locked", random_layers(1, 1024, seed=9), "v1")
    result = promote("--yes", "--dest", "airflow-locked", "--tag", "v1")
    assert result.exit_code == 1
    assert "tag v1 in airflow-locked is immutable" in result.stderr
    assert tag_digest(ecr, "airflow-locked", "v1") == other["digest"]


def test_retag_within_one_repository_copies_nothing(ecr, registry, source):
    registry.uploads.clear()
    result = promote("--yes", "--dest", "airflow-stage", "--tag", "release")
    assert result.exit_code == 0, result.output
    assert registry.uploads == []
    assert tag_digest(ecr, "airflow-stage", "release") == source["digest"]


def test_an_image_index_promotes_each_platform_manifest_first(ecr, registry):
    index = push_index(ecr, "airflow-stage", {"linux/amd64": random_layers(2, 4096, seed=2),
                                              "linux/arm64": random_layers(2, 4096, seed=3)}, "multi")
    result = promote("--yes", "--source", "airflow-stage:multi", "--tag", "multi")
    assert result.exit_code == 0, result.output
    assert tag_digest(ecr, "airflow-prod", "multi") == index["digest"]
    for child in index["children"]:
        found = ecr.batch_get_image(repositoryName="airflow-prod", imageIds=[{"imageDigest": child["digest"]}])
        assert found["images"][0]["imageManifest"] == child["manifest"]


def test_promote_by_digest(ecr, source, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    result = promote("--yes", "--source", f"airflow-stage@{source['digest']}", "--tag", "pinned")
    assert result.exit_code == 0, result.output
    assert tag_digest(ecr, "airflow-prod", "pinned") == source["digest"]
    # The source's whole digest made its rows 87 columns; the summary says the digest once, whole (on a line of
    # its own: at 71 characters it fits one).
    assert [line for line in result.stdout.splitlines() if len(line) > 80] == []
    assert source["digest"] in result.stdout


def test_dry_run_changes_nothing(ecr, registry, source):
    registry.uploads.clear()
    result = promote("--dry-run")
    assert result.exit_code == 0, result.output
    assert "would promote" in result.stdout
    assert registry.uploads == []
    assert tag_digest(ecr, "airflow-prod", "latest") is None


def test_a_dry_run_says_what_the_promote_then_moves(ecr, registry, source):
    dry = json.loads(promote("--dry-run", "--output", "json").stdout)
    text = " ".join(promote("--dry-run").stdout.split())
    real = json.loads(promote("--yes", "--output", "json").stdout)
    moved = real["blobs_mounted"] + real["blobs_copied"]
    assert dry["blobs_to_move"] == moved > 0
    assert dry["blobs_present"] == real["blobs_present"]
    assert f"blobs {moved} to mount or copy, {real['blobs_present']} already there" in text
    if not real["blobs_mounted"]:  # each blob copied: the bytes a dry run gives are those uploaded
        assert dry["bytes_copied"] == real["bytes_copied"] > 0
        assert f"bytes would move at most {real['bytes_copied']}" in text


@pytest.mark.parametrize(
    "args, message",
    [
        (["--source", "nowhere:latest"], "repository nowhere not found"),
        (["--source", "airflow-stage:missing"], "image airflow-stage:missing not found"),
        (["--dest", "nowhere"], "repository nowhere not found"),
    ],
)
def test_not_found_errors_name_the_thing(ecr, source, args, message):
    result = promote("--yes", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_declining_confirmation_changes_nothing(ecr, source):
    result = promote(input="n\n")
    assert result.exit_code == 1, result.output
    assert tag_digest(ecr, "airflow-prod", "latest") is None


def test_verified_parts_fill_one_buffer_and_check_the_digest():
    data = bytes(range(256)) * 10
    buffer = bytearray(1000)
    parts = [(p is buffer, len(p)) for p in verified_parts(io.BytesIO(data), digest_of(data), buffer)]
    assert parts == [(True, 1000), (True, 1000), (True, 560)]  # read into the same buffer, never copied
    with pytest.raises(OperationFailed, match="downloaded with digest"):
        list(verified_parts(io.BytesIO(data[:-1]), digest_of(data), bytearray(1000)))


def test_access_denied_names_the_action():
    from botocore.stub import Stubber

    client = new_client("ecr")
    stubber = Stubber(client)
    stubber.add_client_error("batch_get_image", "AccessDeniedException", "not authorized to perform ecr:BatchGetImage")
    stubber.activate()
    runtime = Runtime(utcnow=lambda: NOW, clients=lambda config: lambda name: client)
    result = CliRunner().invoke(main, ["promote", "--yes"], obj=runtime)
    assert result.exit_code == 2
    assert "access denied to BatchGetImage" in result.stderr
    assert "Traceback" not in result.output


# Real ECR faults -----------------------------------------------------------------------------------------


def test_an_expired_download_url_is_retried_with_a_fresh_one(ecr, registry, source, layers, sleeps):
    registry.forbid_downloads(digest_of(layers[1]), times=2)  # those URLs stay dead: only a new one works
    result = promote("--yes")
    assert result.exit_code == 0, result.output
    assert sleeps == [1, 2]
    urls = [url for url in registry.download_urls if digest_of(layers[1]) in url]
    assert len(set(urls)) == 3  # a fresh URL for each attempt
    assert registry.downloads.count(digest_of(layers[1])) == 1
    assert (digest_of(layers[1]), len(layers[1])) in uploads_to(registry, "airflow-prod")
    assert tag_digest(ecr, "airflow-prod", "latest") == source["digest"]
    assert f"download of {digest_of(layers[1])[:19]} failed (HTTP 403 Forbidden); retrying" in result.stderr


def test_a_connection_reset_mid_blob_starts_the_blob_over(ecr, registry, source, layers):
    registry.fail_downloads(digest_of(layers[0]), "reset")
    result = promote("--yes")
    assert result.exit_code == 0, result.output
    assert registry.uploads.count(("airflow-prod", digest_of(layers[0]), len(layers[0]))) == 1
    assert tag_digest(ecr, "airflow-prod", "latest") == source["digest"]


@pytest.mark.parametrize(
    "faults, reason, attempts",
    [
        ([403] * 4, "HTTP 403 Forbidden", 4),
        ([503] * 4, "HTTP 503 Service Unavailable", 4),
        (["reset"] * 4, "IncompleteRead", 4),
        ([404], "HTTP 404 Not Found", 1),  # not a transient answer: no retry
    ],
)
def test_a_download_that_keeps_failing_names_the_blob_and_tags_nothing(ecr, registry, source, layers, sleeps, faults,
                                                                       reason, attempts):
    old = push_image(ecr, "airflow-prod", random_layers(1, 1024, seed=9), "latest")
    registry.fail_downloads(digest_of(layers[2]), *faults)
    result = promote("--yes")
    assert failed_cleanly(result, 1), result.output
    assert f"could not download blob {digest_of(layers[2])} from airflow-stage: {reason}" in result.stderr
    assert f"(attempt {attempts} of 4)" in result.stderr
    assert ("S3 VPC endpoint policy" in result.stderr) == (faults[0] == 403)
    assert len(sleeps) == attempts - 1
    assert tag_digest(ecr, "airflow-prod", "latest") == old["digest"]
    assert tag_digest(ecr, "airflow-prod", STAMP) is None
    assert digest_of(layers[2]) not in {d for d, _ in uploads_to(registry, "airflow-prod")}


@pytest.mark.parametrize("via", ["ecr-api"], indirect=True)
def test_a_concurrent_push_that_completes_the_blob_first_is_success(ecr, registry, source, layers):
    registry.race_completes(digest_of(layers[0]))
    result = promote("--yes")
    assert result.exit_code == 0, result.output
    assert "a concurrent push of the same blob completed first" in result.stderr
    available = ecr.batch_check_layer_availability(repositoryName="airflow-prod", layerDigests=[digest_of(layers[0])])
    assert available["layers"][0]["layerAvailability"] == "AVAILABLE"
    assert tag_digest(ecr, "airflow-prod", "latest") == source["digest"]


@pytest.mark.parametrize("via", ["ecr-api"], indirect=True)
def test_parts_follow_the_part_size_ecr_answers(ecr, registry, source, layers):
    registry.part_size = 20_000
    registry.parts.clear()
    result = promote("--yes")
    assert result.exit_code == 0, result.output
    parts = [(first, size) for repo, first, size in registry.parts if repo == "airflow-prod"]
    assert max(size for _, size in parts) == 20_000
    assert sorted(parts).count((40_000, 20_000)) == len(layers)  # each 64 KiB layer: 20000, 20000, 20000, 5536
    assert sorted(parts).count((60_000, 5536)) == len(layers)
    assert tag_digest(ecr, "airflow-prod", "latest") == source["digest"]


@pytest.mark.parametrize("via", ["ecr-api"], indirect=True)
def test_a_blob_needing_more_parts_than_ecr_allows_is_refused_before_upload(ecr, registry, source, layers):
    registry.part_size = 10  # 64 KiB in 10-byte parts: 6,554 parts, over ECR's 4,200
    result = promote("--yes")
    assert failed_cleanly(result, 1), result.output
    assert "needs more than ECR's 4200 parts of 10 bytes" in result.stderr
    assert tag_digest(ecr, "airflow-prod", "latest") is None


@pytest.mark.parametrize("via", ["ecr-api"], indirect=True)
def test_a_part_whose_answer_was_lost_is_not_sent_twice(ecr, registry, source, layers):
    registry.part_size = 20_000
    registry.drop_part_response("airflow-prod", first_byte=20_000)  # stored; botocore's retry is refused
    registry.parts.clear()
    result = promote("--yes")
    assert result.exit_code == 0, result.output
    config = json.loads(source["manifest"])["config"]
    expected = sorted([(config["digest"], config["size"])] + [(digest_of(x), len(x)) for x in layers])
    assert uploads_to(registry, "airflow-prod") == expected  # every blob complete, each byte once
    assert tag_digest(ecr, "airflow-prod", "latest") == source["digest"]


@pytest.mark.parametrize(
    "code, reason",
    [
        ("KmsError", "The KMS key is disabled"),
        ("UpstreamUnavailable", "The upstream registry of the pull through cache rule is unavailable"),
        ("ImageTagDoesNotMatchDigest", "The tag does not match the digest"),
    ],
)
def test_an_image_ecr_cannot_return_quotes_its_failure(ecr, registry, source, code, reason):
    registry.image_failures["airflow-stage:latest"] = (code, reason)
    result = promote("--yes")
    assert failed_cleanly(result, 1), result.output
    assert f"cannot return image airflow-stage:latest: {code}: {reason}" in result.stderr
    assert "not found" not in result.stderr


def test_an_image_ecr_reports_not_found_is_exit_2(ecr, registry, source):
    registry.image_failures["airflow-stage:latest"] = ("ImageNotFound", "Requested image not found")
    result = promote("--yes")
    assert failed_cleanly(result, 2), result.output
    assert "image airflow-stage:latest not found" in result.stderr


@pytest.fixture
def index(ecr):
    return push_index(ecr, "airflow-stage", {"linux/amd64": random_layers(2, 4096, seed=2),
                                             "linux/arm64": random_layers(2, 4096, seed=3)}, "multi")


def test_an_index_whose_children_ecr_does_not_see_yet_is_put_again(ecr, registry, index):
    registry.hide_children(index["digest"], times=1)
    result = promote("--yes", "--source", "airflow-stage:multi", "--tag", "multi")
    assert result.exit_code == 0, result.output
    assert tag_digest(ecr, "airflow-prod", "multi") == index["digest"]


def test_an_index_ecr_keeps_refusing_names_its_children(ecr, registry, index):
    registry.hide_children(index["digest"], times=9)
    result = promote("--yes", "--source", "airflow-stage:multi", "--tag", "multi")
    assert failed_cleanly(result, 1), result.output
    assert "ReferencedImagesNotFoundException" in result.stderr
    for child in index["children"]:
        assert child["digest"] in result.stderr
    assert tag_digest(ecr, "airflow-prod", "multi") is None


# Stamp tags ------------------------------------------------------------------------------------------------


LATER = datetime(2026, 11, 26, 9, 0, 0, tzinfo=UTC)


def test_promoting_a_released_image_again_adds_no_timestamp_tag(ecr, source):
    assert promote("--yes").exit_code == 0
    push_image(ecr, "airflow-prod", random_layers(1, 1024, seed=9), "latest")  # latest moved on meanwhile
    again = promote("--yes", now=LATER)
    assert again.exit_code == 0, again.output
    assert f"already released as {STAMP}" in again.stdout
    assert tag_digest(ecr, "airflow-prod", "latest") == source["digest"]  # re-pointed
    assert tag_digest(ecr, "airflow-prod", "20261126T090000Z") is None
    tags = ecr.describe_images(repositoryName="airflow-prod", imageIds=[{"imageDigest": source["digest"]}])
    assert sorted(tags["imageDetails"][0]["imageTags"]) == sorted(["latest", STAMP])


def test_explicit_tags_replace_the_defaults_even_for_a_released_image(ecr, source):
    assert promote("--yes").exit_code == 0
    result = promote("--yes", "--tag", "release-7", now=LATER)
    assert result.exit_code == 0, result.output
    assert tag_digest(ecr, "airflow-prod", "release-7") == source["digest"]
    assert "already released" not in result.stdout


def test_release_tags():
    assert release_tags([], LATER) == (["latest", "20261126T090000Z"], None)
    assert release_tags(["latest", "release-7"], LATER) == (["latest", "20261126T090000Z"], None)
    assert release_tags(["20261125T142501Z", "latest", "20261120T080000Z"], LATER) == (["latest"], "20261120T080000Z")


# The registry API: mounts, the fallback, upload faults --------------------------------------------------------


def blob_mounting(ecr, value):
    ecr.put_account_setting(name="BLOB_MOUNTING", value=value)


def blobs_of(source, layers):
    config = json.loads(source["manifest"])["config"]
    return sorted([(config["digest"], config["size"])] + [(digest_of(x), len(x)) for x in layers])


@pytest.mark.parametrize("via", ["registry"], indirect=True)
def test_within_one_registry_every_blob_is_mounted(ecr, registry, source, layers):
    blob_mounting(ecr, "ENABLED")
    registry.uploads.clear()
    registry.downloads.clear()
    result = promote("--yes", "--output", "json")
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.stdout)
    assert (outcome["blobs_mounted"], outcome["blobs_copied"], outcome["bytes_copied"]) == (4, 0, 0)
    assert outcome["path"] == "registry API"
    assert registry.uploads == []
    assert registry.downloads == []  # no byte moved
    assert sorted(digest for _, digest, _ in registry.mounts) == sorted(d for d, _ in blobs_of(source, layers))
    assert tag_digest(ecr, "airflow-prod", "latest") == source["digest"]
    assert tag_digest(ecr, "airflow-prod", STAMP) == source["digest"]


@pytest.mark.parametrize("via", ["registry"], indirect=True)
def test_without_blob_mounting_the_blobs_are_copied_and_the_result_says_why(ecr, registry, source, layers):
    assert ecr.get_account_setting(name="BLOB_MOUNTING")["value"] == "DISABLED"  # ECR's default
    registry.uploads.clear()
    result = promote("--yes")
    assert result.exit_code == 0, result.output
    assert uploads_to(registry, "airflow-prod") == blobs_of(source, layers)
    assert registry.mounts == []
    assert "note: no blob was mounted" in result.stdout
    assert "--name BLOB_MOUNTING --value ENABLED" in result.stdout


def test_a_blob_the_source_manifests_do_not_name_is_not_mounted(ecr, registry, source):
    """ECR mounts only a blob that a manifest in the source repository references."""
    blob_mounting(ecr, "ENABLED")
    stray = push_blob(ecr, "airflow-stage", b"not in any manifest")
    token = ecr.get_authorization_token()["authorizationData"][0]
    import urllib3

    answer = urllib3.PoolManager().request(
        "POST", f"{token['proxyEndpoint']}/v2/airflow-prod/blobs/uploads/?mount={stray}&from=airflow-stage",
        headers={"Authorization": f"Basic {token['authorizationToken']}"})
    assert answer.status == 202  # an upload session instead
    assert urllib3.PoolManager().request("GET", f"{token['proxyEndpoint']}/v2/").status == 401  # the token is checked


@pytest.mark.parametrize("via", ["auto"], indirect=True)
def test_auto_falls_back_to_the_ecr_api_when_the_registry_endpoint_cannot_be_reached(ecr, registry, source, layers):
    registry.unreachable = True
    result = promote("--yes", "--output", "json")
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.stdout)
    assert outcome["path"] == "ECR API"
    assert "the registry API cannot be used" in result.stderr
    assert "copied through the ECR API instead" in result.stderr
    assert uploads_to(registry, "airflow-prod") == blobs_of(source, layers)
    assert tag_digest(ecr, "airflow-prod", "latest") == source["digest"]


@pytest.mark.parametrize("via", ["auto"], indirect=True)
def test_auto_uses_the_registry_api_when_it_answers(ecr, registry, source):
    result = promote("--yes", "--output", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["path"] == "registry API"


@pytest.mark.parametrize("via", ["registry"], indirect=True)
def test_the_registry_path_alone_fails_when_the_endpoint_cannot_be_reached(ecr, registry, source):
    registry.unreachable = True
    result = promote("--yes")
    assert failed_cleanly(result, 1), result.output
    assert "the connection was refused" in result.stderr
    assert tag_digest(ecr, "airflow-prod", "latest") is None


@pytest.mark.parametrize("via", ["registry"], indirect=True)
@pytest.mark.parametrize("faults, retried", [([500], 1), (["reset"], 1), ([503, "reset"], 2)])
def test_a_failed_upload_starts_the_blob_over(ecr, registry, source, layers, sleeps, faults, retried):
    registry.fail_uploads(digest_of(layers[1]), *faults)
    result = promote("--yes")
    assert result.exit_code == 0, result.output
    assert sleeps == [1, 2][:retried]
    assert uploads_to(registry, "airflow-prod").count((digest_of(layers[1]), len(layers[1]))) == 1
    assert tag_digest(ecr, "airflow-prod", "latest") == source["digest"]


@pytest.mark.parametrize("via", ["registry"], indirect=True)
def test_an_upload_that_keeps_failing_names_the_blob_and_tags_nothing(ecr, registry, source, layers, sleeps):
    registry.fail_uploads(digest_of(layers[0]), *["reset"] * 4)
    result = promote("--yes")
    assert failed_cleanly(result, 1), result.output
    assert f"could not upload blob {digest_of(layers[0])} to airflow-prod" in result.stderr
    assert "(attempt 4 of 4); nothing was tagged" in result.stderr
    assert tag_digest(ecr, "airflow-prod", "latest") is None
    assert tag_digest(ecr, "airflow-prod", STAMP) is None


@pytest.mark.parametrize("via", ["registry"], indirect=True)
def test_a_concurrent_push_of_the_same_blob_on_the_registry_path_is_success(ecr, registry, source, layers):
    registry.race_completes(digest_of(layers[0]))
    result = promote("--yes")
    assert result.exit_code == 0, result.output
    assert tag_digest(ecr, "airflow-prod", "latest") == source["digest"]


# Safety: what a failure or a concurrent promote leaves -------------------------------------------------------------


def test_a_failed_promote_moves_no_tag(ecr, registry, source):
    """The stamp is written first; when `latest` is then refused (immutable), the stamp is removed again."""
    ecr.create_repository(repositoryName="airflow-locked", imageTagMutability="IMMUTABLE")
    old = push_image(ecr, "airflow-locked", random_layers(1, 1024, seed=9), "latest")
    result = promote("--yes", "--dest", "airflow-locked")
    assert failed_cleanly(result, 1), result.output
    assert "tag latest in airflow-locked is immutable" in result.stderr
    assert f"every tag this promote had moved was put back ({STAMP} removed)" in result.stderr
    assert tag_digest(ecr, "airflow-locked", "latest") == old["digest"]
    assert tag_digest(ecr, "airflow-locked", STAMP) is None


def test_explicit_tags_are_all_put_back_when_a_later_one_fails(ecr, registry, source):
    ecr.create_repository(repositoryName="airflow-locked", imageTagMutability="IMMUTABLE")
    old = push_image(ecr, "airflow-locked", random_layers(1, 1024, seed=9), "b")
    result = promote("--yes", "--dest", "airflow-locked", "--tag", "a", "--tag", "b")
    assert failed_cleanly(result, 1), result.output
    assert tag_digest(ecr, "airflow-locked", "a") is None
    assert tag_digest(ecr, "airflow-locked", "b") == old["digest"]
    assert "a removed" in result.stderr


def test_a_stamp_another_image_holds_is_never_moved(ecr, registry, source):
    """A promote in the same second took the stamp first: this one takes the next second, and says so."""
    other = push_image(ecr, "airflow-prod", random_layers(1, 1024, seed=9), STAMP)
    result = promote("--yes")
    assert result.exit_code == 0, result.output
    assert tag_digest(ecr, "airflow-prod", STAMP) == other["digest"]
    assert tag_digest(ecr, "airflow-prod", "20261125T142502Z") == source["digest"]
    assert "20261125T142502Z" in result.stdout
    assert "names another image" in result.stderr


def test_a_stamp_taken_between_the_check_and_the_write_is_left_to_its_image(ecr, registry, source, monkeypatch):
    """Two promotes write the same stamp at the same moment: the one whose write is read back loses nothing, the other
    moves on to the next second; no release is left without a stamp."""
    from workflow import promote as module

    original = module._write_stamp
    other = push_image(ecr, "airflow-prod", random_layers(1, 1024, seed=9), None)

    def racing(dest, top, children, stamp, report):
        if stamp == STAMP:  # the other promote's write lands right after this one's
            manifest = ecr.batch_get_image(repositoryName="airflow-prod", imageIds=[{"imageDigest": other["digest"]}])
            real_put = dest.put

            def put_then_lose(manifest_, tag, children_):
                state = real_put(manifest_, tag, children_)
                if tag != STAMP:
                    return state
                ecr.put_image(repositoryName="airflow-prod", imageManifest=manifest["images"][0]["imageManifest"],
                              imageTag=STAMP)
                return state

            monkeypatch.setattr(dest, "put", put_then_lose)
            try:
                return original(dest, top, children, stamp, report)
            finally:
                monkeypatch.setattr(dest, "put", real_put)
        return original(dest, top, children, stamp, report)

    monkeypatch.setattr(module, "_write_stamp", racing)
    result = promote("--yes")
    assert result.exit_code == 0, result.output
    assert "was written by another promote at the same moment" in result.stderr
    assert tag_digest(ecr, "airflow-prod", STAMP) == other["digest"]
    assert tag_digest(ecr, "airflow-prod", "20261125T142502Z") == source["digest"]


# What the operator reads -----------------------------------------------------------------------------------------


def test_the_confirmation_names_region_and_registry(ecr, registry, source, via):
    result = promote(input="n\n")
    assert result.exit_code == 1
    assert "us-east-1" in result.stderr
    if via == "registry":
        assert "sandbox registry at http://127.0.0.1:" in result.stderr
        assert "through the registry API" in result.stderr
    else:
        assert "through the ECR API" in result.stderr
    assert tag_digest(ecr, "airflow-prod", "latest") is None


def test_the_result_says_to_redeploy_when_latest_moved_with_a_command_that_runs_as_printed(ecr, registry, source):
    result = promote("--yes")
    assert result.exit_code == 0, result.output
    assert resume_of(result.stdout, "next: the services run the previous image") == \
        ["workflow", "--cluster", "CLUSTER", "redeploy"]
    again = promote("--yes")
    assert "next:" not in again.stdout  # latest did not move
    push_image(ecr, "airflow-stage", random_layers(1, 1024, seed=9), "latest")
    named = promote("--yes", "--cluster", "airflow-prod", "--region", "us-east-1")
    assert resume_of(named.stdout, "next: the services run the previous image") == [
        "workflow", "--cluster", "airflow-prod", "--region", "us-east-1", "redeploy"]  # the command alone: it pastes
    push_image(ecr, "airflow-stage", random_layers(1, 1024, seed=10), "latest")
    steps = json.loads(promote("--yes", "--output", "json").stdout)["next_steps"]
    assert [shlex.split(step["command"]) for step in steps] == [["workflow", "--cluster", "CLUSTER", "redeploy"]]


def test_releases_show_the_size_of_layers_and_config(ecr, registry, source, layers):
    assert promote("--yes").exit_code == 0
    runtime = Runtime(utcnow=lambda: NOW, clients=lambda config: lambda name: command["client"])
    listed = CliRunner().invoke(main, ["releases", "--output", "json"], obj=runtime)
    assert listed.exit_code == 0, listed.output
    (release,) = json.loads(listed.stdout)["releases"]
    assert release["size"] == sum(size for _, size in blobs_of(source, layers))


def test_a_destination_with_a_tag_is_a_usage_error(ecr, registry, source):
    result = promote("--yes", "--dest", "airflow-prod:latest")
    assert result.exit_code == 2, result.output
    assert "give the repository alone" in result.stderr


def test_ecr_api_between_other_registries_is_refused(ecr, registry, source):
    command["via"] = "ecr-api"
    result = promote("--yes", "--source", "127.0.0.1:1/a:latest", "--dest", "127.0.0.1:1/b")
    assert result.exit_code == 2, result.output
    assert "--via ecr-api works between ECR registries only" in result.stderr


@pytest.mark.parametrize("via", ["auto"], indirect=True)
def test_without_get_authorization_token_auto_falls_back(ecr, registry, source, monkeypatch):
    def denied(**_):
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "not authorized to perform: "
                                     "ecr:GetAuthorizationToken"}, "ResponseMetadata": {"HTTPStatusCode": 400}},
                          "GetAuthorizationToken")

    monkeypatch.setattr(ecr, "get_authorization_token", denied)
    result = promote("--yes", "--output", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["path"] == "ECR API"
    assert "access denied to GetAuthorizationToken" in result.stderr


def test_references_may_name_the_ecr_host(ecr, registry, source, via):
    host = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
    result = promote("--yes", "--output", "json", "--source", f"{host}/airflow-stage:latest", "--dest", f"{host}/airflow-prod")
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.stdout)
    assert outcome["where"].startswith(f"account 123456789012, us-east-1, registry {host}")
    assert outcome["destination"] == f"{host}/airflow-prod"
    assert tag_digest(ecr, "airflow-prod", "latest") == source["digest"]


def lease_the_repository(ecr, command: str, clock_now=NOW) -> None:
    """Another operator's command holds airflow-prod's lease (a redeploy deploying its latest, say)."""
    from datetime import timedelta

    from workflow.lease import TAG_PREFIX

    arn = ecr.describe_repositories(repositoryNames=["airflow-prod"])["repositories"][0]["repositoryArn"]
    since, until = clock_now, clock_now + timedelta(hours=1)
    ecr.tag_resource(resourceArn=arn, tags=[{"Key": TAG_PREFIX + "other", "Value":
        f"owner=ada@ops command={command} since={since:%Y-%m-%dT%H:%M:%SZ} expires={until:%Y-%m-%dT%H:%M:%SZ}"}])


def test_a_promote_never_moves_latest_under_a_redeploy_that_deploys_it(ecr, source):
    lease_the_repository(ecr, "redeploy")
    result = promote("--yes")
    assert failed_cleanly(result, 4), result.output
    text = " ".join(result.stderr.split())
    assert "repository airflow-prod is held by ada@ops (redeploy)" in text
    assert "it starts the scheduler again once the new workers are stable" in text
    assert "nothing was changed" in text
    assert tag_digest(ecr, "airflow-prod", "latest") is None  # nothing moved
    assert promote("--yes", "--dry-run").exit_code == 0  # a dry run reads, and needs no lease


def test_two_promotes_at_once_take_turns(ecr, source):
    lease_the_repository(ecr, "promote")
    result = promote("--yes")
    assert failed_cleanly(result, 4), result.output
    assert "(promote)" in result.stderr
    assert tag_digest(ecr, "airflow-prod", "latest") is None
    done = promote("--yes", "--break-lease")  # once that promote is gone
    assert done.exit_code == 0, done.output
    tags = ecr.list_tags_for_resource(resourceArn=ecr.describe_repositories(repositoryNames=["airflow-prod"])
                                      ["repositories"][0]["repositoryArn"])["tags"]
    assert tags == []  # its own lease released
