"""`buildfarm dev crds`: write (or check) crds/ from the API models."""

from pathlib import Path

import click

from buildfarm.api.crds import rendered_crds


@click.command("crds")
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), default=Path("crds"), show_default=True
)
@click.option(
    "--check", is_flag=True, help="Exit non-zero if the files differ from the models; write nothing."
)
def crds(out: Path, check: bool) -> None:
    """Generate the CustomResourceDefinitions from the pydantic models."""
    stale = []
    for name, text in rendered_crds().items():
        path = out / name
        if path.exists() and path.read_text() == text:
            continue
        stale.append(str(path))
        if not check:
            out.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if check and stale:
        raise click.ClickException(f"{', '.join(stale)} out of date: run `buildfarm dev crds --out {out}`")
    click.echo(f"{'checked' if check else 'wrote'} {out}/ ({len(stale)} changed)")
