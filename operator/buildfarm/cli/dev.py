"""`buildfarm dev ...`: tools for developers (the local control plane, CRD generation)."""

import click


@click.group()
def dev() -> None:
    """Developer tools: a local control plane and generated manifests."""
