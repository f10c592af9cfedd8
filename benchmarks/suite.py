"""Measure the test suite's run time: the whole suite as CI and CONTRIBUTING run it, and its two parts apart (the
contract tests against real components, and the rest).

Run: python3 benchmarks/suite.py [--runs 3] [--parts all,contract,rest] [--commit REV] [--workers N] [--breakdown]
(from anywhere)

Each measured command is exactly what an engineer types, from the repository's root:

    all       pipenv run pytest -q -n auto --dist loadgroup
    contract  pipenv run pytest -q -n auto --dist loadgroup tests/contract   (real Airflow, Debian's docker-registry)
    rest      pipenv run pytest -q -n auto --dist loadgroup --ignore=tests/contract

Wall time is around the whole command (pipenv's own start included); CPU time is user + system of the command and
every process it waited for (os.wait4 of pipenv, whose pytest reaps its xdist workers). The parts take turns, round
after round, so a change in the machine's load reaches them all; on a machine others share, the minimum over the
rounds is the figure to quote, with the load average beside each run. Each run's pytest summary is parsed for its
counts, and `pytest --collect-only -q` counts the tests, so a faster run that ran fewer tests shows as such.

By default the working tree is measured as it is. `--commit REV` measures a commit instead, untouched by edits in
progress: its tree is exported read-only (`git archive`) into a temporary directory, and the same commands run
there with the project's virtualenv (PIPENV_PIPFILE names the repository's Pipfile) and PYTHONPATH set to the
export, so that its `workflow`, `workflow_sandbox` and tests are the ones imported.

`--workers N` runs with `-n N` instead of `-n auto` (a worker more than there are cores, tests/conftest.py), to
compare worker counts.

`--breakdown` adds one run of the whole suite with benchmarks/aws_calls.py loaded into pytest and its workers,
and says where the CPU went: in the test processes' simulated AWS calls (botocore's client side, moto and the
simulator), in the rest of the tests, in starting the workers and collecting, and outside the test processes (the
real Airflow and registry, the CLI run as a subprocess, pipenv). Its last line is the floor: the wall time the
suite would still need on this machine's cores if every simulated AWS call cost nothing.

Prints Markdown tables on stdout (progress on stderr) and writes nothing; BENCHMARKS.md records a run.
"""

import argparse
import glob
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

from common import ROOT, against_targets, export, git, table

PYTEST = ["pipenv", "run", "pytest", "-q", "-n", "auto", "--dist", "loadgroup"]
PARTS = {
    "all": [],
    "contract": ["tests/contract"],
    "rest": ["--ignore=tests/contract"],
}
GOAL_S = 60.0  # issue 22, item 6: the suite under 60 s on the 2-core machine, without losing a test
SUMMARY = re.compile(r"(\d+) (passed|failed|skipped|xfailed|xpassed|errors?|deselected|warnings?)")


@dataclass
class Run:
    part: str
    wall: float
    cpu: float
    counts: dict[str, int]
    load: tuple[float, float]  # 1-minute load average before and after
    exit_code: int
    said: str  # pytest's own last line


@dataclass
class Part:
    name: str
    args: list[str]
    collected: int | None = None
    runs: list[Run] = field(default_factory=list)


@dataclass(frozen=True)
class Tree:
    """Where the tests run: the repository's working tree, or a commit exported beside it."""

    path: str = ROOT
    exported: bool = False

    def environment(self) -> dict[str, str]:
        """The engineer's environment, less what a `pipenv run` around this script would add (it must not decide
        which virtualenv the measured command uses: pipenv finds the project's own, as it does when typed)."""
        env = dict(os.environ)
        if env.pop("PIPENV_ACTIVE", None):
            env.pop("VIRTUAL_ENV", None)
        if self.exported:
            env.update({"PIPENV_PIPFILE": os.path.join(ROOT, "Pipfile"), "PYTHONPATH": self.path})
        return env


def measure(part: Part, tree: Tree, workers: str = "auto", extra: dict[str, str] | None = None) -> Run:
    load = os.getloadavg()[0]
    started = time.perf_counter()
    env = {**tree.environment(), **(extra or {})}
    child = subprocess.Popen(pytest_command(workers) + part.args, cwd=tree.path, env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = child.stdout.read() if child.stdout else ""
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
    lines = [line for line in output.splitlines() if line.strip()]
    said = lines[-1] if lines else ""
    counts = {kind.rstrip("s") if kind.startswith(("error", "warning")) else kind: int(n)
              for n, kind in SUMMARY.findall(said)}
    if child.returncode not in (0, 1):  # 1: some tests failed, which is reported, not fatal here
        print(output[-3000:], file=sys.stderr)
    return Run(part.name, wall, usage.ru_utime + usage.ru_stime, counts, (load, os.getloadavg()[0]),
               child.returncode, said.strip("= "))


def pytest_command(workers: str) -> list[str]:
    return [workers if word == "auto" else word for word in PYTEST]


def collected(part: Part, tree: Tree) -> int | None:
    done = subprocess.run(["pipenv", "run", "pytest", "--collect-only", "-q", *part.args], cwd=tree.path,
                          env=tree.environment(), capture_output=True, text=True)
    found = re.search(r"(\d+) tests? collected", done.stdout) or re.search(r"^(\d+) tests?", done.stdout, re.M)
    if found:
        return int(found.group(1))
    return sum(1 for line in done.stdout.splitlines() if "::" in line) or None


def breakdown(tree: Tree, workers: str) -> str:
    """One run of the whole suite with benchmarks/aws_calls.py loaded: where its CPU went, as Markdown."""
    here = os.path.dirname(os.path.abspath(__file__))
    with tempfile.TemporaryDirectory(prefix="aws-calls-") as out:
        path = os.pathsep.join(filter(None, [here, tree.environment().get("PYTHONPATH")]))
        run = measure(Part("all", ["-p", "aws_calls"]), tree, workers, {"PYTHONPATH": path, "AWS_CALLS_OUT": out})
        reports = [json.load(open(name)) for name in glob.glob(os.path.join(out, "*.json"))]
    files: dict[str, list[float]] = {}
    for report in reports:
        for name, counted in report["files"].items():
            files[name] = [a + b for a, b in zip(files.get(name, [0, 0.0, 0.0]), counted, strict=True)]
    calls = sum(f[0] for f in files.values())
    aws, tests = sum(f[1] for f in files.values()), sum(f[2] for f in files.values())
    processes = sum(r["process_cpu"] for r in reports)
    cores = os.cpu_count() or 1
    rows = [
        ["simulated AWS calls in the test processes", f"{calls}", f"{aws:.1f}", f"{100 * aws / run.cpu:.0f}%"],
        ["the rest of the tests, in the test processes", "", f"{tests - aws:.1f}", f"{100 * (tests - aws) / run.cpu:.0f}%"],
        ["starting the test processes, collecting", "", f"{processes - tests:.1f}",
         f"{100 * (processes - tests) / run.cpu:.0f}%"],
        ["outside the test processes (real servers, subprocesses)", "", f"{run.cpu - processes:.1f}",
         f"{100 * (run.cpu - processes) / run.cpu:.0f}%"],
        ["the whole run", "", f"{run.cpu:.1f}", "100%"],
    ]
    heaviest = sorted(files.items(), key=lambda item: -item[1][2])[:8]
    return "\n".join([
        f"Where the CPU went, one run of the whole suite (`-p aws_calls`): {run.wall:.1f} s wall, exit "
        f"{run.exit_code}, {run.said}.\n",
        table(["where", "calls", "CPU s", "share"], rows, 1),
        "\nThe test files that cost most:\n",
        table(["file", "AWS calls", "CPU s in them", "CPU s in all"],
              [[name, int(f[0]), f"{f[1]:.1f}", f"{f[2]:.1f}"] for name, f in heaviest], 1),
        f"\nWith every simulated AWS call free, the rest ({run.cpu - aws:.1f} CPU s) would still take at least "
        f"{(run.cpu - aws) / cores:.1f} s on {cores} cores, kept fully busy.",
    ])


def ran(run: Run) -> int:
    return sum(n for kind, n in run.counts.items() if kind not in ("deselected", "warning"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="rounds: each part runs once per round (default 3)")
    parser.add_argument("--parts", default=",".join(PARTS), help="which parts, in each round's order: all,contract,rest")
    parser.add_argument("--commit", help="measure this commit, exported, rather than the working tree")
    parser.add_argument("--workers", default="auto", help="pytest-xdist's -n (default auto)")
    parser.add_argument("--breakdown", action="store_true", help="one more run: where the CPU went (aws_calls.py)")
    args = parser.parse_args()
    parts = [Part(name, PARTS[name]) for name in args.parts.split(",") if name]
    began = time.monotonic()
    scratch = tempfile.mkdtemp(prefix="suite-") if args.commit else None
    try:
        tree = Tree(export(args.commit, scratch), exported=True) if scratch else Tree()
        for part in parts:
            part.collected = collected(part, tree)
        for round_ in range(1, args.runs + 1):
            for part in parts:
                print(f"round {round_}: {part.name} ...", file=sys.stderr, flush=True)
                part.runs.append(measure(part, tree, args.workers))
                run = part.runs[-1]
                print(f"  {run.wall:.1f}s, exit {run.exit_code}: {run.said}", file=sys.stderr, flush=True)
        if args.breakdown:
            print("breakdown: all, with aws_calls ...", file=sys.stderr, flush=True)
            where_cpu_went = breakdown(tree, args.workers)
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)

    if args.commit:
        where = f"commit {git('rev-parse', '--short', args.commit)}, exported"
    else:
        changed = [line[3:] for line in git("status", "--porcelain").splitlines()]
        where = f"the working tree at {git('rev-parse', '--short', 'HEAD')}" + (
            f" with {len(changed)} files changed" if changed else "")
    print(f"{os.cpu_count()} cores; {where}"
          + f"; {args.runs} rounds, parts in turn; {time.monotonic() - began:.0f} s in all. Command: "
          f"`{' '.join(pytest_command(args.workers))} [part]`.\n")
    if any(part.runs for part in parts):
        print(table(["part", "round", "wall s", "CPU s", "CPU / wall", "load average before, after", "tests run",
                     "collected", "exit", "pytest's summary"],
                    [[r.part, i + 1, f"{r.wall:.1f}", f"{r.cpu:.1f}", f"{r.cpu / r.wall:.2f}",
                      f"{r.load[0]:.2f}, {r.load[1]:.2f}", ran(r), part.collected if part.collected is not None else "?",
                      r.exit_code, r.said]
                     for part in parts for i, r in enumerate(part.runs)], 1))
        print("\nBy part, over the rounds:\n")
        print(table(["part", "wall s min", "median", "max", "CPU s min", "tests run", "collected"],
                    [[p.name, f"{min(r.wall for r in p.runs):.1f}", f"{statistics.median(r.wall for r in p.runs):.1f}",
                      f"{max(r.wall for r in p.runs):.1f}", f"{min(r.cpu for r in p.runs):.1f}",
                      "/".join(sorted({str(ran(r)) for r in p.runs})), p.collected] for p in parts], 1))
        by_name = {p.name: p for p in parts}
        whole = by_name.get("all")
        if whole:
            best = min(r.wall for r in whole.runs)
            complete = all(ran(r) == whole.collected for r in whole.runs)
            print(against_targets([
                ["the whole suite, wall time, best of the rounds", f"under {GOAL_S:.0f} s",
                 f"{best:.1f} s (median {statistics.median(r.wall for r in whole.runs):.1f} s)",
                 "met" if best < GOAL_S else "NOT met"],
                ["tests run in each round against those collected", "none lost",
                 f"{'/'.join(sorted({str(ran(r)) for r in whole.runs}))} of {whole.collected}",
                 "met" if complete else "NOT met"],
            ]))
    if args.breakdown:
        print("\n" + where_cpu_went)


if __name__ == "__main__":
    main()
