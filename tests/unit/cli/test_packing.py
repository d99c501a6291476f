"""Packing a project for `buildfarm submit`: which files go in (.gitignore, nested .gitignore, .easignore
replacing them, .git never), symbolic links that escape are refused, and the archive is byte-for-byte
the same for the same tree."""

import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest

from buildfarm.cli.packing import PackError, entries, pack


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def names(root: Path) -> list[str]:
    return [entry.path for entry in entries(root)]


PROJECT = {
    "app.json": "{}",
    "package.json": "{}",
    "src/index.js": "x",
    "src/debug.log": "log",
    "node_modules/react/index.js": "r",
    ".git/HEAD": "ref",
    "android/app/build/out.apk": "apk",
    "android/app/src/Main.kt": "k",
    "android/.gitignore": "app/build/\n",
    ".gitignore": "node_modules/\n*.log\n!keep.log\n",
    "keep.log": "kept",
    "ios/Pods/x": "p",
}


CASES = [
    pytest.param({}, ["ios/Pods/x", "src/index.js", "keep.log", "android/app/src/Main.kt"], id="gitignore"),
    pytest.param({".easignore": "ios/\n"}, ["node_modules/react/index.js", "src/debug.log"], id="easignore"),
]


@pytest.mark.parametrize(("extra", "want_in"), CASES)
def test_ignore_rules(tmp_path: Path, extra: dict[str, str], want_in: list[str]) -> None:
    root = tree(tmp_path / "p", PROJECT | extra)
    packed = names(root)
    for name in want_in:
        assert name in packed
    assert not any(name.startswith(".git/") for name in packed)
    if extra:  # .easignore replaces every .gitignore
        assert "ios/Pods/x" not in packed
        assert "android/app/build/out.apk" in packed
    else:
        for name in ("src/debug.log", "node_modules/react/index.js", "android/app/build/out.apk"):
            assert name not in packed


def test_deeper_gitignore_overrides(tmp_path: Path) -> None:
    root = tree(
        tmp_path / "p",
        {".gitignore": "*.txt\n", "a/.gitignore": "!keep.txt\n", "a/keep.txt": "", "a/b.txt": ""},
    )
    assert names(root) == [".gitignore", "a/.gitignore", "a/keep.txt"]


def test_an_ignored_directory_cannot_be_reincluded(tmp_path: Path) -> None:
    root = tree(tmp_path / "p", {".gitignore": "build/\n!build/keep\n", "build/keep": ""})
    assert names(root) == [".gitignore"]


def test_symlinks_inside_are_kept_outside_refused(tmp_path: Path) -> None:
    root = tree(tmp_path / "p", {"src/a.js": "a"})
    (root / "link.js").symlink_to("src/a.js")
    archive = io.BytesIO()
    pack(root, archive)
    with tarfile.open(fileobj=io.BytesIO(archive.getvalue())) as tar:
        link = tar.getmember("link.js")
        assert link.issym()
        assert link.linkname == "src/a.js"
    for target in ("../secret", "/etc/passwd", "src/../../secret"):
        (root / "bad").unlink(missing_ok=True)
        (root / "bad").symlink_to(target)
        with pytest.raises(PackError, match="outside the project"):
            entries(root)
    # Through a link inside: the textual path stays inside, the real one does not.
    (root / "bad").unlink()
    (tmp_path / "outside").mkdir()
    (root / "up").symlink_to("../outside")
    (root / ".gitignore").write_text("up\n")  # ignored itself, yet another link goes through it
    (root / "bad").symlink_to("up/x")
    with pytest.raises(PackError, match="bad is a symbolic link"):
        entries(root)


def test_an_ignored_escaping_link_is_fine(tmp_path: Path) -> None:
    root = tree(tmp_path / "p", {".easignore": "bad\n", "a": "a"})
    (root / "bad").symlink_to("/etc/passwd")
    assert names(root) == [".easignore", "a"]


def test_the_archive_is_deterministic(tmp_path: Path) -> None:
    files = {"b.txt": "b", "a/z.sh": "#!/bin/sh\n", "a/y.txt": "y"}
    one = tree(tmp_path / "one", files)
    os.chmod(one / "a/z.sh", 0o755)
    first = io.BytesIO()
    size, sha, count = pack(one, first)
    assert (size, sha, count) == (len(first.getvalue()), hashlib.sha256(first.getvalue()).hexdigest(), 3)
    # The same content created in another order, at another time, with other modes, elsewhere.
    two = tree(tmp_path / "two", dict(reversed(list(files.items()))))
    os.chmod(two / "a/z.sh", 0o700)
    os.chmod(two / "b.txt", 0o600)
    os.utime(two / "b.txt", (1, 1))
    second = io.BytesIO()
    assert pack(two, second)[1] == sha
    with tarfile.open(fileobj=io.BytesIO(first.getvalue())) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["a/y.txt", "a/z.sh", "b.txt"]
    assert {(m.mode, m.mtime, m.uid, m.uname) for m in members if m.name != "a/z.sh"} == {(0o644, 0, 0, "")}
    assert next(m for m in members if m.name == "a/z.sh").mode == 0o755


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(PackError, match="is not a directory"):
        entries(tmp_path / "missing")
