"""How a cluster is reached besides its URL: credentials, the CA bundle, Elastic Cloud.

A store URL names the cluster; what a secured one needs besides — an API key, or a user and
password; the CA bundle its certificate is signed by; or an Elastic Cloud ID in place of a URL
— comes from :class:`Connection` options or, so that neither secrets nor paths need be in code
or on a command line, from environment variables (an option wins over its variable):

- ``AUDITWIRE_ES_API_KEY`` — an API key (the encoded form Elasticsearch returns)
- ``AUDITWIRE_ES_USERNAME`` and ``AUDITWIRE_ES_PASSWORD`` — basic authentication
- ``AUDITWIRE_ES_CA_CERTS`` — the path of a PEM CA bundle
- ``AUDITWIRE_ES_CLOUD_ID`` — an Elastic Cloud deployment (store URL ``elastic-cloud:``)

OpenSearch takes the user, password and CA bundle; its client has no API keys or Cloud IDs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

__all__ = ["CLOUD_URL", "ENV_PREFIX", "Connection"]

#: The prefix of the variables (``AUDITWIRE_ES_API_KEY``...).
ENV_PREFIX = "AUDITWIRE_ES_"
#: The store URL of the Elastic Cloud deployment a connection's Cloud ID names.
CLOUD_URL = "elastic-cloud:"


@dataclass(frozen=True)
class Connection:
    """Credentials and TLS for a cluster; each ``None`` unless given. Checked when made: an
    inconsistent set is a ``ValueError`` naming what is wrong. Its ``repr`` hides secrets."""

    api_key: str | None = None
    username: str | None = None
    password: str | None = None
    ca_certs: str | None = None
    cloud_id: str | None = None

    def __post_init__(self) -> None:
        if (self.username is None) != (self.password is None):
            raise ValueError("basic authentication needs both a username and a password")
        if self.api_key is not None and self.username is not None:
            raise ValueError("give an API key or a username and password, not both")
        if self.ca_certs is not None and not Path(self.ca_certs).is_file():
            raise ValueError(f"the CA bundle {self.ca_certs!r} is not a file")

    def __repr__(self) -> str:
        given = [f.name for f in fields(self) if getattr(self, f.name) is not None]
        return f"Connection({', '.join(given) or 'nothing'} given)"

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **options: str | None
    ) -> Connection:
        """A connection from ``options``, each missing one read from its variable."""
        env = os.environ if environ is None else environ
        return cls(
            **{
                f.name: options.get(f.name) or env.get(ENV_PREFIX + f.name.upper()) or None
                for f in fields(cls)
            }
        )

    def elasticsearch_options(self) -> dict[str, Any]:
        """Keyword arguments of ``Elasticsearch(...)``."""
        options: dict[str, Any] = {}
        if self.api_key is not None:
            options["api_key"] = self.api_key
        if self.username is not None:
            options["basic_auth"] = (self.username, self.password)
        if self.ca_certs is not None:
            options["ca_certs"] = self.ca_certs
        if self.cloud_id is not None:
            options["cloud_id"] = self.cloud_id
        return options

    def opensearch_options(self) -> dict[str, Any]:
        """Keyword arguments of ``OpenSearch(...)``."""
        if self.api_key is not None or self.cloud_id is not None:
            raise ValueError("OpenSearch takes a username and password, not an API key or Cloud ID")
        options: dict[str, Any] = {}
        if self.username is not None:
            options["http_auth"] = (self.username, self.password)
        if self.ca_certs is not None:
            options["ca_certs"] = self.ca_certs
            options["verify_certs"] = True
        return options
