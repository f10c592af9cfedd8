"""Release tags: `latest`, the UTC stamp promote writes (YYYYMMDDTHHMMSSZ), and the order tags are shown in."""

import re
from datetime import UTC, datetime

LATEST = "latest"
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
STAMP = re.compile(r"\d{8}T\d{6}Z")


def stamp_of(tags) -> str | None:
    """The image's first release: its earliest stamp tag."""
    stamps = sorted(tag for tag in tags if STAMP.fullmatch(tag))
    return stamps[0] if stamps else None


def release_tags(existing: list[str], now: datetime) -> tuple[list[str], str | None]:
    """The default tags: `latest` and a new UTC timestamp, unless the image already has a timestamp tag.

    Returns the tags to write and the timestamp tag the image was first released as, if any.
    """
    released = stamp_of(existing)
    if released:
        return [LATEST], released
    return [LATEST, now.astimezone(UTC).strftime(STAMP_FORMAT)], None


def ordered_tags(tags) -> list[str]:
    """`latest` first, then the others newest (greatest) first."""
    return sorted(sorted(tags, reverse=True), key=lambda tag: tag != LATEST)


def label(digest: str, stamp: str | None) -> str:
    from .images import short

    return f"{stamp} ({short(digest)})" if stamp else short(digest)
