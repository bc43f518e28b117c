"""A Flask app audited into Elasticsearch, for the tests that run it under gunicorn.

Configured by environment: ``AUDITWIRE_TEST_ES`` (cluster URL), ``AUDITWIRE_TEST_PREFIX``
(index prefix) and ``AUDITWIRE_SPOOL`` (spool root). Built at import, so with ``--preload`` the
audit log, its spool and its delivery worker are made in the master before it forks.
"""

from __future__ import annotations

import os

from flask import Flask

import auditwire
from auditwire import AuditLog
from auditwire.stores.elasticsearch import ElasticsearchStore
from auditwire.wsgi import AuditMiddleware, init_flask

app = Flask(__name__)


@app.post("/users/<int:user_id>/block")
def block(user_id: int) -> str:
    audit = auditwire.current()
    assert audit is not None
    audit.set_action("user_blocked", target={"type": "user", "id": user_id})
    return f"blocked by {os.getpid()}"


init_flask(app)
log = AuditLog(
    ElasticsearchStore(os.environ["AUDITWIRE_TEST_ES"], prefix=os.environ["AUDITWIRE_TEST_PREFIX"])
)
app.wsgi_app = AuditMiddleware(app.wsgi_app, log)  # type: ignore[method-assign]
