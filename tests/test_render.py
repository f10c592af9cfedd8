"""Lines and tables that fit the width: wrapping at spaces with a hanging indent, words that stay whole, colour that
takes no room; the progress stamp and the names it shortens; tables that give way column by column."""

import re
from datetime import UTC, datetime

import click
import pytest

from workflow.ecs import Deployment, Service
from workflow.poller import Poller, duration, outlook
from workflow.progress import Reporter, counts, visible, width_of, wrap, wrap_message
from workflow.render import fitted, services_table

ARN = "arn:aws:ecs:us-east-1:123456789012:task/airflow-prod/cdc9d397-475d-42c8-8270-a3274f1cc5d7"
URL = "url=postgresql+psycopg2://airflow:***@airflow-prod-db.sandbox.us-east-1.rds.amazonaws.com:5432/airflow"
WALL = datetime(2026, 12, 1, 21, 48, 53, tzinfo=UTC)


class Clock:
    def __init__(self):
        self.at = 100.0

    def __call__(self) -> float:
        return self.at


def reporter(width: int = 80, color: bool = False) -> tuple[Reporter, list[str], Clock]:
    written: list[str] = []
    clock = Clock()
    return Reporter(clock, write=written.append, color=color, now=lambda: WALL, width=width), written, clock


def service(name: str, cluster: str = "airflow-prod", running: int = 3, pending: int = 0, old: int = 0) -> Service:
    new = Deployment("ecs-svc/5920101502284177151", "PRIMARY", "td:2", 3, 0, pending, 0, "IN_PROGRESS", None)
    older = tuple(Deployment(f"ecs-svc/11111111111111111{n}", "ACTIVE", "td:1", 3, 3, 0, 0, "COMPLETED", None)
                  for n in range(old))
    return Service(name, f"arn:aws:ecs:us-east-1:123456789012:service/{cluster}/{name}", "ACTIVE", 3, running, pending,
                   "td:2", (new, *older))


# --- wrapping ----------------------------------------------------------------------------------------------------


def test_a_long_line_wraps_at_spaces_with_a_hanging_indent():
    text = "the quick brown fox jumps over the lazy dog " * 4
    pieces = wrap(text.strip(), 40, first=10, indent=10)
    assert len(pieces) > 1
    assert 10 + len(pieces[0]) <= 40
    assert all(10 + len(piece) <= 40 for piece in pieces)
    assert " ".join(pieces) == text.strip()  # nothing lost, nothing split


def test_an_arn_or_url_longer_than_the_room_stays_whole_on_a_line_of_its_own():
    pieces = wrap(f"started task {ARN} and read {URL} again", 60, first=16, indent=16)
    assert ARN in pieces
    assert URL in pieces
    assert pieces[0] == "started task"
    assert pieces[-1] == "again"
    assert wrap(URL, 40, first=16, indent=16) == [URL]  # a line of one word: nothing to break


def test_spaces_inside_a_piece_are_kept_as_they_were():
    line = "scheduler | 2026-12-01T22:07:53Z [info     ] Migrating the Airflow database, as Airflow aligns it"
    assert wrap(line, 200) == [line]
    assert wrap(line, 60, indent=4) == ["scheduler | 2026-12-01T22:07:53Z [info     ] Migrating the",
                                        "Airflow database, as Airflow aligns it"]


def test_colour_codes_take_no_room():
    plain, _, _ = reporter(60)
    colored, _, _ = reporter(60, color=True)
    text = "==> redeploy airflow-prod-worker, airflow-prod-worker-reports and airflow-prod-triggerer now"
    plain_out, color_out = [], []
    plain._write, colored._write = plain_out.append, color_out.append
    plain.line(text, {"bold": True})
    colored.line(text, {"bold": True})
    assert "\x1b[" in color_out[0]
    assert "\x1b[" not in plain_out[0]
    assert [visible(line) for line in color_out[0].split("\n")] == [len(line) for line in plain_out[0].split("\n")]
    assert all(visible(line) <= 60 for line in color_out[0].split("\n"))
    words = " ".join(click.style("word", fg="red") for _ in range(20))
    assert [visible(p) for p in wrap(words, 30)] == [len(p) for p in wrap(" ".join(["word"] * 20), 30)]


def test_no_color_and_no_terminal_mean_no_colour(monkeypatch):
    from workflow.progress import use_color

    class Terminal:
        def isatty(self):
            return True

    assert use_color(Terminal())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_color(Terminal())


def test_the_width_is_columns_else_the_terminals_else_80(monkeypatch):
    class Pipe:
        def isatty(self):
            return False

    monkeypatch.delenv("COLUMNS", raising=False)
    assert width_of(Pipe()) == 80  # a CI log
    monkeypatch.setenv("COLUMNS", "132")
    assert width_of(Pipe()) == 132
    monkeypatch.setenv("COLUMNS", "nonsense")
    assert width_of(Pipe()) == 80


def test_an_error_wraps_under_its_text_and_leaves_a_command_to_paste_whole():
    command = "    workflow --cluster airflow-prod --region eu-west-1 redeploy --yes --migrate --migrate-command \\\n" \
              "      'airflow db migrate'"
    message = ("the database is at Airflow 3.3.2's schema and 20261101T000000Z (sha256:da15100c1f34) is Airflow "
               "3.2.2: its scheduler, dag-processor, api-server and triggerer would exit\n"
               "  cluster state: the scheduler is stopped; web and worker are being redeployed by the command\n"
               f"  once the cause is fixed, resume with:\n{command}")
    wrapped = wrap_message(message, 80)
    lines = wrapped.split("\n")
    assert all(len(line) + (7 if n == 0 else 0) <= 80 for n, line in enumerate(lines) if not line.startswith("    w"))
    assert re.match(r" {7}\S", lines[1])  # under the text after "Error: "
    state = next(n for n, line in enumerate(lines) if line.startswith("  cluster state:"))
    assert lines[state + 1].startswith("    ")
    assert not lines[state + 1].startswith("     ")
    assert wrapped.endswith(command)  # its own continued lines, as the shell takes them
    assert re.sub(r"\s+", " ", wrapped) == re.sub(r"\s+", " ", message)
    assert wrap_message("short", 80) == "short"


# --- the reporter ------------------------------------------------------------------------------------------------


def test_the_stamp_carries_utc_wall_clock_time_and_seconds_since_the_start_in_16_columns():
    report, written, clock = reporter()
    clock.at += 7.4
    report.line("hello")
    clock.at += 600
    report.line("later")
    assert written == ["21:48:53Z   +7s hello", "21:48:53Z +607s later"]


def test_a_service_is_named_without_the_clusters_prefix_once_seen():
    report, written, _ = reporter(200)
    report.line("==> stop scheduler airflow-prod-scheduler")  # not seen yet: as it is
    for name in ("scheduler", "dag-processor", "worker", "worker-reports"):
        report.learn(f"arn:aws:ecs:us-east-1:123456789012:service/airflow-prod/airflow-prod-{name}", f"airflow-prod-{name}")
    report.line("==> stop scheduler airflow-prod-scheduler and dag-processor airflow-prod-dag-processor")
    report.line("==> redeploy airflow-prod-worker, airflow-prod-worker-reports; Airflow reports airflow-prod-scheduler")
    report.line("run airflow db migrate in scheduler (airflow-prod-scheduler:1) on airflow-prod-db")
    report.line(f"{ARN} service/airflow-prod/airflow-prod-worker")
    texts = [line[16:] for line in written]
    assert texts == [
        "==> stop scheduler airflow-prod-scheduler",
        "==> stop scheduler and dag-processor",
        "==> redeploy worker, worker-reports; Airflow reports scheduler",
        "run airflow db migrate in scheduler (airflow-prod-scheduler:1) on airflow-prod-db",  # a task definition
        f"{ARN} service/airflow-prod/airflow-prod-worker",  # inside an ARN
    ]


def test_a_service_of_another_naming_keeps_its_name():
    report, written, _ = reporter()
    report.service(service("celery-main"))
    assert written[0][16:].startswith("celery-main: ")


def test_the_deployment_count_line_is_compact():
    assert counts(service("w"), service("w").primary) == "3/3 running | deploy 177151 IN_PROGRESS 0/3"
    busy = service("w", running=3, pending=3, old=1)
    assert counts(busy, busy.primary) == "3/3 running, 3 pending | deploy 177151 IN_PROGRESS 0/3 | 1 old draining"
    report, written, _ = reporter(120)
    report.service(service("airflow-prod-worker", pending=3, old=1))
    assert written == ["21:48:53Z   +0s worker: 3/3 running, 3 pending | deploy 177151 IN_PROGRESS 0/3 | 1 old "
                       "draining"]


def test_progress_shortens_digests_and_keeps_a_command_on_its_own_lines():
    report, written, _ = reporter()
    digest = "sha256:" + "85c6cfa20591d9575cc5fdfc30805f00bb322a425254e19d501f5cc6bd55fb6f"
    report.line(f"copied {digest} (262144 bytes)")
    report.line("snapshot s is available; restore it with:\n    aws rds restore-db-instance-from-db-snapshot \\\n"
                "      --db-snapshot-identifier s")
    assert written[0] == "21:48:53Z   +0s copied sha256:85c6cfa20591 (262144 bytes)"
    assert written[1].split("\n")[1:] == [" " * 16 + "    aws rds restore-db-instance-from-db-snapshot \\",
                                          " " * 16 + "      --db-snapshot-identifier s"]


# --- tables ------------------------------------------------------------------------------------------------------


def test_a_table_wraps_its_wordy_column_then_drops_the_least_useful_one():
    rows = [["20261201T220724Z", "85c6cfa20591", "2026-12-01 22:07:24Z", "768.7 KiB",
             "scheduler, dag-processor, triggerer, api-server, worker, worker-reports"]]
    headers = ["stamp", "digest", "pushed at", "size", "running on"]
    wide = fitted(rows, headers, 200, wrap=(4,), drop=(3, 2))
    assert len(wide.split("\n")) == 3
    assert "768.7 KiB" in wide
    narrow = fitted(rows, headers, 80, wrap=(4,), drop=(3, 2))
    assert max(len(line) for line in narrow.split("\n")) <= 80
    assert "worker-reports" in narrow
    assert "dag-processor," in narrow  # whole words, wrapped in their cell
    tight = fitted(rows, headers, 60, wrap=(4,), drop=(3, 2))
    assert max(len(line) for line in tight.split("\n")) <= 60
    assert "KiB" not in tight
    assert "pushed at" not in tight


def test_the_services_table_names_services_without_the_prefix_and_deployments_by_their_tail():
    table = services_table([service("airflow-prod-scheduler"), service("airflow-prod-worker-reports")], 80)
    assert table.split("\n")[2].split()[:1] == ["scheduler"]
    assert "177151" in table
    assert "ecs-svc" not in table
    assert max(len(line) for line in table.split("\n")) <= 80


# --- the heartbeat -----------------------------------------------------------------------------------------------


def test_a_heartbeat_says_what_is_left_when_the_wait_knows():
    notices: list[str] = []
    now = [0.0]
    poller = Poller(lambda: now[0], lambda s: now.__setitem__(0, now[0] + s), 1.0, 900.0, notice=notices.append)
    checks = iter([None] * 20 + [True])
    with outlook(lambda: "start the scheduler: its tasks start, then the 30s stability window"):
        poller.until(lambda: next(checks), lambda: "worker deploy 177151 (complete; stable for 10 of 30s)")
    assert notices == ["waiting for worker deploy 177151 (complete; stable for 10 of 30s): 15s so far, gives up in "
                       "14m45s; then start the scheduler: its tasks start, then the 30s stability window"]
    assert [duration(s) for s in (0.4, 59, 60, 3599, 3600)] == ["0s", "59s", "1m00s", "59m59s", "1h00m"]


@pytest.mark.parametrize("width", [50, 60, 80, 120])
def test_every_wrapped_progress_line_fits(width):
    report, written, _ = reporter(width)
    report.line("airflow-prod-worker-reports: event: has started 3 tasks: (task 001eaf16) (task bf38ad8e) "
                "(task 5c41e45a). " * 3)
    assert all(len(line) <= width for line in written[0].split("\n"))
    assert all(line.startswith(" " * 16) for line in written[0].split("\n")[1:])
