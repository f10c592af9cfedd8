"""An image's config as ECR serves it: its manifest, then its config blob (where the Airflow version is)."""

import json
import urllib.request
from collections.abc import Callable
from typing import Any

from .ecr import Ecr
from .errors import NotFound, WorkflowError
from .images import ImageRef, ecr_image

CONFIG_MAX_BYTES = 4 * 1024 * 1024  # image configs are kilobytes; more is not a config


class ConfigUnreadable(WorkflowError):
    """The image's config could not be read; what it says is unknown."""


def image_config(ecr: Callable[[str | None], Any], image_uri: str, digest: str) -> dict | None:
    """The config of the image `digest` in `image_uri`'s ECR repository (for an index, its first manifest's),
    or None when the image is not in ECR. Raises WorkflowError when ECR cannot be read."""
    ref = ecr_image(image_uri)
    if ref is None:
        return None
    return config_of(Ecr(ecr(ref.region), ref.account), ref.repository, digest)


def config_of(registry: Ecr, repository: str, digest: str) -> dict | None:
    """The config of the image `digest` in a repository of `registry`, or None when it is not there."""
    ref = ImageRef(repository, digest=digest)
    try:
        manifest = registry.manifest(ref.repository, digest=digest)
    except NotFound:  # deleted since, or never in this registry: nothing to say about it
        return None
    if manifest.is_index:
        manifest = registry.manifest(ref.repository, digest=manifest.children[0])
    config = manifest.parsed.get("config") or {}
    if not config.get("digest"):
        return None
    url = registry.download_url(ref.repository, config["digest"])
    try:
        with urllib.request.urlopen(url, timeout=15) as answer:  # a pre-signed URL: never quoted in an error
            body = answer.read(CONFIG_MAX_BYTES + 1)
        document = json.loads(body)
    except (OSError, ValueError) as error:
        raise ConfigUnreadable(f"cannot read the config of {ref.repository}@{digest[:19]}: "
                               f"{type(error).__name__}") from None
    return document if isinstance(document, dict) else None


def airflow_versions(registry: Ecr, repository: str, digests: list[str]) -> dict[str, str]:
    """The Airflow version each image declares in its config, for the images that declare one; an image whose config
    cannot be read is left out (a version is shown as a courtesy, never needed)."""
    from .airflow_schema import version_from_config

    found: dict[str, str] = {}
    for digest in digests:
        try:
            version = version_from_config(config_of(registry, repository, digest))
        except WorkflowError:
            continue
        if version:
            found[digest] = version
    return found
