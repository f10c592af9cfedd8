"""The ECR calls promote needs: manifests, blob availability, blob upload, and tagging."""

import json
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import AwsError, NotFound, OperationFailed, translated

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_TYPES = [DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX]
INDEX_TYPES = (DOCKER_LIST, OCI_INDEX)
CHECK_LAYERS_MAX = 100
PART_SIZE = 10 * 1024 * 1024  # ECR accepts parts up to 20 MiB


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int


@dataclass(frozen=True)
class Manifest:
    repository: str
    digest: str
    media_type: str
    body: str  # exactly as stored: the digest is computed over these bytes

    @property
    def parsed(self) -> dict:
        return json.loads(self.body)

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    @property
    def children(self) -> list[str]:
        return [m["digest"] for m in self.parsed.get("manifests", [])] if self.is_index else []

    @property
    def blobs(self) -> list[Blob]:
        if self.is_index:
            return []
        doc = self.parsed
        return [Blob(b["digest"], b.get("size", 0)) for b in [doc["config"], *doc.get("layers", [])]]


class Ecr:
    """One registry's ECR API; the only code here that calls boto3's ECR client."""

    def __init__(self, client, registry_id: str | None = None):
        self.client = client
        self._registry = {"registryId": registry_id} if registry_id else {}

    def _call(self, operation: str, repository: str, **kwargs) -> dict:
        missing = NotFound(f"repository {repository} not found")
        with translated({"RepositoryNotFoundException": missing}):
            return getattr(self.client, operation)(repositoryName=repository, **self._registry, **kwargs)

    def find(self, repository: str, tag: str | None = None, digest: str | None = None) -> Manifest | None:
        """The image a tag or digest names in `repository`, or None."""
        image_id = {"imageDigest": digest} if digest else {"imageTag": tag}
        answer = self._call("batch_get_image", repository, imageIds=[image_id], acceptedMediaTypes=MEDIA_TYPES)
        if not answer.get("images"):
            return None
        image = answer["images"][0]
        body = image["imageManifest"]
        media_type = image.get("imageManifestMediaType") or json.loads(body).get("mediaType") or DOCKER_MANIFEST
        return Manifest(repository, image["imageId"]["imageDigest"], media_type, body)

    def manifest(self, repository: str, tag: str | None = None, digest: str | None = None) -> Manifest:
        found = self.find(repository, tag, digest)
        if found is None:
            raise NotFound(f"image {repository}{'@' + digest if digest else ':' + str(tag)} not found")
        return found

    def missing(self, repository: str, digests: list[str]) -> list[str]:
        absent: list[str] = []
        for start in range(0, len(digests), CHECK_LAYERS_MAX):
            batch = digests[start : start + CHECK_LAYERS_MAX]
            answer = self._call("batch_check_layer_availability", repository, layerDigests=batch)
            available = {
                layer["layerDigest"] for layer in answer.get("layers", []) if layer.get("layerAvailability") == "AVAILABLE"
            }
            absent += [d for d in batch if d not in available]
        return absent

    def download_url(self, repository: str, digest: str) -> str:
        return self._call("get_download_url_for_layer", repository, layerDigest=digest)["downloadUrl"]

    def upload(self, repository: str, digest: str, parts: Iterable[bytes]) -> int:
        """Upload a blob from its parts, in order; returns the bytes sent."""
        upload_id = self._call("initiate_layer_upload", repository)["uploadId"]
        sent = 0
        for part in parts:
            self._call(
                "upload_layer_part",
                repository,
                uploadId=upload_id,
                partFirstByte=sent,
                partLastByte=sent + len(part) - 1,
                layerPartBlob=part,
            )
            sent += len(part)
        stored = self._call("complete_layer_upload", repository, uploadId=upload_id, layerDigests=[digest])["layerDigest"]
        if stored != digest:
            raise OperationFailed(f"ECR stored blob {stored} in {repository}, expected {digest}")
        return sent

    def put(self, repository: str, manifest: Manifest, tag: str | None) -> str:
        """PutImage with the exact manifest bytes; returns 'written', or 'unchanged' when already so."""
        tagging = {"imageTag": tag} if tag else {}
        try:
            answer = self._call(
                "put_image",
                repository,
                imageManifest=manifest.body,
                imageManifestMediaType=manifest.media_type,
                imageDigest=manifest.digest,
                **tagging,
            )
        except AwsError as error:
            if error.code in ("ImageAlreadyExistsException", "ImageTagAlreadyExistsException"):
                return self._already(repository, manifest, tag, error.code)
            if error.code == "LayersNotFoundException":
                raise OperationFailed(f"ECR refused the manifest in {repository}: {error}") from None
            raise
        written = answer["image"]["imageId"]["imageDigest"]
        if written != manifest.digest:
            raise OperationFailed(f"{repository}:{tag} got digest {written}, expected {manifest.digest}")
        return "written"

    def _already(self, repository: str, manifest: Manifest, tag: str | None, code: str) -> str:
        found = self.find(repository, tag=tag) if tag else manifest
        current = found.digest if found else "no image"
        if current == manifest.digest:
            return "unchanged"
        raise OperationFailed(
            f"tag {tag} in {repository} is immutable and points at {current}, not {manifest.digest} ({code})"
        )
