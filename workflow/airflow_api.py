"""Airflow's own view of the cluster through its REST API (2 and 3): health, running task instances, version.

The only code speaking to Airflow's api-server (Airflow 3) or webserver (Airflow 2). What it reads:

  health                 Airflow 3 `GET /api/v2/monitor/health`, Airflow 2 `GET /health`: no authentication,
                         always 200, the body says what is healthy; a scheduler that never ran is "unhealthy"
                         with no heartbeat, a triggerer or dag-processor that never ran has status null.
  running task instances `GET /api/{v2|v1}/dags/~/dagRuns/~/taskInstances?state=running&limit=N`:
                         `total_entries` and one page of `task_instances` (the server caps a page at its
                         `[api] maximum_page_limit`, 100 by default).
  version                `GET /api/{v2|v1}/version`: no authentication.

Authentication: Airflow 3 takes a bearer token from `POST /auth/token` with {"username", "password"} (201,
{"access_token"}; the simple and FAB auth managers both serve it), obtained on first need and obtained once
more when the API answers 401, or 403 "Invalid JWT token" (another api-server's signing key). Airflow 2
takes HTTP basic authentication on /api/v1 when `[api] auth_backends` lists the FAB basic_auth backend.

Which major version answers is found out once, from what the server says: Airflow 3 answers
/api/v2/monitor/health with the health document (and /health with 404); Airflow 2 answers 404 there and
the health document at /health.

Every failure is an AirflowApiError: AirflowUnreachable (no answer, refused, DNS, TLS, timeouts, and 429/502/
503/504 that outlived the retries: a load balancer with no healthy api-server behind it answers 503),
AirflowUnauthorized (exit 2) and AirflowUnexpectedAnswer (not JSON, HTML, the wrong shape, another status).
No message and no repr holds the password or a token.
"""

import base64
import errno
import json
import re
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import urllib3
from urllib3 import exceptions as http_errors

from .errors import USAGE, ConfigurationError, WorkflowError

HEALTHY = "healthy"
COMPONENTS = ("scheduler", "triggerer", "dag_processor")
# Beyond this an answer is not one of the documents asked for: a page of 100 task instances with their
# rendered fields is well under it.
MAX_BODY_BYTES = 8 * 1024 * 1024
RETRY_STATUSES = frozenset({429, 502, 503, 504})
MAX_BACKOFF_SECONDS = 5.0

# urllib3 2 tells a name that does not resolve apart; 1.26 (which botocore also accepts) reports a connection error.
_NAME_RESOLUTION_ERRORS: tuple[type[Exception], ...] = tuple(
    kind for kind in [getattr(http_errors, "NameResolutionError", None)] if kind is not None)
_HEALTH_PATH = {3: "/api/v2/monitor/health", 2: "/health"}
_API_PREFIX = {3: "/api/v2", 2: "/api/v1"}


class AirflowApiError(WorkflowError):
    """Airflow's API did not give the answer asked for."""

    def __init__(self, message: str, url: str = ""):
        super().__init__(message)
        self.url = url


class AirflowUnreachable(AirflowApiError):
    """No usable answer at all: refused, unresolvable, TLS, timed out, or the load balancer had no one to ask."""


class AirflowUnauthorized(AirflowApiError, ConfigurationError):
    """Airflow refused the credentials (401), or the user may not read what was asked (403)."""

    exit_code = USAGE


class AirflowUnexpectedAnswer(AirflowApiError):
    """An answer that is not the document asked for: not JSON, an HTML page, another shape or status."""


class InvalidAirflowUrl(AirflowApiError, ConfigurationError):
    exit_code = USAGE


class InvalidCaBundle(AirflowApiError, ConfigurationError):
    exit_code = USAGE


@dataclass(frozen=True)
class Credentials:
    """A user of Airflow's API; the password never shows in a repr."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class Timeouts:
    """Seconds: to connect, to wait for each read of the answer, and for a whole call with its retries."""

    connect: float = 3.0
    read: float = 10.0
    deadline: float = 30.0


@dataclass(frozen=True)
class ComponentHealth:
    """One component as Airflow's health endpoint reports it.

    `status` is what Airflow says: "healthy" (its job is running and heartbeated within the component's
    health_check_threshold, 30 s by default), "unhealthy", or None for a triggerer or dag-processor that
    never ran. A scheduler that never ran is "unhealthy" with no heartbeat.
    """

    name: str
    status: str | None
    latest_heartbeat: datetime | None  # aware, UTC

    @property
    def healthy(self) -> bool:
        return self.status == HEALTHY

    @property
    def ever_ran(self) -> bool:
        return self.latest_heartbeat is not None


@dataclass(frozen=True)
class Health:
    """Airflow's health document. A component the answer does not mention at all is None, which is not the
    same as one that never ran (a ComponentHealth with no heartbeat)."""

    major: int  # 2 or 3: which Airflow answered
    metadatabase_status: str | None
    scheduler: ComponentHealth
    triggerer: ComponentHealth | None
    dag_processor: ComponentHealth | None

    @property
    def metadatabase_ok(self) -> bool:
        return self.metadatabase_status == HEALTHY

    def component(self, name: str) -> ComponentHealth | None:
        return {"scheduler": self.scheduler, "triggerer": self.triggerer, "dag_processor": self.dag_processor}[name]


@dataclass(frozen=True)
class TaskInstance:
    dag_id: str
    task_id: str
    run_id: str
    map_index: int  # -1 when the task is not mapped
    hostname: str | None  # where it runs; None before a worker picked it up
    start_date: datetime | None


@dataclass(frozen=True)
class RunningTaskInstances:
    """`total` counts every running task instance the user may read; `task_instances` is the first page."""

    total: int
    task_instances: tuple[TaskInstance, ...]

    @property
    def complete(self) -> bool:
        return len(self.task_instances) >= self.total


@dataclass(frozen=True)
class _Answer:
    status: int
    content_type: str
    body: bytes
    retry_after: str | None = None
    location: str | None = None


class AirflowApi:
    """A client of one Airflow api-server (3) or webserver (2), found at `base_url` (its `[api] base_url`
    or `[webserver] base_url`, path prefix included).

    TLS is verified against `ca_bundle` when given, else the system's trust store (which OpenSSL's
    SSL_CERT_FILE / SSL_CERT_DIR override). `major` skips the probe when the version is known. `sleep` and
    `monotonic` are the clock the retries and the deadline use.
    """

    def __init__(
        self,
        base_url: str,
        credentials: Credentials | None = None,
        *,
        timeouts: Timeouts = Timeouts(),
        retries: int = 3,
        backoff: float = 0.5,
        ca_bundle: str | None = None,
        major: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.base_url = _checked_base_url(base_url)
        self.credentials = credentials
        self.timeouts = timeouts
        self.retries = max(retries, 0)
        self.backoff = backoff
        if major not in (None, 2, 3):
            raise ValueError(f"major must be 2 or 3, not {major!r}")
        self._major: int | None = major
        self._sleep, self._monotonic = sleep, monotonic
        self._token: str | None = None
        self._lock = threading.Lock()
        pool: dict[str, Any] = {"num_pools": 2, "maxsize": 4}
        if self.base_url.startswith("https://"):  # loading the trust store takes a while: only where TLS is spoken
            try:
                pool["ssl_context"] = ssl.create_default_context(cafile=ca_bundle)
            except (OSError, ssl.SSLError) as error:
                raise InvalidCaBundle(f"cannot use {ca_bundle} as the CA bundle for Airflow's TLS: "
                                      f"{getattr(error, 'strerror', None) or error}") from None
        self._pool = urllib3.PoolManager(**pool)

    def __repr__(self) -> str:
        user = f", username={self.credentials.username!r}" if self.credentials else ""
        return f"AirflowApi({self.base_url!r}{user})"

    def close(self) -> None:
        self._pool.clear()

    # --- the calls ---------------------------------------------------------------------------------------

    def major(self) -> int:
        """2 or 3, from what the server answers; asked once per client."""
        return self._ensure_major(self._deadline())[0]

    def health(self) -> Health:
        deadline = self._deadline()
        major, answer = self._ensure_major(deadline)
        if answer is None:  # the probe that found the version read this very document: no second request
            answer = self._call("GET", _HEALTH_PATH[major], deadline)
        return parse_health(self._json(answer, 200, "the health document", _HEALTH_PATH[major]), major, self.base_url)

    def running_task_instances(self, limit: int = 100) -> RunningTaskInstances:
        """Task instances in state running, all Dags and runs: their number and the first `limit` of them."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        deadline = self._deadline()
        major = self._major_within(deadline)
        path = f"{_API_PREFIX[major]}/dags/~/dagRuns/~/taskInstances"
        query = urlencode({"state": "running", "limit": limit})
        answer = self._authorized_get(f"{path}?{query}", deadline, "list running task instances")
        return parse_task_instances(self._json(answer, 200, "the task instance list", path), self.base_url)

    def version(self) -> str:
        deadline = self._deadline()
        path = f"{_API_PREFIX[self._major_within(deadline)]}/version"
        doc = _object(self._json(self._call("GET", path, deadline), 200, "the version document", path), "version answer")
        version = doc.get("version")
        if not isinstance(version, str) or not version:
            raise AirflowUnexpectedAnswer(f"Airflow at {self.base_url} answered {path} without a version", self.base_url)
        return version

    # --- which Airflow ------------------------------------------------------------------------------------

    def _major_within(self, deadline: float) -> int:
        return self._ensure_major(deadline)[0]

    def _ensure_major(self, deadline: float) -> tuple[int, "_Answer | None"]:
        """The major version, and the health answer when this call's probe just read it."""
        if self._major is not None:
            return self._major, None
        with self._lock:
            if self._major is not None:
                return self._major, None
            self._major, answer = self._detect(deadline)
            return self._major, answer

    def _detect(self, deadline: float) -> tuple[int, "_Answer"]:
        for major in (3, 2):
            answer = self._call("GET", _HEALTH_PATH[major], deadline)
            if answer.status in (401, 403):
                raise AirflowUnauthorized(
                    f"Airflow at {self.base_url} asks for credentials even for {_HEALTH_PATH[major]} "
                    f"(HTTP {answer.status}): is something in front of it demanding a login?",
                    self.base_url,
                )
            if 300 <= answer.status < 400:
                raise self._redirected(answer, _HEALTH_PATH[major])
            if answer.status == 200 and _looks_like_health(answer):
                return major, answer
        raise AirflowUnexpectedAnswer(
            f"{self.base_url} does not answer as Airflow does: neither /api/v2/monitor/health (Airflow 3) "
            f"nor /health (Airflow 2) is Airflow's health document ({_describe(answer)}); "
            "is this the api-server's or webserver's base URL?",
            self.base_url,
        )

    # --- authentication -----------------------------------------------------------------------------------

    def _authorized_get(self, path_and_query: str, deadline: float, what: str) -> _Answer:
        major = self._major_within(deadline)
        if major == 2:
            answer = self._call("GET", path_and_query, deadline, self._basic_header())
            if answer.status in (401, 403):
                raise self._refused(answer, what, basic=True)
            return answer
        renewed = False
        if self.credentials and self._token is None:
            self._renew_token(deadline)
            renewed = True
        answer = self._call("GET", path_and_query, deadline, self._bearer_header())
        if self.credentials and not renewed and _stale_token(answer):
            self._renew_token(deadline)
            answer = self._call("GET", path_and_query, deadline, self._bearer_header())
        if answer.status in (401, 403):
            raise self._refused(answer, what, basic=False)
        return answer

    def _basic_header(self) -> dict[str, str]:
        if not self.credentials:
            return {}
        pair = f"{self.credentials.username}:{self.credentials.password}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}

    def _bearer_header(self) -> dict[str, str]:
        token = self._token
        return {"Authorization": f"Bearer {token}"} if token else {}

    def _renew_token(self, deadline: float) -> None:
        assert self.credentials is not None
        self._token = None
        body = json.dumps({"username": self.credentials.username, "password": self.credentials.password}).encode()
        answer = self._call("POST", "/auth/token", deadline, {"Content-Type": "application/json"}, body)
        if answer.status in (400, 401, 403, 422):
            detail = _detail(answer)
            raise AirflowUnauthorized(
                f"Airflow at {self.base_url} refused a token to user {self.credentials.username!r}: "
                f"HTTP {answer.status}" + (f" {detail}" if detail else ""),
                self.base_url,
            )
        if answer.status in (404, 405) or (answer.status == 200 and _is_html(answer)):
            raise AirflowUnauthorized(
                f"Airflow at {self.base_url} issues no tokens at /auth/token ({_describe(answer)}): its auth "
                "manager needs another way to log in",
                self.base_url,
            )
        if answer.status not in (200, 201):
            raise AirflowUnexpectedAnswer(f"Airflow at {self.base_url} answered /auth/token with {_describe(answer)}",
                                          self.base_url)
        # The body holds the token: nothing of it goes into a message.
        try:
            token = json.loads(answer.body).get("access_token")
        except (ValueError, RecursionError, AttributeError):
            token = None
        if not isinstance(token, str) or not token or not token.isascii() or any(c in token for c in "\r\n "):
            raise AirflowUnexpectedAnswer(
                f"Airflow at {self.base_url} answered /auth/token without a usable access_token", self.base_url)
        self._token = token

    def _refused(self, answer: _Answer, what: str, basic: bool) -> AirflowUnauthorized:
        detail = _detail(answer)
        status = f"HTTP {answer.status}" + (f" {detail}" if detail else "")
        if not self.credentials:
            return AirflowUnauthorized(f"Airflow at {self.base_url} needs credentials to {what} ({status})", self.base_url)
        user = self.credentials.username
        if answer.status == 403 and "Invalid JWT token" not in detail:
            return AirflowUnauthorized(f"Airflow at {self.base_url} does not let user {user!r} {what} ({status})",
                                       self.base_url)
        hint = (": a wrong password, or the webserver's [api] auth_backends lacks "
                "airflow.providers.fab.auth_manager.api.auth.backend.basic_auth") if basic else ""
        return AirflowUnauthorized(f"Airflow at {self.base_url} refused user {user!r} ({status}){hint}", self.base_url)

    # --- the wire -----------------------------------------------------------------------------------------

    def _deadline(self) -> float:
        return self._monotonic() + self.timeouts.deadline

    def _url(self, path: str) -> str:
        return self.base_url + path

    def _call(self, method: str, path: str, deadline: float, headers: Mapping[str, str] | None = None,
              body: bytes | None = None) -> _Answer:
        """One request, tried again after connection failures and 429/502/503/504 until tries or time run out."""
        url = self._url(path)
        headers = {"Accept": "application/json", "User-Agent": "airflow-ecs-workflow", **(headers or {})}
        attempt = 0
        while True:
            remaining = deadline - self._monotonic()
            if remaining <= 0:
                raise AirflowUnreachable(f"Airflow at {self.base_url} gave no answer to {path} within "
                                         f"{self.timeouts.deadline:g} s", self.base_url)
            retry_after: str | None = None
            try:
                answer = self._once(method, url, headers, body, remaining)
            except http_errors.SSLError as error:
                raise AirflowUnreachable(f"cannot reach Airflow at {self.base_url}: TLS failed: {_reason(error)} "
                                         "(pass the CA bundle that signed its certificate)", self.base_url) from None
            except http_errors.LocationValueError as error:
                raise InvalidAirflowUrl(f"cannot use {self.base_url} as Airflow's URL: {error}", self.base_url) from None
            except http_errors.HTTPError as error:
                failure = _connection_failure(error, self.timeouts, remaining)
            else:
                if answer.status not in RETRY_STATUSES:
                    return answer
                failure, retry_after = f"it answered {_describe(answer)}", answer.retry_after
                if answer.status == 503:
                    failure += " (a load balancer with no healthy api-server behind it answers so)"
            if attempt >= self.retries:
                raise AirflowUnreachable(f"cannot reach Airflow at {self.base_url} ({path}): {failure}"
                                         + (f", after {attempt + 1} tries" if attempt else ""), self.base_url)
            pause = min(self.backoff * 2**attempt, MAX_BACKOFF_SECONDS)
            if retry_after and retry_after.isdigit():
                pause = min(max(pause, float(retry_after)), MAX_BACKOFF_SECONDS)
            if self._monotonic() + pause >= deadline:
                raise AirflowUnreachable(f"cannot reach Airflow at {self.base_url} ({path}): {failure}, "
                                         f"and {self.timeouts.deadline:g} s are spent", self.base_url)
            self._sleep(pause)
            attempt += 1

    def _once(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None, remaining: float) -> _Answer:
        timeout = urllib3.Timeout(connect=min(self.timeouts.connect, remaining), read=min(self.timeouts.read, remaining))
        response = self._pool.request(method, url, body=body, headers=dict(headers), timeout=timeout, retries=False,
                                      redirect=False, preload_content=False)
        try:
            data = response.read(MAX_BODY_BYTES + 1)
            if len(data) > MAX_BODY_BYTES:
                return _Answer(response.status, "oversized", b"")
            content_type = response.headers.get("Content-Type", "") or ""
            return _Answer(response.status, content_type.lower(), data, response.headers.get("Retry-After"),
                           response.headers.get("Location"))
        finally:
            response.release_conn()

    def _redirected(self, answer: _Answer, path: str) -> AirflowUnexpectedAnswer:
        """Redirects are not followed (credentials would go along): the operator gives the URL they lead to."""
        target = _without_credentials(answer.location or "")
        return AirflowUnexpectedAnswer(
            f"Airflow at {self.base_url} redirected {path} (HTTP {answer.status}"
            + (f" to {target}" if target else "") + "): give the URL it redirects to", self.base_url)

    def _json(self, answer: _Answer, expected: int, what: str, path: str) -> Any:
        if answer.status != expected:
            if 300 <= answer.status < 400:
                raise self._redirected(answer, path)
            if answer.status in (401, 403):
                raise AirflowUnauthorized(f"Airflow at {self.base_url} refused to answer {path} ({_describe(answer)})",
                                          self.base_url)
            raise AirflowUnexpectedAnswer(f"Airflow at {self.base_url} answered {path} with {_describe(answer)}",
                                          self.base_url)
        if answer.content_type == "oversized":
            raise AirflowUnexpectedAnswer(f"Airflow at {self.base_url} answered {path} with more than "
                                          f"{MAX_BODY_BYTES} bytes: not {what}", self.base_url)
        if _is_html(answer):
            raise AirflowUnexpectedAnswer(f"Airflow at {self.base_url} answered {path} with {_describe(answer)}, "
                                          f"not {what}", self.base_url)
        try:
            return json.loads(answer.body)
        except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise AirflowUnexpectedAnswer(f"Airflow at {self.base_url} answered {path} with {_describe(answer)} "
                                          f"that is not JSON, not {what}", self.base_url) from None


# --- parsing: defensive, every failure an AirflowUnexpectedAnswer ---------------------------------------------


def parse_health(doc: Any, major: int, url: str = "") -> Health:
    """Airflow's health document (2 or 3) as a Health."""
    doc = _object(doc, "health answer", url)
    database = _object(doc.get("metadatabase"), "health answer's metadatabase", url)
    components: dict[str, ComponentHealth | None] = {}
    for name in COMPONENTS:
        raw = doc.get(name)
        if raw is None:  # Airflow 3 may leave dag_processor out; older Airflow 2 releases knew no triggerer
            components[name] = None
            continue
        raw = _object(raw, f"health answer's {name}", url)
        components[name] = ComponentHealth(
            name,
            _optional_str(raw.get("status"), f"{name} status", url),
            _timestamp(raw.get(f"latest_{name}_heartbeat"), f"{name} heartbeat", url),
        )
    scheduler = components["scheduler"]
    if scheduler is None:
        raise AirflowUnexpectedAnswer(f"Airflow's health answer{_at(url)} says nothing of the scheduler", url)
    return Health(major, _optional_str(database.get("status"), "metadatabase status", url), scheduler,
                  components["triggerer"], components["dag_processor"])


def parse_task_instances(doc: Any, url: str = "") -> RunningTaskInstances:
    """A task instance collection (Airflow 2 or 3) as RunningTaskInstances."""
    doc = _object(doc, "task instance list", url)
    total = doc.get("total_entries")
    raw = doc.get("task_instances")
    if not _is_int(total) or total < 0 or not isinstance(raw, list):
        raise AirflowUnexpectedAnswer(f"Airflow's task instance list{_at(url)} lacks total_entries or task_instances",
                                      url)
    instances = []
    for item in raw:
        item = _object(item, "task instance", url)
        map_index = item.get("map_index", -1)
        hostname = item.get("hostname")
        fields = (item.get("dag_id"), item.get("task_id"), item.get("dag_run_id"))
        if not all(isinstance(f, str) for f in fields) or not _is_int(map_index):
            raise AirflowUnexpectedAnswer(f"a task instance in Airflow's list{_at(url)} lacks dag_id, task_id, "
                                          "dag_run_id or map_index", url)
        instances.append(TaskInstance(
            *fields, map_index,  # type: ignore[arg-type]
            _optional_str(hostname, "task instance hostname", url) or None,
            _timestamp(item.get("start_date"), "task instance start_date", url),
        ))
    return RunningTaskInstances(total, tuple(instances))


def _object(value: Any, what: str, url: str = "") -> dict:
    if not isinstance(value, dict):
        raise AirflowUnexpectedAnswer(f"Airflow's {what}{_at(url)} is not a JSON object", url)
    return value


def _optional_str(value: Any, what: str, url: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise AirflowUnexpectedAnswer(f"Airflow's {what}{_at(url)} is not a string", url)


def _timestamp(value: Any, what: str, url: str) -> datetime | None:
    text = _optional_str(value, what, url)
    if text is None:
        return None
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise AirflowUnexpectedAnswer(f"Airflow's {what}{_at(url)} is no timestamp", url) from None
    # Airflow keeps UTC; a stamp without an offset means UTC.
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _at(url: str) -> str:
    return f" at {url}" if url else ""


# --- describing answers and failures ---------------------------------------------------------------------------


def _checked_base_url(base_url: str) -> str:
    try:
        parsed = urllib3.util.parse_url(base_url.strip())
    except http_errors.LocationParseError:
        raise InvalidAirflowUrl("Airflow's URL cannot be parsed: give it as https://host[:port][/path]") from None
    if parsed.auth:
        raise InvalidAirflowUrl("Airflow's URL must not hold credentials: give them apart from the URL")
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidAirflowUrl(f"Airflow's URL must be http(s)://host[:port][/path], not {base_url!r}")
    if parsed.query or parsed.fragment:
        raise InvalidAirflowUrl(f"Airflow's URL takes no query or fragment: {parsed.scheme}://{parsed.netloc}{parsed.path or ''}")
    return f"{parsed.scheme}://{parsed.netloc}{(parsed.path or '').rstrip('/')}"


def _without_credentials(url: str) -> str:
    """scheme://host[:port]/path of a URL, without user info or query, or "" when it is none."""
    try:
        parsed = urllib3.util.parse_url(url)
    except http_errors.LocationParseError:
        return ""
    if not parsed.host:
        return parsed.path or ""
    return f"{parsed.scheme or 'http'}://{parsed.host}{f':{parsed.port}' if parsed.port else ''}{parsed.path or ''}"


def _looks_like_health(answer: _Answer) -> bool:
    if _is_html(answer):
        return False
    try:
        doc = json.loads(answer.body)
    except (ValueError, RecursionError):
        return False
    return isinstance(doc, dict) and "metadatabase" in doc


def _is_html(answer: _Answer) -> bool:
    return "html" in answer.content_type or answer.body.lstrip()[:1] == b"<"


def _describe(answer: _Answer) -> str:
    """The status and what kind of body came with it, never the body itself beyond an HTML title or a detail."""
    text = f"HTTP {answer.status}"
    if _is_html(answer):
        title = re.search(rb"<title[^>]*>([^<]{1,80})</title>", answer.body, re.IGNORECASE)
        page = title.group(1).decode("utf-8", "replace").strip() if title else ""
        return text + " and an HTML page" + (f" ({page!r})" if page else "")
    detail = _detail(answer)
    if detail:
        return f"{text} {detail}"
    kind = answer.content_type.split(";")[0] or "no content type"
    return f"{text} ({kind}, {len(answer.body)} bytes)"


def _detail(answer: _Answer) -> str:
    """The `detail` (FastAPI) or `title` (connexion) of a JSON error answer, quoted and short."""
    try:
        doc = json.loads(answer.body)
    except (ValueError, RecursionError):
        return ""
    if not isinstance(doc, dict):
        return ""
    for key in ("detail", "title", "error"):
        value = doc.get(key)
        if isinstance(value, str) and value:
            return repr(value[:120])
    return ""


def _stale_token(answer: _Answer) -> bool:
    """401, or 403 "Invalid JWT token": a token that expired, or was signed by another api-server's key."""
    if answer.status == 401:
        return True
    return answer.status == 403 and "Invalid JWT token" in _detail(answer)


def _reason(error: BaseException) -> str:
    inner = getattr(error, "reason", None) or (error.args[0] if error.args else None) or error
    text = str(inner)
    return text if len(text) <= 200 else text[:200] + "..."


def _connection_failure(error: http_errors.HTTPError, timeouts: Timeouts, remaining: float) -> str:
    if isinstance(error, _NAME_RESOLUTION_ERRORS):
        return "its host name does not resolve"
    if isinstance(error, http_errors.NewConnectionError):
        refused = isinstance(error.__cause__ or error.__context__, ConnectionRefusedError) or \
            f"[Errno {errno.ECONNREFUSED}]" in str(error)
        return "connection refused" if refused else f"cannot connect: {_reason(error)}"
    if isinstance(error, http_errors.ConnectTimeoutError):
        return f"no connection within {min(timeouts.connect, remaining):.3g} s"
    if isinstance(error, http_errors.ReadTimeoutError):
        return f"no answer within {min(timeouts.read, remaining):.3g} s"
    if isinstance(error, http_errors.ProtocolError):
        return f"the connection broke: {_reason(error)}"
    return f"{type(error).__name__}: {_reason(error)}"
