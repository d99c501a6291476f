"""The S3 backend against a real S3-compatible server (versitygw, tests/support/s3.py): each test gets a
fresh bucket, and looks at it with a plain S3 client to see what became visible, multipart uploads too."""

import asyncio
import hashlib
import io
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
import urllib3

from buildfarm.artifacts.backends.base import (
    Backend,
    DigestMismatch,
    OffsetMismatch,
    StorageError,
    Stored,
    TooLarge,
)
from buildfarm.artifacts.backends.s3 import PART_SIZE, S3Backend
from tests.support.s3 import S3Server, running_s3_server

T = TypeVar("T")
MiB = 1024 * 1024
KEY = "builds/ns/b/uid-1/1/artifacts/app.apk"
LOG = "builds/ns/b/uid-1/1/log"


def run(awaitable: Awaitable[T]) -> T:
    async def main() -> T:
        return await awaitable

    return asyncio.run(main())


class Body:
    """An async body of `size` pseudo-random bytes in `chunk`-sized pieces that counts what was taken, and
    can fail (like a client going away) after `fail_after` bytes."""

    def __init__(self, size: int, *, chunk: int = 256 * 1024, fail_after: int | None = None, seed: int = 1):
        block = hashlib.sha256(str(seed).encode()).digest() * (chunk // 32 + 1)
        self.data = (block * (size // len(block) + 1))[:size]
        self.chunk = chunk
        self.fail_after = fail_after
        self.taken = 0

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.data), self.chunk):
            if self.fail_after is not None and start >= self.fail_after:
                raise ConnectionResetError("the client went away")
            piece = self.data[start : start + self.chunk]
            self.taken += len(piece)
            yield piece
            await asyncio.sleep(0)

    def stream(self) -> AsyncIterator[bytes]:
        return self.__aiter__()


async def chunks(parts: Iterable[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def read_all(backend: Backend, key: str, offset: int = 0) -> bytes:
    return b"".join([chunk async for chunk in backend.read(key, offset)])


def prefixes(backend: Backend, prefix: str) -> list[str]:
    async def listed() -> list[str]:
        return sorted([p async for p in backend.list_prefixes(prefix)])

    return run(listed())


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    name = f"t-{uuid.uuid4().hex[:16]}"
    s3_server.make_bucket(name)
    return name


@pytest.fixture
def backend(s3_server: S3Server, bucket: str) -> Iterator[S3Backend]:
    backend = S3Backend(s3_server.settings(bucket=bucket))
    yield backend
    backend.close()


def objects(server: S3Server, bucket: str) -> list[str]:
    """Every object in the bucket (temporary ones included) and every unfinished multipart upload."""
    client = server.client()
    names = [str(o.object_name) for o in client.list_objects(bucket, recursive=True)]
    # minio has no public call for ListMultipartUploads; the private one is the plain S3 request.
    uploads = client._list_multipart_uploads(bucket).uploads
    return sorted(names + [f"upload:{u.object_name}" for u in uploads])


def test_put_stat_read_round_trip_small_and_multipart(
    s3_server: S3Server, bucket: str, backend: S3Backend
) -> None:
    for size in (0, 1000, 2 * PART_SIZE + 12345):
        body = Body(size)
        stored = run(backend.put(KEY, body.stream(), limit=64 * MiB))
        assert stored == Stored(key=KEY, size=size, sha256=body.sha256)
        assert run(backend.stat(KEY)) == stored
        assert run(read_all(backend, KEY)) == body.data
    # Nothing else stays behind: no temporary object, no multipart upload.
    assert objects(s3_server, bucket) == [KEY]


def test_put_with_expected_sha256_goes_straight_to_the_key(
    s3_server: S3Server, bucket: str, backend: S3Backend
) -> None:
    body = Body(PART_SIZE + 1)
    stored = run(backend.put(KEY, body.stream(), limit=64 * MiB, expected_sha256=body.sha256))
    assert stored == Stored(key=KEY, size=len(body.data), sha256=body.sha256)
    assert run(backend.stat(KEY)) == stored
    assert objects(s3_server, bucket) == [KEY]


def test_read_from_an_offset(backend: S3Backend) -> None:
    body = Body(3 * MiB)
    run(backend.put(KEY, body.stream(), limit=64 * MiB))
    for offset in (0, 1, MiB + 7, len(body.data) - 1, len(body.data), len(body.data) + 10):
        assert run(read_all(backend, KEY, offset)) == body.data[offset:]


def test_missing_key(backend: S3Backend) -> None:
    assert run(backend.stat("sources/ns/none.tar.gz")) is None
    with pytest.raises(KeyError):
        run(read_all(backend, "sources/ns/none.tar.gz"))


@pytest.mark.parametrize("expected", [False, True], ids=["unknown-digest", "expected-digest"])
def test_oversize_is_stopped_mid_stream_and_leaves_nothing(
    s3_server: S3Server, bucket: str, backend: S3Backend, expected: bool
) -> None:
    body = Body(6 * PART_SIZE)
    limit = 2 * PART_SIZE + 5
    with pytest.raises(TooLarge):
        run(backend.put(KEY, body.stream(), limit=limit, expected_sha256=body.sha256 if expected else None))
    # Stopped within a chunk of the limit, not after reading everything.
    assert body.taken <= limit + body.chunk
    assert objects(s3_server, bucket) == []


@pytest.mark.parametrize("fail_after", [1000, 2 * PART_SIZE + 1000], ids=["first-part", "later-part"])
def test_an_interrupted_upload_leaves_nothing(
    s3_server: S3Server, bucket: str, backend: S3Backend, fail_after: int
) -> None:
    body = Body(4 * PART_SIZE, fail_after=fail_after)
    with pytest.raises(ConnectionResetError):  # the body's own error, not a StorageError
        run(backend.put(KEY, body.stream(), limit=64 * MiB))
    assert objects(s3_server, bucket) == []


def test_a_cancelled_upload_leaves_nothing(s3_server: S3Server, bucket: str, backend: S3Backend) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def stalling() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield os.urandom(PART_SIZE)  # at least one part is uploaded before the stall
        started.set()
        await release.wait()
        yield b"never"

    async def scenario() -> None:
        task = asyncio.create_task(backend.put(KEY, stalling(), limit=64 * MiB))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(scenario())
    assert objects(s3_server, bucket) == []


@pytest.mark.parametrize("size", [1000, 2 * PART_SIZE + 1], ids=["single", "multipart"])
def test_digest_mismatch_leaves_nothing(
    s3_server: S3Server, bucket: str, backend: S3Backend, size: int
) -> None:
    body = Body(size)
    with pytest.raises(DigestMismatch):
        run(backend.put(KEY, body.stream(), limit=64 * MiB, expected_sha256="0" * 64))
    assert objects(s3_server, bucket) == []


def test_a_repeated_put_is_idempotent(s3_server: S3Server, bucket: str, backend: S3Backend) -> None:
    body = Body(PART_SIZE + 3)
    first = run(backend.put(KEY, body.stream(), limit=64 * MiB))
    etag = s3_server.client().stat_object(bucket, KEY).etag
    # Same content again, with or without the digest: the stored object is kept as it is.
    assert run(backend.put(KEY, Body(PART_SIZE + 3).stream(), limit=64 * MiB)) == first
    again = Body(PART_SIZE + 3)
    assert run(backend.put(KEY, again.stream(), limit=64 * MiB, expected_sha256=body.sha256)) == first
    assert again.taken == 0  # known content: the body is not even read
    assert s3_server.client().stat_object(bucket, KEY).etag == etag
    # Other content replaces it.
    other = Body(100, seed=2)
    assert run(backend.put(KEY, other.stream(), limit=64 * MiB)).sha256 == other.sha256
    assert run(read_all(backend, KEY)) == other.data
    assert objects(s3_server, bucket) == [KEY]


def test_presigned_get_serves_the_object_until_it_expires(s3_server: S3Server, bucket: str) -> None:
    body = Body(2000)
    now = datetime.now(UTC)
    http = urllib3.PoolManager(retries=False)
    fresh = S3Backend(s3_server.settings(bucket=bucket), clock=lambda: now)
    # Signed two minutes ago for one minute: expired now, without waiting for it.
    stale = S3Backend(s3_server.settings(bucket=bucket), clock=lambda: now - timedelta(minutes=2))
    try:
        run(fresh.put(KEY, body.stream(), limit=MiB))
        url = fresh.presigned_get(KEY, 60)
        assert url is not None
        assert url.startswith(s3_server.endpoint)
        answer = http.request("GET", url)
        assert (answer.status, answer.data) == (200, body.data)
        expired = stale.presigned_get(KEY, 60)
        assert expired is not None
        assert http.request("GET", expired).status == 403
        # A URL is only good for its key.
        assert http.request("GET", url.replace("app.apk", "other.apk")).status in (403, 404)
    finally:
        fresh.close()
        stale.close()


def test_presigned_urls_point_at_the_public_endpoint(s3_server: S3Server, bucket: str) -> None:
    backend = S3Backend(s3_server.settings(bucket=bucket, public_endpoint="https://files.example.test"))
    try:
        url = backend.presigned_get(KEY, 300)
        assert url is not None
        assert url.startswith(f"https://files.example.test/{bucket}/{KEY}?")
        assert "X-Amz-Expires=300" in url
        with pytest.raises(ValueError, match="expires_seconds"):
            backend.presigned_get(KEY, 8 * 24 * 3600)
    finally:
        backend.close()


def test_log_append_resume_overlap_and_gap(s3_server: S3Server, bucket: str, backend: S3Backend) -> None:
    assert run(backend.append(LOG, 0, chunks([b"line 1\n"]), limit=MiB)) == 7
    assert run(backend.append(LOG, 7, chunks([b"line 2\n", b"line 3\n"]), limit=MiB)) == 21
    # A retry after a lost answer: the bytes already held are skipped, the rest appended.
    assert run(backend.append(LOG, 14, chunks([b"line ", b"3\nline 4\n"]), limit=MiB)) == 28
    # All overlap, or nothing at all: nothing is written.
    assert run(backend.append(LOG, 0, chunks([b"line 1\n"]), limit=MiB)) == 28
    assert run(backend.append(LOG, 28, chunks([]), limit=MiB)) == 28
    # A gap is refused with the size to resume from.
    with pytest.raises(OffsetMismatch) as gap:
        run(backend.append(LOG, 30, chunks([b"x"]), limit=MiB))
    assert gap.value.size == 28

    text = b"line 1\nline 2\nline 3\nline 4\n"
    assert run(backend.stat(LOG)) == Stored(key=LOG, size=28, sha256="")
    for offset in (0, 3, 7, 10, 21, 27, 28, 40):
        assert run(read_all(backend, LOG, offset)) == text[offset:]
    # The parts are objects of their own, named by offset.
    assert objects(s3_server, bucket) == [f"{LOG}.parts/{offset:020d}" for offset in (0, 7, 21)]
    # Another replica (or a restart) with no index in memory sees the same log and continues it.
    other = S3Backend(s3_server.settings(bucket=bucket))
    try:
        assert run(other.stat(LOG)) == Stored(key=LOG, size=28, sha256="")
        assert run(other.append(LOG, 28, chunks([b"line 5\n"]), limit=MiB)) == 35
        assert run(read_all(other, LOG)) == text + b"line 5\n"
    finally:
        other.close()
    assert run(backend.append(LOG, 35, chunks([b"line 6\n"]), limit=MiB)) == 42


def test_log_limit_leaves_the_size_unchanged(s3_server: S3Server, bucket: str, backend: S3Backend) -> None:
    assert run(backend.append(LOG, 0, chunks([b"a" * 60]), limit=100)) == 60
    with pytest.raises(TooLarge):
        run(backend.append(LOG, 60, chunks([b"b" * 30, b"c" * 30]), limit=100))
    with pytest.raises(TooLarge):
        run(backend.append(LOG, 60, Body(3 * PART_SIZE).stream(), limit=2 * PART_SIZE))
    assert run(backend.stat(LOG)) == Stored(key=LOG, size=60, sha256="")
    assert objects(s3_server, bucket) == [f"{LOG}.parts/{0:020d}"]


def test_an_interrupted_append_keeps_what_arrived(backend: S3Backend) -> None:
    body = Body(3000, chunk=1000, fail_after=2000)
    with pytest.raises(ConnectionResetError):
        run(backend.append(LOG, 0, body.stream(), limit=MiB))
    # The writer resumes from the stored size, as after any error.
    assert run(backend.stat(LOG)) == Stored(key=LOG, size=2000, sha256="")
    assert run(backend.append(LOG, 1000, chunks([body.data[1000:]]), limit=MiB)) == 3000
    assert run(read_all(backend, LOG)) == body.data


def test_delete_prefix_and_list_prefixes(s3_server: S3Server, bucket: str, backend: S3Backend) -> None:
    build = "builds/ns/b/uid-1/"
    other = "builds/ns/c/uid-2/"
    for key in (f"{build}1/artifacts/a.apk", f"{build}2/artifacts/a.apk", f"{other}1/artifacts/x.ipa"):
        run(backend.put(key, chunks([b"data"]), limit=MiB))
    run(backend.append(f"{build}2/log", 0, chunks([b"log\n"]), limit=MiB))
    run(backend.append(f"{build}2/log", 4, chunks([b"more\n"]), limit=MiB))
    run(backend.put("sources/ns/abc.tar.gz", chunks([b"src"]), limit=MiB))

    assert prefixes(backend, "") == ["builds/", "sources/"]
    assert prefixes(backend, "builds/ns/") == ["builds/ns/b/", "builds/ns/c/"]
    assert prefixes(backend, "builds/ns/b/") == ["builds/ns/b/uid-1/"]
    assert prefixes(backend, "builds/none/") == []

    assert run(backend.delete_prefix(build)) == 4  # two artifacts and the log's two parts
    assert run(backend.stat(f"{build}2/log")) is None
    assert prefixes(backend, "builds/ns/") == ["builds/ns/c/"]
    assert run(backend.delete_prefix(build)) == 0
    assert objects(s3_server, bucket) == [f"{other}1/artifacts/x.ipa", "sources/ns/abc.tar.gz"]


def test_a_key_prefix_keeps_everything_under_it(s3_server: S3Server, bucket: str) -> None:
    backend = S3Backend(s3_server.settings(bucket=bucket, prefix="farm/a/"))
    try:
        run(backend.put(KEY, chunks([b"data"]), limit=MiB))
        run(backend.append(LOG, 0, chunks([b"log"]), limit=MiB))
        assert run(read_all(backend, KEY)) == b"data"
        assert prefixes(backend, "") == ["builds/"]
        url = backend.presigned_get(KEY, 60)
        assert url is not None
        assert f"/{bucket}/farm/a/{KEY}?" in url
    finally:
        backend.close()
    assert objects(s3_server, bucket) == [f"farm/a/{KEY}", f"farm/a/{LOG}.parts/{0:020d}"]


def test_reads_while_a_log_is_appended_see_a_consistent_prefix(backend: S3Backend) -> None:
    lines = [f"line {i}\n".encode() for i in range(15)]
    text = b"".join(lines)

    async def scenario() -> list[bytes]:
        done = asyncio.Event()
        seen: list[bytes] = []

        async def writer() -> None:
            size = 0
            for line in lines:
                size = await backend.append(LOG, size, chunks([line]), limit=MiB)
            done.set()

        async def follower() -> None:
            while not done.is_set():
                if await backend.stat(LOG) is not None:
                    seen.append(await read_all(backend, LOG))

        await asyncio.gather(writer(), follower(), follower())
        return seen

    for snapshot in run(scenario()):
        assert text.startswith(snapshot)
    assert run(backend.stat(LOG)) == Stored(key=LOG, size=len(text), sha256="")
    assert run(read_all(backend, LOG)) == text


def test_sweep_temporary_removes_only_old_temporary_uploads(
    s3_server: S3Server, bucket: str, backend: S3Backend
) -> None:
    client = s3_server.client()
    client.put_object(bucket, ".incoming/left-by-a-crash", io.BytesIO(b"partial"), 7)
    run(backend.put(KEY, chunks([b"data"]), limit=MiB))
    now = time.time()
    assert run(backend.sweep_temporary(3600, now)) == 0  # too young: may be a running upload
    assert run(backend.sweep_temporary(3600, now + 7200)) == 1
    assert objects(s3_server, bucket) == [KEY]


def test_a_store_failing_mid_upload_is_a_one_line_storage_error(tmp_path: Path) -> None:
    with running_s3_server(tmp_path) as server:
        backend = S3Backend(server.settings(read_timeout=5.0))
        killed = False

        async def body() -> AsyncIterator[bytes]:
            nonlocal killed
            for i in range(4):
                if i == 2:
                    os.killpg(server.pid, signal.SIGKILL)  # the store dies after the first part
                    killed = True
                yield os.urandom(PART_SIZE // 2)

        try:
            with pytest.raises(StorageError) as error:
                run(backend.put(KEY, body(), limit=64 * MiB))
        finally:
            backend.close()
    assert killed
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("S3 could not upload")
