"""`buildfarm queue` and `buildfarm workers`: the farm at a glance, from the cluster itself. A plain
table, `--output json`, and `--watch` to redraw it every `--interval` until Ctrl-C."""

import json
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import click

from buildfarm.api.builds import Build
from buildfarm.api.meta import Platform
from buildfarm.cli import views
from buildfarm.cli.durations import Duration, format_duration
from buildfarm.cli.session import (
    AdminCommand,
    Session,
    UsageProblem,
    cluster_options,
    exit_codes,
    note,
    session,
)
from buildfarm.errors import TransientError
from buildfarm.kube.builds_admin import Forbidden

DEFAULT_FARM_NAMESPACE: Final = "buildfarm-system"
DEFAULT_INTERVAL: Final = "2s"
CLEAR_SCREEN: Final = "\x1b[H\x1b[2J"

Render = Callable[[Session, datetime], tuple[str, dict[str, Any]]]


def _listing_options(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(
        [
            click.option(
                "--platform",
                type=click.Choice([p.value for p in Platform]),
                help="Only this platform's builds or workers.",
            ),
            click.option(
                "-w",
                "--watch",
                is_flag=True,
                help="Redraw every --interval until Ctrl-C (with -o json: one JSON document per line).",
            ),
            click.option(
                "--interval",
                type=Duration(),
                default=DEFAULT_INTERVAL,
                show_default=True,
                metavar="DURATION",
                help="How often --watch reads the cluster again, e.g. 2s, 1m.",
            ),
            click.option(
                "-o",
                "--output",
                type=click.Choice(["json"]),
                default=None,
                help="Print JSON instead of a table.",
            ),
        ]
    ):
        command = option(command)
    return cluster_options(command)


@click.command("queue", cls=AdminCommand, epilog=exit_codes())
@click.option(
    "-n",
    "--namespace",
    metavar="NAMESPACE",
    help="Only this namespace's builds; their positions still count the whole farm's queue. "
    "[default: all namespaces]",
)
@_listing_options
def queue_command(
    namespace: str | None,
    platform: str | None,
    watch: bool,
    interval: int,
    output: str | None,
    kubeconfig: Path | None,
    context: str | None,
) -> None:
    """The builds waiting for a worker, in the order the scheduler gives out free slots: higher
    priority first, then the oldest. For each: its POSITION in the farm's queue, its age, and why it
    waits (the reason and message of its Scheduled condition: WorkerBusy, WorkerNotReady,
    NoMatchingWorker, ...). Builds the operator has not admitted yet show NotAdmitted.
    """

    def render(s: Session, now: datetime) -> tuple[str, dict[str, Any]]:
        builds, whole_farm = _queue_builds(s, namespace)
        rows = views.queue(builds, now, platform=platform, namespace=namespace, whole_farm=whole_farm)
        text = views.table(views.QUEUE_HEADER, [r.cells() for r in rows]) if rows else ""
        return text or "no builds are waiting", {"items": [r.to_json() for r in rows]}

    _show(render, kubeconfig, context, watch=watch, interval=interval, output=output)


def _queue_builds(s: Session, namespace: str | None) -> tuple[list[Build], bool]:
    """Every build (positions need the whole queue); with -n and no right to list all namespaces,
    that namespace's builds only, and positions unknown."""
    try:
        return s.admin.list_builds(), True
    except Forbidden:
        if namespace is None:
            raise
    note(f"warning: you may list builds only in namespace {namespace}: positions in the farm's queue unknown")
    return s.admin.list_builds(namespace), False


@click.command("workers", cls=AdminCommand, epilog=exit_codes())
@click.option(
    "-l",
    "--selector",
    metavar="KEY=VALUE[,...]",
    help="Only workers with these labels.",
)
@click.option(
    "--farm-namespace",
    default=lambda: os.environ.get("BUILDFARM_FARM_NAMESPACE") or DEFAULT_FARM_NAMESPACE,
    show_default=f"$BUILDFARM_FARM_NAMESPACE or {DEFAULT_FARM_NAMESPACE}",
    help="The farm namespace, where the agents' heartbeat Leases are (the chart's farmNamespace.name).",
)
@_listing_options
def workers_command(
    selector: str | None,
    farm_namespace: str,
    platform: str | None,
    watch: bool,
    interval: int,
    output: str | None,
    kubeconfig: Path | None,
    context: str | None,
) -> None:
    """Every Worker: READY (its Ready condition, and Cordoned), the PLATFORMS it serves, BUSY slots out
    of its capacity as the scheduler counts them, its current BUILDS (Assigned or Running), and how
    long ago its agent last renewed its heartbeat Lease (never: no Lease; released: the agent stopped).
    `buildfarm worker cordon|uncordon|drain NAME` act on one of them.
    """
    labels = _labels(selector)

    def render(s: Session, now: datetime) -> tuple[str, dict[str, Any]]:
        workers = s.admin.list_workers()
        builds = s.admin.list_builds()
        heartbeats = s.admin.list_heartbeats(farm_namespace)
        rows = views.workers(workers, builds, heartbeats, now, platform=platform, labels=labels)
        text = views.table(views.WORKERS_HEADER, [r.cells() for r in rows]) if rows else ""
        return text or "no workers", {"items": [r.to_json() for r in rows]}

    _show(render, kubeconfig, context, watch=watch, interval=interval, output=output)


def _labels(selector: str | None) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in (selector or "").split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or "!" in key:
            raise UsageProblem(f"--selector: {item!r} is not KEY=VALUE (e.g. -l xcode=16.2,site=berlin)")
        labels[key.strip()] = value.strip()
    return labels


def _show(
    render: Render,
    kubeconfig: Path | None,
    context: str | None,
    *,
    watch: bool,
    interval: int,
    output: str | None,
) -> None:
    if watch and interval < 1:
        raise UsageProblem(f"--interval: must be at least 1s with --watch, not {format_duration(interval)}")
    with session(kubeconfig, context) as s:
        if not watch:
            text, body = render(s, datetime.now(UTC))
            if output == "json":
                click.echo(json.dumps(body, indent=2))
            elif body["items"]:
                click.echo(text)
            else:
                note(text)
            return
        try:
            _watch(s, render, interval, output)
        except KeyboardInterrupt:
            return  # Ctrl-C is how a watch ends


def _watch(s: Session, render: Render, interval: int, output: str | None) -> None:
    """Redraw until interrupted. A refresh that fails for a passing reason (the API server is briefly
    away) is said on stderr and tried again; anything else ends the watch with its one-line error."""
    clear = output != "json" and sys.stdout.isatty()
    while True:
        now = datetime.now(UTC)
        try:
            text, body = render(s, now)
        except Forbidden:
            raise
        except TransientError as error:
            note(f"warning: {error.message}; trying again in {format_duration(interval)}")
        else:
            if output == "json":
                click.echo(json.dumps(body | {"time": now.isoformat(timespec="seconds")}))
            else:
                stamp = f"every {format_duration(interval)}, at {now.astimezone().strftime('%H:%M:%S')}"
                click.echo(f"{CLEAR_SCREEN if clear else ''}{stamp}\n{text}\n", nl=not clear)
            sys.stdout.flush()
        time.sleep(interval)
