"""Debian's docker-registry (the CNCF distribution registry) on loopback, for the tests and the benchmark that run
promote against a real registry; and a byte-counting TCP proxy in front of each, so that what a client uploaded
is measured on the registry's side of the wire, not from the client's own counters.

scripts/install-registry-tools installs the registry (and skopeo). Where it is missing and cannot be installed,
`registry_or_skip` skips with the reason.
"""

import hashlib
import http.client
import json
import os
import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field

BINARY = "/usr/bin/docker-registry"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
CONFIG = "application/vnd.docker.container.image.v1+json"
MIB = 1024 * 1024


def missing_reason() -> str | None:
    """Why no real registry can run here, or None when one can."""
    if not os.path.exists(BINARY):
        return f"{BINARY} is not installed (scripts/install-registry-tools installs Debian's docker-registry)"
    return None


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class CountingProxy:
    """TCP on loopback, byte for byte, counting what clients send (`up`) and receive (`down`) per direction.

    `cut_after(n, times)`: the next `times` connections are closed once a client has sent `n` bytes on them
    (an upload interrupted mid-body, as a dropped network would)."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.up = self.down = 0
        self.connections = 0
        self._cuts: list[int] = []
        self._armed = 0  # how many times cuts were armed: a connection counts its bytes from the latest arming
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def reset(self) -> None:
        with self._lock:
            self.up = self.down = self.connections = 0

    def cut_after(self, count: int, times: int = 1) -> None:
        with self._lock:
            self._cuts += [count] * times
            self._armed += 1

    def close(self) -> None:
        self._closed = True
        self._server.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def clear_cuts(self) -> None:
        with self._lock:
            self._cuts.clear()

    def _pump(self, source: socket.socket, sink: socket.socket, upward: bool) -> None:
        buffer = bytearray(256 * 1024)
        view = memoryview(buffer)
        sent_here, armed = 0, self._armed
        try:
            while True:
                count = source.recv_into(buffer)
                if not count:
                    break
                if upward:
                    with self._lock:
                        if armed != self._armed:
                            sent_here, armed = 0, self._armed
                        cut = self._cuts[0] if self._cuts and sent_here + count >= self._cuts[0] else None
                        if cut is not None:
                            self._cuts.pop(0)
                    if cut is not None:  # this connection has carried `cut` bytes up: it drops here
                        sink.sendall(view[: max(0, cut - sent_here)])
                        with self._lock:
                            self.up += max(0, cut - sent_here)
                        break
                sink.sendall(view[:count])
                sent_here += count
                with self._lock:
                    if upward:
                        self.up += count
                    else:
                        self.down += count
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                end.close()


@dataclass
class RealRegistry:
    """One docker-registry process with filesystem storage in its own folder, behind a CountingProxy."""

    root: str
    port: int = 0
    process: subprocess.Popen | None = None
    proxy: CountingProxy | None = None
    log_path: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def host(self) -> str:
        """What clients use: the counting proxy."""
        assert self.proxy is not None
        return self.proxy.host

    @property
    def direct(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "RealRegistry":
        self.port = self.port or free_port()
        config = os.path.join(self.root, "config.yml")
        storage = os.path.join(self.root, "storage")
        os.makedirs(storage, exist_ok=True)
        with open(config, "w") as file:
            json.dump({  # YAML is a superset of JSON
                "version": 0.1,
                "log": {"level": "info", "accesslog": {"disabled": False}},
                "storage": {"filesystem": {"rootdirectory": storage}, "delete": {"enabled": True},
                            "maintenance": {"uploadpurging": {"enabled": False}}},
                "http": {"addr": self.direct, "headers": {"X-Content-Type-Options": ["nosniff"]}},
                **self.extra,
            }, file)
        self.log_path = os.path.join(self.root, "registry.log")
        log = open(self.log_path, "wb")  # noqa: SIM115  (the process writes it until it stops)
        self.process = subprocess.Popen([BINARY, "serve", config], stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                status, _, _ = request(self.direct, "GET", "/v2/")
                if status == 200:
                    break
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                with open(self.log_path, errors="replace") as file:
                    raise RuntimeError(f"docker-registry did not start: {file.read()[-2000:]}")
            time.sleep(0.05)
        self.proxy = CountingProxy(("127.0.0.1", self.port))
        return self

    def stop(self) -> None:
        if self.proxy:
            self.proxy.close()
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def stored_blob_bytes(self) -> int:
        """The bytes of blob data in the registry's storage: mounts add none, uploads add each new blob once."""
        total = 0
        blobs = os.path.join(self.root, "storage", "docker", "registry", "v2", "blobs")
        for folder, _, files in os.walk(blobs):
            total += sum(os.path.getsize(os.path.join(folder, f)) for f in files if f == "data")
        return total


def request(host: str, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
            timeout: float = 60) -> tuple[int, dict, bytes]:
    connection = http.client.HTTPConnection(host, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def push_blob(host: str, repository: str, data: bytes) -> str:
    """As a client pushes: POST for a session, one PUT with the bytes."""
    digest = digest_of(data)
    status, headers, _ = request(host, "HEAD", f"/v2/{repository}/blobs/{digest}")
    if status == 200:
        return digest
    status, headers, body = request(host, "POST", f"/v2/{repository}/blobs/uploads/", b"")
    assert status == 202, (status, body)
    location = headers["location"]
    location = location.split("://", 1)[-1].split("/", 1)[-1]
    separator = "&" if "?" in location else "?"
    status, _, body = request(host, "PUT", f"/{location}{separator}digest={digest}", data,
                              {"Content-Type": "application/octet-stream"})
    assert status == 201, (status, body)
    return digest


def random_layers(count: int, size: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(size) for _ in range(count)]


def push_image(host: str, repository: str, layers: list[bytes], tag: str, media_type: str = DOCKER_MANIFEST,
               platform: str = "amd64") -> dict:
    config = json.dumps({"architecture": platform, "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [digest_of(x) for x in layers]}}).encode()
    push_blob(host, repository, config)
    for layer in layers:
        push_blob(host, repository, layer)
    oci = media_type == OCI_MANIFEST
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": media_type,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json" if oci else CONFIG, "size": len(config),
                   "digest": digest_of(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip" if oci else LAYER, "size": len(x),
                    "digest": digest_of(x)} for x in layers],
    }, indent=3).encode()
    return put_manifest(host, repository, tag, manifest, media_type)


def push_index(host: str, repository: str, platforms: dict[str, list[bytes]], tag: str) -> dict:
    children = [push_image(host, repository, layers, digest_of(b"x"), OCI_MANIFEST, platform)
                for platform, layers in platforms.items()]
    entries = [{"mediaType": OCI_MANIFEST, "size": len(child["manifest"]), "digest": child["digest"],
                "platform": {"os": "linux", "architecture": platform}}
               for child, platform in zip(children, platforms, strict=True)]
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
    return {**put_manifest(host, repository, tag, index, OCI_INDEX), "children": children}


def put_manifest(host: str, repository: str, reference: str, manifest: bytes, media_type: str) -> dict:
    if reference.startswith("sha256:"):
        reference = digest_of(manifest)
    status, _, body = request(host, "PUT", f"/v2/{repository}/manifests/{reference}", manifest,
                              {"Content-Type": media_type})
    assert status == 201, (status, body)
    return {"digest": digest_of(manifest), "manifest": manifest, "media_type": media_type}


def tag_digest(host: str, repository: str, tag: str) -> str | None:
    accept = ", ".join([DOCKER_MANIFEST, OCI_MANIFEST, OCI_INDEX, "application/vnd.docker.distribution.manifest.list.v2+json"])
    status, headers, _ = request(host, "HEAD", f"/v2/{repository}/manifests/{tag}", headers={"Accept": accept})
    return headers.get("docker-content-digest") if status == 200 else None


def tags(host: str, repository: str) -> list[str]:
    status, _, body = request(host, "GET", f"/v2/{repository}/tags/list")
    return sorted(json.loads(body).get("tags") or []) if status == 200 else []


class Registries:
    """Registries started on demand and kept for the session (per pytest-xdist worker)."""

    def __init__(self):
        self._root = tempfile.mkdtemp(prefix="registries-")
        self._started: dict[str, RealRegistry] = {}

    def get(self, name: str) -> RealRegistry:
        if name not in self._started:
            folder = os.path.join(self._root, name)
            os.makedirs(folder)
            self._started[name] = RealRegistry(folder).start()
        registry = self._started[name]
        assert registry.proxy is not None
        registry.proxy.reset()
        return registry

    def close(self) -> None:
        for registry in self._started.values():
            registry.stop()
        shutil.rmtree(self._root, ignore_errors=True)
