"""The WSGI middleware over a real Flask app (and plain PEP 3333 apps where Flask hides the
detail under test). Test-client calls are ``buffered``: like a real server, the client then
closes the response iterable, which is when the middleware hands the record off."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from flask import Flask, abort, request

import auditwire
from auditwire import AuditLog
from auditwire.wsgi import AuditMiddleware, init_flask
from tests.records import written as records


class Boom(Exception):
    pass


def flask_app(log: AuditLog, **options: Any) -> Flask:
    app = Flask(__name__)

    @app.post("/users/<int:user_id>/invite")
    def invite(user_id: int) -> dict[str, bool]:
        context = auditwire.current()
        assert context is not None
        context.set_actor(type="user", id="admin-1", email="admin@acme.test")
        context.set_action(
            "user.invited", target={"type": "user", "id": user_id, "email": "new@acme.test"}
        )
        return {"invited": True}

    @app.get("/hello")
    def hello() -> str:
        return "hello"

    @app.get("/denied")
    def denied() -> str:
        abort(403)

    @app.get("/boom")
    def boom() -> str:
        raise Boom("kaput")

    init_flask(app)
    app.wsgi_app = AuditMiddleware(app.wsgi_app, log, **options)  # type: ignore[method-assign]
    return app


def test_flask_request_becomes_a_record(log: AuditLog) -> None:
    app = flask_app(log)
    response = app.test_client().post(
        "/users/7/invite",
        buffered=True,
        headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Firefox/121.0"},
        environ_base={"REMOTE_ADDR": "198.51.100.7"},
    )
    assert response.status_code == 200
    (record,) = records(log)
    assert record.action == "user.invited"
    assert record.message == "new@acme.test was invited by admin@acme.test"
    assert record.ip_address == "198.51.100.7"
    assert record.request is not None
    assert record.request.route == "/users/<int:user_id>/invite"
    assert record.request.status == 200
    assert record.device is not None
    assert record.device.browser == "Firefox"


@pytest.mark.parametrize(
    ("path", "action", "outcome"),
    [
        pytest.param("/hello", "http.request", "success", id="success"),
        pytest.param("/denied", "access_denied", "failure", id="denied"),
        pytest.param("/missing", "http.request", "failure", id="not-found"),
    ],
)
def test_outcomes(log: AuditLog, path: str, action: str, outcome: str) -> None:
    flask_app(log).test_client().get(path, buffered=True)
    (record,) = records(log)
    assert (record.action, record.outcome) == (action, outcome)


def test_exceptions_are_recorded_and_reraised(log: AuditLog) -> None:
    app = flask_app(log)
    app.config["PROPAGATE_EXCEPTIONS"] = True
    with pytest.raises(Boom):
        app.test_client().get("/boom", buffered=True)
    (record,) = records(log)
    assert record.outcome == "error"
    assert record.metadata["error"] == {"type": "Boom"}


def test_spoofing_and_trusted_chains(log: AuditLog) -> None:
    app = flask_app(log, trusted_proxies=["10.0.0.0/8"])
    client = app.test_client()
    client.get(
        "/hello",
        buffered=True,
        headers={"X-Forwarded-For": "6.6.6.6"},
        environ_base={"REMOTE_ADDR": "203.0.113.1"},
    )
    client.get(
        "/hello",
        buffered=True,
        headers={"X-Forwarded-For": "6.6.6.6, 2001:db8::9, 10.0.0.8"},
        environ_base={"REMOTE_ADDR": "10.0.0.2"},
    )
    assert sorted(r.ip_address or "" for r in records(log)) == ["2001:db8::9", "203.0.113.1"]


class Body:
    """A response iterable that reports whether PEP 3333's close() reached it."""

    def __init__(self, chunks: list[bytes], fail_at: int | None = None) -> None:
        self.chunks = chunks
        self.fail_at = fail_at
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        for index, chunk in enumerate(self.chunks):
            if index == self.fail_at:
                raise Boom("mid-stream")
            yield chunk

    def close(self) -> None:
        self.closed = True


def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
    return lambda data: None


def plain_app(body: Body) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return body

    return app


def test_the_record_is_written_after_the_body_and_close_reaches_the_app(log: AuditLog) -> None:
    body = Body([b"a", b"b"])
    app = AuditMiddleware(plain_app(body), log)
    result = app(
        {"REQUEST_METHOD": "GET", "PATH_INFO": "/x", "REMOTE_ADDR": "192.0.2.1"}, start_response
    )
    assert b"".join(result) == b"ab"
    assert records(log) == []  # not before the server closes the response
    result.close()  # type: ignore[attr-defined]
    assert body.closed
    (record,) = records(log)
    assert record.outcome == "success"


def test_an_error_while_streaming_and_an_early_close(log: AuditLog) -> None:
    failing = Body([b"a", b"b"], fail_at=1)
    app = AuditMiddleware(plain_app(failing), log)
    result = app({"REQUEST_METHOD": "GET", "PATH_INFO": "/x"}, start_response)
    with pytest.raises(Boom):
        list(result)
    result.close()  # type: ignore[attr-defined]
    assert failing.closed

    abandoned = Body([b"a", b"b", b"c"])
    app = AuditMiddleware(plain_app(abandoned), log)
    result = app({"REQUEST_METHOD": "GET", "PATH_INFO": "/y"}, start_response)
    next(iter(result))
    result.close()  # type: ignore[attr-defined]
    assert abandoned.closed
    by_path = {r.request.path: r for r in records(log) if r.request}
    assert by_path["/x"].metadata["error"] == {"type": "Boom"}
    assert by_path["/y"].metadata["disconnected"] is True


def test_malformed_environ_never_breaks_the_request(log: AuditLog) -> None:
    body = Body([b"ok"])
    app = AuditMiddleware(plain_app(body), log, trusted_proxies=["*"])
    environ = {
        "REQUEST_METHOD": "get it",
        "PATH_INFO": "/caf\xc3\xa9/\x00",
        "REMOTE_ADDR": "not-an-ip",
        "HTTP_USER_AGENT": "\x00\x01" + "x" * 50_000,
        "HTTP_X_FORWARDED_FOR": "999.1.1.1, ::zz",
        "HTTP_X_REQUEST_ID": "bad id!",
    }
    result = app(environ, start_response)
    assert list(result) == [b"ok"]
    result.close()  # type: ignore[attr-defined]
    (record,) = records(log)
    assert record.request is not None
    assert record.request.path == "/café/"
    assert record.request.method is None
    assert record.ip_address is None
    assert record.user_agent is not None and len(record.user_agent) == 512


def test_flask_threads_keep_their_own_actors(log: AuditLog) -> None:
    from concurrent.futures import ThreadPoolExecutor

    app = Flask(__name__)

    @app.get("/who/<name>")
    def who(name: str) -> str:
        context = auditwire.current()
        assert context is not None
        context.set_actor(id=name)
        context.add_metadata(agent=request.headers.get("x-agent"))
        return name

    app.wsgi_app = AuditMiddleware(app.wsgi_app, log)  # type: ignore[method-assign]

    def call(n: int) -> None:
        response = app.test_client().get(f"/who/u{n}", headers={"x-agent": f"u{n}"}, buffered=True)
        assert response.text == f"u{n}"

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(call, range(200)))
    found = records(log)
    assert len(found) == 200
    assert all(r.actor.id == r.metadata["agent"] for r in found)
