"""Measure `workflow redeploy` and `workflow stop-scheduler` against the simulated cluster, in real time.

Run: pipenv run python benchmarks/redeploy.py [--cases 1,2,...] [--stop-runs 10] [--stop-intervals 2]
     [--deprovision 3] [--no-long-stop] [--no-baseline]

Each case gets a fresh simulated cluster (moto in process, workflow_sandbox's ECS on a real clock; one
scheduler, three workers, one web task, long steady) whose stages keep Fargate's ratios, scaled down from
minutes: a task starts in 6 s (provision 2 + pull 4), stops in 2 s, a worker or scheduler drains 1 s, web
deregisters from its load balancer for 30 s (or 1 s, 20 s). Where a case says so, a task whose containers have
stopped stays DEPROVISIONING (its network interface detaching) for `--deprovision` seconds before it is STOPPED.
The CLI runs in this process as an operator types it (real time.sleep, progress lines timed as they are
written), with botocore counting every API call.

What the cluster did is read off the simulated tasks afterwards (each transition carries its own moment):
when the old scheduler task's containers stopped (its process ended: executionStoppedAt) and when it was
STOPPED, when the new workers all ran and the old ones' containers had stopped, when web's new task ran, when
the new scheduler task ran. The lag of a wait is when the command noticed (its progress line, or its return)
minus when the awaited state happened (plus the stability window where one applies). The cluster's minimum is
the sum of the stages the work cannot skip: stop the scheduler (drain + stop), roll the workers (start, then the
old ones drain and stop), start the scheduler (start), and the stability window after the worker roll and after
the scheduler start; deprovisioning is no part of it, since no process runs while it lasts.

The baseline rows ("baseline: STOPPED") run today's code with the rule it replaced: `workflow.ecs.Task.process_ended`
is patched, in this process only, to `is_stopped` (a task counts as gone only once STOPPED, as in
`git show 25c4b06:workflow/ecs.py`), so they measure that rule alone, in the same run.

Prints Markdown tables on stdout (progress on stderr) and writes nothing; BENCHMARKS.md records a run.
"""

import argparse
import io
import json
import os
import random
import re
import statistics
import sys
import time
from collections import Counter
from contextlib import contextmanager, nullcontext, redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from datetime import datetime

for _name in [n for n in os.environ if n.startswith("WORKFLOW_")] + ["AWS_PROFILE", "AWS_ENDPOINT_URL"]:
    os.environ.pop(_name, None)  # the CLI's defaults are what is measured
os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
                   "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": os.devnull,
                   "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
                   "COLUMNS": "500"})  # progress lines unwrapped, one line each

import boto3  # noqa: E402
import click  # noqa: E402
from common import against_targets, table  # noqa: E402  (benchmarks/common.py, beside this script)
from moto import mock_aws  # noqa: E402

import workflow.ecs  # noqa: E402
from workflow.app import Runtime  # noqa: E402
from workflow.aws import Clients  # noqa: E402
from workflow.cli import main  # noqa: E402
from workflow_sandbox.clock import RealClock  # noqa: E402
from workflow_sandbox.hooks import simulated_ecs  # noqa: E402
from workflow_sandbox.provision import DEFAULT_COUNTS, provision_cluster  # noqa: E402
from workflow_sandbox.simulator import Simulation, Timings  # noqa: E402

CLUSTER = "airflow-prod"
SCHEDULER, WORKER, WEB = (f"{CLUSTER}-{role}" for role in ("scheduler", "worker", "web"))
NAMES = ["--cluster", CLUSTER, "--scheduler", SCHEDULER, "--worker", WORKER, "--web", WEB]
PROVISION, PULL, STOP, DRAIN = 2.0, 4.0, 2.0, 1.0  # a task starts in 6 s; workers and the scheduler drain 1 s
DEPROVISION = 3.0  # --deprovision: the independent measurement used 3 s
READ = ("Describe", "List", "Get")
STAMPED = re.compile(r"^\d\d:\d\d:\d\dZ +[+-]\d+s (.*)$")  # Reporter.stamp: `21:48:53Z   +1s `
RULE, BASELINE = "process ended", "baseline: STOPPED"


def default_of(name: str) -> float:
    return next(p.default for p in main.params if p.name == name)


POLL, WINDOW = default_of("poll_interval"), default_of("stability_window")


@dataclass(frozen=True)
class Case:
    name: str
    web_drain: float
    options: tuple[str, ...] = ()  # global CLI options besides the names
    deprovision: float = 0.0
    baseline: bool = False  # the rule before: a task is gone only once STOPPED

    def setting(self, name: str) -> float:
        flag = "--" + name.replace("_", "-")
        return float(self.options[self.options.index(flag) + 1]) if flag in self.options else default_of(name)


def cases(deprovision: float) -> list[Case]:
    window5 = ("--stability-window", "5")
    d = f"deprovisioning {deprovision:g} s"
    return [
        Case("defaults", 30.0),
        Case("defaults, web drain 1 s", 1.0),
        Case("defaults, web drain 20 s", 20.0),
        Case("window 5 s", 30.0, window5),
        Case("window 5 s, web drain 1 s", 1.0, window5),
        Case("window 5 s, web drain 20 s", 20.0, window5),
        Case("window 5 s, poll 2 s", 30.0, ("--stability-window", "5", "--poll-interval", "2")),
        Case(f"defaults, {d}", 30.0, (), deprovision),
        Case(f"defaults, {d}, {BASELINE}", 30.0, (), deprovision, True),
        Case(f"window 5 s, {d}", 30.0, window5, deprovision),
        Case(f"window 5 s, {d}, {BASELINE}", 30.0, window5, deprovision, True),
        Case(f"window 5 s, {BASELINE}", 30.0, window5, 0.0, True),
    ]


@contextmanager
def stopped_rule():
    """The rule before: a task is gone only once STOPPED (DEPROVISIONING counts as alive), in this process only."""
    ended = workflow.ecs.Task.process_ended
    workflow.ecs.Task.process_ended = workflow.ecs.Task.is_stopped  # type: ignore[method-assign]
    try:
        yield
    finally:
        workflow.ecs.Task.process_ended = ended  # type: ignore[method-assign]


def rule(baseline: bool):
    return stopped_rule() if baseline else nullcontext()


def plain(text: str) -> str:
    """A progress line with services named the same way whether the reporter has shortened them yet or not."""
    text = re.sub(rf"\b(stop|start) scheduler {SCHEDULER}\b", r"\1 scheduler", text)
    return text.replace(f"{CLUSTER}-", "")


@dataclass
class Run:
    """One CLI invocation: its progress lines with the moment each was written, and every API call it made."""

    started: float = 0.0
    returned: float = 0.0
    lines: list[tuple[float, str]] = field(default_factory=list)
    calls: list[tuple[float, str]] = field(default_factory=list)
    stdout: str = ""

    def at(self, prefix: str, required: bool = True) -> float | None:
        """When the first progress line starting with `prefix` was written."""
        found = next((t for t, text in self.lines if text.startswith(prefix)), None)
        if found is None and required:
            raise SystemExit(f"no progress line starting {prefix!r}:\n" + "\n".join(text for _, text in self.lines))
        return found

    def reads(self, begin: float, end: float) -> int:
        return sum(begin <= t <= end and name.startswith(READ) for t, name in self.calls)

    def wait(self, begin: float, end: float) -> tuple[int, float]:
        """Read calls and seconds of the wait in the phase from `begin` to `end`: from its last UpdateService
        (the change the phase waits for; the lease check before it is no part of the wait) to `end`."""
        start = max((t for t, name in self.calls if begin <= t <= end and name == "UpdateService"), default=begin)
        return self.reads(start, end), end - start


@contextmanager
def cluster(web_drain: float, provision: float = PROVISION, drains: dict[str, float] | None = None,
            deprovision: float = 0.0):
    timings = Timings(provision=provision, pull=PULL, drain=DRAIN, stop=STOP,
                      drain_by_service={**(drains or {}), WEB: web_drain}, deprovision=deprovision)
    with mock_aws():
        clock = RealClock()
        sim = Simulation(clock, timings)
        with simulated_ecs(sim):
            provision_cluster(lambda name: boto3.client(name), counts=DEFAULT_COUNTS)
            clock.advance(600)  # long steady
            assert [len(sim.alive(n)) for n in (SCHEDULER, WORKER, WEB)] == [1, 3, 1]
            yield sim, clock


class TimedLines(io.TextIOBase):
    """A text stream that notes the moment each line was written (the progress on stderr)."""

    def __init__(self, clock: RealClock):
        self.clock, self.lines, self._partial = clock, [], ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        *done, self._partial = (self._partial + text).split("\n")
        now = self.clock.now()
        self.lines.extend((now, line) for line in done)
        return len(text)


def invoke(clock: RealClock, *args: str) -> Run:
    """The CLI in this process as an operator types it: real time, its own AWS clients, every call counted."""
    run = Run()
    hooked: set[int] = set()

    def count(model, **_):
        run.calls.append((clock.now(), model.name))

    def clients(config):
        build = Clients(config)

        def client(name, *args, **kwargs):  # whatever the CLI asks of its factory (a Region, attempts)
            built = build(name, *args, **kwargs)
            if id(built) not in hooked:
                hooked.add(id(built))
                built.meta.events.register("before-call", count)
            return built

        return client

    err, out = TimedLines(clock), io.StringIO()
    run.started = clock.now()
    try:
        with redirect_stderr(err), redirect_stdout(out):
            main.main(list(args), prog_name="workflow", standalone_mode=False,
                      obj=Runtime(clock=clock.now, sleep=time.sleep, clients=clients, invocation=lambda: ["workflow"]))
    except click.ClickException as error:
        stderr = "\n".join(text for _, text in err.lines)
        raise SystemExit(f"workflow {' '.join(args)} failed: {error.format_message()}\n{stderr}") from None
    run.returned = clock.now()
    run.lines = [(t, plain(m[1])) for t, m in ((t, STAMPED.match(text)) for t, text in err.lines) if m]
    run.stdout = out.getvalue()
    return run


def moment(clock: RealClock, when: datetime) -> float:
    return (when - clock.wall(0)).total_seconds()


def redeploy(case: Case, seed: int = 1) -> dict:
    """One redeploy. The scheduler's and the workers' drain and every task's provisioning take up to one poll
    interval longer than nominal (the same draws, from `seed`, in every case), so each awaited state falls at
    some moment between two polls rather than on the poll grid the whole-second timings would line up with."""
    poll, window = case.setting("poll_interval"), case.setting("stability_window")
    jitter = random.Random(seed)
    scheduler_drain, worker_drain, provision = (x + jitter.uniform(0, poll) for x in (DRAIN, DRAIN, PROVISION))
    drains = {SCHEDULER: scheduler_drain, WORKER: worker_drain}
    with cluster(case.web_drain, provision, drains, case.deprovision) as (sim, clock), rule(case.baseline):
        before = {n: {t.task_arn for t in sim.service(n).tasks} for n in (SCHEDULER, WORKER, WEB)}
        run = invoke(clock, *NAMES, *case.options, "redeploy", "--yes", "--output", "json")
        with sim.lock:
            sim.advance()  # play what happened since the last call; each transition keeps its own moment

            def tasks(name, old):
                return [t for t in sim.service(name).tasks if (t.task_arn in before[name]) == old]

            ended = max(moment(clock, t.execution_stopped_at) for t in tasks(SCHEDULER, True))
            stopped = max(moment(clock, t.stopped_at) for t in tasks(SCHEDULER, True))
            new_workers = [moment(clock, t.started_at) for t in tasks(WORKER, False)]
            assert len(new_workers) == DEFAULT_COUNTS["worker"], "a worker failed to start"
            workers = max(new_workers + [moment(clock, t.execution_stopped_at) for t in tasks(WORKER, True)])
            workers_stopped = max(new_workers + [moment(clock, t.stopped_at) for t in tasks(WORKER, True)])
            scheduler = min(moment(clock, t.started_at) for t in tasks(SCHEDULER, False))
            web = max(moment(clock, t.started_at) for t in tasks(WEB, False))
    outcome = json.loads(run.stdout)

    stop_begin, stop_end = run.at("==> stop scheduler"), run.at("<== stop scheduler")
    roll_begin = run.at("==> redeploy")
    roll_end = run.at("<== wait for worker before the scheduler starts")
    start_begin, start_end = run.at("==> start scheduler"), run.at("<== start scheduler")
    worker_seen = run.at("worker: deployment complete", required=False)  # said only with a stability window
    scheduler_seen = run.at("scheduler: deployment complete", required=False)
    stage_stop, stage_roll, stage_start = scheduler_drain + STOP, provision + PULL + worker_drain + STOP, provision + PULL
    minimum = stage_stop + stage_roll + stage_start + 2 * window
    waits = {  # wait -> (began, noticed, awaited state happened, seen complete)
        "stop scheduler": (stop_begin, stop_end, ended, None),
        "worker roll": (roll_begin, roll_end, workers + window, worker_seen and worker_seen - workers),
        "start scheduler": (start_begin, start_end, scheduler + window, scheduler_seen and scheduler_seen - scheduler),
        "web": (start_end, run.returned, max(web + window, start_end), None),
    }
    reads = {k: run.wait(b, e) for k, (b, e, _, _) in waits.items()}
    return {
        "case": case.name, "poll": poll, "window": window, "web_drain": case.web_drain,
        "deprovision": case.deprovision, "rule": BASELINE if case.baseline else RULE,
        "wall": run.returned - run.started, "minimum": minimum, "minimum_text":
            f"{stage_stop + stage_roll + stage_start:.1f} + 2 x {window:g} = {minimum:.1f}",
        "downtime": scheduler - ended, "downtime_min": stage_roll + window + stage_start,
        "downtime_reported": outcome.get("scheduler_downtime"),
        "lags": {k: e - s for k, (_, e, s, _) in waits.items()},
        "seen": {k: seen for k, (_, _, _, seen) in waits.items() if seen is not None},
        "after_stopped": {"stop scheduler": stop_end - stopped, "worker roll": roll_end - (workers_stopped + window)},
        "reads": reads,
        "calls": Counter(name for _, name in run.calls),
    }


def stop_scheduler(poll: float | None, runs: int, drain: float = DRAIN, stop: float = STOP, deprovision: float = 0.0,
                   baseline: bool = False, seed: int = 1) -> dict:
    """`stop-scheduler` alone, `runs` times on one cluster; between runs the scheduler is started again and the
    clock skipped until it runs. Its drain varies by up to one poll interval, so the moment it stops falls
    anywhere between two polls. The lag is measured from the moment the last old task's containers stopped
    (executionStoppedAt: its process ended), and, apart, from the moment it was STOPPED."""
    interval = poll if poll is not None else POLL
    options = ("--poll-interval", f"{poll:g}") if poll is not None else ()
    jitter = random.Random(seed)
    lags, after_stopped, rates, phase_rates = [], [], [], []
    with cluster(1.0, deprovision=deprovision) as (sim, clock), rule(baseline):
        sim.timings.stop = stop
        ecs = boto3.client("ecs")
        for _ in range(runs):
            with sim.lock:
                sim.timings.drain = drain + jitter.uniform(0, interval)
            old = {t.task_arn for t in sim.alive(SCHEDULER)}
            run = invoke(clock, *NAMES, *options, "stop-scheduler", "--yes")
            with sim.lock:
                sim.advance()
                mine = [t for t in sim.service(SCHEDULER).tasks if t.task_arn in old]
                ended = max(moment(clock, t.execution_stopped_at) for t in mine)
            time.sleep(max(0.0, ended + deprovision - clock.now()) + 0.05)  # until STOPPED, to read when it was
            with sim.lock:
                sim.advance()
                stopped = max(moment(clock, t.stopped_at) for t in mine)
            lags.append(run.returned - ended)
            after_stopped.append(run.returned - stopped)
            begin, end = run.at("==> stop scheduler"), run.at("<== stop scheduler")
            reads, seconds = run.wait(begin, end)
            rates.append(reads / seconds)
            phase_rates.append(run.reads(begin, end) / (end - begin))
            ecs.update_service(cluster=CLUSTER, service=SCHEDULER, desiredCount=1)
            clock.advance(60)
            assert len(sim.alive(SCHEDULER)) == 1
    return {"poll": interval, "runs": runs, "stops_in": drain + stop, "deprovision": deprovision,
            "rule": BASELINE if baseline else RULE, "median": statistics.median(lags), "max": max(lags),
            "min": min(lags), "after_stopped": statistics.median(after_stopped), "rate": statistics.mean(rates),
            "rate_max": max(rates), "phase_rate": statistics.mean(phase_rates)}


def rate(reads: int, seconds: float, interval: float) -> str:
    """Reads per second over a wait; a wait shorter than one poll is a single check: its reads are shown."""
    return f"{reads / seconds:.2f}" if seconds >= interval else f"- ({reads} in {seconds:.2f} s)"


def is_read(action: str) -> bool:
    return action.startswith(READ)


def verdict(met: bool, poll: float, rule_: str = RULE) -> str:
    if rule_ != RULE:
        return "(baseline)"
    return ("met" if met else "NOT met") if poll == POLL else "(not the default poll)"


def checks(results: list[dict], stops: list[dict], deprovision: float) -> list[list]:
    """The targets, against what this run measured; they hold at the default poll interval."""
    rows = []
    by_name = {r["case"]: r for r in results}
    for prefix in ("defaults", "window 5 s"):
        one, twenty = by_name.get(f"{prefix}, web drain 1 s"), by_name.get(f"{prefix}, web drain 20 s")
        if one and twenty:
            growth = twenty["wall"] / one["wall"] - 1
            rows.append([f"{prefix}: wall time, web drain 20 s against 1 s", "grows at most 25%",
                         f"{one['wall']:.1f} s -> {twenty['wall']:.1f} s ({growth:+.1%})",
                         verdict(growth <= 0.25, one["poll"])])
            gap = twenty["downtime"] - one["downtime"]
            rows.append([f"{prefix}: scheduler downtime, web drain 20 s against 1 s", "independent of web's drain",
                         f"{one['downtime']:.1f} s -> {twenty['downtime']:.1f} s ({gap:+.1f} s)",
                         verdict(abs(gap) <= max(one["poll"], 0.5), one["poll"])])
    d = f"deprovisioning {deprovision:g} s"
    for prefix in ("defaults", "window 5 s"):
        none = by_name.get(prefix)
        for suffix, rule_ in (("", RULE), (f", {BASELINE}", BASELINE)):
            with_it = by_name.get(f"{prefix}, {d}{suffix}")
            if not (none and with_it):
                continue
            gap = with_it["downtime"] - none["downtime"]
            rows.append([f"{prefix}: scheduler downtime, {d} against none ({rule_})", "grows by at most 0.5 s",
                         f"{none['downtime']:.1f} s -> {with_it['downtime']:.1f} s ({gap:+.1f} s)",
                         verdict(gap <= 0.5, none["poll"], rule_)])
            lag = with_it["lags"]["worker roll"] - none["lags"]["worker roll"]
            rows.append([f"{prefix}: old workers gone before the scheduler starts, lag after their containers "
                         f"stopped + window, {d} against none ({rule_})", "grows by at most 0.5 s",
                         f"{none['lags']['worker roll']:.2f} s -> {with_it['lags']['worker roll']:.2f} s ({lag:+.2f} s)",
                         verdict(lag <= 0.5, none["poll"], rule_)])
    for s in stops:
        what = f"stop-scheduler, poll {s['poll']:g} s, stops in {s['stops_in']:g} s"
        if s["deprovision"]:
            what += f", deprovisioning {s['deprovision']:g} s"
        if s["rule"] != RULE:
            what += f" ({s['rule']})"
        within = "met" if s["max"] <= 0.5 else "met at the median, not every run" if s["median"] <= 0.5 else "NOT met"
        rows.append([f"{what}: return after the last container stopped", "within 0.5 s",
                     f"median {s['median']:.2f} s, max {s['max']:.2f} s",
                     verdict(True, s["poll"], s["rule"]) if s["rule"] != RULE or s["poll"] != POLL else within])
        rows.append([f"{what}: read calls per second of its wait", "<= 2 on average",
                     f"mean {s['rate']:.2f}, max {s['rate_max']:.2f}", verdict(s["rate"] <= 2, s["poll"], s["rule"])])
    for r in results:
        rates = {w: n / t for w, (n, t) in r["reads"].items() if t >= r["poll"]}
        worst = max(rates, key=rates.get)
        rows.append([f"redeploy, {r['case']}: read calls per second, worst wait", "<= 2 on average per wait",
                     f"{rates[worst]:.2f} ({worst})", verdict(rates[worst] <= 2, r["poll"], r["rule"])])
    return rows


def main_():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deprovision", type=float, default=DEPROVISION,
                        help="seconds a stopped task stays DEPROVISIONING in the cases that have it (default 3)")
    known, _ = parser.parse_known_args()
    all_cases = cases(known.deprovision)
    parser.add_argument("--cases", default=",".join(str(i + 1) for i in range(len(all_cases))),
                        help="redeploy cases to run, by number: " + "; ".join(f"{i + 1} {c.name}" for i, c in
                                                                              enumerate(all_cases)))
    parser.add_argument("--stop-runs", type=int, default=10, help="stop-scheduler runs per setting (0: none)")
    parser.add_argument("--stop-intervals", default="2", help="poll intervals besides the default for stop-scheduler")
    parser.add_argument("--no-baseline", action="store_true", help="no stop-scheduler runs under the rule before")
    parser.add_argument("--no-long-stop", action="store_true",
                        help="skip the one stop-scheduler run at Fargate's scale (the scheduler takes 30 s to stop)")
    args = parser.parse_args()
    chosen = [all_cases[int(n) - 1] for n in args.cases.split(",") if n]
    began, load = time.monotonic(), os.getloadavg()[0]

    results = []
    for case in chosen:
        print(f"redeploy: {case.name} ...", file=sys.stderr, flush=True)
        results.append(redeploy(case))
        r = results[-1]
        print(f"  {r['wall']:.1f}s (minimum {r['minimum']:.1f}s), scheduler down {r['downtime']:.1f}s", file=sys.stderr)
    stops = []
    if args.stop_runs:
        settings = [(poll, deprovision, False) for poll in [None, *(float(x) for x in args.stop_intervals.split(",") if x)]
                    for deprovision in (0.0, args.deprovision)]
        if not args.no_baseline:
            settings.append((None, args.deprovision, True))
        for poll, deprovision, baseline in settings:
            print(f"stop-scheduler x{args.stop_runs}, poll {poll or POLL:g}s, deprovisioning {deprovision:g}s"
                  f"{' (' + BASELINE + ')' if baseline else ''} ...", file=sys.stderr, flush=True)
            stops.append(stop_scheduler(poll, args.stop_runs, deprovision=deprovision, baseline=baseline))
        if not args.no_long_stop:
            print("stop-scheduler x1, the scheduler stopping in 30 s ...", file=sys.stderr, flush=True)
            stops.append(stop_scheduler(None, 1, drain=10.0, stop=20.0))

    print(f"Timings: task start {PROVISION + PULL:g} s (provision {PROVISION:g} + pull {PULL:g}), stop {STOP:g} s, "
          f"scheduler and worker drain {DRAIN:g} s, web drain as shown, deprovisioning as shown (0: none, the task is "
          f"STOPPED as its containers stop); the scheduler's and workers' drain and the provisioning each up to one "
          f"poll interval longer (seeded), so states fall between polls. 1 scheduler, 3 workers, 1 web task. "
          f"CLI defaults: --poll-interval {POLL:g}, --stability-window {WINDOW:g}. Rule: `{RULE}` is today's code "
          f"(a task is gone once its containers have stopped: DEPROVISIONING, executionStoppedAt, or every container "
          f"STOPPED); `{BASELINE}` is today's code with Task.process_ended patched to is_stopped, the rule before "
          f"(gone only once STOPPED). {os.cpu_count()} cores, load average {load:.2f} at the start, "
          f"{os.getloadavg()[0]:.2f} at the end; {time.monotonic() - began:.0f} s in all.\n")
    if results:
        print("redeploy: wall time against the cluster's minimum (stop + roll + start + 2 stability windows; no "
              "deprovisioning in it), and the scheduler's downtime (old task's containers stopped to new task "
              "RUNNING; the command's own figure, from its stop request, in brackets):\n")
        print(table(
            ["case", "poll s", "window s", "web drain s", "deprovisioning s", "rule", "wall s", "cluster minimum s",
             "wall - minimum s", "scheduler down s", "of which minimum s", "API calls (reads)"],
            [[r["case"], f"{r['poll']:g}", f"{r['window']:g}", f"{r['web_drain']:g}", f"{r['deprovision']:g}",
              r["rule"], f"{r['wall']:.1f}", r["minimum_text"], f"{r['wall'] - r['minimum']:.1f}",
              f"{r['downtime']:.1f} ({r['downtime_reported']:g})", f"{r['downtime_min']:.1f}",
              f"{sum(r['calls'].values())} ({sum(n for k, n in r['calls'].items() if is_read(k))})"]
             for r in results], 1))
        waits = list(results[0]["lags"])
        print("\nLag of each wait in seconds: the end of the wait minus the moment the awaited state happened, plus "
              "the stability window (stop scheduler: the old task's containers stopped; worker roll: the new workers "
              "all RUNNING and the old ones' containers stopped; web: or the moment its wait began, when later); in "
              "brackets, the lag of the line saying the deployment is complete. Then read calls per second during "
              "each wait (from the UpdateService it waits for, if any, to its end):\n")
        print(table(
            ["case", *(f"lag: {w}" for w in waits), *(f"reads/s: {w}" for w in waits)],
            [[r["case"],
              *(f"{r['lags'][w]:.2f}" + (f" ({r['seen'][w]:.2f})" if w in r["seen"] else "") for w in waits),
              *(rate(*r["reads"][w], r["poll"]) for w in waits)] for r in results]))
        deprovisioned = [r for r in results if r["deprovision"]]
        if deprovisioned:
            print("\nWith deprovisioning: the end of the stop wait and of the wait before the scheduler starts, after "
                  "the moment the old tasks' containers stopped and after the moment they were STOPPED (negative: "
                  "before it), each plus the stability window where one applies:\n")
            print(table(
                ["case", "rule", "stop scheduler: after containers stopped", "after STOPPED",
                 "worker roll: after containers stopped", "after STOPPED"],
                [[r["case"], r["rule"], f"{r['lags']['stop scheduler']:.2f}",
                  f"{r['after_stopped']['stop scheduler']:.2f}", f"{r['lags']['worker roll']:.2f}",
                  f"{r['after_stopped']['worker roll']:.2f}"] for r in deprovisioned], 2))
        print("\nAPI calls by action:\n")
        print(table(["case", "calls by action"],
                    [[r["case"], ", ".join(f"{k} {v}" for k, v in sorted(r["calls"].items()))] for r in results], 2))
    if stops:
        print("\nstop-scheduler alone: how long after the last scheduler task's containers stopped (executionStoppedAt) "
              "it returned, and, median, after the task was STOPPED; read calls per second of its wait (from "
              "UpdateService to the end of its phase), and of its whole phase (with the operator lease's calls before "
              "UpdateService):\n")
        print(table(["poll s", "scheduler stops in s", "deprovisioning s", "rule", "runs", "lag median s", "lag min s",
                     "lag max s", "after STOPPED, median s", "reads/s of the wait, mean", "max",
                     "reads/s of the phase, mean"],
                    [[f"{s['poll']:g}", f"{s['stops_in']:g} + up to {s['poll']:g}", f"{s['deprovision']:g}", s["rule"],
                      s["runs"], f"{s['median']:.2f}", f"{s['min']:.2f}", f"{s['max']:.2f}",
                      f"{s['after_stopped']:.2f}", f"{s['rate']:.2f}", f"{s['rate_max']:.2f}",
                      f"{s['phase_rate']:.2f}"] for s in stops], 1))
    rows = checks(results, stops, args.deprovision)
    if rows:
        print(against_targets(rows, "Against the targets"))


if __name__ == "__main__":
    main_()
