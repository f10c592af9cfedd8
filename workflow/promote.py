"""Publish an image to another ECR repository through the API, copying only the blobs it lacks.

Nothing is tagged until every blob and child manifest is in place, so a failed copy leaves the
destination's tags as they were.
"""

import hashlib
import urllib.request
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import IO

from .ecr import PART_SIZE, Blob, Ecr
from .errors import OperationFailed
from .render import Reporter

COPY_WORKERS = 4


@dataclass(frozen=True)
class ImageRef:
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str) -> "ImageRef":
        if "@" in text:
            repository, digest = text.split("@", 1)
            return cls(repository, digest=digest)
        repository, _, tag = text.partition(":")
        return cls(repository, tag=tag or "latest")

    def __str__(self) -> str:
        return f"{self.repository}@{self.digest}" if self.digest else f"{self.repository}:{self.tag}"


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


def promote(
    ecr: Ecr,
    report: Reporter,
    source: ImageRef,
    destination: str,
    tags: list[str],
    dry_run: bool = False,
    fetch: Callable[[str], IO[bytes]] | None = None,
) -> PromoteOutcome:
    started = report.clock()
    fetch = fetch or (lambda url: urllib.request.urlopen(url, timeout=60))
    top = ecr.manifest(source.repository, tag=source.tag, digest=source.digest)
    children = [ecr.manifest(source.repository, digest=d) for d in top.children]
    report.line(f"source {source} is {top.digest} ({top.media_type}{f', {len(children)} manifests' if children else ''})")

    blobs = list({b.digest: b for m in [top, *children] for b in m.blobs}.values())
    # Within one repository every blob is already there: a retag needs no copy.
    missing = set() if destination == source.repository else set(ecr.missing(destination, [b.digest for b in blobs]))
    to_copy = [b for b in blobs if b.digest in missing]
    report.line(f"{len(blobs) - len(to_copy)} of {len(blobs)} blobs already in {destination}; {len(to_copy)} to copy")

    copied_bytes, results = 0, {}
    if not dry_run:
        copied_bytes = _copy_blobs(ecr, report, source.repository, destination, to_copy, fetch)
        for child in children:
            if ecr.find(destination, digest=child.digest) is None:
                ecr.put(destination, child, tag=None)
        for tag in tags:
            results[tag] = ecr.put(destination, top, tag)
            report.line(f"{destination}:{tag} -> {top.digest} ({results[tag]})")

    verb = "would promote" if dry_run else "promoted"
    return PromoteOutcome(
        summary=f"{verb} {source} to {destination} ({', '.join(tags)}) with digest {top.digest}"
        + ("" if dry_run else "; destination digest matches source"),
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
    )


def _copy_blobs(ecr: Ecr, report: Reporter, source: str, destination: str, blobs: list[Blob], fetch) -> int:
    if not blobs:
        return 0

    def copy(blob: Blob) -> int:
        with fetch(ecr.download_url(source, blob.digest)) as stream:
            sent = ecr.upload(destination, blob.digest, verified_parts(stream, blob.digest))
        report.line(f"copied {blob.digest} ({sent} bytes)")
        return sent

    with ThreadPoolExecutor(max_workers=min(COPY_WORKERS, len(blobs))) as pool:
        futures = [pool.submit(copy, b) for b in blobs]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for future in pending:
            future.cancel()
        for future in done:
            future.result()  # the first failure, if any, stops the promotion before anything is tagged
    return sum(f.result() for f in futures)


def verified_parts(stream: IO[bytes], digest: str, part_size: int = PART_SIZE):
    """Yield the stream in full parts of `part_size` bytes, then fail if its bytes do not hash to `digest`."""
    algorithm, _, expected = digest.partition(":")
    hasher = hashlib.new(algorithm)
    while True:
        part = bytearray()
        while len(part) < part_size:
            chunk = stream.read(part_size - len(part))
            if not chunk:
                break
            part += chunk
        if not part:
            break
        hasher.update(part)
        yield bytes(part)
        if len(part) < part_size:
            break
    if hasher.hexdigest() != expected:
        raise OperationFailed(f"blob {digest} downloaded with digest {algorithm}:{hasher.hexdigest()}; not uploaded")
