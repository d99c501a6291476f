"""Packing a project directory into the source archive `buildfarm submit` uploads.

What goes in, as EAS CLI decides it: every file not ignored by the project's `.gitignore` files (each
applies below its own directory, deeper ones win, `!` re-includes), or, if the project has a
`.easignore` at its root, by that file alone (it replaces every .gitignore, as in EAS). `.git/` is never
packed. Rules are git's, through `pathspec`; an ignored directory is not entered, so nothing under it can
be re-included (as in git).

Symbolic links stay links when they point inside the project; one that points outside (or at an absolute
path) is refused, because the archive must not depend on the packing machine. Other special files
(sockets, fifos, devices) are skipped.

The archive is deterministic: entries sorted by path, every mtime 0, owner 0/0 without names, mode 0644
or 0755 (executable bit kept), gzip header without name or time. The same tree always gives the same
bytes, hence the same sha256, and the service stores it once.
"""

import gzip
import hashlib
import os
import stat
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

import pathspec

EASIGNORE: Final = ".easignore"
GITIGNORE: Final = ".gitignore"
NEVER: Final = frozenset({".git"})
CHUNK: Final = 1024 * 1024


class PackError(Exception):
    """The project cannot be packed; the message is one line saying what to change."""


@dataclass(frozen=True)
class Entry:
    path: str  # relative, POSIX separators
    kind: str  # "file" or "symlink"
    size: int = 0
    target: str = ""  # a symlink's target, relative
    executable: bool = False


@dataclass(frozen=True)
class Packed:
    path: Path
    size: int
    sha256: str
    files: int


class _Rules:
    """The ignore rules in force in one directory: (directory relative to the root, spec) pairs, the
    shallowest first."""

    def __init__(self, specs: tuple[tuple[str, pathspec.GitIgnoreSpec], ...]) -> None:
        self.specs = specs

    def ignored(self, rel: str, is_dir: bool) -> bool:
        verdict = False
        for base, spec in self.specs:
            if base and not rel.startswith(base + "/"):
                continue
            inner = rel[len(base) + 1 :] if base else rel
            result = spec.check_file(inner + "/" if is_dir else inner)
            if result.include is not None:
                verdict = result.include  # deeper files override shallower ones
        return verdict

    def below(self, directory: Path, rel: str, use_gitignore: bool) -> "_Rules":
        if not use_gitignore:
            return self
        spec = _read_spec(directory / GITIGNORE)
        return _Rules((*self.specs, (rel, spec))) if spec is not None else self


def _read_spec(path: Path) -> pathspec.GitIgnoreSpec | None:
    if path.is_symlink() or not path.is_file():
        return None
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as error:
        raise PackError(f"cannot read {path}: {error.strerror or error}") from None
    return pathspec.GitIgnoreSpec.from_lines(lines)


def entries(root: Path) -> list[Entry]:
    """What the archive of `root` holds, sorted by path."""
    root = root.resolve()
    if not root.is_dir():
        raise PackError(f"{root} is not a directory: give the project's directory (default: the current one)")
    easignore = _read_spec(root / EASIGNORE)
    rules = _Rules((("", easignore),)) if easignore is not None else _Rules(())
    found: list[Entry] = []
    _walk(root, root, "", rules.below(root, "", easignore is None), easignore is None, found)
    return sorted(found, key=lambda entry: entry.path)


def _walk(
    root: Path, directory: Path, rel: str, rules: _Rules, use_gitignore: bool, found: list[Entry]
) -> None:
    try:
        children = sorted(os.scandir(directory), key=lambda child: child.name)
    except OSError as error:
        raise PackError(f"cannot read the directory {directory}: {error.strerror or error}") from None
    for child in children:
        child_rel = f"{rel}/{child.name}" if rel else child.name
        if child.name in NEVER:
            continue
        if child.is_symlink():
            if rules.ignored(child_rel, is_dir=False):
                continue
            found.append(_symlink(root, Path(child.path), child_rel))
        elif child.is_dir(follow_symlinks=False):
            if rules.ignored(child_rel, is_dir=True):
                continue
            path = Path(child.path)
            _walk(root, path, child_rel, rules.below(path, child_rel, use_gitignore), use_gitignore, found)
        elif child.is_file(follow_symlinks=False):
            if rules.ignored(child_rel, is_dir=False):
                continue
            info = child.stat(follow_symlinks=False)
            executable = bool(info.st_mode & stat.S_IXUSR)
            found.append(Entry(child_rel, "file", size=info.st_size, executable=executable))
        # sockets, fifos, devices: not part of a project


def _symlink(root: Path, link: Path, rel: str) -> Entry:
    target = os.readlink(link)
    resolved = Path(os.path.normpath(link.parent / target))
    real = Path(os.path.realpath(link))  # also through links the target passes on its way
    inside = not os.path.isabs(target) and all(p == root or p.is_relative_to(root) for p in (resolved, real))
    if not inside:
        raise PackError(
            f"{rel} is a symbolic link to {target}, outside the project: replace it with the file, "
            f"or ignore it in {EASIGNORE} (or {GITIGNORE})"
        )
    return Entry(rel, "symlink", target=target)


def pack(root: Path, out: IO[bytes], progress: Callable[[int], None] | None = None) -> tuple[int, str, int]:
    """Write the deterministic .tar.gz of `root` to `out`; returns (size, sha256, files)."""
    root = root.resolve()
    listed = entries(root)
    hashing = _HashingWriter(out)
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=hashing, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for entry in listed:
            info = tarfile.TarInfo(entry.path)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if entry.kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = entry.target
                info.mode = 0o777
                tar.addfile(info)
                continue
            info.mode = 0o755 if entry.executable else 0o644
            path = root / entry.path
            try:
                with path.open("rb") as file:
                    info.size = os.fstat(file.fileno()).st_size  # as it is now, not as listed
                    tar.addfile(info, _Counting(file, progress))
            except OSError as error:
                raise PackError(f"cannot read {path}: {error.strerror or error}") from None
    return hashing.size, hashing.digest.hexdigest(), len(listed)


def pack_to(root: Path, dest: Path, progress: Callable[[int], None] | None = None) -> Packed:
    with dest.open("wb") as out:
        size, sha256, files = pack(root, out, progress)
    return Packed(dest, size, sha256, files)


def total_bytes(root: Path) -> int:
    """The bytes of the files that will be packed (for a progress bar)."""
    return sum(entry.size for entry in entries(root))


class _HashingWriter:
    """A write-only file that hashes and counts what passes through it."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.out.write(data)

    def flush(self) -> None:
        self.out.flush()


class _Counting:
    """A file read by tarfile, reporting progress."""

    def __init__(self, file: IO[bytes], progress: Callable[[int], None] | None) -> None:
        self.file = file
        self.progress = progress

    def read(self, size: int = -1) -> bytes:
        data = self.file.read(size)
        if self.progress is not None and data:
            self.progress(len(data))
        return data


def iter_names(archive: Path) -> Iterator[str]:
    """The names in an archive (for tests and `--dry-run`)."""
    with tarfile.open(archive, "r:gz") as tar:
        yield from tar.getnames()
