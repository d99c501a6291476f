"""`buildfarm submit [DIR]`: pack the project (cli/packing.py), upload the archive to the artifact service,
create the Build, print its name; with `--wait`, follow its log until it finishes."""

import json
import re
import secrets
import sys
import tempfile
from pathlib import Path
from typing import Any, Final

import click

from buildfarm import constants as c
from buildfarm.api.builds import Build, BuildPhase
from buildfarm.cli.following import follow_log
from buildfarm.cli.packing import PackError, entries, pack_to
from buildfarm.cli.service import Progress, artifact_client, artifacts_options, human_size
from buildfarm.cli.session import (
    EXIT_BUILD_FAILED,
    AdminCommand,
    BuildFailed,
    CommandError,
    cluster_options,
    emit,
    exit_codes,
    format_option,
    namespace_option,
    note,
    session,
)
from buildfarm.kube.builds_admin import AdminGateway, AlreadyExists

NAME_TRIES: Final = 5
SLUG_MAX: Final = 40


@click.command("submit", cls=AdminCommand, epilog=exit_codes(EXIT_BUILD_FAILED))
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--platform", type=click.Choice(["ios", "android"]), required=True, help="The target platform.")
@click.option("--profile", metavar="PROFILE", help="The eas.json build profile. [default: the project's]")
@click.option("--priority", type=click.IntRange(-1000, 1000), default=0, show_default=True)
@click.option(
    "--credentials", "secret", metavar="SECRET", help="A Secret in the namespace with signing credentials."
)
@click.option("--name", metavar="NAME", help="The Build's name. [default: <app>-<platform>-<random>]")
@click.option(
    "--wait", is_flag=True, help="Follow the build's log until it finishes; exit 5 unless it succeeds."
)
@namespace_option
@format_option
@artifacts_options
@cluster_options
def submit_command(
    directory: Path,
    platform: str,
    profile: str | None,
    priority: int,
    secret: str | None,
    name: str | None,
    wait: bool,
    namespace: str | None,
    output: str | None,
    artifacts_url: str | None,
    artifacts_ca: Path | None,
    kubeconfig: Path | None,
    context: str | None,
) -> None:
    """Pack the project in DIRECTORY (default: here), upload it, and create a Build of it.

    Files ignored by the project's .gitignore files are left out; a .easignore at the project's root
    replaces them (as EAS does). Prints the Build's name (with -o, the Build).
    """
    with session(kubeconfig, context) as s, artifact_client(s, artifacts_url, artifacts_ca) as client:
        ns = s.namespace(namespace)
        try:
            listed = entries(directory)
        except PackError as error:
            raise CommandError(str(error)) from None
        total = sum(entry.size for entry in listed)
        with tempfile.TemporaryDirectory(prefix="buildfarm-submit-") as tmp:
            archive = Path(tmp) / "source.tar.gz"
            try:
                with Progress(f"Packing {len(listed)} files", total) as progress:
                    packed = pack_to(directory, archive, progress)
            except PackError as error:
                raise CommandError(str(error)) from None
            note(f"Packed {packed.files} files into {human_size(packed.size)} (sha256 {packed.sha256}).")
            with Progress("Uploading", packed.size) as progress:
                stored = client.upload_source(ns, archive, packed.sha256, progress)
        body = build_body(
            name or "",
            platform=platform,
            profile=profile,
            priority=priority,
            secret=secret,
            url=stored.url,
            sha256=stored.sha256,
        )
        build = _create(s.admin, ns, body, slug=_slug(directory), platform=platform, fixed=bool(name))
        if output:
            emit(build, output)
        else:
            click.echo(build.name)
        if not wait:
            return
        final = follow_log(s, client, ns, build.name, sys.stderr.buffer)
        phase = final.status.phase
        note(f"build {ns}/{build.name} {phase}: {final.status.reason} {final.status.message}".strip())
        if phase != BuildPhase.SUCCEEDED:
            raise BuildFailed(f"build {ns}/{build.name} ended {phase} ({final.status.reason})")


def build_body(
    name: str,
    *,
    platform: str,
    profile: str | None,
    priority: int,
    secret: str | None,
    url: str,
    sha256: str,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "platform": platform,
        "priority": priority,
        "source": {"archive": {"url": url, "sha256": sha256}},
    }
    if profile:
        spec["profile"] = profile
    if secret:
        spec["credentials"] = {"secretName": secret}
    return {
        "apiVersion": f"{c.GROUP}/{c.VERSION}",
        "kind": "Build",
        "metadata": {"name": name},
        "spec": spec,
    }


def _create(
    admin: AdminGateway, namespace: str, body: dict[str, Any], *, slug: str, platform: str, fixed: bool
) -> Build:
    """Create the Build; a generated name that is taken is drawn again (a given one is an error)."""
    for _ in range(NAME_TRIES):
        if not fixed:
            body["metadata"]["name"] = f"{slug}-{platform}-{secrets.token_hex(3)}"
        try:
            return admin.create_build(namespace, body)
        except AlreadyExists as error:
            if fixed:
                raise CommandError(f"{error}: choose another --name") from None
    raise CommandError(f"no free build name after {NAME_TRIES} tries: pass --name")


def _slug(directory: Path) -> str:
    """The app's slug (app.json expo.slug or name, else package.json name, else the directory's name),
    made a name part: lowercase letters, digits and '-'."""
    candidates = []
    for file, keys in (
        ("app.json", ("expo", "slug")),
        ("app.json", ("expo", "name")),
        ("package.json", ("name",)),
    ):
        try:
            value: Any = json.loads((directory / file).read_text())
            for key in keys:
                value = value.get(key) if isinstance(value, dict) else None
        except (OSError, ValueError):
            value = None
        if isinstance(value, str):
            candidates.append(value)
    candidates.append(directory.resolve().name)
    for candidate in candidates:
        slug = re.sub(r"[^a-z0-9]+", "-", candidate.lower()).strip("-")[:SLUG_MAX].strip("-")
        if slug:
            return slug
    return "app"
