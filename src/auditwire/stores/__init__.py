"""Stores (readable) and sinks (write-only), and :func:`open_store` to pick one by URL.

Modules with an optional dependency import it only when an instance is made, so
``import auditwire`` needs nothing beyond the standard library.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from auditwire.stores.base import Sink, Store
from auditwire.stores.connection import CLOUD_URL, Connection
from auditwire.stores.sqlite import SQLiteStore

if TYPE_CHECKING:
    from auditwire.catalog import EventCatalog

DEFAULT_URL = "sqlite:///auditwire.db"
#: Environment variable naming the default store when none is passed.
STORE_ENV = "AUDITWIRE_STORE"


def open_store(
    url: str | None = None,
    *,
    catalog: EventCatalog | None = None,
    readonly: bool = False,
    connection: Connection | None = None,
) -> Sink:
    """A store or sink for ``url`` (default: ``$AUDITWIRE_STORE``, else the embedded
    ``sqlite:///auditwire.db``). ``readonly``: an SQLite database is opened for reading only,
    and must exist (nothing is created).

    - ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``, ``sqlite:///:memory:``
    - ``http://host:9200`` or ``https://...`` — Elasticsearch; ``elastic-cloud:`` — the Elastic
      Cloud deployment of the connection's Cloud ID
    - a cluster's credentials and CA bundle: ``connection``, else the ``AUDITWIRE_ES_*``
      variables (:mod:`auditwire.stores.connection`)
    - ``opensearch+http://host:9200`` or ``opensearch+https://...`` — OpenSearch
    - ``jsonl:///path/to/file.jsonl`` or ``jsonl:-`` (stdout) — JSON lines, write-only
    """
    url = url or os.environ.get(STORE_ENV) or DEFAULT_URL
    if url.startswith("sqlite:///"):
        return SQLiteStore(url[len("sqlite:///") :] or ":memory:", readonly=readonly)
    if url.startswith(("http://", "https://")) or url == CLOUD_URL:
        from auditwire.stores.elasticsearch import ElasticsearchStore

        reach = connection or Connection.from_env()
        return ElasticsearchStore(url, catalog=catalog, connection=reach)
    if url.startswith(("opensearch+http://", "opensearch+https://")):
        from auditwire.stores.elasticsearch import OpenSearchStore

        reach = connection or Connection.from_env()
        return OpenSearchStore(url[len("opensearch+") :], catalog=catalog, connection=reach)
    if url == "jsonl:-" or url.startswith("jsonl:///"):
        from auditwire.stores.jsonl import JsonLinesSink

        return JsonLinesSink("-" if url == "jsonl:-" else Path(url[len("jsonl:///") :]))
    raise ValueError(
        f"unsupported store URL {url!r}: use sqlite:///path, http(s)://host:port, elastic-cloud:, "
        "opensearch+http(s)://host:port or jsonl:///path"
    )


__all__ = ["DEFAULT_URL", "STORE_ENV", "SQLiteStore", "Sink", "Store", "open_store"]
