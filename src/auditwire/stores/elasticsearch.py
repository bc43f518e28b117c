"""Records in Elasticsearch, as ECS documents, through the official client.

Writes are ``create`` operations with the record id as ``_id`` into the partition named by the
record's timestamp, so writing a record again is refused as a duplicate (409) and counted as
done: a retry never duplicates. Reads go through one pattern over all partitions.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from auditwire.catalog import EventCatalog
from auditwire.delivery import ItemResult, SendError
from auditwire.ecs import from_ecs, to_ecs
from auditwire.errors import BulkWriteError, MissingDependencyError, RecordNotFoundError
from auditwire.index_template import (
    DEFAULT_PREFIX,
    TYPE_FALLBACKS,
    Partitioning,
    index_template,
    partition_end,
    partition_start,
    read_pattern,
    write_index,
)
from auditwire.query import AuditQuery, Page, to_elasticsearch
from auditwire.record import format_timestamp
from auditwire.retention import RetentionPolicy, RetentionResult, utcnow

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

    from auditwire.record import AuditRecord

#: Whole-request answers that resending cannot fix; the pipeline splits such a batch instead.
_REQUEST_REFUSED = frozenset({400, 413})
_BULK_FILTER = "items.*.status,items.*.error.type,items.*.error.reason"
_UNKNOWN_TYPE = re.compile(r"mapper type \[(\w+)\]|No handler for type \[(\w+)\]")


def _client(client: Elasticsearch | str) -> Elasticsearch:
    try:
        import orjson  # noqa: F401  # the encoder of the delivery pipeline
        from elasticsearch import Elasticsearch
    except ImportError:
        raise MissingDependencyError("ElasticsearchStore", "elasticsearch") from None
    if isinstance(client, str):
        return Elasticsearch(client)
    return client


@dataclass(frozen=True, slots=True)
class SetupResult:
    """What :meth:`ElasticsearchStore.setup` installed, and which types the cluster lacked."""

    template: str
    read_pattern: str
    substituted_types: dict[str, str] = field(default_factory=dict)


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
    ) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_\-]*", prefix):
            raise ValueError(
                f"prefix {prefix!r} is not a valid index name prefix (lowercase, digits, _ -)"
            )
        self._owns_client = isinstance(client, str)
        self.client = _client(client)
        self.prefix = prefix
        self.partitioning: Partitioning = partitioning
        self.catalog = catalog if catalog is not None else EventCatalog.default()
        self.refresh = refresh
        self.read_pattern = read_pattern(prefix)
        self._sender = self.client.options(max_retries=0, retry_on_timeout=False)

    def __repr__(self) -> str:
        return f"ElasticsearchStore(prefix={self.prefix!r})"

    def setup(self, *, replicas: str | int = "0-1") -> SetupResult:
        """Install (or update) the index template.

        Field types that the cluster does not have (a minimal distribution lacks the modules of
        ``match_only_text`` and ``wildcard``) are detected from its answer and replaced by their
        core equivalents; the result says which.
        """
        from elasticsearch import BadRequestError

        unsupported: set[str] = set()
        while True:
            body = index_template(self.prefix, replicas=replicas, unsupported_types=unsupported)
            try:
                self.client.indices.put_index_template(name=self.prefix, **body)
            except BadRequestError as exc:
                missing = {
                    name
                    for match in _UNKNOWN_TYPE.finditer(str(exc.body))
                    for name in match.groups()
                    if name in TYPE_FALLBACKS and name not in unsupported
                }
                if not missing:
                    raise
                unsupported |= missing
                continue
            return SetupResult(
                template=self.prefix,
                read_pattern=self.read_pattern,
                substituted_types={t: TYPE_FALLBACKS[t] for t in sorted(unsupported)},
            )

    @property
    def spool_name(self) -> str:
        """Kind, index prefix and a digest of the cluster's addresses: a spool is replayed only
        to the cluster it was written for."""
        nodes = sorted(node.base_url for node in self.client.transport.node_pool.all())
        digest = hashlib.sha256("\n".join(nodes).encode()).hexdigest()[:12]
        return f"elasticsearch-{self.prefix}-{digest}"

    def encode(self, record: AuditRecord) -> bytes:
        """The ``create`` action and ECS document of one record, as two NDJSON lines."""
        import orjson

        action = {
            "create": {
                "_index": write_index(self.prefix, record.timestamp, self.partitioning),
                "_id": record.id,
            }
        }
        return orjson.dumps(action) + b"\n" + orjson.dumps(to_ecs(record, self.catalog))

    def send(self, payloads: Sequence[bytes]) -> list[ItemResult]:
        """One ``_bulk`` request of encoded records; one result per record. The client's own
        retries are off: the delivery pipeline retries only what failed, with backoff."""
        from elasticsearch import ApiError, TransportError

        try:
            response = self._sender.bulk(
                operations=b"\n".join(payloads) + b"\n",  # type: ignore[arg-type]
                refresh=self.refresh,
                filter_path=_BULK_FILTER,
            )
        except ApiError as exc:
            status = exc.meta.status
            raise SendError(
                f"Elasticsearch answered {status} to a bulk request: {exc.message}",
                status=status,
                retryable=status not in _REQUEST_REFUSED,
            ) from exc
        except TransportError as exc:
            raise SendError(f"Elasticsearch is unreachable: {exc.message}") from exc
        results = []
        for item in response.body.get("items", ()):
            answer = next(iter(item.values()))
            error = answer.get("error") or {}
            reason = f"{error.get('type')}: {error.get('reason')}" if error else None
            # A block (read-only index, disk watermark) is the cluster's state, not the
            # document's fault: it lifts, so the entry waits rather than being dead-lettered.
            blocked = error.get("type") == "cluster_block_exception" or None
            results.append(ItemResult(int(answer["status"]), reason, blocked))
        return results

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
            raise BulkWriteError("Elasticsearch refused audit records", refused)

    def get(self, record_id: str, *, tenant: str | None = None) -> AuditRecord:
        filters: list[dict[str, Any]] = [{"term": {"event.id": record_id}}]
        if tenant is not None:
            filters.append({"term": {"organization.id": tenant}})
        response = self.client.search(
            index=self.read_pattern,
            query={"bool": {"filter": filters}},
            size=1,
            ignore_unavailable=True,
            allow_no_indices=True,
        )
        hits = response["hits"]["hits"]
        if not hits:
            raise RecordNotFoundError(record_id)
        return from_ecs(hits[0]["_source"])

    def search(self, query: AuditQuery) -> list[AuditRecord]:
        body = to_elasticsearch(query)
        response = self.client.search(
            index=self.read_pattern, ignore_unavailable=True, allow_no_indices=True, **body
        )
        return [from_ecs(hit["_source"]) for hit in response["hits"]["hits"]]

    def page(self, query: AuditQuery, page: int = 1) -> Page:
        """Page ``page`` (from 1) of ``query.limit`` records, with the total for a dashboard.
        Deep pages should use cursors (``AuditQuery.after``): offsets past 10,000 are refused
        by Elasticsearch."""
        body = to_elasticsearch(query)
        body["from"] = (page - 1) * query.limit
        response = self.client.search(
            index=self.read_pattern, ignore_unavailable=True, allow_no_indices=True, **body
        )
        hits = response["hits"]
        return Page(
            [from_ecs(hit["_source"]) for hit in hits["hits"]],
            int(hits["total"]["value"]),
            page,
            query.limit,
        )

    def count(self, query: AuditQuery | None = None) -> int:
        body = to_elasticsearch(query if query is not None else AuditQuery())
        response = self.client.count(
            index=self.read_pattern,
            query=body["query"],
            ignore_unavailable=True,
            allow_no_indices=True,
        )
        return int(response["count"])

    def partitions(self) -> dict[str, datetime]:
        """This store's partitions (index name -> start of the period it holds); indices
        under the prefix whose names are not partitions are left out, and so left alone."""
        answer = self.client.indices.get(
            index=self.read_pattern, expand_wildcards="open,closed", allow_no_indices=True
        )
        out = {}
        for name in answer.body:
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
            removed += int(self.client.count(index=",".join(expired))["count"])
            self.client.indices.delete(index=",".join(expired))
        for cutoff, only, excluded in policy.groups(now):
            if cutoff <= oldest_kept:
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
        from elasticsearch import BadRequestError

        scope: dict[str, Any] = {"allow_no_indices": True, "ignore_unavailable": True}
        try:
            answer = self.client.delete_by_query(
                index=self.read_pattern, query=query, conflicts="proceed", refresh=True, **scope
            )
            return int(answer["deleted"])
        except BadRequestError as exc:
            if "no handler found" not in str(exc):
                raise
        deleted = 0
        while True:
            hits = self.client.search(
                index=self.read_pattern, query=query, size=1000, source=False, **scope
            )["hits"]["hits"]
            if not hits:
                return deleted
            answer = self.client.bulk(
                operations=[{"delete": {"_index": h["_index"], "_id": h["_id"]}} for h in hits],
                refresh=True,
            )
            if answer["errors"]:
                failed = [i["delete"] for i in answer["items"] if i["delete"].get("error")]
                raise BulkWriteError("Elasticsearch refused retention deletes", failed)
            deleted += len(hits)

    def refresh_indices(self) -> None:
        """Make every write so far visible to search (for tests and demos)."""
        self.client.indices.refresh(
            index=self.read_pattern, ignore_unavailable=True, allow_no_indices=True
        )

    def server_version(self) -> str:
        """The version of the node answering (``GET /`` is missing from minimal builds)."""
        nodes = self.client.nodes.info(node_id="_local", filter_path="nodes.*.version")
        return str(next(iter(nodes["nodes"].values()))["version"])

    def close(self) -> None:
        """Close the client if this store created it from a URL; a passed client is the
        caller's to close."""
        if self._owns_client:
            self.client.close()
