"""The ``auditwire`` command: list the event catalog, print and install the index template.

Uses only the standard library's argparse, so the command works in every installation; the
subcommands that talk to Elasticsearch need the ``elasticsearch`` extra and say so if missing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from auditwire.catalog import EventCatalog
from auditwire.errors import AuditwireError
from auditwire.index_template import DEFAULT_PREFIX, index_template

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

    url = args.es_url or os.environ.get(ES_URL_ENV)
    if not url:
        print(f"give --es-url or set {ES_URL_ENV}", file=sys.stderr)
        return 2
    from elasticsearch import ApiError, TransportError

    store = ElasticsearchStore(url, prefix=args.prefix)
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
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="auditwire", description=__doc__.splitlines()[0])
    commands = root.add_subparsers(dest="command", required=True)

    events = commands.add_parser("events", help="list the event catalog")
    events.add_argument("--json", action="store_true", help="machine-readable output")
    events.add_argument("--category", help="only the events of one category (log type)")
    events.set_defaults(run=_events)

    template = commands.add_parser("template", help="print the Elasticsearch index template")
    template.add_argument("--prefix", default=DEFAULT_PREFIX, help="index name prefix")
    template.set_defaults(run=_template)

    setup = commands.add_parser("setup", help="install the index template into Elasticsearch")
    setup.add_argument("--es-url", help=f"Elasticsearch URL (default ${ES_URL_ENV})")
    setup.add_argument("--prefix", default=DEFAULT_PREFIX, help="index name prefix")
    setup.set_defaults(run=_setup)
    return root


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.run(args, out or sys.stdout)
    except AuditwireError as exc:
        print(f"auditwire: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `auditwire events | head`
        sys.stderr.close()
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
