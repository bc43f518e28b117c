"""Records in Elasticsearch (or OpenSearch), as ECS documents, through the official clients.

Writes are ``create`` operations with the record id as ``_id`` into the partition named by the
record's timestamp, so writing a record again is refused as a duplicate (409) and counted as
done: a retry never duplicates. Reads go through one pattern over all partitions.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from auditwire._fork import renew_in_child
from auditwire._ids import ID_PATTERN
from auditwire._time import format_timestamp, utcnow
from auditwire.aggregation import TimeBucket, TopValue
from auditwire.catalog import EventCatalog
from auditwire.ecs import (
    NATIVE_DOCUMENTS,
    SCHEMA_VERSION,
    api_from_ecs,
    classification,
    from_ecs,
    to_ecs,
)
from auditwire.errors import (
    BulkWriteError,
    ClientVersionError,
    InvalidQueryError,
    RecordNotFoundError,
    SendError,
    StoreError,
    TemplateRefusedError,
    UnsupportedError,
)
from auditwire.query import AuditQuery, Page
from auditwire.retention import RetentionPolicy, RetentionResult
from auditwire.seal import seal_problem
from auditwire.stores.base import AsyncSender, ItemResult
from auditwire.stores.clusters import (
    ClusterApi,
    ElasticsearchApi,
    OpenSearchApi,
    async_elasticsearch_sender,
    elasticsearch_client,
    opensearch_client,
)
from auditwire.stores.connection import Connection
from auditwire.stores.index_template import (
    DEFAULT_PREFIX,
    TYPE_FALLBACKS,
    Partitioning,
    index_template,
    partition_end,
    partition_start,
    read_pattern,
    write_index,
)
from auditwire.stores.translate import (
    from_es_timeline,
    from_es_top,
    timeline_to_elasticsearch,
    to_elasticsearch,
    top_to_elasticsearch,
)

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch
    from opensearchpy import OpenSearch

    from auditwire.record import AuditRecord

#: The most records a cluster pages through by offset (``index.max_result_window``).
RESULT_WINDOW = 10_000
_CHAIN = "auditwire.integrity"
_UNKNOWN_TYPE = re.compile(r"mapper type \[(\w+)\]|No handler for type \[(\w+)\]")


@dataclass(frozen=True, slots=True)
class SetupResult:
    """What :meth:`ElasticsearchStore.setup` installed, and which types the cluster lacked."""

    template: str
    read_pattern: str
    substituted_types: dict[str, str] = field(default_factory=dict)
    #: Whether the cluster offers data streams. The dated indices stay the default even then:
    #: a data stream sends a ``create`` to its current write index, so a retry that straddles
    #: a rollover would store a second copy, where an index named by the record's own time
    #: refuses it. ``partitioning="data_stream"`` chooses the data stream anyway.
    data_streams: bool = False


__all__ = ["RESULT_WINDOW", "ElasticsearchStore", "OpenSearchStore", "SetupResult"]


class ElasticsearchStore:
    """Audit records in Elasticsearch 8 or 9.

    ``client`` is an ``elasticsearch.Elasticsearch`` or a URL. ``refresh`` is passed to bulk
    writes (``"wait_for"`` makes a write visible to the next search; tests use it, production
    usually should not).
    """

    def __init__(
        self,
        client: Elasticsearch | str,
        *,
        prefix: str = DEFAULT_PREFIX,
        partitioning: Partitioning = "month",
        catalog: EventCatalog | None = None,
        refresh: bool | str = False,
        connection: Connection | None = None,
    ) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_\-]*", prefix):
            raise ValueError(
                f"prefix {prefix!r} is not a valid index name prefix (lowercase, digits, _ -)"
            )
        self._owns_client = isinstance(client, str)
        self.client: Any = self._connect(client, connection)
        self._api: ClusterApi = self._adapter(self.client)
        self.prefix = prefix
        self.partitioning: Partitioning = partitioning
        self.catalog = catalog if catalog is not None else EventCatalog.default()
        self.refresh = refresh
        self.read_pattern = read_pattern(prefix)
        #: Whether this store has seen its index template in place (see :meth:`send`).
        self.template_ready = False
        renew_in_child(self, ElasticsearchStore._after_fork)
        #: Whether a document without a seal is refused (an :class:`~auditwire.AuditLog`
        #: seals everything it writes, and sets this on its store).
        self.require_seal = False

    def _after_fork(self) -> None:
        """A forked child opens connections of its own (see
        :func:`~auditwire.stores.clusters.forget_pooled`)."""
        self._api.forget_connections()

    @staticmethod
    def _connect(client: Any, connection: Connection | None) -> Any:
        return elasticsearch_client(client, connection)

    @staticmethod
    def _adapter(client: Any) -> ClusterApi:
        return ElasticsearchApi(client)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(prefix={self.prefix!r})"

    def setup(self, *, replicas: str | int = "0-1") -> SetupResult:
        """Install (or update) the index template, and add its fields to existing partitions.

        Field types that the cluster does not have (a minimal distribution lacks the modules of
        ``match_only_text`` and ``wildcard``) are detected from its answer and replaced by their
        core equivalents; the result says which.
        """
        data_stream = self.partitioning == "data_stream"
        data_streams = self._api.has_data_streams(f"{self.prefix}-probe")
        if data_stream and not data_streams:
            raise StoreError(
                f"this {self._api.product} cluster has no data streams (a module missing from "
                "its distribution); use partitioning='month', the dated indices"
            )
        unsupported: set[str] = set()
        while True:
            body = index_template(
                self.prefix,
                replicas=replicas,
                unsupported_types=unsupported,
                data_stream=data_stream,
            )
            try:
                self._api.put_template(self.prefix, body)
            except TemplateRefusedError as exc:
                missing = {
                    name
                    for match in _UNKNOWN_TYPE.finditer(exc.detail)
                    for name in match.groups()
                    if name in TYPE_FALLBACKS and name not in unsupported
                }
                if not missing:
                    raise
                unsupported |= missing
                continue
            if self._api.index_names(self.read_pattern):
                # Partitions made under an older template get the fields added since.
                self._api.put_mappings(self.read_pattern, body["template"]["mappings"])
            self.template_ready = True
            return SetupResult(
                template=self.prefix,
                read_pattern=self.read_pattern,
                substituted_types={t: TYPE_FALLBACKS[t] for t in sorted(unsupported)},
                data_streams=data_streams,
            )

    @property
    def spool_name(self) -> str:
        """Kind, index prefix and a digest of the cluster's addresses: a spool is replayed only
        to the cluster it was written for."""
        nodes = self._api.node_urls()
        digest = hashlib.sha256("\n".join(nodes).encode()).hexdigest()[:12]
        return f"{self._api.product.lower()}-{self.prefix}-{digest}"

    def encode(self, record: AuditRecord) -> bytes:
        """The ``create`` action and ECS document of one record, as two NDJSON lines (written
        by the native encoder when it covers the record: the same bytes)."""
        index = write_index(self.prefix, record.timestamp, self.partitioning)
        if NATIVE_DOCUMENTS is not None:
            entry = NATIVE_DOCUMENTS.entry(record, index, *classification(record, self.catalog))
            if entry is not None:
                return entry
        import orjson

        action = {"create": {"_index": index, "_id": record.id}}
        return orjson.dumps(action) + b"\n" + orjson.dumps(to_ecs(record, self.catalog))

    def entry_problem(self, payload: bytes) -> str | None:
        """Why a spool entry is not an audit document this store wrote, or ``None``. Entries
        come from a file on disk: one crafted there must not delete, overwrite or update a
        stored record (only a ``create`` of a record id into this store's partitions passes),
        nor hold several actions (the bulk answer would no longer match the entries), nor
        pass as a record — its seal must hold, and with :attr:`require_seal` it must have
        one."""
        import orjson

        action_line, _, document_line = payload.partition(b"\n")
        if b"\n" in document_line:
            return "more than one document"
        try:
            action, document = orjson.loads(action_line), orjson.loads(document_line)
        except orjson.JSONDecodeError:
            return "not JSON"
        create = action.get("create") if isinstance(action, dict) and len(action) == 1 else None
        if not isinstance(create, dict) or set(create) != {"_index", "_id"}:
            return "not a create action"
        index, record_id = create["_index"], create["_id"]
        if not isinstance(index, str) or not (
            index.startswith(f"{self.prefix}-") and index == index.lower()
        ):
            return f"an index outside this store ({index!r})"
        if not (isinstance(record_id, str) and ID_PATTERN.match(record_id)):
            return "not a record id"
        event = document.get("event") if isinstance(document, dict) else None
        if not isinstance(event, dict) or event.get("id") != record_id:
            return "a document that is not the record it names"
        own = document.get("auditwire")
        if not isinstance(own, dict) or own.get("integrity") is None:
            return "a document without a seal" if self.require_seal else None
        problem = seal_problem(api_from_ecs(document))
        return None if problem is None else f"a document whose seal does not hold ({problem})"

    def _checked(
        self, payloads: Sequence[bytes]
    ) -> tuple[list[bytes], Callable[[Sequence[ItemResult]], list[ItemResult]]]:
        """The entries fit to send, and how to answer for all of them from their results:
        an entry that is not an audit document is refused for good (dead-lettered)."""
        problems = [self.entry_problem(payload) for payload in payloads]
        fit = [payload for payload, problem in zip(payloads, problems, strict=True) if not problem]

        def answer(results: Sequence[ItemResult]) -> list[ItemResult]:
            sent = iter(results)
            return [
                ItemResult(400, f"not an audit document: {problem}", retryable=False)
                if problem
                else next(sent)
                for problem in problems
            ]

        return fit, answer

    def ensure_template(self) -> None:
        """Install the index template unless it is in place, once per store: a record indexed
        without it would get guessed mappings, on which later reads fail. A template of an
        older schema is replaced, and the existing partitions get the fields added since
        (:meth:`setup`): under the strict mapping, a document with a new field would be
        refused. A cluster that cannot be asked, or that refuses the template, fails the send
        (retried; the records wait in the spool) with the reason — and, for a refusal, the
        command that installs it."""
        if self.template_ready:
            return
        installed = self._api.template_schema(self.prefix)  # a SendError when it cannot be asked
        if installed is None or installed < SCHEMA_VERSION:
            try:
                self.setup()
            except ClientVersionError:
                raise  # its message names the remedy
            except Exception as exc:
                raise SendError(
                    f"the index template {self.prefix!r} is missing or older than this "
                    f"auditwire's and could not be installed ({exc}); the records wait in the "
                    "spool (install it with: auditwire setup)"
                ) from exc
        self.template_ready = True

    def send(self, payloads: Sequence[bytes]) -> list[ItemResult]:
        """One ``_bulk`` request of encoded records; one result per record. The client's own
        retries are off: the delivery pipeline retries only what failed, with backoff. The
        first send checks the index template (:meth:`ensure_template`)."""
        self.ensure_template()
        fit, answer = self._checked(payloads)
        return answer(self._api.send_bulk(b"\n".join(fit) + b"\n", self.refresh) if fit else [])

    def async_sender(self, client: Any) -> AsyncSender:
        """Sends as :meth:`send` does, from an event loop, through ``client`` (an
        ``AsyncElasticsearch``): what :class:`~auditwire.delivery.aio.AsyncDelivery` uses."""
        send_bulk = async_elasticsearch_sender(client, self.refresh)

        async def send(payloads: Sequence[bytes]) -> Sequence[ItemResult]:
            if not self.template_ready:
                await asyncio.to_thread(self.ensure_template)
            fit, answer = self._checked(payloads)
            return answer(await send_bulk(fit) if fit else [])

        return send

    def write(self, records: Sequence[AuditRecord]) -> None:
        """Write all records now; duplicates count as written, any other refusal raises."""
        if not records:
            return
        results = self.send([self.encode(r) for r in records])
        refused = [
            {"id": r.id, "status": result.status, "error": result.error}
            for r, result in zip(records, results, strict=True)
            if not result.delivered
        ]
        if refused:
            raise BulkWriteError(f"{self._api.product} refused audit records", refused)

    def get(self, record_id: str, *, tenant: str | None = None) -> AuditRecord:
        if not ID_PATTERN.match(record_id):  # no such record; and the cluster is not asked
            raise RecordNotFoundError(record_id)
        filters: list[dict[str, Any]] = [{"term": {"event.id": record_id}}]
        if tenant is not None:
            filters.append({"term": {"organization.id": tenant}})
        body = {"query": {"bool": {"filter": filters}}, "size": 1}
        hits = self._api.search(self.read_pattern, body)["hits"]["hits"]
        if not hits:
            raise RecordNotFoundError(record_id)
        return from_ecs(hits[0]["_source"])

    def search(self, query: AuditQuery) -> list[AuditRecord]:
        response = self._api.search(self.read_pattern, to_elasticsearch(query))
        return [from_ecs(hit["_source"]) for hit in response["hits"]["hits"]]

    def page(self, query: AuditQuery, page: int = 1) -> Page:
        """Page ``page`` (from 1) of ``query.limit`` records, with the total for a dashboard.
        A page reaching past the cluster's result window (10,000 records) is refused before
        the cluster is asked: deep listings continue by cursor (``AuditQuery.after``)."""
        if page * query.limit > RESULT_WINDOW:
            raise InvalidQueryError(
                "page",
                f"page {page} of {query.limit} reaches past the first {RESULT_WINDOW:,} "
                "records, the most this store pages through; continue with a cursor",
            )
        body = to_elasticsearch(query)
        body["from"] = (page - 1) * query.limit
        hits = self._api.search(self.read_pattern, body)["hits"]
        return Page(
            [from_ecs(hit["_source"]) for hit in hits["hits"]],
            int(hits["total"]["value"]),
            page,
            query.limit,
        )

    def count(self, query: AuditQuery | None = None) -> int:
        body = to_elasticsearch(query if query is not None else AuditQuery())
        return self._api.count(self.read_pattern, body["query"])

    def timeline(self, query: AuditQuery, interval: str) -> list[TimeBucket]:
        body = timeline_to_elasticsearch(query, interval)
        return from_es_timeline(self._api.search(self.read_pattern, body))

    def top(self, query: AuditQuery, field: str, size: int = 10) -> list[TopValue]:
        body = top_to_elasticsearch(query, field, size)
        return from_es_top(self._api.search(self.read_pattern, body))

    def partitions(self) -> dict[str, datetime]:
        """This store's partitions (index name -> start of the period it holds); indices
        under the prefix whose names are not partitions are left out, and so left alone."""
        out = {}
        for name in self._api.index_names(self.read_pattern):
            start = partition_start(self.prefix, name, self.partitioning)
            if start is not None:
                out[name] = start
        return out

    def apply_retention(
        self, policy: RetentionPolicy, *, now: datetime | None = None
    ) -> RetentionResult:
        """Drop whole partitions older than the longest age kept, then delete by query what
        shorter ages no longer keep. Partitions are deleted by name: clusters may refuse
        wildcard deletes."""
        now = now or utcnow()
        oldest_kept = now - policy.longest
        expired = sorted(
            name
            for name, start in self.partitions().items()
            if partition_end(start, self.partitioning) <= oldest_kept
        )
        removed = 0
        if expired:
            removed += self._api.count(",".join(expired), None)
            self._api.delete_indices(expired)
        dated = self.partitioning != "data_stream"
        for cutoff, only, excluded in policy.groups(now):
            if dated and cutoff <= oldest_kept:
                continue  # the partitions that held them are gone already, or hold none
            query: dict[str, Any] = {
                "bool": {"filter": [{"range": {"@timestamp": {"lt": format_timestamp(cutoff)}}}]}
            }
            if only is not None:
                query["bool"]["filter"].append({"terms": {"organization.id": list(only)}})
            if excluded:
                query["bool"]["must_not"] = [{"terms": {"organization.id": list(excluded)}}]
            removed += self._delete_matching(query)
        return RetentionResult(removed_records=removed, removed_partitions=tuple(expired))

    def _delete_matching(self, query: dict[str, Any]) -> int:
        """Delete the documents matching ``query``: ``_delete_by_query`` where the cluster has
        it, else (minimal distributions lack the module) search and bulk-delete by id."""
        try:
            return self._api.delete_by_query(self.read_pattern, query)
        except UnsupportedError:
            pass
        deleted = 0
        while True:
            body = {"query": query, "size": 1000, "_source": False}
            hits = self._api.search(self.read_pattern, body)["hits"]["hits"]
            if not hits:
                return deleted
            failed = self._api.bulk_delete(hits)
            if failed:
                raise BulkWriteError(f"{self._api.product} refused retention deletes", failed)
            deleted += len(hits)

    def chain(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        writer: str | None = None,
        first: int | None = None,
        last: int | None = None,
        unsealed: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """:meth:`Chained.chain <auditwire.stores.base.Chained.chain>`: pages of 5,000 by
        ``search_after`` on the chain's keys and the record id, so any number stream."""
        filters = self._time_filters(since, until)
        if unsealed:
            filters.append({"bool": {"must_not": {"exists": {"field": f"{_CHAIN}.writer"}}}})
        if writer is not None:
            filters.append({"term": {f"{_CHAIN}.writer": writer}})
        seqs = {op: value for op, value in (("gte", first), ("lte", last)) if value is not None}
        if seqs:
            filters.append({"range": {f"{_CHAIN}.seq": seqs}})
        body: dict[str, Any] = {
            "query": {"bool": {"filter": filters}},
            "size": 5000,
            "sort": [
                {f"{_CHAIN}.writer": {"order": "asc", "missing": "_first"}},
                {f"{_CHAIN}.seq": {"order": "asc", "missing": "_first"}},
                {"event.id": "asc"},
            ],
            "track_total_hits": False,
        }
        while True:
            hits = self._api.search(self.read_pattern, body)["hits"]["hits"]
            for hit in hits:
                yield api_from_ecs(hit["_source"])
            if len(hits) < body["size"]:
                return
            body["search_after"] = hits[-1]["sort"]

    def writers(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[str | None]:
        """:meth:`Chained.writers <auditwire.stores.base.Chained.writers>`: a composite
        aggregation, paged."""
        body: dict[str, Any] = {
            "size": 0,
            "query": {"bool": {"filter": self._time_filters(since, until)}},
            "aggs": {
                "writers": {
                    "composite": {
                        "size": 1000,
                        "sources": [
                            {
                                "writer": {
                                    "terms": {"field": f"{_CHAIN}.writer", "missing_bucket": True}
                                }
                            }
                        ],
                    }
                }
            },
        }
        found: list[str | None] = []
        while True:
            answer = self._api.search(self.read_pattern, body)["aggregations"]["writers"]
            found.extend(bucket["key"]["writer"] for bucket in answer["buckets"])
            if not answer["buckets"] or "after_key" not in answer:
                return found
            body["aggs"]["writers"]["composite"]["after"] = answer["after_key"]

    @staticmethod
    def _time_filters(since: datetime | None, until: datetime | None) -> list[dict[str, Any]]:
        stamp: dict[str, str] = {}
        if since is not None:
            stamp["gte"] = format_timestamp(since)
        if until is not None:
            stamp["lt"] = format_timestamp(until)
        return [{"range": {"@timestamp": stamp}}] if stamp else []

    def refresh_indices(self) -> None:
        """Make every write so far visible to search (for tests and demos)."""
        self._api.refresh(self.read_pattern)

    def server_version(self) -> str:
        """The version of the node answering (``GET /`` is missing from minimal builds)."""
        return self._api.version()

    def close(self) -> None:
        """Close the client if this store created it from a URL; a passed client is the
        caller's to close."""
        if self._owns_client:
            self._api.close()


class OpenSearchStore(ElasticsearchStore):
    """Audit records in OpenSearch 2 or 3, through ``opensearch-py``: the same documents,
    template, queries and delivery as :class:`ElasticsearchStore` (``client`` is an
    ``opensearchpy.OpenSearch`` or a URL)."""

    def __init__(self, client: OpenSearch | str, **options: Any) -> None:
        super().__init__(cast(Any, client), **options)

    @staticmethod
    def _connect(client: Any, connection: Connection | None) -> Any:
        return opensearch_client(client, connection)

    @staticmethod
    def _adapter(client: Any) -> ClusterApi:
        return OpenSearchApi(client)
