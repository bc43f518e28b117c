"""The few cluster calls the search-engine store makes, for each client it speaks through.

Elasticsearch and OpenSearch share the query language, the ``_bulk`` format and the index
templates auditwire uses; their Python clients differ in how a call is spelt and what they
raise. One adapter per client keeps :class:`~auditwire.stores.elasticsearch.ElasticsearchStore`
a single implementation for both.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

from auditwire.errors import (
    MissingDependencyError,
    SendError,
    TemplateRefusedError,
    UnsupportedError,
)
from auditwire.stores.base import AsyncSender, ItemResult

__all__ = [
    "BULK_FILTER",
    "REQUEST_REFUSED",
    "ClusterApi",
    "ElasticsearchApi",
    "OpenSearchApi",
    "async_elasticsearch_sender",
    "bulk_results",
    "elasticsearch_client",
    "elasticsearch_send_error",
    "opensearch_client",
]

#: Whole-request answers that resending cannot fix; the pipeline splits such a batch instead.
REQUEST_REFUSED = frozenset({400, 413})
BULK_FILTER = "items.*.status,items.*.error.type,items.*.error.reason"
_SCOPE: dict[str, Any] = {"ignore_unavailable": True, "allow_no_indices": True}


class ClusterApi(Protocol):
    product: str

    def search(self, index: str, body: dict[str, Any], **params: Any) -> dict[str, Any]: ...
    def count(self, index: str, query: dict[str, Any] | None) -> int: ...
    def send_bulk(self, payload: bytes, refresh: bool | str) -> list[ItemResult]: ...
    def bulk_delete(self, hits: Sequence[dict[str, Any]]) -> list[dict[str, Any]]: ...
    def put_template(self, name: str, body: dict[str, Any]) -> None: ...
    def template_exists(self, name: str) -> bool: ...
    def index_names(self, pattern: str) -> list[str]: ...
    def delete_indices(self, names: Sequence[str]) -> None: ...
    def delete_by_query(self, index: str, query: dict[str, Any]) -> int: ...
    def refresh(self, pattern: str) -> None: ...
    def has_data_streams(self, probe: str) -> bool: ...
    def version(self) -> str: ...
    def node_urls(self) -> list[str]: ...
    def close(self) -> None: ...


def elasticsearch_send_error(exc: Exception) -> SendError:
    """What an ``elasticsearch`` (sync or async) client raised, as the pipeline sees it."""
    from elasticsearch import ApiError

    if isinstance(exc, ApiError):
        status = exc.meta.status
        return SendError(
            f"Elasticsearch answered {status} to a bulk request: {exc.message}",
            status=status,
            retryable=status not in REQUEST_REFUSED,
        )
    return SendError(f"Elasticsearch is unreachable: {getattr(exc, 'message', exc)}")


def async_elasticsearch_sender(client: Any, refresh: bool | str) -> AsyncSender:
    """A coroutine function sending encoded entries in one ``_bulk`` request through an
    ``AsyncElasticsearch``, without the client's own retries (the pipeline retries)."""
    sender = client.options(max_retries=0, retry_on_timeout=False)

    async def send(payloads: Sequence[bytes]) -> list[ItemResult]:
        from elasticsearch import ApiError, TransportError

        try:
            answer = await sender.bulk(
                operations=b"\n".join(payloads) + b"\n",
                refresh=refresh,
                filter_path=BULK_FILTER,
            )
        except (ApiError, TransportError) as exc:
            raise elasticsearch_send_error(exc) from exc
        return bulk_results(answer.body)

    return send


def bulk_results(body: dict[str, Any]) -> list[ItemResult]:
    results = []
    for item in body.get("items", ()):
        answer = next(iter(item.values()))
        error = answer.get("error") or {}
        reason = f"{error.get('type')}: {error.get('reason')}" if error else None
        # A block (read-only index, disk watermark) is the cluster's state, not the document's
        # fault: it lifts, so the entry waits rather than being dead-lettered.
        blocked = error.get("type") == "cluster_block_exception" or None
        results.append(ItemResult(int(answer["status"]), reason, blocked))
    return results


def _answered_by_handler(status: int, answer: str) -> bool:
    """A probe of an API on a name that does not exist: a 404 from the API means the cluster
    has it; "no handler found" (or 405) means its module is missing."""
    return status == 404 and "no handler found" not in answer


def _delete_errors(body: dict[str, Any]) -> list[dict[str, Any]]:
    if not body.get("errors"):
        return []
    return [i["delete"] for i in body["items"] if i["delete"].get("error")]


def _delete_actions(hits: Sequence[dict[str, Any]]) -> bytes:
    return b"".join(
        json.dumps({"delete": {"_index": h["_index"], "_id": h["_id"]}}).encode() + b"\n"
        for h in hits
    )


class ElasticsearchApi:
    product = "Elasticsearch"

    def __init__(self, client: Any) -> None:
        self.client = client
        # The pipeline retries what failed, with backoff; the client's own retries would
        # resend whole batches without it.
        self._sender = client.options(max_retries=0, retry_on_timeout=False)

    def search(self, index: str, body: dict[str, Any], **params: Any) -> dict[str, Any]:
        answer: dict[str, Any] = self.client.search(index=index, **body, **_SCOPE, **params).body
        return answer

    def count(self, index: str, query: dict[str, Any] | None) -> int:
        extra = {} if query is None else {"query": query}
        return int(self.client.count(index=index, **extra, **_SCOPE)["count"])

    def send_bulk(self, payload: bytes, refresh: bool | str) -> list[ItemResult]:
        from elasticsearch import ApiError, TransportError

        try:
            answer = self._sender.bulk(operations=payload, refresh=refresh, filter_path=BULK_FILTER)
        except (ApiError, TransportError) as exc:
            raise elasticsearch_send_error(exc) from exc
        return bulk_results(answer.body)

    def bulk_delete(self, hits: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        return _delete_errors(self.client.bulk(operations=_delete_actions(hits), refresh=True).body)

    def put_template(self, name: str, body: dict[str, Any]) -> None:
        from elasticsearch import BadRequestError

        try:
            self.client.indices.put_index_template(name=name, **body)
        except BadRequestError as exc:
            raise TemplateRefusedError(str(exc.body)) from exc

    def template_exists(self, name: str) -> bool:
        from elasticsearch import ApiError, TransportError

        try:
            return bool(self.client.indices.exists_index_template(name=name))
        except ApiError as exc:
            raise SendError(
                f"Elasticsearch answered {exc.meta.status} when asked for the index template: "
                f"{exc.message}",
                status=exc.meta.status,
            ) from exc
        except TransportError as exc:
            raise SendError(f"Elasticsearch is unreachable: {exc.message}") from exc

    def index_names(self, pattern: str) -> list[str]:
        answer = self.client.indices.get(
            index=pattern, expand_wildcards="open,closed", allow_no_indices=True
        )
        return list(answer.body)

    def delete_indices(self, names: Sequence[str]) -> None:
        self.client.indices.delete(index=",".join(names))

    def delete_by_query(self, index: str, query: dict[str, Any]) -> int:
        from elasticsearch import BadRequestError

        try:
            answer = self.client.delete_by_query(
                index=index, query=query, conflicts="proceed", refresh=True, **_SCOPE
            )
        except BadRequestError as exc:
            if "no handler found" in str(exc):
                raise UnsupportedError("_delete_by_query") from exc
            raise
        return int(answer["deleted"])

    def refresh(self, pattern: str) -> None:
        self.client.indices.refresh(index=pattern, **_SCOPE)

    def has_data_streams(self, probe: str) -> bool:
        from elasticsearch import ApiError

        try:
            self.client.indices.get_data_stream(name=probe)
        except ApiError as exc:
            return _answered_by_handler(exc.meta.status, str(exc))
        return True

    def version(self) -> str:
        nodes = self.client.nodes.info(node_id="_local", filter_path="nodes.*.version")
        return str(next(iter(nodes["nodes"].values()))["version"])

    def node_urls(self) -> list[str]:
        return sorted(node.base_url for node in self.client.transport.node_pool.all())

    def close(self) -> None:
        self.client.close()


def elasticsearch_client(client: Any) -> Any:
    try:
        import orjson  # noqa: F401  # the encoder of the delivery pipeline
        from elasticsearch import Elasticsearch
    except ImportError:
        raise MissingDependencyError("ElasticsearchStore", "elasticsearch") from None
    return Elasticsearch(client) if isinstance(client, str) else client


class OpenSearchApi:
    product = "OpenSearch"

    def __init__(self, client: Any) -> None:
        self.client = client

    def search(self, index: str, body: dict[str, Any], **params: Any) -> dict[str, Any]:
        answer: dict[str, Any] = self.client.search(
            index=index, body=body, params=_query_params({**_SCOPE, **params})
        )
        return answer

    def count(self, index: str, query: dict[str, Any] | None) -> int:
        body = None if query is None else {"query": query}
        return int(self.client.count(index=index, body=body, params=_query_params(_SCOPE))["count"])

    def send_bulk(self, payload: bytes, refresh: bool | str) -> list[ItemResult]:
        from opensearchpy import TransportError

        try:
            answer = self.client.bulk(
                body=payload,
                params=_query_params({"refresh": refresh, "filter_path": BULK_FILTER}),
            )
        except TransportError as exc:
            status = exc.status_code if isinstance(exc.status_code, int) else None
            if status is None:  # no answer at all: a connection error or a timeout
                raise SendError(f"OpenSearch is unreachable: {exc}") from exc
            raise SendError(
                f"OpenSearch answered {status} to a bulk request: {exc.error}",
                status=status,
                retryable=status not in REQUEST_REFUSED,
            ) from exc
        return bulk_results(answer)

    def bulk_delete(self, hits: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        return _delete_errors(
            self.client.bulk(body=_delete_actions(hits), params={"refresh": "true"})
        )

    def put_template(self, name: str, body: dict[str, Any]) -> None:
        from opensearchpy import RequestError

        try:
            self.client.indices.put_index_template(name=name, body=body)
        except RequestError as exc:
            raise TemplateRefusedError(str(exc.info)) from exc

    def template_exists(self, name: str) -> bool:
        from opensearchpy import TransportError

        try:
            return bool(self.client.indices.exists_index_template(name=name))
        except TransportError as exc:
            status = exc.status_code if isinstance(exc.status_code, int) else None
            if status is None:
                raise SendError(f"OpenSearch is unreachable: {exc}") from exc
            raise SendError(
                f"OpenSearch answered {status} when asked for the index template: {exc.error}",
                status=status,
            ) from exc

    def index_names(self, pattern: str) -> list[str]:
        answer = self.client.indices.get(
            index=pattern, params={"expand_wildcards": "open,closed", "allow_no_indices": "true"}
        )
        return list(answer)

    def delete_indices(self, names: Sequence[str]) -> None:
        self.client.indices.delete(index=",".join(names))

    def delete_by_query(self, index: str, query: dict[str, Any]) -> int:
        from opensearchpy import RequestError

        try:
            answer = self.client.delete_by_query(
                index=index,
                body={"query": query},
                params=_query_params({"conflicts": "proceed", "refresh": True, **_SCOPE}),
            )
        except RequestError as exc:
            if "no handler found" in str(exc.info):
                raise UnsupportedError("_delete_by_query") from exc
            raise
        return int(answer["deleted"])

    def refresh(self, pattern: str) -> None:
        self.client.indices.refresh(index=pattern, params=_query_params(_SCOPE))

    def has_data_streams(self, probe: str) -> bool:
        from opensearchpy import TransportError

        try:
            self.client.indices.get_data_stream(name=probe)
        except TransportError as exc:
            status = exc.status_code if isinstance(exc.status_code, int) else 0
            return _answered_by_handler(status, str(exc.info))
        return True

    def version(self) -> str:
        nodes = self.client.nodes.info(node_id="_local", params={"filter_path": "nodes.*.version"})
        return str(next(iter(nodes["nodes"].values()))["version"])

    def node_urls(self) -> list[str]:
        return sorted(
            f"{getattr(c, 'scheme', 'http')}://{c.host}:{c.port}"
            for c in self.client.transport.connection_pool.connections
        )

    def close(self) -> None:
        self.client.close()


def opensearch_client(client: Any) -> Any:
    try:
        import orjson  # noqa: F401  # the encoder of the delivery pipeline
        from opensearchpy import OpenSearch
    except ImportError:
        raise MissingDependencyError("OpenSearchStore", "opensearch") from None
    # The pipeline retries what failed, with backoff: no retries inside the client.
    return OpenSearch(client, max_retries=0) if isinstance(client, str) else client


def _query_params(params: dict[str, Any]) -> dict[str, Any]:
    """``opensearch-py`` sends ``params`` as given: booleans must be spelt as the server
    reads them."""
    return {k: ("true" if v else "false") if isinstance(v, bool) else v for k, v in params.items()}
