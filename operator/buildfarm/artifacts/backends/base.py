"""The storage protocol every backend implements (docs/artifacts-api.md, "Backend protocol").

Keys are the storage layout of the contract (`sources/{ns}/{sha256}.tar.gz`,
`builds/{ns}/{name}/{uid}/{attempt}/...`); the service builds and validates them, backends only map them
onto their store. A backend never makes a partial object visible: a refused or failed put leaves nothing.

`read` and `list_prefixes` are declared with plain `def` returning an AsyncIterator so that an
implementation written as an async generator (`async def ...: yield ...`) satisfies the protocol under mypy;
callers iterate them directly: `async for chunk in backend.read(key): ...`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Stored:
    key: str
    size: int
    sha256: str


class TooLarge(Exception):
    """The limit was exceeded while streaming; nothing became visible."""


class DigestMismatch(Exception):
    """The expected sha256 differs from the streamed content; nothing became visible."""


class StorageError(Exception):
    """The store failed (network, disk); the message is one line."""


class OffsetMismatch(Exception):
    """An append started past the stored end (a gap); `size` is the stored size to resume from."""

    def __init__(self, size: int) -> None:
        super().__init__(f"the offset is past the stored size {size}; resume at offset {size}")
        self.size = size


class Backend(Protocol):
    name: str  # "filesystem" | "s3"

    async def put(
        self,
        key: str,
        chunks: AsyncIterator[bytes],
        *,
        limit: int,
        expected_sha256: str | None = None,
    ) -> Stored:
        """Stream in constant memory into a temporary object, hashing; visible only when complete
        (atomic rename / S3 multipart complete or copy); the same content again is idempotent."""
        ...

    async def stat(self, key: str) -> Stored | None:
        """None if absent. For a key written by `append` the size is the total and sha256 is ""."""
        ...

    def read(self, key: str, offset: int = 0) -> AsyncIterator[bytes]:
        """Stream the object from `offset`; raises KeyError (on first iteration) if absent."""
        ...

    def presigned_get(self, key: str, expires_seconds: int) -> str | None:
        """A short-lived URL the client can fetch directly; None: the service streams it itself."""
        ...

    async def append(self, key: str, offset: int, chunks: AsyncIterator[bytes], *, limit: int) -> int:
        """Append at byte `offset` with the log semantics: offset == size appends, offset < size skips the
        overlapping bytes (a retry after a lost answer), offset > size raises OffsetMismatch.
        A request that would grow the object past `limit` raises TooLarge and leaves the size unchanged.
        Returns the new size. (S3: chunks stored as separate objects `key.parts/{offset:020d}`.)"""
        ...

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every object whose key starts with `prefix` (which ends with "/"); returns how many."""
        ...

    def list_prefixes(self, prefix: str) -> AsyncIterator[str]:
        """The immediate children of `prefix` (which ends with "/") that hold objects, as full prefixes
        ending with "/" (S3: CommonPrefixes with Delimiter "/"). E.g. "builds/" -> "builds/ns1/"."""
        ...
