"""promote copies exactly the blobs the destination lacks, then tags the exact manifest."""

import io
import json
import re
from datetime import UTC, datetime

import boto3
import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner
from moto import mock_aws

from workflow.cli import Runtime, main
from workflow.errors import OperationFailed
from workflow.promote import verified_parts
from workflow.sandbox.images import digest_of, push_blob, push_image, push_index, random_layers
from workflow.sandbox.registry import Registry, simulated_ecr

NOW = datetime(2026, 11, 25, 14, 25, 1, tzinfo=UTC)
STAMP = "20261125T142501Z"


@pytest.fixture
def registry():
    with mock_aws(), simulated_ecr(Registry()) as simulated:
        yield simulated


@pytest.fixture
def ecr(registry):
    client = boto3.client("ecr", region_name="us-east-1")
    for name in ("airflow-stage", "airflow-prod"):
        client.create_repository(repositoryName=name)
    return client


@pytest.fixture
def layers():
    return random_layers(3, 64 * 1024, seed=1)


@pytest.fixture
def source(ecr, layers):
    return push_image(ecr, "airflow-stage", layers, "latest")


def promote(*args, input=None):
    runtime = Runtime(utcnow=lambda: NOW)
    return CliRunner().invoke(main, ["promote", *args], obj=runtime, input=input)


def tag_digest(ecr, repository, tag):
    images = ecr.batch_get_image(repositoryName=repository, imageIds=[{"imageTag": tag}])["images"]
    return images[0]["imageId"]["imageDigest"] if images else None


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
    stored = ecr.batch_get_image(repositoryName="airflow-prod", imageIds=[{"imageTag": "latest"}])["images"][0]
    assert stored["imageManifest"] == source["manifest"]  # the exact bytes, so the same digest
    assert "destination digest matches source" in result.stdout
    assert re.search(rf"blobs copied\s+4 \({sum(s for _, s in expected)} bytes\)", result.stdout)


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
    assert outcome["blobs_copied"] == 0 and outcome["tags"] == {"latest": "unchanged"}
    assert registry.uploads == [] and registry.downloads == []


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


def test_promote_by_digest(ecr, source):
    result = promote("--yes", "--source", f"airflow-stage@{source['digest']}", "--tag", "pinned")
    assert result.exit_code == 0, result.output
    assert tag_digest(ecr, "airflow-prod", "pinned") == source["digest"]


def test_dry_run_changes_nothing(ecr, registry, source):
    registry.uploads.clear()
    result = promote("--dry-run")
    assert result.exit_code == 0 and "would promote" in result.stdout
    assert registry.uploads == [] and tag_digest(ecr, "airflow-prod", "latest") is None


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
    assert message in result.stderr and "Traceback" not in result.output


def test_declining_confirmation_changes_nothing(ecr, source):
    result = promote(input="n\n")
    assert result.exit_code == 1 and tag_digest(ecr, "airflow-prod", "latest") is None


def test_verified_parts_cut_full_parts_and_check_the_digest():
    data = bytes(range(256)) * 10
    assert [len(p) for p in verified_parts(io.BytesIO(data), digest_of(data), part_size=1000)] == [1000, 1000, 560]
    with pytest.raises(OperationFailed, match="downloaded with digest"):
        list(verified_parts(io.BytesIO(data[:-1]), digest_of(data), part_size=1000))


def test_access_denied_names_the_action():
    from botocore.stub import Stubber

    client = boto3.client("ecr", region_name="us-east-1")
    stubber = Stubber(client)
    stubber.add_client_error("batch_get_image", "AccessDeniedException", "not authorized to perform ecr:BatchGetImage")
    stubber.activate()
    runtime = Runtime(utcnow=lambda: NOW, clients=lambda config: lambda name: client)
    result = CliRunner().invoke(main, ["promote", "--yes"], obj=runtime)
    assert result.exit_code == 2
    assert "access denied to BatchGetImage" in result.stderr and "Traceback" not in result.output
