"""The API server itself enforces the Build invariants (CEL rules), whoever the writer is.

One test per rule, each against the real kube-apiserver, so the rules hold for the operator, the agents
and kubectl alike.
"""

import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import ApiextensionsV1Api, CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from buildfarm import constants as c

SAMPLES = Path(__file__).parents[2] / "crds" / "samples"
TIMEOUT = 10


def build_body(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.BUILD_KIND,
        "metadata": {"name": name},
        "spec": {"platform": "ios", "source": {"git": {"url": "https://example.com/app.git"}}} | spec,
    }


def create_build(api: CustomObjectsApi, ns: str, name: str = "b", **spec: Any) -> dict[str, Any]:
    return api.create_namespaced_custom_object(  # type: ignore[no-any-return]
        c.GROUP, c.VERSION, ns, c.BUILD_PLURAL, build_body(name, **spec), _request_timeout=TIMEOUT
    )


def patch_status(api: CustomObjectsApi, ns: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
    return api.patch_namespaced_custom_object_status(  # type: ignore[no-any-return]
        c.GROUP, c.VERSION, ns, c.BUILD_PLURAL, name, {"status": status}, _request_timeout=TIMEOUT
    )


def patch_spec(api: CustomObjectsApi, ns: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return api.patch_namespaced_custom_object(  # type: ignore[no-any-return]
        c.GROUP, c.VERSION, ns, c.BUILD_PLURAL, name, {"spec": spec}, _request_timeout=TIMEOUT
    )


def rejected(call: Any, *args: Any, **kwargs: Any) -> str:
    """Run an API call that must be refused with 422 Invalid; return the server's message."""
    with pytest.raises(ApiException) as info:
        call(*args, **kwargs)
    assert info.value.status == 422, info.value.body
    return str(info.value.body)


def test_crds_are_established(api_client: Any) -> None:
    ext = ApiextensionsV1Api(api_client)
    for plural in (c.BUILD_PLURAL, c.WORKER_PLURAL):
        crd = ext.read_custom_resource_definition(f"{plural}.{c.GROUP}", _request_timeout=TIMEOUT)
        conditions = {cond.type: cond.status for cond in crd.status.conditions}
        assert conditions["Established"] == "True"


def test_samples_are_accepted(custom_objects: CustomObjectsApi, namespace: str) -> None:
    suffix = uuid.uuid4().hex[:6]
    for path in sorted(SAMPLES.glob("*.yaml")):
        body = yaml.safe_load(path.read_text())
        if body["kind"] == c.BUILD_KIND:
            custom_objects.create_namespaced_custom_object(
                c.GROUP, c.VERSION, namespace, c.BUILD_PLURAL, body, _request_timeout=TIMEOUT
            )
        else:
            body["metadata"]["name"] += f"-{suffix}"
            custom_objects.create_cluster_custom_object(
                c.GROUP, c.VERSION, c.WORKER_PLURAL, body, _request_timeout=TIMEOUT
            )


def test_defaults_are_applied(custom_objects: CustomObjectsApi, namespace: str) -> None:
    spec = create_build(custom_objects, namespace)["spec"]
    assert (spec["priority"], spec["timeoutSeconds"], spec["maxAttempts"], spec["cancel"]) == (
        0,
        7200,
        3,
        False,
    )


@pytest.mark.parametrize(
    ("case", "spec", "want_message"),
    [
        ("unknown platform", {"platform": "windows"}, "Unsupported value"),
        (
            "two sources",
            {"source": {"git": {"url": "https://e/a.git"}, "archive": {"url": "https://e/a.tgz"}}},
            "source must set exactly one of archive or git",
        ),
        ("no source", {"source": {}}, "source must set exactly one of archive or git"),
        ("negative timeout", {"timeoutSeconds": -5}, "spec.timeoutSeconds"),
        ("priority out of bounds", {"priority": 100000}, "spec.priority"),
        ("zero attempts", {"maxAttempts": 0}, "spec.maxAttempts"),
        ("bad archive checksum", {"source": {"archive": {"url": "u", "sha256": "nope"}}}, "sha256"),
    ],
)
def test_invalid_build_is_rejected_at_create(
    custom_objects: CustomObjectsApi, namespace: str, case: str, spec: dict[str, Any], want_message: str
) -> None:
    message = rejected(create_build, custom_objects, namespace, **spec)
    assert want_message in message, case


@pytest.mark.parametrize(
    ("case", "spec"),
    [
        ("priority out of bounds", {"priority": 100000}),
        ("negative timeout", {"timeoutSeconds": -5}),
        ("bad archive checksum", {"source": {"archive": {"url": "https://e/a.tgz", "sha256": "nope"}}}),
        ("bad profile", {"profile": "$(touch /tmp/pwned)"}),
    ],
)
def test_plain_schema_error_has_no_nil_noise(
    custom_objects: CustomObjectsApi, namespace: str, case: str, spec: dict[str, Any]
) -> None:
    """The API server appends "<nil>: ... some validation rules were not checked" only after errors that
    stop CEL from running (an unsupported enum value, a missing field, a too-long string, a wrong type);
    every other error stands alone."""
    message = rejected(create_build, custom_objects, namespace, **spec)
    assert "<nil>" not in message, case
    assert "some validation rules were not checked" not in message, case


@pytest.mark.parametrize("phase", ["Succeeded", "Failed", "Cancelled"])
def test_terminal_phase_never_changes(custom_objects: CustomObjectsApi, namespace: str, phase: str) -> None:
    create_build(custom_objects, namespace)
    # Through Assigned, since the phase graph allows Succeeded only after an assignment.
    patch_status(custom_objects, namespace, "b", {"phase": "Assigned", "workerName": "w1", "attempt": 1})
    patch_status(custom_objects, namespace, "b", {"phase": phase})
    message = rejected(patch_status, custom_objects, namespace, "b", {"phase": "Pending"})
    assert "status.phase is final" in message


def test_attempt_never_decreases(custom_objects: CustomObjectsApi, namespace: str) -> None:
    create_build(custom_objects, namespace)
    patch_status(custom_objects, namespace, "b", {"phase": "Assigned", "workerName": "w1", "attempt": 2})
    message = rejected(patch_status, custom_objects, namespace, "b", {"attempt": 1})
    assert "status.attempt cannot decrease" in message


def test_worker_cannot_change_without_a_new_attempt(custom_objects: CustomObjectsApi, namespace: str) -> None:
    create_build(custom_objects, namespace)
    patch_status(custom_objects, namespace, "b", {"phase": "Assigned", "workerName": "w1", "attempt": 1})
    message = rejected(patch_status, custom_objects, namespace, "b", {"workerName": "w2"})
    assert "already assigned for this attempt" in message
    # The same change together with a new attempt is a legitimate reassignment.
    moved = patch_status(custom_objects, namespace, "b", {"workerName": "w2", "attempt": 2})
    assert (moved["status"]["workerName"], moved["status"]["attempt"]) == ("w2", 2)


def test_worker_cannot_be_set_from_empty_without_a_new_attempt(
    custom_objects: CustomObjectsApi, namespace: str
) -> None:
    create_build(custom_objects, namespace)
    patch_status(custom_objects, namespace, "b", {"phase": "Pending", "attempt": 0})
    message = rejected(
        patch_status, custom_objects, namespace, "b", {"phase": "Assigned", "workerName": "w1"}
    )
    # Nothing is assigned yet, so the message must not claim it is.
    assert "can only be set together with an increase of status.attempt" in message
    assert "already assigned" not in message


def test_assigned_needs_a_worker(custom_objects: CustomObjectsApi, namespace: str) -> None:
    create_build(custom_objects, namespace)
    message = rejected(patch_status, custom_objects, namespace, "b", {"phase": "Assigned", "attempt": 1})
    assert "must be set while the build is Assigned or Running" in message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("platform", "android"),
        ("priority", 5),
        ("profile", "other"),
        ("source", {"git": {"url": "https://example.com/other.git"}}),
        ("workerSelector", {"matchLabels": {"xcode": "16"}}),
    ],
)
def test_spec_is_immutable_after_creation(
    custom_objects: CustomObjectsApi, namespace: str, field: str, value: Any
) -> None:
    create_build(custom_objects, namespace)
    message = rejected(patch_spec, custom_objects, namespace, "b", {field: value})
    assert f"spec.{field} is immutable after creation" in message
    assert f'"field":"spec.{field}"' in message, "the error must point at the field, not at spec"


def test_cancel_and_ttl_stay_mutable(custom_objects: CustomObjectsApi, namespace: str) -> None:
    create_build(custom_objects, namespace)
    spec = patch_spec(custom_objects, namespace, "b", {"cancel": True, "ttlSecondsAfterFinished": 60})["spec"]
    assert (spec["cancel"], spec["ttlSecondsAfterFinished"]) == (True, 60)


def test_cancel_cannot_go_back_to_false(custom_objects: CustomObjectsApi, namespace: str) -> None:
    create_build(custom_objects, namespace, cancel=True)
    message = rejected(patch_spec, custom_objects, namespace, "b", {"cancel": False})
    assert "spec.cancel cannot be set back to false" in message


def test_field_selector_on_assigned_worker(custom_objects: CustomObjectsApi, namespace: str) -> None:
    for name, worker in (("b1", "mac-mini-1"), ("b2", "mac-mini-2"), ("b3", "mac-mini-1")):
        create_build(custom_objects, namespace, name)
        patch_status(
            custom_objects, namespace, name, {"phase": "Assigned", "workerName": worker, "attempt": 1}
        )
    create_build(custom_objects, namespace, "b4", platform="android")

    mine = custom_objects.list_namespaced_custom_object(
        c.GROUP,
        c.VERSION,
        namespace,
        c.BUILD_PLURAL,
        field_selector=f"{c.BUILD_WORKER_FIELD}=mac-mini-1",
        _request_timeout=TIMEOUT,
    )
    assert sorted(item["metadata"]["name"] for item in mine["items"]) == ["b1", "b3"]
    android = custom_objects.list_namespaced_custom_object(
        c.GROUP,
        c.VERSION,
        namespace,
        c.BUILD_PLURAL,
        field_selector="spec.platform=android",
        _request_timeout=TIMEOUT,
    )
    assert [item["metadata"]["name"] for item in android["items"]] == ["b4"]


def kubectl(kubeconfig: str, *args: str) -> str:
    done = subprocess.run(
        ["kubectl", "--kubeconfig", kubeconfig, *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout


def test_kubectl_shows_columns_categories_and_explain(
    custom_objects: CustomObjectsApi, namespace: str, kubeconfig: str
) -> None:
    create_build(custom_objects, namespace)
    patch_status(
        custom_objects, namespace, "b", {"phase": "Assigned", "workerName": "mac-mini-9", "attempt": 1}
    )
    worker = f"w-{namespace}"
    custom_objects.create_cluster_custom_object(
        c.GROUP,
        c.VERSION,
        c.WORKER_PLURAL,
        {
            "apiVersion": c.API_VERSION,
            "kind": c.WORKER_KIND,
            "metadata": {"name": worker},
            "spec": {"platforms": ["ios"]},
        },
        _request_timeout=TIMEOUT,
    )

    try:
        check_kubectl_columns(kubeconfig, namespace, worker)
    finally:  # Workers are cluster-scoped: a leftover would be a worker for every later test's operator
        custom_objects.delete_cluster_custom_object(
            c.GROUP, c.VERSION, c.WORKER_PLURAL, worker, _request_timeout=TIMEOUT
        )


def check_kubectl_columns(kubeconfig: str, namespace: str, worker: str) -> None:
    builds = kubectl(kubeconfig, "get", "builds.buildfarm.dev", "-n", namespace)
    header = builds.splitlines()[0].split()
    assert header == ["NAME", "PHASE", "PLATFORM", "WORKER", "ATTEMPT", "AGE"]
    assert builds.splitlines()[1].split()[:5] == ["b", "Assigned", "ios", "mac-mini-9", "1"]

    workers = kubectl(kubeconfig, "get", "bfw", worker)
    assert workers.splitlines()[0].split() == [
        "NAME",
        "READY",
        "PLATFORMS",
        "CAPACITY",
        "ACTIVE",
        "CORDONED",
        "AGE",
    ]

    both = kubectl(kubeconfig, "get", "buildfarm", "-A", "-o", "name")
    assert "build.buildfarm.dev/b" in both
    assert f"worker.buildfarm.dev/{worker}" in both

    explained = kubectl(kubeconfig, "explain", "builds.spec.source", "--api-version", c.API_VERSION)
    assert "exactly one of archive or git" in explained
