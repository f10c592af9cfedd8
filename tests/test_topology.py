"""Which service plays which Airflow role, and the order an upgrade moves them in."""

import pytest

from workflow.topology import (
    API_SERVER,
    DAG_PROCESSOR,
    SCHEDULER,
    TRIGGERER,
    UPGRADE_ORDER,
    WEBSERVER,
    WORKER,
    assign,
    role_by_name,
    role_of,
)

CLUSTER = "airflow-prod"


@pytest.mark.parametrize("name, role", [
    ("airflow-prod-scheduler", SCHEDULER),
    ("airflow-prod-dag-processor", DAG_PROCESSOR),
    ("airflow-prod-triggerer", TRIGGERER),
    ("airflow-prod-api-server", API_SERVER),
    ("airflow-prod-web", WEBSERVER),
    ("airflow-prod-webserver", WEBSERVER),
    ("airflow-prod-worker", WORKER),
    ("airflow-prod-worker-reports", WORKER),
    ("airflow-prod-worker-", None),
    ("airflow-prod-flower", None),
    ("airflow-stage-scheduler", None),
    ("arn:aws:ecs:us-east-1:123456789012:service/airflow-prod/airflow-prod-worker-etl_2", WORKER),
])
def test_the_naming_convention_gives_roles(name, role):
    assert role_by_name(f"arn:aws:ecs:us-east-1:123456789012:cluster/{CLUSTER}", name) == role


def test_flags_then_tags_then_names_and_the_rest_is_left_alone():
    listed = {
        "airflow-prod-scheduler": {},
        "sched-b": {"airflow-role": "scheduler"},
        "api": {"airflow-role": "api-server"},
        "airflow-prod-worker": {"airflow-role": "triggerer"},  # the tag wins over the name
        "airflow-prod-worker-reports": {},
        "metrics": {},
        "odd": {"airflow-role": "flower"},  # not a role: left alone, and named as not managed
    }
    topology = assign(CLUSTER, listed, [(WORKER, "custom-worker")])
    assert topology.by_role == {
        SCHEDULER: ["airflow-prod-scheduler", "sched-b"],
        TRIGGERER: ["airflow-prod-worker"],
        API_SERVER: ["api"],
        WORKER: ["airflow-prod-worker-reports", "custom-worker"],
    }
    assert topology.unmanaged == ("metrics", "odd")
    assert [c.how for c in topology.components if c.service in ("custom-worker", "api", "airflow-prod-scheduler")] \
        == ["name", "tag", "flag"]
    assert topology.is_airflow3


@pytest.mark.parametrize("explicit, said", [
    ([(SCHEDULER, "airflow-prod-worker")], "airflow-prod-worker was named as the scheduler, but its tag "
     "airflow-role=worker makes it the worker; nothing was changed: the scheduler service is airflow-prod-scheduler or "
     "airflow-prod-scheduler-b "
     "(if the tag is wrong, correct it first)"),
    ([(WORKER, "airflow-prod-scheduler-b")], "airflow-prod-scheduler-b was named as the worker, but"),
    ([(WORKER, "airflow-prod-scheduler")], "airflow-prod-scheduler was named as the worker, but its name makes it "
     "the scheduler; nothing was changed: the worker service is airflow-prod-worker (if it really is the worker, "
     "tag it airflow-role=worker)"),
    ([(SCHEDULER, "x"), (WORKER, "x")], "x is named as both the scheduler and the worker"),
])
def test_a_flag_that_contradicts_the_services_own_role_is_refused(explicit, said):
    """`--scheduler <the worker>` would have stop-scheduler scale the worker fleet to zero."""
    from workflow.errors import Refused

    listed = {"airflow-prod-scheduler": {}, "airflow-prod-scheduler-b": {"airflow-role": "scheduler"},
              "airflow-prod-worker": {"airflow-role": "worker"}, "x": {}}
    with pytest.raises(Refused) as refused:
        assign(CLUSTER, listed, explicit)
    assert str(refused.value).startswith(said)


def test_a_flag_agrees_with_a_tag_of_either_web_role_and_names_what_nothing_else_names():
    listed = {"airflow-prod-api-server": {}, "web": {"airflow-role": "webserver"}, "custom": {}}
    topology = assign(CLUSTER, listed, [(WEBSERVER, "airflow-prod-api-server"), (API_SERVER, "web"),
                                        (SCHEDULER, "custom")])
    assert topology.by_role == {SCHEDULER: ["custom"], API_SERVER: ["web"], WEBSERVER: ["airflow-prod-api-server"]}


def test_the_seed_shape_is_three_roles_and_airflow_2():
    topology = assign(CLUSTER, {f"{CLUSTER}-{n}": {} for n in ("scheduler", "worker", "web")})
    assert topology.by_role == {SCHEDULER: [f"{CLUSTER}-scheduler"], WEBSERVER: [f"{CLUSTER}-web"],
                                WORKER: [f"{CLUSTER}-worker"]}
    assert not topology.is_airflow3
    assert topology.unmanaged == ()


def test_roles_as_typed():
    assert role_of("web") == WEBSERVER
    assert role_of("dag-processor") == DAG_PROCESSOR
    with pytest.raises(ValueError, match="roles are scheduler, dag-processor"):
        role_of("flower")


def test_the_upgrade_order_stops_migrates_rolls_the_api_server_first_and_starts_the_scheduler_last():
    actions = [(step.action, step.roles) for step in UPGRADE_ORDER]
    assert actions[0] == ("stop", (SCHEDULER, DAG_PROCESSOR))
    assert [a[0] for a in actions[1:3]] == ["drain", "migrate"]
    assert actions.index(("roll", (API_SERVER,))) < next(i for i, a in enumerate(actions) if a[0] == "roll" and WORKER in a[1])
    assert actions[-1] == ("start", (SCHEDULER,))
    assert all(step.why for step in UPGRADE_ORDER)
