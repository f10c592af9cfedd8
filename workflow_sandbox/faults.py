"""Failed API calls on demand: throttling, 5xx answers and broken connections, per HTTP attempt.

`hooks.py` asks `Faults.draw` before moto handles each ECS or CloudWatch Logs request (and, with
`after=True`, once moto has handled it). Every attempt botocore makes is one request here, so a fault
injected `times=3` outlives botocore's standard retry mode (three attempts) and reaches the caller.
"""

import json
import random
import threading
from dataclasses import dataclass

from botocore.exceptions import ConnectionClosedError, ConnectTimeoutError, ReadTimeoutError

# kind -> (HTTP status, error code, message) as the JSON protocol answers it.
ANSWERS = {
    "throttle": (400, "ThrottlingException", "Rate exceeded"),
    "server": (500, "ServerException", "Service encountered an internal error, please try again later."),
    "unavailable": (503, "ServiceUnavailableException", "Service Unavailable"),
}
# kind -> the exception botocore raises when the connection breaks. A real server cannot send these, so
# over the HTTP sandbox they reach the client as a 500 from the server's error handler.
BROKEN = {
    "connection": ConnectionClosedError,
    "read-timeout": ReadTimeoutError,
    "connect-timeout": ConnectTimeoutError,
}
KINDS = tuple(ANSWERS) + tuple(BROKEN)
# The services the simulation owns; faults never touch setup calls to EC2, ECR and the like.
SERVICES = ("ecs", "logs")


@dataclass
class _Injection:
    operation: str
    kind: str
    times: int
    after: bool


@dataclass
class Fault:
    kind: str
    after: bool

    def answer(self, url: str = ""):
        """The (status, headers, body) a server sends, or raises what botocore raises on a broken connection."""
        if self.kind in BROKEN:
            raise BROKEN[self.kind](endpoint_url=url or "http://localhost")
        status, code, message = ANSWERS[self.kind]
        headers = {"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": code}
        return status, headers, json.dumps({"__type": code, "message": message})


class Faults:
    """What fails next: injected faults first, in order, then random ones at `rates`."""

    def __init__(self, seed: int = 0):
        self._lock = threading.Lock()
        self._pending: list[_Injection] = []
        self.rates: dict[str, float] = {}
        self.count: dict[str, int] = dict.fromkeys(KINDS, 0)
        self._random = random.Random(seed)

    def inject(self, operation: str, kind: str, times: int = 1, after: bool = False) -> None:
        """The next `times` attempts of `operation` ("*" for any) fail with `kind`.

        With `after`, the call takes effect and then its answer is lost, as when a connection drops
        after the server acted: a retry repeats it.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown fault {kind!r}; expected one of {KINDS}")
        with self._lock:
            self._pending.append(_Injection(operation, kind, times, after))

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()
            self.rates = {}

    def draw(self, service: str, operation: str, after: bool) -> Fault | None:
        """The fault for this attempt of `operation`, at the moment given by `after`, if any."""
        if service not in SERVICES:
            return None
        with self._lock:
            for injection in self._pending:
                if injection.operation in (operation, "*") and injection.after == after:
                    injection.times -= 1
                    if injection.times <= 0:
                        self._pending.remove(injection)
                    return self._count(Fault(injection.kind, after))
            if after:
                return None
            for kind, rate in self.rates.items():
                if kind not in KINDS:
                    raise ValueError(f"unknown fault {kind!r} in rates; expected one of {KINDS}")
                if rate and self._random.random() < rate:
                    return self._count(Fault(kind, after))
        return None

    def _count(self, fault: Fault) -> Fault:
        self.count[fault.kind] += 1
        return fault
