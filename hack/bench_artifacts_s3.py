"""Benchmark of the S3 artifact backend: RSS growth and throughput of one large upload and download through
S3Backend against a local versitygw, next to a plain file copy on the same disk. Numbers, not a test.

.venv/bin/python hack/bench_artifacts_s3.py [--size-mb 1024] [--dir /path/on/the/disk/to/measure]

RSS growth is the peak resident memory of this process (the backend runs in it, as in the service)
during the operation minus the resident memory just before it, sampled every 5 ms.
"""

import argparse
import asyncio
import hashlib
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import psutil

sys.path[:0] = [str(Path(__file__).parents[1]), str(Path(__file__).parents[1] / "operator")]

from tests.support.s3 import running_s3_server  # noqa: E402

from buildfarm.artifacts.backends.s3 import S3Backend  # noqa: E402

T = TypeVar("T")
MiB = 1024 * 1024
CHUNK = 256 * 1024  # about what an HTTP server hands over per read


class PeakRss:
    """Samples this process's RSS in a thread; `growth` is the peak minus the RSS at start."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._stop = threading.Event()
        self.start = self.peak = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        return self.peak - self.start


def measure(what: str, size: int, action: Callable[[], T]) -> tuple[str, float, float, float, T]:
    with PeakRss() as rss:
        started = time.perf_counter()
        result = action()
        seconds = time.perf_counter() - started
    return what, seconds, size / MiB / seconds, rss.growth / MiB, result


async def file_chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as source:
        while chunk := source.read(CHUNK):
            yield chunk


def make_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    block = hashlib.sha256(b"bench").digest() * (MiB // 32)
    with path.open("wb") as out:
        for start in range(0, size, MiB):
            piece = block[: min(MiB, size - start)]
            digest.update(piece)
            out.write(piece)
    return digest.hexdigest()


def run(awaitable: Awaitable[T]) -> T:
    async def main() -> T:
        return await awaitable

    return asyncio.run(main())


async def download(backend: S3Backend, key: str, target: Path) -> str:
    digest = hashlib.sha256()
    with target.open("wb") as out:
        async for chunk in backend.read(key):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--dir", type=Path, default=None, help="where the files and the server's data go")
    args = parser.parse_args()
    size = args.size_mb * MiB

    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench-s3-") as scratch:
        work = Path(scratch)
        source = work / "source.bin"
        sha256 = make_file(source, size)
        copy = work / "copy.bin"
        rows = [measure("plain file copy (same disk)", size, lambda: shutil.copyfile(source, copy))]
        copy.unlink()

        with running_s3_server(work / "s3") as server:
            backend = S3Backend(server.settings())
            try:
                key = "builds/ns/bench/uid/1/artifacts/app.bin"
                src_key = "sources/ns/src.tar.gz"
                rows.append(
                    measure(
                        "S3 put, digest unknown (upload + server-side copy)",
                        size,
                        lambda: run(backend.put(key, file_chunks(source), limit=size)),
                    )
                )
                rows.append(
                    measure(
                        "S3 put, digest given (straight to the key)",
                        size,
                        lambda: run(
                            backend.put(src_key, file_chunks(source), limit=size, expected_sha256=sha256)
                        ),
                    )
                )
                target = work / "down.bin"
                rows.append(
                    measure("S3 read (download to a file)", size, lambda: run(download(backend, key, target)))
                )
            finally:
                backend.close()

    cores = psutil.cpu_count()
    print(f"{args.size_mb} MiB, parts of 8 MiB, chunks of {CHUNK // 1024} KiB, on {cores} cores\n")
    print("| operation | seconds | MiB/s | RSS growth (MiB) |")
    print("| --- | ---: | ---: | ---: |")
    for what, seconds, rate, growth, result in rows:
        checked = ""
        if isinstance(result, str) and result != sha256:
            checked = " (sha256 MISMATCH)"
        print(f"| {what}{checked} | {seconds:.1f} | {rate:.0f} | {growth:.1f} |")


if __name__ == "__main__":
    main()
