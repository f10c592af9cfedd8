"""The ECR calls promote and the release commands need: manifests, image listings, blobs, and tagging."""

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from botocore.exceptions import ClientError

from .errors import AwsError, NotFound, OperationFailed, translated
from .images import ecr_image
from .registry import (  # noqa: F401  (the manifest types, named here as before)
    DOCKER_LIST,
    DOCKER_MANIFEST,
    INDEX_TYPES,
    MEDIA_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    Basic,
    Blob,
    Manifest,
)
from .tags import ordered_tags

CHECK_LAYERS_MAX = 100
BATCH_GET_MAX = 100  # image ids one BatchGetImage call takes
DESCRIBE_IMAGES_MAX = 100  # image ids one DescribeImages call takes
# ECR's quotas for uploads through the API: parts of 5 to 10 MiB, at most 4,200 of them per layer.
# InitiateLayerUpload answers with the part size to use; this is only the fallback when it does not.
MAX_PART_SIZE = 10 * 1024 * 1024
MAX_PARTS = 4200


class ImageUnavailable(OperationFailed):
    """BatchGetImage answered with a failure other than "not found" (KMS, pull-through cache, ...)."""


class TagImmutable(OperationFailed):
    """The repository's tags are immutable and this one names another image."""


class TagMoved(OperationFailed):
    """Another push wrote the tag at the same time."""


class ReferencedImagesNotFound(OperationFailed):
    """PutImage refused an image index: ECR does not find some of the manifests it references."""


@dataclass(frozen=True)
class ImageDetail:
    """One image as DescribeImages lists it."""

    digest: str
    tags: tuple[str, ...]
    pushed_at: datetime | None
    size: int | None
    media_type: str | None

    @classmethod
    def parse(cls, raw: dict) -> "ImageDetail":
        return cls(raw["imageDigest"], tuple(raw.get("imageTags") or ()), raw.get("imagePushedAt"),
                   raw.get("imageSizeInBytes"), raw.get("imageManifestMediaType"))


@dataclass(frozen=True)
class Upload:
    repository: str
    digest: str
    upload_id: str
    part_size: int


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
        """The image a tag or digest names in `repository`, or None when ECR says it is not there."""
        image_id = {"imageDigest": digest} if digest else {"imageTag": tag}
        answer = self._call("batch_get_image", repository, imageIds=[image_id], acceptedMediaTypes=MEDIA_TYPES)
        if not answer.get("images"):
            for failure in answer.get("failures", []):
                if failure.get("failureCode") != "ImageNotFound":
                    reason = failure.get("failureReason") or "no reason given"
                    raise ImageUnavailable(
                        f"ECR cannot return image {_name(repository, tag, digest)}: {failure.get('failureCode')}: {reason}"
                    )
            return None
        image = answer["images"][0]
        body = image["imageManifest"]
        media_type = image.get("imageManifestMediaType") or json.loads(body).get("mediaType") or DOCKER_MANIFEST
        return Manifest(repository, image["imageId"]["imageDigest"], media_type, body)

    def manifests(self, repository: str, digests: list[str]) -> dict[str, Manifest]:
        """The manifests of the given digests, BATCH_GET_MAX per call; a digest ECR cannot return is left out."""
        found: dict[str, Manifest] = {}
        for start in range(0, len(digests), BATCH_GET_MAX):
            batch = [{"imageDigest": d} for d in digests[start : start + BATCH_GET_MAX]]
            answer = self._call("batch_get_image", repository, imageIds=batch, acceptedMediaTypes=MEDIA_TYPES)
            for image in answer.get("images", []):
                body = image["imageManifest"]
                media_type = image.get("imageManifestMediaType") or json.loads(body).get("mediaType") or DOCKER_MANIFEST
                digest = image["imageId"]["imageDigest"]
                found[digest] = Manifest(repository, digest, media_type, body)
        return found

    def authorization(self, clock: Callable[[], float] | None = None) -> tuple[str, Basic, float]:
        """GetAuthorizationToken for this registry: its registry API endpoint, the credentials, and when they expire
        (epoch seconds; ECR's last 12 hours)."""
        import base64
        import time

        ids = {"registryIds": [self._registry["registryId"]]} if self._registry else {}
        with translated():
            answer = self.client.get_authorization_token(**ids)
        try:
            data = answer["authorizationData"][0]
            user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
            endpoint = data["proxyEndpoint"]
        except (KeyError, IndexError, ValueError, UnicodeDecodeError):
            raise OperationFailed("ECR answered GetAuthorizationToken with no usable token") from None
        expires = data.get("expiresAt")
        expiry = expires.timestamp() if isinstance(expires, datetime) else (clock or time.time)() + 12 * 3600
        return endpoint, Basic(user, password), expiry

    def _call_repositories(self, repository: str) -> dict:
        missing = NotFound(f"repository {repository} not found")
        with translated({"RepositoryNotFoundException": missing}):
            return self.client.describe_repositories(repositoryNames=[repository], **self._registry)

    def account(self, repository: str) -> str | None:
        """The account whose registry holds `repository` (its registryId)."""
        found = self._call_repositories(repository).get("repositories") or [{}]
        return str(found[0]["registryId"]) if found[0].get("registryId") else None

    def delete_tag(self, repository: str, tag: str) -> None:
        """BatchDeleteImage of one tag: the image stays while another tag or digest reference holds it."""
        answer = self._call("batch_delete_image", repository, imageIds=[{"imageTag": tag}])
        failures = [f for f in answer.get("failures", []) if f.get("failureCode") != "ImageNotFound"]
        if failures:
            raise OperationFailed(f"ECR did not remove tag {tag} from {repository}: {failures[0].get('failureCode')}: "
                                  f"{failures[0].get('failureReason') or 'no reason given'}")

    def manifest(self, repository: str, tag: str | None = None, digest: str | None = None) -> Manifest:
        found = self.find(repository, tag, digest)
        if found is None:
            raise NotFound(f"image {_name(repository, tag, digest)} not found")
        return found

    def images(self, repository: str, digests: list[str] | None = None) -> list[ImageDetail]:
        """DescribeImages: every image in `repository` (all pages), or only those with the given digests.

        Given digests cost one call; ECR refuses the whole call when one of them is absent, and only then
        each is asked for alone, the absent ones left out.
        """
        if digests is None:
            found: list[ImageDetail] = []
            missing = NotFound(f"repository {repository} not found")
            with translated({"RepositoryNotFoundException": missing}):
                pages = self.client.get_paginator("describe_images").paginate(repositoryName=repository, **self._registry)
                for page in pages:
                    found += [ImageDetail.parse(raw) for raw in page.get("imageDetails", [])]
            return found
        found = []
        for start in range(0, len(digests), DESCRIBE_IMAGES_MAX):
            batch = digests[start : start + DESCRIBE_IMAGES_MAX]
            try:
                found += self._describe(repository, batch)
                continue
            except AwsError as error:
                if error.code != "ImageNotFoundException":
                    raise
            for digest in batch if len(batch) > 1 else ():
                try:
                    found += self._describe(repository, [digest])
                except AwsError as error:
                    if error.code != "ImageNotFoundException":
                        raise
        return found

    def _describe(self, repository: str, digests: list[str]) -> list[ImageDetail]:
        answer = self._call("describe_images", repository, imageIds=[{"imageDigest": d} for d in digests])
        return [ImageDetail.parse(raw) for raw in answer.get("imageDetails", [])]

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
        """A pre-signed URL, valid for a short while only: ask again rather than reuse one."""
        return self._call("get_download_url_for_layer", repository, layerDigest=digest)["downloadUrl"]

    def initiate_upload(self, repository: str, digest: str) -> Upload:
        answer = self._call("initiate_layer_upload", repository)
        return Upload(repository, digest, answer["uploadId"], answer.get("partSize") or MAX_PART_SIZE)

    def upload_part(self, upload: Upload, first_byte: int, part: bytes | bytearray) -> int:
        """Send the part that starts at `first_byte`; returns the offset of the next byte ECR expects."""
        last_byte = first_byte + len(part) - 1
        with translated({"RepositoryNotFoundException": NotFound(f"repository {upload.repository} not found")}):
            try:
                self.client.upload_layer_part(
                    repositoryName=upload.repository,
                    **self._registry,
                    uploadId=upload.upload_id,
                    partFirstByte=first_byte,
                    partLastByte=last_byte,
                    layerPartBlob=part,
                )
            except ClientError as error:
                answered = error.response.get("lastValidByteReceived")
                if error.response.get("Error", {}).get("Code") != "InvalidLayerPartException" or answered is None:
                    raise
                received = answered if isinstance(answered, int) else int(str(answered))
                # botocore retried a part whose first attempt landed but whose answer was lost:
                # ECR tells how far it got, so carry on from there instead of starting the blob over.
                if first_byte <= received <= last_byte:
                    rest = part[received + 1 - first_byte :]
                    return self.upload_part(upload, received + 1, rest) if rest else received + 1
                raise OperationFailed(
                    f"ECR refused bytes {first_byte}-{last_byte} of blob {upload.digest} in {upload.repository}: "
                    f"it holds bytes up to {received} of the upload ({error.response['Error'].get('Message', '')})"
                ) from None
        return last_byte + 1

    def complete_upload(self, upload: Upload) -> str:
        """Returns 'stored', or 'already there' when a concurrent push of the same blob completed first."""
        try:
            answer = self._call(
                "complete_layer_upload", upload.repository, uploadId=upload.upload_id, layerDigests=[upload.digest]
            )
        except AwsError as error:
            # The digest was checked here as the bytes streamed, so the blob ECR holds is the same one.
            if error.code == "LayerAlreadyExistsException":
                return "already there"
            raise
        if answer["layerDigest"] != upload.digest:
            raise OperationFailed(f"ECR stored blob {answer['layerDigest']} in {upload.repository}, expected {upload.digest}")
        return "stored"

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
            if error.code == "ReferencedImagesNotFoundException":
                raise ReferencedImagesNotFound(f"ECR refused the image index in {repository}: {error}") from None
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
        if code == "ImageTagAlreadyExistsException":  # only this code says the repository's tags are immutable
            raise TagImmutable(f"tag {tag} in {repository} is immutable and points at {current}, not {manifest.digest} ({code})")
        raise TagMoved(f"tag {tag} in {repository} points at {current}, not {manifest.digest}: another push moved it "
                       f"while this one wrote it ({code})")


class RepositoryPlace:
    """An ECR repository's tags, where the leases of commands that move or deploy its `latest` live. A repository
    that does not exist holds no lease: nothing can be promoted there, nor deployed from it."""

    def __init__(self, ecr: Ecr, repository: str):
        self.ecr, self.repository, self.name = ecr, repository, f"repository {repository}"
        self._arn: str | None = None
        self._looked = False

    def arn(self) -> str | None:
        if not self._looked:
            try:
                found = self.ecr._call_repositories(self.repository).get("repositories") or []
            except NotFound:
                found = []
            self._arn = str(found[0]["repositoryArn"]) if found and found[0].get("repositoryArn") else None
            self._looked = True
        return self._arn

    def exists(self) -> bool:
        return self.arn() is not None

    def tags(self) -> dict[str, str]:
        arn = self.arn()
        if arn is None:
            return {}
        with translated():
            answer = self.ecr.client.list_tags_for_resource(resourceArn=arn)
        return {str(t.get("Key")): str(t.get("Value", "")) for t in answer.get("tags") or [] if t.get("Key")}

    def tag(self, tags: list[dict]) -> None:
        arn = self.arn()
        if arn is not None:
            with translated():
                self.ecr.client.tag_resource(resourceArn=arn, tags=[{"Key": t["key"], "Value": t["value"]} for t in tags])

    def untag(self, keys: list[str]) -> None:
        arn = self.arn()
        if arn is not None:
            with translated():
                self.ecr.client.untag_resource(resourceArn=arn, tagKeys=keys)


def tags_for_digests(ecr: "Ecr | Callable[[str | None], object]", image_uri: str, digests: set[str]) -> dict[str, list[str]]:
    """The tags in `image_uri`'s ECR repository on each digest (`latest` first, then newest first), with one
    DescribeImages call; a digest the repository lacks gets no tags. Empty when the image is not in ECR.

    `ecr` is an `Ecr` for the image's registry, or a function from a Region to a boto3 ECR client (then the
    image's own account and Region are asked). AWS errors are WorkflowErrors, for the caller to show or skip.
    """
    ref = ecr_image(image_uri)
    if ref is None or not digests:
        return {}
    registry = ecr if isinstance(ecr, Ecr) else Ecr(ecr(ref.region), ref.account)
    found = {image.digest: ordered_tags(image.tags) for image in registry.images(ref.repository, sorted(digests))}
    return {digest: found.get(digest, []) for digest in sorted(digests)}


def _name(repository: str, tag: str | None, digest: str | None) -> str:
    return f"{repository}@{digest}" if digest else f"{repository}:{tag}"
