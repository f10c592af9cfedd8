"""The OCI distribution (registry HTTP) API promote speaks: manifests, blob checks, cross-repository mounts, streamed
blob copies, and how each registry is authenticated (an ECR token, the Docker config file, a Bearer challenge).

The only code here on a registry's wire; urllib3 (a botocore dependency) is imported when the first registry is.
Plain HTTP is used for loopback hosts only. No message names a credential or a pre-signed storage URL.
"""

import base64
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

from .errors import AccessDenied, ConfigurationError, NotFound, OperationFailed, WorkflowError

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_TYPES = [DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX]
INDEX_TYPES = (DOCKER_LIST, OCI_INDEX)
ACCEPT = ", ".join(MEDIA_TYPES)
LOOPBACK = ("127.0.0.1", "::1", "localhost")
CHUNK = 1024 * 1024  # bytes read from a download and sent to an upload at a time, per blob in flight
ATTEMPTS = 5  # per request that can be repeated (all but a streamed upload, which its copy repeats as a whole)
RETRY_DELAYS = (0.5, 1, 2, 4)
TRANSIENT_STATUSES = {408, 429, 500, 502, 503, 504}
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
TOKEN_MARGIN = 300  # seconds before an ECR token's expiry at which a new one is asked for


class RegistryError(OperationFailed):
    """A registry answered something other than what was asked for, after the retries."""

    def __init__(self, message: str, status: int = 0, code: str = "", reason: str = ""):
        super().__init__(message)
        self.status, self.code, self.reason = status, code, reason or message


class RegistryUnreachable(RegistryError):
    """No connection could be made (refused, timed out, unknown name, TLS): promote may fall back to the ECR API."""


class RegistryDenied(ConfigurationError):
    """The registry refused the credentials, or has none for this client."""


class RegistryNotFound(NotFound):
    pass


class DigestMismatch(OperationFailed):
    pass


class DownloadFailed(WorkflowError):
    """A blob's download failed; `retryable` when a new attempt may work (a 403 from storage, a 5xx, a cut)."""

    def __init__(self, reason: str, retryable: bool, status: int = 0):
        super().__init__(reason)
        self.reason, self.retryable, self.status = reason, retryable, status


class UploadFailed(WorkflowError):
    def __init__(self, reason: str, retryable: bool):
        super().__init__(reason)
        self.reason, self.retryable = reason, retryable


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


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Basic:
    user: str
    password: str

    @property
    def header(self) -> str:
        return "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()


def is_loopback(host: str) -> bool:
    return (urlsplit(f"//{host}").hostname or "") in LOOPBACK


def base_url(host: str) -> str:
    """The API's base for a registry host: plain HTTP only on loopback."""
    return f"{'http' if is_loopback(host) else 'https'}://{host}"


def checked_base(url: str) -> str:
    """`url` as a registry base, refused when it would send anything in plain HTTP off this machine."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"{url!r} is no registry endpoint")
    if parts.scheme == "http" and parts.hostname not in LOOPBACK:
        raise ConfigurationError(f"registry endpoint {parts.netloc} is plain HTTP: only loopback hosts may be")
    return f"{parts.scheme}://{parts.netloc}"


def docker_config_credentials(host: str, environ: "dict[str, str] | os._Environ[str] | None" = None) -> Basic | None:
    """The `auths` entry for `host` in the Docker config file ($DOCKER_CONFIG/config.json, else ~/.docker/config.json).

    Credential helpers (`credsStore`, `credHelpers`) are not run.
    """
    found = os.environ if environ is None else environ
    folder = found.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    try:
        with open(os.path.join(folder, "config.json"), encoding="utf-8") as file:
            auths = json.load(file).get("auths") or {}
    except (OSError, ValueError, AttributeError):
        return None
    for key, entry in auths.items() if isinstance(auths, dict) else ():
        name = urlsplit(key if "//" in key else f"//{key}").netloc
        if name != host or not isinstance(entry, dict):
            continue
        if entry.get("auth"):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                continue
            return Basic(user, password)
        if entry.get("username") and entry.get("password"):
            return Basic(entry["username"], entry["password"])
    return None


_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(_CHALLENGE.findall(rest))


_pool_lock = threading.Lock()
_pools: dict = {}


def pool(size: int = 8):
    """One connection pool per process and size: connections to a registry are kept and shared by every copy."""
    import urllib3

    with _pool_lock:
        if size not in _pools:
            ca = os.environ.get("AWS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE") or None
            if ca is None:
                try:
                    import certifi  # botocore's own CA bundle

                    ca = certifi.where()
                except ImportError:
                    ca = None
            _pools[size] = urllib3.PoolManager(num_pools=16, maxsize=size, block=False, blocksize=CHUNK,
                                               ca_certs=ca, retries=False)
        return _pools[size]


def _connection_errors() -> tuple[type[BaseException], ...]:
    import urllib3

    return (urllib3.exceptions.HTTPError, OSError)


def _is_unreachable(error: BaseException) -> bool:
    import urllib3

    return isinstance(error, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError
                      | urllib3.exceptions.SSLError | urllib3.exceptions.NameResolutionError | ConnectionRefusedError)


def describe(error: BaseException) -> str:
    """A connection error as one short line, without the URL (a pre-signed one carries credentials)."""
    import urllib3

    if isinstance(error, urllib3.exceptions.ProtocolError | urllib3.exceptions.IncompleteRead):
        inner = error.args[1] if len(error.args) > 1 and isinstance(error.args[1], BaseException) else None
        text = str(error)
        if "IncompleteRead" in text or isinstance(inner, urllib3.exceptions.IncompleteRead) \
                or isinstance(error, urllib3.exceptions.IncompleteRead):
            return "IncompleteRead: the connection closed before the whole blob arrived"
        return f"connection broken ({type(inner or error).__name__})"
    if isinstance(error, urllib3.exceptions.NameResolutionError):
        return "the host name does not resolve"
    if isinstance(error, urllib3.exceptions.NewConnectionError):  # a subclass of ConnectTimeoutError
        return "the connection was refused" if "refused" in str(error).lower() else "no connection could be made"
    if isinstance(error, urllib3.exceptions.ConnectTimeoutError):
        return "connecting timed out"
    if isinstance(error, urllib3.exceptions.ReadTimeoutError):
        return "no answer in time (read timed out)"
    if isinstance(error, urllib3.exceptions.SSLError):
        return "TLS failed (check AWS_CA_BUNDLE and any TLS-intercepting proxy)"
    return type(error).__name__


def _error_detail(response) -> str:
    """The registry's own error code and message from an error body, if it sent one."""
    try:
        errors = json.loads(response.data or b"{}").get("errors") or []
        first = errors[0]
        return f"{first.get('code', '')}: {first.get('message', '')}".strip(": ")
    except (ValueError, AttributeError, IndexError, TypeError, KeyError):
        return ""


def _code(response) -> str:
    try:
        return str((json.loads(response.data or b"{}").get("errors") or [{}])[0].get("code", ""))
    except (ValueError, AttributeError, IndexError, TypeError):
        return ""


class Registry:
    """One registry's API at `base` (scheme://host[:port]), named `name` in messages."""

    def __init__(self, base: str, name: str | None = None, credentials: Callable[[], Basic | None] | None = None,
                 scheme: str | None = None, sleep: Callable[[float], None] = time.sleep, size: int = 8,
                 connect_timeout: float = CONNECT_TIMEOUT, read_timeout: float = READ_TIMEOUT):
        self.base = checked_base(base)
        self.name = name or urlsplit(self.base).netloc
        self._credentials = credentials
        self._scheme = scheme  # "basic" when known up front (ECR), else learnt from the first challenge
        self._challenge: dict[str, str] = {}
        self._tokens: dict[tuple[str, ...], str] = {}
        self._lock = threading.Lock()
        self.sleep = sleep
        self.size = size
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout

    def same_as(self, other: "Registry") -> bool:
        return self.base == other.base

    # Requests -------------------------------------------------------------------------------------------------

    def _url(self, path: str, query: dict | None = None) -> str:
        return self.base + path + (f"?{urlencode(query)}" if query else "")

    def _authorization(self, scopes: tuple[str, ...]) -> str | None:
        if self._scheme == "basic":
            credentials = self._credentials() if self._credentials else None
            return credentials.header if credentials else None
        if self._scheme == "bearer":
            with self._lock:
                token = self._tokens.get(scopes)
            if token is None:
                token = self._bearer(scopes)
            return f"Bearer {token}" if token else None
        return None

    def _bearer(self, scopes: tuple[str, ...]) -> str | None:
        realm = self._challenge.get("realm")
        if not realm:
            return None
        realm_host = urlsplit(realm)
        if realm_host.scheme != "https" and realm_host.hostname not in LOOPBACK:
            raise RegistryDenied(f"{self.name} sends clients for tokens to a plain-HTTP address; refused")
        query = [("service", self._challenge["service"])] if self._challenge.get("service") else []
        query += [("scope", scope) for scope in scopes]
        headers = {}
        credentials = self._credentials() if self._credentials else None
        if credentials:
            headers["Authorization"] = credentials.header
        try:
            answer = pool(self.size).request("GET", realm + ("&" if "?" in realm else "?") + urlencode(query),
                                             headers=headers, timeout=self._timeout(), redirect=False)
        except _connection_errors() as error:
            raise RegistryUnreachable(f"{self.name}: its token service cannot be reached: {describe(error)}") from None
        if answer.status != 200:
            raise RegistryDenied(f"{self.name}: its token service refused a token for {' '.join(scopes)} "
                                 f"(HTTP {answer.status}{'; no credentials for it' if not credentials else ''})")
        try:
            document = json.loads(answer.data)
            token = document.get("token") or document.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not token:
            raise RegistryDenied(f"{self.name}: its token service answered no token")
        with self._lock:
            self._tokens[scopes] = token
        return token

    def _timeout(self, read: float | None = None):
        import urllib3

        return urllib3.Timeout(connect=self.connect_timeout, read=read or self.read_timeout)

    def request(self, method: str, url: str, scopes: tuple[str, ...], headers: dict | None = None, body: Any = None,
                stream: bool = False, attempts: int = ATTEMPTS, what: str = "") -> Any:
        """One API request with auth (answering a 401 challenge once) and retries of transient failures.

        `attempts` 1 for a request whose body cannot be sent twice. Returns the urllib3 response, whatever its
        status after the retries (the caller judges it); raises RegistryUnreachable or RegistryError for failures
        of the connection itself.
        """
        what = what or f"{method} {urlsplit(url).path}"
        answered_challenge = False
        attempt = 0
        while True:
            attempt += 1
            sent = dict(headers or {})
            if urlsplit(url).netloc == urlsplit(self.base).netloc:  # never send the registry's credentials elsewhere
                authorization = self._authorization(scopes)
                if authorization:
                    sent["Authorization"] = authorization
            try:
                response = pool(self.size).request(method, url, headers=sent, body=body, redirect=False,
                                                   preload_content=not stream, timeout=self._timeout())
            except _connection_errors() as error:
                if attempt < attempts:
                    self.sleep(RETRY_DELAYS[min(attempt, len(RETRY_DELAYS)) - 1])
                    continue
                kind = RegistryUnreachable if _is_unreachable(error) else RegistryError
                raise kind(f"{self.name}: {what}: {describe(error)}" + (f" (attempt {attempt} of {attempts})" if attempts > 1
                                                                        else ""), reason=describe(error)) from None
            if response.status == 401 and not answered_challenge:
                answered_challenge = True
                challenge = response.headers.get("WWW-Authenticate", "")
                response.drain_conn()
                if self._learn(challenge, scopes):
                    attempt -= 1  # the challenge is no failure
                    continue
            if response.status in TRANSIENT_STATUSES and attempt < attempts:
                response.drain_conn()
                self.sleep(RETRY_DELAYS[min(attempt, len(RETRY_DELAYS)) - 1])
                continue
            if response.status == 401:
                credentials = self._credentials() if self._credentials else None
                response.drain_conn()
                raise RegistryDenied(f"{self.name} refused {'the credentials' if credentials else 'anonymous access'} "
                                     f"for {what}" + ("" if credentials else
                                                      " (no credentials for it in the Docker config file)"))
            return response

    def _learn(self, challenge: str, scopes: tuple[str, ...]) -> bool:
        """Take the scheme from a 401's challenge; True when a new attempt can send something it did not."""
        scheme, params = parse_challenge(challenge)
        if scheme == "bearer":
            scope = params.get("scope")
            with self._lock:
                known = self._scheme == "bearer" and self._tokens.get(scopes) is not None
                self._scheme, self._challenge = "bearer", params
                self._tokens.pop(scopes, None)
            if scope and scope not in scopes:
                self._bearer(tuple(sorted({*scopes, scope})))
            return not known
        if scheme == "basic":
            before = self._scheme
            self._scheme = "basic"
            return before != "basic" and self._credentials is not None and self._credentials() is not None
        return False

    def _failed(self, response, what: str) -> RegistryError:
        detail = _error_detail(response)
        status, code = response.status, _code(response)
        text = f"{self.name}: {what}: HTTP {status}" + (f" {detail}" if detail else "")
        if status == 403:
            action = re.search(r"\becr:(\w+)", detail)
            if action:  # ECR authorizes each request as the ECR action it stands for, and names it
                return AccessDenied(action[1], text)  # type: ignore[return-value]
            return RegistryDenied(text)  # type: ignore[return-value]
        if status == 404 and code in ("NAME_UNKNOWN", "REPOSITORY_UNKNOWN"):
            return RegistryNotFound(text)  # type: ignore[return-value]
        return RegistryError(text, status, code)

    # The API ------------------------------------------------------------------------------------------------

    def ping(self, attempts: int = 2) -> None:
        """GET /v2/: reachable, and the credentials (if needed) work."""
        response = self.request("GET", self._url("/v2/"), (), attempts=attempts, what="GET /v2/")
        if response.status not in (200, 404):  # a 404 is a registry that does not serve the version check
            raise self._failed(response, "the API version check")

    def manifest(self, repository: str, reference: str) -> Manifest | None:
        """The manifest a tag or digest names, as stored; None when the registry has no such manifest."""
        what = f"manifest {repository}{'@' if reference.startswith('sha256:') else ':'}{reference}"
        response = self.request("GET", self._url(f"/v2/{repository}/manifests/{reference}"), _pull(repository),
                                headers={"Accept": ACCEPT}, what=f"reading {what}")
        if response.status == 404 and _code(response) not in ("NAME_UNKNOWN", "REPOSITORY_UNKNOWN"):
            return None
        if response.status != 200:
            raise self._failed(response, f"reading {what}")
        body = response.data
        digest = digest_of(body)
        if reference.startswith("sha256:") and digest != reference:
            raise RegistryError(f"{self.name}: {what} arrived with digest {digest}")
        media_type = (response.headers.get("Content-Type") or "").split(";")[0].strip()
        try:
            media_type = json.loads(body).get("mediaType") or media_type
        except (ValueError, AttributeError):
            raise RegistryError(f"{self.name}: {what} is not JSON") from None
        if media_type not in MEDIA_TYPES:
            raise RegistryError(f"{self.name}: {what} is a {media_type or 'manifest of no media type'}, "
                                f"not one of {', '.join(MEDIA_TYPES)}")
        return Manifest(repository, digest, media_type, body.decode())

    def manifest_digest(self, repository: str, reference: str) -> str | None:
        """HEAD of a tag: the digest it names, or None when there is no such tag."""
        response = self.request("HEAD", self._url(f"/v2/{repository}/manifests/{reference}"), _pull(repository),
                                headers={"Accept": ACCEPT}, what=f"checking tag {repository}:{reference}")
        if response.status == 404:
            return None
        if response.status != 200:
            raise self._failed(response, f"checking tag {repository}:{reference}")
        digest = response.headers.get("Docker-Content-Digest")
        if digest:
            return digest
        found = self.manifest(repository, reference)  # a registry that sends no digest header
        return found.digest if found else None

    def put_manifest(self, repository: str, reference: str, manifest: Manifest) -> None:
        """PUT of the exact bytes, under a tag or by digest; the registry must answer the same digest."""
        what = f"writing {repository}:{reference}" if not reference.startswith("sha256:") else f"writing {repository}@{reference}"
        response = self.request("PUT", self._url(f"/v2/{repository}/manifests/{reference}"), _push(repository),
                                headers={"Content-Type": manifest.media_type}, body=manifest.body.encode(), what=what)
        if response.status not in (200, 201):
            raise self._failed(response, what)
        written = response.headers.get("Docker-Content-Digest")
        if written and written != manifest.digest:
            raise RegistryError(f"{self.name}: {repository}:{reference} got digest {written}, expected {manifest.digest}")

    def delete_manifest(self, repository: str, reference: str) -> None:
        response = self.request("DELETE", self._url(f"/v2/{repository}/manifests/{reference}"), _push(repository),
                                what=f"removing {repository}:{reference}")
        if response.status not in (200, 202, 204):
            raise self._failed(response, f"removing tag {reference} (the registry may not delete tags)")

    def tags(self, repository: str) -> list[str]:
        found: list[str] = []
        url: str | None = self._url(f"/v2/{repository}/tags/list", {"n": 1000})
        while url:
            response = self.request("GET", url, _pull(repository), what=f"listing the tags of {repository}")
            if response.status != 200:
                raise self._failed(response, f"listing the tags of {repository}")
            try:
                found += json.loads(response.data).get("tags") or []
            except (ValueError, AttributeError):
                raise RegistryError(f"{self.name}: the tag list of {repository} is not JSON") from None
            link = re.match(r"\s*<([^>]+)>", response.headers.get("Link", ""))
            url = urljoin(self.base, link[1]) if link else None
        return found

    def has_blob(self, repository: str, digest: str) -> bool:
        response = self.request("HEAD", self._url(f"/v2/{repository}/blobs/{digest}"), _pull(repository),
                                what=f"checking blob {digest} in {repository}")
        if response.status == 404:
            return False
        if response.status in (200, 307):
            return True
        raise self._failed(response, f"checking blob {digest} in {repository}")

    def mount(self, repository: str, digest: str, source: str) -> str | None:
        """Mount `digest` from `source` (same registry); None when mounted, else the upload session to use."""
        response = self.request("POST", self._url(f"/v2/{repository}/blobs/uploads/", {"mount": digest, "from": source}),
                                tuple(sorted({*_push(repository), *_pull(source)})),
                                headers={"Content-Length": "0"}, what=f"mounting {digest} into {repository}")
        if response.status == 201:
            return None
        if response.status == 202:
            return self._location(response, repository)
        raise self._failed(response, f"mounting {digest} from {source} into {repository}")

    def start_upload(self, repository: str) -> str:
        response = self.request("POST", self._url(f"/v2/{repository}/blobs/uploads/"), _push(repository),
                                headers={"Content-Length": "0"}, what=f"starting an upload to {repository}")
        if response.status != 202:
            raise self._failed(response, f"starting an upload to {repository}")
        return self._location(response, repository)

    def _location(self, response, repository: str) -> str:
        location = response.headers.get("Location")
        if not location:
            raise RegistryError(f"{self.name}: the upload to {repository} came with no Location")
        return urljoin(self.base + "/", location)

    def cancel_upload(self, location: str, repository: str) -> None:
        """Best effort: the registry forgets the session by itself after a while."""
        try:
            self.request("DELETE", location, _push(repository), attempts=1, what="cancelling an upload").drain_conn()
        except (RegistryError, RegistryDenied):
            pass

    def open_blob(self, repository: str, digest: str):
        """The blob's streamed body, following the registry's redirect to its storage without its credentials."""
        import urllib3

        url = self._url(f"/v2/{repository}/blobs/{digest}")
        try:
            response = self.request("GET", url, _pull(repository), stream=True, attempts=1,
                                    what=f"downloading {digest}")
        except RegistryError as error:
            raise DownloadFailed(error.reason, retryable=True) from None
        for _ in range(5):
            if response.status not in (301, 302, 303, 307, 308):
                break
            location = urljoin(url, response.headers.get("Location", ""))
            response.drain_conn()
            response.release_conn()
            if urlsplit(location).scheme != "https" and urlsplit(location).hostname not in LOOPBACK:
                raise DownloadFailed("the registry redirected the download to plain HTTP; refused", retryable=False)
            try:  # storage (S3 for ECR) is authorized by the URL itself: no registry header goes there
                response = pool(self.size).request("GET", location, redirect=False, preload_content=False,
                                                   timeout=self._timeout())
            except (urllib3.exceptions.HTTPError, OSError) as error:
                raise DownloadFailed(describe(error), retryable=True) from None
            url = location
        if response.status != 200:
            reason = f"HTTP {response.status} {response.reason or ''}".strip()
            response.drain_conn()
            retryable = response.status in TRANSIENT_STATUSES or response.status == 403
            raise DownloadFailed(reason, retryable, response.status)
        return response

    def upload(self, location: str, repository: str, blob: Blob, body: "VerifiedStream") -> None:
        """One monolithic PUT of the whole blob, streamed, with its Content-Length; `?digest=` completes it."""
        separator = "&" if "?" in location else "?"
        url = f"{location}{separator}{urlencode({'digest': blob.digest})}"
        try:
            response = self.request("PUT", url, _push(repository), attempts=1, body=body,
                                    headers={"Content-Length": str(blob.size), "Content-Type": "application/octet-stream"},
                                    what=f"uploading {blob.digest}")
        except RegistryError as error:
            if body.failure is not None:
                raise body.failure from None
            raise UploadFailed(error.reason, retryable=True) from None
        if body.failure is not None:
            raise body.failure
        if response.status != 201:
            detail = _error_detail(response)
            retryable = response.status in TRANSIENT_STATUSES
            raise UploadFailed(f"HTTP {response.status}" + (f" {detail}" if detail else ""), retryable)


def _pull(repository: str) -> tuple[str, ...]:
    return (f"repository:{repository}:pull",)


def _push(repository: str) -> tuple[str, ...]:
    return (f"repository:{repository}:pull,push",)


class VerifiedStream:
    """A download as an upload's body: read in fixed-size chunks, hashed as it flows; the last chunk is held back
    when the bytes do not hash to the digest, so a registry never receives a damaged blob whole."""

    def __init__(self, response, blob: Blob, chunk: int = CHUNK):
        self.response, self.blob, self.chunk = response, blob, chunk
        algorithm, _, self.expected = blob.digest.partition(":")
        self.hasher = hashlib.new(algorithm)
        self.left = blob.size
        self.sent = 0
        self.failure: WorkflowError | None = None

    def read(self, amount: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        wanted = min(self.chunk if amount is None or amount < 0 else amount, self.left)
        try:
            data = self.response.read(wanted, decode_content=False)
        except _connection_errors() as error:
            self.failure = DownloadFailed(describe(error), retryable=True)
            raise self.failure from None
        if not data:
            self.failure = DownloadFailed("IncompleteRead: the connection closed before the whole blob arrived", True)
            raise self.failure
        self.hasher.update(data)
        self.left -= len(data)
        self.sent += len(data)
        if self.left == 0 and self.hasher.hexdigest() != self.expected:
            self.failure = DigestMismatch(f"blob {self.blob.digest} downloaded with digest "
                                          f"{self.blob.digest.partition(':')[0]}:{self.hasher.hexdigest()}; not uploaded")
            raise self.failure
        return data

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(self.chunk):
            yield chunk


def ecr_token(authorize: Callable[[], tuple[Basic, float]], clock: Callable[[], float] = time.time) -> Callable[[], Basic]:
    """Credentials from ECR's GetAuthorizationToken (`authorize` returns them and their expiry, epoch seconds),
    asked for again only when they are about to expire (they last 12 hours)."""
    lock = threading.Lock()
    held: list = []

    def credentials() -> Basic:
        with lock:
            if not held or held[1] - TOKEN_MARGIN <= clock():
                held[:] = authorize()
            return held[0]

    return credentials
