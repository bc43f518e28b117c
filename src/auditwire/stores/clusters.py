"""The few cluster calls the search-engine store makes, for each client it speaks through.

Elasticsearch and OpenSearch share the query language, the ``_bulk`` format and the index
templates auditwire uses; their Python clients differ in how a call is spelt and what they
raise. One adapter per client keeps :class:`~auditwire.stores.elasticsearch.ElasticsearchStore`
a single implementation for both.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
from collections.abc import Sequence
from typing import Any, Protocol

from auditwire.errors import (
    ClientVersionError,
    MissingDependencyError,
    SendError,
    TemplateRefusedError,
    UnsupportedError,
)
from auditwire.stores.base import AsyncSender, ItemResult
from auditwire.stores.connection import CLOUD_URL, Connection

__all__ = [
    "BULK_FILTER",
    "REQUEST_REFUSED",
    "ClusterApi",
    "ElasticsearchApi",
    "OpenSearchApi",
    "async_elasticsearch_sender",
    "bulk_results",
    "client_version_error",
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
    def template_schema(self, name: str) -> int | None: ...
    def put_mappings(self, pattern: str, mappings: dict[str, Any]) -> None: ...
    def index_names(self, pattern: str) -> list[str]: ...
    def delete_indices(self, names: Sequence[str]) -> None: ...
    def delete_by_query(self, index: str, query: dict[str, Any]) -> int: ...
    def refresh(self, pattern: str) -> None: ...
    def has_data_streams(self, probe: str) -> bool: ...
    def version(self) -> str: ...
    def node_urls(self) -> list[str]: ...
    def close(self) -> None: ...
    def forget_connections(self) -> None: ...


def forget_pooled(pool: Any) -> None:
    """Drop the open connections of a urllib3 pool a forked child inherited, leaving the pool
    to open its own. Parent and child would otherwise share each socket: their requests
    interleave on it and each may read the other's answer — a bulk answer taken for another
    batch's marks records delivered that were not. Closing the child's copy of a socket does
    not touch the parent's connection (TLS is not shut down by a close)."""
    queue = getattr(pool, "pool", None)
    if queue is None:  # closed, or not a urllib3 pool
        return
    kept = 0
    while True:
        try:
            connection = queue.get(block=False)
        except Exception:  # empty
            break
        kept += 1
        if connection is not None:
            connection.close()
    for _ in range(kept):
        queue.put(None)  # an empty slot: the pool connects afresh when it is taken


def client_version_error(exc: Exception) -> ClientVersionError | None:
    """The error to raise when ``exc`` is the cluster refusing the client's API version, else
    ``None``. Elasticsearch's clients speak their own major version only (an 8.x cluster
    answers a 9.x client's every call with a 400 ``media_type_header_exception``); the message
    names the client to install."""
    body = getattr(exc, "body", None)
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or error.get("type") != "media_type_header_exception":
        return None
    cause = error.get("caused_by")
    reason = str((cause if isinstance(cause, dict) else error).get("reason"))
    wanted = re.search(r"either version (\d+)", reason)
    remedy = (
        f"install the client of the cluster's major version: "
        f"pip install 'elasticsearch>={wanted[1]},<{int(wanted[1]) + 1}'"
        if wanted
        else "install the client of the cluster's major version"
    )
    return ClientVersionError(
        f"Elasticsearch refuses the API version of the installed client, elasticsearch "
        f"{importlib.metadata.version('elasticsearch')} ({reason}); {remedy}"
    )


def _raise_version_refusal(exc: Exception) -> None:
    refused = client_version_error(exc)
    if refused is not None:
        raise refused from exc


def elasticsearch_send_error(exc: Exception) -> SendError:
    """What an ``elasticsearch`` (sync or async) client raised, as the pipeline sees it."""
    from elasticsearch import ApiError

    refused_version = client_version_error(exc)
    if refused_version is not None:
        return refused_version
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


def _schema_of(answer: dict[str, Any]) -> int:
    """The schema version an installed index template was made for (0: before there was
    one)."""
    (found,) = answer["index_templates"]
    version = found["index_template"].get("_meta", {}).get("schema_version")
    return version if isinstance(version, int) else 0


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
        from elasticsearch import BadRequestError

        try:
            answer = self.client.search(index=index, **body, **_SCOPE, **params)
        except BadRequestError as exc:
            _raise_version_refusal(exc)
            raise
        found: dict[str, Any] = answer.body
        return found

    def count(self, index: str, query: dict[str, Any] | None) -> int:
        from elasticsearch import BadRequestError

        extra = {} if query is None else {"query": query}
        try:
            return int(self.client.count(index=index, **extra, **_SCOPE)["count"])
        except BadRequestError as exc:
            _raise_version_refusal(exc)
            raise

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
            raise client_version_error(exc) or TemplateRefusedError(str(exc.body)) from exc

    def template_schema(self, name: str) -> int | None:
        from elasticsearch import ApiError, NotFoundError, TransportError

        try:
            answer = self.client.indices.get_index_template(name=name)
        except NotFoundError:
            return None
        except ApiError as exc:
            raise client_version_error(exc) or SendError(
                f"Elasticsearch answered {exc.meta.status} when asked for the index template: "
                f"{exc.message}",
                status=exc.meta.status,
            ) from exc
        except TransportError as exc:
            raise SendError(f"Elasticsearch is unreachable: {exc.message}") from exc
        return _schema_of(answer.body)

    def put_mappings(self, pattern: str, mappings: dict[str, Any]) -> None:
        self.client.indices.put_mapping(index=pattern, **mappings, **_SCOPE)

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

    def forget_connections(self) -> None:
        for node in self.client.transport.node_pool.all():
            forget_pooled(getattr(node, "pool", None))


def _given_client(client: Any, connection: Connection | None) -> bool:
    if isinstance(client, str):
        return False
    if connection is not None:
        raise ValueError("connection options apply to a URL: configure the client you pass")
    return True


def elasticsearch_client(client: Any, connection: Connection | None = None) -> Any:
    """``client`` itself, or a client for the URL ``client`` (``elastic-cloud:`` for the
    connection's Cloud ID) with ``connection``'s credentials."""
    try:
        import orjson  # noqa: F401  # the encoder of the delivery pipeline
        from elasticsearch import Elasticsearch
    except ImportError:
        raise MissingDependencyError("ElasticsearchStore", "elasticsearch") from None
    if _given_client(client, connection):
        return client
    from elasticsearch.serializer import OrjsonSerializer

    # orjson reads answers four times faster than the standard library: verification and
    # exports read every record a cluster holds.
    options = {
        "serializer": OrjsonSerializer(),
        **(connection or Connection()).elasticsearch_options(),
    }
    if client == CLOUD_URL:
        if "cloud_id" not in options:
            raise ValueError(
                f"the store URL {CLOUD_URL!r} needs a Cloud ID (AUDITWIRE_ES_CLOUD_ID)"
            )
        return Elasticsearch(**options)
    return Elasticsearch(client, **options)


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

    def template_schema(self, name: str) -> int | None:
        from opensearchpy import NotFoundError, TransportError

        try:
            return _schema_of(self.client.indices.get_index_template(name=name))
        except NotFoundError:
            return None
        except TransportError as exc:
            status = exc.status_code if isinstance(exc.status_code, int) else None
            if status is None:
                raise SendError(f"OpenSearch is unreachable: {exc}") from exc
            raise SendError(
                f"OpenSearch answered {status} when asked for the index template: {exc.error}",
                status=status,
            ) from exc

    def put_mappings(self, pattern: str, mappings: dict[str, Any]) -> None:
        self.client.indices.put_mapping(index=pattern, body=mappings, params=_query_params(_SCOPE))

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

    def forget_connections(self) -> None:
        for connection in self.client.transport.connection_pool.connections:
            forget_pooled(getattr(connection, "pool", None))


def opensearch_client(client: Any, connection: Connection | None = None) -> Any:
    try:
        import orjson  # noqa: F401  # the encoder of the delivery pipeline
        from opensearchpy import OpenSearch
    except ImportError:
        raise MissingDependencyError("OpenSearchStore", "opensearch") from None
    if _given_client(client, connection):
        return client
    options = (connection or Connection()).opensearch_options()
    # The pipeline retries what failed, with backoff: no retries inside the client.
    return OpenSearch(client, max_retries=0, **options)


def _query_params(params: dict[str, Any]) -> dict[str, Any]:
    """``opensearch-py`` sends ``params`` as given: booleans must be spelt as the server
    reads them."""
    return {k: ("true" if v else "false") if isinstance(v, bool) else v for k, v in params.items()}
