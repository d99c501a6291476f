"""The session's versitygw for the S3 backend's own tests, and the artifact service running on it (under its
own key prefix) with the identities of tests/integration/artifacts for the service's tests on S3."""

import secrets
from collections.abc import Iterator

import pytest
from kubernetes import client

from buildfarm.dev.controlplane import ControlPlane
from tests.integration.artifacts.conftest import Setup, builds, running_setup, users
from tests.support.s3 import S3Server, s3_server

__all__ = ["builds", "s3_server", "users"]  # `users` and `builds` get the `setup` below here


@pytest.fixture(scope="module")
def setup(
    api_client: client.ApiClient,
    kubeconfig: str,
    control_plane: ControlPlane | None,
    tmp_path_factory: pytest.TempPathFactory,
    s3_server: S3Server,
) -> Iterator[Setup]:
    """The artifact service storing in the session's bucket under a prefix of its own; `root` is that
    prefix's directory in the server's posix store, so tests can see what is stored."""
    prefix = f"service-{secrets.token_hex(4)}/"
    tmp = tmp_path_factory.mktemp("artifacts-s3")
    root = s3_server.root / s3_server.bucket / prefix
    with running_setup(
        api_client, kubeconfig, control_plane, tmp, root, s3_server.settings(prefix=prefix)
    ) as made:
        yield made
