"""A write-only, unseekable file object that streams into an S3 multipart upload.

Memory stays bounded at one part (8 MiB by default). `abort()` removes every uploaded part, so a failed
export leaves no object behind.
"""

from __future__ import annotations

import io
from typing import Any


class S3MultipartWriter(io.RawIOBase):
    def __init__(
        self,
        client: Any,
        bucket: str,
        key: str,
        *,
        part_size: int = 8 * 1024 * 1024,
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
            self._upload(bytes(self.buffer[: self.part_size]))
            del self.buffer[: self.part_size]
        return len(view)

    def _upload(self, chunk: bytes) -> None:
        number = len(self.parts) + 1
        response = self.client.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=chunk
        )
        self.parts.append({"ETag": response["ETag"], "PartNumber": number})

    def complete(self) -> None:
        if self.buffer or not self.parts:
            self._upload(bytes(self.buffer))
            self.buffer.clear()
        self.client.complete_multipart_upload(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": self.parts}
        )
        self.completed = True

    def abort(self) -> None:
        if self.upload_id and not self.completed:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)
            self.upload_id = None
