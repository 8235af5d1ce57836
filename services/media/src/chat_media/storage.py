"""Where sanitized bytes live: one interface, a local directory (``make run``) or S3 through
the ``minio`` SDK (MinIO, SeaweedFS, AWS). Keys are server-generated (``media_key``), never
derived from what the client sent. Objects are written only after sanitizing.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

from minio import Minio
from minio.error import S3Error

from chat_media.settings import MediaSettings

CHUNK = 256 * 1024


class NotStored(Exception):
    """No object under that key."""


class Storage(Protocol):
    async def put(self, key: str, data: bytes, mime: str) -> None: ...

    async def read(self, key: str) -> AsyncIterator[bytes]:
        """The object's bytes in chunks; ``NotStored`` when there is none."""
        ...

    async def delete(self, key: str) -> None:
        """Idempotent."""
        ...

    async def exists(self, key: str) -> bool: ...

    async def check(self) -> None:
        """Raise when the storage cannot be used (readiness)."""
        ...


def media_key(media_id: str) -> str:
    """``ab/<id>``: spread over 256 prefixes (``media_id`` is 32 random hex digits)."""
    return f"{media_id[:2]}/{media_id}"


class LocalStorage:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        p = (self.root / key).resolve()
        if self.root not in p.parents:
            raise ValueError("key outside the storage root")
        return p

    async def put(self, key: str, data: bytes, mime: str) -> None:
        await asyncio.to_thread(self._put, self._path(key), data)

    @staticmethod
    def _put(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # readers see the whole object or none

    async def read(self, key: str) -> AsyncIterator[bytes]:
        path = self._path(key)
        try:
            f = await asyncio.to_thread(open, path, "rb")
        except FileNotFoundError as exc:
            raise NotStored(key) from exc
        return _chunks_of(f)

    async def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(os.unlink, self._path(key))

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._path(key).is_file)

    async def check(self) -> None:
        if not await asyncio.to_thread(os.access, self.root, os.W_OK):
            raise OSError(f"{self.root} is not writable")


async def _chunks_of(f: io.BufferedReader) -> AsyncIterator[bytes]:
    try:
        while chunk := await asyncio.to_thread(f.read, CHUNK):
            yield chunk
    finally:
        f.close()


class S3Storage:
    """A private bucket; the SDK is synchronous, so calls run in threads."""

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        *,
        secure: bool = True,
        region: str | None = None,
    ) -> None:
        self.client = Minio(endpoint, access_key=access_key, secret_key=secret_key, secure=secure, region=region)
        self.bucket = bucket

    async def ensure_bucket(self) -> None:
        def ensure() -> None:
            if not self.client.bucket_exists(self.bucket):
                with contextlib.suppress(S3Error):  # created meanwhile by another replica
                    self.client.make_bucket(self.bucket)

        await asyncio.to_thread(ensure)

    async def put(self, key: str, data: bytes, mime: str) -> None:
        await asyncio.to_thread(self.client.put_object, self.bucket, key, io.BytesIO(data), len(data), mime)

    async def read(self, key: str) -> AsyncIterator[bytes]:
        try:
            resp = await asyncio.to_thread(self.client.get_object, self.bucket, key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject"):
                raise NotStored(key) from exc
            raise
        return _s3_chunks(resp)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.client.remove_object, self.bucket, key)

    async def exists(self, key: str) -> bool:
        try:
            await asyncio.to_thread(self.client.stat_object, self.bucket, key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                return False
            raise
        return True

    async def check(self) -> None:
        if not await asyncio.to_thread(self.client.bucket_exists, self.bucket):
            raise OSError(f"bucket {self.bucket} missing")


async def _s3_chunks(resp: object) -> AsyncIterator[bytes]:
    try:
        while chunk := await asyncio.to_thread(resp.read, CHUNK):  # type: ignore[attr-defined]
            yield chunk
    finally:
        resp.close()  # type: ignore[attr-defined]
        resp.release_conn()  # type: ignore[attr-defined]


async def storage_from(s: MediaSettings) -> Storage:
    """The storage ``MEDIA_STORAGE`` names (the S3 bucket created when missing)."""
    if s.storage == "s3":
        s3 = S3Storage(
            s.s3_endpoint,
            s.s3_access_key.get_secret_value(),
            s.s3_secret_key.get_secret_value(),
            s.s3_bucket,
            secure=s.s3_secure,
            region=s.s3_region or None,
        )
        await s3.ensure_bucket()
        return s3
    return LocalStorage(s.local_dir)
