"""A local stand-in for Glow's Keycloak: RSA signing keys made here, served as a JWKS from a loopback HTTP server
(counting its fetches, and able to go down or turn slow), and RS256 id tokens signed by them."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ISSUER = "http://127.0.0.1/realms/glow"
AUDIENCE = "glow-web"  # the web client's Keycloak client: its id tokens' `aud`


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class IdentityProvider:
    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {f"kid-{uuid.uuid4().hex[:8]}": new_rsa_key()}
        self.fetches = 0
        self.mode = "up"  # up | down (500) | slow (answers after `slow_seconds`, or at `release`)
        self.slow_seconds = 120.0
        self.release = threading.Event()
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                provider.fetches += 1
                if provider.mode == "slow":
                    provider.release.wait(provider.slow_seconds)
                if provider.mode == "down":
                    self.send_response(503)
                    self.end_headers()
                    return
                body = json.dumps(provider.jwks()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/realms/glow/protocol/openid-connect/certs"

    @property
    def kid(self) -> str:
        return next(iter(self.keys))

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, key in self.keys.items():
            jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        # Keycloak also publishes an encryption key: it must never be taken for a signing key
        enc = RSAAlgorithm.to_jwk(new_rsa_key().public_key(), as_dict=True)
        keys.append({**enc, "kid": "enc-key", "use": "enc", "alg": "RSA-OAEP"})
        return {"keys": keys}

    def token(
        self,
        *,
        kid: str | None = None,
        key: rsa.RSAPrivateKey | None = None,
        exp_in: int = 300,
        **claims: Any,
    ) -> str:
        """An id token as Glow's Keycloak issues it: RS256, `kid` in the header, our issuer and the web client's
        audience, `email_verified: true` beside an `email` (Keycloak's verified addresses), the given claims (a claim
        given as None is left out)."""
        kid = kid or self.kid
        now = int(time.time())
        payload = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + exp_in, "sub": str(uuid.uuid4())}
        if "email" in claims:
            payload["email_verified"] = True
        payload = {k: v for k, v in {**payload, **claims}.items() if v is not None}
        return jwt.encode(payload, key or self.keys.get(kid) or new_rsa_key(), algorithm="RS256", headers={"kid": kid})

    def bearer(self, **kwargs: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(**kwargs)}"}

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def identity_provider(monkeypatch: Any, **settings: str) -> Iterator[IdentityProvider]:
    """The service configured for this provider (RS256 against its JWKS, its issuer, the web client's audience),
    with a fresh key cache."""
    from glow_activity import auth
    from glow_activity.settings import get_settings

    provider = IdentityProvider()
    monkeypatch.setenv("JWT_JWKS_URL", provider.url)
    monkeypatch.setenv("JWT_ISSUER", ISSUER)
    monkeypatch.setenv("JWT_AUDIENCE", AUDIENCE)
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    auth.jwks_keys.cache_clear()
    try:
        yield provider
    finally:
        provider.close()
        auth.jwks_keys.cache_clear()
        get_settings.cache_clear()
