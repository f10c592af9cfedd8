"""Image configs by digest, read as a container runtime reads them: the manifest from ECR (moto's backend), then
its config blob from the simulated registry's stored bytes; an index's linux/amd64 image stands for it."""

import json
from collections.abc import Callable

from moto.ecr.models import ecr_backends

from .registry import Registry


def config_reader(registry: Registry, account: str = "123456789012", region: str = "us-east-1"
                  ) -> Callable[[str], dict | None]:
    """`read(digest)`: the config of the image with that manifest digest in any repository of the account's
    registry, or None (no such image, or a config whose bytes were never uploaded). Content is addressed by
    digest, so an answer found is kept; a miss is looked up again (the image may be pushed later)."""
    found: dict[str, dict] = {}

    def read(digest: str) -> dict | None:
        if digest in found:
            return found[digest]
        try:
            backend = ecr_backends[account][region]
        except KeyError:
            return None
        for name, repository in list(backend.repositories.items()):
            for image in list(repository.images):
                if image.get_image_digest() != digest:
                    continue
                manifest = json.loads(image.image_manifest)
                if "manifests" in manifest:
                    children = manifest["manifests"]
                    chosen = next((m for m in children if (m.get("platform") or {}).get("architecture") == "amd64"),
                                  children[0] if children else None)
                    return read(chosen["digest"]) if chosen else None
                wanted = (manifest.get("config") or {}).get("digest", "")
                # Content is addressed by digest: another repository's copy of the bytes is as good.
                blob = registry.blobs.get((name, wanted)) or next(
                    (data for (_, digest_), data in list(registry.blobs.items()) if digest_ == wanted), None)
                if blob is None:
                    continue
                config = json.loads(blob)
                found[digest] = config
                return config
        return None

    return read
