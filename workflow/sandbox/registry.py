"""ECR as the real one behaves where moto differs: blob downloads, manifest digests, missing-blob refusals.

moto stores only the sizes of uploaded layers, cannot hand out download URLs, computes image digests
from layer digests, and accepts manifests whose blobs are absent. Here uploaded bytes are kept, served
from a loopback HTTP server, PutImage digests are the SHA-256 of the manifest bytes, and PutImage
refuses a manifest whose blobs or child manifests the repository lacks (LayersNotFoundException).
"""

import hashlib
import json
import threading
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock

from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult
from moto.ecr import models, responses


class LayersNotFoundException(ServiceException):
    code = "LayersNotFoundException"


class LayerInaccessibleException(ServiceException):
    code = "LayerInaccessibleException"


class InvalidLayerException(ServiceException):
    code = "InvalidLayerException"


class ImageDigestDoesNotMatchException(ServiceException):
    code = "ImageDigestDoesNotMatchException"


class Registry:
    """Blob bytes by (repository, digest), served over HTTP on 127.0.0.1, with counters tests read."""

    def __init__(self):
        self.blobs: dict[tuple[str, str], bytes] = {}
        self.downloads: list[str] = []
        self.uploads: list[tuple[str, str, int]] = []  # (repository, digest, bytes)
        self.corrupt: set[str] = set()  # digests whose downloads arrive damaged
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def serve(self) -> None:
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                _, repository, digest = self.path.rsplit("/", 2)
                body = registry.blobs.get((repository.replace("%2F", "/"), digest))
                if body is None:
                    self.send_error(404)
                    return
                registry.downloads.append(digest)
                if digest in registry.corrupt:
                    body = body[:-1] + bytes([body[-1] ^ 0xFF])
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()


def _blobs_of(manifest: dict) -> list[str]:
    if "manifests" in manifest:
        return []
    return [manifest["config"]["digest"], *(layer["digest"] for layer in manifest.get("layers", []))]


@contextmanager
def simulated_ecr(registry: Registry):
    backend_cls, response_cls = models.ECRBackend, responses.ECRResponse
    original_put = backend_cls.put_image
    original_complete = backend_cls.complete_layer_upload

    def complete_layer_upload(backend, repository_name, upload_id, layer_digests, registry_id=None):
        repository = backend._get_repository(repository_name, registry_id)
        upload = repository.uploads.get(upload_id)
        data = bytes(upload.layer_parts) if upload else b""
        actual = "sha256:" + hashlib.sha256(data).hexdigest()
        if upload and layer_digests and actual not in layer_digests:
            raise InvalidLayerException(f"layer digest {layer_digests[0]} does not match the uploaded {actual}")
        answer = original_complete(backend, repository_name, upload_id, layer_digests, registry_id)
        registry.blobs[(repository_name, actual)] = data
        registry.uploads.append((repository_name, actual, len(data)))
        return answer

    def put_image(backend, repository_name, image_manifest, image_tag, image_manifest_mediatype=None, digest=None):
        repository = backend.repositories.get(repository_name)
        actual = "sha256:" + hashlib.sha256(image_manifest.encode()).hexdigest()
        if digest and digest != actual:
            raise ImageDigestDoesNotMatchException(f"the manifest's digest is {actual}, not {digest}")
        if repository is not None:
            manifest = json.loads(image_manifest)
            present = {img.get_image_digest() for img in repository.images}
            absent = [d for d in _blobs_of(manifest) if d not in repository.layers]
            absent += [m["digest"] for m in manifest.get("manifests", []) if m["digest"] not in present]
            if absent:
                raise LayersNotFoundException(f"Layers {absent} not found in repository {repository_name}")
        return original_put(backend, repository_name, image_manifest, image_tag, image_manifest_mediatype, actual)

    def get_download_url_for_layer(response):
        name = response._get_param("repositoryName")
        digest = response._get_param("layerDigest")
        repository = response.ecr_backend._get_repository(name, response._get_param("registryId"))
        if digest not in repository.layers:
            raise LayersNotFoundException(f"Layer {digest} not found in repository {name}")
        if (name, digest) not in registry.blobs:
            raise LayerInaccessibleException(f"Layer {digest} in repository {name} has no stored bytes")
        return ActionResult({"downloadUrl": f"{registry.url}/blobs/{name.replace('/', '%2F')}/{digest}", "layerDigest": digest})

    registry.serve()
    try:
        with ExitStack() as stack:
            stack.enter_context(mock.patch.object(backend_cls, "complete_layer_upload", complete_layer_upload))
            stack.enter_context(mock.patch.object(backend_cls, "put_image", put_image))
            stack.enter_context(mock.patch.object(response_cls, "get_download_url_for_layer", get_download_url_for_layer))
            yield registry
    finally:
        registry.close()
