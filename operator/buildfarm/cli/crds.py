"""`buildfarm dev crds`: write (or check) crds/ from the API models, and the Helm chart's generated files
(its copy of the CRDs, the operator's permission table)."""

from pathlib import Path

import click

from buildfarm.api.crds import rendered_crds
from buildfarm.dev.chart import CHART_DIR, rendered_files


@click.command("crds")
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), default=Path("crds"), show_default=True
)
@click.option(
    "--chart",
    type=click.Path(file_okay=False, path_type=Path),
    default=CHART_DIR,
    show_default=True,
    help="The Helm chart whose files/ are generated too.",
)
@click.option(
    "--check", is_flag=True, help="Exit non-zero if the files differ from the models; write nothing."
)
def crds(out: Path, chart: Path, check: bool) -> None:
    """Generate the CustomResourceDefinitions from the pydantic models."""
    stale = []
    generated = {out / name: text for name, text in rendered_crds().items()}
    generated |= {chart / name: text for name, text in rendered_files(chart).items()}
    for path, text in generated.items():
        if path.exists() and path.read_text() == text:
            continue
        stale.append(str(path))
        if not check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if check and stale:
        raise click.ClickException(
            f"{', '.join(stale)} out of date: run `buildfarm dev crds --out {out} --chart {chart}`"
        )
    click.echo(f"{'checked' if check else 'wrote'} {out}/ and {chart}/files/ ({len(stale)} changed)")
