"""Audit records from structlog and stdlib logging calls."""

from __future__ import annotations

import functools
import io
import json
import logging
from collections.abc import Iterator
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import httpx
import pytest
import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

import auditwire
from auditwire import AuditLog, InvalidRecordError
from auditwire.asgi import AuditMiddleware
from auditwire.integrations.logging import AuditHandler, AuditJsonFormatter
from auditwire.integrations.structlog import AuditProcessor
from tests.records import written as records


@pytest.fixture
def stdlib_structlog(log: AuditLog) -> Iterator[io.StringIO]:
    """structlog in a stdlib-integrated configuration: structlog's chain ends in
    ``wrap_for_formatter`` and two stdlib handlers render through ``ProcessorFormatter``."""
    out = io.StringIO()
    formatter = structlog.stdlib.ProcessorFormatter(
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.JSONRenderer(),
        ],
        foreign_pre_chain=[structlog.stdlib.add_log_level],
    )
    handlers = [logging.StreamHandler(out), logging.StreamHandler(io.StringIO())]
    for handler in handlers:
        handler.setFormatter(formatter)
    root = logging.getLogger("app")
    root.handlers = handlers  # type: ignore[assignment]
    root.setLevel(logging.INFO)
    root.propagate = False
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            AuditProcessor(log),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    yield out
    structlog.reset_defaults()
    root.handlers = []


def test_structlog_audit_calls_become_records_and_others_pass(
    log: AuditLog, stdlib_structlog: io.StringIO
) -> None:
    logger = structlog.get_logger("app")
    logger.info("cache warmed", entries=3)
    logger.info(
        "api_key.rotated",
        audit=True,
        actor={"type": "user", "id": "u1", "email": "ops@acme.test"},
        target={"type": "api_key", "id": "key_1", "name": "Deploy"},
        apiKey="sk_live_0123456789ab4242",
        reason="scheduled",
    )
    lines = [json.loads(line) for line in stdlib_structlog.getvalue().splitlines()]
    assert lines[0] == {"event": "cache warmed", "entries": 3, "level": "info"}
    (record,) = records(log)  # two handlers formatted the line; one record
    assert lines[1]["audit_id"] == record.id
    assert record.action == "api_key.rotated"
    assert record.metadata == {"apiKey": "***4242", "reason": "scheduled"}
    assert record.message == "The API key Deploy ending with ***4242 was rotated"
    assert lines[1]["apiKey"] == "***4242"  # the ordinary line is masked too
    assert "sk_live" not in stdlib_structlog.getvalue()


def test_structlog_records_are_enriched_by_the_request(
    log: AuditLog, stdlib_structlog: io.StringIO
) -> None:
    logger = structlog.get_logger("app")

    async def export(request: Request) -> Response:
        context = auditwire.current()
        assert context is not None
        context.set_actor(type="user", id="u7", email="fin@acme.test")
        logger.info("export.created", audit=True, export_type="invoices")
        return PlainTextResponse("ok")

    app = AuditMiddleware(Starlette(routes=[Route("/t/{tenant}/export", export)]), log)

    async def run() -> None:
        transport = httpx.ASGITransport(app=app, client=("203.0.113.8", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await client.get(
                "/t/acme/export", headers={"x-request-id": "req-77", "user-agent": "curl/8.5"}
            )

    import asyncio

    asyncio.run(run())
    # The logged event is the request's record: no generic http.request beside it.
    (exported,) = records(log)
    assert exported.action == "export.created"
    assert exported.message == "fin@acme.test exported data"
    assert exported.ip_address == "203.0.113.8"
    assert exported.user_agent == "curl/8.5"
    assert exported.request is not None and exported.request.id == "req-77"


def test_structlogs_documented_configuration_loses_no_audit_event(log: AuditLog) -> None:
    """structlog's documented stdlib setup starts with filter_by_level; the application logs
    at WARNING in production. Audit events logged at INFO are still recorded (their lines are
    not), once each."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(processors=[structlog.processors.JSONRenderer()])
    )
    app_logger = logging.getLogger("prod")
    app_logger.handlers, app_logger.propagate = [handler], False
    app_logger.setLevel(logging.WARNING)
    chain: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.filter_by_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso"),
        structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
    ]
    configure = functools.partial(
        structlog.configure,
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    try:
        configure(processors=chain)
        AuditProcessor.install(log)
        logger = structlog.get_logger("prod")
        logger.info("login", audit=True, actor={"id": "u1"})
        logger.info("cache warmed")
        logger.warning("disk low")
        (record,) = records(log)
        assert record.action == "login" and record.actor.id == "u1"
        assert [json.loads(line)["event"] for line in out.getvalue().splitlines()] == ["disk low"]
        processors = structlog.get_config()["processors"]
        assert processors.index(structlog.stdlib.filter_by_level) == 2  # after the merge
        assert isinstance(processors[1], AuditProcessor)

        AuditProcessor.install(log)  # again: replaced, not doubled
        logger.info("login", audit=True, actor={"id": "u2"})
        assert sorted(r.actor.id or "" for r in records(log)) == ["u1", "u2"]
    finally:
        structlog.reset_defaults()
        app_logger.handlers = []


def test_a_processor_in_the_formatter_records_once_for_all_handlers(log: AuditLog) -> None:
    formatter = structlog.stdlib.ProcessorFormatter(
        processors=[AuditProcessor(log), structlog.processors.JSONRenderer()]
    )
    outs = [io.StringIO(), io.StringIO()]
    handlers = [logging.StreamHandler(out) for out in outs]
    for handler in handlers:
        handler.setFormatter(formatter)
    app_logger = logging.getLogger("twice")
    app_logger.handlers, app_logger.propagate = handlers, False  # type: ignore[assignment]
    app_logger.setLevel(logging.INFO)
    structlog.configure(
        processors=[structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    try:
        structlog.get_logger("twice").info(
            "api_key.rotated",
            audit=True,
            target={"type": "api_key", "id": "k1"},
            apiKey="sk_live_0123456789ab0042",
        )
        (record,) = records(log)
        for out in outs:
            line = json.loads(out.getvalue())
            assert line["audit_id"] == record.id and line["apiKey"] == "***0042"
    finally:
        structlog.reset_defaults()
        app_logger.handlers = []


def test_structlog_drop_and_bad_input(log: AuditLog) -> None:
    processor = AuditProcessor(log, drop=True)
    with pytest.raises(structlog.DropEvent):
        processor(None, "info", {"event": "login", "audit": True})
    # A call no record can be made of never breaks the code that logged: the line goes on,
    # saying why, and the failure is counted.
    line = AuditProcessor(log)(None, "info", {"event": "login", "audit": True, "when": object()})
    assert "metadata.when" in line["audit_error"]
    assert log.stats().capture_failures == 1
    # An action outside the catalog is no such failure: it is filed by its prefix.
    unknown = AuditProcessor(log)(None, "info", {"event": "invoice.exported", "audit": True})
    assert "audit_error" not in unknown
    assert [(r.action, r.category) for r in records(log)] == [
        ("invoice.exported", "invoice"),
        ("login", "authentication"),
    ]


def test_dates_uuids_and_decimals_in_a_log_call_become_text(log: AuditLog) -> None:
    when = datetime(2024, 1, 15, 10, 30, tzinfo=timezone.utc)
    AuditProcessor(log)(
        None,
        "info",
        {"event": "login", "audit": True, "when": when, "session": UUID(int=1),
         "amount": Decimal("12.50"), "day": date(2024, 1, 15)},
    )  # fmt: skip
    (record,) = records(log)
    assert record.metadata == {
        "when": "2024-01-15T10:30:00+00:00",
        "session": "00000000-0000-0000-0000-000000000001",
        "amount": "12.50",
        "day": "2024-01-15",
    }
    with pytest.raises(InvalidRecordError, match=r"metadata\.amount"):
        log.record("login", metadata={"amount": Decimal("NaN")})


def test_stdlib_handler_and_json_formatter_agree(log: AuditLog, tmp_path: Path) -> None:
    logger = logging.getLogger("stdlib-app")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    path = tmp_path / "audit.jsonl"
    lines = logging.FileHandler(path, encoding="utf-8")
    lines.setFormatter(AuditJsonFormatter(log))
    logger.handlers = [lines, AuditHandler(log)]
    try:
        logger.info("ordinary line %s", 1)
        logger.warning(
            "login_failed",
            extra={
                "audit": True,
                "actor": {"type": "user", "email": "eve@acme.test"},
                "outcome": "failure",
                "metadata": {"reason": "wrong_password"},
                "password": "hunter2",
            },
        )
    finally:
        logger.handlers = []
        lines.close()
    ordinary, audit_line = (json.loads(line) for line in path.read_text().splitlines())
    assert ordinary["message"] == "ordinary line 1"
    (record,) = records(log)
    # The line is written as the record is built; the store's copy is sealed after that.
    assert audit_line == {**record.to_api(), "integrity": None}
    assert record.integrity is not None
    assert record.outcome == "failure"
    assert record.metadata == {"password": "[REDACTED]", "reason": "wrong_password"}


def test_a_bad_audit_log_call_is_counted_not_raised_to_the_caller(log: AuditLog) -> None:
    logger = logging.getLogger("stdlib-bad")
    logger.propagate = False
    logger.handlers = [AuditHandler(log)]
    try:
        logger.error("login", extra={"audit": True, "outcome": "maybe"})
    finally:
        logger.handlers = []
    assert records(log) == []
    stats = log.stats()
    assert stats.capture_failures == 1 and "outcome" in (stats.last_error or "")


def test_missing_extras_are_named(monkeypatch: pytest.MonkeyPatch, log: AuditLog) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "structlog", None)
    with pytest.raises(ImportError, match=r"auditwire\[structlog\]"):
        AuditProcessor(log)
    monkeypatch.setitem(sys.modules, "pythonjsonlogger.json", None)
    with pytest.raises(ImportError, match=r"auditwire\[jsonlogger\]"):
        AuditJsonFormatter(log)
