"""The identity provider's signing keys (a JWKS such as Keycloak's `…/protocol/openid-connect/certs`), cached
per container.

A token is checked against a key chosen by its `kid`. The keys are fetched once and trusted for a while; a
token whose `kid` is not among them (Keycloak rotated its keys) triggers one re-fetch, but never more than
one per `min_interval`, whatever the tokens say: a burst of forged `kid`s cannot make us hammer the identity
provider. A fetch that fails or times out keeps the keys we had, so tokens signed by a known key still pass
while the provider is down; everything else is a 401, within `timeout` seconds.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from .observability import logger, metrics

MAX_JWKS_BYTES = 1024 * 1024


class JwksKeys:
    def __init__(
        self,
        url: str,
        *,
        ttl: float,
        min_interval: float,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.ttl = ttl
        self.min_interval = min_interval
        self.timeout = timeout
        self._clock = clock
        self._keys: dict[str, Any] = {}
        self._fetched_at: float | None = None  # last successful fetch
        self._attempted_at: float | None = None  # last fetch, successful or not
        self._lock = threading.Lock()

    def key(self, kid: str) -> Any | None:
        """The public key for `kid`, or None when the provider does not (or cannot now) vouch for it."""
        with self._lock:
            now = self._clock()
            stale = self._fetched_at is None or now - self._fetched_at >= self.ttl
            if (stale or kid not in self._keys) and self._may_fetch(now):
                self._fetch(now)
            return self._keys.get(kid)

    def _may_fetch(self, now: float) -> bool:
        return self._attempted_at is None or now - self._attempted_at >= self.min_interval

    def _fetch(self, now: float) -> None:
        self._attempted_at = now
        try:
            request = urllib.request.Request(self.url, headers={"Accept": "application/json"})  # noqa: S310
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - configured URL
                document = json.loads(response.read(MAX_JWKS_BYTES))
            keys = parse_jwks(document)
        except Exception as exc:  # down, slow, or not a JWKS: keep the keys we had
            logger.warning("JWKS fetch failed", extra={"error": type(exc).__name__})
            metrics.add_metric(name="JwksFetchFailed", unit="Count", value=1)
            return
        self._keys = keys
        self._fetched_at = now


def parse_jwks(document: Any) -> dict[str, Any]:
    """`kid` -> RSA public key for every signing key of a JWKS document (encryption keys are skipped)."""
    from jwt import PyJWK

    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document")
    keys: dict[str, Any] = {}
    for jwk in document["keys"]:
        if not isinstance(jwk, dict) or jwk.get("kty") != "RSA" or jwk.get("use", "sig") != "sig" or "kid" not in jwk:
            continue
        try:
            keys[str(jwk["kid"])] = PyJWK(jwk, algorithm="RS256").key
        except Exception:  # noqa: S112 - one malformed key does not spoil the others
            continue
    return keys
