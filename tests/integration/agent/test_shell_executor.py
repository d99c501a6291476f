"""The shell executor on its own (no API server): git sources at a revision, refused URLs and revisions,
safe archive extraction. A local bare repository is reached through file://, which only the test-only
setting allow_file_sources permits; Builds themselves cannot name file:// URLs."""

import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from buildfarm.agent.executors.base import Job
from buildfarm.agent.executors.shell import ShellExecutor
from buildfarm.agent.logs import BuildLog
from buildfarm.agent.process import Processes
from buildfarm.agent.settings import AgentSettings
from buildfarm.agent.sources import SourceError, extract, git_env
from buildfarm.api.builds import Build, BuildSource
from tests.factories import build

# Writes the checked-out VERSION file to the artifact: proves which revision was built.
COMMAND = "sh -c 'cat VERSION > \"$1\"' sh {artifact}"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, str]]:
    """A bare repository's file:// URL and the VERSION at each revision name."""
    work = tmp_path_factory.mktemp("repo")
    git(work, "init", "-q", "-b", "main")
    versions: dict[str, str] = {}
    for version in ("1", "2"):
        (work / "VERSION").write_text(version)
        git(work, "add", "VERSION")
        git(work, "commit", "-q", "-m", f"v{version}")
        versions[git(work, "rev-parse", "HEAD")] = version
    git(work, "tag", "v2")
    git(work, "checkout", "-q", "-b", "feature", "HEAD~1")
    (work / "VERSION").write_text("feature")
    git(work, "commit", "-q", "-am", "feature")
    git(work, "checkout", "-q", "main")
    bare = tmp_path_factory.mktemp("bare") / "app.git"
    git(work.parent, "clone", "-q", "--bare", str(work), str(bare))
    return bare.as_uri(), versions | {"main": "2", "HEAD": "2", "v2": "2", "feature": "feature"}


def run(tmp_path: Path, source: dict[str, object], *, allow_file: bool = True) -> tuple[int, Path, str]:
    settings = AgentSettings(
        worker_name="w", command=COMMAND, allow_file_sources=allow_file, work_dir=tmp_path / "agent"
    )
    spec = build("b", platform="android", phase="Running", worker="w", attempt=1)
    target = Build.model_validate(
        spec.model_dump(by_alias=True) | {"spec": spec.spec.model_dump(by_alias=True) | {"source": source}}
    )
    assert isinstance(target.spec.source, BuildSource)
    workspace = tmp_path / "ws"
    workspace.mkdir()
    log = BuildLog(tmp_path / "b.log")
    processes = Processes(log, {"PATH": "/usr/bin:/bin", **git_env(allow_file)}, kill_grace=1)
    try:
        outcome = ShellExecutor(settings).execute(Job(target, workspace, log, processes))
    finally:
        log.close()
    return outcome.exit_code, workspace / "out" / "b.apk", (tmp_path / "b.log").read_text()


@pytest.mark.parametrize("revision", ["main", "HEAD", "v2", "feature", "first-commit"])
def test_git_checks_out_the_revision(tmp_path: Path, repo: tuple[str, dict[str, str]], revision: str) -> None:
    url, versions = repo
    if revision == "first-commit":
        revision = next(sha for sha, version in versions.items() if version == "1")
    code, artifact, _ = run(tmp_path, {"git": {"url": url, "revision": revision}})
    assert code == 0
    assert artifact.read_text() == versions[revision]


@pytest.mark.parametrize(
    ("source", "allow_file", "want_error"),
    [
        pytest.param({"git": {"url": "REPO"}}, False, "is not allowed", id="file-url-without-the-setting"),
        pytest.param(
            {"git": {"url": "ext::sh -c touch% /tmp/x"}}, True, "is not allowed", id="ext-transport"
        ),
        pytest.param(
            {"git": {"url": "REPO", "revision": "--upload-pack=touch /tmp/x"}},
            True,
            "is not a branch, tag or commit",
            id="option-as-revision",
        ),
        pytest.param(
            {"git": {"url": "REPO", "revision": "$(touch PWNED)"}}, True, "is not in", id="shell-as-revision"
        ),
        pytest.param(
            {"archive": {"url": "http://example.com/app.tar.gz"}}, True, "is not allowed", id="plain-http"
        ),
    ],
)
def test_refused_sources(
    tmp_path: Path,
    repo: tuple[str, dict[str, str]],
    source: dict[str, dict[str, str]],
    allow_file: bool,
    want_error: str,
) -> None:
    kind = next(iter(source))
    source = {kind: {k: v.replace("REPO", repo[0]) for k, v in source[kind].items()}}
    with pytest.raises(SourceError, match=want_error):
        run(tmp_path, source, allow_file=allow_file)
    assert not list(tmp_path.rglob("PWNED"))


def test_an_archive_cannot_write_outside_its_directory(tmp_path: Path) -> None:
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("../escaped")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    (tmp_path / "src").mkdir()
    with pytest.raises(SourceError, match="cannot be extracted"):
        extract(evil, tmp_path / "src")
    assert not (tmp_path / "escaped").exists()
