"""Running helm on the chart: render it with values and read the objects back, or install it."""

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from buildfarm.dev.binaries import repo_root

CHART = repo_root() / "charts" / "buildfarm"
HELM_TIMEOUT = 120


class HelmFailed(AssertionError):
    def __init__(self, args: list[str], result: subprocess.CompletedProcess[str]) -> None:
        super().__init__(f"helm {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}")
        self.stderr = result.stderr


@dataclass(frozen=True)
class Helm:
    binary: Path

    def run(self, *args: str, kubeconfig: str | None = None) -> str:
        command = [str(self.binary), *args]
        if kubeconfig:
            command += ["--kubeconfig", kubeconfig]
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            check=False,
            timeout=HELM_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            raise HelmFailed(list(args), result)
        return result.stdout

    def template(
        self,
        values: dict[str, Any] | None = None,
        *,
        release: str = "buildfarm",
        namespace: str = "buildfarm-system",
    ) -> list[dict[str, Any]]:
        """The objects the chart renders with `values` (helm template, CRDs of crds/ included)."""
        args = ["template", release, str(CHART), "-n", namespace, "--include-crds"]
        args += values_args(values)
        return [doc for doc in yaml.safe_load_all(self.run(*args)) if doc]

    def notes(self, scratch: Path, values: dict[str, Any] | None = None) -> str:
        """NOTES.txt rendered by helm. `helm template` leaves NOTES out (and a dry-run install needs a
        cluster), so a copy of the chart in `scratch` renders it as an ordinary template."""
        copy = scratch / "buildfarm"
        shutil.copytree(CHART, copy, dirs_exist_ok=True)
        shutil.copy(copy / "templates" / "NOTES.txt", copy / "files" / "NOTES.txt")
        (copy / "templates" / "notes.yaml").write_text(
            '{{ dict "notes" (tpl (.Files.Get "files/NOTES.txt") .) | toYaml }}\n'
        )
        args = ["template", "buildfarm", str(copy), "-n", "buildfarm-system"]
        out = self.run(*args, "--show-only", "templates/notes.yaml", *values_args(values))
        return str(yaml.safe_load(out)["notes"])


def values_args(values: dict[str, Any] | None) -> list[str]:
    # --set-json keeps types (a string "2" stays a string, so the schema sees what a user would write).
    return [
        arg for key, value in (values or {}).items() for arg in ("--set-json", f"{key}={json.dumps(value)}")
    ]


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def kinds(objects: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return sorted((o["kind"], o["metadata"]["name"]) for o in objects)
