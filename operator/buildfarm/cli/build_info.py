"""What a user reads about builds: `status BUILD`, `list` (a kubectl-like table), `logs BUILD [-f]
[--tail N]` and `download BUILD [FILE] [--output PATH]` (from the artifact service, sha256 checked)."""

import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from buildfarm.api.builds import Artifact, Build, BuildPhase
from buildfarm.cli.following import follow_log, tail_lines
from buildfarm.cli.service import Progress, artifact_client, artifacts_options, human_size
from buildfarm.cli.session import (
    EXIT_BUILD_FAILED,
    AdminCommand,
    BuildFailed,
    NotThere,
    Refused,
    Session,
    cluster_options,
    emit,
    exit_codes,
    format_option,
    namespace_option,
    session,
)
from buildfarm.errors import NotFound


def get_build(s: Session, namespace: str, name: str) -> Build:
    try:
        return s.admin.get_build(namespace, name)
    except NotFound:
        raise NotThere(
            f"build {name} not found in namespace {namespace} (`buildfarm list -n {namespace}` lists them)"
        ) from None


def age(since: datetime | None, now: datetime | None = None) -> str:
    """kubectl's short age: 45s, 12m, 3h, 5d."""
    if since is None:
        return "<unknown>"
    seconds = int(((now or datetime.now(UTC)) - since).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit != "m" else 1):
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def created(b: Build) -> datetime | None:
    try:
        return datetime.fromisoformat(b.created) if b.created else None
    except ValueError:
        return None


def table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


@click.command("list", cls=AdminCommand, epilog=exit_codes())
@namespace_option
@click.option("-A", "--all-namespaces", is_flag=True, help="Builds of every namespace.")
@click.option("--phase", type=click.Choice([p.value for p in BuildPhase]), help="Only builds in this phase.")
@click.option("--platform", type=click.Choice(["ios", "android"]), help="Only builds for this platform.")
@format_option
@cluster_options
def list_command(
    namespace: str | None,
    all_namespaces: bool,
    phase: str | None,
    platform: str | None,
    output: str | None,
    kubeconfig: Path | None,
    context: str | None,
) -> None:
    """List builds, oldest first: NAME, PHASE, PLATFORM, WORKER, ATTEMPT, AGE (and NAMESPACE with -A)."""
    with session(kubeconfig, context) as s:
        ns = None if all_namespaces else s.namespace(namespace)
        builds = [
            b
            for b in s.admin.list_builds(ns)
            if (phase is None or (b.status.phase or "") == phase)
            and (platform is None or b.spec.platform.value == platform)
        ]
        builds.sort(
            key=lambda b: (
                b.namespace,
                created(b) or datetime.min.replace(tzinfo=UTC),
                b.name,
            )
        )
        if output:
            emit(builds, output)
            return
        if not builds:
            click.echo(
                f"No builds found in {'any namespace' if ns is None else f'namespace {ns}'}.", err=True
            )
            return
        header = ["NAME", "PHASE", "PLATFORM", "WORKER", "ATTEMPT", "AGE"]
        rows = [
            [
                b.name,
                b.status.phase.value if b.status.phase else "",
                b.spec.platform.value,
                b.status.worker_name or "<none>",
                str(b.status.attempt),
                age(created(b)),
            ]
            for b in builds
        ]
        if ns is None:
            header.insert(0, "NAMESPACE")
            for row, b in zip(rows, builds, strict=True):
                row.insert(0, b.namespace)
        click.echo(table([header, *rows]))


@click.command("status", cls=AdminCommand, epilog=exit_codes())
@click.argument("build")
@namespace_option
@format_option
@cluster_options
def status_command(
    build: str, namespace: str | None, output: str | None, kubeconfig: Path | None, context: str | None
) -> None:
    """Show BUILD: its phase and why, its worker and attempt, times, and its artifacts."""
    with session(kubeconfig, context) as s:
        b = get_build(s, s.namespace(namespace), build)
        if output:
            emit(b, output)
            return
        st = b.status
        fields = [
            ("Name", b.name),
            ("Namespace", b.namespace),
            ("Platform", b.spec.platform.value),
            ("Profile", b.spec.profile or "<project default>"),
            ("Priority", str(b.spec.priority)),
            (
                "Phase",
                (st.phase.value if st.phase else "<not admitted yet>")
                + (f" ({st.reason})" if st.reason else ""),
            ),
            ("Message", st.message.splitlines()[0] if st.message else ""),
            ("Worker", st.worker_name or "<none>"),
            ("Attempt", f"{st.attempt} of at most {b.spec.max_attempts}"),
            ("Created", _when(created(b))),
            ("Started", _when(st.started_at)),
            ("Finished", _when(st.finished_at)),
        ]
        if b.spec.cancel:
            fields.append(("Cancel", "requested"))
        width = max(len(key) for key, _ in fields) + 2
        for key, value in fields:
            if value:
                click.echo(f"{key + ':':<{width}}{value}")
        if st.artifacts:
            click.echo("Artifacts:")
            for artifact in st.artifacts:
                click.echo(f"  {artifact.name}  {human_size(artifact.size)}  sha256:{artifact.sha256}")


def _when(moment: datetime | None) -> str:
    return f"{moment.isoformat()} ({age(moment)} ago)" if moment else ""


@click.command("logs", cls=AdminCommand, epilog=exit_codes(EXIT_BUILD_FAILED))
@click.argument("build")
@namespace_option
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until the build finishes.")
@click.option(
    "--tail", type=click.IntRange(min=0), metavar="N", help="Only the last N lines (then new ones)."
)
@click.option(
    "--attempt", type=click.IntRange(min=1), metavar="N", help="The log of attempt N. [default: the current]"
)
@click.option("--exit-code", is_flag=True, help="With -f: exit 5 if the build does not succeed.")
@artifacts_options
@cluster_options
def logs_command(
    build: str,
    namespace: str | None,
    follow: bool,
    tail: int | None,
    attempt: int | None,
    exit_code: bool,
    artifacts_url: str | None,
    artifacts_ca: Path | None,
    kubeconfig: Path | None,
    context: str | None,
) -> None:
    """Print BUILD's log from the artifact service (all of it, or its last N lines with --tail)."""
    with session(kubeconfig, context) as s, artifact_client(s, artifacts_url, artifacts_ca) as client:
        ns = s.namespace(namespace)
        b = get_build(s, ns, build)
        out = sys.stdout.buffer
        offset = 0
        if tail is not None:
            lines, offset = tail_lines(client, ns, b.name, tail, attempt)
            for line in lines:
                out.write(line)
            out.flush()
        elif not follow:
            for chunk in client.read_log(ns, b.name, offset=0, follow=False, attempt=attempt):
                out.write(chunk)
            out.flush()
        if not follow:
            return
        final = follow_log(s, client, ns, b.name, out, offset=offset, attempt=attempt)
        if exit_code and final.status.phase != BuildPhase.SUCCEEDED:
            raise BuildFailed(f"build {ns}/{b.name} ended {final.status.phase} ({final.status.reason})")


@click.command("download", cls=AdminCommand, epilog=exit_codes(4))
@click.argument("build")
@click.argument("file", required=False)
@namespace_option
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Where to write: a file (one artifact) or a directory. [default: the artifact's name, here]",
)
@artifacts_options
@cluster_options
def download_command(
    build: str,
    file: str | None,
    namespace: str | None,
    output: Path | None,
    artifacts_url: str | None,
    artifacts_ca: Path | None,
    kubeconfig: Path | None,
    context: str | None,
) -> None:
    """Download BUILD's artifacts (or only FILE) from the artifact service; each is checked against the
    sha256 recorded in the build before it is kept. Prints each path written."""
    with session(kubeconfig, context) as s:
        ns = s.namespace(namespace)
        b = get_build(s, ns, build)
        chosen = _chosen(b, file)
        many = len(chosen) > 1
        if many and output is not None and output.exists() and not output.is_dir():
            raise Refused(f"build {ns}/{b.name} has {len(chosen)} artifacts: --output must be a directory")
        with artifact_client(s, artifacts_url, artifacts_ca) as client:
            for artifact in chosen:
                dest = _destination(artifact, output, many)
                with Progress(f"Downloading {artifact.name}", artifact.size) as progress:
                    got = client.download_artifact(
                        ns, b.name, artifact.name, dest, sha256=artifact.sha256, progress=progress
                    )
                click.echo(str(got.path))


def _chosen(b: Build, file: str | None) -> list[Artifact]:
    where = f"build {b.namespace}/{b.name}"
    artifacts = b.status.artifacts
    if not artifacts:
        phase = b.status.phase.value if b.status.phase else "not admitted yet"
        raise Refused(f"{where} has no artifacts (it is {phase}): only a succeeded build has them")
    if file is not None:
        artifacts = [a for a in artifacts if a.name == file]
        if not artifacts:
            names = ", ".join(a.name for a in b.status.artifacts)
            raise NotThere(f"{where} has no artifact {file!r} (it has: {names})")
    for artifact in artifacts:
        if artifact.location.startswith("file:"):
            raise Refused(
                f"artifact {artifact.name} of {where} stayed on worker {b.status.worker_name} "
                f"({artifact.location}): its agent had no artifact service; copy it from that machine"
            )
    return artifacts


def _destination(artifact: Artifact, output: Path | None, many: bool) -> Path:
    if "/" in artifact.name or "\\" in artifact.name or artifact.name in (".", ".."):
        raise Refused(f"the artifact name {artifact.name[:100]!r} is not a plain file name: not written")
    if output is None:
        return Path(artifact.name)
    if many or output.is_dir():
        return output / artifact.name
    return output
