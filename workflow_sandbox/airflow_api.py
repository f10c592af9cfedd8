"""A fake Airflow api-server (3) or webserver (2) on loopback, answering the paths workflow's client reads.

It answers as the real ones do (shapes recorded from apache-airflow 3.3.2 and 2.11.0):

  Airflow 3  GET  /api/v2/monitor/health    no auth; 200 {metadatabase, scheduler, triggerer, dag_processor}
             GET  /api/v2/version           no auth; 200 {version, git_version}
             POST /auth/token               simple auth manager: {"username","password"} (JSON or form) ->
                                            201 {access_token}; 401 {"detail": "Invalid credentials"}; 422
             GET  /api/v2/dags/{dag}/dagRuns/{run}/taskInstances  Bearer token; 401 "Not authenticated" /
                                            "Token Expired", 403 "Invalid JWT token" / "Forbidden"
             GET  /health, /api/v1/...      404 JSON saying where they moved; other paths: 200, the UI's page
  Airflow 2  GET  /health, /api/v1/health   no auth;  GET /api/v1/version: no auth
             GET  /api/v1/dags/{dag}/dagRuns/{run}/taskInstances  HTTP basic auth; 401 problem+json
             anything else                  404, an HTML page

Everything comes from an AirflowModel that the simulation changes while the server runs: component
heartbeats (status follows them as Airflow's does: healthy while the job runs and heartbeated within 30 s),
the metadatabase, the version, running task instances, users, tokens, and faults:

  model.fault = "refuse"      the port stops listening (connection refused) until the fault is cleared
                "hang"        connections are accepted and never answered (the client's timeout ends it)
                "garbage"     200 with bytes that are not JSON, for every path
                "html"        200 with an HTML page for every path (a proxy's or the UI's)
                "unavailable" 503 from "the load balancer" (no healthy target)
                "bad_gateway" 502 from "the load balancer"
  model.fail_next(kind, times)  the next `times` requests only: any kind above but "refuse", or "drop"
                                (the connection closes without an answer)
  model.silence("scheduler")    its heartbeats are lost: it runs but never heartbeats, so it turns unhealthy
"""

import base64
import json
import secrets
import socket
import ssl
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

COMPONENTS = ("scheduler", "triggerer", "dag_processor")
FAULTS = ("refuse", "hang", "garbage", "html", "unavailable", "bad_gateway")
ONE_SHOT_FAULTS = ("hang", "garbage", "html", "unavailable", "bad_gateway", "drop")
VERSIONS = {3: "3.3.2", 2: "2.11.0"}
GIT_VERSIONS = {3: ".release:aa19d2dbb9ed187ec01957a92848d9b005e9ba9d", 2: ".release:d9ed7b94d033dc61ee1c05aafb9f1c1f7b82cfb2"}
HEALTH_CHECK_THRESHOLD = 30.0  # seconds: [scheduler] scheduler_health_check_threshold and its siblings
HANG_SECONDS = 60.0
UI_PAGE = (b'<!doctype html>\n<html style="height: 100%" dir="ltr" lang="en">\n  <head>\n    <meta charset="UTF-8" />\n'
           b'    <base href="/" />\n    <title>Airflow</title>\n  </head>\n  <body style="height: 100%">\n'
           b'    <div id="root" style="height: 100%"></div>\n  </body>\n</html>')
AIRFLOW2_404 = (
    b'\n'
    b'\n'
    b'<!DOCTYPE html>\n'
    b'<html lang="en">\n'
    b'  <head>\n'
    b'    <title>Airflow 404</title>\n'
    b'    <link rel="icon" type="image/png" href="/static/pin_32.png">\n'
    b'  </head>\n'
    b'  <body>\n'
    b'    <div style="font-family: verdana; text-align: center; margin-top: 200px;">\n'
    b'      <img src="/static/pin_100.png" width="50px" alt="pin-logo" />\n'
    b'      <h1>Airflow 404</h1>\n'
    b'      <p>Page cannot be found.</p>\n'
    b'      <a href="/">Return to the main page</a>\n'
    b'      <p></p>\n'
    b'    </div>\n'
    b'  </body>\n'
    b'</html>'
)
LB_PAGES = {503: b"<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n"
                 b"<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n</body>\r\n</html>\r\n",
            502: b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
                 b"<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"}
GARBAGE = b'\xff\xfe{"metadatabase": {"status": "heal\x00'


def _python_template_fields() -> dict:
    """A PythonOperator's rendered template fields when it was given no arguments."""
    return {"templates_dict": None, "op_args": [], "op_kwargs": {}}


@dataclass
class Component:
    """One Airflow job (scheduler, triggerer, dag-processor) as the `job` table would hold its latest row."""

    started: bool = False  # a job row exists
    running: bool = False  # its state is "running"
    latest_heartbeat: datetime | None = None


@dataclass(frozen=True)
class RunningTask:
    dag_id: str
    task_id: str
    run_id: str
    map_index: int
    hostname: str | None
    start_date: datetime
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    try_number: int = 1
    pid: int | None = None


class AirflowModel:
    """What the fake Airflow answers, changed by the simulation; every method is safe from any thread.

    `now` is the wall clock heartbeats are judged by (the simulation's clock.wall(clock.now()))."""

    def __init__(self, major: int = 3, version: str | None = None, now: Callable[[], datetime] | None = None,
                 users: dict[str, str] | None = None):
        if major not in (2, 3):
            raise ValueError("major must be 2 or 3")
        self.major = major
        self.version = version or VERSIONS[major]
        self.now: Callable[[], datetime] = now or (lambda: datetime.now(UTC))
        self.users: dict[str, str] = dict(users or {})  # username -> password
        self.forbidden: set[str] = set()  # users that may not read task instances (403)
        self.metadatabase_ok = True
        self.components = {name: Component() for name in COMPONENTS}
        self.silent: set[str] = set()
        self.tasks: dict[str, RunningTask] = {}
        self.token_ttl = 24 * 3600.0  # [api_auth] jwt_expiration_time's default
        # (method, path) of the latest requests answered or dropped; a sandbox polls for hours.
        self.requests: deque[tuple[str, str]] = deque(maxlen=10_000)
        self.tokens_issued = 0
        self._tokens: dict[str, tuple[str, datetime]] = {}  # token -> (username, expiry)
        self._signing_key = 0
        self._fault: str | None = None
        self._one_shot: list[str] = []
        self._lock = threading.RLock()
        self._listeners: list[Callable[[], None]] = []

    # --- components -------------------------------------------------------------------------------------

    def heartbeat(self, name: str, at: datetime | None = None) -> None:
        """The component runs and heartbeats now (or at `at`), unless its heartbeats are silenced."""
        with self._lock:
            component = self.components[name]
            component.started = component.running = True
            if name not in self.silent:
                component.latest_heartbeat = at or self.now()

    def stop(self, name: str) -> None:
        """The component's job ends: Airflow keeps its last heartbeat and reports it unhealthy."""
        with self._lock:
            self.components[name].running = False

    def forget(self, name: str) -> None:
        """As on a fresh database: the component never ran."""
        with self._lock:
            self.components[name] = Component()

    def silence(self, name: str, silent: bool = True) -> None:
        """Fault: the component runs but its heartbeats never reach the database."""
        with self._lock:
            (self.silent.add if silent else self.silent.discard)(name)

    # --- task instances ---------------------------------------------------------------------------------

    def start_task(self, dag_id: str, task_id: str, run_id: str = "manual__2026-01-01T00:00:00+00:00",
                   map_index: int = -1, hostname: str | None = "ip-10-0-1-23.ec2.internal",
                   start_date: datetime | None = None) -> str:
        """A task instance now running; the id it answers finish_task to."""
        with self._lock:
            task = RunningTask(dag_id, task_id, run_id, map_index, hostname, start_date or self.now())
            self.tasks[task.id] = task
            return task.id

    def finish_task(self, task_id: str) -> None:
        with self._lock:
            self.tasks.pop(task_id, None)

    def finish_all(self) -> None:
        with self._lock:
            self.tasks.clear()

    # --- auth -------------------------------------------------------------------------------------------

    def expire_tokens(self) -> None:
        """Every token handed out so far has expired (401 "Token Expired")."""
        with self._lock:
            epoch = datetime(1970, 1, 1, tzinfo=UTC)
            self._tokens = {token: (user, epoch) for token, (user, _) in self._tokens.items()}

    def rotate_signing_key(self) -> None:
        """As when another api-server with another jwt_secret answers: old tokens are invalid (403)."""
        with self._lock:
            self._signing_key += 1
            self._tokens.clear()

    # --- faults -----------------------------------------------------------------------------------------

    @property
    def fault(self) -> str | None:
        return self._fault

    @fault.setter
    def fault(self, kind: str | None) -> None:
        if kind is not None and kind not in FAULTS:
            raise ValueError(f"fault must be one of {FAULTS} or None")
        with self._lock:
            self._fault = kind
            listeners = list(self._listeners)
        for listener in listeners:
            listener()

    def fail_next(self, kind: str, times: int = 1) -> None:
        if kind not in ONE_SHOT_FAULTS:
            raise ValueError(f"kind must be one of {ONE_SHOT_FAULTS}")
        with self._lock:
            self._one_shot.extend([kind] * times)

    def _take_fault(self) -> tuple[bool, str | None]:
        """(one-shot?, the fault for this request)."""
        with self._lock:
            if self._one_shot:
                return True, self._one_shot.pop(0)
            return False, self._fault

    def _on_fault_change(self, listener: Callable[[], None]) -> None:
        with self._lock:
            self._listeners.append(listener)

    # --- the documents, as the real server shapes them ---------------------------------------------------

    def health_document(self) -> dict:
        with self._lock:
            now = self.now()
            doc: dict = {"metadatabase": {"status": "healthy" if self.metadatabase_ok else "unhealthy"}}
            for name in COMPONENTS:
                status: str | None
                heartbeat: str | None = None
                component = self.components[name]
                if not self.metadatabase_ok:  # every query failed: the defaults stand
                    status = "unhealthy"
                elif not component.started:
                    status = "unhealthy" if name == "scheduler" else None
                else:
                    beat = component.latest_heartbeat
                    heartbeat = beat.isoformat() if beat else None
                    alive = component.running and beat is not None and \
                        (now - beat).total_seconds() < HEALTH_CHECK_THRESHOLD
                    status = "healthy" if alive else "unhealthy"
                doc[name] = {"status": status, f"latest_{name}_heartbeat": heartbeat}
            return doc

    def version_document(self) -> dict:
        return {"version": self.version, "git_version": GIT_VERSIONS.get(self.major)}

    def task_instances_document(self, dag_id: str, run_id: str, states: list[str], limit: int, offset: int) -> dict:
        with self._lock:
            tasks = sorted(self.tasks.values(), key=lambda t: (t.start_date, t.id))
        if states and "running" not in states:
            tasks = []
        tasks = [t for t in tasks if dag_id in ("~", t.dag_id) and run_id in ("~", t.run_id)]
        page = [self._task_instance(t) for t in tasks[offset:offset + limit]]
        if self.major == 2:
            return {"task_instances": page, "total_entries": len(tasks)}
        return {"task_instances": page, "total_entries": len(tasks), "total_entries_limit": None,
                "next_cursor": None, "previous_cursor": None}

    def _task_instance(self, task: RunningTask) -> dict:
        if self.major == 2:
            stamp = task.start_date.isoformat()
            return {
                "dag_id": task.dag_id, "dag_run_id": task.run_id, "duration": None, "end_date": None,
                "execution_date": stamp, "executor": None, "executor_config": "{}", "hostname": task.hostname or "",
                "map_index": task.map_index, "max_tries": 0, "note": None, "operator": "PythonOperator",
                "pid": task.pid, "pool": "default_pool", "pool_slots": 1, "priority_weight": 1, "queue": "default",
                "queued_when": stamp, "rendered_fields": _python_template_fields(), "rendered_map_index": None,
                "sla_miss": None,
                "start_date": stamp, "state": "running", "task_display_name": task.task_id, "task_id": task.task_id,
                "trigger": None, "triggerer_job": None, "try_number": task.try_number, "unixname": "airflow",
            }
        stamp = task.start_date.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return {
            "id": task.id, "task_id": task.task_id, "dag_id": task.dag_id, "dag_run_id": task.run_id,
            "map_index": task.map_index, "logical_date": stamp, "run_after": stamp, "start_date": stamp,
            "end_date": None, "duration": None, "state": "running", "try_number": task.try_number, "max_tries": 0,
            "task_display_name": task.task_id, "dag_display_name": task.dag_id, "hostname": task.hostname,
            "unixname": "airflow", "pool": "default_pool", "pool_slots": 1, "queue": "default", "priority_weight": 1,
            "operator": "PythonOperator", "operator_name": "PythonOperator", "queued_when": stamp,
            "scheduled_when": stamp, "pid": task.pid, "executor": None, "executor_config": "{}", "note": None,
            "rendered_map_index": None, "rendered_fields": _python_template_fields(), "trigger": None,
            "triggerer_job": None,
            "dag_version": {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, task.dag_id)), "version_number": 1,
                            "dag_id": task.dag_id, "bundle_name": "dags-folder", "bundle_version": None,
                            "created_at": stamp, "dag_display_name": task.dag_id, "bundle_url": None},
        }

    def _issue_token(self, username: str) -> str:
        with self._lock:
            token = f"fake.{self._signing_key}.{secrets.token_urlsafe(24)}"
            self.tokens_issued += 1
            self._tokens[token] = (username, self.now() + timedelta(seconds=self.token_ttl))
            return token

    def _token_user(self, token: str) -> tuple[str | None, str]:
        """The token's user, or None and why: "Token Expired" (401) or "Invalid JWT token" (403)."""
        with self._lock:
            entry = self._tokens.get(token)
            if entry is None:
                return None, "Invalid JWT token"
            user, expiry = entry
            if expiry <= self.now():
                return None, "Token Expired"
            return user, ""


class FakeAirflowApi:
    """The model served over HTTP on 127.0.0.1 from a thread: start(), url, stop(); or a context manager."""

    def __init__(self, model: AirflowModel, host: str = "127.0.0.1", port: int = 0,
                 ssl_context: ssl.SSLContext | None = None):
        self.model = model
        self.host, self.port = host, port
        self.ssl_context = ssl_context  # serve HTTPS with this server-side context
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()  # ends hanging requests
        self._lock = threading.Lock()
        self._stopped = True
        model._on_fault_change(self._apply_fault)

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://{self.host}:{self.port}"

    def start(self) -> "FakeAirflowApi":
        with self._lock:
            self._stopped = False
            self._stopping.clear()
            if self.model.fault != "refuse":
                self._listen()
            elif not self.port:  # refusing from the start: reserve a port that nobody listens on
                with socket.socket() as probe:
                    probe.bind((self.host, 0))
                    self.port = probe.getsockname()[1]
        return self

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._stopping.set()
            self._close()

    def __enter__(self) -> "FakeAirflowApi":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _listen(self) -> None:
        if self._server is not None:
            return
        server = ThreadingHTTPServer((self.host, self.port), _handler(self))
        server.daemon_threads = True
        if self.ssl_context:
            server.socket = self.ssl_context.wrap_socket(server.socket, server_side=True)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"fake-airflow-{self.port}", daemon=True)
        self._thread.start()

    def _close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def _apply_fault(self) -> None:
        with self._lock:
            if self._stopped:
                return
            if self.model.fault == "refuse":
                self._close()
            else:
                self._listen()


def _handler(api: FakeAirflowApi) -> type[BaseHTTPRequestHandler]:
    model = api.model

    class Handler(BaseHTTPRequestHandler):
        server_version = "uvicorn" if model.major == 3 else "gunicorn"
        sys_version = ""

        def log_message(self, format, *args):  # noqa: A002 - the base class's name
            pass

        def do_GET(self):
            self._serve("GET")

        def do_POST(self):
            self._serve("POST")

        def _serve(self, method: str) -> None:
            split = urlsplit(self.path)
            path = unquote(split.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            with model._lock:
                model.requests.append((method, path))
            one_shot, fault = model._take_fault()
            if fault == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if fault == "hang":
                # Until the client gives up, the server stops, or (a lasting fault) the fault is cleared.
                until = time.monotonic() + HANG_SECONDS
                while (one_shot or model.fault == "hang") and time.monotonic() < until:
                    if api._stopping.wait(0.05):
                        break
                self.close_connection = True
                return
            if fault == "garbage":
                return self._send(200, "application/json", GARBAGE)
            if fault == "html":
                return self._send(200, "text/html; charset=utf-8", UI_PAGE)
            if fault in ("unavailable", "bad_gateway"):
                status = 503 if fault == "unavailable" else 502
                return self._send(status, "text/html", LB_PAGES[status], server="awselb/2.0")
            query = parse_qs(split.query)
            if model.major == 3:
                self._airflow3(method, path, query, body)
            else:
                self._airflow2(method, path, query)

        # --- Airflow 3 ---------------------------------------------------------------------------------

        def _airflow3(self, method: str, path: str, query: dict, body: bytes) -> None:
            if path == "/api/v2/monitor/health" and method == "GET":
                return self._json(200, model.health_document())
            if path == "/api/v2/version" and method == "GET":
                return self._json(200, model.version_document())
            if path == "/auth/token" and method == "POST":
                return self._token(body)
            parts = path.split("/")
            if len(parts) == 8 and parts[:4] == ["", "api", "v2", "dags"] and parts[5] == "dagRuns" \
                    and parts[7] == "taskInstances" and method == "GET":
                return self._task_instances3(parts[4], parts[6], query)
            if path == "/health":
                return self._json(404, {"error": "Moved in Airflow 3. Please change config to check "
                                                 "`/api/v2/monitor/health`"})
            if path.startswith("/api/v1"):
                return self._json(404, {"error": "/api/v1 has been removed in Airflow 3, please use its upgraded "
                                                 "version /api/v2 instead."})
            if path.startswith("/api/v2"):
                return self._json(404, {"detail": "Not Found"})
            if method != "GET":
                return self._json(405, {"detail": "Method Not Allowed"})
            return self._send(200, "text/html; charset=utf-8", UI_PAGE)

        def _token(self, body: bytes) -> None:
            if "application/x-www-form-urlencoded" in (self.headers.get("Content-Type") or ""):
                form = parse_qs(body.decode("utf-8", "replace"))
                fields = {k: v[0] for k, v in form.items()}
            else:
                try:
                    fields = json.loads(body)
                except ValueError:
                    return self._json(422, {"detail": "Unable to parse the login body"})
            if not isinstance(fields, dict) or not isinstance(fields.get("username"), str) \
                    or not isinstance(fields.get("password"), str):
                return self._json(422, {"detail": "1 validation error for LoginBody"})
            username, password = fields["username"], fields["password"]
            if not username or not password:
                return self._json(400, {"detail": "Username and password must be provided"})
            known = model.users.get(username)
            if known is None or not secrets.compare_digest(known.encode(), password.encode()):
                return self._json(401, {"detail": "Invalid credentials"})
            return self._json(201, {"access_token": model._issue_token(username)})

        def _task_instances3(self, dag_id: str, run_id: str, query: dict) -> None:
            header = self.headers.get("Authorization") or ""
            if not header.startswith("Bearer ") or not header[7:].strip():
                return self._json(401, {"detail": "Not authenticated"})
            user, why = model._token_user(header[7:].strip())
            if user is None:
                return self._json(401 if why == "Token Expired" else 403, {"detail": why})
            if user in model.forbidden:
                return self._json(403, {"detail": "Forbidden"})
            if run_id != "~" and dag_id == "~":
                return self._json(400, {"detail": "dag_id is required when dag_run_id is specified"})
            limit, offset = self._page(query, fallback=50)
            return self._json(200, model.task_instances_document(dag_id, run_id, query.get("state", []), limit, offset))

        # --- Airflow 2 ---------------------------------------------------------------------------------

        def _airflow2(self, method: str, path: str, query: dict) -> None:
            if path in ("/health", "/api/v1/health") and method == "GET":
                return self._json(200, model.health_document())
            if path == "/api/v1/version" and method == "GET":
                return self._json(200, model.version_document())
            parts = path.split("/")
            if len(parts) == 8 and parts[:4] == ["", "api", "v1", "dags"] and parts[5] == "dagRuns" \
                    and parts[7] == "taskInstances" and method == "GET":
                user = self._basic_user()
                if user is None:
                    return self._problem(401, "Unauthorized", None)
                if user in model.forbidden:
                    return self._problem(403, "Forbidden", "You do not have permission to perform this action")
                limit, offset = self._page(query, fallback=100)
                return self._json(200, model.task_instances_document(parts[4], parts[6], query.get("state", []),
                                                                     limit, offset))
            return self._send(404, "text/html; charset=utf-8", AIRFLOW2_404)

        def _basic_user(self) -> str | None:
            header = self.headers.get("Authorization") or ""
            if not header.startswith("Basic "):
                return None
            try:
                username, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                return None
            known = model.users.get(username)
            return username if known is not None and secrets.compare_digest(known.encode(), password.encode()) else None

        def _problem(self, status: int, title: str, detail: str | None) -> None:
            section = {401: "Unauthenticated", 403: "PermissionDenied"}[status]
            doc = {"detail": detail, "status": status, "title": title,
                   "type": f"https://airflow.apache.org/docs/apache-airflow/{model.version}/stable-rest-api-ref.html"
                           f"#section/Errors/{section}"}
            self._send(status, "application/problem+json", json.dumps(doc, indent=2).encode() + b"\n")

        # --- plumbing ----------------------------------------------------------------------------------

        def _page(self, query: dict, fallback: int) -> tuple[int, int]:
            try:
                limit = int(query.get("limit", [fallback])[0]) or fallback
                offset = max(int(query.get("offset", [0])[0]), 0)
            except ValueError:
                limit, offset = fallback, 0
            return min(max(limit, 0), 100), offset  # [api] maximum_page_limit

        def _json(self, status: int, doc: dict) -> None:
            self._send(status, "application/json", json.dumps(doc, separators=(",", ":")).encode())

        def _send(self, status: int, content_type: str, body: bytes, server: str | None = None) -> None:
            self.send_response_only(status)
            self.send_header("Server", server or self.server_version)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler
