"""`buildfarm worker cordon|uncordon` set spec.unschedulable, and say when it already was."""

import json
from pathlib import Path

from tests.integration.cli.conftest import one_error, run_cli
from tests.support.farm import Farm


def test_cordon_and_uncordon(farm: Farm, kubeconfig: str, tmp_path: Path) -> None:
    mac = farm.worker("mac")

    steps = [
        ("cordon", f"worker {mac} cordoned\n", True),
        ("cordon", f"worker {mac} was already cordoned\n", True),
        ("uncordon", f"worker {mac} uncordoned\n", False),
        ("uncordon", f"worker {mac} was already uncordoned\n", False),
    ]
    for verb, want_stdout, want_unschedulable in steps:
        result = run_cli(kubeconfig, tmp_path, "worker", verb, mac)
        assert (result.returncode, result.stdout, result.stderr) == (0, want_stdout, ""), verb
        assert farm.get_worker(mac).spec.unschedulable is want_unschedulable

    printed = run_cli(kubeconfig, tmp_path, "worker", "cordon", mac, "-o", "json")
    assert printed.returncode == 0, printed.stderr
    body = json.loads(printed.stdout)
    assert (body["kind"], body["metadata"]["name"], body["spec"]["unschedulable"]) == ("Worker", mac, True)


def test_cordon_a_missing_worker(farm: Farm, kubeconfig: str, tmp_path: Path) -> None:
    result = run_cli(kubeconfig, tmp_path, "worker", "cordon", f"{farm.namespace}-nope")
    assert result.returncode == 3
    assert one_error(result) == f"worker {farm.namespace}-nope not found (`kubectl get workers` lists them)"
