"""Image references, parsed one way for the product and the simulator: registry host, repository, tag, digest.

A reference is `[HOST[:PORT]/]REPOSITORY[:TAG][@DIGEST]`, as Docker reads it: the first path component is a
registry host when it has a dot or a port, or is `localhost`. An ECR host is
`<account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]`.
"""

import re
from dataclasses import dataclass

ECR_HOST = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr(?P<fips>-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?P<china>\.cn)?$"
)
REPOSITORY = re.compile(r"[a-z0-9]+(?:[._-]+[a-z0-9]+)*(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*")
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


class BadReference(ValueError):
    """Text that is no image reference; the message says which part is wrong."""


@dataclass(frozen=True)
class ImageRef:
    repository: str
    tag: str | None = None
    digest: str | None = None
    registry: str | None = None  # HOST[:PORT]; None for a bare repository name (the caller's ECR registry)

    @classmethod
    def parse(cls, text: str, default_tag: str | None = "latest") -> "ImageRef":
        """`text` as a reference; a reference with neither tag nor digest gets `default_tag`."""
        rest, _, digest = text.strip().partition("@")
        registry = None
        first, slash, remainder = rest.partition("/")
        if slash and ("." in first or ":" in first or first == "localhost"):
            registry, rest = first, remainder
        repository, tag = rest, None
        if rest.rfind(":") > rest.rfind("/"):
            repository, _, tag = rest.rpartition(":")
        if not REPOSITORY.fullmatch(repository):
            raise BadReference(f"{repository!r} is not a repository name (lowercase letters, digits, . _ - /)")
        if tag is not None and not TAG.fullmatch(tag):
            raise BadReference(f"{tag!r} is not a tag")
        if digest and not DIGEST.fullmatch(digest):
            raise BadReference(f"{digest!r} is not a sha256 digest")
        return cls(repository, tag if tag is not None or digest else default_tag, digest or None, registry)

    @property
    def ecr(self) -> re.Match | None:
        """The ECR host's parts (account, region, fips, china), or None for any other registry."""
        return ECR_HOST.match(self.registry) if self.registry else None

    @property
    def account(self) -> str | None:
        return self.ecr["account"] if self.ecr else None

    @property
    def region(self) -> str | None:
        return self.ecr["region"] if self.ecr else None

    def __str__(self) -> str:
        name = f"{self.registry}/{self.repository}" if self.registry else self.repository
        return name + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")


def ecr_image(uri: str | None) -> ImageRef | None:
    """The reference when `uri` names an image in an ECR registry; None for any other registry or bad text."""
    try:
        ref = ImageRef.parse(uri or "", default_tag=None)
    except BadReference:
        return None
    return ref if ref.ecr else None


def short(digest: str | None) -> str:
    """`sha256:` and the first 12 hex digits: enough to tell images apart in a table."""
    if not digest:
        return "-"
    algorithm, _, value = digest.partition(":")
    return f"{algorithm}:{value[:12]}"


def short_reference(reference: str) -> str:
    """An image reference with its digest, if it names one, cut as `short` cuts it: a whole one is wider than a
    terminal's line."""
    name, at, digest = reference.partition("@")
    return f"{name}@{short(digest)}" if at and ":" in digest else reference
