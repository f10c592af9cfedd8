"""What tests/conftest.py promises the tests: commands share clients only while those are as good as new."""

from conftest import CLUSTER, NAMES, _clients

from workflow.aws import AwsConfig


def test_a_command_gets_new_clients_once_a_retry_has_spent_some_of_the_old_ones_quota(sim, cluster):
    kept = _clients(AwsConfig())
    kept("ecs").describe_clusters(clusters=[CLUSTER])
    assert _clients(AwsConfig()) is kept

    sim.faults.inject("DescribeClusters", "throttle")
    kept("ecs").describe_clusters(clusters=[CLUSTER])  # the second attempt succeeds
    assert sim.faults.count["throttle"] == 1
    renewed = _clients(AwsConfig())
    assert renewed is not kept
    assert _clients(AwsConfig()) is renewed
    assert _clients(AwsConfig(region="eu-west-1")) is not renewed


def test_every_command_builds_its_clients_through_the_shared_factory(cluster, run):
    config = AwsConfig(timeout=900.0)  # what a command's options make of the defaults
    kept = _clients(config)
    assert run(*NAMES, "status").exit_code == 0
    assert kept._clients
    assert _clients(config) is kept  # the command built its ECS client there
