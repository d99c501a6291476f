"""Getting a build's source into its workspace: a git clone at the revision, or an archive downloaded,
checked against its sha256 and extracted safely. URLs come from Builds and are untrusted: git runs with
argv lists, `--` before positional values, only the https and ssh transports (file too with the test-only
setting), and the archive is extracted with tarfile's "data" filter (no absolute paths, no links out,
no devices)."""

import hashlib
import ipaddress
import os
import re
import tarfile
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Final

from buildfarm.agent.logs import BuildLog
from buildfarm.agent.process import Processes
from buildfarm.api.builds import ArchiveSource, Build, GitSource
from buildfarm.transfer.client import ArtifactClient, ArtifactError

CHUNK: Final = 1024 * 1024
DOWNLOAD_TIMEOUT: Final = 60.0  # per socket operation, not the whole download
LOOPBACK_NAMES: Final = frozenset({"localhost"})


class SourceError(Exception):
    """The source cannot be fetched; the message says why, for the build's status."""


def git_env(allow_file: bool) -> dict[str, str]:
    return {
        "GIT_ALLOW_PROTOCOL": "https:ssh" + (":file" if allow_file else ""),
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
    }


def check_url(url: str, *, archive: bool, allow_file: bool) -> None:
    """Refuse a URL the agent will not fetch: https (git: also ssh), http only to this machine (as the
    API allows), file only with the test-only setting."""
    parsed = urllib.parse.urlsplit(url)
    scheme = parsed.scheme.lower()
    if scheme == "https" or (scheme == "ssh" and not archive):
        return
    if scheme == "file" and allow_file:
        return
    if scheme == "http" and archive and _loopback(parsed.hostname or ""):
        return
    if not archive and not scheme and "@" in url and ":" in url and not url.startswith("-"):
        return  # scp-like ssh: git@github.com:org/app.git
    raise SourceError(f"the source URL {url[:200]!r} is not allowed: use https (or ssh for git)")


def _loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def fetch(
    build: Build,
    dest: Path,
    processes: Processes,
    build_log: BuildLog,
    *,
    allow_file: bool,
    max_archive_bytes: int,
    transfer: ArtifactClient | None = None,
) -> None:
    source = build.spec.source
    if source.git is not None:
        clone(source.git, dest, processes, build_log, allow_file=allow_file)
    elif source.archive is not None and transfer is not None and transfer.owns(source.archive.url):
        download_from_service(build, source.archive, dest, build_log, transfer, limit=max_archive_bytes)
    elif source.archive is not None:
        download(source.archive, dest, processes, build_log, allow_file=allow_file, limit=max_archive_bytes)
    else:
        raise SourceError("the build has no source")


def download_from_service(
    build: Build,
    archive: ArchiveSource,
    dest: Path,
    build_log: BuildLog,
    transfer: ArtifactClient,
    *,
    limit: int,
) -> None:
    """The archive from the artifact service, with the agent's credentials, for this build's attempt
    (the service checks that the build is this worker's, at this attempt)."""
    build_log.say(f"Downloading {archive.url} from the artifact service.")
    dest.mkdir(parents=True, exist_ok=True)
    target = dest.parent / "source.tar.gz"
    try:
        got = transfer.download_source(
            archive.url,
            target,
            build=build.name,
            attempt=build.status.attempt,
            limit=limit,
            sha256=archive.sha256,
        )
    except ArtifactError as error:
        raise SourceError(str(error)) from None
    build_log.say(f"Downloaded {got.size} bytes, sha256 {got.sha256}.")
    extract(target, dest)
    target.unlink()


def fetch_credentials(build: Build, dest: Path, build_log: BuildLog, transfer: ArtifactClient | None) -> None:
    """The build's signing credentials (spec.credentials) into `dest` in its workspace, one file per key,
    readable by this user only. Never logged: only the key names are said."""
    ref = build.spec.credentials
    if ref is None:
        return
    if transfer is None:
        build_log.say(
            f"The build names credentials (Secret {ref.secret_name}), but this agent has no artifact "
            "service (BUILDFARM_ARTIFACTS_URL) to fetch them from; running without them."
        )
        return
    try:
        data = transfer.credentials(build.namespace, build.name, build.status.attempt)
    except ArtifactError as error:
        raise SourceError(f"the credentials of the build cannot be fetched: {error}") from None
    dest.mkdir(mode=0o700, parents=True, exist_ok=True)
    for key, value in sorted(data.items()):
        if not re.fullmatch(r"[-._a-zA-Z0-9]+", key) or key in (".", ".."):
            raise SourceError(f"the credentials key {key[:100]!r} is not a file name a Secret allows")
        fd = os.open(dest / key, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(value)
    build_log.say(
        f"Fetched credentials: {', '.join(sorted(data)) or 'none'} (in $BUILDFARM_CREDENTIALS_DIR)."
    )


def clone(git: GitSource, dest: Path, processes: Processes, build_log: BuildLog, *, allow_file: bool) -> None:
    check_url(git.url, archive=False, allow_file=allow_file)
    if git.revision.startswith("-"):
        raise SourceError(f"the revision {git.revision[:100]!r} is not a branch, tag or commit")
    safe = ["git", "-c", "protocol.ext.allow=never", "-c", "core.hooksPath=/dev/null"]
    build_log.say(f"Cloning {git.url} at {git.revision}.")
    code = processes.run(
        [*safe, "clone", "--quiet", "--no-checkout", "--", git.url, str(dest)], cwd=dest.parent
    )
    if code != 0:
        raise SourceError(f"git clone of {git.url} failed with exit code {code}")
    # Resolve the revision to a commit id first (rev-parse takes --end-of-options, checkout does not),
    # then check out that hex id: a revision is never read as an option.
    resolved = dest.parent / "revision"
    for candidate in (git.revision, f"origin/{git.revision}"):
        with resolved.open("wb") as out:
            code = processes.run(
                [*safe, "-C", str(dest), "rev-parse", "--quiet", "--verify", "--end-of-options",
                 f"{candidate}^{{commit}}"],
                cwd=dest,
                stdout=out,
            )  # fmt: skip
        commit = resolved.read_text().strip()
        if code == 0 and re.fullmatch(r"[0-9a-f]{40,64}", commit):
            build_log.say(f"Checking out {commit}.")
            code = processes.run(
                [*safe, "-C", str(dest), "checkout", "--quiet", "--detach", commit], cwd=dest
            )
            if code != 0:
                raise SourceError(f"git checkout of {git.revision} failed with exit code {code}")
            return
    raise SourceError(f"the revision {git.revision[:100]!r} is not in {git.url}")


def download(
    archive: ArchiveSource,
    dest: Path,
    processes: Processes,
    build_log: BuildLog,
    *,
    allow_file: bool,
    limit: int,
) -> None:
    check_url(archive.url, archive=True, allow_file=allow_file)
    build_log.say(f"Downloading {archive.url}.")
    dest.mkdir(parents=True, exist_ok=True)
    target = dest.parent / "source.tar.gz"
    digest = hashlib.sha256()
    size = 0
    opener = urllib.request.build_opener(_CheckedRedirects(allow_file))
    try:
        with opener.open(archive.url, timeout=DOWNLOAD_TIMEOUT) as response, target.open("wb") as out:
            while chunk := response.read(CHUNK):
                processes.check()  # a cancel stops a download between chunks
                size += len(chunk)
                if size > limit:
                    raise SourceError(f"the archive is larger than {limit} bytes")
                digest.update(chunk)
                out.write(chunk)
    except OSError as error:  # URLError, HTTPError, timeouts
        raise SourceError(f"downloading {archive.url} failed: {error}") from None
    if archive.sha256 is not None and digest.hexdigest() != archive.sha256:
        raise SourceError(
            f"the archive's sha256 is {digest.hexdigest()}, not {archive.sha256} as the build says"
        )
    build_log.say(f"Downloaded {size} bytes, sha256 {digest.hexdigest()}.")
    extract(target, dest)
    target.unlink()


def extract(archive: Path, dest: Path) -> None:
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, OSError) as error:
        raise SourceError(f"the archive cannot be extracted: {error}") from None


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to a URL the agent would fetch in the first place."""

    def __init__(self, allow_file: bool) -> None:
        self.allow_file = allow_file

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        check_url(newurl, archive=True, allow_file=self.allow_file)
        return super().redirect_request(req, fp, code, msg, headers, newurl)
