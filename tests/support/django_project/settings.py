"""A small Django project with ``django.contrib.auth``, audited by auditwire's one line."""

from __future__ import annotations

import tempfile
from pathlib import Path

from auditwire import AuditLog

HERE = Path(tempfile.mkdtemp(prefix="auditwire-django-"))
SECRET_KEY = "test only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.support.django_project.urls"
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "auditwire.integrations.django.AuditMiddleware",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(HERE / "db.sqlite3")}}
LOGIN_URL = "/login/"
USE_TZ = True
#: The audit log, built here so the tests can wait for it (``{"store": URL}`` works as well).
AUDIT_LOG = AuditLog(f"sqlite:///{HERE / 'audit.db'}")
AUDITWIRE = {"audit_log": AUDIT_LOG}
