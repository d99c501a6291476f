"""The parts of the Helm chart that are generated, never hand-edited: files/ (a copy of the CRDs and the
operator's permission table) and the values table of README.md (from the `# --` comments of
values.yaml). `buildfarm dev crds` writes them with crds/; its --check (and tests/chart) fail on drift.

A copy rather than a symlink to crds/: a chart directory must stand alone wherever it is taken
(`helm package`, an OCI registry, Argo CD's repo-server refuses symlinks that leave the chart)."""

import json
import re
from pathlib import Path
from typing import Any, Final

import yaml

from buildfarm.api.crds import rendered_crds
from buildfarm.kube.permissions import ARTIFACT_SERVICE_PERMISSIONS, PERMISSIONS, Permission

CHART_DIR: Final = Path("charts") / "buildfarm"
PERMISSIONS_FILE: Final = Path("files") / "operator-permissions.yaml"
ARTIFACT_PERMISSIONS_FILE: Final = Path("files") / "artifacts-permissions.yaml"
CRD_DIR: Final = Path("files") / "crds"

_HEADER: Final = (
    "# Generated from operator/buildfarm/kube/permissions.py by `buildfarm dev crds`; do not edit by hand.\n"
    "# templates/operator-rbac.yaml renders the rows the operator uses in the chart's mode.\n"
)


_ARTIFACT_HEADER: Final = (
    "# Generated from operator/buildfarm/kube/permissions.py by `buildfarm dev crds`; do not edit by hand.\n"
    "# The artifact service's rights (ARTIFACT_SERVICE_PERMISSIONS), for its ClusterRole.\n"
)


def permissions_yaml(table: tuple[Permission, ...] = PERMISSIONS, header: str = _HEADER) -> str:
    rows = [
        {
            "group": p.group,
            "resource": p.resource,
            "verbs": list(p.verbs),
            "when": p.when.name.lower(),
            "inFarmNamespace": p.in_farm_namespace,
            "why": p.why,
        }
        for p in table
    ]
    return header + yaml.safe_dump({"permissions": rows}, sort_keys=False, width=100)


def rendered_files(chart: Path) -> dict[Path, str]:
    """Each generated file of the chart, relative to the chart directory, and its content."""
    files = {CRD_DIR / name: text for name, text in rendered_crds().items()}
    files[PERMISSIONS_FILE] = permissions_yaml()
    files[ARTIFACT_PERMISSIONS_FILE] = permissions_yaml(ARTIFACT_SERVICE_PERMISSIONS, _ARTIFACT_HEADER)
    readme = chart / README
    if readme.is_file() and (chart / "values.yaml").is_file():
        files[README] = with_values_table(readme.read_text(), (chart / "values.yaml").read_text())
    return files


README: Final = Path("README.md")
TABLE_START: Final = "<!-- values table: generated from values.yaml by `buildfarm dev crds` -->"
TABLE_END: Final = "<!-- end of values table -->"
_KEY: Final = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z][\w-]*):(?P<rest>.*)$")


def documented_values(values_yaml: str) -> list[tuple[str, Any, str]]:
    """(dotted key, default, description) of each key whose comment starts with `# --`, in file order."""
    tree = yaml.safe_load(values_yaml) or {}
    found: list[tuple[str, Any, str]] = []
    parents: list[tuple[int, str]] = []
    comment: list[str] | None = None
    for line in values_yaml.splitlines():
        stripped = line.strip()
        if stripped.startswith("# --"):
            comment = [stripped[4:].strip()]
            continue
        if stripped.startswith("#"):
            if comment is not None:
                comment.append(stripped[1:].strip())
            continue
        match = _KEY.match(line)
        if not match:
            comment = None
            continue
        indent = len(match["indent"])
        parents = [(i, k) for i, k in parents if i < indent]
        path = ".".join([k for _, k in parents] + [match["key"]])
        if comment is not None:
            found.append((path, _lookup(tree, path), " ".join(comment)))
        comment = None
        parents.append((indent, match["key"]))
    return found


def values_table(values_yaml: str) -> str:
    rows = ["| Key | Default | Description |", "|---|---|---|"]
    for path, default, description in documented_values(values_yaml):
        shown = json.dumps(default, separators=(",", ":")).replace("|", "\\|")
        text = description.replace("|", "\\|")
        rows.append(f"| `{path}` | `{shown}` | {text} |")
    return "\n".join(rows)


def with_values_table(readme: str, values_yaml: str) -> str:
    """`readme` with the text between the table markers replaced by the table of `values_yaml`."""
    start, end = readme.find(TABLE_START), readme.find(TABLE_END)
    if start < 0 or end < start:
        raise ValueError(f"the chart's README.md lacks the markers {TABLE_START!r} ... {TABLE_END!r}")
    return readme[: start + len(TABLE_START)] + "\n" + values_table(values_yaml) + "\n" + readme[end:]


def _lookup(tree: Any, path: str) -> Any:
    for part in path.split("."):
        tree = tree[part]
    return tree
