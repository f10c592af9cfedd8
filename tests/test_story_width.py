"""The operator story of scripts/demo.sh, run in-process against the simulated Airflow 3 cluster, fits 80 columns:
every progress line and every table row, in a terminal and in a CI log; at a wide terminal nothing wraps that fits.
"""

import re

import pytest
from conftest import CLUSTER, shared_client
from helpers import retag

from workflow.airflow_schema import schema_of

V1, V2 = "3.2.2", "3.3.2"
RELEASED = "20251101T000000Z"  # v1's stamp: before the simulated clock's first day, when promote stamps v2
STAMP = re.compile(r"^\d\d:\d\d:\d\dZ +\+\d+s ")
SERVICES = ["--cluster", CLUSTER, "--scheduler", f"{CLUSTER}-scheduler", "--worker", f"{CLUSTER}-worker",
            "--web", f"{CLUSTER}-api-server"]
STORY = [  # scripts/demo.sh, step by step: (arguments, exit code)
    (["--cluster", CLUSTER, "status"], 0),
    (["promote", "--yes"], 0),
    (["--cluster", CLUSTER, "redeploy", "--dry-run", "--migrate"], 0),
    ([*SERVICES, "redeploy", "--yes", "--migrate", "--snapshot", f"{CLUSTER}-db"], 0),
    (["--cluster", CLUSTER, "status"], 0),
    (["--cluster", CLUSTER, "releases"], 0),
    (["--cluster", CLUSTER, "rollback", "--yes"], 2),  # refused across the migration
    (["--cluster", CLUSTER, "rollback", "--yes", "--downgrade-db", "--snapshot", f"{CLUSTER}-db"], 0),
    (["--cluster", CLUSTER, "status"], 0),
    (["--cluster", CLUSTER, "stop-scheduler", "--yes"], 0),
    (["--cluster", CLUSTER, "start-scheduler"], 0),
    (["--cluster", CLUSTER, "initialize", "--yes", "--from", "scheduler"], 0),
]


@pytest.fixture
def sandbox(sim, clock, monkeypatch, sim_registry):
    """As `workflow sandbox` starts: release v1 (Airflow 3.2.2) in airflow-prod under `latest` and a stamp, deployed,
    the database at its schema; v2 (Airflow 3.3.2) staged in airflow-stage; Airflow's API following the cluster."""
    from workflow_sandbox.airflow_api import FakeAirflowApi
    from workflow_sandbox.airflow_db import AirflowDatabase
    from workflow_sandbox.airflow_link import SimulatedAirflow, Work
    from workflow_sandbox.image_config import config_reader
    from workflow_sandbox.images import push_image
    from workflow_sandbox.provision import provision_cluster, running_counts
    from workflow_sandbox.server import airflow_image_config, release_layers

    ecr = sim_registry.ecr
    for repository in ("airflow-stage", "airflow-prod"):
        ecr.create_repository(repositoryName=repository)
    v1 = push_image(ecr, "airflow-prod", release_layers(1), RELEASED, config=airflow_image_config(V1))
    retag(ecr, "airflow-prod", v1, "latest")
    push_image(ecr, "airflow-stage", release_layers(2), "latest", config=airflow_image_config(V2))
    sim.image_config = config_reader(sim_registry)
    sim.database = AirflowDatabase(
        head=schema_of(V1),
        url=f"postgresql+psycopg2://airflow:***@{CLUSTER}-db.sandbox.us-east-1.rds.amazonaws.com:5432/airflow")
    provision_cluster(shared_client, counts=running_counts(3), airflow=3, db_instance=True)
    clock.sleep(600)
    roles = {role: [f"{CLUSTER}-{role}"] for role in ("scheduler", "dag-processor", "triggerer")}
    model = SimulatedAirflow(sim, roles, [f"{CLUSTER}-worker", f"{CLUSTER}-worker-reports"], Work(seconds=20),
                             major=3, version=V1, users={"admin": "sandbox"})
    server = FakeAirflowApi(model).start()
    for name, value in {"WORKFLOW_AIRFLOW_URL": server.url, "WORKFLOW_AIRFLOW_USERNAME": "admin",
                        "WORKFLOW_AIRFLOW_PASSWORD": "sandbox", "WORKFLOW_POLL_INTERVAL": "1",
                        "WORKFLOW_STABILITY_WINDOW": "5"}.items():
        monkeypatch.setenv(name, value)
    try:
        yield
    finally:
        server.stop()


def tell(run) -> list[tuple[list[str], object]]:
    """Each step of the story, run as the operator types it; every step ends as the demo expects."""
    results = []
    for args, code in STORY:
        result = run(*args)
        assert result.exit_code == code, (args, result.stderr[-3000:])
        results.append((args, result))
    return results


def unbreakable(line: str) -> bool:
    """A line that cannot be narrower: one word (an ARN, a URL) longer than the room its indent leaves."""
    return " " not in STAMP.sub("", line).strip()


def test_every_line_of_the_story_fits_80_columns(sandbox, run, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    results = tell(run)
    wide = [line for _, result in results for stream in (result.stdout, result.stderr)
            for line in stream.splitlines() if len(line) > 80]
    # Only the database URL in the migration's own log lines is longer than a line: one word, kept whole.
    assert wide
    assert all(unbreakable(line) and line.lstrip().startswith("url=postgresql") for line in wide), wide
    assert [line for _, result in results for line in needless(result.stderr, 80)] == []
    # What the lines say is still there: the stamp, short deployment ids, the plan's images, the tables' rows.
    stderr = "".join(result.stderr for _, result in results)
    stdout = "".join(result.stdout for _, result in results)
    assert [line for line in stderr.splitlines() if not (STAMP.match(line) or line.startswith((" ", "Error: ")))] == []
    assert re.search(r"^\d\d:\d\d:\d\dZ +\+\d+s worker: 3/3 running(, \d pending)? \| deploy \d{6} ", stderr, re.M)
    assert re.search(r"3\.2\.2 20\d{6}T\d{6}Z +3\.3\.2 20\d{6}T\d{6}Z", stdout)  # the dry run's plan, a row a step
    assert re.search(r"^worker-reports +1 +1 +0 +\d{6} +COMPLETED$", stdout, re.M)
    assert "url=postgresql+psycopg2://airflow:***@airflow-prod-db.sandbox" in stderr  # a long token, whole


def needless(text: str, width: int) -> list[str]:
    """The continued lines whose first word would have fitted on the line before: wrapped for nothing. The lines a
    line ending in `:` introduces (a table, a command to paste) are lines of their own."""
    found, own = [], False
    lines = text.splitlines()
    for before, line in zip(lines, lines[1:], strict=False):
        if STAMP.match(line) or line.startswith("Error: ") or not line.strip():
            own = False
            continue
        own = own or before.rstrip().endswith(":")
        if not own and len(before) + 1 + len(line.split()[0]) <= width:
            found.append(line)
    return found


def test_a_wide_terminal_wraps_nothing_that_fits(sandbox, run, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    results = tell(run)
    for args, result in results:
        assert needless(result.stderr, 250) == [], args
        assert max((len(line) for line in result.stdout.splitlines()), default=0) <= 250
    dry_run = results[2][1].stdout.splitlines()
    assert len(dry_run) == 1 + 2 + 9  # the summary, the header, one row per step
    releases = results[5][1].stdout.splitlines()
    assert len(releases) == 1 + 2 + 2  # the summary, the header, one row per release
    assert sum(len(line) > 80 for _, result in results for line in result.stderr.splitlines()) > 50
