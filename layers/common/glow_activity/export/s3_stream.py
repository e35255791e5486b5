"""A write-only, unseekable file object that streams into an S3 multipart upload.

Parts are uploaded by a background thread while the next one is being written (the upload is network
wait, which releases the GIL), at most `in_flight` at a time, so memory stays bounded at
`part_size * (in_flight + 1)` (32 MiB parts, 96 MiB by default; fewer, larger requests than 8 MiB parts
cost less time per byte, docs/PERFORMANCE.md). An upload's failure surfaces on the next write or on
`complete()`. `abort()` removes every uploaded part, so a failed export leaves no object behind.
"""

from __future__ import annotations

import io
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

PART_SIZE = 32 * 1024 * 1024


class S3MultipartWriter(io.RawIOBase):
    def __init__(
        self,
        client: Any,
        bucket: str,
        key: str,
        *,
        part_size: int = PART_SIZE,
        in_flight: int = 2,
        content_type: str = "application/zip",
        content_disposition: str | None = None,
    ) -> None:
        super().__init__()
        self.client, self.bucket, self.key, self.part_size = client, bucket, key, part_size
        extra = {"ContentDisposition": content_disposition} if content_disposition else {}
        self.upload_id: str | None = client.create_multipart_upload(
            Bucket=bucket, Key=key, ContentType=content_type, ServerSideEncryption="AES256", **extra
        )["UploadId"]
        self.parts: list[dict[str, Any]] = []
        self.buffer = bytearray()
        self.size = 0
        self.completed = False
        self.in_flight = in_flight
        self._pending: deque[Future[dict[str, Any]]] = deque()
        self._pool = ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="s3-part")
        self._next_part = 1

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        raise OSError("unseekable stream")  # makes zipfile write data descriptors instead of seeking

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.buffer += view
        self.size += len(view)
        while len(self.buffer) >= self.part_size:
            with memoryview(self.buffer) as whole:
                part = bytes(whole[: self.part_size])  # one copy (a slice of the bytearray would be two)
            del self.buffer[: self.part_size]
            self._submit(part)
        return len(view)

    def _submit(self, chunk: bytes) -> None:
        while len(self._pending) >= self.in_flight:
            self.parts.append(self._pending.popleft().result())  # waits; re-raises an upload's failure
        number, self._next_part = self._next_part, self._next_part + 1
        self._pending.append(self._pool.submit(self._upload, number, chunk))

    def _upload(self, number: int, chunk: bytes) -> dict[str, Any]:
        response = self.client.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=chunk
        )
        return {"ETag": response["ETag"], "PartNumber": number}

    def complete(self) -> None:
        if self.buffer or self._next_part == 1:
            self._submit(bytes(self.buffer))
            self.buffer.clear()
        while self._pending:
            self.parts.append(self._pending.popleft().result())
        self._pool.shutdown()
        self.client.complete_multipart_upload(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            MultipartUpload={"Parts": sorted(self.parts, key=lambda part: part["PartNumber"])},
        )
        self.completed = True

    def abort(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)  # no part may land after the abort
        self._pending.clear()
        if self.upload_id and not self.completed:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)
            self.upload_id = None
