"""Measure `workflow promote` against the simulated registry: API calls, bytes uploaded, wall time.

Run: pipenv run python benchmarks/promote.py [--layers 4] [--layer-mib 4]
Prints a Markdown table; BENCHMARKS.md records a run next to what docker pull + push would move.
"""

import argparse
import os
import time
from collections import Counter

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402

from workflow.ecr import Ecr  # noqa: E402
from workflow.promote import ImageRef, promote  # noqa: E402
from workflow.render import Reporter  # noqa: E402
from workflow.sandbox.images import push_image, random_layers  # noqa: E402
from workflow.sandbox.registry import Registry, simulated_ecr  # noqa: E402


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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--layer-mib", type=int, default=4)
    args = parser.parse_args()
    layers = random_layers(args.layers, args.layer_mib * 1024 * 1024, seed=7)
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


if __name__ == "__main__":
    main()
