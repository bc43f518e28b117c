"""A FastAPI app whose own authentication dependency names the audit actor with auditwire's one
line: ``create_app()`` for in-process tests, and for uvicorn (``--factory``), which reads where
records go from ``AUDITWIRE_STORE``."""

from __future__ import annotations

import os
from dataclasses import dataclass

from fastapi import Depends, FastAPI, Header, HTTPException

from auditwire import AuditLog
from auditwire.asgi import AuditMiddleware
from auditwire.integrations.fastapi import audited


@dataclass
class User:
    id: str
    email: str


def get_current_user(x_api_key: str = Header(default="")) -> User:
    if not x_api_key.startswith("key-"):
        raise HTTPException(status_code=401, detail="who are you?")
    name = x_api_key.removeprefix("key-")
    return User(id=name, email=f"{name}@acme.test")


def create_app(audit_log: AuditLog | None = None) -> FastAPI:
    app = FastAPI()

    @app.post("/api-keys/{key}/rotate")
    def rotate(key: str, user: User = Depends(audited(get_current_user))) -> dict[str, str]:  # noqa: B008
        return {"rotated": key, "by": user.id}

    @app.get("/hello")
    def hello() -> str:
        return "hello"

    log = audit_log or AuditLog(os.environ.get("AUDITWIRE_STORE"))
    app.add_middleware(
        AuditMiddleware, audit_log=log, actions={"POST /api-keys/{key}/rotate": "api_key.rotated"}
    )
    return app
