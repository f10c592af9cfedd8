"""Builds container images in ECR through its API, as `docker push` would: blobs first, then the manifest."""

import hashlib
import json
import random

from workflow.ecr import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST

LAYER_TYPES = {DOCKER_MANIFEST: "application/vnd.docker.image.rootfs.diff.tar.gzip",
               OCI_MANIFEST: "application/vnd.oci.image.layer.v1.tar+gzip"}
CONFIG_TYPES = {DOCKER_MANIFEST: "application/vnd.docker.container.image.v1+json",
                OCI_MANIFEST: "application/vnd.oci.image.config.v1+json"}


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def random_layers(count: int, size: int, seed: int = 0) -> list[bytes]:
    rng = random.Random(seed)
    chunk = 64 * 1024 * 1024  # randbytes takes at most 2**31 bits at a time
    return [b"".join(rng.randbytes(min(chunk, size - start)) for start in range(0, size, chunk)) for _ in range(count)]


def push_blob(ecr, repository: str, data: bytes) -> str:
    """As `docker push` does: skip a blob the repository has, else upload it in parts of the size ECR asks for."""
    return _push_blobs(ecr, repository, [data])[0]


def _push_blobs(ecr, repository: str, blobs: list[bytes]) -> list[str]:
    """The blobs the repository lacks, uploaded; one BatchCheckLayerAvailability for them all."""
    digests = [digest_of(data) for data in blobs]
    layers = ecr.batch_check_layer_availability(repositoryName=repository, layerDigests=digests)["layers"]
    present = {layer["layerDigest"] for layer in layers if layer.get("layerAvailability") == "AVAILABLE"}
    for digest, data in dict(zip(digests, blobs, strict=True)).items():
        if digest not in present:
            _upload(ecr, repository, data, digest)
    return digests


def _upload(ecr, repository: str, data: bytes, digest: str) -> None:
    upload = ecr.initiate_layer_upload(repositoryName=repository)
    part_size = upload["partSize"]
    for start in range(0, len(data), part_size):
        part = data[start : start + part_size]
        ecr.upload_layer_part(repositoryName=repository, uploadId=upload["uploadId"], partFirstByte=start,
                              partLastByte=start + len(part) - 1, layerPartBlob=part)
    ecr.complete_layer_upload(repositoryName=repository, uploadId=upload["uploadId"], layerDigests=[digest])


def push_image(ecr, repository: str, layers: list[bytes], tag: str | None, media_type: str = DOCKER_MANIFEST,
               platform: str = "linux/amd64", config: dict | None = None) -> dict:
    """Upload the layers and a config, then put the manifest; returns {'digest', 'manifest', 'media_type'}.
    `config` adds fields to the image config, e.g. {"config": {"Env": ["AIRFLOW_VERSION=3.3.2"]}}."""
    config = json.dumps({"architecture": platform.split("/")[1], "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [digest_of(x) for x in layers]}, **(config or {})}).encode()
    _push_blobs(ecr, repository, [config, *layers])
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": CONFIG_TYPES[media_type], "size": len(config), "digest": digest_of(config)},
        "layers": [{"mediaType": LAYER_TYPES[media_type], "size": len(x), "digest": digest_of(x)} for x in layers],
    }, indent=3)
    return _put(ecr, repository, manifest, media_type, tag)


def push_index(ecr, repository: str, platforms: dict[str, list[bytes]], tag: str) -> dict:
    """An OCI image index over one manifest per platform, each pushed by digest first."""
    children = [push_image(ecr, repository, layers, None, OCI_MANIFEST, platform) for platform, layers in platforms.items()]
    index = json.dumps({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "size": len(child["manifest"]), "digest": child["digest"],
             "platform": {"os": "linux", "architecture": platform.split("/")[1]}}
            for child, platform in zip(children, platforms, strict=True)
        ],
    })
    return {**_put(ecr, repository, index, OCI_INDEX, tag), "children": children}


def _put(ecr, repository: str, manifest: str, media_type: str, tag: str | None) -> dict:
    kwargs = {"imageTag": tag} if tag else {}
    ecr.put_image(repositoryName=repository, imageManifest=manifest, imageManifestMediaType=media_type, **kwargs)
    return {"digest": digest_of(manifest.encode()), "manifest": manifest, "media_type": media_type}
