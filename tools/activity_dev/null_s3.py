"""An S3 endpoint for the bench that takes multipart uploads and keeps nothing but their sizes.

The local S3 (moto) holds every uploaded part in memory, several times over: an export at `--scale xlarge` (gigabytes
of ZIP) runs this machine out of memory. Measuring that export's own pipeline (COPY, CSV, deflate, parts sent) needs
only an endpoint that answers CreateMultipartUpload, UploadPart, CompleteMultipartUpload and DeleteObject as S3 does,
reading each part to the end. Never used by the tests, which download what an export wrote (moto in server mode).
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

_NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _NullS3

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _read_body(self) -> int:
        """Read the request's body to its end (chunked or not); its size."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            size = 0
            while True:
                length = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if length == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return size
                size += len(self.rfile.read(length))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        remaining = length
        while remaining:
            remaining -= len(self.rfile.read(min(remaining, 1 << 20)))
        return length

    def _answer(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        bucket, _, key = parts.path.lstrip("/").partition("/")
        self._read_body()
        if "uploads" in query:
            upload = uuid.uuid4().hex
            body = (
                f"<InitiateMultipartUploadResult {_NS}><Bucket>{bucket}</Bucket><Key>{key}</Key>"
                f"<UploadId>{upload}</UploadId></InitiateMultipartUploadResult>"
            )
        else:
            body = (
                f"<CompleteMultipartUploadResult {_NS}><Bucket>{bucket}</Bucket><Key>{key}</Key>"
                f'<ETag>"{uuid.uuid4().hex}-1"</ETag></CompleteMultipartUploadResult>'
            )
        self._answer(200, body.encode(), {"Content-Type": "application/xml"})

    def do_PUT(self) -> None:
        size = self._read_body()
        with self.server.lock:
            self.server.bytes_received += size
        etag = hashlib.md5(str(size).encode(), usedforsecurity=False).hexdigest()
        self._answer(200, headers={"ETag": f'"{etag}"'})

    def do_DELETE(self) -> None:
        self._answer(204)


class _NullS3(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.bytes_received = 0


def start() -> _NullS3:
    """Serve on a free loopback port (its URL: `url(server)`), in a daemon thread."""
    server = _NullS3()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def url(server: _NullS3) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"
