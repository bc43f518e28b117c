"""The request side: what the middleware notes about a request, and how it becomes a record.

- :mod:`~auditwire.capture.context` — the per-request :class:`AuditContext` handlers fill in;
- :mod:`~auditwire.capture.options` — the middleware's typed options, parsed once;
- :mod:`~auditwire.capture.facts` — the facts of one request, read lazily;
- :mod:`~auditwire.capture.client_ip`, :mod:`~auditwire.capture.user_agent`,
  :mod:`~auditwire.capture.trace` — the client address, device and trace of a request;
- :mod:`~auditwire.capture.devices` — new-device logins;
- :mod:`~auditwire.capture.records` — facts → record;
- :mod:`~auditwire.capture.middleware` — what the ASGI and WSGI middleware share.

Capture imports the model and nothing of delivery or storage: it is handed a record builder
and a ``submit`` callable.
"""

from __future__ import annotations

from auditwire.capture.context import AuditContext, current
from auditwire.capture.middleware import Capture
from auditwire.capture.options import CaptureOptions

__all__ = ["AuditContext", "Capture", "CaptureOptions", "current"]
