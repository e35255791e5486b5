"""Swagger UI, served by the local gateway with local assets, lists the seven operations in a real browser
(Debian's headless Chromium; no internet needed)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator

import pytest

from activity_dev.gateway import Gateway, make_server
from activity_dev.openapi import install_swagger
from glow_activity import API_PREFIX, OPERATIONS

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def swagger_url(database_url: str) -> Iterator[str]:
    gateway = Gateway(workers=1)
    install_swagger(gateway)
    server = make_server(gateway, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/swagger"
    server.shutdown()
    gateway.close()


def test_swagger_ui_lists_the_seven_operations(swagger_url: str) -> None:
    # never skipped: `make install` (which `make test` runs) installs Debian's chromium, or says how
    assert CHROMIUM, "no chromium on PATH: run `make install` (as root it installs Debian's chromium package)"
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=15000",
                "--dump-dom",
                swagger_url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
    assert 'class="swagger-ui' in dom  # the bundle ran and rendered, from local assets
    for operation in OPERATIONS:
        assert f"{API_PREFIX}/{operation}" in dom, operation
    assert "cdn" not in dom.lower() and "unpkg" not in dom.lower()
