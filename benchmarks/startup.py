"""Measure what `workflow --help` and `workflow redeploy --help` cost in CPU, against a bare interpreter, today and at
an earlier commit, in the same run.

Run: pipenv run python benchmarks/startup.py [--runs 20] [--warmup 2] [--baseline 81f91a9]

Each command runs as an operator's shell runs it: the installed script (this virtualenv's bin/workflow), in a new
process whose working directory is an empty temporary directory, stdout and stderr to /dev/null. Its CPU time is
user + system of that child alone, as the kernel accounts it when the child is reaped (os.wait4); wall time is
around the spawn and the reap. The commands take turns, run after run (A B C A B C ...), so a change in the
machine's load reaches them all; `--warmup` rounds before are not counted.

The yardstick is the same interpreter doing nothing (`python -c pass`). The baseline is the commit before
commands were loaded lazily: its tree is exported read-only (`git archive <commit>`) into a temporary directory
and the same bin/workflow runs with PYTHONPATH set to it, so the same interpreter and packages import that commit's
`workflow` (checked before measuring). "modules" counts the imports `python -X importtime` reports for one run.
Bytecode is written and read under a scratch PYTHONPYCACHEPREFIX for every command alike, as an installed package
has it, whatever the calling shell's PYTHONDONTWRITEBYTECODE says.

Prints Markdown tables on stdout (progress on stderr) and writes nothing in the repository; BENCHMARKS.md records a
run.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

from common import against_targets, export, git, table

BIN = os.path.join(sys.prefix, "bin")
WORKFLOW = os.path.join(BIN, "workflow")
GOAL_MS = 120.0  # issue 22, item 6: `workflow --help` under 120 ms of CPU


@dataclass
class Command:
    label: str
    tree: str  # which `workflow` it runs: "today", the baseline commit, or "-"
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cpu: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)
    modules: int | None = None


def run_once(command: Command, cwd: str) -> tuple[float, float]:
    """One run: (CPU seconds of the child, user + system; wall seconds)."""
    env = {**os.environ, **command.env}
    started = time.perf_counter()
    child = subprocess.Popen(command.argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(command.argv)} exited {child.returncode}")
    return usage.ru_utime + usage.ru_stime, wall


def modules_imported(command: Command, cwd: str) -> int | None:
    """The imports one run makes, as `python -X importtime` lists them (one line each, after a header)."""
    if command.argv[0] != WORKFLOW:
        return None
    done = subprocess.run([sys.executable, "-X", "importtime", *command.argv], cwd=cwd,
                          env={**os.environ, **command.env}, capture_output=True, text=True, check=True)
    return sum(1 for line in done.stderr.splitlines() if line.startswith("import time:")) - 1


def which_workflow(env: dict[str, str], cwd: str) -> str:
    done = subprocess.run([sys.executable, "-c", "import workflow; print(workflow.__file__)"], cwd=cwd,
                          env={**os.environ, **env}, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="counted runs of each command (default 20)")
    parser.add_argument("--warmup", type=int, default=2, help="rounds run first and not counted (default 2)")
    parser.add_argument("--baseline", default="81f91a9",
                        help="the commit to compare with (default 81f91a9, before commands were loaded lazily)")
    args = parser.parse_args()
    if not os.path.exists(WORKFLOW):
        raise SystemExit(f"no {WORKFLOW}: run this with the project's virtualenv (pipenv run python ...)")

    head = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "--", "workflow")
    baseline = git("rev-parse", "--short", args.baseline)
    scratch = tempfile.mkdtemp(prefix="startup-")
    try:
        cwd = os.path.join(scratch, "cwd")
        os.mkdir(cwd)
        # As installed, with bytecode: pip compiles what it installs, and an editable checkout compiles on first run.
        # A shell that sets PYTHONDONTWRITEBYTECODE would compile every module on every run (about 40 ms here), so
        # every command, the bare interpreter too, reads and writes its bytecode under one scratch prefix; the
        # warmup rounds write it.
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        os.environ["PYTHONPYCACHEPREFIX"] = os.path.join(scratch, "pycache")
        tree = export(baseline, os.path.join(scratch, baseline))
        old = {"PYTHONPATH": tree}
        today = {"PYTHONPATH": ""}
        found = which_workflow(old, cwd)
        if not found.startswith(tree + os.sep):
            raise SystemExit(f"PYTHONPATH={tree} imports {found}, not the baseline's tree")
        if which_workflow(today, cwd).startswith(scratch):
            raise SystemExit("today's workflow resolves into the baseline's tree")
        commands = [
            Command("python -c pass", "-", [sys.executable, "-c", "pass"]),
            Command("workflow --help", f"{head} (today)", [WORKFLOW, "--help"], today),
            Command("workflow redeploy --help", f"{head} (today)", [WORKFLOW, "redeploy", "--help"], today),
            Command("workflow --help", f"{baseline} (baseline)", [WORKFLOW, "--help"], old),
            Command("workflow redeploy --help", f"{baseline} (baseline)", [WORKFLOW, "redeploy", "--help"], old),
        ]
        load = os.getloadavg()
        for command in commands:
            command.modules = modules_imported(command, cwd)
        for round_ in range(args.warmup + args.runs):
            for command in commands:
                cpu, wall = run_once(command, cwd)
                if round_ >= args.warmup:
                    command.cpu.append(cpu)
                    command.wall.append(wall)
            print(f"round {round_ + 1} of {args.warmup + args.runs}", file=sys.stderr, end="\r", flush=True)
        print(file=sys.stderr)
        end_load = os.getloadavg()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    bare = statistics.median(commands[0].cpu)
    print(f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, load average {load[0]:.2f} at the start and "
          f"{end_load[0]:.2f} at the end; {args.runs} counted runs of each command, in turns, after {args.warmup} "
          f"uncounted rounds. Today: {head}" + (" with local changes in workflow/" if dirty else "") +
          f"; baseline: {baseline} exported by `git archive` and run with PYTHONPATH set to it.\n")
    ms = 1000.0
    print(table(
        ["command", "workflow at", "CPU ms min", "median", "max", "median - bare interpreter", "wall ms median",
         "modules"],
        [[c.label, c.tree, f"{min(c.cpu) * ms:.0f}", f"{statistics.median(c.cpu) * ms:.0f}", f"{max(c.cpu) * ms:.0f}",
          f"{(statistics.median(c.cpu) - bare) * ms:+.0f}", f"{statistics.median(c.wall) * ms:.0f}",
          "-" if c.modules is None else c.modules] for c in commands], 2))
    help_today, help_before = statistics.median(commands[1].cpu) * ms, statistics.median(commands[3].cpu) * ms
    redeploy_today, redeploy_before = statistics.median(commands[2].cpu) * ms, statistics.median(commands[4].cpu) * ms
    print(against_targets([
        ["`workflow --help`, CPU, median", f"under {GOAL_MS:.0f} ms",
         f"{help_today:.0f} ms (bare interpreter {bare * ms:.0f} ms; {baseline}: {help_before:.0f} ms)",
         "met" if help_today < GOAL_MS else "NOT met"],
        ["`workflow redeploy --help`, CPU, median", "(no target)",
         f"{redeploy_today:.0f} ms ({baseline}: {redeploy_before:.0f} ms)", ""],
    ]))


if __name__ == "__main__":
    main()
