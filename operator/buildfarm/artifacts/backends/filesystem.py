"""The filesystem backend: keys are paths under a root directory (a PersistentVolume in a cluster).

- Writes go to `<root>/.tmp/<random>` and are renamed into place when complete and verified, so a partial
  or refused upload is never visible; rename replaces, so the same content again is idempotent.
- Memory stays constant: chunks are gathered into at most WRITE_BUFFER bytes, then hashed and written off
  the event loop; reads go out in READ_CHUNK pieces.
- The sha256 of a put is kept beside the data in `<root>/.meta/<key>` with the file's inode and size, so
  `stat` never rereads gigabytes, and a stale record (another file renamed in since) is never believed.
- No path component may be a symlink: every directory is walked with lstat, and files open with
  O_NOFOLLOW, so a link planted in the volume cannot send a read or write elsewhere.
- Log appends are serialized per key in this process; the fs backend serves from one replica.
"""

import asyncio
import contextlib
import errno
import hashlib
import os
import shutil
import stat as stat_module
import uuid
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path
from typing import Final, TypeVar

from buildfarm.artifacts.backends.base import (
    DigestMismatch,
    OffsetMismatch,
    StorageError,
    Stored,
    TooLarge,
)
from buildfarm.artifacts.keys import BadName, check_key, check_prefix

WRITE_BUFFER: Final = 1024 * 1024
READ_CHUNK: Final = 256 * 1024
TMP_DIR: Final = ".tmp"
META_DIR: Final = ".meta"
_NOFOLLOW: Final = getattr(os, "O_NOFOLLOW", 0)

T = TypeVar("T")


class FilesystemBackend:
    name = "filesystem"

    def __init__(self, root: Path) -> None:
        self.root = root
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    def presigned_get(self, key: str, expires_seconds: int) -> str | None:
        return None  # The service streams files itself.

    # Writing

    async def put(
        self,
        key: str,
        chunks: AsyncIterator[bytes],
        *,
        limit: int,
        expected_sha256: str | None = None,
    ) -> Stored:
        """Errors of `chunks` (the client went away) propagate as they are, after the temporary file
        is removed; errors of the disk become StorageError."""
        path = self._path(key)
        tmp = await _disk(key, self._new_tmp)
        digest = hashlib.sha256()
        size = 0
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW
            fd = await _disk(key, partial(os.open, tmp, flags, 0o640))
            try:
                buffer = bytearray()
                async for chunk in chunks:
                    size += len(chunk)
                    if size > limit:
                        raise TooLarge(f"the upload exceeds the limit of {limit} bytes")
                    buffer += chunk
                    if len(buffer) >= WRITE_BUFFER:
                        data, buffer = bytes(buffer), bytearray()
                        await _disk(key, partial(_hash_and_write, fd, digest, data))
                await _disk(key, partial(_hash_and_write, fd, digest, bytes(buffer)))
                await _disk(key, partial(os.fsync, fd))
            finally:
                os.close(fd)
            sha = digest.hexdigest()
            if expected_sha256 is not None and sha != expected_sha256:
                raise DigestMismatch(f"the content's sha256 is {sha}, not the expected {expected_sha256}")
            await _disk(key, partial(self._publish, tmp, path, key, size, sha))
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return Stored(key, size, sha)

    def _publish(self, tmp: Path, path: Path, key: str, size: int, sha: str) -> None:
        self._make_parents(path)
        os.replace(tmp, path)
        meta = self._meta_path(key)
        self._make_parents(meta)
        meta_tmp = self._new_tmp()
        meta_tmp.write_text(f"{_identity(os.lstat(path))} {sha}\n")
        os.replace(meta_tmp, meta)

    async def append(self, key: str, offset: int, chunks: AsyncIterator[bytes], *, limit: int) -> int:
        path = self._path(key)
        # One lock per log being written, dropped when its last user leaves: the table stays small.
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                return await self._append(path, key, offset, chunks, limit)
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    async def _append(
        self, path: Path, key: str, offset: int, chunks: AsyncIterator[bytes], limit: int
    ) -> int:
        def open_log() -> int:
            self._make_parents(path)
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | _NOFOLLOW, 0o640)

        fd = await _disk(key, open_log)
        try:
            start = os.fstat(fd).st_size
            if offset > start:
                raise OffsetMismatch(start)
            skip = start - offset  # Bytes the caller sent before and we already hold (a retry).
            size = start
            buffer = bytearray()
            try:
                async for chunk in chunks:
                    if skip:
                        dropped = min(skip, len(chunk))
                        chunk, skip = chunk[dropped:], skip - dropped
                    size += len(chunk)
                    if size > limit:
                        raise TooLarge(f"the log exceeds the limit of {limit} bytes")
                    buffer += chunk
                    if len(buffer) >= WRITE_BUFFER:
                        data, buffer = bytes(buffer), bytearray()
                        await _disk(key, partial(_write_all, fd, data))
            except TooLarge:
                await _disk(key, partial(os.ftruncate, fd, start))  # A refused request writes nothing.
                raise
            finally:
                # The client went away (or finished): keep what arrived, in order; it resumes at the size.
                if buffer and size <= limit:
                    await _disk(key, partial(_write_all, fd, bytes(buffer)))
            return os.fstat(fd).st_size
        finally:
            os.close(fd)

    # Reading

    async def stat(self, key: str) -> Stored | None:
        return await _off_loop(lambda: self._stat(key))

    def _stat(self, key: str) -> Stored | None:
        path = self._path(key)
        if not self._parents_are_directories(path):
            return None
        try:
            info = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat_module.S_ISREG(info.st_mode):
            return None
        try:
            recorded, _, sha = self._meta_path(key).read_text().strip().rpartition(" ")
        except (FileNotFoundError, NotADirectoryError):
            return Stored(key, info.st_size, "")  # Written by append (a log): no digest.
        if recorded != _identity(info):
            return Stored(key, info.st_size, self._digest(path))  # Changed behind our back.
        return Stored(key, info.st_size, sha)

    def _digest(self, path: Path) -> str:
        digest = hashlib.sha256()
        with path.open("rb") as file:
            while block := file.read(READ_CHUNK):
                digest.update(block)
        return digest.hexdigest()

    async def read(self, key: str, offset: int = 0) -> AsyncIterator[bytes]:
        path = self._path(key)
        if not await _off_loop(lambda: self._parents_are_directories(path)):
            raise KeyError(key)
        try:
            fd = await _off_loop(lambda: os.open(path, os.O_RDONLY | _NOFOLLOW))
        except (FileNotFoundError, NotADirectoryError):
            raise KeyError(key) from None
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise KeyError(key) from None
            raise StorageError(f"reading {key} failed: {error.strerror or error}") from None
        try:
            position = offset
            while True:
                block = await _off_loop(partial(os.pread, fd, READ_CHUNK, position))
                if not block:
                    return
                position += len(block)
                yield block
        finally:
            os.close(fd)

    # Retention

    async def delete_prefix(self, prefix: str) -> int:
        check_prefix(prefix)
        return await _off_loop(lambda: self._delete_prefix(prefix))

    def _delete_prefix(self, prefix: str) -> int:
        directory = self._path(prefix[:-1])
        count = 0
        if directory.is_dir() and not directory.is_symlink():
            count = sum(len(files) for _, _, files in os.walk(directory))
            shutil.rmtree(directory)
        meta = self._meta_path(prefix[:-1])
        if meta.is_dir() and not meta.is_symlink():
            shutil.rmtree(meta)
        return count

    async def list_prefixes(self, prefix: str) -> AsyncIterator[str]:
        check_prefix(prefix)
        directory = self._path(prefix[:-1])
        try:
            entries = await _off_loop(lambda: sorted(os.scandir(directory), key=lambda e: e.name))
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            if entry.is_dir(follow_symlinks=False) and not entry.name.startswith("."):
                yield f"{prefix}{entry.name}/"

    async def sweep_temporary(self, older_than_seconds: float, now: float) -> int:
        """Remove temporary files left by a crash mid-upload; returns how many."""

        def sweep() -> int:
            removed = 0
            with contextlib.suppress(FileNotFoundError):
                for entry in os.scandir(self.root / TMP_DIR):
                    if entry.stat(follow_symlinks=False).st_mtime < now - older_than_seconds:
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(entry.path)
                            removed += 1
            return removed

        return await _off_loop(sweep)

    # Paths

    def _path(self, key: str) -> Path:
        try:
            check_key(key)
        except BadName as error:
            raise StorageError(str(error)) from None
        return self.root.joinpath(*key.split("/"))

    def _meta_path(self, key: str) -> Path:
        return self.root.joinpath(META_DIR, *key.split("/"))

    def _new_tmp(self) -> Path:
        directory = self.root / TMP_DIR
        directory.mkdir(mode=0o750, exist_ok=True)
        return directory / uuid.uuid4().hex

    def _parents_are_directories(self, path: Path) -> bool:
        """Whether every directory between the root and `path` exists and none is a symlink."""
        current = self.root
        for part in path.relative_to(self.root).parts[:-1]:
            current = current / part
            try:
                if not stat_module.S_ISDIR(os.lstat(current).st_mode):
                    return False
            except (FileNotFoundError, NotADirectoryError):
                return False
        return True

    def _make_parents(self, path: Path) -> None:
        """Create the directories above `path`, refusing any that is a symlink (or not a directory)."""
        current = self.root
        for part in path.relative_to(self.root).parts[:-1]:
            current = current / part
            try:
                info = os.lstat(current)
            except FileNotFoundError:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(current, 0o750)
                info = os.lstat(current)
            if not stat_module.S_ISDIR(info.st_mode):
                raise StorageError(f"{current} is not a directory (a symlink or file is in the way)")


def _identity(info: os.stat_result) -> str:
    """What changes whenever a file is replaced or rewritten (an inode number alone can be reused)."""
    return f"{info.st_ino} {info.st_size} {info.st_mtime_ns}"


def _hash_and_write(fd: int, digest: "hashlib._Hash", data: bytes) -> None:
    digest.update(data)
    _write_all(fd, data)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


async def _off_loop(call: Callable[[], T]) -> T:
    return await asyncio.to_thread(call)


async def _disk(key: str, call: Callable[[], T]) -> T:
    """Run a file operation off the event loop; its OSError becomes a one-line StorageError."""
    try:
        return await asyncio.to_thread(call)
    except OSError as error:
        raise StorageError(f"storing {key} failed: {error.strerror or error}") from None
