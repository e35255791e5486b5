"""A small local authorization server standing in for Glow's Keycloak when an agent host signs its user in: RFC 8414
metadata (and OpenID discovery) under its issuer, the JWKS of an IdentityProvider, an authorization endpoint that
approves at once (as a user who is already signed in would), and a token endpoint that checks PKCE (S256) and
mints an access token for the resource asked for: RS256, `typ: Bearer`, `aud` the MCP resource's client, `azp` the
host's client, and the signed-in user's `profile_id`, as Keycloak's access tokens carry them."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from identity_provider import IdentityProvider

REALM_PATH = "/realms/glow"
MCP_AUDIENCE = "activity-mcp"  # the Keycloak client that stands for the MCP resource (its audience mapper's value)


class AuthorizationServer:
    def __init__(self, profile_id: str) -> None:
        self.keys = IdentityProvider()  # signing keys and their JWKS
        self.profile_id = profile_id  # who signs in
        self.codes: dict[str, dict[str, str]] = {}
        self.issued: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path in (
                    f"/.well-known/oauth-authorization-server{REALM_PATH}",
                    f"{REALM_PATH}/.well-known/openid-configuration",
                ):
                    self._json(200, server.metadata())
                elif parts.path == f"{REALM_PATH}/protocol/openid-connect/certs":
                    self._json(200, server.keys.jwks())
                elif parts.path == f"{REALM_PATH}/protocol/openid-connect/auth":
                    self._authorize(parse_qs(parts.query))
                else:
                    self._json(404, {"error": "not_found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if urlsplit(self.path).path != f"{REALM_PATH}/protocol/openid-connect/token":
                    self._json(404, {"error": "not_found"})
                    return
                status, body = server.token(form)
                self._json(status, body)

            def _authorize(self, query: dict[str, list[str]]) -> None:
                q = {k: v[0] for k, v in query.items()}
                if q.get("response_type") != "code" or q.get("code_challenge_method") != "S256":
                    self._json(400, {"error": "invalid_request"})
                    return
                code = secrets.token_urlsafe(16)
                server.codes[code] = q
                location = f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q.get('state', '')})}"
                self.send_response(302)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _json(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{REALM_PATH}"

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}/protocol/openid-connect/certs"

    def metadata(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/protocol/openid-connect/auth",
            "token_endpoint": f"{self.issuer}/protocol/openid-connect/token",
            "jwks_uri": self.jwks_url,
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "mcp-resource"],
        }

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        grant = self.codes.pop(form.get("code", ""), None)
        if form.get("grant_type") != "authorization_code" or grant is None:
            return 400, {"error": "invalid_grant"}
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
        if challenge != grant["code_challenge"] or form.get("redirect_uri") != grant["redirect_uri"]:
            return 400, {"error": "invalid_grant"}
        if form.get("client_id") != grant["client_id"]:
            return 400, {"error": "invalid_client"}
        claims = {
            "iss": self.issuer,
            "aud": MCP_AUDIENCE,
            "azp": grant["client_id"],
            "typ": "Bearer",
            "scope": grant.get("scope", ""),
            "profile_id": self.profile_id,
        }
        access_token = self.keys.token(**claims)
        self.issued.append({**claims, "resource": form.get("resource") or grant.get("resource"), "at": time.time()})
        return 200, {"access_token": access_token, "token_type": "Bearer", "expires_in": 300}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.keys.close()
