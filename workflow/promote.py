"""Publish an image to another repository, copying only the blobs it lacks, through the registry API or ECR's API.

Two paths, chosen by trying (`route`): the registry API (OCI distribution) mounts blobs within one registry and
streams the rest; ECR's API (GetDownloadUrlForLayer, UploadLayerPart, ...) is the fallback where the registry
endpoint cannot be reached. On both, every tag is checked before any is written, the stamp is written before
`latest`, a stamp never moves from one image to another, and a failure puts back every tag this run moved.
"""

import functools
import http.client
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import IO, Any, Protocol
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit

from .ecr import MAX_PARTS, Blob, Ecr, Manifest, ReferencedImagesNotFound, TagImmutable
from .errors import AccessDenied, AwsError, NotFound, OperationFailed, Refused, WorkflowError
from .images import ECR_HOST, ImageRef, short_reference
from .progress import Reporter
from .recovery import NextStep
from .registry import (
    Basic,
    DigestMismatch,
    DownloadFailed,
    Registry,
    RegistryDenied,
    RegistryError,
    RegistryNotFound,
    RegistryUnreachable,
    UploadFailed,
    VerifiedStream,
    base_url,
    docker_config_credentials,
    ecr_token,
    is_loopback,
)
from .tags import LATEST, STAMP, STAMP_FORMAT, release_tags

REGISTRY_PATH, ECR_PATH = "registry API", "ECR API"
VIA = ("auto", "registry", "ecr-api")
COPY_WORKERS = 4  # blobs copied at a time, each through its own fixed-size buffer
# botocore sends a part base64-encoded inside a JSON document, which takes four times the part's size
# while it is built, and the thread that built it keeps that memory for its next part. So one thread
# sends every part: peak memory is COPY_WORKERS part buffers plus one encoding, whatever the layer
# sizes. Measured on loopback (BENCHMARKS.md), a second sender added 53 MiB and no throughput.
PART_SENDERS = 1
RETRY_DELAYS = (1, 2, 4)  # seconds to wait before the second, third and fourth attempt of a blob's copy
DOWNLOAD_ATTEMPTS = len(RETRY_DELAYS) + 1
STAMP_TRIES = 30  # later seconds tried when another promote took the stamp first
# A pre-signed layer URL answers 403 once it has expired or when an S3 endpoint policy blocks it;
# a fresh URL may work. 408, 429 and 5xx are transient.
RETRY_STATUSES = {403, 408, 429, 500, 502, 503, 504}
FORBIDDEN_HINT = "\n  hint: fresh URLs were refused too: does an S3 VPC endpoint policy or a proxy block ECR's layer storage?"
DOWNLOAD_ERRORS = (http.client.HTTPException, OSError)  # OSError covers URLError, HTTPError and socket errors
MOUNT_HINT = ("no blob was mounted: ECR mounts only where the account setting BLOB_MOUNTING is ENABLED "
              "(aws ecr put-account-setting --name BLOB_MOUNTING --value ENABLED) and both repositories use the same "
              "encryption; the blobs were copied instead")


@dataclass(frozen=True)
class PromoteOutcome:
    summary: str
    source: str
    destination: str
    digest: str
    media_type: str
    tags: dict[str, str]
    blobs_present: int
    blobs_copied: int
    bytes_copied: int
    seconds: float
    dry_run: bool
    released_as: str | None = None
    path: str = REGISTRY_PATH
    blobs_mounted: int = 0
    blobs_to_move: int = 0  # a dry run's: blobs the destination lacks, to mount or copy
    where: str = ""
    next_steps: tuple[NextStep, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Copied:
    present: int = 0
    mounted: int = 0
    copied: int = 0
    bytes: int = 0
    missing: int = 0  # blobs a dry run would mount or copy
    mount_refused: int = 0  # blobs the registry answered a mount request for with an upload instead


# The two sides of a promote, each through one API --------------------------------------------------------------


class Side(Protocol):
    label: str  # the repository as messages name it

    def manifest(self, tag: str | None = None, digest: str | None = None) -> Manifest: ...
    def find(self, tag: str | None = None, digest: str | None = None) -> Manifest | None: ...
    def tag_digest(self, tag: str) -> str | None: ...
    def stamps_on(self, digest: str) -> list[str]: ...
    def put(self, manifest: Manifest, tag: str, children: list[Manifest]) -> str: ...
    def put_child(self, child: Manifest) -> None: ...
    def remove_tag(self, tag: str) -> None: ...


class _Found:
    """What both sides do alike: an image that must be there, found by `find`."""

    label: str

    def find(self, tag: str | None = None, digest: str | None = None) -> Manifest | None:
        raise NotImplementedError

    def manifest(self, tag: str | None = None, digest: str | None = None) -> Manifest:
        found = self.find(tag, digest)
        if found is None:
            raise NotFound(f"image {_name(self.label, tag, digest)} not found")
        return found


@dataclass
class ApiSide(_Found):
    """A repository through ECR's API."""

    ecr: Ecr
    repository: str
    label: str

    def find(self, tag: str | None = None, digest: str | None = None) -> Manifest | None:
        return self.ecr.find(self.repository, tag=tag, digest=digest)

    def tag_digest(self, tag: str) -> str | None:
        found = self.find(tag=tag)
        return found.digest if found else None

    def stamps_on(self, digest: str) -> list[str]:
        return [tag for image in self.ecr.images(self.repository, [digest]) for tag in image.tags]

    def put(self, manifest: Manifest, tag: str, children: list[Manifest]) -> str:
        try:
            return self.ecr.put(self.repository, manifest, tag)
        except ReferencedImagesNotFound as error:
            # The children were put first; one may not be visible yet, or may have been deleted since.
            for child in children:
                self.put_child(child)
            try:
                return self.ecr.put(self.repository, manifest, tag)
            except ReferencedImagesNotFound:
                names = ", ".join(child.digest for child in children)
                raise OperationFailed(f"{error}; the index references {names}, each put into {self.label} first") from None

    def put_child(self, child: Manifest) -> None:
        if self.ecr.find(self.repository, digest=child.digest) is None:
            self.ecr.put(self.repository, child, tag=None)

    def remove_tag(self, tag: str) -> None:
        self.ecr.delete_tag(self.repository, tag)


@dataclass
class RegistrySide(_Found):
    """A repository through the registry API; `ecr` is its ECR API when the registry is ECR (for tag listings)."""

    registry: Registry
    repository: str
    label: str
    ecr: Ecr | None = None

    def _not_found(self) -> NotFound:
        return NotFound(f"repository {self.label} not found")

    def find(self, tag: str | None = None, digest: str | None = None) -> Manifest | None:
        try:
            return self.registry.manifest(self.repository, digest or tag or LATEST)
        except RegistryNotFound:
            raise self._not_found() from None
        except RegistryError as error:
            if not 400 <= error.status < 500 or not error.code:
                raise
            reason = str(error).split(f"HTTP {error.status} ", 1)[-1]
            raise OperationFailed(f"{self.registry.name} cannot return image {_name(self.label, tag, digest)}: "
                                  f"{reason}") from None

    def tag_digest(self, tag: str) -> str | None:
        return self.registry.manifest_digest(self.repository, tag)

    def stamps_on(self, digest: str) -> list[str]:
        if self.ecr is not None:  # one DescribeImages call instead of a look at every stamp
            return [tag for image in self.ecr.images(self.repository, [digest]) for tag in image.tags]
        try:
            stamps = [tag for tag in self.registry.tags(self.repository) if STAMP.fullmatch(tag)]
        except RegistryNotFound:
            return []  # a registry that creates repositories on first push: no release yet
        with ThreadPoolExecutor(max_workers=8) as pool:
            named = list(pool.map(self.tag_digest, stamps))
        return [stamp for stamp, found in zip(stamps, named, strict=True) if found == digest]

    def put(self, manifest: Manifest, tag: str, children: list[Manifest]) -> str:
        try:
            self.registry.put_manifest(self.repository, tag, manifest)
            return "written"
        except RegistryNotFound:
            raise self._not_found() from None
        except RegistryError as error:
            if error.code == "TAG_INVALID" or "immutable" in str(error).lower():
                current = self.tag_digest(tag)
                if current == manifest.digest:
                    return "unchanged"
                raise TagImmutable(f"tag {tag} in {self.label} is immutable and points at {current}, not "
                                   f"{manifest.digest} ({error.code or 'refused'})") from None
            if not children or error.code not in ("MANIFEST_UNKNOWN", "MANIFEST_BLOB_UNKNOWN"):
                raise
            for child in children:
                self.put_child(child)
            try:
                self.registry.put_manifest(self.repository, tag, manifest)
                return "written"
            except RegistryError:
                names = ", ".join(child.digest for child in children)
                raise OperationFailed(f"{error}; the registry refused the image index, which references {names}, "
                                      f"each put into {self.label} first") from None

    def put_child(self, child: Manifest) -> None:
        if self.registry.manifest_digest(self.repository, child.digest) is None:
            try:
                self.registry.put_manifest(self.repository, child.digest, child)
            except RegistryNotFound:
                raise self._not_found() from None

    def remove_tag(self, tag: str) -> None:
        if self.ecr is not None:
            self.ecr.delete_tag(self.repository, tag)
        else:
            self.registry.delete_manifest(self.repository, tag)


# Copying blobs ----------------------------------------------------------------------------------------------------


class Copier(Protocol):
    def copy(self, blobs: list[Blob], dry_run: bool) -> Copied: ...


def _run_all(function: Callable[[Blob], Any], blobs: list[Blob], workers: int) -> list[Any]:
    """`function` over the blobs, a few at a time; the first failure cancels the rest and is raised."""
    if not blobs:
        return []
    with ThreadPoolExecutor(max_workers=min(workers, len(blobs))) as pool:
        futures = [pool.submit(function, blob) for blob in blobs]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for future in pending:
            future.cancel()
        for future in done:
            future.result()  # the first failure, if any, stops the promotion before anything is tagged
    return [future.result() for future in futures]


@dataclass
class RegistryCopier:
    """Blobs through the registry API: HEAD, then a mount within one registry, else one streamed PUT each."""

    source: Registry
    source_repository: str
    source_label: str
    dest: Registry
    dest_repository: str
    dest_label: str
    report: Reporter
    sleep: Callable[[float], None]
    workers: int = COPY_WORKERS

    def copy(self, blobs: list[Blob], dry_run: bool) -> Copied:
        if self.source.same_as(self.dest) and self.source_repository == self.dest_repository:
            return Copied(present=len(blobs))  # a retag within one repository: every blob is there
        results = _run_all(lambda blob: self._one(blob, dry_run), blobs, self.workers)
        count = lambda state: sum(1 for s, _, _ in results if s == state)  # noqa: E731
        return Copied(present=count("present"), mounted=count("mounted"), copied=count("copied"),
                      bytes=sum(n for _, n, _ in results), missing=count("missing"),
                      mount_refused=sum(1 for _, _, refused in results if refused))

    def _one(self, blob: Blob, dry_run: bool) -> tuple[str, int, bool]:
        if self.dest.has_blob(self.dest_repository, blob.digest):
            return "present", 0, False
        if dry_run:  # what a copy would upload; a mount, none
            return "missing", blob.size, False
        mount = self.source.same_as(self.dest)
        refused = False
        for attempt, delay in enumerate([*RETRY_DELAYS, None], start=1):
            location = None
            try:
                if mount and attempt == 1:
                    location = self.dest.mount(self.dest_repository, blob.digest, self.source_repository)
                    if location is None:
                        self.report.line(f"mounted {blob.digest} from {self.source_label}")
                        return "mounted", 0, False
                    refused = True
                else:
                    location = self.dest.start_upload(self.dest_repository)
                sent = self._stream(blob, location)
                self.report.line(f"copied {blob.digest} ({sent} bytes)")
                return "copied", sent, refused
            except (DownloadFailed, UploadFailed) as error:
                if location:
                    self.dest.cancel_upload(location, self.dest_repository)
                what = (f"download blob {blob.digest} from {self.source_label}" if isinstance(error, DownloadFailed)
                        else f"upload blob {blob.digest} to {self.dest_label}")
                if delay is None or not error.retryable:
                    hint = FORBIDDEN_HINT if getattr(error, "status", 0) == 403 else ""
                    raise OperationFailed(f"could not {what}: {error.reason} (attempt {attempt} of {DOWNLOAD_ATTEMPTS}); "
                                          f"nothing was tagged{hint}") from None
                self.report.line(f"{what.split(' ', 1)[0]} of {blob.digest} failed ({error.reason}); retrying in {delay}s")
                self.sleep(delay)
            except (DigestMismatch, RegistryError):
                if location:
                    self.dest.cancel_upload(location, self.dest_repository)
                raise
        raise AssertionError("not reached")

    def _stream(self, blob: Blob, location: str) -> int:
        response = self.source.open_blob(self.source_repository, blob.digest)
        size = blob.size or int(response.headers.get("Content-Length") or 0)
        body = VerifiedStream(response, Blob(blob.digest, size))
        try:
            self.dest.upload(location, self.dest_repository, Blob(blob.digest, size), body)
        except BaseException:
            response.close()  # its connection holds unread bytes: never back into the pool
            raise
        finally:
            response.release_conn()
        return body.sent


@dataclass(frozen=True)
class ApiCopier:
    """Blobs through ECR's API: BatchCheckLayerAvailability, then GetDownloadUrlForLayer and the layer upload calls."""

    source: Ecr
    source_repository: str
    source_label: str
    dest: Ecr
    dest_repository: str
    report: Reporter
    sleep: Callable[[float], None]
    fetch: Callable[[str], IO[bytes]] = field(default=lambda url: urllib.request.urlopen(url, timeout=60))

    def copy(self, blobs: list[Blob], dry_run: bool) -> Copied:
        same = self.source.client is self.dest.client and self.source._registry == self.dest._registry
        if same and self.source_repository == self.dest_repository:
            return Copied(present=len(blobs))
        missing = set(self.dest.missing(self.dest_repository, [b.digest for b in blobs]))
        to_copy = [b for b in blobs if b.digest in missing]
        if dry_run:
            return Copied(present=len(blobs) - len(to_copy), missing=len(to_copy), bytes=sum(b.size for b in to_copy))
        if not to_copy:
            return Copied(present=len(blobs))
        with ThreadPoolExecutor(max_workers=PART_SENDERS) as sender:
            copier = _PartCopier(self, sender)
            sent = _run_all(copier.copy, to_copy, COPY_WORKERS)
        return Copied(present=len(blobs) - len(to_copy), copied=len(to_copy), bytes=sum(sent))


@dataclass(frozen=True)
class _PartCopier:
    api: ApiCopier
    sender: ThreadPoolExecutor  # sends every part; see PART_SENDERS

    def copy(self, blob: Blob) -> int:
        """Download and upload one blob; a failed download starts over with a fresh URL and a new upload."""
        api = self.api
        for attempt, delay in enumerate([*RETRY_DELAYS, None], start=1):
            try:
                with api.fetch(api.source.download_url(api.source_repository, blob.digest)) as stream:
                    sent, state = self._upload(blob, stream)
                raced = "" if state == "stored" else "; a concurrent push of the same blob completed first"
                api.report.line(f"copied {blob.digest} ({sent} bytes{raced})")
                return sent
            except DOWNLOAD_ERRORS as error:
                reason = _reason(error)
                if delay is None or not _retryable(error):
                    hint = FORBIDDEN_HINT if isinstance(error, HTTPError) and error.code == 403 else ""
                    raise OperationFailed(
                        f"could not download blob {blob.digest} from {api.source_label}: {reason} "
                        f"(attempt {attempt} of {DOWNLOAD_ATTEMPTS}); nothing was tagged{hint}"
                    ) from None
                api.report.line(f"download of {blob.digest} failed ({reason}); retrying in {delay}s with a fresh URL")
                api.sleep(delay)
        raise AssertionError("not reached")

    def _upload(self, blob: Blob, stream: IO[bytes]) -> tuple[int, str]:
        dest = self.api.dest
        upload = dest.initiate_upload(self.api.dest_repository, blob.digest)
        if blob.size > upload.part_size * MAX_PARTS:
            raise OperationFailed(
                f"blob {blob.digest} ({blob.size} bytes) needs more than ECR's {MAX_PARTS} parts of {upload.part_size} bytes"
            )
        sent = 0
        for part in verified_parts(stream, blob.digest, _part_buffer(upload.part_size)):
            sent = self.sender.submit(dest.upload_part, upload, sent, part).result()
        return sent, dest.complete_upload(upload)


_worker = threading.local()


def _part_buffer(size: int) -> bytearray:
    """One buffer per copying thread, reused for each part of each blob it copies."""
    buffer = getattr(_worker, "buffer", None)
    if buffer is None or len(buffer) != size:
        buffer = _worker.buffer = bytearray(size)
    return buffer


def verified_parts(stream: IO[bytes], digest: str, buffer: bytearray):
    """Fill `buffer` from the stream and yield it, once per part; then fail if the bytes do not hash to `digest`.

    Each part is `buffer` itself, valid until the next one is asked for: parts are read straight into it
    and never copied. The last part shrinks it to the bytes that remain.
    """
    import hashlib

    algorithm, _, expected = digest.partition(":")
    hasher = hashlib.new(algorithm)
    size = len(buffer)
    while True:
        filled = _fill(stream, buffer)
        if filled < size:
            del buffer[filled:]  # the last part: send no stale bytes from the part before
        if filled:
            hasher.update(buffer)
            yield buffer
        if filled < size:
            break
    if hasher.hexdigest() != expected:
        raise OperationFailed(f"blob {digest} downloaded with digest {algorithm}:{hasher.hexdigest()}; not uploaded")


def _fill(stream: IO[bytes], buffer: bytearray) -> int:
    """Read into `buffer` until it is full or the stream ends; returns the bytes read."""
    filled = 0
    with memoryview(buffer) as view:
        while filled < len(view):
            count = stream.readinto(view[filled:])  # type: ignore[attr-defined]
            if not count:
                # http.client's readinto reports a body cut short as its end; the length still due tells them apart.
                if getattr(stream, "length", None):
                    raise http.client.IncompleteRead(b"", stream.length)  # type: ignore[attr-defined]
                break
            filled += count
    return filled


def _retryable(error: Exception) -> bool:
    return error.code in RETRY_STATUSES if isinstance(error, HTTPError) else True


def _reason(error: Exception) -> str:
    # Never the URL: a pre-signed URL carries credentials in its query.
    if isinstance(error, HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, URLError):
        return str(error.reason)
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


# Choosing the path --------------------------------------------------------------------------------------------------


@dataclass
class Route:
    path: str
    source: Side
    dest: Side
    copier: Copier
    where: str  # account, Region and registry, or the registry hosts: for the confirmation and the result
    notes: list[str] = field(default_factory=list)
    dest_in_ecr: bool = False
    dest_ecr: Ecr | None = None  # the destination's ECR API, when it is in ECR: where its images' configs are read
    dest_repository: str = ""


@dataclass
class _Registry:
    """What is known of one side's registry before choosing a path."""

    ref: ImageRef
    ecr: Ecr | None  # its ECR API, when it is an ECR registry
    label: str
    where: str
    registry: Registry | None = None
    problem: str = ""  # why its registry API cannot be used


def route(ecr_client: Callable[[str | None], Any], source: ImageRef, dest: ImageRef, registry_id: str | None, via: str,
          report: Reporter, sleep: Callable[[float], None] = time.sleep,
          clock: Callable[[], float] = time.time) -> Route:
    """Both sides and the path between them: the registry API when it answers, else ECR's API (both sides in ECR).

    A side named without a host is a repository of the caller's ECR registry (`registry_id`). Nothing is written.
    """
    sides = [_side(ecr_client, ref, registry_id) for ref in (source, dest)]
    both_ecr = all(side.ecr is not None for side in sides)
    if via == "ecr-api" and not both_ecr:
        other = next(side.ref.registry for side in sides if side.ecr is None)
        raise Refused(f"--via ecr-api works between ECR registries only; {other} is not one")
    notes: list[str] = []
    if via != "ecr-api":
        try:
            _connect(sides, sleep, clock, via)
        except (RegistryUnreachable, AccessDenied, AwsError, RegistryDenied) as error:
            if via == "registry" or not both_ecr or isinstance(error, RegistryDenied):
                raise
            notes.append(f"the registry API cannot be used ({error}); copied through the ECR API instead")
            report.line(notes[-1])
        else:
            return _registry_route(sides, report, sleep, notes)
    src, dst = sides
    assert src.ecr is not None and dst.ecr is not None
    copier = ApiCopier(src.ecr, source.repository, src.label, dst.ecr, dest.repository, report, sleep)
    return Route(ECR_PATH, ApiSide(src.ecr, source.repository, src.label), ApiSide(dst.ecr, dest.repository, dst.label),
                 copier, _where(sides), notes, dest_in_ecr=True, dest_ecr=dst.ecr, dest_repository=dest.repository)


def _side(ecr_client: Callable[[str | None], Any], ref: ImageRef, registry_id: str | None) -> _Registry:
    label = f"{ref.registry}/{ref.repository}" if ref.registry else ref.repository
    if ref.registry is None:
        client = ecr_client(None)
        where = (f"account {registry_id}, " if registry_id else "") + client.meta.region_name
        return _Registry(ref, Ecr(client, registry_id), label, where)
    if ref.ecr:
        client = ecr_client(ref.region)
        return _Registry(ref, Ecr(client, ref.account), label, f"account {ref.account}, {ref.region}, registry {ref.registry}")
    return _Registry(ref, None, label, f"registry {ref.registry}")


def _connect(sides: list[_Registry], sleep, clock, via: str) -> None:
    """Each side's registry API client, authenticated and checked to answer; shared when both name one registry."""
    for side in sides:
        if side.ecr is None:
            host = side.ref.registry or ""
            side.registry = Registry(base_url(host), host, credentials=functools.partial(docker_config_credentials, host),
                                     sleep=sleep, size=COPY_WORKERS + 4)
            continue
        endpoint, credentials, expiry = side.ecr.authorization(clock)
        authorize = functools.partial(_authorize, side.ecr, [(credentials, expiry)], clock)
        base = endpoint
        if side.ref.registry and not is_loopback(urlsplit(endpoint).netloc):
            base = base_url(side.ref.registry)  # the host as named (a FIPS host, say), not the default one
        host = urlsplit(base).netloc
        if side.ref.registry is None:
            named = ECR_HOST.match(host)
            if named:
                side.where = f"account {named['account']}, {named['region']}, registry {host}"
            else:
                side.where += f", sandbox registry at {base}" if is_loopback(host) else f", registry {host}"
        side.registry = Registry(base, host, credentials=ecr_token(authorize, clock), scheme="basic", sleep=sleep,
                                 size=COPY_WORKERS + 4)
    src, dst = sides
    if src.registry and dst.registry and src.registry.same_as(dst.registry):
        dst.registry = src.registry
    checked: list[Registry] = []
    for side in sides:
        assert side.registry is not None
        if not any(side.registry is seen for seen in checked):
            attempts = 2 if via == "auto" and side.ecr is not None else 3
            side.registry.ping(attempts=attempts)
            checked.append(side.registry)


def _authorize(ecr: Ecr, first: list[tuple[Basic, float]], clock: Callable[[], float]) -> tuple[Basic, float]:
    """The credentials GetAuthorizationToken answered before the path was chosen, then new ones each time they expire."""
    if first:
        return first.pop()
    _, credentials, expiry = ecr.authorization(clock)
    return credentials, expiry


def _registry_route(sides: list[_Registry], report: Reporter, sleep, notes: list[str]) -> Route:
    src, dst = sides
    assert src.registry is not None and dst.registry is not None
    copier = RegistryCopier(src.registry, src.ref.repository, src.label, dst.registry, dst.ref.repository, dst.label,
                            report, sleep)
    return Route(REGISTRY_PATH, RegistrySide(src.registry, src.ref.repository, src.label, src.ecr),
                 RegistrySide(dst.registry, dst.ref.repository, dst.label, dst.ecr), copier, _where(sides), notes,
                 dest_in_ecr=dst.ecr is not None, dest_ecr=dst.ecr, dest_repository=dst.ref.repository)


def _where(sides: list[_Registry]) -> str:
    src, dst = sides
    return src.where if src.where == dst.where else f"from {src.where} to {dst.where}"


# Promote ----------------------------------------------------------------------------------------------------------------


def promote(
    route: Route,
    report: Reporter,
    source: ImageRef,
    tags: list[str] | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
    next_step: Callable[[tuple[str, str] | None], NextStep] | None = None,
    before_change: Callable[[], None] | None = None,
) -> PromoteOutcome:
    """Explicit `tags` are written as given; without them, `release_tags` picks them (`latest` and a new stamp,
    or only `latest` for an image already released). `before_change` takes the destination repository's lease
    (before its tags are even read): no redeploy deploys its `latest` meanwhile, and no other promote stamps."""
    started = report.clock()
    src, dest = route.source, route.dest
    top = src.manifest(tag=source.tag, digest=source.digest)
    children = [src.manifest(digest=d) for d in top.children]
    if before_change is not None and not dry_run:
        before_change()
    report.line(f"source {source} is {top.digest} ({top.media_type}{f', {len(children)} manifests' if children else ''}); "
                f"through the {route.path}")

    released = None
    stamp = None
    if tags:
        tags = list(dict.fromkeys(tags))
    else:
        tags, released = release_tags(dest.stamps_on(top.digest), now or datetime.now(UTC))
        stamp = next((tag for tag in tags if STAMP.fullmatch(tag)), None)
        if released:
            report.line(f"{dest.label} already has {top.digest} as {released}: no new timestamp tag")
    # Every tag is checked before any is written: what each names now is what a failure puts back.
    before = {tag: dest.tag_digest(tag) for tag in tags}
    if stamp and before[stamp] not in (None, top.digest):
        taken = stamp
        stamp = _free_stamp(dest, stamp, top.digest)
        report.line(f"{taken} in {dest.label} names another image (a promote at the same moment): using {stamp}")
        tags = [stamp if tag == taken else tag for tag in tags]
        before[stamp] = dest.tag_digest(stamp)

    blobs = list({b.digest: b for m in [top, *children] for b in m.blobs}.values())
    copied = route.copier.copy(blobs, dry_run)
    to_move = copied.missing if dry_run else copied.mounted + copied.copied
    report.line(f"{copied.present} of {len(blobs)} blobs already in {dest.label}; {to_move} to "
                + ("mount or copy" if dry_run else f"mount or copy: {copied.mounted} mounted, {copied.copied} copied"))
    notes = list(route.notes)
    if copied.mount_refused and not copied.mounted and route.path == REGISTRY_PATH and route.dest_in_ecr:
        notes.append(MOUNT_HINT)

    results: dict[str, str] = {}
    if not dry_run:
        for child in children:
            dest.put_child(child)
        results, tags = _write_tags(dest, top, children, tags, before, stamp, report)

    verb = "would promote" if dry_run else "promoted"
    moved_latest = results.get(LATEST) == "written"
    step = next_step(_schema_move(route, before.get(LATEST), top.digest)) if next_step and moved_latest else None
    # A source named by its digest is this very image: the digest is said once, whole, and fits a line.
    return PromoteOutcome(
        summary=f"{verb} {short_reference(str(source))} to {dest.label} ({', '.join(tags)}) with digest {top.digest}"
        + ("" if dry_run else "; destination digest matches source")
        + (f"; already released as {released}" if released else ""),
        source=str(source),
        destination=dest.label,
        digest=top.digest,
        media_type=top.media_type,
        tags=results or dict.fromkeys(tags, "dry run"),
        blobs_present=copied.present,
        blobs_copied=0 if dry_run else copied.copied,
        bytes_copied=copied.bytes,
        seconds=round(report.clock() - started, 3),
        dry_run=dry_run,
        released_as=released,
        path=route.path,
        blobs_mounted=copied.mounted,
        blobs_to_move=copied.missing if dry_run else 0,
        where=route.where,
        next_steps=(step,) if step else (),
        notes=tuple(notes),
    )


def _schema_move(route: Route, before: str | None, after: str) -> tuple[str, str] | None:
    """The Airflow versions `latest` moved between, when their schemas differ (the redeploy that follows must
    migrate); None when they share one or either is unknown (a courtesy: the redeploy checks it anyway)."""
    if route.dest_ecr is None or before is None or before == after:
        return None
    from .airflow_schema import same_schema
    from .image_config import airflow_versions

    versions = airflow_versions(route.dest_ecr, route.dest_repository, [before, after])
    old, new = versions.get(before), versions.get(after)
    return (old, new) if old and new and same_schema(old, new) is False else None


class PromoteFailed(WorkflowError):
    """A write failed after others had been made: those were put back (or the message says which were not)."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def _write_tags(dest: Side, top: Manifest, children: list[Manifest], tags: list[str], before: dict[str, str | None],
                stamp: str | None, report: Reporter) -> tuple[dict[str, str], list[str]]:
    """The stamp first, `latest` last; a tag already on the image is not written again. On a failure, each tag this
    run moved is put back to the image it named before, a tag it created is removed, and the error is raised."""
    order = [t for t in tags if t != LATEST] + [t for t in tags if t == LATEST]
    results: dict[str, str] = {}
    moved: list[tuple[str, str | None]] = []
    tag = ""
    try:
        for tag in order:
            if tag == stamp:
                written, state = _write_stamp(dest, top, children, tag, report)
                if written != tag:
                    tags = [written if t == tag else t for t in tags]
                    before[written] = None
                tag = written
            elif before[tag] == top.digest:
                state = "unchanged"
            else:
                state = dest.put(top, tag, children)
            results[tag] = state
            if state == "written":
                moved.append((tag, before[tag]))
            report.line(f"{dest.label}:{tag} -> {top.digest} ({state})")
    except WorkflowError as error:
        # The write that failed may have been applied all the same (its answer lost): what the tag names now says.
        if tag and tag not in results and before.get(tag) != top.digest:
            try:
                if dest.tag_digest(tag) == top.digest:
                    moved.append((tag, before.get(tag)))
            except WorkflowError as unread:
                raise PromoteFailed(f"{error}\n  cannot tell whether {dest.label}:{tag} moved ({unread}); "
                                    + (_put_back(dest, moved, report) if moved else "no other tag moved"),
                                    error.exit_code) from None
        if not moved:
            raise
        raise PromoteFailed(f"{error}\n  {_put_back(dest, moved, report)}", error.exit_code) from None
    return {tag: results[tag] for tag in tags if tag in results}, tags


def _write_stamp(dest: Side, top: Manifest, children: list[Manifest], stamp: str, report: Reporter) -> tuple[str, str]:
    """Write the stamp where no image has it: checked right before the write, and read back after it. A stamp that
    another promote took at the same moment is left to it, and the next free second is used."""
    for _ in range(STAMP_TRIES):
        current = dest.tag_digest(stamp)
        if current == top.digest:
            return stamp, "unchanged"
        if current is None:
            dest.put(top, stamp, children)
            if dest.tag_digest(stamp) == top.digest:
                return stamp, "written"
            report.line(f"{stamp} in {dest.label} was written by another promote at the same moment; using a later one")
        stamp = _next_stamp(stamp)
    raise OperationFailed(f"no free stamp tag in {dest.label} in {STAMP_TRIES} seconds after {stamp}; nothing else was tagged")


def _free_stamp(dest: Side, stamp: str, digest: str) -> str:
    for _ in range(STAMP_TRIES):
        stamp = _next_stamp(stamp)
        if dest.tag_digest(stamp) in (None, digest):
            return stamp
    raise OperationFailed(f"no free stamp tag in {dest.label} in {STAMP_TRIES} seconds after {stamp}; nothing was tagged")


def _next_stamp(stamp: str) -> str:
    return (datetime.strptime(stamp, STAMP_FORMAT) + timedelta(seconds=1)).strftime(STAMP_FORMAT)


def _put_back(dest: Side, moved: list[tuple[str, str | None]], report: Reporter) -> str:
    done, failed = [], []
    for tag, previous in reversed(moved):
        try:
            if previous is None:
                dest.remove_tag(tag)
                done.append(f"{tag} removed")
            else:
                old = dest.find(digest=previous)
                if old is None:
                    raise NotFound(f"image {previous} is gone")
                dest.put(old, tag, [])
                done.append(f"{tag} back on {previous}")
        except WorkflowError as error:
            failed.append(f"{tag} ({error})")
    report.line("put back: " + "; ".join(done + [f"could not put back {f}" for f in failed]))
    if failed:
        return (f"put back: {', '.join(done) or 'nothing'}; NOT put back: {'; '.join(failed)}: "
                "point these tags back by hand")
    return f"every tag this promote had moved was put back ({', '.join(done)})"


def _name(label: str, tag: str | None, digest: str | None) -> str:
    return f"{label}@{digest}" if digest else f"{label}:{tag}"


__all__ = ["PromoteOutcome", "Route", "promote", "route", "verified_parts", "RegistryDenied"]
