"""The read side: the audit-log API's rules and answers whatever the web framework, listing
requests in either product's vocabulary, the counts behind charts, the viewer's pages, exports
and the API's OpenAPI description.

Listing imports the model and the store contract (:mod:`auditwire.stores.base`) only.
"""

from __future__ import annotations

from auditwire.listing.export import export
from auditwire.listing.params import ListRequest, list_records, parse_list_request

__all__ = ["ListRequest", "export", "list_records", "parse_list_request"]
