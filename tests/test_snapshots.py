"""The copies tests restore instead of pushing again are restored only onto ECR as it was when copied."""

import snapshots
from conftest import REGION, new_client
from helpers import describe
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


def test_an_airflow_3_cluster_is_restored_with_its_load_balancer_and_database_and_runs_on():
    """The copy holds moto's ELBv2 and RDS backends too; a restored cluster deploys as a provisioned one does."""
    from conftest import CLUSTER, shared_client

    from workflow_sandbox.clock import FakeClock
    from workflow_sandbox.hooks import simulated_ecs
    from workflow_sandbox.provision import provision_cluster, running_counts
    from workflow_sandbox.simulator import Simulation, Timings

    for attempt in ("provisioned", "restored"):
        with mock_aws():
            clock = FakeClock()
            sim = Simulation(clock, Timings(provision=2, pull=5, drain=3, stop=2, one_off_run=6))
            provisioned = []

            def provision(clock=clock, provisioned=provisioned):
                provisioned.append(provision_cluster(shared_client, counts=running_counts(3), airflow=3))
                clock.sleep(60)
                return provisioned[-1]

            with simulated_ecs(sim):
                result = snapshots.provisioned("test_snapshots-airflow3", sim, clock, REGION, provision)
                assert bool(provisioned) == (attempt == "provisioned"), attempt
                ecs, elbv2, rds = (shared_client(name) for name in ("ecs", "elbv2", "rds"))
                (group,) = elbv2.describe_target_groups(TargetGroupArns=[result.target_group])["TargetGroups"]
                assert group["LoadBalancerArns"] == [result.load_balancer], attempt
                (database,) = rds.describe_db_instances(DBInstanceIdentifier=f"{CLUSTER}-db")["DBInstances"]
                assert database["Engine"] == "postgres", attempt
                ecs.update_service(cluster=CLUSTER, service=f"{CLUSTER}-worker", forceNewDeployment=True)
                clock.sleep(60)
                (deployment,) = describe(ecs, f"{CLUSTER}-worker")["deployments"]
                assert (deployment["rolloutState"], deployment["runningCount"]) == ("COMPLETED", 3), attempt
