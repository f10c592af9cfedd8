"""A real Airflow 3.3.2 on loopback for the contract tests: api-server, scheduler, dag-processor and triggerer on
SQLite in a temporary AIRFLOW_HOME, from the virtualenv scripts/airflow-contract-env prepares (never the project's).

One Dag, `contract_probe`, runs once on its own: its task `hold` stays running (it ends when its worker goes away,
or after four minutes), so the API has a running task instance to list. The simple auth manager knows one user,
`operator` (role viewer), whose password the test writes into the passwords file the manager reads.
"""

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "airflow-contract-env"
VERSION = "3.3.2"
USER = "operator"
COMPONENTS = ("scheduler", "dag-processor", "triggerer")
START_SECONDS = 120.0
STOP_GRACE_SECONDS = 3.0  # the database is thrown away: a graceful stop is worth little waiting

DAG = '''
import os
import time
from datetime import datetime, timedelta

from airflow.sdk import dag, task


@dag(schedule="@once", start_date=datetime(2024, 1, 1), catchup=False,
     default_args={"retries": 3, "retry_delay": timedelta(seconds=1)})
def contract_probe():
    @task
    def hold():
        # Runs until its supervisor goes away (the test's teardown), four minutes at most.
        parent, until = os.getppid(), time.monotonic() + 240
        while os.getppid() == parent and time.monotonic() < until:
            time.sleep(0.5)

    hold()


contract_probe()
'''


def prepare_venv() -> tuple[Path | None, str]:
    """The virtualenv's path, installing it when missing; or None and why it cannot be had."""
    try:
        done = subprocess.run([str(SCRIPT)], capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as error:
        return None, f"scripts/airflow-contract-env did not run: {error}"
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip() and "is ignored" not in line]
        return None, f"scripts/airflow-contract-env failed ({done.returncode}): " + " | ".join(lines[-3:])
    return Path(done.stdout.strip().splitlines()[-1]), ""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _end_with_parent() -> None:
    """In the child before exec: SIGTERM when the test process dies without its teardown (killed, timed out)."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _session_members(leader: int) -> list[int]:
    """Processes in the session `leader` started (it and every descendant that did not start a session of its own)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # Fields after the command name, which may hold spaces and parentheses: state ppid pgrp session ...
        if int(stat.rsplit(")", 1)[1].split()[3]) == leader:
            members.append(int(entry))
    return members


@dataclass
class RealAirflow:
    venv: Path
    home: Path
    port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12), repr=False)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items()
                if not k.startswith(("AIRFLOW", "PIPENV", "VIRTUAL_ENV", "PYTHON", "WORKFLOW_", "AWS_"))}
        return {
            **keep,
            "PATH": f"{self.venv / 'bin'}{os.pathsep}{keep.get('PATH', '')}",
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.home / "dags"),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:viewer",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "passwords.json"),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            # A loaded machine (the rest of the test suite beside it) answers the task's first calls slowly.
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        }

    def start(self) -> "RealAirflow":
        (self.home / "dags").mkdir(parents=True)
        (self.home / "dags" / "contract_probe.py").write_text(DAG)
        (self.home / "passwords.json").write_text(f'{{"{USER}": "{self.password}"}}')
        env = self.env()
        started = time.monotonic()
        migrate = subprocess.run([str(self.venv / "bin" / "airflow"), "db", "migrate"], env=env, capture_output=True,
                                 text=True, timeout=300, stdin=subprocess.DEVNULL)
        if migrate.returncode != 0:
            raise RuntimeError(f"airflow db migrate exited {migrate.returncode}:\n{migrate.stdout[-2000:]}"
                               f"{migrate.stderr[-2000:]}")
        self.timings["db migrate"] = time.monotonic() - started
        # The api-server first: the others start faster without it importing beside them, and the task's
        # supervisor finds the Execution API up.
        self._spawn("api-server", ["api-server", "--host", "127.0.0.1", "--port", str(self.port)], env)
        self._wait_until_answering()
        self.timings["api-server answering"] = time.monotonic() - started
        for name in COMPONENTS:
            self._spawn(name, [name], env)
        return self

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        with open(self.home / f"{name}.log", "wb") as log:
            self.processes[name] = subprocess.Popen([str(self.venv / "bin" / "airflow"), *args], env=env, stdout=log,
                                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                                    start_new_session=True, preexec_fn=_end_with_parent)

    def _wait_until_answering(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"airflow {name} exited {process.returncode}:\n{self.log(name)}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"the api-server did not answer within {START_SECONDS:g} s:\n{self.log('api-server')}")

    def log(self, name: str, tail: int = 3000) -> str:
        try:
            return (self.home / f"{name}.log").read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM to each process group, then SIGKILL to whatever of the sessions is left, tasks included."""
        for process in self.processes.values():
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for process in self.processes.values():
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                pass
        for process in self.processes.values():
            for pid in _session_members(process.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if process.poll() is None:
                process.wait(timeout=10)


def start_real_airflow() -> tuple[RealAirflow | None, str]:
    """A running Airflow, or None and why not (only when its virtualenv cannot be had)."""
    if not sys.platform.startswith("linux"):
        return None, "the real Airflow contract tests run on Linux only"
    started = time.monotonic()
    venv, reason = prepare_venv()
    if venv is None:
        return None, reason
    prepared = time.monotonic() - started
    airflow = RealAirflow(venv, Path(tempfile.mkdtemp(prefix="workflow-airflow-")))
    airflow.timings["virtualenv"] = prepared
    try:
        return airflow.start(), ""
    except BaseException:
        airflow.stop()
        raise
