"""The viewer: audit-log pages for admins, rendered on the server.

Three pages, each answered by :class:`~auditwire.listing.api.AuditLogAPI` behind the same
permission and tenant rule as the JSON routes, so the doors that serve the API serve these too:

- the list (``viewer``): the filter form (either product's vocabulary, all kept in the URL so a
  filtered view can be bookmarked and shared), the charts of the filtered set, 20 records a
  page newest first with the total, older pages by cursor;
- one record (``viewer/{log_id}``): every field, and the raw JSON;
- an export of the current filter (``viewer/export?format=csv|json|ndjson&...``).

Reading and filtering need no script: a form, links and inline SVG. Styles are inline too, so
the pages fetch nothing from anywhere. Accessibility is part of the design, not an add-on:
labelled controls, a skip link, ``<time datetime>``, outcomes written out (a word and a symbol;
colours and patterns only repeat them), every chart a labelled image with its numbers in a
table.

Form fields left empty mean "no filter" here (a browser sends them empty), where the API
refuses an empty value; ``range`` (``1h``, ``24h``, ``7d``, ``30d``, ``90d``, ``all``) is a
quick range relative to now, and without any date the list shows the last 7 days.
"""

from __future__ import annotations

import html
import json
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from auditwire._time import format_timestamp, utcnow
from auditwire.aggregation import (
    MAX_BUCKETS,
    TimeBucket,
    TopValue,
    bucket_start,
    bucket_starts,
    check_interval,
    interval_for,
)
from auditwire.errors import InvalidQueryError, MissingDependencyError
from auditwire.integrity.sealer import Integrity
from auditwire.integrity.verify import check_record
from auditwire.listing.export import FORMATS, ExportFormat, export
from auditwire.listing.params import param_items, parse_list_request
from auditwire.query import AuditQuery, Cursor
from auditwire.record import OUTCOMES, AuditRecord, flat_fields
from auditwire.stores.base import Chained

if TYPE_CHECKING:
    from auditwire.stores.base import Store

__all__ = ["DEFAULT_RANGE", "PAGE_SIZE", "QUICK_RANGES", "Viewer", "ViewerPage", "viewer_filters"]

PAGE_SIZE = 20
#: The timeline's drawing, in SVG units (it scales to its box).
CHART_WIDTH = 600
CHART_HEIGHT = 150
#: Quick ranges, relative to now (``all``: no bound).
QUICK_RANGES: dict[str, timedelta | None] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
    "all": None,
}
DEFAULT_RANGE = "7d"
_RANGE_NAMES = {
    "1h": "Last hour",
    "24h": "Last 24 hours",
    "7d": "Last 7 days",
    "30d": "Last 30 days",
    "90d": "Last 90 days",
    "all": "All time",
}
#: The form's fields, in the order shown: (parameter, label, hint).
_FIELDS = (
    ("users", "Users", "ids or emails, comma-separated"),
    ("log_types", "Log types", "categories, e.g. authentication, api_key"),
    ("log_events", "Events", "actions, e.g. login_failed"),
    ("targetType", "Target type", "e.g. user, api_key"),
    ("targetId", "Target id", ""),
    ("sourceIp", "Source IP", "address or CIDR, e.g. 203.0.113.0/24"),
)
_OUTCOME_SIGNS = {"success": "✓", "failure": "✗", "error": "!"}
#: A record's integrity status as its page words it (the sign first, as for outcomes).
_INTEGRITY_LABELS = {
    "verified": "✓ Verified",
    "linked": "Sealed",
    "failed": "✗ Does not verify",
    "unsealed": "Not sealed",
}
_TEMPLATES = Path(__file__).with_name("templates")


def viewer_filters(params: Any) -> list[tuple[str, str]]:
    """The page's parameters as the list takes them: empty form fields dropped, ``[]`` keys
    kept as they are."""
    return [
        (key, value)
        for key, value in param_items(params)
        if not (isinstance(value, str) and not value.strip())
    ]


@dataclass(frozen=True)
class Chart:
    """One chart's data, for the template: a timeline or a list of top values."""

    key: str
    title: str
    buckets: Sequence[TimeBucket] = ()
    interval: str = ""
    values: Sequence[TopValue] = ()

    @cached_property
    def bars(self) -> str:
        """A timeline's stacked bars as SVG ``<rect>`` elements in the drawing's units
        (:data:`CHART_WIDTH` by :data:`CHART_HEIGHT`), each titled with its bucket and count.
        Drawn here, as one string of numbers and escaped titles, rather than in the template,
        where the arithmetic and escaping of a few hundred bars cost ten times more."""
        if not self.buckets or not self.most:
            return ""
        step = CHART_WIDTH / len(self.buckets)
        scale = (CHART_HEIGHT - 5) / self.most
        rects = []
        for n, bucket in enumerate(self.buckets):
            top = float(CHART_HEIGHT)
            for outcome in OUTCOMES:
                count = bucket.counts.get(outcome, 0)
                if count:
                    height = count * scale
                    top -= height
                    title = html.escape(f"{_when(bucket.start)}: {count} {outcome}")
                    rects.append(
                        f'<rect x="{n * step + step * 0.1:.2f}" y="{top:.2f}" '
                        f'width="{step * 0.8:.2f}" height="{height:.2f}" '
                        f'fill="url(#{self.key}-{outcome})" stroke="#1b1f24" '
                        f'stroke-width=".3"><title>{title}</title></rect>'
                    )
        return "\n".join(rects)

    @cached_property
    def most(self) -> int:
        """The largest count, the chart's scale (read once per bar: computed once)."""
        if self.buckets:
            return max((b.total for b in self.buckets), default=0)
        return max((v.count for v in self.values), default=0)


@dataclass(frozen=True, slots=True)
class ViewerPage:
    """What the list page shows; also what tests compare with the aggregation API."""

    query: AuditQuery
    records: list[AuditRecord]
    total: int
    next_cursor: str | None
    charts: list[Chart]


class Viewer:
    """Renders the pages over ``store``; a record's page says whether it verifies against
    ``integrity`` (the log's origin and keyring)."""

    def __init__(self, store: Store, integrity: Integrity | None = None) -> None:
        try:
            import jinja2
        except ImportError:
            raise MissingDependencyError("the auditwire viewer", "web") from None
        self.store = store
        self.integrity = integrity
        self._executor: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(_TEMPLATES),
            autoescape=True,
            trim_blocks=True,
            lstrip_blocks=True,
            undefined=jinja2.StrictUndefined,
        )
        self._env.filters["when"] = _when
        self._env.globals.update(
            outcomes=OUTCOMES,
            signs=_OUTCOME_SIGNS,
            integrity_labels=_INTEGRITY_LABELS,
            ranges=_RANGE_NAMES,
            fields=_FIELDS,
            chart_width=CHART_WIDTH,
            chart_height=CHART_HEIGHT,
        )

    # -- the list ---------------------------------------------------------------------------

    def query_of(self, params: Any, *, tenant: str | None, now: datetime) -> AuditQuery:
        """The list's query: the filters, the quick range (or the default one when no date is
        given), 20 a page, after the cursor."""
        items = viewer_filters(params)
        ranges = [value for key, value in items if key == "range"]
        if len(ranges) > 1:
            raise InvalidQueryError("range", "is given more than once")
        named = ranges[0] if ranges else None
        if named is not None and named not in QUICK_RANGES:
            raise InvalidQueryError("range", f"must be one of {', '.join(QUICK_RANGES)}")
        # Dates typed in the form win over a quick range; with neither, the default range.
        dated = any(key in ("from", "to", "startDate", "endDate") for key, _ in items)
        span = QUICK_RANGES[named or DEFAULT_RANGE]
        if span is not None and not dated:
            items.append(("from", format_timestamp(now - span)))
        query = parse_list_request(
            items, tenant=tenant, ignore=("range",), default_per_page=PAGE_SIZE
        ).query
        if query.limit != PAGE_SIZE:
            query = replace(query, limit=PAGE_SIZE)
        return query

    def list_page(
        self, params: Any, *, tenant: str | None, now: datetime | None = None
    ) -> ViewerPage:
        """The data of the list page (see :meth:`render_list`). Its seven store reads — the
        page, the total, five charts — are made at once, in threads: a cluster answers them
        side by side, so the page waits for the slowest rather than for their sum (SQLite,
        one connection, still takes them in turn)."""
        moment = now or utcnow()
        query = self.query_of(params, tenant=tenant, now=moment)
        everything = replace(query, after=None)
        interval = interval_for(query.start, query.end or moment) if query.start else "day"
        failures = _narrowed(everything, outcomes=("failure",))
        failed_logins = _narrowed(failures, categories=("authentication",)) if failures else None
        pool = self._pool()
        records = pool.submit(self.store.search, query)
        total = pool.submit(self.store.count, everything)
        timeline = pool.submit(self._filled, everything, interval, moment)
        logins = (
            pool.submit(self._filled, failed_logins, interval, moment) if failed_logins else None
        )
        actors = pool.submit(self.store.top, everything, "actor_id", 10)
        addresses = pool.submit(self.store.top, failures, "source_ip", 10) if failures else None
        categories = pool.submit(self.store.top, everything, "category", 20)
        found = records.result()
        last = found[-1] if len(found) == PAGE_SIZE else None
        charts = [
            Chart("timeline", "Events over time, by outcome", timeline.result(), interval),
            Chart(
                "failed-logins",
                "Failed logins over time",
                logins.result() if logins else (),
                interval,
            ),
            Chart("top-actors", "Top actors", values=actors.result()),
            Chart(
                "top-failure-ips",
                "Top source IPs of failures",
                values=addresses.result() if addresses else (),
            ),
            Chart("categories", "Events by category", values=categories.result()),
        ]
        return ViewerPage(
            query=query,
            records=found,
            total=total.result(),
            next_cursor=Cursor.of(last).encode() if last is not None else None,
            charts=charts,
        )

    def _pool(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(7, thread_name_prefix="auditwire-viewer")
            return self._executor

    def _filled(self, query: AuditQuery, interval: str, now: datetime) -> list[TimeBucket]:
        """The timeline with its empty buckets drawn as zero, from the range's start (else
        the first bucket) to its end (else now), the latest :data:`MAX_BUCKETS` of them."""
        found = {bucket.start: bucket for bucket in self.store.timeline(query, interval)}
        length = check_interval(interval)
        first = bucket_start(query.start, interval) if query.start else min(found, default=None)
        if first is None:
            return []
        last = bucket_start(min(query.end or now, now) - timedelta(microseconds=1), interval)
        last = max(last, max(found, default=last))
        first = max(first, last - length * (MAX_BUCKETS - 1))
        return [
            found.get(moment, TimeBucket(moment))
            for moment in bucket_starts(first, last + length, interval)
        ]

    def render_list(self, page: ViewerPage, params: Any, *, error: str | None = None) -> str:
        items = viewer_filters(params)
        chosen = {key: value for key, value in items if key != "cursor"}
        keep = [(key, value) for key, value in items if key != "cursor"]
        return self._env.get_template("list.html").render(
            page=page,
            error=error,
            chosen=chosen,
            quick=next((value for key, value in items if key == "range"), None),
            here="viewer?" + urlencode(keep) if keep else "viewer",
            older="viewer?" + urlencode([*keep, ("cursor", page.next_cursor)])
            if page.next_cursor
            else None,
            first_page=not any(key == "cursor" for key, _ in items),
            ranges_urls={
                name: "viewer?"
                + urlencode(
                    [
                        (k, v)
                        for k, v in keep
                        if k not in ("range", "from", "to", "startDate", "endDate")
                    ]
                    + [("range", name)]
                )
                for name in QUICK_RANGES
            },
            exports={
                name: "viewer/export?" + urlencode([("format", name), *keep]) for name in FORMATS
            },
        )

    def page(
        self, params: Any, *, tenant: str | None, now: datetime | None = None
    ) -> tuple[int, str]:
        """The list page as ``(status, html)``: a 400 with the form and the problem named when
        a filter is invalid."""
        try:
            return 200, self.render_list(self.list_page(params, tenant=tenant, now=now), params)
        except InvalidQueryError as exc:
            empty = ViewerPage(AuditQuery(), [], 0, None, [])
            return 400, self.render_list(empty, params, error=str(exc))

    # -- one record, exports, errors ------------------------------------------------------

    def record_page(self, record: AuditRecord) -> str:
        document = record.to_api()
        integrity = self.integrity
        check = (
            check_record(self.store, document, keyring=integrity.keyring, origin=integrity.origin)
            if isinstance(self.store, Chained) and integrity is not None
            else None
        )
        return self._env.get_template("record.html").render(
            record=record,
            check=check,
            fields=[(name, value) for name, value in flat_fields(record).items() if value],
            metadata=json.dumps(record.metadata, indent=2, ensure_ascii=False, sort_keys=True),
            raw=json.dumps(document, indent=2, ensure_ascii=False, sort_keys=True),
        )

    def download(
        self, params: Any, *, tenant: str | None, now: datetime | None = None
    ) -> tuple[ExportFormat, Iterator[str]]:
        """An export of the list's filter (every page): its format and its chunks."""
        items = viewer_filters(params)
        formats = [value for key, value in items if key == "format"]
        if len(formats) != 1 or formats[0] not in FORMATS:
            raise InvalidQueryError("format", f"must be one of {', '.join(FORMATS)}")
        chosen: ExportFormat = formats[0]  # type: ignore[assignment]
        rest = [(key, value) for key, value in items if key not in ("format", "cursor")]
        query = self.query_of(rest, tenant=tenant, now=now or utcnow())
        return chosen, export(self.store, replace(query, after=None, limit=1000), chosen)

    def error_page(self, status: int, message: str) -> str:
        return self._env.get_template("error.html").render(status=status, message=message)


def _narrowed(query: AuditQuery, **wanted: tuple[str, ...]) -> AuditQuery | None:
    """``query`` with each named filter intersected with the wanted values; ``None`` when an
    intersection is empty (the chart then has nothing to count)."""
    changes: dict[str, tuple[str, ...]] = {}
    for name, values in wanted.items():
        current: tuple[str, ...] = getattr(query, name)
        kept = tuple(v for v in values if not current or v in current)
        if not kept:
            return None
        changes[name] = kept
    return replace(query, **changes)  # type: ignore[arg-type]


def _when(moment: datetime) -> str:
    """A timestamp as people read it, in UTC."""
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
