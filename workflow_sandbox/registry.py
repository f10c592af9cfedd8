"""ECR as the real one behaves where moto differs, and the faults the real one produces, on demand.

moto stores only the sizes of uploaded layers, cannot hand out download URLs, computes image digests
from layer digests, and accepts manifests whose blobs are absent. Here uploaded bytes are kept, served
from a loopback HTTP server for GetDownloadUrlForLayer (each URL unique, as pre-signed ones are),
PutImage digests are the SHA-256 of the manifest bytes, PutImage refuses a manifest whose blobs the
repository lacks (LayersNotFoundException) or an index whose child manifests it lacks
(ReferencedImagesNotFoundException), InitiateLayerUpload answers with `part_size` and UploadLayerPart
refuses bigger parts, and CompleteLayerUpload of a blob the repository has answers LayerAlreadyExistsException.

Faults, each for the next matching calls only:
  fail_downloads(digest, 403, 503, "reset")  the next download URLs of the blob answer these statuses
                                             ("reset": the connection drops half-way through the body)
  forbid_downloads(digest, times)            the next `times` download URLs answer 403 (expired, or blocked
                                             by an S3 endpoint policy)
  race_completes(digest)                     a concurrent push of the same blob completes just before ours
  drop_part_response(repository, first_byte) the part is stored but its answer is lost, so botocore
                                             retries it and ECR answers InvalidLayerPartException
  hide_children(index_digest, times)         PutImage of the index answers ReferencedImagesNotFoundException
  image_failures["repo:tag" or "repo@digest"] = (failureCode, failureReason)  for BatchGetImage
"""

import hashlib
import itertools
import json
import threading
from collections import defaultdict
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock
from urllib.parse import parse_qs, urlsplit

from botocore.exceptions import ReadTimeoutError
from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult
from moto.ecr import exceptions, models, responses

DEFAULT_PART_SIZE = 10 * 1024 * 1024  # what ECR answers today


class LayersNotFoundException(ServiceException):
    code = "LayersNotFoundException"


class ReferencedImagesNotFoundException(ServiceException):
    code = "ReferencedImagesNotFoundException"


class LayerInaccessibleException(ServiceException):
    code = "LayerInaccessibleException"


class LayerAlreadyExistsException(ServiceException):
    code = "LayerAlreadyExistsException"


class InvalidLayerException(ServiceException):
    code = "InvalidLayerException"


class ImageDigestDoesNotMatchException(ServiceException):
    code = "ImageDigestDoesNotMatchException"


class Registry:
    """Blob bytes by (repository, digest), served over HTTP on 127.0.0.1, with counters tests read."""

    def __init__(self):
        self.blobs: dict[tuple[str, str], bytes] = {}
        self.downloads: list[str] = []  # digests, one per GET that served bytes
        self.download_urls: list[str] = []  # every URL GetDownloadUrlForLayer handed out
        self.uploads: list[tuple[str, str, int]] = []  # (repository, digest, bytes)
        self.parts: list[tuple[str, int, int]] = []  # (repository, first byte, bytes) of each part stored
        self.corrupt: set[str] = set()  # digests whose downloads arrive damaged
        self.part_size = DEFAULT_PART_SIZE
        self.image_failures: dict[str, tuple[str, str]] = {}
        self._download_faults: dict[str, list[int | str]] = defaultdict(list)
        self._url_faults: dict[str, int | str] = {}  # URL token -> its fault, for as long as the URL lives
        self._races: set[str] = set()
        self._dropped_parts: list[tuple[str, int]] = []
        self._hidden_children: dict[str, int] = defaultdict(int)
        self._tokens = itertools.count(1)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # Faults ---------------------------------------------------------------------------------------------

    def fail_downloads(self, digest: str, *faults: int | str) -> None:
        self._download_faults[digest].extend(faults)

    def forbid_downloads(self, digest: str, times: int = 1) -> None:
        self.fail_downloads(digest, *[403] * times)

    def race_completes(self, digest: str) -> None:
        self._races.add(digest)

    def drop_part_response(self, repository: str, first_byte: int = 0) -> None:
        self._dropped_parts.append((repository, first_byte))

    def hide_children(self, index_digest: str, times: int = 1) -> None:
        self._hidden_children[index_digest] += times

    # The loopback blob server ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def issue_url(self, repository: str, digest: str) -> str:
        """A URL unique to this call, as pre-signed ones are; a fault queued for the blob sticks to it."""
        token = str(next(self._tokens))
        with self._lock:
            if self._download_faults.get(digest):
                self._url_faults[token] = self._download_faults[digest].pop(0)
        url = f"{self.url}/blobs/{repository.replace('/', '%2F')}/{digest}?X-Amz-Signature={token}"
        self.download_urls.append(url)
        return url

    def serve(self) -> None:
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                address = urlsplit(self.path)
                _, repository, digest = address.path.rsplit("/", 2)
                token = parse_qs(address.query).get("X-Amz-Signature", [""])[0]
                body = registry.blobs.get((repository.replace("%2F", "/"), digest))
                fault = registry._url_faults.get(token)
                if body is None:
                    self.send_error(404)
                    return
                if isinstance(fault, int):
                    self.send_error(fault, explain="Request has expired" if fault == 403 else None)
                    return
                registry.downloads.append(digest)
                if digest in registry.corrupt:
                    body = body[:-1] + bytes([body[-1] ^ 0xFF])
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with memoryview(body) as view:
                    self.wfile.write(view[: len(body) // 2] if fault == "reset" else view)
                if fault == "reset":
                    self.close_connection = True

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # shutdown() waits for the loop to notice: poll often, so closing takes no noticeable time.
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()

    def close(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()


def _blobs_of(manifest: dict) -> list[str]:
    if "manifests" in manifest:
        return []
    return [manifest["config"]["digest"], *(layer["digest"] for layer in manifest.get("layers", []))]


def _image_name(repository: str, image_id: dict) -> str:
    return f"{repository}@{image_id['imageDigest']}" if "imageDigest" in image_id else f"{repository}:{image_id.get('imageTag')}"


@contextmanager
def simulated_ecr(registry: Registry):
    backend_cls, response_cls = models.ECRBackend, responses.ECRResponse
    original_put = backend_cls.put_image
    original_complete = backend_cls.complete_layer_upload
    original_initiate = backend_cls.initiate_layer_upload
    original_part = backend_cls.upload_layer_part
    original_get = backend_cls.batch_get_image

    def initiate_layer_upload(backend, repository_name, registry_id=None):
        return {**original_initiate(backend, repository_name, registry_id), "partSize": registry.part_size}

    def upload_layer_part(backend, repository_name, upload_id, part_first_byte, part_last_byte, layer_part_blob,
                          registry_id=None):
        repository = backend._get_repository(repository_name, registry_id)
        upload = repository.uploads.get(upload_id)
        if upload is not None and len(layer_part_blob or b"") > registry.part_size:
            raise exceptions.InvalidLayerPartException(repository.registry_id, repository_name, upload_id,
                                                       upload.last_byte_received)
        answer = original_part(backend, repository_name, upload_id, part_first_byte, part_last_byte, layer_part_blob,
                               registry_id)
        registry.parts.append((repository_name, part_first_byte, len(layer_part_blob or b"")))
        if (repository_name, part_first_byte) in registry._dropped_parts:
            registry._dropped_parts.remove((repository_name, part_first_byte))
            raise ReadTimeoutError(endpoint_url=f"UploadLayerPart {repository_name} (answer dropped by the simulation)")
        return answer

    def complete_layer_upload(backend, repository_name, upload_id, layer_digests, registry_id=None):
        repository = backend._get_repository(repository_name, registry_id)
        upload = repository.uploads.get(upload_id)
        data = bytes(upload.layer_parts) if upload else b""
        actual = "sha256:" + hashlib.sha256(data).hexdigest()
        if upload and layer_digests and actual not in layer_digests:
            raise InvalidLayerException(f"layer digest {layer_digests[0]} does not match the uploaded {actual}")
        if upload and actual in registry._races:
            registry._races.discard(actual)  # another push of the same bytes completes just before this one
            repository.layers[actual] = len(data)
            registry.blobs[(repository_name, actual)] = data
        if upload and actual in repository.layers:
            repository.uploads.pop(upload_id, None)
            raise LayerAlreadyExistsException(f"Layer {actual} already exists in repository {repository_name}")
        answer = original_complete(backend, repository_name, upload_id, layer_digests, registry_id)
        registry.blobs[(repository_name, actual)] = data
        registry.uploads.append((repository_name, actual, len(data)))
        return answer

    def batch_get_image(backend, repository_name, registry_id=None, image_ids=None):
        failing = [i for i in image_ids or [] if _image_name(repository_name, i) in registry.image_failures]
        rest = [i for i in image_ids or [] if i not in failing]
        answer = original_get(backend, repository_name, registry_id, rest) if rest or not failing else {}
        answer = {"images": answer.get("images", []), "failures": answer.get("failures", [])}
        for image_id in failing:
            code, reason = registry.image_failures[_image_name(repository_name, image_id)]
            answer["failures"].append({"imageId": image_id, "failureCode": code, "failureReason": reason})
        return answer

    def put_image(backend, repository_name, image_manifest, image_tag, image_manifest_mediatype=None, digest=None):
        repository = backend.repositories.get(repository_name)
        actual = "sha256:" + hashlib.sha256(image_manifest.encode()).hexdigest()
        if digest and digest != actual:
            raise ImageDigestDoesNotMatchException(f"the manifest's digest is {actual}, not {digest}")
        if repository is not None:
            manifest = json.loads(image_manifest)
            absent = [d for d in _blobs_of(manifest) if d not in repository.layers]
            if absent:
                raise LayersNotFoundException(f"Layers {absent} not found in repository {repository_name}")
            present = {img.get_image_digest() for img in repository.images}
            children = [m["digest"] for m in manifest.get("manifests", [])]
            if registry._hidden_children.get(actual):
                registry._hidden_children[actual] -= 1
                present -= set(children)
            if any(child not in present for child in children):
                raise ReferencedImagesNotFoundException("Some of the images referenced by the manifest list were not found")
        return original_put(backend, repository_name, image_manifest, image_tag, image_manifest_mediatype, actual)

    def get_download_url_for_layer(response):
        name = response._get_param("repositoryName")
        digest = response._get_param("layerDigest")
        repository = response.ecr_backend._get_repository(name, response._get_param("registryId"))
        if digest not in repository.layers:
            raise LayersNotFoundException(f"Layer {digest} not found in repository {name}")
        if (name, digest) not in registry.blobs:
            raise LayerInaccessibleException(f"Layer {digest} in repository {name} has no stored bytes")
        return ActionResult({"downloadUrl": registry.issue_url(name, digest), "layerDigest": digest})

    registry.serve()
    try:
        with ExitStack() as stack:
            for name, patched in [
                ("initiate_layer_upload", initiate_layer_upload),
                ("upload_layer_part", upload_layer_part),
                ("complete_layer_upload", complete_layer_upload),
                ("batch_get_image", batch_get_image),
                ("put_image", put_image),
            ]:
                stack.enter_context(mock.patch.object(backend_cls, name, patched))
            stack.enter_context(mock.patch.object(response_cls, "get_download_url_for_layer", get_download_url_for_layer))
            yield registry
    finally:
        registry.close()
