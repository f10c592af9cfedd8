"""Measure `workflow promote` against the simulated registry.

Run: pipenv run python benchmarks/promote.py [--layers 4] [--layer-mib 4] [--big-layer-mib 100] [--no-memory]

1. API calls, bytes uploaded and wall time for a small image, in process (moto mocked).
2. Peak memory and throughput for big images: the registry (moto's server plus workflow/sandbox/registry.py)
   runs on loopback in this process; promote runs in a child process, which reports its own peak RSS.
   The same run copies the same blobs raw (HTTP GET from the registry's blob server, HTTP PUT to a sink
   that discards them, as many at a time as promote copies) as the yardstick for throughput.
Prints Markdown tables; BENCHMARKS.md records a run.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

import boto3  # noqa: E402

from workflow.aws import AwsConfig, Clients  # noqa: E402
from workflow.ecr import Ecr  # noqa: E402
from workflow.images import ImageRef  # noqa: E402
from workflow.progress import Reporter  # noqa: E402
from workflow.promote import COPY_WORKERS, promote  # noqa: E402

MIB = 1024 * 1024
CHUNK = MIB  # the raw copy's read and send size


def measure(name, client, registry, source, dest, tags):
    calls = Counter()
    handler = lambda model, **_: calls.update([model.name])  # noqa: E731
    client.meta.events.register("before-call.ecr.*", handler)
    registry.uploads.clear()
    started = time.perf_counter()
    outcome = promote(Ecr(client), Reporter(time.perf_counter, write=lambda _: None), ImageRef.parse(source), dest, tags)
    seconds = time.perf_counter() - started
    client.meta.events.unregister("before-call.ecr.*", handler)
    uploaded = sum(size for repo, _, size in registry.uploads if repo == dest)
    return [name, sum(calls.values()), ", ".join(f"{k} {v}" for k, v in sorted(calls.items())), uploaded,
            outcome.blobs_copied, f"{seconds:.2f}"]


def api_calls(args):
    from moto import mock_aws

    from workflow_sandbox.images import push_image, random_layers
    from workflow_sandbox.registry import Registry, simulated_ecr

    layers = random_layers(args.layers, args.layer_mib * MIB, seed=7)
    image_bytes = sum(map(len, layers))
    with mock_aws(), simulated_ecr(Registry()) as registry:
        client = boto3.client("ecr")
        for repo in ("airflow-stage", "airflow-prod", "airflow-warm"):
            client.create_repository(repositoryName=repo)
        push_image(client, "airflow-stage", layers, "latest")
        push_image(client, "airflow-warm", layers, "previous")  # the same blobs, already in place
        rows = [
            measure("(a) retag within one repository", client, registry, "airflow-stage:latest", "airflow-stage", ["release"]),
            measure("(b) across repositories, every blob present", client, registry, "airflow-stage:latest", "airflow-warm",
                    ["latest"]),
            measure("(c) across repositories, every blob missing", client, registry, "airflow-stage:latest", "airflow-prod",
                    ["latest", "20261125T142501Z"]),
        ]

    print(f"Image: {args.layers} layers of {args.layer_mib} MiB ({image_bytes} bytes) plus a config blob.\n")
    print("| case | API calls | by action | bytes uploaded | blobs copied | seconds |")
    print("| --- | ---: | --- | ---: | ---: | ---: |")
    for row in rows:
        print("| " + " | ".join(str(x) for x in row) + " |")
    print(f"\ndocker pull + push for the same cases moves the whole image down ({image_bytes} bytes) every time, "
          f"and up: (a) 0, (b) 0, (c) {image_bytes} bytes of layers.")


# Memory and throughput: the parent serves, children copy ---------------------------------------------------


def peak_rss_mib() -> float:
    """This process's peak RSS. Not getrusage's ru_maxrss: it keeps the parent's peak across fork and exec."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024


def child_promote(endpoint: str, dest: str, source: str) -> dict:
    client = Clients(AwsConfig(region="us-east-1", endpoint_url=endpoint))("ecr")
    before = peak_rss_mib()
    started = time.perf_counter()
    outcome = promote(Ecr(client), Reporter(time.perf_counter, write=lambda _: None), ImageRef(source, tag="latest"), dest,
                      ["latest"])
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    return {"seconds": time.perf_counter() - started, "bytes": outcome.bytes_copied, "before": before,
            "peak": peak_rss_mib(), "cpu": cpu.ru_utime + cpu.ru_stime}


def child_raw_copy(urls: list[str], sink: str) -> dict:
    def copy(url: str) -> int:
        with urllib.request.urlopen(url, timeout=60) as down:
            size = int(down.headers["Content-Length"])
            up = HTTPConnection(urlsplit(sink).netloc, timeout=60)
            up.putrequest("PUT", "/sink")
            up.putheader("Content-Length", str(size))
            up.endheaders()
            while chunk := down.read(CHUNK):
                up.send(chunk)
            up.getresponse().read()
            up.close()
        return size

    started = time.perf_counter()
    with ThreadPoolExecutor(COPY_WORKERS) as pool:
        moved = sum(pool.map(copy, urls))
    return {"seconds": time.perf_counter() - started, "bytes": moved, "peak": peak_rss_mib()}


def in_child(*args: str) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", *args], check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


class Sink(BaseHTTPRequestHandler):
    def do_PUT(self):
        remaining = int(self.headers["Content-Length"])
        while remaining:
            remaining -= len(self.rfile.read(min(CHUNK, remaining)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def memory(args):
    import logging

    from moto.server import ThreadedMotoServer

    from workflow_sandbox.images import digest_of, push_image, random_layers
    from workflow_sandbox.registry import Registry, simulated_ecr

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    images = [(4, args.big_layer_mib // 4), (4, args.big_layer_mib), (1, 4 * args.big_layer_mib)]
    sink = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    sink_url = f"http://127.0.0.1:{sink.server_address[1]}"
    rows = []
    with simulated_ecr(Registry()) as registry:
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        client = boto3.client("ecr", endpoint_url=endpoint)
        for number, (count, mib) in enumerate(images):
            stage, dest = f"stage-{number}", f"prod-{number}"
            for repo in (stage, dest):
                client.create_repository(repositoryName=repo)
            layers = random_layers(count, mib * MIB, seed=number)
            started = time.perf_counter()
            push_image(client, stage, layers, "latest")
            print(f"pushed {count} x {mib} MiB in {time.perf_counter() - started:.1f}s", file=sys.stderr)
            raw = in_child("raw", sink_url, *[registry.issue_url(stage, digest_of(x)) for x in layers])
            del layers
            result = in_child("promote", endpoint, dest, stage)
            rows.append([f"{count} x {mib} MiB", min(COPY_WORKERS, count + 1), f"{result['before']:.0f}",
                         f"{result['peak']:.0f}", f"{result['seconds']:.1f}", f"{result['cpu']:.1f}",
                         f"{result['bytes'] / MIB / result['seconds']:.0f}",
                         f"{raw['bytes'] / MIB / raw['seconds']:.0f}", f"{raw['seconds'] / result['seconds']:.2f}"])
        server.stop()
    sink.shutdown()

    print(f"\nPeak memory of the promote process (its own peak RSS; {COPY_WORKERS} copies at a time) and throughput,")
    print("against a raw loopback copy of the same layers (HTTP GET from the registry, HTTP PUT to a sink) in the same run:\n")
    print("| image | copies in flight | RSS before copying (MiB) | peak RSS (MiB) | seconds | CPU seconds | MiB/s | "
          "raw copy MiB/s | fraction of raw |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        print("| " + " | ".join(str(x) for x in row) + " |")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--layer-mib", type=int, default=4)
    parser.add_argument("--big-layer-mib", type=int, default=100, help="layer size of the 4-layer image for the memory run")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory and throughput run")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        print(json.dumps(child_promote(*rest) if kind == "promote" else child_raw_copy(rest[1:], rest[0])))
        return
    api_calls(args)
    if not args.no_memory:
        memory(args)


if __name__ == "__main__":
    main()
