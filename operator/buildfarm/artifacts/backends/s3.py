"""The S3 storage backend: objects in a bucket of any S3-compatible store (AWS S3, versitygw, Ceph, ...).

The client is minio-py (Apache-2.0), not boto3: botocore pins python-dateutil<3 while the kubernetes client
this project uses (37+) needs python-dateutil>=3, so the two cannot be installed together. minio-py is
synchronous, so every blocking call runs on this backend's own thread pool (settings.max_concurrency), never
on the event loop nor on the loop's default executor that the rest of the service shares.

How each operation keeps the contract (docs/artifacts-api.md, "Backend protocol"):
- put streams the body through a file-like bridge into minio's streaming multipart upload, in parts of
  PART_SIZE (one part in flight), hashing and counting in the upload thread; the limit and the digest are
  checked before the upload is completed, and any error aborts the multipart upload, so nothing is visible.
  With an expected sha256 the upload goes straight to the final key, its metadata already set. Without one
  it goes to a temporary key under `.incoming/`, and a server-side copy writes the final key with the
  sha256 the stream had (metadata cannot change after an upload completes). Either way an existing object
  with the same sha256 is kept as it is: a retry is idempotent.
- append writes each accepted body as its own object `{key}.parts/{offset:020d}` (zero-padded, so listing
  order is offset order); the stored size is where the last part ends. An in-memory index of the parts,
  refreshed by listing only after the last known part, keeps a long log from being listed whole on each
  append, and a per-key lock serializes appends within this process (the agent is the only writer).
- presigned_get signs a GET for the public endpoint; a log (parts) has no single object and is streamed by
  the service.
"""

from __future__ import annotations

import asyncio
import bisect
import concurrent.futures
import contextlib
import hashlib
import threading
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar

import certifi
import urllib3
from minio import Minio
from minio.commonconfig import ComposeSource
from minio.deleteobjects import DeleteObject
from minio.error import MinioException, S3Error
from urllib3.exceptions import HTTPError

from buildfarm.artifacts.backends.base import DigestMismatch, OffsetMismatch, StorageError, Stored, TooLarge
from buildfarm.artifacts.backends.s3_settings import S3_ENV_PREFIX, S3Settings
from buildfarm.settings import validated

# At most one part is in flight per upload, so an upload holds about two parts of memory (the part being
# sent and the bytes read for the next); 8 MiB keeps that well under the 64 MB per 1 GB transfer
# while staying above S3's 5 MiB minimum part size.
PART_SIZE: Final = 8 * 1024 * 1024
READ_CHUNK: Final = 1024 * 1024
SHA256_METADATA: Final = "sha256"  # stored as x-amz-meta-sha256
INCOMING: Final = ".incoming/"  # temporary objects of uploads without an expected sha256
PARTS_SUFFIX: Final = ".parts/"
# S3 allows presigned URLs to live at most 7 days.
PRESIGN_MAX_SECONDS: Final = 7 * 24 * 3600
_DELETE_BATCH: Final = 1000
_INDEX_CACHE_KEYS: Final = 1024
_NOT_FOUND: Final = frozenset({"NoSuchKey", "ResourceNotFound", "NoSuchObject"})

T = TypeVar("T")


class _Interrupted(Exception):
    """The upload's caller went away (task cancelled); raised in the upload thread so minio aborts."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _BodyReader:
    """A blocking file-like view of an async byte stream, read by minio in an upload thread.

    Each `read` fetches chunks from the event loop (`run_coroutine_threadsafe`), and counts and hashes them
    here, off the loop. It raises TooLarge as soon as the stream passes `limit`, and DigestMismatch at the
    end of the stream instead of reporting EOF, so minio aborts the upload rather than completing it.
    """

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        loop: asyncio.AbstractEventLoop,
        *,
        limit: int,
        expected_sha256: str | None = None,
        first: bytes | None = None,
        keep_partial: bool = False,
    ) -> None:
        self._chunks = chunks
        self._loop = loop
        self._limit = limit
        self._expected = expected_sha256
        self._first = first  # a chunk already taken from `chunks` (append looks for its first new byte)
        self._pending = b""
        self._keep_partial = keep_partial
        self.body_error: Exception | None = None  # the body's failure, when what arrived is kept
        self._eof = False
        self._hash = hashlib.sha256()
        self._lock = threading.Lock()
        self._waiting: concurrent.futures.Future[bytes | None] | None = None
        self._interrupted = False
        self.size = 0
        self.error: BaseException | None = None  # what this reader raised, to re-raise it as is

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def interrupt(self) -> None:
        """Make the upload thread fail at its next read (called on the loop when the caller is cancelled)."""
        with self._lock:
            self._interrupted = True
            if self._waiting is not None:
                self._waiting.cancel()

    def read(self, size: int = -1) -> bytes:
        try:
            return self._read(size)
        except BaseException as error:
            # minio aborts the multipart upload on Exception only: a cancellation becomes one.
            self.error = error if isinstance(error, Exception) else _Interrupted("the upload was cancelled")
            raise self.error from None

    def _read(self, size: int) -> bytes:
        wanted = size if size >= 0 else PART_SIZE
        pieces: list[bytes] = []
        got = 0
        while got < wanted:
            chunk = self._take(wanted - got)
            if not chunk:
                break
            pieces.append(chunk)
            got += len(chunk)
        # One join: minio concatenates what read returns, so few large pieces keep that linear.
        return b"".join(pieces)

    def _take(self, most: int) -> bytes:
        while not self._pending:
            if self._eof:
                return b""
            chunk = self._next_or_end()
            if chunk is None:
                self._eof = True
                self._finish()
                return b""
            self.size += len(chunk)
            if self.size > self._limit:
                raise TooLarge(f"the content is larger than the limit of {self._limit} bytes")
            self._hash.update(chunk)
            self._pending = chunk
        piece, self._pending = self._pending[:most], self._pending[most:]
        return piece

    def _next_or_end(self) -> bytes | None:
        try:
            return self._next()
        except _Interrupted:
            raise
        except Exception as error:
            if not self._keep_partial:
                raise
            # A log keeps what arrived before its writer went away: the body ends there.
            self.body_error = error
            return None

    def _next(self) -> bytes | None:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        with self._lock:
            if self._interrupted:
                raise _Interrupted("the upload was cancelled")
            self._waiting = asyncio.run_coroutine_threadsafe(_next_chunk(self._chunks), self._loop)
        try:
            return self._waiting.result()
        finally:
            with self._lock:
                self._waiting = None

    def _finish(self) -> None:
        if self._expected is not None and self.sha256 != self._expected:
            raise DigestMismatch(
                f"the content's sha256 is {self.sha256}, not the expected {self._expected}: upload it again"
            )


async def _next_chunk(chunks: AsyncIterator[bytes]) -> bytes | None:
    async for chunk in chunks:
        if chunk:
            return bytes(chunk)
    return None


@dataclass
class _Parts:
    """The part objects of an appended key: starts[i] holds sizes[i] bytes; they are contiguous."""

    starts: list[int] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)

    @property
    def end(self) -> int:
        return self.starts[-1] + self.sizes[-1] if self.starts else 0

    def add(self, start: int, size: int) -> None:
        self.starts.append(start)
        self.sizes.append(size)


class S3Backend:
    """The Backend protocol over one bucket (and key prefix) of an S3-compatible store."""

    name = "s3"

    def __init__(self, settings: S3Settings, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self._settings = settings
        self._bucket = settings.bucket
        self._prefix = settings.prefix
        self._clock = clock  # the signing time of presigned URLs: tests sign in the past to see expiry
        self._endpoint = str(settings.endpoint).rstrip("/")
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=settings.max_concurrency, thread_name_prefix="s3"
        )
        self._http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=settings.connect_timeout, read=settings.read_timeout),
            maxsize=settings.max_concurrency,
            cert_reqs="CERT_REQUIRED" if settings.verify_tls else "CERT_NONE",
            ca_certs=certifi.where(),
            # Retries only for failures before a request was sent or a 5xx answer: all bodies are bytes.
            retries=urllib3.Retry(
                total=3, connect=2, read=1, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]
            ),
        )
        self._client = self._new_client(settings.endpoint, self._http)
        public = settings.public_endpoint or settings.endpoint
        # Signing is local (the region is given), so presigning for another host needs no connection.
        self._presigner = self._new_client(public, self._http)
        self._parts: OrderedDict[str, _Parts] = OrderedDict()
        self._append_locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @classmethod
    def from_settings(cls, service_settings: object) -> S3Backend:
        """The backend of the artifact service (buildfarm.artifacts.backends.make_backend): its settings'
        `bucket` (BUILDFARM_ARTIFACTS_BUCKET) when set, everything else from BUILDFARM_ARTIFACTS_S3_*.
        Raises buildfarm.settings.SettingsError (one line) when they are wrong; `check()` then proves
        the store reachable with them."""
        bucket = getattr(service_settings, "bucket", None)
        return cls(validated(S3Settings, **({"bucket": bucket} if bucket else {})))

    def _new_client(self, endpoint: Any, http: urllib3.PoolManager) -> Minio:
        s = self._settings
        client = Minio(
            f"{endpoint.host}:{endpoint.port}",
            access_key=s.access_key_id.get_secret_value(),
            secret_key=s.secret_access_key.get_secret_value(),
            session_token=s.session_token.get_secret_value() if s.session_token else None,
            secure=endpoint.scheme == "https",
            region=s.region,
            http_client=http,
        )
        if s.path_style:
            client.disable_virtual_style_endpoint()  # type: ignore[no-untyped-call]
        else:
            client.enable_virtual_style_endpoint()  # type: ignore[no-untyped-call]
        return client

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._http.clear()

    async def check(self) -> None:
        """Fail with one line unless the bucket exists and these credentials may use it (for startup)."""
        # A listing, not HEAD bucket: a HEAD answer has no body, so S3 cannot say which credential is wrong.
        await self._call(self._list_one, what="list the bucket")

    def _list_one(self) -> None:
        for _ in self._client.list_objects(self._bucket, prefix=self._prefix or None):
            break

    # --- objects -------------------------------------------------------------------------------------

    async def put(
        self,
        key: str,
        chunks: AsyncIterator[bytes],
        *,
        limit: int,
        expected_sha256: str | None = None,
    ) -> Stored:
        if expected_sha256 is not None:
            existing = await self.stat(key)
            if existing is not None and existing.sha256 == expected_sha256:
                return existing  # The same content is stored already; its body is not needed.
            reader = _BodyReader(
                chunks, asyncio.get_running_loop(), limit=limit, expected_sha256=expected_sha256
            )
            await self._upload(self._name(key), reader, {SHA256_METADATA: expected_sha256}, key=key)
            return Stored(key=key, size=reader.size, sha256=reader.sha256)

        temporary = f"{self._prefix}{INCOMING}{uuid.uuid4().hex}"
        reader = _BodyReader(chunks, asyncio.get_running_loop(), limit=limit)
        await self._upload(temporary, reader, None, key=key)
        try:
            existing = await self.stat(key)
            if existing is None or existing.sha256 != reader.sha256:
                await self._call(
                    self._client.compose_object,
                    self._bucket,
                    self._name(key),
                    [ComposeSource(self._bucket, temporary)],
                    metadata={SHA256_METADATA: reader.sha256},
                    what=f"copy the upload to {key}",
                )
        finally:
            await self._remove_quietly(temporary)
        return Stored(key=key, size=reader.size, sha256=reader.sha256)

    async def stat(self, key: str) -> Stored | None:
        try:
            info = await self._call(
                self._client.stat_object, self._bucket, self._name(key), what=f"stat {key}"
            )
        except _Missing:
            parts = await self._refresh_parts(key)
            return Stored(key=key, size=parts.end, sha256="") if parts.starts else None
        metadata = info.metadata or {}
        sha256 = metadata.get(f"x-amz-meta-{SHA256_METADATA}") or ""
        return Stored(key=key, size=info.size or 0, sha256=str(sha256))

    async def read(self, key: str, offset: int = 0) -> AsyncIterator[bytes]:
        if offset < 0:
            raise ValueError(f"offset must not be negative (got {offset})")
        try:
            async for chunk in self._read_object(self._name(key), offset, what=f"read {key}"):
                yield chunk
            return
        except _Missing:
            pass
        parts = await self._refresh_parts(key)
        if not parts.starts:
            raise KeyError(key)
        first = max(bisect.bisect_right(parts.starts, offset) - 1, 0)
        for start, size in zip(parts.starts[first:], parts.sizes[first:], strict=True):
            if offset >= start + size:
                continue
            async for chunk in self._read_object(
                self._part_name(key, start), max(offset - start, 0), what=f"read {key}"
            ):
                yield chunk

    def presigned_get(self, key: str, expires_seconds: int) -> str | None:
        if not 1 <= expires_seconds <= PRESIGN_MAX_SECONDS:
            raise ValueError(
                f"expires_seconds must be between 1 and {PRESIGN_MAX_SECONDS} (got {expires_seconds})"
            )
        try:
            return self._presigner.get_presigned_url(
                "GET",
                self._bucket,
                self._name(key),
                expires=timedelta(seconds=expires_seconds),
                request_date=self._clock(),
            )
        except (MinioException, HTTPError, ValueError) as error:
            raise self._storage_error(error, f"presign {key}") from None

    # --- logs ----------------------------------------------------------------------------------------

    async def append(self, key: str, offset: int, chunks: AsyncIterator[bytes], *, limit: int) -> int:
        if offset < 0:
            raise ValueError(f"offset must not be negative (got {offset})")
        # One lock per log being written, dropped when its last user leaves: the table stays small.
        lock, users = self._append_locks.get(key, (asyncio.Lock(), 0))
        self._append_locks[key] = (lock, users + 1)
        try:
            async with lock:
                return await self._append(key, offset, chunks, limit)
        finally:
            lock, users = self._append_locks[key]
            if users == 1:
                del self._append_locks[key]
            else:
                self._append_locks[key] = (lock, users - 1)

    async def _append(self, key: str, offset: int, chunks: AsyncIterator[bytes], limit: int) -> int:
        parts = await self._refresh_parts(key)
        size = parts.end
        if offset > size:
            raise OffsetMismatch(size)
        skip = size - offset
        # Find the first new byte before starting an upload: a body that is all overlap (a retry whose
        # first answer was lost) or empty writes no part.
        first = b""
        async for chunk in chunks:
            if len(chunk) <= skip:
                skip -= len(chunk)
                continue
            first = bytes(chunk[skip:])
            skip = 0
            break
        if not first:
            return size
        reader = _BodyReader(
            chunks, asyncio.get_running_loop(), limit=limit - size, first=first, keep_partial=True
        )
        await self._upload(self._part_name(key, size), reader, None, key=key)
        if parts.end == size:  # unless a concurrent stat or read has listed the new part already
            parts.add(size, reader.size)
        if reader.body_error is not None:
            raise reader.body_error
        return size + reader.size

    async def _refresh_parts(self, key: str) -> _Parts:
        """The key's parts, listing only those after the last one already known."""
        parts = self._parts.pop(key, None) or _Parts()
        prefix = self._name(key) + PARTS_SUFFIX
        after = f"{prefix}{parts.starts[-1]:020d}" if parts.starts else None
        listed = await self._call(self._list, prefix, True, after, what=f"list the parts of {key}")
        for name, size in listed:
            try:
                start = int(name[len(prefix) :])
            except ValueError:
                continue  # Not a part of ours.
            if start < parts.end:
                continue  # Known already: an append added it while this listing ran.
            if start != parts.end:
                raise StorageError(
                    f"the log {key} has a gap or overlap at byte {start} (expected {parts.end}): "
                    "two writers appended at once; delete the log's parts to reset it"
                )
            parts.add(start, size)
        self._parts[key] = parts
        while len(self._parts) > _INDEX_CACHE_KEYS:
            self._parts.popitem(last=False)
        return parts

    # --- prefixes ------------------------------------------------------------------------------------

    async def delete_prefix(self, prefix: str) -> int:
        full = self._name(prefix)
        names = [name for name, _ in await self._call(self._list, full, True, None, what=f"list {prefix}")]
        for start in range(0, len(names), _DELETE_BATCH):
            batch = names[start : start + _DELETE_BATCH]
            await self._call(self._remove_all, batch, what=f"delete {prefix}")
        for key in [k for k in self._parts if k.startswith(prefix)]:
            del self._parts[key]
        return len(names)

    async def list_prefixes(self, prefix: str) -> AsyncIterator[str]:
        full = self._name(prefix)
        for name in await self._call(self._list_dirs, full, what=f"list {prefix}"):
            yield name[len(self._prefix) :]

    async def sweep_temporary(self, older_than_seconds: float, now: float) -> int:
        """Delete temporary upload objects older than `older_than_seconds` before `now` (a Unix time): what a
        service that crashed between an upload and its copy left in `.incoming/` (running uploads are
        younger). Returns how many. Not part of the protocol: the retention sweep calls it when present."""
        cutoff = datetime.fromtimestamp(now - older_than_seconds, UTC)
        prefix = f"{self._prefix}{INCOMING}"
        stale = await self._call(self._list_older, prefix, cutoff, what="list temporary uploads")
        for start in range(0, len(stale), _DELETE_BATCH):
            await self._call(self._remove_all, stale[start : start + _DELETE_BATCH], what="delete uploads")
        return len(stale)

    # --- blocking calls, on the backend's threads ----------------------------------------------------

    def _list_older(self, prefix: str, cutoff: datetime) -> list[str]:
        return [
            str(obj.object_name)
            for obj in self._client.list_objects(self._bucket, prefix=prefix, recursive=True)
            if not obj.is_dir and obj.last_modified is not None and obj.last_modified < cutoff
        ]

    def _list(self, prefix: str, recursive: bool, start_after: str | None) -> list[tuple[str, int]]:
        return [
            (str(obj.object_name), obj.size or 0)
            for obj in self._client.list_objects(
                self._bucket, prefix=prefix, recursive=recursive, start_after=start_after
            )
            if not obj.is_dir
        ]

    def _list_dirs(self, prefix: str) -> list[str]:
        return [
            str(obj.object_name)
            for obj in self._client.list_objects(self._bucket, prefix=prefix, recursive=False)
            if obj.is_dir
        ]

    def _remove_all(self, names: list[str]) -> None:
        # remove_objects is lazy: the deletions happen while its errors are iterated.
        errors = list(self._client.remove_objects(self._bucket, (DeleteObject(n) for n in names)))
        if errors:
            raise StorageError(
                f"S3 refused to delete {len(errors)} object(s), e.g. {errors[0].name}: "
                f"{errors[0].code} {errors[0].message}"
            )

    async def _upload(
        self, name: str, reader: _BodyReader, metadata: dict[str, str] | None, *, key: str
    ) -> None:
        future = asyncio.get_running_loop().run_in_executor(
            self._executor,
            lambda: self._client.put_object(
                self._bucket,
                name,
                reader,  # type: ignore[arg-type]  # a file-like object with read(), all minio uses
                length=-1,
                part_size=PART_SIZE,
                num_parallel_uploads=1,
                metadata=metadata,  # type: ignore[arg-type]
            ),
        )
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            # Let the thread fail its next read and abort the multipart upload before going away.
            reader.interrupt()
            with contextlib.suppress(BaseException):
                await future
            raise
        except Exception as error:
            if reader.error is not None:
                # TooLarge, DigestMismatch, or the body's own failure: the upload was aborted, nothing stored.
                if error is reader.error:
                    raise
                raise reader.error from None
            if isinstance(error, MinioException | HTTPError | OSError):
                raise self._storage_error(error, f"upload {key}") from None
            raise

    async def _read_object(self, name: str, offset: int, *, what: str) -> AsyncIterator[bytes]:
        try:
            response = await self._call(self._client.get_object, self._bucket, name, offset=offset, what=what)
        except _OutOfRange:
            return  # offset at or past the end: nothing to send
        try:
            while True:
                chunk = await self._call(response.read, READ_CHUNK, what=what)
                if not chunk:
                    return
                yield chunk
        finally:
            response.close()
            response.release_conn()

    async def _remove_quietly(self, name: str) -> None:
        with contextlib.suppress(StorageError):
            await self._call(self._client.remove_object, self._bucket, name, what="remove a temporary object")

    async def _call(self, function: Callable[..., T], *args: Any, what: str = "", **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, lambda: function(*args, **kwargs))
        except S3Error as error:
            if error.code in _NOT_FOUND:
                raise _Missing() from None
            if error.code == "InvalidRange":
                raise _OutOfRange() from None
            raise self._storage_error(error, what) from None
        except (MinioException, HTTPError, OSError) as error:
            raise self._storage_error(error, what) from None

    # --- names and errors ----------------------------------------------------------------------------

    def _name(self, key: str) -> str:
        return f"{self._prefix}{key}"

    def _part_name(self, key: str, start: int) -> str:
        return f"{self._name(key)}{PARTS_SUFFIX}{start:020d}"

    def _storage_error(self, error: BaseException, what: str) -> StorageError:
        where = f"bucket {self._bucket!r} at {self._endpoint}"
        if isinstance(error, S3Error):
            hint = _HINTS.get(error.code or "", "")
            message = (error.message or "").strip().rstrip(".")
            detail = f"{error.code}: {message}" if message else str(error.code)
            text = f"S3 could not {what} ({where}): {detail}{hint}"
        elif isinstance(error, HTTPError | OSError):
            reason = getattr(error, "reason", None) or error
            text = (
                f"S3 could not {what}: {where} is unreachable ({type(reason).__name__}: {reason}); "
                f"check {S3_ENV_PREFIX}ENDPOINT"
            )
        else:
            text = f"S3 could not {what} ({where}): {error}"
        return StorageError(" ".join(text.split()))


class _Missing(Exception):
    """The object does not exist (NoSuchKey)."""


class _OutOfRange(Exception):
    """A read started at or past the object's end."""


_HINTS: Final = {
    "NoSuchBucket": f"; create the bucket, or set {S3_ENV_PREFIX}BUCKET to an existing one",
    "InvalidAccessKeyId": f"; check {S3_ENV_PREFIX}ACCESS_KEY_ID",
    "XAdminUserNotFound": f"; check {S3_ENV_PREFIX}ACCESS_KEY_ID",  # versitygw's word for it
    "SignatureDoesNotMatch": f"; check {S3_ENV_PREFIX}SECRET_ACCESS_KEY",
    "AccessDenied": "; check the credentials and that they may read and write the bucket",
}
