"""`buildfarm operator` refuses to start with one clear line when its settings or its cluster are wrong.

Each case runs the real command in a subprocess and checks its exit code and its whole stderr: exit 2 for a
wrong setting, 1 for a cluster that cannot be reached or used; never a traceback.
"""

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
import yaml
from kubernetes import client

from buildfarm.dev.binaries import BinaryNotFoundError
from buildfarm.dev.controlplane import ControlPlane
from buildfarm.kube.preflight import PreflightError, preflight
from tests.support.farm import wait_for
from tests.support.identities import service_account, write_kubeconfig
from tests.support.operators import operator_process
from tests.support.stallproxy import StallProxy

# Generous: a refusal takes about a second; only a hung command gets near it.
COMMAND_TIMEOUT: Final = 60
API_TIMEOUT: Final = 10
# Short, so the stalled-server cases wait little; a responsive local API server answers far sooner.
# Different, so that a message naming the wrong limit fails the test.
STALL_CONNECT_TIMEOUT: Final = 1
STALL_REQUEST_TIMEOUT: Final = 2
SECRET_THAT_MUST_NOT_LEAK: Final = "do-not-print-me"


def operator_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of the command: no BUILDFARM_*, KUBECONFIG or in-cluster variables of this shell."""
    dropped = ("BUILDFARM_", "KUBECONFIG", "KUBERNETES_SERVICE_")
    env = {name: value for name, value in os.environ.items() if not name.upper().startswith(dropped)}
    return env | {"HOME": str(home), "BUILDFARM_METRICS_PORT": "0"} | extra


def run_operator(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "buildfarm.cli.main", "operator", *args],
        env=operator_env(home, **env),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single line of stderr, without its `error: ` prefix."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"want one line on stderr, got:\n{result.stderr}"
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in result.stderr
    return lines[0].removeprefix("error: ")


def unused_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def with_server(kubeconfig: Path, server: str, out: Path) -> Path:
    """A copy of `kubeconfig` pointing at another server URL (same CA and credentials)."""
    config = yaml.safe_load(kubeconfig.read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = server
    out.write_text(yaml.safe_dump(config))
    return out


# Settings: no cluster needed, the command stops before it looks for one.


@pytest.mark.parametrize(
    ("env", "args", "want_error"),
    [
        pytest.param(
            {"BUILDFARM_REQUEST_TIMEOUT": "-1"},
            [],
            "BUILDFARM_REQUEST_TIMEOUT: must be between 0.5 and 300 seconds (got -1)",
            id="bad-request-timeout-env",
        ),
        pytest.param(
            {"BUILDFARM_REQUEST_TIMEOUT": "10"},
            ["--request-timeout", "0"],
            "--request-timeout: must be between 0.5 and 300 seconds (got 0)",
            id="bad-request-timeout-flag-overrides-env",
        ),
        pytest.param(
            {"BUILDFARM_ARTIFACT_SIGNING_KEY": SECRET_THAT_MUST_NOT_LEAK},
            [],
            "BUILDFARM_ARTIFACT_SIGNING_KEY: must be at least 32 bytes (got 15); "
            "generate one with `openssl rand -hex 32`",
            id="short-secret",
        ),
        pytest.param(
            {},
            ["-n", "team-a", "--all-namespaces"],
            "--namespace and --all-namespaces exclude each other: use one",
            id="namespace-and-all-namespaces",
        ),
        pytest.param(
            {"BUILDFARM_REQEST_TIMEOUT": "3"},
            [],
            "BUILDFARM_REQEST_TIMEOUT is not a setting of the operator; "
            "did you mean BUILDFARM_REQUEST_TIMEOUT?",
            id="misspelled-variable",
        ),
    ],
)
def test_bad_settings_exit_2_with_one_line(
    tmp_path: Path, env: dict[str, str], args: list[str], want_error: str
) -> None:
    result = run_operator(tmp_path, *args, **env)
    assert result.returncode == 2, result.stderr
    assert one_line(result) == want_error
    assert SECRET_THAT_MUST_NOT_LEAK not in result.stderr + result.stdout


# Cluster problems: exit 1.


def test_missing_kubeconfig(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "kubeconfig"
    result = run_operator(tmp_path, "--kubeconfig", str(missing))
    assert result.returncode == 1, result.stderr
    assert one_line(result) == f"no kubeconfig found at {missing}: set KUBECONFIG or --kubeconfig"


def test_other_programs_variables_do_not_stop_the_operator(tmp_path: Path) -> None:
    """The agent's, the tests' and the dev tooling's variables pass; the next problem is the kubeconfig."""
    missing = tmp_path / "nowhere" / "kubeconfig"
    foreign = {
        "BUILDFARM_AGENT_NAME": "mac-mini-1",
        "BUILDFARM_TEST_ROUNDS": "3",
        "BUILDFARM_ETCD": "/usr/bin/etcd",
        "BUILDFARM_KUBE_APISERVER": "/usr/bin/kube-apiserver",
        "BUILDFARM_KUBECTL": "/usr/bin/kubectl",
        "BUILDFARM_CACHE_DIR": str(tmp_path),
    }
    result = run_operator(tmp_path, "--kubeconfig", str(missing), **foreign)
    assert result.returncode == 1, result.stderr
    assert one_line(result) == f"no kubeconfig found at {missing}: set KUBECONFIG or --kubeconfig"


@pytest.mark.parametrize(
    ("how", "want_source"),
    [
        pytest.param("flag", "--kubeconfig", id="flag"),
        pytest.param("setting", "BUILDFARM_KUBECONFIG", id="setting"),
        pytest.param("kubeconfig-variable", "KUBECONFIG", id="kubeconfig-variable"),
    ],
)
def test_kubeconfig_that_is_a_directory_is_named_so(tmp_path: Path, how: str, want_source: str) -> None:
    directory = tmp_path / "kube"
    directory.mkdir()
    args = ["--kubeconfig", str(directory)] if how == "flag" else []
    env = {"flag": {}, "setting": {"BUILDFARM_KUBECONFIG": str(directory)}}.get(
        how, {"KUBECONFIG": str(directory)}
    )
    result = run_operator(tmp_path, *args, **env)
    assert result.returncode == 1, result.stderr
    assert one_line(result) == (
        f"the kubeconfig {directory} ({want_source}) is a directory, not a file: "
        f"point {want_source} at a kubeconfig file"
    )


def test_kubeconfig_directory_holding_a_config_suggests_it(tmp_path: Path) -> None:
    directory = tmp_path / ".kube"
    directory.mkdir()
    (directory / "config").write_text("apiVersion: v1\nkind: Config\n")
    result = run_operator(tmp_path, "--kubeconfig", str(directory))
    assert result.returncode == 1, result.stderr
    assert one_line(result) == (
        f"the kubeconfig {directory} (--kubeconfig) is a directory, not a file: "
        f"did you mean {directory / 'config'}?"
    )


def test_closed_port_cannot_reach(tmp_path: Path) -> None:
    server = f"https://127.0.0.1:{unused_loopback_port()}"
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server, {"token": "not-used"})
    result = run_operator(tmp_path, KUBECONFIG=str(kubeconfig))
    assert result.returncode == 1, result.stderr
    assert one_line(result) == (
        f"cannot reach the Kubernetes API server at {server}: connection refused; "
        "check KUBECONFIG and that the cluster is running"
    )


def test_stalled_server_names_the_connect_timeout(tmp_path: Path) -> None:
    """A server that accepts the connection and then says nothing fails the TLS handshake, which the
    connect timeout bounds: the message gives that limit, not the (longer) request timeout."""
    with StallProxy("127.0.0.1", unused_loopback_port()) as proxy:
        proxy.stall()
        server = f"https://127.0.0.1:{proxy.port}"
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server, {"token": "not-used"})
        result = run_operator(
            tmp_path,
            "--kubeconfig",
            str(kubeconfig),
            "--request-timeout",
            str(STALL_REQUEST_TIMEOUT),
            BUILDFARM_CONNECT_TIMEOUT=str(STALL_CONNECT_TIMEOUT),
        )
    assert result.returncode == 1, result.stderr
    assert one_line(result) == (
        f"cannot reach the Kubernetes API server at {server}: "
        f"timed out connecting after {STALL_CONNECT_TIMEOUT}s (BUILDFARM_CONNECT_TIMEOUT); "
        "check KUBECONFIG and that the cluster is running"
    )


# A real API server: the session's, with the CRDs, and a bare one without them.


@pytest.fixture(scope="module")
def bare_control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A second local API server on which no CRD is installed."""
    try:
        with ControlPlane(tmp_path_factory.mktemp("bare-controlplane"), crd_dir=None) as bare:
            yield bare
    except BinaryNotFoundError as error:
        pytest.skip(f"no local control plane binaries for a cluster without CRDs: {error}")


def test_crds_not_installed(tmp_path: Path, bare_control_plane: ControlPlane) -> None:
    result = run_operator(tmp_path, "--kubeconfig", str(bare_control_plane.kubeconfig))
    assert result.returncode == 1, result.stderr
    assert one_line(result) == (
        "CRD builds.buildfarm.dev is not installed: "
        "run `kubectl apply -f crds/` from the buildfarm repository"
    )


def test_credentials_without_rbac_name_every_missing_permission(
    tmp_path: Path, api_client: client.ApiClient, kubeconfig: str, namespace: str
) -> None:
    identity = service_account(api_client, Path(kubeconfig), namespace, "no-rights", tmp_path)
    result = run_operator(tmp_path, "--kubeconfig", str(identity.kubeconfig))
    assert result.returncode == 1, result.stderr
    # Not peering rights: kopf's peering CRDs are not installed here, so kopf would not peer.
    assert one_line(result) == (
        f"{identity.user} may not get/list/watch/patch/delete builds.buildfarm.dev in all namespaces, "
        "patch builds.buildfarm.dev/status in all namespaces, get/list/watch workers.buildfarm.dev, "
        "patch workers.buildfarm.dev/status, list leases.coordination.k8s.io in namespace buildfarm-system, "
        "get secrets in all namespaces, create events in all namespaces, "
        "list/watch customresourcedefinitions.apiextensions.k8s.io: grant this to the operator's "
        "credentials (RBAC: a ClusterRole, or a Role per served namespace, and a binding)"
    )


def test_namespace_that_does_not_exist_is_a_warning(tmp_path: Path, kubeconfig: str, namespace: str) -> None:
    """The operator starts anyway (the namespace may be created later) and says so once, in its log."""
    absent = f"{namespace}-absent"
    log = tmp_path / "operator.log"
    want = (
        f"namespace {absent} does not exist: the operator serves it once created; "
        "check --namespace / BUILDFARM_NAMESPACES for a typo"
    )
    with operator_process(kubeconfig, log, "-n", namespace, "-n", absent) as proc:
        wait_for(
            "the warning in the operator's log", lambda: want in log.read_text(), timeout=COMMAND_TIMEOUT
        )
        assert proc.poll() is None, log.read_text()
    lines = [line for line in log.read_text().splitlines() if want in line]
    assert len(lines) == 1, lines
    assert "WARNING" in lines[0]


def test_preflight_passes_on_a_ready_cluster(api_client: client.ApiClient, namespace: str) -> None:
    preflight(api_client, API_TIMEOUT)
    preflight(api_client, (API_TIMEOUT, API_TIMEOUT), namespaces=[namespace])


def test_preflight_names_the_limit_that_fired_while_the_server_stalls_and_passes_after(
    tmp_path: Path, kubeconfig: str, control_plane: ControlPlane | None
) -> None:
    if control_plane is None:
        pytest.skip("puts a proxy in front of the local control plane")
    from buildfarm.kube.client import make_api_client, request_timeout
    from buildfarm.settings import load_settings

    port = int(control_plane.server.rsplit(":", 1)[1])
    with StallProxy("127.0.0.1", port) as proxy:
        server = f"https://127.0.0.1:{proxy.port}"
        proxied = with_server(Path(kubeconfig), server, tmp_path / "proxied")
        settings = load_settings(
            kubeconfig=proxied, connect_timeout=STALL_CONNECT_TIMEOUT, request_timeout=STALL_REQUEST_TIMEOUT
        )
        timeout = request_timeout(settings)
        with make_api_client(settings) as api_client:
            preflight(api_client, timeout)  # Leaves open connections in the client's pool.

            proxy.stall()
            # A pooled connection is already set up: the request goes out and no answer comes back.
            with pytest.raises(PreflightError) as stalled:
                preflight(api_client, timeout)
            assert str(stalled.value) == (
                f"reading the server version failed: the Kubernetes API server at {server} gave no answer "
                f"within {STALL_REQUEST_TIMEOUT}s (BUILDFARM_REQUEST_TIMEOUT); check the server's health "
                "(`kubectl get --raw /readyz`) or raise BUILDFARM_REQUEST_TIMEOUT"
            )
            # A new connection cannot finish its TLS handshake, which the connect timeout bounds.
            with make_api_client(settings) as fresh, pytest.raises(PreflightError) as connecting:
                preflight(fresh, timeout, timeout_names=("--connect", "--request"))
            assert str(connecting.value) == (
                f"cannot reach the Kubernetes API server at {server}: timed out connecting after "
                f"{STALL_CONNECT_TIMEOUT}s (--connect); check KUBECONFIG and that the cluster is running"
            )

            proxy.resume()
            preflight(api_client, timeout)


def test_crds_of_another_version(tmp_path: Path) -> None:
    """An older CRD that does not serve this operator's version is refused with what to do."""
    old = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "builds.buildfarm.dev"},
        "spec": {
            "group": "buildfarm.dev",
            "scope": "Namespaced",
            "names": {"kind": "Build", "plural": "builds", "singular": "build", "listKind": "BuildList"},
            "versions": [
                {
                    "name": "v1alpha0",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                }
            ],
        },
    }
    crd_dir = tmp_path / "old-crds"
    crd_dir.mkdir()
    (crd_dir / "buildfarm.dev_builds.yaml").write_text(yaml.safe_dump(old))
    try:
        with ControlPlane(tmp_path / "old-controlplane", crd_dir=crd_dir) as old_cluster:
            result = run_operator(tmp_path, "--kubeconfig", str(old_cluster.kubeconfig))
    except BinaryNotFoundError as error:
        pytest.skip(f"no local control plane binaries: {error}")
    assert result.returncode == 1, result.stderr
    assert one_line(result) == (
        "CRD builds.buildfarm.dev does not serve v1alpha1 (it serves: v1alpha0): "
        "update the CRDs to this operator's version: "
        "run `kubectl apply -f crds/` from the buildfarm repository"
    )
