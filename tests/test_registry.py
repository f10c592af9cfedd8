"""workflow/registry.py against a small registry of the test's own on loopback: Bearer challenges, credentials from
the Docker config file, redirects to storage without the registry's credentials, plain HTTP only on loopback,
ECR tokens kept while valid, and a damaged blob never sent whole."""

import base64
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from workflow.errors import ConfigurationError
from workflow.registry import (
    Basic,
    Blob,
    DigestMismatch,
    Registry,
    RegistryDenied,
    VerifiedStream,
    base_url,
    checked_base,
    digest_of,
    docker_config_credentials,
    ecr_token,
    parse_challenge,
)

BLOB = b"layer bytes" * 1000


class Fake:
    """What the fake registry saw, and how it answers."""

    def __init__(self):
        self.seen: list[tuple[str, str, str | None]] = []  # method, path, Authorization
        self.mode = "bearer"  # bearer | basic | open
        self.user = Basic("robot", "s3cret")
        self.token_requests: list[str] = []


@pytest.fixture
def fake():
    state = Fake()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _send(self, status, body=b"", headers=None):
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body and self.command != "HEAD":
                self.wfile.write(body)

        def _authorized(self) -> bool:
            got = self.headers.get("Authorization")
            if state.mode == "open":
                return True
            if state.mode == "basic":
                if got == state.user.header:
                    return True
                self._send(401, b"{}", {"WWW-Authenticate": 'Basic realm="fake"'})
                return False
            if got == "Bearer good-token":
                return True
            realm = f"http://127.0.0.1:{self.server.server_address[1]}/token"
            self._send(401, b"{}", {"WWW-Authenticate": f'Bearer realm="{realm}",service="fake",scope="repository:app:pull"'})
            return False

        def do_GET(self):
            state.seen.append(("GET", self.path, self.headers.get("Authorization")))
            if self.path.startswith("/token"):
                state.token_requests.append(self.path)
                if self.headers.get("Authorization") != state.user.header:
                    return self._send(401)
                return self._send(200, json.dumps({"token": "good-token"}).encode())
            if self.path.startswith("/storage/"):
                if self.headers.get("Authorization"):
                    return self._send(400, b"Only one auth mechanism allowed")
                return self._send(200, BLOB)
            if not self._authorized():
                return
            if self.path == "/v2/":
                return self._send(200, b"{}")
            if self.path.startswith("/v2/app/blobs/"):
                port = self.server.server_address[1]
                return self._send(307, b"", {"Location": f"http://localhost:{port}/storage/blob?X-Amz-Signature=x"})
            if self.path.startswith("/v2/app/tags/list"):
                if "last=" in self.path:
                    return self._send(200, json.dumps({"tags": ["c"]}).encode())
                return self._send(200, json.dumps({"tags": ["a", "b"]}).encode(),
                                  {"Link": '</v2/app/tags/list?n=2&last=b>; rel="next"'})
            self._send(404, json.dumps({"errors": [{"code": "NAME_UNKNOWN", "message": "no"}]}).encode())

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


def test_a_bearer_challenge_is_answered_with_the_credentials_and_the_token_kept(fake):
    registry = Registry(fake.url, credentials=lambda: fake.user, sleep=lambda _: None)
    registry.ping()
    assert registry.tags("app") == ["a", "b", "c"]  # both pages, through the Link header
    assert len(fake.token_requests) >= 1
    assert "service=fake" in fake.token_requests[0]
    assert "scope=repository" in fake.token_requests[0]
    asked = len(fake.token_requests)
    registry.tags("app")
    assert len(fake.token_requests) == asked  # the token for that scope is kept


def test_a_bearer_token_service_that_refuses_is_a_clear_denial_naming_no_secret(fake):
    registry = Registry(fake.url, credentials=lambda: Basic("robot", "wrong"), sleep=lambda _: None)
    with pytest.raises(RegistryDenied) as caught:
        registry.ping()
    assert "token service refused" in str(caught.value)
    assert "wrong" not in str(caught.value)


def test_basic_auth_from_the_docker_config_file(fake, tmp_path):
    fake.mode = "basic"
    host = fake.url.split("://")[1]
    auth = base64.b64encode(b"robot:s3cret").decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {f"https://{host}/v1/": {"auth": auth}}}))
    found = docker_config_credentials(host, {"DOCKER_CONFIG": str(tmp_path)})
    assert found == Basic("robot", "s3cret")
    registry = Registry(fake.url, credentials=lambda: found, sleep=lambda _: None)
    registry.ping()
    assert fake.seen[-1][2] == Basic("robot", "s3cret").header


def test_without_credentials_a_refusal_says_there_are_none(fake, tmp_path):
    fake.mode = "basic"
    registry = Registry(fake.url, credentials=lambda: docker_config_credentials("x", {"DOCKER_CONFIG": str(tmp_path)}),
                        sleep=lambda _: None)
    with pytest.raises(RegistryDenied, match="anonymous access"):
        registry.ping()


def test_a_download_follows_the_redirect_without_the_registrys_credentials(fake):
    fake.mode = "basic"
    registry = Registry(fake.url, credentials=lambda: fake.user, sleep=lambda _: None)
    response = registry.open_blob("app", digest_of(BLOB))
    assert response.read() == BLOB
    storage = [auth for method, path, auth in fake.seen if path.startswith("/storage/")]
    assert storage == [None]


def test_plain_http_only_on_loopback():
    assert base_url("127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert base_url("localhost:5000") == "http://localhost:5000"
    assert base_url("[::1]:5000") == "http://[::1]:5000"
    assert base_url("registry.example.com") == "https://registry.example.com"
    with pytest.raises(ConfigurationError, match="plain HTTP"):
        checked_base("http://registry.example.com")


def test_an_ecr_token_is_asked_for_again_only_near_its_expiry():
    now = [1000.0]
    calls = []

    def authorize():
        calls.append(now[0])
        return Basic("AWS", f"token-{len(calls)}"), now[0] + 12 * 3600

    credentials = ecr_token(authorize, clock=lambda: now[0])
    assert credentials().password == "token-1"
    now[0] += 11 * 3600
    assert credentials().password == "token-1"
    now[0] += 3600 - 200  # within five minutes of the expiry
    assert credentials().password == "token-2"
    assert len(calls) == 2


class Response(io.BytesIO):
    def read(self, amount=-1, decode_content=False):
        return super().read(amount)


def test_a_damaged_blob_is_never_sent_whole():
    data = bytes(range(256)) * 40
    stream = VerifiedStream(Response(data), Blob(digest_of(data), len(data)), chunk=1000)
    assert b"".join(stream) == data
    damaged = VerifiedStream(Response(data[:-1] + b"\0"), Blob(digest_of(data), len(data)), chunk=1000)
    sent = []
    with pytest.raises(DigestMismatch, match="downloaded with digest"):
        for chunk in damaged:
            sent.append(chunk)
    assert sum(map(len, sent)) < len(data)  # the last chunk was held back


def test_challenges_parse():
    assert parse_challenge('Bearer realm="https://auth.example/token",service="registry",scope="repository:a:pull"') == (
        "bearer", {"realm": "https://auth.example/token", "service": "registry", "scope": "repository:a:pull"})
    assert parse_challenge('Basic realm="x"') == ("basic", {"realm": "x"})
