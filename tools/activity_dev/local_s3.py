"""Local S3 for exports: moto's server on loopback, with the environment pointed at it."""

from __future__ import annotations

import os
import socket
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(bucket: str = "glow-activity-exports-local", port: int | None = None) -> Any:
    """Start moto in server mode, export AWS_* and EXPORT_BUCKET, create the bucket; returns the server."""
    import logging

    from moto.server import ThreadedMotoServer

    # werkzeug logs every request line, presigned query strings (signatures) included: keep it quiet.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    port = port or free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
            "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
            "EXPORT_BUCKET": bucket,
        }
    )
    import boto3

    boto3.client("s3").create_bucket(Bucket=bucket)
    return server
