"""The copies tests restore instead of pushing again are restored only onto ECR as it was when copied."""

import snapshots
from conftest import REGION, new_client
from moto import mock_aws

from workflow_sandbox.images import push_image, random_layers
from workflow_sandbox.registry import Registry, simulated_ecr


def push_once(configure=lambda ecr: None) -> tuple[bool, int]:
    """One test's worth: a repository, `configure` on it, then an image pushed through snapshots.pushed; returns
    the repository's scan-on-push setting and how many parts went through UploadLayerPart."""
    with mock_aws(), simulated_ecr(Registry()) as registry:
        ecr, sent = new_client("ecr"), []
        ecr.meta.events.register("provide-client-params.ecr.UploadLayerPart", lambda params, **_: sent.append(params))
        ecr.create_repository(repositoryName="snapshot-test")
        configure(ecr)
        snapshots.pushed("test_snapshots", registry, REGION,
                         lambda: push_image(ecr, "snapshot-test", random_layers(1, 1024, seed=7), "latest"))
        assert ecr.describe_images(repositoryName="snapshot-test")["imageDetails"][0]["imageTags"] == ["latest"]
        repository = ecr.describe_repositories(repositoryNames=["snapshot-test"])["repositories"][0]
        return repository["imageScanningConfiguration"]["scanOnPush"], len(sent)


def scan_on_push(ecr):
    ecr.put_image_scanning_configuration(repositoryName="snapshot-test", imageScanningConfiguration={"scanOnPush": True})


def test_a_push_is_restored_from_its_copy_only_onto_ecr_as_it_was_when_copied():
    push_once()  # takes the copy, unless an earlier run in this process did
    assert push_once() == (False, 0)  # restored
    assert push_once(scan_on_push) == (True, 2)  # pushed (config and layer): a copy would undo the setting
