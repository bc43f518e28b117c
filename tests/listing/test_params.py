from __future__ import annotations

import base64
import sys
from datetime import datetime, timezone
from typing import Any

import pytest

from auditwire import InvalidQueryError
from auditwire.listing.params import parse_list_request
from auditwire.query import AuditQuery, Cursor
from auditwire.stores.translate import to_elasticsearch, to_sql

UTC = timezone.utc


def test_the_billing_products_vocabulary() -> None:
    request = parse_list_request(
        {
            "from": "2024-01-01",
            "to": "2024-01-31",
            "users[]": ["alice@acme.test", "usr_2"],
            "log_types": "user,api_key",
            "log_events[]": ["user.invited"],
            "page": "2",
            "per_page": "50",
        }
    )
    query = request.query
    assert query.start == datetime(2024, 1, 1, tzinfo=UTC)
    assert query.end == datetime(2024, 2, 1, tzinfo=UTC)  # the whole of the 31st
    assert query.users == ("alice@acme.test", "usr_2")
    assert query.categories == ("user", "api_key")
    assert query.actions == ("user.invited",)
    assert (request.page, query.limit, request.cursor) == (2, 50, False)


def test_the_identity_products_vocabulary_and_ours_combined() -> None:
    query = parse_list_request(
        {
            "action": "login_failed",
            "outcome": "failure",
            "category": "authentication",
            "actorId": "123",
            "targetId": "456",
            "startDate": "2024-01-15T10:30:00",
            "endDate": "2024-01-16T10:30:00+02:00",
            "targetType": "user",
            "sourceIp": "203.0.113.0/24,2001:db8::1",
        },
        tenant="acme-corp",
    ).query
    assert query.start == datetime(2024, 1, 15, 10, 30, tzinfo=UTC)  # no zone: UTC
    assert query.end == datetime(2024, 1, 16, 8, 30, tzinfo=UTC)
    assert query.source_ips == ("203.0.113.0/24", "2001:db8::1/128")
    assert query.tenant == "acme-corp"


def test_a_compact_iso_date_is_the_whole_day() -> None:
    if sys.version_info < (3, 11):  # ISO 8601's basic form is read from Python 3.11 on
        with pytest.raises(InvalidQueryError, match="not an ISO 8601"):
            parse_list_request({"to": "20260304"})
        return
    query = parse_list_request({"from": "20260304", "to": "20260304"}).query
    assert query.start == datetime(2026, 3, 4, tzinfo=UTC)
    assert query.end == datetime(2026, 3, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    "stamp", ["0001-01-01T00:30:00.000+01:00", "9999-12-31T23:30:00.000-01:00"]
)
def test_a_forged_cursor_at_the_edge_of_time_is_refused(stamp: str) -> None:
    raw = f"{stamp}|log_01HM6Z6AJ0M8V3T9X1K2Q4R5S6".encode()
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    with pytest.raises(InvalidQueryError) as caught:
        parse_list_request({"cursor": cursor})
    assert caught.value.parameter == "cursor"


@pytest.mark.parametrize(
    ("params", "parameter", "fragment"),
    [
        pytest.param({"from": "yesterday"}, "from", "ISO 8601", id="bad-date"),
        pytest.param({"startDate": "2024-02-01", "endDate": "2024-01-01"}, "startDate", "after", id="from-after-to"),
        pytest.param({"from": "2024-01-01", "startDate": "2024-01-02"}, "from", "exactly one", id="two-starts"),
        pytest.param({"outcome": "maybe"}, "outcome", "'maybe'", id="bad-outcome"),
        pytest.param({"sourceIp": "300.1.1.1"}, "sourceIp", "not an IP", id="bad-ip"),
        pytest.param({"users": ",".join(f"u{i}" for i in range(101))}, "users", "at most 100", id="oversize-list"),
        pytest.param({"per_page": "0"}, "per_page", "between", id="per-page-zero"),
        pytest.param({"perPage": "x"}, "perPage", "integer", id="per-page-text"),
        pytest.param({"page": "-1"}, "page", "between", id="negative-page"),
        pytest.param({"cursor": "bm9wZQ"}, "cursor", "cursor", id="forged-cursor"),
        pytest.param({"actorid": "1"}, "actorid", "not a filter", id="typo"),
        pytest.param({"page": ["1", "2"]}, "page", "more than once", id="repeated-page"),
        pytest.param({"to": "9999-12-31"}, "to", "outside the dates", id="last-day-end"),
        pytest.param({"startDate": "0001-01-01T00:00:00+01:00"}, "startDate", "outside the dates", id="first-day-east"),
        pytest.param({"endDate": "9999-12-31T23:00:00-05:00"}, "endDate", "outside the dates", id="last-day-west"),
        pytest.param({"action": ""}, "action", "empty value", id="empty-value"),
        pytest.param({"users": ",,,"}, "users", "empty value", id="empty-values"),
        pytest.param({"log_types": "api_key,"}, "log_types", "empty value", id="trailing-comma"),
        pytest.param({"from": "2024-01-02", "to": "2024-01-01"}, "from", "after", id="from-a-day-after-to"),
        pytest.param({"from": "2024-01-01T10:00Z", "to": "2024-01-01T10:00Z"}, "from", "empty range", id="empty-range"),
        pytest.param([("", "")], "(unnamed)", "needs a name", id="unnamed-found-by-fuzzing"),
        pytest.param([("[]", "x")], "(unnamed)", "needs a name", id="unnamed-list"),
    ],
)  # fmt: skip
def test_bad_parameters_are_named(params: dict[str, Any], parameter: str, fragment: str) -> None:
    with pytest.raises(InvalidQueryError) as caught:
        parse_list_request(params)
    assert caught.value.parameter == parameter
    assert fragment in str(caught.value)


def test_frameworks_multidicts_are_read_with_repeated_keys() -> None:
    from starlette.datastructures import QueryParams
    from werkzeug.datastructures import MultiDict

    for params in (
        QueryParams("users=a&users=b&action=login"),
        MultiDict([("users", "a"), ("users", "b"), ("action", "login")]),
    ):
        query = parse_list_request(params).query
        assert (query.users, query.actions) == (("a", "b"), ("login",))


def test_cursors_round_trip_and_become_keyset_conditions() -> None:
    position = Cursor(
        datetime(2024, 1, 15, 10, 30, 0, 123000, tzinfo=UTC), "log_01HM6Z6AJ0M8V3T9X1K2Q4R5S6"
    )
    request = parse_list_request({"cursor": position.encode(), "per_page": "10"})
    assert request.query.after == position
    assert request.cursor
    body = to_elasticsearch(request.query)
    assert body["search_after"] == [1705314600123, position.id]
    where, params = to_sql(request.query)
    assert "(timestamp, id) < (?, ?)" in where
    assert params == ["2024-01-15T10:30:00.123Z", position.id]


def test_translation_is_plain_data_with_user_values_only_as_values() -> None:
    query = AuditQuery(users=("a@b.c", 'x" OR 1=1 --'), source_ips=("10.0.0.0/8",), tenant="t")
    body = to_elasticsearch(query)
    users_clause, ip_clause, tenant_clause = body["query"]["bool"]["filter"]
    assert users_clause == {
        "bool": {
            "should": [
                {"terms": {"user.id": ["a@b.c", 'x" OR 1=1 --']}},
                {"terms": {"user.email": ["a@b.c", 'x" OR 1=1 --']}},
            ],
            "minimum_should_match": 1,
        }
    }
    assert ip_clause == {"terms": {"source.ip": ["10.0.0.0/8"]}}
    assert tenant_clause == {"term": {"organization.id": "t"}}
    where, params = to_sql(query)
    assert "OR 1=1" not in where
    assert params[:4] == ["a@b.c", 'x" OR 1=1 --', "a@b.c", 'x" OR 1=1 --']
    assert params[4:6] == ["4:0a000000", "4:0affffff"]


def test_list_records_in_a_flask_handler(tmp_path: Any) -> None:
    from flask import Flask, jsonify, request

    from auditwire import Actor, AuditLog
    from auditwire.listing.params import list_records

    log = AuditLog(f"sqlite:///{tmp_path}/audit.db")
    for n in range(25):
        log.record(
            "login_failed" if n % 5 == 0 else "login",
            actor=Actor(id=f"u{n % 3}", email=f"u{n % 3}@acme.test"),
            outcome="failure" if n % 5 == 0 else "success",
            tenant="acme" if n % 2 else "globex",
        )
    app = Flask(__name__)

    @app.get("/t/<tenant>/api/v1/admin/audit-logs")
    def audit_logs(tenant: str) -> Any:
        try:
            return jsonify(list_records(log.store, request.args, tenant=tenant))  # type: ignore[arg-type]
        except InvalidQueryError as exc:
            return jsonify({"error": {"parameter": exc.parameter, "message": str(exc)}}), 400

    client = app.test_client()
    first = client.get("/t/acme/api/v1/admin/audit-logs?per_page=5").get_json()
    assert first["meta"] == {
        "perPage": 5,
        "page": 1,
        "total": 12,
        "totalPages": 3,
        "nextCursor": first["meta"]["nextCursor"],
    }
    assert all(item["tenant"] == "acme" for item in first["data"])
    following = client.get(
        f"/t/acme/api/v1/admin/audit-logs?per_page=5&cursor={first['meta']['nextCursor']}"
    ).get_json()
    assert [i["id"] for i in following["data"]] == [
        i["id"]
        for i in client.get("/t/acme/api/v1/admin/audit-logs?per_page=5&page=2").get_json()["data"]
    ]
    failed = client.get("/t/globex/api/v1/admin/audit-logs?action=login_failed&outcome=failure")
    assert {i["action"] for i in failed.get_json()["data"]} == {"login_failed"}
    bad = client.get("/t/acme/api/v1/admin/audit-logs?startDate=soon")
    assert bad.status_code == 400
    assert bad.get_json()["error"]["parameter"] == "startDate"
    log.close()
