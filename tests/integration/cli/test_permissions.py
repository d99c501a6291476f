"""A caller without the permission a command needs is told which one, in one line (exit 1). The identity
is a real ServiceAccount with exactly the RBAC rules the test grants."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from tests.integration.cli.conftest import one_error, run_cli
from tests.support.farm import Farm, wait_for
from tests.support.identities import Identity, service_account

READ_BUILDS = [{"apiGroups": ["buildfarm.dev"], "resources": ["builds"], "verbs": ["get"]}]


@pytest.fixture
def identity(
    api_client: client.ApiClient, kubeconfig: str, namespace: str, tmp_path: Path
) -> Iterator[Identity]:
    made = service_account(api_client, Path(kubeconfig), namespace, "user", tmp_path)
    yield made
    made.cleanup()


def test_nothing_granted(farm: Farm, tmp_path: Path, identity: Identity) -> None:
    farm.build("app")
    result = run_cli(str(identity.kubeconfig), tmp_path, "cancel", "app", "-n", farm.namespace)
    assert result.returncode == 1
    assert one_error(result) == (
        f"your credentials may not get builds.buildfarm.dev in namespace {farm.namespace}: ask an "
        "administrator for access "
        f"(check with `kubectl auth can-i get builds.buildfarm.dev -n {farm.namespace}`)"
    )


def test_read_but_not_write(farm: Farm, tmp_path: Path, identity: Identity) -> None:
    identity.grant(READ_BUILDS)
    wait_for("the grant to reach the authorizer", lambda: identity.holds(READ_BUILDS))
    farm.build("app")
    result = run_cli(str(identity.kubeconfig), tmp_path, "cancel", "app", "-n", farm.namespace)
    assert result.returncode == 1
    assert one_error(result) == (
        f"your credentials may not patch builds.buildfarm.dev in namespace {farm.namespace}: ask an "
        "administrator for access "
        f"(check with `kubectl auth can-i patch builds.buildfarm.dev -n {farm.namespace}`)"
    )
    assert farm.get_build("app").spec.cancel is False
