"""promote against Debian's docker-registry on loopback: mounts within one registry, one upload per blob between two,
interrupted uploads and re-runs. Bytes are counted on the registries' side (a TCP proxy in front of each, and the
blob data in their storage), not from promote's own counters."""

import json
import re

import pytest
from click.testing import CliRunner
from registries import (
    MIB,
    Registries,
    missing_reason,
    push_image,
    push_index,
    random_layers,
    tag_digest,
    tags,
)

from workflow.app import Runtime
from workflow.cli import main

pytestmark = pytest.mark.xdist_group("real-registry")
STAMP = re.compile(r"\d{8}T\d{6}Z")
IMAGE_BYTES = 4 * 8 * MIB  # a 32 MiB image: 4 layers of 8 MiB, each test's own (a registry stores a blob once)


def layers(seed: int) -> list[bytes]:
    return random_layers(4, 8 * MIB, seed=seed)


@pytest.fixture(scope="session")
def registries():
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    started = Registries()
    yield started
    started.close()


@pytest.fixture(autouse=True)
def no_docker_config(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))


def no_aws(_config):
    def client(*args, **kwargs):
        raise AssertionError(f"an AWS client was asked for: {args}")

    return client


def promote(*args, sleeps=None):
    runtime = Runtime(sleep=(sleeps if sleeps is not None else []).append, clients=no_aws)
    return CliRunner().invoke(main, ["promote", "--yes", "--output", "json", *args], obj=runtime)


def stamps(host, repository):
    return [tag for tag in tags(host, repository) if STAMP.fullmatch(tag)]


def test_within_one_registry_every_blob_is_mounted_and_a_rerun_moves_nothing(registries):
    registry = registries.get("one")
    source = push_image(registry.host, "mount/stage", layers(10), "latest")
    registry.proxy.reset()
    stored = registry.stored_blob_bytes()

    result = promote("--source", f"{registry.host}/mount/stage:latest", "--dest", f"{registry.host}/mount/prod")
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.stdout)
    assert (outcome["blobs_mounted"], outcome["blobs_copied"], outcome["bytes_copied"]) == (5, 0, 0)
    assert outcome["path"] == "registry API"
    assert outcome["where"] == f"registry {registry.host}"
    assert registry.proxy.up < MIB  # requests and one manifest: no layer bytes
    assert registry.stored_blob_bytes() == stored
    assert tag_digest(registry.direct, "mount/prod", "latest") == source["digest"]
    (stamp,) = stamps(registry.direct, "mount/prod")
    assert tag_digest(registry.direct, "mount/prod", stamp) == source["digest"]

    registry.proxy.reset()
    again = promote("--source", f"{registry.host}/mount/stage:latest", "--dest", f"{registry.host}/mount/prod")
    assert again.exit_code == 0, again.output
    outcome = json.loads(again.stdout)
    assert outcome["tags"] == {"latest": "unchanged"}
    assert outcome["released_as"] == stamp
    assert (outcome["blobs_present"], outcome["blobs_mounted"], outcome["blobs_copied"]) == (5, 0, 0)
    assert registry.proxy.up < 64 * 1024
    assert stamps(registry.direct, "mount/prod") == [stamp]


def test_to_another_registry_each_blob_is_uploaded_once(registries):
    source, dest = registries.get("one"), registries.get("two")
    image = push_image(source.host, "cross/stage", layers(11), "latest")
    source.proxy.reset()
    stored = dest.stored_blob_bytes()

    result = promote("--source", f"{source.host}/cross/stage:latest", "--dest", f"{dest.host}/cross/prod")
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.stdout)
    config = json.loads(image["manifest"])["config"]["size"]
    assert (outcome["blobs_mounted"], outcome["blobs_copied"]) == (0, 5)
    assert outcome["bytes_copied"] == IMAGE_BYTES + config
    assert dest.stored_blob_bytes() - stored == IMAGE_BYTES + config + len(image["manifest"])  # and the manifest
    assert IMAGE_BYTES <= dest.proxy.up < IMAGE_BYTES + MIB  # each blob once, plus requests
    assert IMAGE_BYTES <= source.proxy.down < IMAGE_BYTES + MIB
    assert tag_digest(dest.direct, "cross/prod", "latest") == image["digest"]


def test_an_image_index_crosses_registries_each_platform_first(registries):
    source, dest = registries.get("one"), registries.get("two")
    index = push_index(source.host, "index/stage", {"amd64": random_layers(2, 64 * 1024, seed=1),
                                                    "arm64": random_layers(2, 64 * 1024, seed=2)}, "multi")
    result = promote("--source", f"{source.host}/index/stage:multi", "--dest", f"{dest.host}/index/prod",
                     "--tag", "multi")
    assert result.exit_code == 0, result.output
    assert tag_digest(dest.direct, "index/prod", "multi") == index["digest"]
    for child in index["children"]:
        assert tag_digest(dest.direct, "index/prod", child["digest"]) == child["digest"]


def test_an_interrupted_upload_starts_the_blob_over(registries):
    source, dest = registries.get("one"), registries.get("two")
    image = push_image(source.host, "cut/stage", layers(12), "latest")
    stored = dest.stored_blob_bytes()
    dest.proxy.cut_after(3 * MIB)  # the connection carrying a layer's PUT drops after 3 MiB
    sleeps: list[float] = []
    result = promote("--source", f"{source.host}/cut/stage:latest", "--dest", f"{dest.host}/cut/prod", sleeps=sleeps)
    assert result.exit_code == 0, result.output
    assert sleeps == [1]
    assert "failed" in result.stderr
    assert "retrying in 1s" in result.stderr
    config = json.loads(image["manifest"])["config"]["size"]
    assert dest.stored_blob_bytes() - stored == IMAGE_BYTES + config + len(image["manifest"])  # and the manifest
    assert tag_digest(dest.direct, "cut/prod", "latest") == image["digest"]


def test_uploads_that_keep_failing_tag_nothing_and_a_rerun_finishes(registries):
    source, dest = registries.get("one"), registries.get("two")
    image = push_image(source.host, "broken/stage", layers(13), "latest")
    stored = dest.stored_blob_bytes()
    dest.proxy.cut_after(2 * MIB, times=1000)
    try:
        failed = promote("--source", f"{source.host}/broken/stage:latest", "--dest", f"{dest.host}/broken/prod")
    finally:
        dest.proxy.clear_cuts()
    assert failed.exit_code == 1, failed.output
    assert "could not upload blob" in failed.stderr
    assert "nothing was tagged" in failed.stderr
    assert "Traceback" not in failed.output
    assert tag_digest(dest.direct, "broken/prod", "latest") is None
    assert stamps(dest.direct, "broken/prod") == []

    dest.proxy.reset()
    done = promote("--source", f"{source.host}/broken/stage:latest", "--dest", f"{dest.host}/broken/prod")
    assert done.exit_code == 0, done.output
    config = json.loads(image["manifest"])["config"]["size"]
    assert dest.stored_blob_bytes() - stored == IMAGE_BYTES + config + len(image["manifest"])  # and the manifest
    assert IMAGE_BYTES <= dest.proxy.up < IMAGE_BYTES + MIB  # the re-run sends each blob once
    assert tag_digest(dest.direct, "broken/prod", "latest") == image["digest"]
    assert len(stamps(dest.direct, "broken/prod")) == 1


def test_a_missing_source_image_is_exit_2_and_changes_nothing(registries):
    registry = registries.get("one")
    result = promote("--source", f"{registry.host}/nothing/here:latest", "--dest", f"{registry.host}/nothing/prod")
    assert result.exit_code == 2, result.output
    assert "not found" in result.stderr
    assert "Traceback" not in result.output
