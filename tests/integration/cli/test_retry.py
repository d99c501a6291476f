"""`buildfarm retry` makes a new build with the parent's spec, linked both ways, and refuses clearly."""

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from buildfarm import constants as c
from tests.integration.cli.conftest import (
    assigned,
    cli_env,
    command,
    drive,
    finished,
    one_error,
    pending,
    run_cli,
    running,
)
from tests.support.farm import TIMEOUT, Farm


def test_retry_links_parent_and_child_both_ways(farm: Farm, kubeconfig: str, tmp_path: Path) -> None:
    farm.build("app", platform="android", priority=5, profile="production", timeoutSeconds=600)
    drive(farm, "app", pending(), assigned("mac-1", 1), running(), finished("Failed"))

    result = run_cli(kubeconfig, tmp_path, "retry", "app", "-n", farm.namespace)
    assert (result.returncode, result.stdout, result.stderr) == (0, "app-retry-1\n", "")

    parent, child = farm.get_build("app"), farm.get_build("app-retry-1")
    assert child.spec == parent.spec
    assert child.labels[c.RETRY_OF] == "app"
    assert child.metadata["annotations"] == {c.RETRY_OF: "app", c.RETRY_OF_UID: parent.uid}
    assert parent.metadata["annotations"][c.RETRIED_BY] == "app-retry-1"
    assert child.status.phase is None, "the retry starts afresh (no operator runs here to admit it)"
    # What `kubectl get builds -l buildfarm.dev/retry-of=app` shows.
    labelled = farm.api.list_namespaced_custom_object(
        c.GROUP,
        c.VERSION,
        farm.namespace,
        c.BUILD_PLURAL,
        label_selector=f"{c.RETRY_OF}=app",
        _request_timeout=TIMEOUT,
    )
    assert [item["metadata"]["name"] for item in labelled["items"]] == ["app-retry-1"]


def test_a_second_retry_needs_force(farm: Farm, kubeconfig: str, tmp_path: Path) -> None:
    farm.build("app")
    drive(farm, "app", pending(), assigned("mac-1", 1), finished("Succeeded"))
    assert run_cli(kubeconfig, tmp_path, "retry", "app", "-n", farm.namespace).returncode == 0

    again = run_cli(kubeconfig, tmp_path, "retry", "app", "-n", farm.namespace)
    assert again.returncode == 4
    assert one_error(again) == (
        f"build {farm.namespace}/app already has a retry: app-retry-1 "
        f"(`buildfarm retry app -n {farm.namespace} --force` makes another)"
    )

    forced = run_cli(kubeconfig, tmp_path, "retry", "app", "-n", farm.namespace, "--force", "-o", "json")
    assert forced.returncode == 0, forced.stderr
    printed = json.loads(forced.stdout)
    assert (printed["kind"], printed["metadata"]["name"]) == ("Build", "app-retry-2")
    assert printed["metadata"]["annotations"][c.RETRY_OF] == "app"
    assert farm.get_build("app").metadata["annotations"][c.RETRIED_BY] == "app-retry-2"
    assert sorted(farm.phases()) == ["app", "app-retry-1", "app-retry-2"]


def test_a_cancelled_build_is_retried_without_cancel(farm: Farm, kubeconfig: str, tmp_path: Path) -> None:
    farm.build("app", cancel=True)
    drive(farm, "app", finished("Cancelled"))
    result = run_cli(kubeconfig, tmp_path, "retry", "app", "-n", farm.namespace)
    assert result.returncode == 0, result.stderr
    assert farm.get_build("app-retry-1").spec.cancel is False


def test_concurrent_retries_make_one_build(farm: Farm, kubeconfig: str, tmp_path: Path) -> None:
    farm.build("app")
    drive(farm, "app", pending(), assigned("mac-1", 1), finished("Succeeded"))
    args = command(kubeconfig, "retry", "app", "-n", farm.namespace)
    procs = [
        subprocess.Popen(
            args, env=cli_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    results = [(*p.communicate(timeout=60), p.returncode) for p in procs]
    assert sorted(code for _, _, code in results) == [0, 4, 4], results
    assert sorted(farm.phases()) == ["app", "app-retry-1"]


@pytest.mark.parametrize(
    ("name", "steps", "want_state"),
    [
        ("not admitted yet", [], "being admitted"),
        ("pending", [pending()], "Pending"),
        ("assigned", [pending(), assigned("mac-1", 1)], "Assigned"),
        ("running", [pending(), assigned("mac-1", 1), running()], "Running"),
    ],
)
def test_retry_refuses_a_build_that_is_not_final(
    farm: Farm,
    kubeconfig: str,
    tmp_path: Path,
    name: str,
    steps: list[dict[str, object]],
    want_state: str,
) -> None:
    farm.build("app")
    drive(farm, "app", *steps)
    result = run_cli(kubeconfig, tmp_path, "retry", "app", "-n", farm.namespace)
    assert result.returncode == 4
    assert one_error(result) == (
        f"build {farm.namespace}/app is still {want_state}: "
        f"cancel it first (`buildfarm cancel app -n {farm.namespace}`) or wait"
    )
    assert list(farm.phases()) == ["app"], "nothing was created"


def test_retry_of_a_build_being_cancelled_says_to_wait(farm: Farm, kubeconfig: str, tmp_path: Path) -> None:
    farm.build("app")
    drive(farm, "app", pending(), assigned("mac-1", 1), running())
    assert run_cli(kubeconfig, tmp_path, "cancel", "app", "-n", farm.namespace).returncode == 0
    result = run_cli(kubeconfig, tmp_path, "retry", "app", "-n", farm.namespace)
    assert result.returncode == 4
    assert one_error(result) == (
        f"build {farm.namespace}/app is still Running (cancel requested): wait for it to stop, then retry"
    )


def test_retry_of_a_missing_build(farm: Farm, kubeconfig: str, tmp_path: Path) -> None:
    result = run_cli(kubeconfig, tmp_path, "retry", "nope", "-n", farm.namespace)
    assert result.returncode == 3
    assert one_error(result) == (
        f"build nope not found in namespace {farm.namespace} "
        f"(`kubectl get builds -n {farm.namespace}` lists them)"
    )


def test_the_namespace_defaults_to_the_kubeconfig_context(
    farm: Farm, kubeconfig: str, tmp_path: Path
) -> None:
    config = yaml.safe_load(Path(kubeconfig).read_text())
    for context in config["contexts"]:
        context["context"]["namespace"] = farm.namespace
    own = tmp_path / "kubeconfig"
    own.write_text(yaml.safe_dump(config))
    farm.build("app")
    drive(farm, "app", finished("Cancelled"))
    result = run_cli(str(own), tmp_path, "retry", "app")
    assert (result.returncode, result.stdout) == (0, "app-retry-1\n"), result.stderr
