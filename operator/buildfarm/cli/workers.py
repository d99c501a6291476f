"""`buildfarm worker cordon|uncordon|drain NAME`: take a worker out of the farm and put it back."""

import getpass
import socket
from pathlib import Path
from typing import Final

import click

from buildfarm.api.workers import Worker
from buildfarm.cli.drain import Drain, DrainFailed, Left, Requeued
from buildfarm.cli.durations import Duration, format_duration
from buildfarm.cli.session import (
    EXIT_INTERRUPTED,
    AdminGroup,
    CommandError,
    Interrupted,
    NotThere,
    Session,
    cluster_options,
    emit_json,
    exit_codes,
    note,
    output_option,
    session,
)
from buildfarm.errors import NotFound

DEFAULT_DEADLINE: Final = "1h"


@click.group("worker", cls=AdminGroup)
def worker_group() -> None:
    """Add, remove, cordon, uncordon and drain Workers (the build machines)."""


@worker_group.command("cordon", epilog=exit_codes())
@click.argument("name")
@output_option
@cluster_options
def cordon(name: str, output: str | None, kubeconfig: Path | None, context: str | None) -> None:
    """Mark worker NAME unschedulable: no new build is assigned to it; builds on it keep running."""
    with session(kubeconfig, context) as s:
        _set_unschedulable(s, name, True, output)


@worker_group.command("uncordon", epilog=exit_codes())
@click.argument("name")
@output_option
@cluster_options
def uncordon(name: str, output: str | None, kubeconfig: Path | None, context: str | None) -> None:
    """Mark worker NAME schedulable again."""
    with session(kubeconfig, context) as s:
        _set_unschedulable(s, name, False, output)


@worker_group.command("drain", epilog=exit_codes(EXIT_INTERRUPTED))
@click.argument("name")
@click.option(
    "--deadline",
    type=Duration(),
    default=DEFAULT_DEADLINE,
    show_default=True,
    metavar="DURATION",
    help="How long to wait for the worker's builds to finish, e.g. 90s, 30m, 1h30m; 0 requeues at once.",
)
@output_option
@cluster_options
def drain(name: str, deadline: int, output: str | None, kubeconfig: Path | None, context: str | None) -> None:
    """Empty worker NAME: cordon it, wait until its builds finish or the deadline passes, then put the
    builds still Assigned or Running on it back in the queue.

    A requeued build goes back to Pending with the worker cleared and reason Drained, at the same attempt:
    its next assignment raises the attempt (so the worker's late writes are refused), and status.handbacks
    counts it, so the requeue does not use up spec.maxAttempts. Prints one line per build and a summary;
    progress goes to stderr. Ctrl-C stops waiting and requeues nothing (the worker stays cordoned).
    """
    with session(kubeconfig, context) as s:
        _set_unschedulable(s, name, True, None, quiet_to_stderr=True)
        who = s.admin.whoami() or f"{getpass.getuser()}@{socket.gethostname()}"
        message = (
            f"Worker {name} was drained by {who} (`buildfarm worker drain`); the build waits for another "
            "worker, and this attempt does not count against spec.maxAttempts."
        )

        def show(result: Requeued | Left) -> None:
            if output != "json":
                click.echo(result.line())

        drainer = Drain(s.admin, name, message=message, on_result=show)
        try:
            if deadline > 0:
                waiting = drainer.active()
                if waiting:
                    names = ", ".join(f"{b.namespace}/{b.name} ({b.status.phase})" for b in waiting)
                    note(f"waiting up to {format_duration(deadline)} for {len(waiting)} build(s): {names}")
            drainer.wait(deadline)
        except KeyboardInterrupt:
            raise Interrupted(
                f"stopped waiting: nothing was requeued; worker {name} stays cordoned "
                f"(`buildfarm worker uncordon {name}` undoes it)"
            ) from None
        try:
            drainer.requeue_all()
        except DrainFailed as error:
            raise CommandError(str(error)) from None
        if output == "json":
            emit_json(drainer.report.to_json())
        else:
            click.echo(drainer.report.summary())


def _set_unschedulable(
    s: Session, name: str, unschedulable: bool, output: str | None, *, quiet_to_stderr: bool = False
) -> Worker:
    verb = "cordoned" if unschedulable else "uncordoned"
    try:
        worker = s.admin.get_worker(name)
        already = worker.spec.unschedulable == unschedulable
        if not already:
            worker = s.admin.set_unschedulable(name, unschedulable)
    except NotFound:
        raise NotThere(f"worker {name} not found (`kubectl get workers` lists them)") from None
    line = f"worker {name} {'was already ' if already else ''}{verb}"
    if quiet_to_stderr:
        note(line)
    elif output == "json":
        emit_json(worker)
    else:
        click.echo(line)
    return worker
