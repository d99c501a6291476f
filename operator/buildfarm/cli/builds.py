"""`buildfarm retry BUILD` and `buildfarm cancel BUILD`: what a user does to one build."""

from pathlib import Path

import click

from buildfarm import constants as c
from buildfarm.api.builds import TERMINAL_PHASES, Build
from buildfarm.cli.session import (
    EXIT_REFUSED,
    AdminCommand,
    NotThere,
    Refused,
    Session,
    cluster_options,
    emit_json,
    exit_codes,
    namespace_option,
    note,
    output_option,
    session,
)
from buildfarm.domain import retries
from buildfarm.errors import Conflict, NotFound
from buildfarm.kube.builds_admin import AlreadyExists


@click.command("retry", cls=AdminCommand, epilog=exit_codes(EXIT_REFUSED))
@click.argument("build")
@namespace_option
@click.option("--force", is_flag=True, help="Make another retry even if BUILD already has one.")
@output_option
@cluster_options
def retry_command(
    build: str,
    namespace: str | None,
    force: bool,
    output: str | None,
    kubeconfig: Path | None,
    context: str | None,
) -> None:
    """Create a new Build with the spec of BUILD (cancel reset to false), linked to it both ways.

    BUILD must be finished: Succeeded, Failed or Cancelled. The new build is named BUILD-retry-N and
    carries the label buildfarm.dev/retry-of=BUILD (`kubectl get builds -l buildfarm.dev/retry-of=BUILD`)
    and BUILD's uid in an annotation; BUILD gets the annotation buildfarm.dev/retried-by=<new build>.
    Prints the new build's name.
    """
    with session(kubeconfig, context) as s:
        parent = _get_build(s, s.namespace(namespace), build)
        why = retries.not_final(parent)
        if why:
            raise Refused(why)
        previous = retries.latest_retry(parent)
        if previous and not force:
            raise Refused(_already_retried(parent, previous))
        child = _create_retry(s, parent, force)
        try:
            s.admin.annotate_build(parent, {c.RETRIED_BY: child.name})
        except (NotFound, Conflict):
            # Deleted (or deleted and created again) since it was read: the retry still names it.
            note(
                f"warning: build {parent.namespace}/{parent.name} was deleted meanwhile, so it does not "
                f"name its retry {child.name}; the retry still names it"
            )
        if output == "json":
            emit_json(child)
        else:
            click.echo(child.name)


def _create_retry(s: Session, parent: Build, force: bool) -> Build:
    """Create BUILD-retry-N for the lowest free N. The names make concurrent retries meet: the second
    `buildfarm retry` of the same build finds BUILD-retry-1 taken and refuses (unless --force)."""
    for number in range(1, retries.MAX_RETRIES + 1):
        name = retries.retry_name(parent.name, number)
        try:
            return s.admin.create_build(parent.namespace, retries.retry_body(parent, name))
        except AlreadyExists:
            if force:
                continue
        try:
            existing = s.admin.get_build(parent.namespace, name)
        except NotFound:
            continue  # deleted since: the next number is as good
        if retries.is_retry_of(existing, parent):
            raise Refused(_already_retried(parent, name)) from None
        # Else a retry of an earlier build of the same name, or a build someone named so: skip it.
    last = retries.retry_name(parent.name, retries.MAX_RETRIES)
    raise Refused(
        f"build {parent.namespace}/{parent.name} has {retries.MAX_RETRIES} retries already (up to {last}): "
        "delete some of them first"
    )


def _already_retried(parent: Build, retry: str) -> str:
    return (
        f"build {parent.namespace}/{parent.name} already has a retry: {retry} "
        f"(`buildfarm retry {parent.name} -n {parent.namespace} --force` makes another)"
    )


@click.command("cancel", cls=AdminCommand, epilog=exit_codes())
@click.argument("build")
@namespace_option
@output_option
@cluster_options
def cancel_command(
    build: str, namespace: str | None, output: str | None, kubeconfig: Path | None, context: str | None
) -> None:
    """Cancel BUILD: set its spec.cancel to true (it cannot be set back).

    A Pending build is cancelled by the operator at once; an Assigned or Running one by its worker's
    agent, which stops the build and sets Cancelled. A build that already finished is left as it is.
    """
    with session(kubeconfig, context) as s:
        current = _get_build(s, s.namespace(namespace), build)
        where = f"build {current.namespace}/{current.name}"
        phase = current.status.phase.value if current.status.phase else "not admitted yet"
        if current.status.phase in TERMINAL_PHASES:
            message = f"{where} already finished ({phase}): nothing to cancel"
        elif current.spec.cancel:
            message = f"{where}: cancel was already requested (it is {phase})"
        else:
            current = s.admin.request_cancel(current.namespace, current.name)
            message = f"{where}: cancel requested (it was {phase})"
        if output == "json":
            emit_json(current)
        else:
            click.echo(message)


def _get_build(s: Session, namespace: str, name: str) -> Build:
    try:
        return s.admin.get_build(namespace, name)
    except NotFound:
        raise NotThere(
            f"build {name} not found in namespace {namespace} "
            f"(`kubectl get builds -n {namespace}` lists them)"
        ) from None
