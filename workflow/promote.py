"""Publish an image to another ECR repository through the API, copying only the blobs it lacks.

Nothing is tagged until every blob and child manifest is in place, so a failed copy leaves the
destination's tags as they were.
"""

import hashlib
import http.client
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO
from urllib.error import HTTPError, URLError

from .ecr import MAX_PARTS, Blob, Ecr, Manifest, ReferencedImagesNotFound
from .errors import OperationFailed
from .images import ImageRef
from .progress import Reporter
from .tags import release_tags

COPY_WORKERS = 4  # blobs downloaded at a time, each into its own part buffer
# botocore sends a part base64-encoded inside a JSON document, which takes four times the part's size
# while it is built, and the thread that built it keeps that memory for its next part. So one thread
# sends every part: peak memory is COPY_WORKERS part buffers plus one encoding, whatever the layer
# sizes. Measured on loopback (BENCHMARKS.md), a second sender added 53 MiB and no throughput.
PART_SENDERS = 1
RETRY_DELAYS = (1, 2, 4)  # seconds to wait before the second, third and fourth attempt of a download
DOWNLOAD_ATTEMPTS = len(RETRY_DELAYS) + 1
# A pre-signed layer URL answers 403 once it has expired or when an S3 endpoint policy blocks it;
# a fresh URL may work. 408, 429 and 5xx are transient.
RETRY_STATUSES = {403, 408, 429, 500, 502, 503, 504}
FORBIDDEN_HINT = "\n  hint: fresh URLs were refused too: does an S3 VPC endpoint policy or a proxy block ECR's layer storage?"
DOWNLOAD_ERRORS = (http.client.HTTPException, OSError)  # OSError covers URLError, HTTPError and socket errors


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


def promote(
    ecr: Ecr,
    report: Reporter,
    source: ImageRef,
    destination: str,
    tags: list[str] | None = None,
    dry_run: bool = False,
    fetch: Callable[[str], IO[bytes]] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    now: datetime | None = None,
) -> PromoteOutcome:
    """Explicit `tags` are written as given; without them, `release_tags` picks them."""
    started = report.clock()
    fetch = fetch or (lambda url: urllib.request.urlopen(url, timeout=60))
    top = ecr.manifest(source.repository, tag=source.tag, digest=source.digest)
    children = [ecr.manifest(source.repository, digest=d) for d in top.children]
    report.line(f"source {source} is {top.digest} ({top.media_type}{f', {len(children)} manifests' if children else ''})")

    released = None
    if tags:
        tags = list(tags)
    else:
        existing = [tag for image in ecr.images(destination, [top.digest]) for tag in image.tags]
        tags, released = release_tags(existing, now or datetime.now(UTC))
        if released:
            report.line(f"{destination} already has {top.digest} as {released}: no new timestamp tag")

    blobs = list({b.digest: b for m in [top, *children] for b in m.blobs}.values())
    # Within one repository every blob is already there: a retag needs no copy.
    missing = set() if destination == source.repository else set(ecr.missing(destination, [b.digest for b in blobs]))
    to_copy = [b for b in blobs if b.digest in missing]
    report.line(f"{len(blobs) - len(to_copy)} of {len(blobs)} blobs already in {destination}; {len(to_copy)} to copy")

    copied_bytes, results = 0, {}
    if not dry_run:
        copied_bytes = _copy_blobs(ecr, report, source.repository, destination, to_copy, fetch, sleep)
        _put_children(ecr, destination, children)
        for tag in tags:
            results[tag] = _put_top(ecr, destination, top, children, tag)
            report.line(f"{destination}:{tag} -> {top.digest} ({results[tag]})")

    verb = "would promote" if dry_run else "promoted"
    return PromoteOutcome(
        summary=f"{verb} {source} to {destination} ({', '.join(tags)}) with digest {top.digest}"
        + ("" if dry_run else "; destination digest matches source")
        + (f"; already released as {released}" if released else ""),
        source=str(source),
        destination=destination,
        digest=top.digest,
        media_type=top.media_type,
        tags=results or dict.fromkeys(tags, "dry run"),
        blobs_present=len(blobs) - len(to_copy),
        blobs_copied=0 if dry_run else len(to_copy),
        bytes_copied=copied_bytes,
        seconds=round(report.clock() - started, 3),
        dry_run=dry_run,
        released_as=released,
    )


def _put_children(ecr: Ecr, destination: str, children: list[Manifest]) -> None:
    for child in children:
        if ecr.find(destination, digest=child.digest) is None:
            ecr.put(destination, child, tag=None)


def _put_top(ecr: Ecr, destination: str, top: Manifest, children: list[Manifest], tag: str) -> str:
    try:
        return ecr.put(destination, top, tag)
    except ReferencedImagesNotFound as error:
        # The children were put first; one may not be visible yet, or may have been deleted since.
        _put_children(ecr, destination, children)
        try:
            return ecr.put(destination, top, tag)
        except ReferencedImagesNotFound:
            names = ", ".join(child.digest for child in children)
            raise OperationFailed(f"{error}; the index references {names}, each put into {destination} first") from None


def _copy_blobs(ecr: Ecr, report: Reporter, source: str, destination: str, blobs: list[Blob], fetch, sleep) -> int:
    if not blobs:
        return 0
    with (
        ThreadPoolExecutor(max_workers=PART_SENDERS) as sender,
        ThreadPoolExecutor(max_workers=min(COPY_WORKERS, len(blobs))) as pool,
    ):
        copier = _Copier(ecr, report, source, destination, fetch, sleep, sender)
        futures = [pool.submit(copier.copy, b) for b in blobs]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for future in pending:
            future.cancel()
        for future in done:
            future.result()  # the first failure, if any, stops the promotion before anything is tagged
    return sum(f.result() for f in futures)


@dataclass(frozen=True)
class _Copier:
    ecr: Ecr
    report: Reporter
    source: str
    destination: str
    fetch: Callable[[str], IO[bytes]]
    sleep: Callable[[float], None]
    sender: ThreadPoolExecutor  # sends every part; see PART_SENDERS

    def copy(self, blob: Blob) -> int:
        """Download and upload one blob; a failed download starts over with a fresh URL and a new upload."""
        for attempt, delay in enumerate([*RETRY_DELAYS, None], start=1):
            try:
                with self.fetch(self.ecr.download_url(self.source, blob.digest)) as stream:
                    sent, state = self._upload(blob, stream)
                raced = "" if state == "stored" else "; a concurrent push of the same blob completed first"
                self.report.line(f"copied {blob.digest} ({sent} bytes{raced})")
                return sent
            except DOWNLOAD_ERRORS as error:
                reason = _reason(error)
                if delay is None or not _retryable(error):
                    hint = FORBIDDEN_HINT if isinstance(error, HTTPError) and error.code == 403 else ""
                    raise OperationFailed(
                        f"could not download blob {blob.digest} from {self.source}: {reason} "
                        f"(attempt {attempt} of {DOWNLOAD_ATTEMPTS}); nothing was tagged{hint}"
                    ) from None
                self.report.line(f"download of {blob.digest} failed ({reason}); retrying in {delay}s with a fresh URL")
                self.sleep(delay)

    def _upload(self, blob: Blob, stream: IO[bytes]) -> tuple[int, str]:
        upload = self.ecr.initiate_upload(self.destination, blob.digest)
        if blob.size > upload.part_size * MAX_PARTS:
            raise OperationFailed(
                f"blob {blob.digest} ({blob.size} bytes) needs more than ECR's {MAX_PARTS} parts of {upload.part_size} bytes"
            )
        sent = 0
        for part in verified_parts(stream, blob.digest, _part_buffer(upload.part_size)):
            sent = self.sender.submit(self.ecr.upload_part, upload, sent, part).result()
        return sent, self.ecr.complete_upload(upload)


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
            count = stream.readinto(view[filled:])
            if not count:
                # http.client's readinto reports a body cut short as its end; the length still due tells them apart.
                if getattr(stream, "length", None):
                    raise http.client.IncompleteRead(b"", stream.length)
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
