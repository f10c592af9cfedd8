"""What the tests read back from the simulated cluster, its registry and a command's result: plain functions the test
modules share (the fixtures and the harness are conftest.py's)."""

import shlex
import socket

from conftest import ACCOUNT, CLUSTER, REGION


def flat(text: str) -> str:
    """Progress lines wrap at the terminal's width: words, one space apart."""
    return " ".join(text.split())


# --- ECS ------------------------------------------------------------------------------------------------------------


def describe(ecs, name: str) -> dict:
    """One service of the cluster, as DescribeServices answers it."""
    return ecs.describe_services(cluster=CLUSTER, services=[name])["services"][0]


def describe_services(ecs, *names: str) -> dict[str, dict]:
    """Services of the cluster described in one call, by name."""
    return {s["serviceName"]: s for s in ecs.describe_services(cluster=CLUSTER, services=list(names))["services"]}


def primary_id(service: dict) -> str:
    """The id of a described service's PRIMARY deployment (the one its last update started)."""
    return next(d["id"] for d in service["deployments"] if d["status"] == "PRIMARY")


def cluster_arn(ecs) -> str:
    return ecs.describe_clusters(clusters=[CLUSTER])["clusters"][0]["clusterArn"]


def hold(ecs, clock, owner="alice@bastion", command="redeploy", minutes=30):
    """Another operator's live lease on the cluster, taken a minute ago."""
    from datetime import timedelta

    from workflow.lease import Holder

    now = clock.wall(clock.now()).replace(microsecond=0)  # the CLI's wall clock in these tests
    holder = Holder("other", owner, command, now - timedelta(minutes=1), now + timedelta(minutes=minutes))
    ecs.tag_resource(resourceArn=cluster_arn(ecs), tags=[holder.tag])


def tasks(ecs, service: str | None = None, desired: str = "RUNNING") -> list[dict]:
    """The tasks ECS lists with that desired status, of `service` or of the whole cluster, described."""
    listed = {"serviceName": service} if service else {}
    arns = ecs.list_tasks(cluster=CLUSTER, desiredStatus=desired, **listed)["taskArns"]
    return ecs.describe_tasks(cluster=CLUSTER, tasks=arns)["tasks"] if arns else []


def one_off_tasks(ecs) -> list[dict]:
    """Every task this tool started itself (`run`, `initialize`, a migration), stopped or not."""
    arns = ecs.list_tasks(cluster=CLUSTER, desiredStatus="STOPPED")["taskArns"]
    arns += ecs.list_tasks(cluster=CLUSTER, desiredStatus="RUNNING")["taskArns"]
    found = ecs.describe_tasks(cluster=CLUSTER, tasks=arns)["tasks"] if arns else []
    return [t for t in found if t.get("startedBy") == "workflow"]


def digests(ecs, service: str, container: str = "celery-worker", desired: str = "RUNNING") -> list[str | None]:
    """The image digest `container` runs in each of the service's tasks with that desired status."""
    return [next(c.get("imageDigest") for c in t["containers"] if c["name"] == container)
            for t in tasks(ecs, service, desired)]


def running_digests(ecs, service: str, repository: str = "airflow-prod") -> set[str | None]:
    """The digests of the images from `repository` that the service's RUNNING tasks run (sidecars' images aside)."""
    uri = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{repository}"
    return {c.get("imageDigest") for t in tasks(ecs, service) if t["lastStatus"] == "RUNNING"
            for c in t["containers"] if c["image"].startswith((f"{uri}:", f"{uri}@"))}


# --- ECR ------------------------------------------------------------------------------------------------------------


def tagged(ecr, repository: str, tag: str) -> dict | None:
    """The image `tag` names in the repository (BatchGetImage's answer, manifest and all), or None."""
    images = ecr.batch_get_image(repositoryName=repository, imageIds=[{"imageTag": tag}])["images"]
    return images[0] if images else None


def tag_digest(ecr, repository: str, tag: str) -> str | None:
    image = tagged(ecr, repository, tag)
    return image["imageId"]["imageDigest"] if image else None


def retag(ecr, repository: str, image: dict, tag: str) -> None:
    """Point `tag` at an image push_image pushed to the repository (its exact manifest), as promote leaves it."""
    ecr.put_image(repositoryName=repository, imageManifest=image["manifest"], imageManifestMediaType=image["media_type"],
                  imageTag=tag)


def repository_tags(ecr, repository: str) -> dict[str, str]:
    """Every tag in the repository and the digest it names."""
    return {tag: image["imageDigest"] for image in ecr.describe_images(repositoryName=repository)["imageDetails"]
            for tag in image.get("imageTags", [])}


# --- a command's result ---------------------------------------------------------------------------------------------


def failed_cleanly(result, code: int) -> bool:
    """Exit `code` with one message: Click's own exit, not an exception escaping the command."""
    return result.exit_code == code and isinstance(result.exception, SystemExit) and "Traceback" not in result.output


def resume_of(stderr: str, purpose: str = "resume with") -> list[str] | None:
    """The command a failure message offers after `purpose` (its continued lines joined), as words."""
    lines = stderr.splitlines()
    start = next((i for i, line in enumerate(lines) if line.rstrip().endswith(":") and purpose in line), None)
    if start is None:
        return None
    text = ""
    for line in lines[start + 1:]:
        text += line.strip().removesuffix("\\")
        if not line.rstrip().endswith("\\"):
            break
        text += " "
    return shlex.split(text)


# --- the sandbox ----------------------------------------------------------------------------------------------------


def recording_sandbox(monkeypatch) -> list:
    """`workflow sandbox` with a recorder for its server, returning at once instead of waiting for Ctrl-C: the list
    returned receives the SandboxConfig of each sandbox built, then "started" and "stopped" as it is."""
    from workflow_sandbox import command, server

    recorded: list = []

    class RecordingSandbox:
        endpoint = "http://127.0.0.1:4566"
        environment = {"AWS_ENDPOINT_URL": endpoint}
        releases = {"v1": "sha256:1", "v2": "sha256:2"}

        def __init__(self, config):
            recorded.append(config)

        def start(self):
            recorded.append("started")
            return self

        def stop(self):
            recorded.append("stopped")

    monkeypatch.setattr(server, "Sandbox", RecordingSandbox)
    monkeypatch.setattr(command, "wait_for_interrupt", lambda: None)
    return recorded


# --- loopback -------------------------------------------------------------------------------------------------------


def free_port() -> int:
    """A port on loopback nothing listens on (the system's choice, free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
