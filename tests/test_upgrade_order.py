"""An Airflow 3 cluster (scheduler, dag-processor, api-server, triggerer, two worker queues) upgraded across a schema
change: every rule of topology.UPGRADE_ORDER checked against the simulated cluster, which crash-loops any component
that meets the wrong schema, as Airflow does. Each rule's checker is shown to catch the order that breaks it."""

import json
import shlex

import pytest
import snapshots
from conftest import CLUSTER, REGION, invoke_interrupted, shared_client
from helpers import cluster_arn, describe, describe_services, flat, hold, resume_of, retag, running_digests

from workflow.airflow_schema import says_migration_required, schema_of
from workflow.topology import API_SERVER, DAG_PROCESSOR, SCHEDULER, TRIGGERER, WEBSERVER, WORKER, Step

V1, V2 = "3.2.2", "3.3.2"  # two schemas apart
REPO = "airflow-prod"
NAMES = {name: f"{CLUSTER}-{name}" for name in ("scheduler", "dag-processor", "api-server", "triggerer", "worker",
                                                 "worker-reports")}
CHECKING = ("scheduler", "dag-processor", "api-server", "triggerer")  # what exits on the wrong schema


@pytest.fixture
def airflow3(sim, clock, sim_registry):
    """Release v1 (Airflow 3.2.2) deployed, the database at its schema; v2 (Airflow 3.3.2) promoted under latest."""
    from workflow_sandbox.airflow_db import AirflowDatabase
    from workflow_sandbox.image_config import config_reader
    from workflow_sandbox.images import push_image
    from workflow_sandbox.provision import provision_cluster, running_counts
    from workflow_sandbox.server import airflow_image_config, release_layers

    ecr = sim_registry.ecr
    sim.image_config = config_reader(sim_registry)

    def build():
        ecr.create_repository(repositoryName=REPO)
        v1 = push_image(ecr, REPO, release_layers(1), "20261101T000000Z", config=airflow_image_config(V1))
        retag(ecr, REPO, v1, "latest")
        sim.database = AirflowDatabase(head=schema_of(V1))
        provision_cluster(shared_client, counts=running_counts(3), airflow=3)
        clock.sleep(60)
        ecs = shared_client("ecs")
        ecs.tag_resource(resourceArn=cluster_arn(ecs),
                         tags=[{"key": "workflow-airflow-schema", "value": V1}])  # as a recorded migration leaves it
        v2 = push_image(ecr, REPO, release_layers(2), "20261201T000000Z", config=airflow_image_config(V2))
        retag(ecr, REPO, v2, "latest")  # promoted
        return {"v1": v1["digest"], "v2": v2["digest"]}

    return {**snapshots.world("upgrade-order airflow3", sim, clock, sim_registry, REGION, build),
            "registry": sim_registry}


class Journal:
    """What happened, at each simulated transition: task launches, RUNNING, processes ending, one-offs, crashes."""

    def __init__(self, sim):
        self.sim = sim
        self.seen: dict[str, str] = {}
        self.events: list[tuple[float, str, str, str, str]] = []  # (time, event, service or one-off, task, digest)
        self.schedulers_alive: list[tuple[int, int]] = []  # (old digests alive, new digests alive) per transition
        sim.observers.append(self)

    def __call__(self, sim) -> None:
        now = sim.clock.now()
        for task in sim.tasks:
            status = task.sim_status
            if self.seen.get(task.task_arn) == status:
                continue
            self.seen[task.task_arn] = status
            owner = task.service.name.removeprefix(CLUSTER + "-") if task.service else "one-off"
            digest = next(iter(task.images.values()), "")
            self.events.append((now, status, owner, task.task_arn, digest))
        live = [t for t in sim.tasks if t.service and t.service.name == NAMES["scheduler"] and t.is_live]
        self.schedulers_alive.append((len(live), len({next(iter(t.images.values()), "") for t in live})))

    def first(self, status: str, owner: str, digest: str) -> float | None:
        return next((at for at, event, who, _, d in self.events if event == status and who == owner and d == digest),
                    None)

    def last(self, statuses: tuple[str, ...], owner: str, digest: str) -> float | None:
        times = [at for at, event, who, _, d in self.events if event in statuses and who == owner and d == digest]
        return max(times, default=None)


def violations(journal: Journal, v1: str, v2: str) -> list[str]:
    """Every rule of the upgrade order the journal shows broken."""
    found = []
    new_start = {name: journal.first("PROVISIONING", name, v2) for name in NAMES}
    migration = [(at, event) for at, event, who, _, _ in journal.events if who == "one-off"]
    migrated = max((at for at, event in migration if event in ("DEPROVISIONING", "STOPPED")), default=None)
    began = min((at for at, event in migration), default=None)
    old_ended = max(journal.last(("DEPROVISIONING", "STOPPED"), n, v1) or 0 for n in ("scheduler", "dag-processor"))
    if began is None or began < old_ended:
        found.append("the migration began while an old scheduler or dag-processor ran")
    for name in CHECKING:
        if new_start[name] is not None and (migrated is None or new_start[name] < migrated):
            found.append(f"{name} started on the new image before the migration ended")
    api_serving = journal.first("RUNNING", "api-server", v2)
    for queue in ("worker", "worker-reports"):
        if new_start[queue] is not None and (api_serving is None or new_start[queue] < api_serving):
            found.append(f"{queue} started before the new api-server served")
    if new_start["scheduler"] is not None:
        if new_start["dag-processor"] is None or new_start["scheduler"] < new_start["dag-processor"]:
            found.append("the scheduler started before the dag-processor")
        for queue in ("worker", "worker-reports"):
            old_gone = journal.last(("DEPROVISIONING", "STOPPED"), queue, v1)
            if old_gone is None or new_start["scheduler"] < old_gone:
                found.append(f"the scheduler started while an old {queue} task ran")
    if any(alive > 1 or digests > 1 for alive, digests in journal.schedulers_alive):
        found.append("two scheduler processes, or an old and a new one, at once")
    crashes = [t for t in journal.sim.tasks if t.stop_code == "EssentialContainerExited" and t.service]
    if crashes:
        found.append(f"{len(crashes)} task(s) exited ('Database migration required')")
    return found


def services(ecs) -> dict[str, dict]:
    """The cluster's services by their names without the cluster's prefix."""
    described = describe_services(ecs, *NAMES.values())
    return {name: described[service] for name, service in NAMES.items()}


def test_redeploy_migrate_upgrades_every_component_in_the_order_the_schema_allows(airflow3, sim, run, ecs):
    journal = Journal(sim)
    before = services(ecs)
    result = run("--cluster", CLUSTER, "redeploy", "--migrate", "--yes")  # no per-service flag
    assert result.exit_code == 0, result.stderr[-3000:]
    assert violations(journal, airflow3["v1"], airflow3["v2"]) == []
    after = services(ecs)
    for name in NAMES:
        assert running_digests(ecs, NAMES[name]) == {airflow3["v2"]}, name
        assert after[name]["desiredCount"] == before[name]["desiredCount"], name
    assert sim.database.head == schema_of(V2)
    tags = ecs.list_tags_for_resource(resourceArn=cluster_arn(ecs))["tags"]
    assert {"key": "workflow-airflow-schema", "value": V2} in tags
    # The order shows in the progress lines, each phase once.
    phases = [line.split("==> ", 1)[1] for line in result.stderr.splitlines() if "==> " in line]
    phases = [p for p in phases if not p.startswith("drain")]  # Airflow's API is not served here
    assert [p.split()[0] for p in phases][:3] == ["stop", "run", "redeploy"]
    assert phases[2] == "redeploy api-server"
    assert phases.index("redeploy api-server") < next(i for i, p in enumerate(phases) if "worker" in p)
    assert phases[-1].startswith("start scheduler")
    assert "(Airflow 3.2.2 -> 3.3.2)" in result.stderr  # the plan: from -> to


def test_the_resume_after_the_migration_does_not_migrate_again_even_with_workflow_migrate_set(
        airflow3, sim, clock, ecs, monkeypatch):
    """The shell says WORKFLOW_MIGRATE=1 and WORKFLOW_SNAPSHOT: the resume printed once the migration has run is
    pasted into that same shell, and neither snapshots nor migrates again."""
    from click.testing import CliRunner
    from conftest import runtime

    from workflow.cli import main

    monkeypatch.setenv("WORKFLOW_MIGRATE", "1")
    monkeypatch.setenv("WORKFLOW_SNAPSHOT", f"{CLUSTER}-db")

    first = invoke_interrupted(clock, lambda: len(sim.service(NAMES["api-server"]).deployments) == 2,
                               "--cluster", CLUSTER, "redeploy", "--yes")
    assert first.exit_code == 130, first.output
    one_offs = [t for t in sim.tasks if not t.service]
    assert len(one_offs) == 1 and sim.database.head == schema_of(V2)
    resume = resume_of(first.stderr)
    assert "--no-migrate" in resume, first.stderr
    again = CliRunner().invoke(main, resume[resume.index("--cluster"):], obj=runtime(clock))
    assert again.exit_code == 0, again.output
    assert [t for t in sim.tasks if not t.service] == one_offs  # no second migration
    assert "snapshot" not in again.stderr
    for name in NAMES:
        assert running_digests(ecs, NAMES[name]) == {airflow3["v2"]}, name


def test_promote_of_a_release_that_needs_a_migration_says_redeploy_migrate_and_that_runs_as_printed(
        airflow3, run, ecs, sim):
    from workflow_sandbox.images import push_image
    from workflow_sandbox.server import airflow_image_config, release_layers

    ecr = airflow3["registry"].ecr
    v1 = ecr.batch_get_image(repositoryName=REPO, imageIds=[{"imageDigest": airflow3["v1"]}])["images"][0]
    ecr.put_image(repositoryName=REPO, imageManifest=v1["imageManifest"], imageTag="latest",
                  imageManifestMediaType=v1["imageManifestMediaType"])  # before the promote: latest is v1
    ecr.create_repository(repositoryName="airflow-stage")
    push_image(ecr, "airflow-stage", release_layers(2), "latest", config=airflow_image_config(V2))
    promoted = run("--cluster", CLUSTER, "promote", "--yes")
    assert promoted.exit_code == 0, promoted.output
    said = " ".join(promoted.stdout.split())
    assert "Airflow 3.2.2 -> 3.3.2 needs the database migrated with it" in said
    offered = resume_of(promoted.stdout, "needs the database migrated with it")
    assert offered[-2:] == ["redeploy", "--migrate"], promoted.stdout
    redeployed = run(*offered[offered.index("--cluster"):], "--yes")
    assert redeployed.exit_code == 0, redeployed.output
    assert sim.database.head == schema_of(V2)
    for name in NAMES:
        assert running_digests(ecs, NAMES[name]) == {airflow3["v2"]}, name


def test_the_confirmation_shows_the_plan_table_whole_at_80_columns(airflow3, run, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    result = run("--cluster", CLUSTER, "redeploy", "--migrate", input="n\n")
    assert result.exit_code == 1, result.output
    rows = [line for line in result.stderr.splitlines() if line.startswith("  ") and line.strip()[:1].isdigit()]
    assert [row.split()[0] for row in rows] == [str(n) for n in range(1, 10)], result.stderr  # one line per step
    assert max(map(len, result.stderr.splitlines())) <= 80, result.stderr


def test_a_mistyped_snapshot_instance_is_refused_before_the_scheduler_stops(airflow3, run, ecs):
    result = run("--cluster", CLUSTER, "redeploy", "--migrate", "--snapshot", "nosuchdb", "--yes")
    assert result.exit_code == 2, result.output
    assert "RDS instance nosuchdb not found" in result.stderr and "nothing was changed" in result.stderr
    assert "cluster state" not in result.stderr
    assert describe(ecs, NAMES["scheduler"])["desiredCount"] == 1
    for name in NAMES:
        assert running_digests(ecs, NAMES[name]) == {airflow3["v1"]}, name


def test_a_rollback_across_the_migration_is_refused_or_downgrades_first(airflow3, sim, run, ecs, clock):
    assert run("--cluster", CLUSTER, "redeploy", "--migrate", "--yes").exit_code == 0
    again = run("--cluster", CLUSTER, "redeploy", "--dry-run")  # every service runs latest now
    assert flat(again.stdout).startswith("plan for cluster airflow-prod (dry run: nothing was changed):")
    assert "note: every service of cluster airflow-prod already runs Airflow 3.3.2 20261201T000000Z" in flat(again.stdout)
    deployed = {name: s["deployments"][0]["id"] for name, s in services(ecs).items()}
    refused = run("--cluster", CLUSTER, "rollback", "--yes")
    assert refused.exit_code == 2, refused.output
    assert f"the database is at Airflow {V2}'s schema" in refused.stderr
    assert "--downgrade-db" in refused.stderr
    assert {name: s["deployments"][0]["id"] for name, s in services(ecs).items()} == deployed  # nothing changed
    assert sim.database.head == schema_of(V2)

    mistyped = run("--cluster", CLUSTER, "rollback", "--yes", "--downgrade-db", "--snapshot", f"{CLUSTER}-dbx")
    assert mistyped.exit_code == 2, mistyped.output
    assert f"RDS instance {CLUSTER}-dbx not found" in mistyped.stderr
    assert {name: s["deployments"][0]["id"] for name, s in services(ecs).items()} == deployed  # nothing changed
    assert describe(ecs, NAMES["scheduler"])["desiredCount"] == 1

    journal = Journal(sim)
    result = run("--cluster", CLUSTER, "rollback", "--yes", "--downgrade-db", "--snapshot", f"{CLUSTER}-db")
    assert result.exit_code == 0, result.stderr[-3000:]
    assert sim.database.head == schema_of(V1)
    for name in NAMES:
        assert running_digests(ecs, NAMES[name]) == {airflow3["v1"]}, name
    crashes = [t for t in sim.tasks if t.stop_code == "EssentialContainerExited" and t.service]
    assert not crashes, "a component met the wrong schema"
    assert any(event == "RUNNING" and who == "one-off" for _, event, who, _, _ in journal.events)
    snapshots = shared_client("rds").describe_db_snapshots(DBInstanceIdentifier=f"{CLUSTER}-db")["DBSnapshots"]
    ours = [s for s in snapshots if s["DBSnapshotIdentifier"].startswith(f"{CLUSTER}-2")]  # <cluster>-<UTC time>
    assert [s["Status"] for s in ours] == ["available"]
    assert ours[0]["SnapshotType"] == "manual"
    restore = resume_of(result.stderr, "restore it with")  # where the snapshot is, whatever the shell's defaults
    assert restore[:3] == ["aws", "rds", "restore-db-instance-from-db-snapshot"]
    assert restore[restore.index("--region") + 1] == REGION
    assert json.loads(run("--cluster", CLUSTER, "-o", "json", "status").stdout)["scheduler_tasks_alive"] == 1


def test_a_migrated_redeploy_that_fails_offers_the_way_back_with_the_schema_and_it_runs(airflow3, sim, run, ecs):
    """The schema has moved when a worker's rollout fails: a plain `rollback --yes` offered then was refused, and a
    `start-scheduler` offered would have run the new scheduler beside the old workers on the new schema."""
    sim.crash_deployments(NAMES["worker-reports"])
    result = run("--cluster", CLUSTER, "-o", "json", "redeploy", "--migrate", "--yes")
    assert result.exit_code == 1, result.output
    assert sim.database.head == schema_of(V2)
    document = json.loads(result.stdout)
    assert [a.split()[-3:] for a in document["alternatives"]] == [["rollback", "--downgrade-db", "--yes"]]
    assert "start-scheduler" not in result.stdout + result.stderr
    sim.crash_deployments(NAMES["worker-reports"], exit_code=None)
    offered = shlex.split(document["alternatives"][0])
    rolled = run(*offered[offered.index("--cluster"):])
    assert rolled.exit_code == 0, rolled.stderr[-3000:]
    assert sim.database.head == schema_of(V1)
    for name in NAMES:
        assert running_digests(ecs, NAMES[name]) == {airflow3["v1"]}, name


def test_a_rollback_across_a_migration_nothing_recorded_is_refused_by_what_runs(airflow3, sim, run, ecs):
    """Migrated by other means (nothing recorded): every component runs 3.3.2, which runs only on its own schema.
    The rollback to 3.2.2 went ahead, its question saying the schema could not be checked, and crash-looped."""
    assert run("--cluster", CLUSTER, "redeploy", "--migrate", "--yes").exit_code == 0
    ecs.untag_resource(resourceArn=cluster_arn(ecs), tagKeys=["workflow-airflow-schema"])
    deployed = {name: s["deployments"][0]["id"] for name, s in services(ecs).items()}
    refused = run("--cluster", CLUSTER, "rollback", "--yes")
    assert refused.exit_code == 2, refused.output
    assert f"the database is at Airflow {V2}'s schema (the version every running component runs) and" in \
        flat(refused.stderr)
    assert "--downgrade-db" in refused.stderr
    assert {name: s["deployments"][0]["id"] for name, s in services(ecs).items()} == deployed
    assert sim.database.head == schema_of(V2)


def test_the_resume_of_a_migrated_redeploy_knows_the_schema_moved(airflow3, sim, run):
    """The resume (`redeploy --no-migrate`) failing the same way offered start-scheduler beside the old workers,
    on the migrated schema: the migration was known only to the process that ran it."""
    sim.fail_deployments(NAMES["worker"], "pull")
    first = run("--cluster", CLUSTER, "-o", "json", "redeploy", "--migrate", "--yes")
    assert first.exit_code == 1, first.output
    resume = shlex.split(json.loads(first.stdout)["resume"])
    assert resume[-3:] == ["redeploy", "--yes", "--no-migrate"]
    again = run(*resume[resume.index("--cluster"):resume.index("redeploy")], "-o", "json",
                *resume[resume.index("redeploy"):])
    assert again.exit_code == 1, again.output
    assert [a.split()[-3:] for a in json.loads(again.stdout)["alternatives"]] == [["rollback", "--downgrade-db", "--yes"]]
    assert "start-scheduler" not in again.stdout + again.stderr


def test_a_rollback_stopped_as_it_moves_latest_after_its_downgrade_says_the_scheduler_is_stopped(
        airflow3, sim, run, monkeypatch):
    """It said only where `latest` was: not that the scheduler stayed stopped on a downgraded schema."""
    from workflow.ecr import Ecr

    assert run("--cluster", CLUSTER, "redeploy", "--migrate", "--yes").exit_code == 0
    put = Ecr.put

    def put_then_interrupted(self, *args, **kwargs):
        put(self, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(Ecr, "put", put_then_interrupted)
    result = run("--cluster", CLUSTER, "rollback", "--downgrade-db", "--yes")
    assert result.exit_code == 130, result.output
    assert sim.database.head == schema_of(V1)
    assert f"; the scheduler and dag-processor are stopped and the database is at Airflow {V1}'s schema" in \
        flat(result.stderr)


def test_a_redeploy_without_the_migration_is_refused_when_the_recorded_schema_does_not_fit(airflow3, run, ecs):
    before = services(ecs)
    result = run("--cluster", CLUSTER, "redeploy", "--yes")
    assert result.exit_code == 2
    assert "needs a newer schema than the database's (Airflow 3.2.2)" in result.stderr
    assert "redeploy --migrate" in result.stderr
    assert services(ecs) == before  # refused before any change


@pytest.mark.parametrize("recorded", [True, False], ids=["recorded", "inferred"])
def test_a_scheduler_start_on_an_image_the_schema_does_not_fit_is_refused(airflow3, run, ecs, recorded):
    """The scheduler's task definition names `latest`, promoted to Airflow 3.3.2 while the database is at 3.2.2:
    started from zero, the scheduler would pull the new image and exit with 'Database migration required'. With no
    schema recorded (before this tool's first migration), every running component's 3.2.2 tells it."""
    if not recorded:
        ecs.untag_resource(resourceArn=cluster_arn(ecs), tagKeys=["workflow-airflow-schema"])
    assert run("--cluster", CLUSTER, "stop-scheduler", "--yes").exit_code == 0
    before = services(ecs)
    result = run("--cluster", CLUSTER, "start-scheduler", "--yes")
    assert result.exit_code == 2, result.output
    assert "needs a newer schema than the database's (Airflow 3.2.2" + ("" if recorded else (
        ", the version every running component runs")) + ")" in flat(result.stderr)
    assert "redeploy --migrate" in result.stderr
    assert services(ecs) == before  # refused before any change
    assert describe(ecs, NAMES["scheduler"])["desiredCount"] == 0


@pytest.mark.parametrize("recorded", [True, False], ids=["recorded", "inferred"])
def test_a_failed_migration_offers_the_way_back_that_runs(airflow3, sim, run, ecs, recorded):
    """The schema has not moved and `latest` names the new image: start-scheduler would be refused, so the way
    back offered is the rollback, and it runs as printed. Also before this tool's first migration, when no schema
    is recorded: the start-scheduler offered then crash-looped the scheduler on the new image."""
    if not recorded:
        ecs.untag_resource(resourceArn=cluster_arn(ecs), tagKeys=["workflow-airflow-schema"])
    sim.one_off_exit_code = 1
    result = run("--cluster", CLUSTER, "redeploy", "--yes", "--migrate")
    assert result.exit_code == 1, result.output
    assert "the migration failed" in result.stderr
    offered = resume_of(result.stderr, "or, to schedule again on the release the database's schema fits")
    assert offered is not None, result.stderr
    assert offered[-2:] == ["rollback", "--yes"]
    assert "start-scheduler" not in result.stderr
    assert describe(ecs, NAMES["scheduler"])["desiredCount"] == 0
    rolled = run(*offered[offered.index("--cluster"):])
    assert rolled.exit_code == 0, rolled.output
    for name in NAMES:
        assert running_digests(ecs, NAMES[name]) == {airflow3["v1"]}, name
    assert describe(ecs, NAMES["scheduler"])["desiredCount"] == 1


def one_off_running(ecs) -> bool:
    """A one-off task this tool started (the migration) is RUNNING."""
    arns = ecs.list_tasks(cluster=CLUSTER, startedBy="workflow")["taskArns"]
    return bool(arns) and any(t["lastStatus"] == "RUNNING" for t in ecs.describe_tasks(cluster=CLUSTER, tasks=arns)["tasks"])


def test_a_redeploy_stopped_while_its_migration_runs_offers_no_way_back_and_resumes_once_the_task_stopped(
        airflow3, sim, clock, ecs):
    """The migration task runs on when the command stops: its outcome is unknown, so neither the rollback (which
    would deploy 3.2.2 onto a schema that may have moved) nor a resume now (a second migration beside it) is
    offered; the resume offered once the task has stopped migrates again (a no-op) and finishes."""
    from click.testing import CliRunner
    from conftest import runtime

    from workflow.cli import main

    def migrating() -> bool:
        return one_off_running(ecs)

    first = invoke_interrupted(clock, migrating, "--cluster", CLUSTER, "redeploy", "--migrate", "--yes")
    assert first.exit_code == 130, first.output
    said = flat(first.stderr)
    assert "keeps running; stopping this command does not stop it" in said
    assert "rollback" not in said and "start-scheduler" not in said
    task = said.split("once task ", 1)[1].split()[0]
    resume = resume_of(first.stderr, f"once task {task} has stopped, resume with")
    assert resume is not None and "--migrate" in resume, first.stderr
    clock.sleep(30)
    assert not migrating()  # the task has ended: the schema has moved, and nothing recorded it
    assert sim.database.head == schema_of(V2)
    again = CliRunner().invoke(main, resume[resume.index("--cluster"):], obj=runtime(clock))
    assert again.exit_code == 0, again.output
    for name in NAMES:
        assert running_digests(ecs, NAMES[name]) == {airflow3["v2"]}, name
    tags = ecs.list_tags_for_resource(resourceArn=cluster_arn(ecs))["tags"]
    assert {"key": "workflow-airflow-schema", "value": V2} in tags


def test_the_resume_pasted_while_the_migration_still_runs_waits_for_it_and_finishes(airflow3, sim, clock, ecs):
    """Pasted at once, before the task it names has stopped, the resume started a second migration beside the
    first: it failed on Airflow's migration lock, and the command offered a way back while the schema moved."""
    from click.testing import CliRunner
    from conftest import runtime

    from workflow.cli import main

    def migrating() -> bool:
        return one_off_running(ecs)

    first = invoke_interrupted(clock, migrating, "--cluster", CLUSTER, "redeploy", "--migrate", "--yes")
    assert first.exit_code == 130, first.output
    task = flat(first.stderr).split("once task ", 1)[1].split()[0]
    resume = resume_of(first.stderr, f"once task {task} has stopped, resume with")
    assert migrating()
    again = CliRunner().invoke(main, resume[resume.index("--cluster"):], obj=runtime(clock))
    assert again.exit_code == 0, again.output
    one_offs = [t for t in sim.tasks if not t.service]
    codes = [[c.exit_code for c in t.containers] for t in one_offs]
    assert len(one_offs) == 2 and all(code == [0] for code in codes), codes
    first_task, second_task = sorted(one_offs, key=lambda t: t.created_at)
    assert second_task.created_at >= first_task.execution_stopped_at  # one after the other, never side by side
    assert f"task {task}, an earlier command's `airflow db migrate`, still runs: this one migrates once it has " \
           "stopped" in flat(again.stderr)
    assert sim.database.head == schema_of(V2)
    for name in NAMES:
        assert running_digests(ecs, NAMES[name]) == {airflow3["v2"]}, name


@pytest.mark.parametrize("recorded", [True, False], ids=["recorded", "inferred"])
def test_initialize_after_a_promote_does_not_move_the_schema_under_the_running_components(
        airflow3, sim, run, ecs, recorded):
    """The README's sequence begins with `make promote`, then `initialize`: that migrated the database to the new
    image's schema while every component still ran the old one, and each would crash at its next start."""
    if not recorded:
        ecs.untag_resource(resourceArn=cluster_arn(ecs), tagKeys=["workflow-airflow-schema"])
    before = services(ecs)
    result = run("--cluster", CLUSTER, "initialize", "--yes")
    assert result.exit_code == 2, result.output
    said = flat(result.stderr)
    assert "'airflow db migrate' would move the database from Airflow 3.2.2's schema to 3.3.2's while" in said
    assert "`redeploy --migrate` moves the schema and every component together; nothing was changed" in said
    assert sim.database.head == schema_of(V1)
    assert not [t for t in sim.tasks if not t.service]  # no one-off ran
    assert services(ecs) == before
    # With nothing running that checks the schema (a cluster stopped for it), it runs.
    for name in ("scheduler", "dag-processor", "api-server", "triggerer"):
        ecs.update_service(cluster=CLUSTER, service=NAMES[name], desiredCount=0)
    assert run("--cluster", CLUSTER, "stop-scheduler", "--yes").exit_code == 0  # waits for the tasks to be gone
    ran = run("--cluster", CLUSTER, "initialize", "--yes")
    assert ran.exit_code == 0, ran.output
    assert sim.database.head == schema_of(V2)


def test_the_seeds_web_flag_on_airflow_3_names_the_api_server(airflow3, run):
    """`--web airflow-prod-web` on a cluster whose web server is the api-server: the hint named the worker."""
    result = run("--cluster", CLUSTER, "--scheduler", NAMES["scheduler"], "--worker", NAMES["worker"], "--web",
                 f"{CLUSTER}-web", "initialize", "--yes")
    assert result.exit_code == 2, result.output
    assert flat(result.stderr) == (f"Error: services not found in cluster {CLUSTER}: {CLUSTER}-web; "
                                   f"{NAMES['api-server']} is the cluster's api-server (for {CLUSTER}-web)")


def test_a_redeploy_stopped_while_its_snapshot_is_taken_says_so(airflow3, clock, ecs):
    """It said "the running task instances are finishing", the state before the snapshot."""
    rds = shared_client("rds")

    def snapshotting() -> bool:
        return any(s["DBSnapshotIdentifier"].startswith(f"{CLUSTER}-2")  # <cluster>-<UTC time>: this command's
                   for s in rds.describe_db_snapshots(DBInstanceIdentifier=f"{CLUSTER}-db")["DBSnapshots"])

    first = invoke_interrupted(clock, snapshotting, "--cluster", CLUSTER, "redeploy", "--migrate", "--snapshot",
                               f"{CLUSTER}-db", "--yes")
    assert first.exit_code == 130, first.output
    said = flat(first.stderr)
    assert f"cluster state: the scheduler is stopped; RDS snapshot {CLUSTER}-2" in said
    assert "is being taken (RDS finishes it whatever this command does); the schema has not moved" in said
    assert "task instances are finishing" not in said.split("cluster state:")[1]


def test_a_rollout_that_fails_once_the_scheduler_start_was_requested_is_named_and_resumed_by_the_redeploy(
        airflow3, sim, run):
    """The triggerer's new tasks crashed after the scheduler's start was requested: the command said only "the
    scheduler is starting" and offered start-scheduler, which reported success while the triggerer crash-looped."""
    sim.crash_deployments(NAMES["triggerer"], after=45)  # after the workers' stability window: the scheduler starts
    result = run("--cluster", CLUSTER, "redeploy", "--migrate", "--yes")
    assert result.exit_code == 1, result.output
    said = flat(result.stderr)
    assert NAMES["triggerer"] in said.split("Error:", 1)[1]
    state = said.split("cluster state: ", 1)[1].split(" once the cause", 1)[0]
    assert state.startswith("the scheduler is starting; ") and state.endswith(" are still rolling"), state
    assert NAMES["triggerer"] in state
    resume = resume_of(result.stderr, "once the cause is fixed, resume with")
    assert resume[-3:] == ["redeploy", "--yes", "--no-migrate"], result.stderr


def test_the_start_scheduler_offered_after_a_stopped_redeploy_starts_the_dag_processor_too(airflow3, clock, ecs, run):
    """A redeploy stopped as the api-server rolls leaves the schedulers and the dag-processor at 0; the
    start-scheduler it offers started the scheduler alone, which on Airflow 3 schedules nothing new without a
    dag-processor."""
    ecr = shared_client("ecr")
    v1 = ecr.batch_get_image(repositoryName=REPO, imageIds=[{"imageDigest": airflow3["v1"]}])["images"][0]
    ecr.put_image(repositoryName=REPO, imageManifest=v1["imageManifest"], imageTag="latest")  # nothing promoted

    def rolling() -> bool:
        return len(describe(ecs, NAMES["api-server"])["deployments"]) > 1

    first = invoke_interrupted(clock, rolling, "--cluster", CLUSTER, "redeploy", "--yes")
    assert first.exit_code == 130, first.output
    offered = resume_of(first.stderr, "or, to schedule on the old workers ECS keeps running")
    assert offered is not None and offered[-1] == "start-scheduler", first.stderr
    assert describe(ecs, NAMES["dag-processor"])["desiredCount"] == 0
    started = run(*offered[offered.index("--cluster"):])
    assert started.exit_code == 0, started.output
    assert "starting dag-processor airflow-prod-dag-processor (1 task(s)), stopped with the scheduler" in \
        flat(started.stderr)
    for name in ("scheduler", "dag-processor"):
        assert describe(ecs, NAMES[name])["desiredCount"] == 1, name
        assert running_digests(ecs, NAMES[name]) == {airflow3["v1"]}, name


def test_a_redeploy_refused_by_another_operators_lease_offers_none_of_the_ways_out(airflow3, sim, clock, ecs, run):
    """A redeploy stopped as the api-server rolls leaves the scheduler stopped; another operator now holds the
    cluster to finish it. A second redeploy, refused at its first change (the workers' roll), says nothing was
    changed and offers no resume nor alternative (that state is the other operator's to finish), in text and
    in JSON."""


    first = invoke_interrupted(clock, lambda: len(sim.service(NAMES["api-server"]).deployments) == 2,
                               "--cluster", CLUSTER, "redeploy", "--migrate", "--yes")
    assert first.exit_code == 130, first.output
    hold(ecs, clock)
    result = run("--cluster", CLUSTER, "redeploy", "--yes")
    assert result.exit_code == 4, result.output
    assert "nothing was changed" in result.stderr
    assert "cluster state" not in result.stderr and "resume with" not in result.stderr, result.stderr
    assert "start-scheduler" not in result.stderr
    assert "==>" not in result.stderr  # refused before it waited on anything of the other operator's
    document = json.loads(run("--cluster", CLUSTER, "--output", "json", "redeploy", "--yes").stdout)
    assert (document["exit_code"], document["cluster_state"], document["resume"], document["alternatives"]) == \
        (4, None, None, [])
    assert describe(ecs, NAMES["scheduler"])["desiredCount"] == 0


def test_without_a_recorded_schema_the_running_version_tells_it_and_a_redeploy_without_the_migration_is_refused(
        airflow3, run, ecs):
    """Migrated by other means: nothing is recorded, but every component runs 3.2.2, which runs only on its own
    schema. The dry run shows the refusal the real run meets, and the real run changes nothing."""
    ecs.untag_resource(resourceArn=cluster_arn(ecs), tagKeys=["workflow-airflow-schema"])
    rehearsed = run("--cluster", CLUSTER, "redeploy", "--dry-run")
    assert rehearsed.exit_code == 2, rehearsed.output
    assert "a real run would be refused" in flat(rehearsed.stdout)
    result = run("--cluster", CLUSTER, "redeploy", "--yes")
    assert result.exit_code == 2, result.output
    said = flat(result.stderr)
    assert "database's (Airflow 3.2.2, the version every running component runs)" in said
    assert "redeploy --migrate" in said and "nothing was changed" in said
    assert "cluster state" not in said  # a refusal offers no recovery: there is nothing to recover from
    for name in NAMES:
        assert running_digests(ecs, NAMES[name]) == {airflow3["v1"]}, name
    assert describe(ecs, NAMES["scheduler"])["desiredCount"] == 1


def test_a_redeploy_without_the_migration_names_the_crash_and_the_way_out(airflow3, run, ecs):
    """Neither recorded nor to be told from what runs (v1's image is gone from ECR, so its version is unknown):
    the crash itself is named."""
    ecs.untag_resource(resourceArn=cluster_arn(ecs), tagKeys=["workflow-airflow-schema"])
    airflow3["registry"].ecr.batch_delete_image(repositoryName=REPO, imageIds=[{"imageDigest": airflow3["v1"]}])
    result = run("--cluster", CLUSTER, "redeploy", "--yes")
    assert result.exit_code == 1, result.output
    assert says_migration_required(result.stderr)
    assert "the image's Airflow version and the database's schema are out of step" in result.stderr
    assert "redeploy --migrate" in result.stderr


@pytest.mark.parametrize("order, broken", [
    # The api-server rolled with the workers, not before them.
    ((Step("stop", (SCHEDULER, DAG_PROCESSOR), "-"), Step("migrate", (), "-"),
      Step("roll", (API_SERVER, WEBSERVER, WORKER, TRIGGERER), "-"), Step("start", (DAG_PROCESSOR,), "-"),
      Step("start", (SCHEDULER,), "-", after=(WORKER,))), "started before the new api-server served"),
    # The scheduler started before the workers were done.
    ((Step("stop", (SCHEDULER, DAG_PROCESSOR), "-"), Step("migrate", (), "-"), Step("roll", (API_SERVER,), "-"),
      Step("start", (DAG_PROCESSOR,), "-"), Step("start", (SCHEDULER,), "-"),
      Step("roll", (WEBSERVER, WORKER, TRIGGERER), "-", after=(API_SERVER,))), "while an old worker"),
    # The scheduler started before the dag-processor.
    ((Step("stop", (SCHEDULER, DAG_PROCESSOR), "-"), Step("migrate", (), "-"), Step("roll", (API_SERVER,), "-"),
      Step("roll", (WEBSERVER, WORKER, TRIGGERER), "-", after=(API_SERVER,)),
      Step("start", (SCHEDULER,), "-", after=(WORKER,)), Step("start", (DAG_PROCESSOR,), "-")),
     "the scheduler started before the dag-processor"),
    # The migration before the old scheduler and dag-processor were stopped.
    ((Step("migrate", (), "-"), Step("stop", (SCHEDULER, DAG_PROCESSOR), "-"), Step("roll", (API_SERVER,), "-"),
      Step("roll", (WEBSERVER, WORKER, TRIGGERER), "-", after=(API_SERVER,)), Step("start", (DAG_PROCESSOR,), "-"),
      Step("start", (SCHEDULER,), "-", after=(WORKER,))), "the migration began while an old scheduler"),
    # The api-server rolled before the migration: it meets the old schema and crash-loops.
    ((Step("stop", (SCHEDULER, DAG_PROCESSOR), "-"), Step("roll", (API_SERVER,), "-"), Step("migrate", (), "-"),
      Step("roll", (WEBSERVER, WORKER, TRIGGERER), "-", after=(API_SERVER,)), Step("start", (DAG_PROCESSOR,), "-"),
      Step("start", (SCHEDULER,), "-", after=(WORKER,))), "api-server started on the new image before the migration"),
])
def test_each_rule_catches_the_order_that_breaks_it(airflow3, sim, run, monkeypatch, order, broken):
    monkeypatch.setattr("workflow.operations.UPGRADE_ORDER", order)
    journal = Journal(sim)
    run("--cluster", CLUSTER, "--timeout", "300", "redeploy", "--migrate", "--yes")  # may fail: the order is wrong
    assert any(broken in v for v in violations(journal, airflow3["v1"], airflow3["v2"]))


def test_status_and_releases_name_each_images_airflow_version_and_the_services_left_alone(airflow3, run, ecs):
    definition = describe(ecs, NAMES["worker"])["taskDefinition"]
    ecs.create_service(cluster=CLUSTER, serviceName="statsd-exporter", taskDefinition=definition, desiredCount=0)
    status = run("--cluster", CLUSTER, "status")
    assert status.exit_code == 0, status.output
    assert any(V1 in line for line in status.stdout.splitlines() if line.startswith("scheduler"))  # its image's
    assert "not managed (no Airflow role by tag or name): statsd-exporter" in status.stdout
    releases = run("--cluster", CLUSTER, "releases")
    assert releases.exit_code == 0, releases.output
    stamps = {line.split()[0]: line for line in releases.stdout.splitlines() if line[:8].isdigit()}
    assert V1 in stamps["20261101T000000Z"]
    assert V2 in stamps["20261201T000000Z"]
