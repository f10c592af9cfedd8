"""The only place that builds AWS sessions and clients: profile, region, endpoint, retries and time bounds, and the
checks every answer passes before the rest of the tool reads it."""

import functools
import math
import os
import time
from dataclasses import dataclass
from typing import Any

from . import __version__
from .errors import EARLIER_ATTEMPT_UNSURE, ConfigurationError, Malformed, is_throttling, translated
from .poller import Wait, current_wait


@dataclass(frozen=True)
class AwsConfig:
    """Unset values fall through to botocore's own chain (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL, ...)."""

    profile: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    timeout: float | None = None  # --timeout: how long one call may take, retries included (a wait bounds it more)


# Outside waits a failed call ends the command, so it gets more attempts than botocore's default 3;
# AWS_MAX_ATTEMPTS / AWS_RETRY_MODE or the profile's settings win when set.
DEFAULT_RETRIES = {"mode": "standard", "total_max_attempts": 8}
_CONFIG_NAMES = {"mode": "retry_mode", "total_max_attempts": "max_attempts"}
CONNECT_SECONDS = 10.0  # a TCP and TLS handshake that has not completed by then is not coming
READ_SECONDS = 60.0  # botocore's default wait for each read of an answer
LAST_ATTEMPT_SECONDS = 1.0  # the least an attempt is given: a wait's last poll, at its deadline, still gets this
_DEADLINE, _WAIT, _UNSURE = "workflow_deadline", "workflow_wait", "workflow_unsure"  # keys in botocore's call context


@functools.cache
def _models():
    """botocore's service models, parsed once per process however many sessions are built (tests build many)."""
    import botocore.session

    return botocore.session.get_session().get_component("data_loader")


class Clients:
    """Builds each client once, on first use, so `--help` never pays for importing boto3."""

    def __init__(self, config: AwsConfig):
        self._config = config
        self._session: Any = None
        self._clients: dict = {}

    def __call__(self, service: str, region: str | None = None, attempts: int | None = None):
        """The client for `service`, in `region` when given (a task's logs may live in another Region).

        `attempts` caps botocore's retries, for a request that must not be repeated blindly.
        """
        key = (service, region, attempts)
        if key not in self._clients:
            self._clients[key] = self._build(service, region, attempts)
        return self._clients[key]

    def _build(self, service: str, region: str | None, attempts: int | None):
        try:
            with translated():
                return self._client(service, region, attempts)
        except ValueError as error:
            # botocore reads the environment and config files as it builds: AWS_MAX_ATTEMPTS=abc, a bad endpoint.
            raise ConfigurationError(f"invalid AWS configuration: {error}") from None

    def _client(self, service: str, region: str | None, attempts: int | None):
        import boto3
        import botocore.session
        from botocore.config import Config
        from botocore.exceptions import NoCredentialsError

        if self._session is None:
            # botocore itself reads only AWS_DEFAULT_REGION; other SDKs and the AWS CLI read AWS_REGION first.
            default_region = self._config.region or os.environ.get("AWS_REGION") or None
            core = botocore.session.get_session()
            core.register_component("data_loader", _models())
            if self._config.profile:
                core.set_config_variable("profile", self._config.profile)
            # Without credentials nothing can work, whatever else is missing: botocore would first ask for a
            # Region, and only at the first call say that there are no credentials.
            if core.get_credentials() is None:
                raise NoCredentialsError()
            # Set last: a configuration error raised above leaves this object as it was.
            self._retries = {
                key: value for key, value in DEFAULT_RETRIES.items() if core.get_config_variable(_CONFIG_NAMES[key]) is None
            }
            self._session = boto3.session.Session(botocore_session=core, region_name=default_region)
        retries = {**self._retries, "total_max_attempts": attempts} if attempts else self._retries
        timeout = self._config.timeout
        client = self._session.client(
            service,
            region_name=region,
            endpoint_url=self._config.endpoint_url,
            config=Config(
                retries=retries or None,  # type: ignore[arg-type]  # a TypedDict in the stubs
                user_agent_extra=f"workflow/{__version__}",
                connect_timeout=min(CONNECT_SECONDS, timeout or CONNECT_SECONDS),
                read_timeout=min(READ_SECONDS, timeout or READ_SECONDS),
            ),
        )
        _bounded(client, timeout)
        _checked(client)
        return client


def _bounded(client, timeout: float | None) -> None:
    """Bound each call, retries included, by `timeout` and by the deadline of the wait it is made in; retry
    without a quota, so the attempts promised hold for every call of a long command.

    botocore's standard mode keeps a retry quota per client (500 tokens, 5 per throttled retry, 14 per other):
    a long wait under throttling spends it, and from then on a call fails at its first error. The waits here
    pace themselves (the poller backs off, up to 30 s), so the quota protects nothing that is not protected.
    """
    events = client.meta.events
    service = client.meta.service_model.service_id.hyphenize()
    calls = _Calls(timeout, client.meta.config.read_timeout)
    events.register(f"before-call.{service}", calls.begin)
    events.register(f"request-created.{service}", calls.attempt)
    retries = client.meta.config.retries or {}
    if retries.get("mode") in ("standard", "adaptive"):
        unique_id = f"retry-config-{service}"
        events.unregister(f"needs-retry.{service}", unique_id=unique_id)
        handler = _retry_handler(service, retries.get("total_max_attempts"), calls)
        events.register(f"needs-retry.{service}", handler.needs_retry, unique_id=unique_id)
    else:  # legacy mode, or retries turned off: keep botocore's handler, but not past the deadline
        events.register_first(f"needs-retry.{service}", calls.guard)


class _Calls:
    """Each call's deadline, its attempts' read timeouts, and what its answers say (botocore's event hooks)."""

    def __init__(self, timeout: float | None, read_timeout: float):
        self.timeout = math.inf if timeout is None else timeout
        self.read_timeout = read_timeout

    def begin(self, context: dict, **_) -> None:
        wait = current_wait()
        budget = self.timeout if wait is None else min(self.timeout, wait.remaining())
        context[_DEADLINE] = time.monotonic() + max(budget, LAST_ATTEMPT_SECONDS)
        context[_WAIT] = wait

    def attempt(self, request, **_) -> None:
        """Each attempt may read for no longer than its call has left (botocore's per-request read_timeout)."""
        context = getattr(request, "context", None)
        if context is None or context.get(_DEADLINE) is None:
            return
        left = context[_DEADLINE] - time.monotonic()
        if left < self.read_timeout:
            context["read_timeout"] = max(left, LAST_ATTEMPT_SECONDS)

    def answered(self, context: dict, response, caught_exception) -> bool:
        """Note one attempt's outcome; True when an earlier attempt of the call may have been carried out."""
        from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError

        earlier = bool(context.get(_UNSURE))
        status, code = 0, ""
        if response is not None:
            status = getattr(response[0], "status_code", 0) or 0
            error = response[1].get("Error") if isinstance(response[1], dict) else None
            code = str(error.get("Code") or "") if isinstance(error, dict) else ""
        throttled = is_throttling(code, status)
        wait: Wait | None = context.get(_WAIT)
        if wait is not None:
            wait.answered(throttled)
        if caught_exception is not None:
            unsure = not isinstance(caught_exception, EndpointConnectionError | ConnectTimeoutError)
        else:
            unsure = status >= 500
        context[_UNSURE] = earlier or unsure
        return earlier

    def left(self, context: dict) -> float:
        return context.get(_DEADLINE, math.inf) - time.monotonic()

    def guard(self, response, caught_exception, request_dict, **_):
        """For botocore's legacy retries: none once the call's time is up (False wins over their delay)."""
        context = request_dict["context"]
        earlier = self.answered(context, response, caught_exception)
        if self.left(context) < LAST_ATTEMPT_SECONDS:
            _mark(earlier, response, caught_exception)
            return False
        return None


def _mark(earlier: bool, response, caught_exception) -> None:
    """Say on the call's final answer that an earlier attempt may have been carried out (see errors.translated)."""
    if not earlier:
        return
    if caught_exception is not None:
        setattr(caught_exception, EARLIER_ATTEMPT_UNSURE, True)
    elif response is not None and isinstance(response[1], dict):
        response[1].setdefault("ResponseMetadata", {})[EARLIER_ATTEMPT_UNSURE] = True


def _retry_handler(service: str, max_attempts: int | None, calls: _Calls):
    """botocore's standard retry handler (conditions, backoff with jitter), with a quota that never runs dry and
    no retry that would start after the call's deadline."""
    from botocore.retries import quota, standard

    class Unspent(quota.RetryQuota):
        def acquire(self, capacity_amount: int) -> bool:
            return True

        def release(self, capacity_amount: int) -> None:
            pass

    class Bounded(standard.RetryHandler):
        def needs_retry(self, **kwargs):
            context = kwargs["request_dict"]["context"]
            response, caught = kwargs.get("response"), kwargs.get("caught_exception")
            earlier = calls.answered(context, response, caught)
            delay = super().needs_retry(**kwargs)
            if delay is None or delay is False:
                _mark(earlier, response, caught)
                return delay
            left = calls.left(context)
            if left - LAST_ATTEMPT_SECONDS <= 0:
                _mark(earlier, response, caught)
                return False
            return min(delay, left - LAST_ATTEMPT_SECONDS)

    adapter = standard.RetryEventAdapter()
    detector = standard.ThrottlingErrorDetector(adapter)
    return Bounded(
        retry_policy=standard.RetryPolicy(
            retry_checker=standard.StandardRetryConditions(max_attempts=max_attempts or standard.DEFAULT_MAX_ATTEMPTS),
            retry_backoff=standard.ExponentialBackoff(service_name=service, throttling_detector=detector),
        ),
        retry_event_adapter=adapter,
        retry_quota=standard.RetryQuotaChecker(Unspent(), detector),  # type: ignore[arg-type]  # as botocore passes it
        service_name=service,
    )


def _checked(client) -> None:
    """A successful answer must be what the API model promises before anything reads it: a proxy's error page,
    a truncated or undecodable body, a list, or fields of the wrong type are Malformed, never a KeyError.

    JSON bodies are checked as they came, before botocore's parser, which passes some of these on silently
    (a page or a truncated body as an empty answer, a string where a list of strings goes as its characters);
    XML ones (STS) as botocore parsed them."""
    events = client.meta.events
    service = client.meta.service_model.service_id.hyphenize()
    if client.meta.service_model.resolved_protocol in ("json", "rest-json"):
        events.register(f"before-parse.{service}", _json_body)
    else:
        events.register(f"after-call.{service}", _parsed_answer)


def _json_body(operation_model, response_dict: dict, **_) -> None:
    import json

    if response_dict.get("status_code", 200) >= 300 or operation_model.has_streaming_output:
        return
    shape, name = operation_model.output_shape, operation_model.name
    body = response_dict.get("body") or b""
    if not body.strip():
        if _has_members(shape):
            raise Malformed("an empty body", name)
        return
    try:
        document = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise Malformed(f"a body that is not UTF-8 ({error.reason} at byte {error.start})", name) from None
    except ValueError as error:
        raise Malformed(f"a body that is not JSON ({error}): {_excerpt(body)}", name) from None
    if not isinstance(document, dict):
        raise Malformed(f"a JSON {_kind(document)}, not an object", name)
    if shape is None:
        return
    members = [m.serialization.get("name", n) for n, m in shape.members.items()]
    if members and not any(document.get(member) is not None for member in members):
        raise Malformed(f"none of the answer's fields: {_excerpt(body)}", name)
    problem = _mismatch(document, shape, "the answer", _JSON_TYPES)
    if problem:
        raise Malformed(problem, name)


def _parsed_answer(http_response, parsed, model, **_) -> None:
    if http_response is None or http_response.status_code >= 300 or model.output_shape is None:
        return
    if model.has_streaming_output or not isinstance(parsed, dict):
        return
    shape = model.output_shape
    if _has_members(shape) and not any(name in parsed for name in shape.members):
        raise Malformed("none of the answer's fields", model.name)
    problem = _mismatch(parsed, shape, "the answer", _PARSED_TYPES)
    if problem:
        raise Malformed(problem, model.name)


def _excerpt(body: bytes) -> str:
    text = " ".join(body[:80].decode("utf-8", "replace").split())
    return repr(text + ("..." if len(body) > 80 else ""))


def _has_members(shape) -> bool:
    return shape is not None and bool(getattr(shape, "members", None))


def _kind(value) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number" if isinstance(value, int | float) else type(value).__name__)


def _types() -> tuple[dict[str, tuple[type, ...]], dict[str, tuple[type, ...]]]:
    from datetime import datetime

    number = (int, float)
    json_types = {"string": (str,), "integer": (int,), "long": (int,), "float": (*number, str), "double": (*number, str),
                  "boolean": (bool,), "timestamp": (*number, str), "blob": (str,)}
    parsed_types = {**json_types, "float": number, "double": number, "timestamp": (datetime,), "blob": (bytes, bytearray)}
    return json_types, parsed_types


_JSON_TYPES, _PARSED_TYPES = _types()  # the scalars as a JSON body carries them, and as botocore parses them


def _mismatch(value, shape, path, scalars: dict[str, tuple[type, ...]]) -> str | None:
    """Where `value` first differs in type from `shape`, or None. Members are found by their serialized names.

    Every answer is checked, and a DescribeTasks answer has thousands of values: the path is kept as a chain
    of (parent, step) and spelled out only for the one value that is wrong."""
    kind = shape.type_name
    if kind == "structure":
        if shape.metadata.get("document"):
            return None
        if not isinstance(value, dict):
            return f"{_spelled(path)} is {_a(_kind(value))}, not an object"
        members = _members(shape, scalars is _JSON_TYPES)
        for key, item in value.items():
            found = members.get(key)
            if found is not None and item is not None:
                problem = _mismatch(item, found[1], (path, "'s ", found[0]), scalars)
                if problem:
                    return problem
        return None
    if kind == "list":
        if not isinstance(value, list):
            return f"{_spelled(path)} is {_a(_kind(value))}, not a list"
        member = shape.member
        for i, item in enumerate(value):
            if item is None:
                return f"{_spelled((path, '[', i))} is null"
            problem = _mismatch(item, member, (path, "[", i), scalars)
            if problem:
                return problem
        return None
    if kind == "map":
        if not isinstance(value, dict):
            return f"{_spelled(path)} is {_a(_kind(value))}, not a map"
        for key, item in value.items():
            problem = _mismatch(item, shape.value, (path, "[", repr(key)), scalars) if item is not None else None
            if problem:
                return problem
        return None
    expected = scalars.get(kind)
    if expected is None or (kind == "blob" and hasattr(value, "read")):
        return None
    if not isinstance(value, expected) or (kind != "boolean" and isinstance(value, bool)):
        return f"{_spelled(path)} is {_a(_kind(value))}, not {_a(kind)}"
    return None


def _a(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def _spelled(path) -> str:
    """'the answer', or a chain of (parent, step, key) from `_mismatch`: "the answer's tasks[0]'s cpu"."""
    if isinstance(path, str):
        return path
    parent, step, key = path
    return f"{_spelled(parent)}{step}{key}{']' if step == '[' else ''}"


@functools.lru_cache(maxsize=256)  # a shape per client; a command builds a few clients, a test session thousands
def _members(shape, serialized: bool) -> dict:
    """A structure's members by the key an answer carries them under: (member name, member shape)."""
    return {(member.serialization.get("name", name) if serialized else name): (name, member)
            for name, member in shape.members.items()}
