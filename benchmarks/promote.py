"""Measure `workflow promote`: against Debian's docker-registry side by side with `skopeo copy`, and through the
sandbox's ECR on both paths (the registry API, and the ECR API it falls back to).

Run: pipenv run python benchmarks/promote.py [--layers 4] [--layer-mib 100] [--runs 2] [--no-sandbox] [--no-real]

1. Real registries (needs scripts/install-registry-tools): two docker-registry processes on loopback, filesystem
   storage, each behind a byte-counting TCP proxy (tests/contract/registries.py) through which both tools go. One
   image (default 4 layers of 100 MiB) is pushed once; then, in the same run and alternately, `workflow promote`
   and `skopeo copy` copy it within one registry (to another repository) and across the two. For each: wall time,
   MiB/s (image bytes over wall time), peak RSS of the process (wait4's ru_maxrss of that child alone), bytes the
   destination registry received (the proxy's count) and blob bytes its storage gained.
2. The sandbox's ECR (moto's server plus workflow_sandbox/registry.py, in this process): the same promote in a child
   process through the registry API (with BLOB_MOUNTING enabled, and between two repositories without it) and
   through the ECR API (the path promote takes when the registry endpoint cannot be reached).
Prints Markdown tables; BENCHMARKS.md records a run.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from common import table

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "contract"))
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

MIB = 1024 * 1024
SKOPEO_CACHES = ("/var/lib/containers/cache/blob-info-cache-v1.boltdb",
                 os.path.expanduser("~/.local/share/containers/cache/blob-info-cache-v1.boltdb"))


def timed(command: list[str], env: dict | None = None) -> dict:
    """Run `command`: its wall time, output, CPU time and peak RSS. The peak is the child's own VmHWM, read from /proc
    while it runs (wait4's ru_maxrss would carry the parent's peak over fork and exec)."""
    import selectors

    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out, err, peak_kib = b"", b"", 0
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    selector.register(process.stderr, selectors.EVENT_READ)
    open_pipes = 2
    while open_pipes:
        peak_kib = max(peak_kib, _hwm_kib(process.pid))
        for key, _ in selector.select(timeout=0.01):
            chunk = os.read(key.fileobj.fileno(), 65536)
            if not chunk:
                selector.unregister(key.fileobj)
                open_pipes -= 1
            elif key.fileobj is process.stdout:
                out += chunk
            else:
                err += chunk
    peak_kib = max(peak_kib, _hwm_kib(process.pid))
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{command[:3]} failed ({os.waitstatus_to_exitcode(status)}): {err.decode()[-2000:]}")
    return {"seconds": seconds, "rss_mib": peak_kib / 1024, "cpu": usage.ru_utime + usage.ru_stime,
            "stdout": out.decode(), "stderr": err.decode()}


def _hwm_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            return next((int(line.split()[1]) for line in status if line.startswith("VmHWM:")), 0)
    except (OSError, ValueError):
        return 0


def promote_command(source: str, dest: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "workflow", "promote", "--yes", "--output", "json", "--source", source, "--dest", dest,
            *extra]


def skopeo_command(source: str, dest: str) -> list[str]:
    return ["skopeo", "copy", "--quiet", "--preserve-digests", "--src-tls-verify=false", "--dest-tls-verify=false",
            f"docker://{source}", f"docker://{dest}"]


def forget_skopeo_cache() -> None:
    """skopeo remembers where it saw each blob and mounts from there next time: a cold cache is the fair start."""
    for path in SKOPEO_CACHES:
        if os.path.exists(path):
            os.remove(path)


def real_registries(args) -> None:
    from registries import Registries, missing_reason, push_image, random_layers, tag_digest

    reason = missing_reason() or (None if shutil.which("skopeo") else "skopeo is not installed")
    if reason:
        print(f"(real registries skipped: {reason})\n")
        return
    layers = random_layers(args.layers, args.layer_mib * MIB, seed=7)
    image_bytes = sum(map(len, layers))
    registries = Registries()
    docker_config = tempfile.mkdtemp(prefix="docker-config-")
    env = {**os.environ, "DOCKER_CONFIG": docker_config, "PYTHONPATH": ROOT}
    rows = []
    try:
        one, two = registries.get("one"), registries.get("two")
        started = time.perf_counter()
        image = push_image(one.host, "bench/stage", layers, "latest")
        del layers
        print(f"pushed {args.layers} x {args.layer_mib} MiB in {time.perf_counter() - started:.1f}s", file=sys.stderr)
        source = f"{one.host}/bench/stage:latest"
        for run in range(1, args.runs + 1):
            cases = [
                ("within one registry", one, f"{one.host}/bench/prod-promote-{run}", f"{one.host}/bench/prod-skopeo-{run}"),
                ("across two registries", two, f"{two.host}/bench/prod-promote-{run}", f"{two.host}/bench/prod-skopeo-{run}"),
            ]
            for case, dest, promote_to, skopeo_to in cases:
                for tool in ("promote", "skopeo"):
                    forget_skopeo_cache()
                    dest.proxy.reset()
                    one.proxy.reset()
                    stored = dest.stored_blob_bytes()
                    if tool == "promote":
                        result = timed(promote_command(source, promote_to), env)
                        target = promote_to
                    else:
                        result = timed(skopeo_command(source, skopeo_to + ":latest"), env)
                        target = skopeo_to
                    repository = target.split("/", 1)[1]
                    assert tag_digest(dest.direct, repository, "latest") == image["digest"] or tool == "skopeo"
                    rows.append({"case": case, "tool": tool, "run": run, "seconds": result["seconds"],
                                 "rss": result["rss_mib"], "cpu": result["cpu"], "up": dest.proxy.up,
                                 "down": one.proxy.down, "stored": dest.stored_blob_bytes() - stored,
                                 "digest": tag_digest(dest.direct, repository, "latest")})
                    print(f"{case}, {tool}, run {run}: {result['seconds']:.2f}s", file=sys.stderr)
    finally:
        registries.close()
        shutil.rmtree(docker_config, ignore_errors=True)

    print(f"Image: {args.layers} layers of {args.layer_mib} MiB ({image_bytes} bytes) plus a config blob, pushed once "
          f"to registry one. Each row is one run (a new destination repository each time, skopeo's blob cache "
          f"emptied before every run). MiB/s: image bytes over wall time.\n")
    print("| case | tool | run | wall s | MiB/s | peak RSS MiB | CPU s | bytes uploaded to the destination | digest equal |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for row in rows:
        print(f"| {row['case']} | {row['tool']} | {row['run']} | {row['seconds']:.2f} | "
              f"{image_bytes / MIB / row['seconds']:.0f} | {row['rss']:.0f} | {row['cpu']:.1f} | {row['up']} | "
              f"{'yes' if row['digest'] == image['digest'] else 'no: ' + str(row['digest'])[:19]} |")
    print()
    for case in ("within one registry", "across two registries"):
        promote_wall = statistics.median(r["seconds"] for r in rows if r["case"] == case and r["tool"] == "promote")
        skopeo_wall = statistics.median(r["seconds"] for r in rows if r["case"] == case and r["tool"] == "skopeo")
        print(f"- {case}: promote's median wall time is {promote_wall / skopeo_wall:.2f} times skopeo's "
              f"({promote_wall:.2f} s against {skopeo_wall:.2f} s).")
    print()


# The sandbox's ECR: both of promote's paths ------------------------------------------------------------------------


def sandbox(args) -> None:
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    from workflow_sandbox import moto_models  # noqa: F401  (first: see there)
    from workflow_sandbox.images import push_image, random_layers
    from workflow_sandbox.registry import Registry, simulated_ecr

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    layers = random_layers(args.layers, args.layer_mib * MIB, seed=8)
    image_bytes = sum(map(len, layers))
    rows = []
    with simulated_ecr(Registry()) as registry:
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        client = boto3.client("ecr", endpoint_url=endpoint)
        for repository in ("stage", "prod-mount", "prod-registry", "prod-api"):
            client.create_repository(repositoryName=repository)
        started = time.perf_counter()
        push_image(client, "stage", layers, "latest")
        del layers
        print(f"pushed to the sandbox in {time.perf_counter() - started:.1f}s", file=sys.stderr)
        env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "AWS_REGION": "us-east-1", "PYTHONPATH": ROOT,
               "DOCKER_CONFIG": tempfile.mkdtemp(prefix="docker-config-")}
        cases = [
            ("registry API, BLOB_MOUNTING enabled (mounts)", "prod-mount", "registry", "ENABLED"),
            ("registry API, BLOB_MOUNTING disabled (streamed copies)", "prod-registry", "registry", "DISABLED"),
            ("ECR API (the fallback)", "prod-api", "ecr-api", "DISABLED"),
        ]
        for name, dest, via, mounting in cases:
            client.put_account_setting(name="BLOB_MOUNTING", value=mounting)
            registry.uploads.clear()
            result = timed(promote_command("stage:latest", dest, "--via", via), env)
            outcome = json.loads(result["stdout"])
            uploaded = sum(size for repository, _, size in registry.uploads if repository == dest)
            rows.append([name, f"{result['seconds']:.2f}", f"{image_bytes / MIB / result['seconds']:.0f}",
                         f"{result['rss_mib']:.0f}", f"{result['cpu']:.1f}", outcome["blobs_mounted"],
                         outcome["blobs_copied"], uploaded])
            print(f"sandbox {name}: {result['seconds']:.2f}s", file=sys.stderr)
        server.stop()

    print(f"The sandbox's ECR (moto's server and workflow_sandbox/registry.py on loopback, in the benchmark's own "
          f"process, which serves and stores every byte): the same {args.layers} x {args.layer_mib} MiB image from "
          f"`stage` to a new repository, promote in a child process.\n")
    print(table(["path", "wall s", "MiB/s", "peak RSS MiB", "CPU s", "blobs mounted", "blobs copied", "bytes uploaded"],
                rows))
    print()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--layer-mib", type=int, default=100)
    parser.add_argument("--runs", type=int, default=2, help="runs of each tool and case against the real registries")
    parser.add_argument("--no-sandbox", action="store_true", help="skip the sandbox's ECR")
    parser.add_argument("--no-real", action="store_true", help="skip the real registries and skopeo")
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the start.\n")
    if not args.no_real:
        real_registries(args)
    if not args.no_sandbox:
        sandbox(args)
    print(f"Load average {os.getloadavg()[0]:.2f} at the end.")


if __name__ == "__main__":
    main()
