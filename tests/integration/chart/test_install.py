"""`helm install` of the chart into the real test API server, then what its RBAC and its admission policy
let real identities do: agents created by `buildfarm worker add` (their own tokens), a view-only and an
edit user. No kubelet runs, so the operator's pods never start: the objects, the authorizer's answers and
the API server's refusals are what is asserted.
"""

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from buildfarm import constants as c
from buildfarm.cli.main import cli
from buildfarm.dev.binaries import helm as helm_binary
from buildfarm.dev.controlplane import new_api_client
from tests.conftest import discard_namespace
from tests.support.agents import FAKE_COMMAND, ArchiveServer
from tests.support.chart import CHART, Helm, values_args
from tests.support.farm import wait_for
from tests.support.identities import Identity, service_account, write_kubeconfig
from tests.support.operators import buildfarm_command

TIMEOUT = 10
T0 = "2026-01-01T00:00:00Z"


@dataclass
class Release:
    name: str
    namespace: str  # the release's
    farm: str  # the farm namespace
    fullname: str
    kubeconfig: str
    tmp: Path

    @property
    def agent_role(self) -> str:
        return f"{self.fullname}-agent"


@pytest.fixture(scope="module")
def helm() -> Helm:
    return Helm(helm_binary())


@pytest.fixture(scope="module")
def release(
    helm: Helm, kubeconfig: str, core_v1: client.CoreV1Api, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Release]:
    """The chart installed with its defaults (2 replicas, policy on), except that the session's CRDs are
    used as they are and every name is unique to this run."""
    suffix = uuid.uuid4().hex[:6]
    rel = Release(
        name=f"bf-{suffix}",
        namespace=f"bf-{suffix}",
        farm=f"bf-{suffix}-farm",
        fullname=f"bfc-{suffix}",
        kubeconfig=kubeconfig,
        tmp=tmp_path_factory.mktemp("chart"),
    )
    values = {"fullnameOverride": rel.fullname, "farmNamespace.name": rel.farm, "crds.install": False}
    args = ["install", rel.name, str(CHART), "-n", rel.namespace, "--create-namespace", *values_args(values)]
    helm.run(*args, kubeconfig=kubeconfig)
    yield rel
    helm.run("uninstall", rel.name, "-n", rel.namespace, kubeconfig=kubeconfig)
    for namespace in (rel.namespace, rel.farm):
        core_v1.delete_namespace(namespace, _request_timeout=TIMEOUT)


def admin(rel: Release, *args: str) -> Any:
    """`buildfarm worker ...` as the farm's administrator, pointed at this release."""
    return CliRunner().invoke(
        cli,
        [
            "worker",
            *args,
            "--farm-namespace",
            rel.farm,
            "--agent-role",
            rel.agent_role,
            "--kubeconfig",
            rel.kubeconfig,
        ],
    )


def add_worker(rel: Release, name: str, *extra: str) -> Path:
    """`buildfarm worker add`, as the farm's administrator; returns the kubeconfig it wrote."""
    out = rel.tmp / f"{name}.kubeconfig"
    result = admin(rel, "add", name, "--platform", "ios", "--output-kubeconfig", str(out), *extra)
    assert result.exit_code == 0, result.output
    return out


class Agent:
    """An agent-like client: the calls of docs/agent-protocol.md, with the token `worker add` wrote."""

    def __init__(self, name: str, kubeconfig: Path) -> None:
        self.name = name
        self.api_client = new_api_client(kubeconfig)
        self.custom = client.CustomObjectsApi(self.api_client)
        self.leases = client.CoordinationV1Api(self.api_client)

    def patch_build_status(self, namespace: str, build: str, status: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object_status(
            c.GROUP, c.VERSION, namespace, c.BUILD_PLURAL, build, {"status": status}, _request_timeout=TIMEOUT
        )

    def patch_worker_status(self, worker: str, status: dict[str, Any]) -> None:
        self.custom.patch_cluster_custom_object_status(
            c.GROUP, c.VERSION, c.WORKER_PLURAL, worker, {"status": status}, _request_timeout=TIMEOUT
        )

    def create_lease(self, namespace: str, name: str, holder: str) -> None:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name},
            "spec": {
                "holderIdentity": holder,
                "leaseDurationSeconds": 40,
                "renewTime": now,
                "acquireTime": now,
            },
        }
        self.leases.create_namespaced_lease(namespace, body, _request_timeout=TIMEOUT)

    def patch_lease(self, namespace: str, name: str, holder: str) -> None:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        self.leases.patch_namespaced_lease(
            name, namespace, {"spec": {"holderIdentity": holder, "renewTime": now}}, _request_timeout=TIMEOUT
        )

    def close(self) -> None:
        self.api_client.close()


def refusal(call: Callable[[], object]) -> tuple[int, str]:
    with pytest.raises(ApiException) as refused:
        call()
    body = json.loads(refused.value.body or "{}")
    return int(refused.value.status), str(body.get("message", ""))


@dataclass
class Farm:
    rel: Release
    namespace: str  # where the test's builds live
    a: Agent
    b: Agent
    admin: client.CustomObjectsApi

    def build(self, status: dict[str, Any] | None = None) -> str:
        name = f"b-{uuid.uuid4().hex[:6]}"
        body = {
            "apiVersion": c.API_VERSION,
            "kind": c.BUILD_KIND,
            "metadata": {"name": name},
            "spec": {"platform": "ios", "source": {"git": {"url": "https://example.com/app.git"}}},
        }
        self.admin.create_namespaced_custom_object(
            c.GROUP, c.VERSION, self.namespace, c.BUILD_PLURAL, body, _request_timeout=TIMEOUT
        )
        if status:
            self.set_status(name, status)
        return name

    def set_status(self, name: str, status: dict[str, Any]) -> None:
        """As the operator would (the admin is not an agent: the policy does not apply)."""
        self.admin.patch_namespaced_custom_object_status(
            c.GROUP,
            c.VERSION,
            self.namespace,
            c.BUILD_PLURAL,
            name,
            {"status": status},
            _request_timeout=TIMEOUT,
        )

    def get_build(self, name: str) -> dict[str, Any]:
        body: dict[str, Any] = self.admin.get_namespaced_custom_object(
            c.GROUP, c.VERSION, self.namespace, c.BUILD_PLURAL, name, _request_timeout=TIMEOUT
        )
        return body

    def assigned_to(self, worker: str, attempt: int = 1) -> str:
        return self.build({"phase": "Assigned", "workerName": worker, "attempt": attempt, "assignedAt": T0})


@pytest.fixture(scope="module")
def farm(release: Release, api_client: client.ApiClient, core_v1: client.CoreV1Api) -> Iterator[Farm]:
    suffix = uuid.uuid4().hex[:6]
    a_name, b_name = f"mac-a-{suffix}", f"mac-b-{suffix}"
    a = Agent(a_name, add_worker(release, a_name))
    b = Agent(b_name, add_worker(release, b_name))
    namespace = f"builds-{suffix}"
    core_v1.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)), _request_timeout=TIMEOUT
    )
    the_farm = Farm(release, namespace, a, b, client.CustomObjectsApi(api_client))

    # The policy and the new bindings reach the API server's caches shortly after they are written:
    # wait until an agent's foreign write is refused by the policy itself (not by RBAC).
    def policy_active() -> bool:
        try:
            b.patch_worker_status(a_name, {"capabilities": {"osVersion": "probe"}})
        except ApiException as error:
            return "writes only its own Worker" in (error.body or "")
        return False

    wait_for("the admission policy to refuse an agent writing another Worker", policy_active, timeout=60)
    wait_for(
        "agent A's bindings",
        lambda: _succeeds(lambda: a.patch_worker_status(a_name, {"capabilities": {"osVersion": "probe"}})),
        timeout=30,
    )
    yield the_farm
    a.close()
    b.close()
    discard_namespace(core_v1, client.CustomObjectsApi(api_client), namespace)
    for name in (a_name, b_name):
        admin(release, "remove", name)


# The objects


def test_install_creates_the_release_objects(release: Release, api_client: client.ApiClient) -> None:
    apps = client.AppsV1Api(api_client)
    rbac = client.RbacAuthorizationV1Api(api_client)
    deployment = apps.read_namespaced_deployment(f"{release.fullname}-operator", release.namespace)
    assert deployment.spec.replicas == 2
    container = deployment.spec.template.spec.containers[0]
    assert "--standalone" not in container.args  # two replicas peer
    assert container.security_context.read_only_root_filesystem is True
    operator_role = rbac.read_cluster_role(f"{release.fullname}-operator")
    assert operator_role.metadata.labels["app.kubernetes.io/managed-by"] == "Helm"
    for suffix in ("view", "edit", "agent", "artifacts"):
        rbac.read_cluster_role(f"{release.fullname}-{suffix}")
    reader = rbac.read_namespaced_role_binding(
        f"{release.fullname}-artifacts-authentication-reader", "kube-system"
    )
    assert reader.role_ref.name == "extension-apiserver-authentication-reader"
    apps = client.AppsV1Api(api_client)
    assert (
        apps.read_namespaced_deployment(f"{release.fullname}-artifacts", release.namespace).spec.replicas == 1
    )
    core = client.CoreV1Api(api_client)
    core.read_namespaced_persistent_volume_claim(f"{release.fullname}-artifacts", release.namespace)
    core.read_namespaced_service(f"{release.fullname}-artifacts", release.namespace)
    rbac.read_namespaced_role(f"{release.fullname}-agent", release.farm)
    rbac.read_namespaced_role(f"{release.fullname}-operator", release.farm)
    admission = client.AdmissionregistrationV1Api(api_client)
    policy = admission.read_validating_admission_policy(f"{release.fullname}-agents")
    assert policy.spec.failure_policy == "Fail"
    binding = admission.read_validating_admission_policy_binding(f"{release.fullname}-agents")
    assert binding.spec.validation_actions == ["Deny"]
    peering = client.CustomObjectsApi(api_client).get_cluster_custom_object(
        "kopf.dev", "v1", "clusterkopfpeerings", release.fullname
    )
    assert peering["metadata"]["name"] == release.fullname


# The policy's type check (status.typeChecking) is written by kube-controller-manager, which does not run
# here; an expression that failed at run time would refuse the writes the tests below expect to pass.


# What an agent may do


def test_assigned_agent_runs_its_build(farm: Farm) -> None:
    build = farm.assigned_to(farm.a.name)
    farm.a.patch_build_status(
        farm.namespace, build, {"phase": "Running", "reason": "Started", "startedAt": T0}
    )
    farm.a.patch_build_status(farm.namespace, build, {"logTail": "compiling\n"})
    farm.a.patch_build_status(
        farm.namespace, build, {"phase": "Succeeded", "reason": "Succeeded", "finishedAt": T0}
    )
    assert farm.get_build(build)["status"]["phase"] == "Succeeded"


def test_agent_hands_a_build_back(farm: Farm) -> None:
    build = farm.assigned_to(farm.a.name)
    farm.a.patch_build_status(
        farm.namespace, build, {"phase": "Pending", "workerName": "", "reason": "HandedBack"}
    )
    assert farm.get_build(build)["status"]["workerName"] == ""


def test_agent_cannot_write_another_workers_build(farm: Farm) -> None:
    build = farm.assigned_to(farm.b.name)
    code, message = refusal(lambda: farm.a.patch_build_status(farm.namespace, build, {"phase": "Running"}))
    assert code == 403
    assert (
        f"agent of worker {farm.a.name} may not write the status of build {farm.namespace}/{build}" in message
    )
    assert f"it is assigned to worker {farm.b.name}" in message


def test_agent_cannot_write_a_build_at_an_old_attempt(farm: Farm) -> None:
    """A's attempt 1 was requeued, then given to B at attempt 2: A's late writes are refused."""
    build = farm.assigned_to(farm.a.name)
    farm.set_status(build, {"phase": "Pending", "workerName": "", "reason": "Requeued"})
    _, message = refusal(lambda: farm.a.patch_build_status(farm.namespace, build, {"logTail": "late"}))
    assert "it is assigned to no worker" in message
    farm.set_status(build, {"phase": "Assigned", "workerName": farm.b.name, "attempt": 2})
    _, message = refusal(lambda: farm.a.patch_build_status(farm.namespace, build, {"phase": "Running"}))
    assert f"it is assigned to worker {farm.b.name}" in message


def test_agent_cannot_assign_a_build_to_itself(farm: Farm) -> None:
    build = farm.build({"phase": "Pending", "reason": "Queued"})
    code, message = refusal(
        lambda: farm.a.patch_build_status(
            farm.namespace, build, {"phase": "Assigned", "workerName": farm.a.name, "attempt": 1}
        )
    )
    assert code == 403
    assert (
        f"may not assign build {farm.namespace}/{build} to itself: only the operator assigns builds"
        in message
    )


def test_agent_cannot_change_the_attempt(farm: Farm) -> None:
    build = farm.assigned_to(farm.a.name)
    _, message = refusal(lambda: farm.a.patch_build_status(farm.namespace, build, {"attempt": 5}))
    assert "may not change status.attempt" in message
    assert "(from 1 to 5)" in message


def test_agent_cannot_write_a_finished_build(farm: Farm) -> None:
    build = farm.assigned_to(farm.a.name)
    farm.set_status(build, {"phase": "Cancelled", "reason": "Cancelled"})
    _, message = refusal(lambda: farm.a.patch_build_status(farm.namespace, build, {"logTail": "more"}))
    assert "it is Cancelled, no longer Assigned or Running" in message


def test_agent_writes_only_its_own_worker_capabilities(farm: Farm) -> None:
    farm.a.patch_worker_status(farm.a.name, {"capabilities": {"osVersion": "macOS 15.3", "cpuCores": 10}})
    code, message = refusal(
        lambda: farm.a.patch_worker_status(farm.b.name, {"capabilities": {"osVersion": "x"}})
    )
    assert code == 403
    assert f"may not update Worker {farm.b.name}: an agent writes only its own Worker" in message
    reservation = {"namespace": farm.namespace, "name": "x", "uid": "u", "attempt": 1, "reservedAt": T0}
    _, message = refusal(lambda: farm.a.patch_worker_status(farm.a.name, {"reservations": [reservation]}))
    assert f"may not change status.reservations of Worker {farm.a.name}: the operator owns it" in message
    ready = {"type": "Ready", "status": "True", "reason": "LeaseRenewed", "lastTransitionTime": T0}
    _, message = refusal(lambda: farm.a.patch_worker_status(farm.a.name, {"conditions": [ready]}))
    assert "may not change status.conditions" in message
    _, message = refusal(lambda: farm.a.patch_worker_status(farm.a.name, {"buildsSucceeded": 99}))
    assert "may not change status.buildsSucceeded" in message


def test_agent_keeps_only_its_own_lease(farm: Farm) -> None:
    ns = farm.rel.farm
    farm.a.create_lease(ns, farm.a.name, farm.a.name)
    farm.a.patch_lease(ns, farm.a.name, farm.a.name)
    farm.a.patch_lease(ns, farm.a.name, "")  # released on a graceful stop
    farm.b.create_lease(ns, farm.b.name, farm.b.name)
    code, message = refusal(lambda: farm.a.patch_lease(ns, farm.b.name, farm.a.name))
    assert code == 403
    assert (
        f"may not update Lease {ns}/{farm.b.name}: an agent renews only its own Lease {ns}/{farm.a.name}"
        in message
    )
    _, message = refusal(lambda: farm.a.patch_lease(ns, farm.a.name, farm.b.name))
    assert "it may hold the Lease only as itself" in message


def test_agent_posts_events_only_about_builds_as_an_agent(farm: Farm) -> None:
    build = farm.assigned_to(farm.a.name)
    core = client.CoreV1Api(farm.a.api_client)

    def event(kind: str, name: str, component: str) -> dict[str, Any]:
        return {
            "metadata": {"name": f"{name}.{uuid.uuid4().hex[:8]}", "namespace": farm.namespace},
            "involvedObject": {
                "apiVersion": c.API_VERSION,
                "kind": kind,
                "name": name,
                "namespace": farm.namespace,
            },
            "reason": "Running",
            "message": "The build started.",
            "type": "Normal",
            "firstTimestamp": T0,
            "lastTimestamp": T0,
            "count": 1,
            "reportingComponent": component,
            "reportingInstance": "buildfarm-agent-test",
            "source": {"component": component},
        }

    core.create_namespaced_event(farm.namespace, event("Build", build, "buildfarm.dev/agent"))
    code, message = refusal(
        lambda: core.create_namespaced_event(farm.namespace, event("Build", build, "buildfarm.dev/operator"))
    )
    assert code == 403
    assert "reported by buildfarm.dev/operator" in message
    _, message = refusal(
        lambda: core.create_namespaced_event(
            farm.namespace, event("Worker", farm.b.name, "buildfarm.dev/agent")
        )
    )
    assert f"this one is about Worker {farm.b.name}" in message


# People


def person(
    rel: Release, api_client: client.ApiClient, kubeconfig: str, namespace: str, role: str, out: Path
) -> Identity:
    name = f"{role}-{uuid.uuid4().hex[:4]}"
    identity = service_account(api_client, Path(kubeconfig), namespace, name, out)
    client.RbacAuthorizationV1Api(api_client).create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name=name),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=f"{rel.fullname}-{role}"
            ),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name=name, namespace=namespace)],
        ),
        _request_timeout=TIMEOUT,
    )
    wait_for(
        f"{name}'s binding", lambda: identity.may("list", c.GROUP, c.BUILD_PLURAL, namespace), timeout=30
    )
    return identity


def test_view_reads_but_cannot_create_builds(
    farm: Farm, api_client: client.ApiClient, kubeconfig: str, tmp_path: Path
) -> None:
    viewer = person(farm.rel, api_client, kubeconfig, farm.namespace, "view", tmp_path)
    with new_api_client(viewer.kubeconfig) as viewer_client:
        custom = client.CustomObjectsApi(viewer_client)
        custom.list_namespaced_custom_object(c.GROUP, c.VERSION, farm.namespace, c.BUILD_PLURAL)
        body = {
            "apiVersion": c.API_VERSION,
            "kind": c.BUILD_KIND,
            "metadata": {"name": "from-viewer"},
            "spec": {"platform": "ios", "source": {"git": {"url": "https://example.com/app.git"}}},
        }
        code, _ = refusal(
            lambda: custom.create_namespaced_custom_object(
                c.GROUP, c.VERSION, farm.namespace, c.BUILD_PLURAL, body
            )
        )
        assert code == 403


def test_edit_creates_and_cancels_but_cannot_write_status(
    farm: Farm, api_client: client.ApiClient, kubeconfig: str, tmp_path: Path
) -> None:
    editor = person(farm.rel, api_client, kubeconfig, farm.namespace, "edit", tmp_path)
    with new_api_client(editor.kubeconfig) as editor_client:
        custom = client.CustomObjectsApi(editor_client)
        body = {
            "apiVersion": c.API_VERSION,
            "kind": c.BUILD_KIND,
            "metadata": {"name": "from-editor"},
            "spec": {"platform": "ios", "source": {"git": {"url": "https://example.com/app.git"}}},
        }
        custom.create_namespaced_custom_object(c.GROUP, c.VERSION, farm.namespace, c.BUILD_PLURAL, body)
        custom.patch_namespaced_custom_object(
            c.GROUP, c.VERSION, farm.namespace, c.BUILD_PLURAL, "from-editor", {"spec": {"cancel": True}}
        )
        code, _ = refusal(
            lambda: custom.patch_namespaced_custom_object_status(
                c.GROUP,
                c.VERSION,
                farm.namespace,
                c.BUILD_PLURAL,
                "from-editor",
                {"status": {"phase": "Succeeded"}},
            )
        )
        assert code == 403
    assert farm.get_build("from-editor")["spec"]["cancel"] is True
    assert not editor.may("patch", c.GROUP, "builds/status", farm.namespace)


# Worker identities


def test_removed_worker_is_locked_out(farm: Farm, release: Release, api_client: client.ApiClient) -> None:
    name = f"mac-gone-{uuid.uuid4().hex[:4]}"
    agent = Agent(name, add_worker(release, name, "--token-lifetime", "1h"))
    try:
        wait_for(
            "the new agent's first write",
            lambda: _succeeds(lambda: agent.patch_worker_status(name, {"capabilities": {"osVersion": "x"}})),
            timeout=30,
        )
        result = admin(release, "remove", name)
        assert result.exit_code == 0, result.output
        assert f"ServiceAccount {release.farm}/worker-{name}" in result.output

        def locked_out() -> bool:
            try:
                agent.create_lease(release.farm, name, name)
            except ApiException as error:
                return error.status == 401
            return False

        wait_for("the removed worker's token to be refused", locked_out, timeout=30)
        with pytest.raises(ApiException) as gone:
            client.CustomObjectsApi(api_client).get_cluster_custom_object(
                c.GROUP, c.VERSION, c.WORKER_PLURAL, name
            )
        assert gone.value.status == 404
    finally:
        agent.close()


def test_add_refuses_a_worker_that_already_has_an_identity(farm: Farm, release: Release) -> None:
    result = admin(release, "add", farm.a.name, "--output-kubeconfig", str(release.tmp / "again"))
    assert result.exit_code == 1
    assert f"`buildfarm worker rotate {farm.a.name}`" in result.output


def test_rotate_with_revoke_replaces_the_token(farm: Farm, release: Release) -> None:
    name = f"mac-rot-{uuid.uuid4().hex[:4]}"
    old = Agent(name, add_worker(release, name))
    new_file = release.tmp / f"{name}-new.kubeconfig"
    try:
        result = admin(release, "rotate", name, "--revoke", "--output-kubeconfig", str(new_file))
        assert result.exit_code == 0, result.output
        assert oct(new_file.stat().st_mode & 0o777) == "0o600"
        new = Agent(name, new_file)
        try:
            wait_for(
                "the rotated token to work",
                lambda: _succeeds(
                    lambda: new.patch_worker_status(name, {"capabilities": {"osVersion": "y"}})
                ),
                timeout=30,
            )

            def old_refused() -> bool:
                try:
                    old.patch_worker_status(name, {"capabilities": {"osVersion": "z"}})
                except ApiException as error:
                    return error.status == 401
                return False

            wait_for("the revoked token to be refused", old_refused, timeout=30)
        finally:
            new.close()
    finally:
        old.close()
        admin(release, "remove", name)


def _succeeds(call: Callable[[], object]) -> bool:
    try:
        call()
    except ApiException:
        return False
    return True


# The operator's identity


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_agent_and_operator_with_the_charts_identities_run_a_build(
    farm: Farm, release: Release, api_client: client.ApiClient, kubeconfig: str, tmp_path: Path
) -> None:
    """End to end with the chart's identities only: the real operator with a token of the chart's operator
    ServiceAccount and the chart's settings (peering, the farm namespace, the liveness endpoint), and the
    real agent with the kubeconfig `buildfarm worker add` wrote, held by the admission policy. The
    operator's startup check finds every permission it needs, reads the agent's Lease, marks the Worker
    Ready and assigns the build; the agent runs it to Succeeded."""
    account = f"{release.fullname}-operator"
    token = client.CoreV1Api(api_client).create_namespaced_service_account_token(
        account,
        release.namespace,
        client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
        ),
    )
    admin_config = yaml.safe_load(Path(kubeconfig).read_text())
    cluster = admin_config["clusters"][0]["cluster"]
    ca = (
        cluster.get("certificate-authority-data")
        or base64.b64encode(Path(cluster["certificate-authority"]).read_bytes()).decode()
    )
    operator_kubeconfig = write_kubeconfig(
        tmp_path / "operator.kubeconfig", cluster["server"], {"token": token.status.token}, ca
    )
    suffix = uuid.uuid4().hex[:6]
    worker = f"mac-e2e-{suffix}"
    agent_kubeconfig = add_worker(release, worker, "--capacity", "2", "--label", f"chart-test={suffix}")
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith(("BUILDFARM_", "KUBECONFIG"))}
    operator_env = clean | {
        "KUBECONFIG": str(operator_kubeconfig),
        "BUILDFARM_FARM_NAMESPACE": release.farm,
        "BUILDFARM_LIVENESS_ENDPOINT": f"http://127.0.0.1:{port}/healthz",
        "BUILDFARM_PEERING_NAME": release.fullname,
        "BUILDFARM_RESYNC_SECONDS": "2",
    }
    agent_env = clean | {
        "KUBECONFIG": str(agent_kubeconfig),
        "BUILDFARM_AGENT_WORKER_NAME": worker,
        "BUILDFARM_AGENT_NAMESPACE": release.farm,
        "BUILDFARM_AGENT_WORK_DIR": str(tmp_path / "agent"),
        "BUILDFARM_AGENT_COMMAND": FAKE_COMMAND,
        "BUILDFARM_AGENT_RENEW_INTERVAL_SECONDS": "1",
        "BUILDFARM_AGENT_RELIST_SECONDS": "5",
        "BUILDFARM_AGENT_LOG_INTERVAL_SECONDS": "0.5",
    }
    operator_log, agent_log = tmp_path / "operator.log", tmp_path / "agent.log"
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(ArchiveServer(tmp_path / "www"))
        build = f"e2e-{suffix}"
        body = {
            "apiVersion": c.API_VERSION,
            "kind": c.BUILD_KIND,
            "metadata": {"name": build},
            "spec": {
                "platform": "ios",
                "source": server.source("app"),
                "workerSelector": {"matchLabels": {"chart-test": suffix}},
            },
        }
        farm.admin.create_namespaced_custom_object(c.GROUP, c.VERSION, farm.namespace, c.BUILD_PLURAL, body)
        # As the chart runs it: two replicas peer, so no --standalone.
        operator = stack.enter_context(
            process([*buildfarm_command(), "operator"], operator_env, operator_log)
        )
        agent = stack.enter_context(process([*buildfarm_command(), "agent"], agent_env, agent_log))

        def finished() -> str | None:
            for proc, log in ((operator, operator_log), (agent, agent_log)):
                assert proc.poll() is None, f"{log.stem} exited {proc.returncode}: {log.read_text()[-2000:]}"
            status = farm.get_build(build).get("status", {})
            return status.get("phase") if status.get("phase") in ("Succeeded", "Failed") else None

        phase = wait_for(f"build {build} to finish", finished, timeout=120)
        status = farm.get_build(build)["status"]
        assert (phase, status["workerName"], status["attempt"]) == ("Succeeded", worker, 1), status
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as response:
            assert response.status == 200
        for log in (operator_log, agent_log):
            assert "Forbidden" not in log.read_text(), log.read_text()[-2000:]
    result = admin(release, "remove", worker)
    assert result.exit_code == 0, result.output


@contextlib.contextmanager
def process(command: list[str], env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
