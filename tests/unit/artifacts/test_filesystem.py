"""The filesystem backend on a temporary directory: atomic, hashed, limited, idempotent puts; log appends
with the offset semantics; keys and symlinks that could leave the root refused."""

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Awaitable, Iterable
from pathlib import Path
from typing import TypeVar

import pytest

from buildfarm.artifacts.backends.base import (
    Backend,
    DigestMismatch,
    OffsetMismatch,
    StorageError,
    Stored,
    TooLarge,
)
from buildfarm.artifacts.backends.filesystem import FilesystemBackend

T = TypeVar("T")
KEY = "builds/ns/b/uid-1/1/artifacts/app.apk"


def run(awaitable: Awaitable[T]) -> T:
    async def main() -> T:
        return await awaitable

    return asyncio.run(main())


async def chunks(parts: Iterable[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def failing(parts: Iterable[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part
    raise ConnectionResetError("the client went away")


async def read_all(backend: Backend, key: str, offset: int = 0) -> bytes:
    return b"".join([chunk async for chunk in backend.read(key, offset)])


def visible(root: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and not str(p.relative_to(root)).startswith(".")
    )


@pytest.fixture
def backend(tmp_path: Path) -> FilesystemBackend:
    return FilesystemBackend(tmp_path)


def test_put_hashes_and_stores_atomically(backend: FilesystemBackend, tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)  # crosses the write buffer
    parts = [data[i : i + 65536] for i in range(0, len(data), 65536)]

    stored = run(backend.put(KEY, chunks(parts), limit=len(data)))

    assert stored == Stored(KEY, len(data), hashlib.sha256(data).hexdigest())
    assert run(backend.stat(KEY)) == stored
    assert run(read_all(backend, KEY)) == data
    assert run(read_all(backend, KEY, offset=len(data) - 5)) == data[-5:]
    assert list((tmp_path / ".tmp").iterdir()) == []


def test_put_again_is_idempotent_and_replaces(backend: FilesystemBackend) -> None:
    first = run(backend.put(KEY, chunks([b"same"]), limit=10))
    again = run(backend.put(KEY, chunks([b"same"]), limit=10))
    other = run(backend.put(KEY, chunks([b"other"]), limit=10))

    assert first == again
    assert run(backend.stat(KEY)) == other
    assert run(read_all(backend, KEY)) == b"other"


@pytest.mark.parametrize(
    ("source", "limit", "expected", "want"),
    [
        pytest.param(chunks([b"x" * 10, b"y"]), 10, None, TooLarge, id="over the limit mid-stream"),
        pytest.param(chunks([b"data"]), 10, "0" * 64, DigestMismatch, id="sha256 mismatch"),
        pytest.param(failing([b"half"]), 10, None, ConnectionResetError, id="client went away"),
    ],
)
def test_a_failed_put_leaves_nothing(
    backend: FilesystemBackend,
    tmp_path: Path,
    source: AsyncIterator[bytes],
    limit: int,
    expected: str | None,
    want: type[Exception],
) -> None:
    with pytest.raises(want):
        run(backend.put(KEY, source, limit=limit, expected_sha256=expected))

    assert run(backend.stat(KEY)) is None
    assert visible(tmp_path) == []
    assert list((tmp_path / ".tmp").iterdir()) == []


def test_a_failed_put_keeps_the_previous_content(backend: FilesystemBackend) -> None:
    run(backend.put(KEY, chunks([b"good"]), limit=10))

    with pytest.raises(TooLarge):
        run(backend.put(KEY, chunks([b"far too long"]), limit=10))

    assert run(read_all(backend, KEY)) == b"good"


def test_log_append_offsets(backend: FilesystemBackend) -> None:
    log = "builds/ns/b/uid-1/1/log"

    assert run(backend.append(log, 0, chunks([b"abc"]), limit=100)) == 3
    assert run(backend.append(log, 0, chunks([b"abc"]), limit=100)) == 3  # a retry: nothing doubled
    assert run(backend.append(log, 1, chunks([b"b", b"cdef"]), limit=100)) == 6  # overlap skipped
    with pytest.raises(OffsetMismatch) as gap:
        run(backend.append(log, 9, chunks([b"x"]), limit=100))
    assert gap.value.size == 6
    with pytest.raises(TooLarge):
        run(backend.append(log, 6, chunks([b"g", b"h" * 100]), limit=100))
    with pytest.raises(ConnectionResetError):
        run(backend.append(log, 6, failing([b"gh"]), limit=100))  # what arrived is kept, in order

    assert run(read_all(backend, log)) == b"abcdefgh"
    assert run(backend.stat(log)) == Stored(log, 8, "")


def test_concurrent_appends_of_one_log_do_not_interleave(backend: FilesystemBackend) -> None:
    log = "builds/ns/b/uid-1/1/log"

    async def both() -> list[int | BaseException]:
        return await asyncio.gather(
            backend.append(log, 0, chunks([b"aaaa", b"bbbb"]), limit=100),
            backend.append(log, 0, chunks([b"aaaa", b"bbbb"]), limit=100),
            return_exceptions=True,
        )

    assert run(both()) == [8, 8]
    assert run(read_all(backend, log)) == b"aaaabbbb"


@pytest.mark.parametrize(
    "key",
    [
        "../escape",
        "/etc/passwd",
        "builds/../../x",
        "builds//x",
        "builds/.tmp/x",
        "a/nul\x00",
        "a/bell\x07",
        "a\\b",
    ],
)
def test_keys_that_could_leave_the_root_are_refused(
    backend: FilesystemBackend, tmp_path: Path, key: str
) -> None:
    with pytest.raises(StorageError):
        run(backend.put(key, chunks([b"x"]), limit=10))

    assert visible(tmp_path) == []


def test_symlinks_are_not_followed(backend: FilesystemBackend, tmp_path: Path) -> None:
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    (tmp_path / "builds").mkdir()
    (tmp_path / "builds" / "ns").symlink_to(outside)
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources" / "link").symlink_to(outside / "secret")

    with pytest.raises(StorageError):
        run(backend.put("builds/ns/file", chunks([b"x"]), limit=10))
    with pytest.raises(KeyError):
        run(read_all(backend, "builds/ns/secret"))
    with pytest.raises(KeyError):
        run(read_all(backend, "sources/link"))

    assert run(backend.stat("builds/ns/secret")) is None
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]


def test_delete_and_list_prefixes(backend: FilesystemBackend, tmp_path: Path) -> None:
    for key in ("builds/ns/a/u1/1/log", "builds/ns/a/u1/1/artifacts/x", "builds/ns/b/u2/1/log"):
        run(backend.put(key, chunks([b"x"]), limit=10))

    async def listed(prefix: str) -> list[str]:
        return [p async for p in backend.list_prefixes(prefix)]

    assert run(listed("builds/")) == ["builds/ns/"]
    assert run(listed("builds/ns/")) == ["builds/ns/a/", "builds/ns/b/"]
    assert run(listed("builds/none/")) == []
    assert run(backend.delete_prefix("builds/ns/a/u1/")) == 2
    assert run(backend.delete_prefix("builds/ns/a/u1/")) == 0
    assert visible(tmp_path) == ["builds/ns/b/u2/1/log"]


def test_stat_never_believes_a_stale_digest(backend: FilesystemBackend, tmp_path: Path) -> None:
    run(backend.put(KEY, chunks([b"one"]), limit=10))
    path = tmp_path / KEY
    path.unlink()
    path.write_bytes(b"two")  # replaced behind the backend's back: a new inode

    assert run(backend.stat(KEY)) == Stored(KEY, 3, hashlib.sha256(b"two").hexdigest())
