"""The files of the Helm chart (charts/buildfarm/files/) that are generated, never hand-edited: a copy of
the CRDs and the operator's permission table. `buildfarm dev crds` writes them with crds/; its --check
(and tests/chart) fail when the chart's copy drifts.

A copy rather than a symlink to crds/: a chart directory must stand alone wherever it is taken
(`helm package`, an OCI registry, Argo CD's repo-server refuses symlinks that leave the chart)."""

from pathlib import Path
from typing import Final

import yaml

from buildfarm.api.crds import rendered_crds
from buildfarm.kube.permissions import PERMISSIONS

CHART_DIR: Final = Path("charts") / "buildfarm"
PERMISSIONS_FILE: Final = Path("files") / "operator-permissions.yaml"
CRD_DIR: Final = Path("files") / "crds"

_HEADER: Final = (
    "# Generated from operator/buildfarm/kube/permissions.py by `buildfarm dev crds`; do not edit by hand.\n"
    "# templates/operator-rbac.yaml renders the rows the operator uses in the chart's mode.\n"
)


def permissions_yaml() -> str:
    rows = [
        {
            "group": p.group,
            "resource": p.resource,
            "verbs": list(p.verbs),
            "when": p.when.name.lower(),
            "inFarmNamespace": p.in_farm_namespace,
            "why": p.why,
        }
        for p in PERMISSIONS
    ]
    return _HEADER + yaml.safe_dump({"permissions": rows}, sort_keys=False, width=100)


def rendered_files() -> dict[Path, str]:
    """Each generated file of the chart, relative to the chart directory, and its content."""
    files = {CRD_DIR / name: text for name, text in rendered_crds().items()}
    files[PERMISSIONS_FILE] = permissions_yaml()
    return files
