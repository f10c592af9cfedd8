"""A pytest plugin for `suite.py --breakdown`: how much of each test process's CPU goes to simulated AWS calls.

Loaded with `-p aws_calls` (benchmarks/ on PYTHONPATH) into pytest and each xdist worker. It times every outermost
botocore API call (a call the simulator makes while answering one, a second operator's, counts within it) in the
calling thread's CPU time, per test file, and writes one JSON file per process into $AWS_CALLS_OUT when the
process ends: {"process_cpu": s, "files": {path: [calls, call_cpu_s, test_cpu_s]}}.
"""

import collections
import json
import os
import threading
import time

import botocore.client
import pytest

_outermost = threading.local()
_totals = {"calls": 0, "cpu": 0.0}
_files: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0, 0.0])
_make_api_call = botocore.client.BaseClient._make_api_call


def _timed(self, operation, params):
    if getattr(_outermost, "inside", False):
        return _make_api_call(self, operation, params)
    _outermost.inside, began = True, time.thread_time()
    try:
        return _make_api_call(self, operation, params)
    finally:
        _totals["cpu"] += time.thread_time() - began
        _totals["calls"] += 1
        _outermost.inside = False


botocore.client.BaseClient._make_api_call = _timed


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    calls, cpu, began = _totals["calls"], _totals["cpu"], time.process_time()
    yield
    counted = _files[item.nodeid.split("::")[0]]
    counted[0] += _totals["calls"] - calls
    counted[1] += _totals["cpu"] - cpu
    counted[2] += time.process_time() - began


def pytest_unconfigure(config):
    where = os.environ.get("AWS_CALLS_OUT")
    if where:
        name = os.environ.get("PYTEST_XDIST_WORKER", "controller")
        with open(os.path.join(where, f"{name}.json"), "w") as out:
            json.dump({"process_cpu": time.process_time(), "files": _files}, out)
