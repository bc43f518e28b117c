"""What the ASGI and WSGI middleware share: :class:`Capture`, from a request's facts to the
hand-off.

The middleware asks :meth:`Capture.wants` whether to audit a request, notes its facts
(:class:`~auditwire.capture.facts.RequestFacts`) while it runs, and calls
:meth:`Capture.finish` when it is over. ``finish`` runs the application's own hooks — they may
rely on request-local state — and hands the facts to ``submit`` as a deferred build: the
record is made later, in a batch (:class:`~auditwire.capture.records.RecordMaker`), after the
response has gone out. Capture never calls up into :class:`~auditwire.AuditLog`: it is given a
:class:`~auditwire.builder.RecordBuilder` and a ``submit`` callable.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from auditwire.builder import RecordBuilder
from auditwire.capture.devices import device_cookie_header
from auditwire.capture.facts import RequestFacts
from auditwire.capture.options import Options
from auditwire.capture.records import RecordMaker
from auditwire.errors import InvalidRecordError
from auditwire.record import Actor, AuditRecord

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from auditwire.capture.options import CaptureOptions

__all__ = ["Capture", "Submit"]

logger = logging.getLogger("auditwire")

#: Hands a record, or a deferred build of records, to the hand-off without waiting.
Submit = Callable[["AuditRecord | Callable[[], Sequence[AuditRecord]]"], None]


class Capture:
    """The middleware's options (:class:`~auditwire.capture.options.CaptureOptions`) and the
    life of a captured request, from :meth:`wants` to :meth:`finish`."""

    __slots__ = ("_records", "maker", "options", "submit", "wants")

    def __init__(
        self, builder: RecordBuilder, submit: Submit, **options: Unpack[CaptureOptions]
    ) -> None:
        self.options = Options(builder.catalog, **options)
        self.maker = RecordMaker(self.options, builder)
        self._records = self.maker.records  # bound once, not per request
        self.submit = submit
        #: Whether a request is audited at all (a cheap check on the request path).
        self.wants = self.options.wants

    def _hook(self, name: str, hook: Callable[[Any], Any], source: Any) -> Any:
        try:
            return hook(source)
        except Exception:
            logger.exception("auditwire: the %s hook raised; ignoring it", name)
            return None

    def finish(self, facts: RequestFacts) -> None:
        """Close the facts of a finished request and hand them off. Never raises: a failure
        here is logged, and the application's response is already on its way. Only the
        application's own hooks run here; the default readers of the scope run when the batch
        is built."""
        try:
            facts.duration_ns = time.perf_counter_ns() - facts.start_ns
            if facts.skipped or (facts.action is None and facts.logged):
                # A request whose handler logged audit events is recorded by them: a generic
                # http.request record beside them would say the same thing twice.
                return
            options = self.options
            if (
                options.only_named
                and facts.action is None
                and (facts.method, facts.route_template() or "") not in options.actions
            ):
                return
            if options.actor_resolver is not None and facts.actor is None:
                facts.actor = self._hooked_actor(options.actor_resolver, facts.source)
            if options.tenant_resolver is not None and facts.tenant is None:
                tenant = self._hook("tenant_resolver", options.tenant_resolver, facts.source)
                facts.tenant = tenant if isinstance(tenant, str) else None
            self.submit(functools.partial(self._records, facts))
        except Exception:
            logger.exception("auditwire: could not hand off the audit record of a request")

    def _hooked_actor(self, resolver: Callable[[Any], Any], source: Any) -> Actor | None:
        found = self._hook("actor_resolver", resolver, source)
        if found is None or isinstance(found, Actor):
            return found
        try:
            return Actor.from_api(found)
        except InvalidRecordError:
            logger.exception("auditwire: actor_resolver returned an invalid actor")
            return None

    def login_cookie(self, facts: RequestFacts, *, secure: bool) -> tuple[bytes, bytes] | None:
        """On a response to a login when new-device detection is on: the ``Set-Cookie``
        header that gives a new device its id, if it needs one (see
        :func:`~auditwire.capture.devices.device_cookie_header`)."""
        options = self.options
        if options.devices is None or facts.action not in options.login_actions:
            return None
        return device_cookie_header(facts, options.device_cookie, secure=secure)
