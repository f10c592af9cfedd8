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
  fail_uploads(digest, 500, "reset")         the next registry-API uploads of the blob answer this status, or
                                             drop the connection half-way through the body
  unreachable = True                         GetAuthorizationToken answers an endpoint nothing listens on

The registry API (OCI distribution) is served on the same loopback server under /v2/, at the proxyEndpoint
GetAuthorizationToken answers, with the token it hands out (basic auth `AWS:<password>`, 12 hours): manifests
(GET, HEAD, PUT), blobs (HEAD; GET redirects to the "pre-signed" storage URL, which refuses a request that also
carries the registry's Authorization header, as S3 does), uploads (POST, PATCH, PUT, DELETE), cross-repository
mounts (`POST ...?mount=&from=`, only while the account setting BLOB_MOUNTING is ENABLED and the blob is referenced
by a manifest in the source repository, as ECR requires), and tag listings. Each request is authorized as the
ECR action it stands for (PutImage, InitiateLayerUpload, ...) against the IAM identity the token was issued to,
whenever moto enforces IAM. GetAccountSetting and PutAccountSetting, which moto lacks, are added.
"""

import base64
import hashlib
import itertools
import json
import re
import socket
import threading
import uuid
from collections import defaultdict
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
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


class ImageTagAlreadyExistsException(ServiceException):
    code = "ImageTagAlreadyExistsException"


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
        self._upload_faults: dict[str, list[int | str]] = defaultdict(list)
        self.mounts: list[tuple[str, str, str]] = []  # (destination, digest, source) of each blob mounted
        self.api_requests: list[tuple[str, str]] = []  # (method, path) of each registry API request
        self.unreachable = False
        self._credentials: dict[str, tuple[str, str, datetime, str]] = {}  # password -> account, Region, expiry, signer
        self._sessions: dict[str, tuple[str, str, str, bytearray]] = {}  # upload id -> account, Region, repository, bytes
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

    def fail_uploads(self, digest: str, *faults: int | str) -> None:
        self._upload_faults[digest].extend(faults)

    # Tokens ---------------------------------------------------------------------------------------------------

    def issue_token(self, account: str, region: str, signer: str, now: datetime) -> tuple[str, datetime]:
        password = f"sandbox-{uuid.uuid4().hex}"
        expires = now + timedelta(hours=12)
        with self._lock:
            self._credentials[password] = (account, region, expires, signer)
        return base64.b64encode(f"AWS:{password}".encode()).decode(), expires

    def endpoint(self) -> str:
        if self.unreachable:
            with socket.socket() as probe:  # a port nobody listens on once the probe is closed
                probe.bind(("127.0.0.1", 0))
                return f"http://127.0.0.1:{probe.getsockname()[1]}"
        return self.url

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
            protocol_version = "HTTP/1.1"  # keep-alive, as registries and S3 serve it

            def do_GET(self):
                if self.path.startswith("/v2"):
                    return _RegistryApi(registry, self).handle("GET")
                self._storage()

            def do_HEAD(self):
                _RegistryApi(registry, self).handle("HEAD")

            def do_PUT(self):
                _RegistryApi(registry, self).handle("PUT")

            def do_POST(self):
                _RegistryApi(registry, self).handle("POST")

            def do_PATCH(self):
                _RegistryApi(registry, self).handle("PATCH")

            def do_DELETE(self):
                _RegistryApi(registry, self).handle("DELETE")

            def _storage(self):
                address = urlsplit(self.path)
                _, repository, digest = address.path.rsplit("/", 2)
                token = parse_qs(address.query).get("X-Amz-Signature", [""])[0]
                body = registry.blobs.get((repository.replace("%2F", "/"), digest))
                fault = registry._url_faults.get(token)
                if self.headers.get("Authorization"):
                    # S3 refuses a pre-signed URL that also carries an Authorization header.
                    self.send_error(400, explain="Only one auth mechanism allowed")
                    return
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


# The registry API ---------------------------------------------------------------------------------------------

_MANIFEST = re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<ref>[^/]+)$")
_UPLOADS = re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/?$")
_SESSION = re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/(?P<id>[^/]+)$")
_BLOB = re.compile(r"^/v2/(?P<name>.+)/blobs/(?P<digest>sha256:[0-9a-f]{64})$")
_TAGS = re.compile(r"^/v2/(?P<name>.+)/tags/list$")
_IMMUTABLE = ("The image tag '{tag}' already exists in the '{name}' repository and cannot be overwritten because the "
              "repository is immutable.")


class _Refusal(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


class _RegistryApi:
    """One request to /v2/, answered from moto's ECR backend of the account and Region the token was issued in."""

    def __init__(self, registry: "Registry", handler: BaseHTTPRequestHandler):
        self.registry, self.http = registry, handler
        address = urlsplit(handler.path)
        self.path, self.query = address.path, {k: v[0] for k, v in parse_qs(address.query).items()}
        self.account = self.region = self.signer = ""

    def handle(self, method: str) -> None:
        self.registry.api_requests.append((method, self.path))
        body_length = int(self.http.headers.get("Content-Length") or 0)
        try:
            self._authenticate()
            self._route(method, body_length)
        except _Refusal as refusal:
            if method in ("PUT", "PATCH", "POST") and not getattr(self, "_read", False):
                self._drain(body_length)
            payload = json.dumps({"errors": [{"code": refusal.code, "message": refusal.message}]}).encode()
            self._answer(refusal.status, payload if method != "HEAD" else b"",
                         {"Content-Type": "application/json", **refusal.headers}, length=len(payload))

    # Plumbing ----------------------------------------------------------------------------------------------------

    def _answer(self, status: int, body: bytes = b"", headers: dict | None = None, length: int | None = None) -> None:
        self.http.send_response(status)
        for key, value in (headers or {}).items():
            self.http.send_header(key, value)
        self.http.send_header("Content-Length", str(len(body) if length is None else length))
        self.http.end_headers()
        if body:
            self.http.wfile.write(body)

    def _drain(self, length: int) -> None:
        while length > 0:
            chunk = self.http.rfile.read(min(length, 1 << 20))
            if not chunk:
                break
            length -= len(chunk)

    def _body(self, length: int) -> bytes:
        self._read = True
        return self.http.rfile.read(length) if length else b""

    def _authenticate(self) -> None:
        challenge = {"WWW-Authenticate": 'Basic realm="https://ecr.amazonaws.com/",service="ecr.amazonaws.com"'}
        scheme, _, value = (self.http.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "basic":
            raise _Refusal(401, "DENIED", "Not Authorized", challenge)
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise _Refusal(401, "DENIED", "Not Authorized", challenge) from None
        found = self.registry._credentials.get(password)
        if user != "AWS" or found is None or found[2] <= datetime.now(UTC):
            raise _Refusal(401, "DENIED", "Your authorization token has expired. Reauthenticate and try again.", challenge)
        self.account, self.region, _, self.signer = found

    def _authorize(self, action: str) -> None:
        """As ECR authorizes the registry API: each request is the ECR action it stands for."""
        from moto import settings
        from moto.core.authorization import ActionAuthenticatorMixin
        from moto.core.exceptions import AccessDeniedError
        from moto.iam.access_control import IAMRequest

        if ActionAuthenticatorMixin.request_count < settings.INITIAL_NO_AUTH_ACTION_COUNT or not self.signer:
            return
        request = IAMRequest(account_id=self.account, method="POST", path="/", data={}, body=b"",
                             headers={"Authorization": self.signer}, action=action)
        try:
            request.check_action_permitted("*")
        except AccessDeniedError as error:
            raise _Refusal(403, "DENIED", str(getattr(error, "message", error))) from None

    def _backend(self):
        return models.ecr_backends[self.account][self.region]

    def _repository(self, name: str):
        repository = self._backend().repositories.get(name)
        if repository is None:
            raise _Refusal(404, "NAME_UNKNOWN", f"The repository with name '{name}' does not exist in the registry "
                                                f"with id '{self.account}'")
        return repository

    def _image(self, repository, name: str, reference: str):
        key = f"{name}@{reference}" if reference.startswith("sha256:") else f"{name}:{reference}"
        if key in self.registry.image_failures:
            code, reason = self.registry.image_failures[key]
            if code == "ImageNotFound":
                raise _Refusal(404, "MANIFEST_UNKNOWN", reason)
            raise _Refusal(400, code, reason)
        for image in repository.images:
            if reference == image.get_image_digest() or reference in image.image_tags:
                return image
        raise _Refusal(404, "MANIFEST_UNKNOWN", f"Requested image not found: {key}")

    # Routes --------------------------------------------------------------------------------------------------------

    def _route(self, method: str, length: int) -> None:
        path = self.path
        if path in ("/v2", "/v2/"):
            return self._answer(200, b"{}", {"Content-Type": "application/json"})
        for pattern, handlers in ((_MANIFEST, {"GET": self._get_manifest, "HEAD": self._get_manifest,
                                               "PUT": self._put_manifest}),
                                  (_UPLOADS, {"POST": self._start_upload}),
                                  (_SESSION, {"PATCH": self._patch, "PUT": self._finish, "DELETE": self._cancel}),
                                  (_BLOB, {"GET": self._get_blob, "HEAD": self._head_blob}),
                                  (_TAGS, {"GET": self._tags})):
            match = pattern.match(path)
            if match and method in handlers:
                return handlers[method](method, length, **match.groupdict())
        raise _Refusal(405 if any(p.match(path) for p in (_MANIFEST, _BLOB, _SESSION)) else 404, "UNSUPPORTED",
                       f"{method} {path} is not supported")

    def _get_manifest(self, method: str, _length: int, name: str, ref: str) -> None:
        self._authorize("BatchGetImage")
        with self.registry._lock:
            repository = self._repository(name)
            image = self._image(repository, name, ref)
            body = image.image_manifest.encode()
            media_type = image.image_manifest_media_type or json.loads(body).get("mediaType")
        headers = {"Content-Type": media_type, "Docker-Content-Digest": "sha256:" + hashlib.sha256(body).hexdigest()}
        self._answer(200, body if method == "GET" else b"", headers, length=len(body))

    def _put_manifest(self, _method: str, length: int, name: str, ref: str) -> None:
        body = self._body(length)
        self._authorize("PutImage")
        media_type = (self.http.headers.get("Content-Type") or "").split(";")[0].strip() or None
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        by_digest = ref.startswith("sha256:")
        if by_digest and ref != digest:
            raise _Refusal(400, "DIGEST_INVALID", f"the manifest's digest is {digest}, not {ref}")
        with self.registry._lock:
            repository = self._repository(name)
            existing = next((i for i in repository.images if i.get_image_digest() == digest), None)
            if existing is None or (not by_digest and ref not in existing.image_tags):
                try:
                    self._backend().put_image(name, body.decode(), None if by_digest else ref, media_type, digest)
                except ServiceException as error:
                    code = getattr(error, "code", "") or type(error).__name__
                    if code == "ImageAlreadyExistsException":
                        pass
                    elif code == "ImageTagAlreadyExistsException":
                        raise _Refusal(400, "TAG_INVALID", _IMMUTABLE.format(tag=ref, name=name)) from None
                    elif code == "LayersNotFoundException":
                        raise _Refusal(400, "MANIFEST_BLOB_UNKNOWN", str(error.message)) from None
                    elif code == "ReferencedImagesNotFoundException":
                        raise _Refusal(400, "MANIFEST_UNKNOWN", f"{code}: {error.message}") from None
                    else:
                        raise _Refusal(400, "MANIFEST_INVALID", f"{code}: {error.message}") from None
        self._answer(201, b"", {"Docker-Content-Digest": digest, "Location": f"/v2/{name}/manifests/{digest}"})

    def _tags(self, _method: str, _length: int, name: str) -> None:
        self._authorize("ListImages")
        with self.registry._lock:
            tags = sorted({tag for image in self._repository(name).images for tag in image.image_tags if tag})
        self._answer(200, json.dumps({"name": name, "tags": tags}).encode(), {"Content-Type": "application/json"})

    def _head_blob(self, _method: str, _length: int, name: str, digest: str) -> None:
        self._authorize("BatchCheckLayerAvailability")
        with self.registry._lock:
            repository = self._repository(name)
            data = self.registry.blobs.get((name, digest))
            if digest not in repository.layers or data is None:
                raise _Refusal(404, "BLOB_UNKNOWN", f"blob {digest} unknown to registry")
        self._answer(200, b"", {"Docker-Content-Digest": digest}, length=len(data))

    def _get_blob(self, _method: str, _length: int, name: str, digest: str) -> None:
        self._authorize("GetDownloadUrlForLayer")
        with self.registry._lock:
            repository = self._repository(name)
            if digest not in repository.layers or (name, digest) not in self.registry.blobs:
                raise _Refusal(404, "BLOB_UNKNOWN", f"blob {digest} unknown to registry")
        # ECR answers with a redirect to its storage: a pre-signed URL, carrying its own credentials.
        self._answer(307, b"", {"Location": self.registry.issue_url(name, digest)})

    def _start_upload(self, _method: str, length: int, name: str) -> None:
        self._drain(length)
        self._read = True
        self._authorize("InitiateLayerUpload")
        digest, source = self.query.get("mount"), self.query.get("from")
        with self.registry._lock:
            self._repository(name)
            if digest and source and self._mountable(digest, source, name):
                data = self.registry.blobs[(source, digest)]
                self._repository(name).layers[digest] = len(data)
                self.registry.blobs[(name, digest)] = data
                self.registry.mounts.append((name, digest, source))
                return self._answer(201, b"", {"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": digest})
            upload = uuid.uuid4().hex
            self.registry._sessions[upload] = (self.account, self.region, name, bytearray())
        self._answer(202, b"", {"Location": f"/v2/{name}/blobs/uploads/{upload}", "Docker-Upload-UUID": upload,
                                "Range": "0-0"})

    def _mountable(self, digest: str, source: str, name: str) -> bool:
        """ECR's conditions: the account setting, the same encryption, and a manifest in the source naming the blob."""
        backend = self._backend()
        if _settings(backend).get("BLOB_MOUNTING") != "ENABLED":
            return False
        origin = backend.repositories.get(source)
        if origin is None or digest not in origin.layers or (source, digest) not in self.registry.blobs:
            return False
        if getattr(origin, "encryption_configuration", None) != getattr(backend.repositories[name],
                                                                        "encryption_configuration", None):
            return False
        try:
            self._authorize("GetDownloadUrlForLayer")
        except _Refusal:
            return False
        return any(digest in _blobs_of(json.loads(image.image_manifest)) for image in origin.images)

    def _session(self, name: str, upload: str) -> bytearray:
        found = self.registry._sessions.get(upload)
        if found is None or found[2] != name:
            raise _Refusal(404, "BLOB_UPLOAD_UNKNOWN", f"upload {upload} unknown to registry")
        return found[3]

    def _patch(self, _method: str, length: int, name: str, id: str) -> None:
        data = self._body(length)
        self._authorize("UploadLayerPart")
        with self.registry._lock:
            buffer = self._session(name, id)
            buffer += data
            end = len(buffer) - 1
        self._answer(202, b"", {"Location": f"/v2/{name}/blobs/uploads/{id}", "Range": f"0-{end}",
                                "Docker-Upload-UUID": id})

    def _finish(self, _method: str, length: int, name: str, id: str) -> None:
        expected = self.query.get("digest", "")
        with self.registry._lock:
            fault = self.registry._upload_faults[expected].pop(0) if self.registry._upload_faults.get(expected) else None
        if fault == "reset":
            self.http.rfile.read(length // 2)
            self._read = True
            self.http.close_connection = True  # the connection drops half-way through the body: no answer
            return
        data = self._body(length)
        if len(data) < length:
            self.http.close_connection = True  # the client went away mid-body: nothing is stored
            return
        if isinstance(fault, int):
            raise _Refusal(fault, "UNKNOWN", "the simulation failed this upload")
        self._authorize("CompleteLayerUpload")
        with self.registry._lock:
            buffer = self._session(name, id)
            whole = bytes(buffer) + data
            actual = "sha256:" + hashlib.sha256(whole).hexdigest()
            if actual != expected:
                raise _Refusal(400, "DIGEST_INVALID", f"provided digest {expected} did not match uploaded content {actual}")
            repository = self._repository(name)
            if actual in self.registry._races:  # another push of the same bytes completed just before this one
                self.registry._races.discard(actual)
                repository.layers[actual] = len(whole)
                self.registry.blobs[(name, actual)] = whole
            repository.layers[actual] = len(whole)
            self.registry.blobs[(name, actual)] = whole
            self.registry.uploads.append((name, actual, len(whole)))
            del self.registry._sessions[id]
        self._answer(201, b"", {"Location": f"/v2/{name}/blobs/{actual}", "Docker-Content-Digest": actual})

    def _cancel(self, _method: str, _length: int, name: str, id: str) -> None:
        with self.registry._lock:
            self._session(name, id)
            del self.registry._sessions[id]
        self._answer(204)


def _settings(backend) -> dict:
    """The registry's account settings (GetAccountSetting, PutAccountSetting), kept on moto's backend."""
    if "account_settings" not in vars(backend):
        backend.account_settings = {}
    return backend.account_settings


ACCOUNT_SETTINGS = {"BLOB_MOUNTING": ("ENABLED", "DISABLED"), "BASIC_SCAN_TYPE_VERSION": ("AWS_NATIVE",),
                    "REGISTRY_POLICY_SCOPE": ("V1", "V2")}
DEFAULT_SETTINGS = {"BLOB_MOUNTING": "DISABLED", "BASIC_SCAN_TYPE_VERSION": "AWS_NATIVE", "REGISTRY_POLICY_SCOPE": "V2"}


def _get_account_setting(response):
    name = response._get_param("name")
    if name not in ACCOUNT_SETTINGS:
        raise exceptions.InvalidParameterException(f"Invalid account setting name {name}")
    value = _settings(response.ecr_backend).get(name, DEFAULT_SETTINGS[name])
    return ActionResult({"name": name, "value": value})


def _put_account_setting(response):
    name, value = response._get_param("name"), response._get_param("value")
    if name not in ACCOUNT_SETTINGS or value not in ACCOUNT_SETTINGS[name]:
        raise exceptions.InvalidParameterException(f"Invalid value {value} for account setting {name}")
    _settings(response.ecr_backend)[name] = value
    return ActionResult({"name": name, "value": value})


# moto finds an action's handler among the response class's methods, a list the sandbox's speedups remember per class:
# these are added once, at import, before any request could be answered.
for _name, _handler in (("get_account_setting", _get_account_setting), ("put_account_setting", _put_account_setting)):
    if not hasattr(responses.ECRResponse, _name):
        setattr(responses.ECRResponse, _name, _handler)



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
            # ECR refuses to move an immutable tag with this code; moto answers ImageAlreadyExistsException.
            holder = next((i for i in repository.images if image_tag and image_tag in i.image_tags), None)
            if holder is not None and holder.get_image_digest() != actual and repository.is_tag_immutable():
                raise ImageTagAlreadyExistsException(
                    f"The image tag '{image_tag}' already exists in the '{repository_name}' repository and cannot be "
                    "overwritten because the repository is immutable.")
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

    def get_authorization_token(response):
        """Tokens the registry API checks, for the proxyEndpoint of the loopback server; 12 hours, as ECR's."""
        ids = response._get_param("registryIds") or [response.current_account]
        signer = response.headers.get("Authorization", "")
        data = []
        for registry_id in ids:
            token, expires = registry.issue_token(registry_id, response.region, signer, datetime.now(UTC))
            data.append({"authorizationToken": token, "expiresAt": expires, "proxyEndpoint": registry.endpoint()})
        return ActionResult({"authorizationData": data})

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
            stack.enter_context(mock.patch.object(response_cls, "get_authorization_token", get_authorization_token))
            yield registry
    finally:
        registry.close()
