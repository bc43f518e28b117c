"""auditwire: security and audit logs for Python web applications.

The core names only; doors live in their own modules (``auditwire.asgi``, ``auditwire.wsgi``,
``auditwire.web``, ``auditwire.integrations.*``, ``auditwire.stores.elasticsearch``), so
importing this package needs no optional dependency.
"""

from __future__ import annotations

from auditwire._templates import render_template
from auditwire._version import VERSION
from auditwire.aggregation import TimeBucket, TopValue
from auditwire.audit_log import AuditLog, AuditStats
from auditwire.builder import RecordBuilder, RecordFields
from auditwire.capture.context import AuditContext, current
from auditwire.catalog import EventCatalog, EventDefinition
from auditwire.ecs import from_ecs, to_ecs
from auditwire.errors import (
    AuditwireError,
    BulkWriteError,
    InvalidQueryError,
    InvalidRecordError,
    MissingDependencyError,
    RecordNotFoundError,
    StoreError,
    UnknownActionError,
)
from auditwire.query import AuditQuery, Cursor, Page
from auditwire.record import (
    Actor,
    AuditRecord,
    DeviceInfo,
    Outcome,
    RequestInfo,
    Target,
    TraceInfo,
)
from auditwire.redaction import Redactor, mask_secret
from auditwire.schema import record_schema
from auditwire.stores import SQLiteStore, open_store

__version__ = VERSION

__all__ = [
    "Actor",
    "AuditContext",
    "AuditLog",
    "AuditQuery",
    "AuditRecord",
    "AuditStats",
    "AuditwireError",
    "BulkWriteError",
    "Cursor",
    "DeviceInfo",
    "EventCatalog",
    "EventDefinition",
    "InvalidQueryError",
    "InvalidRecordError",
    "MissingDependencyError",
    "Outcome",
    "Page",
    "RecordBuilder",
    "RecordFields",
    "RecordNotFoundError",
    "Redactor",
    "RequestInfo",
    "SQLiteStore",
    "StoreError",
    "Target",
    "TimeBucket",
    "TopValue",
    "TraceInfo",
    "UnknownActionError",
    "__version__",
    "current",
    "from_ecs",
    "mask_secret",
    "open_store",
    "record_schema",
    "render_template",
    "to_ecs",
]
