"""The ``auditwire`` command: the event catalog, the index template, querying, exporting,
retention, verification and integrity keys, the dashboards' saved objects and the viewer
(``serve``).

Uses only the standard library's argparse, so the command works in every installation; the
subcommands that talk to Elasticsearch need the ``elasticsearch`` extra and say so if missing.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import ipaddress
import json
import os
import sys
from collections.abc import Sequence
from datetime import timedelta
from typing import TextIO

from auditwire._time import parse_timestamp
from auditwire._version import VERSION
from auditwire.catalog import EventCatalog
from auditwire.dashboards import TARGETS, saved_objects, to_ndjson
from auditwire.errors import AuditwireError, InvalidQueryError, MissingDependencyError, StoreError
from auditwire.integrity.keys import IntegrityKey, Keyring
from auditwire.integrity.verify import verify
from auditwire.listing.export import CSV_COLUMNS, FORMATS, csv_row, export
from auditwire.listing.params import list_records, parse_list_request
from auditwire.record import AuditRecord
from auditwire.retention import parse_age
from auditwire.stores import open_store
from auditwire.stores.base import Chained, Retaining, Store
from auditwire.stores.connection import CLOUD_URL, Connection
from auditwire.stores.index_template import DEFAULT_PREFIX, index_template

__all__ = [
    "ES_URL_ENV",
    "main",
    "parser",
]

ES_URL_ENV = "AUDITWIRE_ES_URL"


def _events(args: argparse.Namespace, out: TextIO) -> int:
    catalog = EventCatalog.default()
    events = [e for e in catalog if args.category is None or e.category == args.category]
    if args.category is not None and not events:
        print(
            f"no events in category {args.category!r}; categories: "
            + ", ".join(catalog.categories),
            file=sys.stderr,
        )
        return 2
    if args.json:
        json.dump([e.to_json() for e in events], out, indent=2)
        out.write("\n")
        return 0
    width = max(len(e.action) for e in events)
    cat_width = max(len(e.category) for e in events)
    for e in events:
        out.write(f"{e.action:<{width}}  {e.category:<{cat_width}}  {e.template}\n")
    return 0


def _template(args: argparse.Namespace, out: TextIO) -> int:
    json.dump(index_template(args.prefix), out, indent=2, sort_keys=True)
    out.write("\n")
    return 0


def _setup(args: argparse.Namespace, out: TextIO) -> int:
    from auditwire.stores.elasticsearch import ElasticsearchStore

    connection = _connection(args)
    url = args.es_url or os.environ.get(ES_URL_ENV) or (CLOUD_URL if connection.cloud_id else None)
    if not url:
        print(f"give --es-url or --es-cloud-id, or set {ES_URL_ENV}", file=sys.stderr)
        return 2
    from elasticsearch import ApiError, TransportError

    store = ElasticsearchStore(url, prefix=args.prefix, connection=connection)
    try:
        result = store.setup()
    except (ApiError, TransportError) as exc:
        print(f"auditwire: could not install the template at {url}: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    out.write(f"installed index template {result.template!r}; read pattern {result.read_pattern}\n")
    for original, fallback in result.substituted_types.items():
        out.write(f"note: this cluster has no {original!r} field type; mapped as {fallback!r}\n")
    if result.data_streams:
        out.write(
            "note: this cluster offers data streams; records still go to monthly indices named "
            "by their own time, which keep retried writes from storing a second copy "
            "(partitioning='data_stream' in Python chooses the data stream)\n"
        )
    return 0


def _filters(pairs: Sequence[str]) -> list[tuple[str, str]]:
    out = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidQueryError(pair, "filters are given as NAME=VALUE (e.g. action=login)")
        out.append((key, value))
    return out


def _connection(args: argparse.Namespace) -> Connection:
    """The cluster's credentials from the command's options, else from the variables."""
    return Connection.from_env(
        api_key=args.es_api_key,
        username=args.es_username,
        password=args.es_password,
        ca_certs=args.es_ca_certs,
        cloud_id=args.es_cloud_id,
    )


def _readable_store(args: argparse.Namespace) -> Store:
    """The store a read-only command reads: an SQLite database is never created by one."""
    store = open_store(args.store, readonly=True, connection=_connection(args))
    if not isinstance(store, Store):
        raise StoreError(f"{store!r} is write-only; give a readable --store")
    return store


def _query(args: argparse.Namespace, out: TextIO) -> int:
    params = _filters(args.filters)
    if args.per_page is not None:
        params.append(("per_page", str(args.per_page)))
    if args.page is not None:
        params.append(("page", str(args.page)))
    store = _readable_store(args)
    try:
        result = list_records(store, params, tenant=args.tenant)
    finally:
        store.close()
    if args.format == "json":
        json.dump(result, out, indent=2, ensure_ascii=False)
        out.write("\n")
        return 0
    if args.format == "csv":
        out.write(",".join(CSV_COLUMNS) + "\r\n")
        writer = csv.writer(out)
        for item in result["data"]:
            writer.writerow(csv_row(AuditRecord.from_api(item)))
        return 0
    for item in result["data"]:
        who = item["actor"].get("email") or item["actor"].get("name") or item["actor"].get("id")
        out.write(
            f"{item['timestamp']}  {item['action']:<28} {item['outcome']:<8} "
            f"{who or '-':<24} {item['ipAddress'] or '-':<15} {item['message'] or ''}\n"
        )
    meta = result["meta"]
    out.write(f"-- page {meta['page']} of {meta['totalPages']}, {meta['total']} record(s)\n")
    return 0


def _export(args: argparse.Namespace, out: TextIO) -> int:
    query = parse_list_request(_filters(args.filters), tenant=args.tenant).query
    store = _readable_store(args)
    try:
        with contextlib.ExitStack() as stack:
            target = (
                out
                if args.output == "-"
                else stack.enter_context(open(args.output, "w", encoding="utf-8"))
            )
            for chunk in export(store, query, args.format):
                target.write(chunk)
    finally:
        store.close()
    return 0


def _dashboards_export(args: argparse.Namespace, out: TextIO) -> int:
    text = to_ndjson(saved_objects(args.target, args.prefix))
    if args.output == "-":
        out.write(text)
    else:
        with open(args.output, "w", encoding="utf-8") as file:
            file.write(text)
    return 0


def _serve(args: argparse.Namespace, out: TextIO) -> int:
    """The viewer for one operator: no authentication, so a loopback address by default."""
    try:
        import uvicorn

        from auditwire.web import viewer_app
    except ImportError:
        raise MissingDependencyError("auditwire serve", "serve") from None
    from auditwire.audit_log import AuditLog

    log = AuditLog(open_store(args.store, connection=_connection(args)), tenant=args.tenant)
    if not ipaddress.ip_address(_host_address(args.host)).is_loopback:
        print(
            f"auditwire: warning: {args.host} is reachable from other machines, and the viewer "
            "has no authentication of its own",
            file=sys.stderr,
        )
    out.write(f"Viewer: http://{args.host}:{args.port}/viewer\n")
    out.flush()
    try:
        uvicorn.run(viewer_app(log), host=args.host, port=args.port, log_level="warning")
    finally:
        log.close()
    return 0


def _host_address(host: str) -> str:
    return "127.0.0.1" if host == "localhost" else host.strip("[]")


def _retention(args: argparse.Namespace, out: TextIO) -> int:
    tenants = {}
    for pair in args.tenant:
        name, sep, age = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"--tenant {pair!r}: give it as TENANT=AGE (acme=30d)")
        tenants[name] = parse_age(age)
    from auditwire.audit_log import AuditLog

    store = open_store(args.store, connection=_connection(args))
    if not isinstance(store, Retaining):
        store.close()
        raise StoreError(f"{store!r} has no retention operation")
    # Through a log, whose prune checkpoint declares the holes before they are made.
    log = AuditLog(store)
    try:
        result = log.apply_retention(parse_age(args.max_age), tenants=tenants)
    finally:
        log.close()
    out.write(f"removed {result.removed_records} record(s)")
    if result.removed_partitions:
        out.write(f" and partition(s) {', '.join(result.removed_partitions)}")
    out.write("\n")
    return 0


def _keyring(args: argparse.Namespace) -> Keyring | None:
    return Keyring.load(args.keyring) if args.keyring else Keyring.from_env()


def _verify(args: argparse.Namespace, out: TextIO) -> int:
    store = _readable_store(args)
    try:
        if not isinstance(store, Chained):
            raise StoreError(f"{store!r} cannot be verified (it does not keep chains)")
        report = verify(
            store,
            keyring=_keyring(args),
            origin=args.origin,
            since=None if args.since is None else parse_timestamp(args.since, "--since"),
            until=None if args.until is None else parse_timestamp(args.until, "--until"),
            tenant=args.tenant,
            copy=args.copy,
            grace=None if args.grace is None else timedelta(seconds=args.grace),
            workers=args.workers,
        )
    finally:
        store.close()
    if args.format == "json":
        json.dump(report.to_json(), out, indent=2)
    else:
        out.write(report.text())
    out.write("\n")
    return 0 if report.ok else 1


def _keys_new(args: argparse.Namespace, out: TextIO) -> int:
    """A new key as a keyring file's entry; for Ed25519 the public half also on its own."""
    valid_from, valid_until = (
        None if text is None else parse_timestamp(text, option)
        for text, option in (
            (args.valid_from, "--valid-from"),
            (args.valid_until, "--valid-until"),
        )
    )
    if args.algorithm == "ed25519":
        try:
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
            from cryptography.hazmat.primitives.serialization import (
                Encoding,
                NoEncryption,
                PrivateFormat,
            )
        except ImportError:
            raise MissingDependencyError("Ed25519 keys", "signing") from None
        private = Ed25519PrivateKey.generate().private_bytes(
            Encoding.Raw, PrivateFormat.Raw, NoEncryption()
        )
        key = IntegrityKey(
            args.id, "ed25519", private=private, valid_from=valid_from, valid_until=valid_until
        )
    else:
        key = IntegrityKey(
            args.id,
            "hmac-sha256",
            secret=os.urandom(32),
            valid_from=valid_from,
            valid_until=valid_until,
        )
    json.dump({"keys": [key.to_json()]}, out, indent=2)
    out.write("\n")
    return 0


def _keys_public(args: argparse.Namespace, out: TextIO) -> int:
    json.dump(Keyring.load(args.keyring).to_json(public_only=True), out, indent=2)
    out.write("\n")
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="auditwire", description=__doc__.splitlines()[0])
    root.add_argument("--version", action="version", version=f"auditwire {VERSION}")
    commands = root.add_subparsers(dest="command", required=True)
    cluster = argparse.ArgumentParser(add_help=False)
    reach = cluster.add_argument_group(
        "cluster access",
        "each defaults to its AUDITWIRE_ES_* variable, the safer place for secrets (a command "
        "line is visible to other users of the machine)",
    )
    reach.add_argument("--es-api-key", help="API key (default $AUDITWIRE_ES_API_KEY)")
    reach.add_argument("--es-username", help="basic auth user (default $AUDITWIRE_ES_USERNAME)")
    reach.add_argument("--es-password", help="its password (default $AUDITWIRE_ES_PASSWORD)")
    reach.add_argument("--es-ca-certs", help="PEM CA bundle (default $AUDITWIRE_ES_CA_CERTS)")
    reach.add_argument(
        "--es-cloud-id",
        help="Elastic Cloud ID, with the store URL elastic-cloud: (default $AUDITWIRE_ES_CLOUD_ID)",
    )

    events = commands.add_parser("events", help="list the event catalog")
    events.add_argument("--json", action="store_true", help="machine-readable output")
    events.add_argument("--category", help="only the events of one category (log type)")
    events.set_defaults(run=_events)

    template = commands.add_parser("template", help="print the Elasticsearch index template")
    template.add_argument("--prefix", default=DEFAULT_PREFIX, help="index name prefix")
    template.set_defaults(run=_template)

    setup = commands.add_parser(
        "setup", help="install the index template into Elasticsearch", parents=[cluster]
    )
    setup.add_argument("--es-url", help=f"Elasticsearch URL (default ${ES_URL_ENV})")
    setup.add_argument("--prefix", default=DEFAULT_PREFIX, help="index name prefix")
    setup.set_defaults(run=_setup)

    filters_help = (
        "filters as NAME=VALUE in either vocabulary (action=login_failed, from=2024-01-01)"
    )
    query = commands.add_parser(
        "query", help="list audit records matching filters", parents=[cluster]
    )
    query.add_argument("filters", nargs="*", help=filters_help)
    query.add_argument("--store", help="store URL (default $AUDITWIRE_STORE or auditwire.db)")
    query.add_argument("--tenant", help="only this tenant's records")
    query.add_argument("--format", choices=("table", "json", "csv"), default="table")
    query.add_argument("--per-page", type=int)
    query.add_argument("--page", type=int)
    query.set_defaults(run=_query)

    export_cmd = commands.add_parser(
        "export", help="export every record matching filters", parents=[cluster]
    )
    export_cmd.add_argument("filters", nargs="*", help=filters_help)
    export_cmd.add_argument("--store", help="store URL (default $AUDITWIRE_STORE or auditwire.db)")
    export_cmd.add_argument("--tenant", help="only this tenant's records")
    export_cmd.add_argument("--format", choices=tuple(FORMATS), default="ndjson")
    export_cmd.add_argument("-o", "--output", default="-", help="file (default stdout)")
    export_cmd.set_defaults(run=_export)

    retention = commands.add_parser(
        "retention", help="remove records older than kept", parents=[cluster]
    )
    retention.add_argument("--store", help="store URL (default $AUDITWIRE_STORE or auditwire.db)")
    retention.add_argument("--max-age", required=True, help="keep this long: 365d, 12w, 36h")
    retention.add_argument(
        "--tenant", action="append", default=[], help="TENANT=AGE, a tenant's own age (repeat)"
    )
    retention.set_defaults(run=_retention)

    dashboards = commands.add_parser("dashboards", help="Kibana and OpenSearch Dashboards content")
    dashboard_commands = dashboards.add_subparsers(dest="dashboards_command", required=True)
    dashboards_export = dashboard_commands.add_parser(
        "export", help="write the saved objects (NDJSON) for the import API"
    )
    dashboards_export.add_argument("--target", choices=TARGETS, required=True)
    dashboards_export.add_argument(
        "--prefix", default=DEFAULT_PREFIX, help="the store's index prefix (auditwire-events)"
    )
    dashboards_export.add_argument("-o", "--output", default="-", help="file (default stdout)")
    dashboards_export.set_defaults(run=_dashboards_export)

    serve = commands.add_parser(
        "serve", help="serve the viewer and the API on this machine", parents=[cluster]
    )
    serve.add_argument("--store", help="store URL (default $AUDITWIRE_STORE or auditwire.db)")
    serve.add_argument("--tenant", help="only this tenant's records")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (8000)")
    serve.set_defaults(run=_serve)

    verify_cmd = commands.add_parser(
        "verify",
        help="check every record's seal and chain, and the checkpoints (exit 1 on any failure)",
        parents=[cluster],
    )
    verify_cmd.add_argument("--store", help="store URL (default $AUDITWIRE_STORE or auditwire.db)")
    verify_cmd.add_argument("--since", help="only records from this time (ISO 8601)")
    verify_cmd.add_argument("--until", help="only records before this time (ISO 8601)")
    verify_cmd.add_argument("--tenant", help="only the chains that hold this tenant's records")
    verify_cmd.add_argument(
        "--keyring",
        help="keyring file (default $AUDITWIRE_INTEGRITY_KEYRING or $AUDITWIRE_INTEGRITY_KEY)",
    )
    verify_cmd.add_argument(
        "--copy", help="the checkpoints' copy kept elsewhere (the file the writers append to)"
    )
    verify_cmd.add_argument("--origin", help="the log's name (default $AUDITWIRE_ORIGIN)")
    verify_cmd.add_argument(
        "--grace", type=float, help="seconds a checkpoint may be late (default: one interval)"
    )
    verify_cmd.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="processes walking the chains side by side (default: one per core)",
    )
    verify_cmd.add_argument("--format", choices=("text", "json"), default="text")
    verify_cmd.set_defaults(run=_verify)

    keys = commands.add_parser("keys", help="integrity keys for checkpoints")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    keys_new = key_commands.add_parser("new", help="print a new key as a keyring file")
    keys_new.add_argument("--id", required=True, help="the key's name, as checkpoints cite it")
    keys_new.add_argument("--algorithm", choices=("hmac-sha256", "ed25519"), default="hmac-sha256")
    keys_new.add_argument("--valid-from", help="first time it signs (ISO 8601)")
    keys_new.add_argument("--valid-until", help="time it stops signing (ISO 8601)")
    keys_new.set_defaults(run=_keys_new)
    keys_public = key_commands.add_parser(
        "public", help="print a keyring without its secrets (Ed25519 public keys, for auditors)"
    )
    keys_public.add_argument("keyring", help="keyring file")
    keys_public.set_defaults(run=_keys_public)
    return root


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.run(args, out or sys.stdout)
    except (InvalidQueryError, ValueError) as exc:
        print(f"auditwire: {exc}", file=sys.stderr)
        return 2
    except AuditwireError as exc:
        print(f"auditwire: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `auditwire events | head`
        sys.stderr.close()
        return 0
    except Exception as exc:
        # An expected failure — a cluster that cannot be reached or refuses, a file that
        # cannot be written — is one line and a non-zero exit; anything else is a bug.
        if not (isinstance(exc, OSError) or type(exc).__module__.startswith(_CLIENTS)):
            raise
        print(f"auditwire: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return code


#: The modules of the clients whose errors (connection, refusal) are expected failures.
_CLIENTS = ("elasticsearch", "elastic_transport", "opensearchpy")


if __name__ == "__main__":
    sys.exit(main())
