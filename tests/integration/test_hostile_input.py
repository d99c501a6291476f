"""The API server refuses hostile or broken Build input, naming the field, and accepts the valid forms.

Every case runs against the real kube-apiserver with the generated CRDs, so what is proven here is what
the CEL rules and patterns in crds/ do, for kubectl, the operator and the agents alike.
"""

import uuid
from collections.abc import Callable, Iterator
from typing import Any, Final

import pytest
from kubernetes.client import CoreV1Api, CustomObjectsApi, V1Namespace, V1ObjectMeta
from kubernetes.client.exceptions import ApiException

from buildfarm import constants as c
from buildfarm.api.builds import PHASE_TRANSITIONS, WAIT_REASONS, BuildPhase
from tests.conftest import discard_namespace
from tests.support import inputs

TIMEOUT: Final = 10
NIL_NOISE: Final = "<nil>"

Put = Callable[[Any], dict[str, Any]]


def _git_url(value: str) -> dict[str, Any]:
    return {"source": {"git": {"url": value}}}


def _archive_url(value: str) -> dict[str, Any]:
    return {"source": {"archive": {"url": value}}}


def _revision(value: str) -> dict[str, Any]:
    return {"source": {"git": {"url": "https://example.com/app.git", "revision": value}}}


def _profile(value: str) -> dict[str, Any]:
    return {"profile": value}


def _secret(value: str) -> dict[str, Any]:
    return {"credentials": {"secretName": value}}


def _expression_key(value: str) -> dict[str, Any]:
    return {"workerSelector": {"matchExpressions": [{"key": value, "operator": "Exists"}]}}


def _expression_value(value: str) -> dict[str, Any]:
    return {"workerSelector": {"matchExpressions": [{"key": "xcode", "operator": "In", "values": [value]}]}}


def _label_key(value: str) -> dict[str, Any]:
    return {"workerSelector": {"matchLabels": {value: "16"}}}


def _label_value(value: str) -> dict[str, Any]:
    return {"workerSelector": {"matchLabels": {"xcode": value}}}


# (the field the message must name, how the value goes into a spec, hostile values, valid values)
FIELDS: Final[list[tuple[str, Put, list[tuple[str, str]], list[tuple[str, str]]]]] = [
    ("spec.source.git.url", _git_url, inputs.GIT_URLS_HOSTILE, inputs.GIT_URLS_VALID),
    ("spec.source.archive.url", _archive_url, inputs.ARCHIVE_URLS_HOSTILE, inputs.ARCHIVE_URLS_VALID),
    ("spec.source.git.revision", _revision, inputs.REVISIONS_HOSTILE, inputs.REVISIONS_VALID),
    ("spec.profile", _profile, inputs.PROFILES_HOSTILE, inputs.PROFILES_VALID),
    ("spec.credentials.secretName", _secret, inputs.SECRET_NAMES_HOSTILE, inputs.SECRET_NAMES_VALID),
    (
        "spec.workerSelector.matchExpressions[0].key",
        _expression_key,
        inputs.LABEL_KEYS_HOSTILE,
        inputs.LABEL_KEYS_VALID,
    ),
    (
        "spec.workerSelector.matchExpressions[0].values[0]",
        _expression_value,
        inputs.LABEL_VALUES_HOSTILE,
        inputs.LABEL_VALUES_VALID,
    ),
    ("spec.workerSelector.matchLabels", _label_key, inputs.LABEL_KEYS_HOSTILE, inputs.LABEL_KEYS_VALID),
    (
        "spec.workerSelector.matchLabels[xcode]",
        _label_value,
        inputs.LABEL_VALUES_HOSTILE,
        inputs.LABEL_VALUES_VALID,
    ),
]

HOSTILE: Final = [
    pytest.param(field, put(value), id=f"{field}={case}")
    for field, put, hostile, _ in FIELDS
    for case, value in hostile
]
VALID: Final = [
    pytest.param(put(value), id=f"{field}={case}") for field, put, _, valid in FIELDS for case, value in valid
]


@pytest.fixture(scope="module")
def shared_namespace(core_v1: CoreV1Api, custom_objects: CustomObjectsApi) -> Iterator[str]:
    """One namespace for the many create calls of this module; every build gets a unique name. Its
    builds are deleted with it: with no controller-manager, deleting the namespace alone left them for
    every later cluster-wide operator of the session to schedule."""
    body = V1Namespace(metadata=V1ObjectMeta(generate_name="hostile-"))
    name = core_v1.create_namespace(body, _request_timeout=TIMEOUT).metadata.name
    yield name
    discard_namespace(core_v1, custom_objects, name)


def build_body(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.BUILD_KIND,
        "metadata": {"name": f"b-{uuid.uuid4().hex[:10]}"},
        "spec": {"platform": "ios", "source": {"git": {"url": "https://example.com/app.git"}}} | spec,
    }


def create(api: CustomObjectsApi, ns: str, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    return api.create_namespaced_custom_object(  # type: ignore[no-any-return]
        c.GROUP, c.VERSION, ns, c.BUILD_PLURAL, build_body(spec or {}), _request_timeout=TIMEOUT
    )


def patch_status(api: CustomObjectsApi, ns: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
    return api.patch_namespaced_custom_object_status(  # type: ignore[no-any-return]
        c.GROUP, c.VERSION, ns, c.BUILD_PLURAL, name, {"status": status}, _request_timeout=TIMEOUT
    )


def refused(call: Callable[..., Any], *args: Any) -> str:
    """Run an API call that must be refused with 422 Invalid; return the server's message."""
    with pytest.raises(ApiException) as info:
        call(*args)
    assert info.value.status == 422, info.value.body
    return str(info.value.body)


@pytest.mark.parametrize(("field", "spec"), HOSTILE)
def test_hostile_spec_is_refused_naming_the_field(
    custom_objects: CustomObjectsApi, shared_namespace: str, field: str, spec: dict[str, Any]
) -> None:
    message = refused(create, custom_objects, shared_namespace, spec)
    # The schema validator writes a map entry as matchLabels.xcode, a CEL rule as matchLabels[xcode].
    assert f"{field}:" in message or f"{field.replace('[xcode]', '.xcode')}:" in message
    if "Too long" not in message:
        # The API server adds "<nil>: ... some validation rules were not checked" only under errors that
        # stop CEL from running (too long, unsupported enum value, required, wrong type).
        assert NIL_NOISE not in message


def _subset(part: Any, whole: Any) -> bool:
    """True when every key and value of `part` is in `whole` (which also has the defaults filled in)."""
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(k in whole and _subset(v, whole[k]) for k, v in part.items())
    return bool(part == whole)


@pytest.mark.parametrize("spec", VALID)
def test_valid_spec_is_accepted(
    custom_objects: CustomObjectsApi, shared_namespace: str, spec: dict[str, Any]
) -> None:
    created = create(custom_objects, shared_namespace, spec)
    assert _subset(spec, created["spec"])


@pytest.mark.parametrize(
    ("case", "operator", "values"),
    [
        ("In without values", "In", None),
        ("In with no values", "In", []),
        ("NotIn without values", "NotIn", None),
        ("Exists with values", "Exists", ["x"]),
        ("DoesNotExist with values", "DoesNotExist", ["x"]),
    ],
)
def test_selector_operator_and_values_must_agree(
    custom_objects: CustomObjectsApi, shared_namespace: str, case: str, operator: str, values: Any
) -> None:
    requirement = {"key": "xcode", "operator": operator} | ({} if values is None else {"values": values})
    selector = {"matchExpressions": [requirement]}
    message = refused(create, custom_objects, shared_namespace, {"workerSelector": selector})
    assert "spec.workerSelector.matchExpressions[0].values:" in message, case


def test_documented_selector_is_accepted(custom_objects: CustomObjectsApi, shared_namespace: str) -> None:
    selector = {
        "matchLabels": {"buildfarm.dev/xcode": "16"},
        "matchExpressions": [
            {"key": "kubernetes.io/arch", "operator": "In", "values": ["arm64"]},
            {"key": "buildfarm.dev/cordoned", "operator": "DoesNotExist"},
        ],
    }
    created = create(custom_objects, shared_namespace, {"workerSelector": selector})
    assert created["spec"]["workerSelector"]["matchExpressions"][0]["values"] == ["arm64"]


# --- status writes -------------------------------------------------------------------------------

_PATHS: Final[dict[BuildPhase | None, list[dict[str, Any]]]] = {
    None: [],
    BuildPhase.PENDING: [{"phase": "Pending"}],
    BuildPhase.ASSIGNED: [{"phase": "Assigned", "workerName": "w1", "attempt": 1}],
    BuildPhase.RUNNING: [{"phase": "Assigned", "workerName": "w1", "attempt": 1}, {"phase": "Running"}],
    BuildPhase.SUCCEEDED: [
        {"phase": "Assigned", "workerName": "w1", "attempt": 1},
        {"phase": "Running"},
        {"phase": "Succeeded", "reason": "BuildSucceeded"},
    ],
    BuildPhase.FAILED: [{"phase": "Failed", "reason": "CredentialsNotFound"}],
    BuildPhase.CANCELLED: [{"phase": "Cancelled", "reason": "Cancelled"}],
}


def _write_for(target: BuildPhase) -> dict[str, Any]:
    """A status write moving to `target` that every rule except the phase graph accepts."""
    if target in (BuildPhase.ASSIGNED, BuildPhase.RUNNING):
        return {"phase": target.value, "workerName": "w2", "attempt": 5}
    if target == BuildPhase.PENDING:
        return {"phase": target.value, "workerName": "", "reason": "Queued"}
    return {"phase": target.value, "reason": "Ended"}


@pytest.mark.parametrize(
    ("source", "target"),
    [
        pytest.param(source, target, id=f"{source.value if source else 'new'}->{target.value}")
        for source in [None, *BuildPhase]
        for target in BuildPhase
        if target != source
    ],
)
def test_phase_changes_follow_the_documented_graph(
    custom_objects: CustomObjectsApi,
    shared_namespace: str,
    source: BuildPhase | None,
    target: BuildPhase,
) -> None:
    name = create(custom_objects, shared_namespace)["metadata"]["name"]
    for step in _PATHS[source]:
        patch_status(custom_objects, shared_namespace, name, step)
    write = _write_for(target)
    if target in PHASE_TRANSITIONS[source]:
        assert patch_status(custom_objects, shared_namespace, name, write)["status"]["phase"] == target
    else:
        message = refused(patch_status, custom_objects, shared_namespace, name, write)
        assert "status.phase:" in message
        assert NIL_NOISE not in message


def test_a_status_without_phase_may_only_take_a_first_phase(
    custom_objects: CustomObjectsApi, shared_namespace: str
) -> None:
    name = create(custom_objects, shared_namespace)["metadata"]["name"]
    patch_status(custom_objects, shared_namespace, name, {"message": "seen"})
    message = refused(patch_status, custom_objects, shared_namespace, name, {"phase": "Succeeded"})
    assert "status.phase of a build without a phase can only be set to Pending, Assigned" in message


def test_phase_cannot_be_removed(custom_objects: CustomObjectsApi, shared_namespace: str) -> None:
    name = create(custom_objects, shared_namespace)["metadata"]["name"]
    patch_status(custom_objects, shared_namespace, name, {"phase": "Pending"})
    message = refused(patch_status, custom_objects, shared_namespace, name, {"phase": None})
    assert "status.phase can go from Pending only to Assigned, Failed or Cancelled" in message


def test_status_cannot_be_removed(custom_objects: CustomObjectsApi, shared_namespace: str) -> None:
    name = create(custom_objects, shared_namespace)["metadata"]["name"]
    patch_status(custom_objects, shared_namespace, name, {"phase": "Pending"})
    with pytest.raises(ApiException) as info:
        custom_objects.patch_namespaced_custom_object_status(
            c.GROUP,
            c.VERSION,
            shared_namespace,
            c.BUILD_PLURAL,
            name,
            {"status": None},
            _request_timeout=TIMEOUT,
        )
    assert info.value.status == 422
    assert "status cannot be removed once set" in str(info.value.body)


@pytest.mark.parametrize(
    ("case", "write", "field", "want"),
    [
        ("reason with spaces", {"reason": "no worker"}, "status.reason", "CamelCase"),
        ("reason lowercase", {"reason": "queued"}, "status.reason", "CamelCase"),
        (
            "worker not a name",
            {"phase": "Assigned", "workerName": "Not A Name!", "attempt": 1},
            "status.workerName",
            "DNS subdomain",
        ),
        (
            "final phase keeps a wait reason",
            {"phase": "Failed", "reason": "NoMatchingWorker"},
            "status.reason",
            "cannot stay a reason for waiting",
        ),
    ],
)
def test_bad_status_write_is_refused(
    custom_objects: CustomObjectsApi,
    shared_namespace: str,
    case: str,
    write: dict[str, Any],
    field: str,
    want: str,
) -> None:
    name = create(custom_objects, shared_namespace)["metadata"]["name"]
    patch_status(custom_objects, shared_namespace, name, {"phase": "Pending", "reason": "Queued"})
    message = refused(patch_status, custom_objects, shared_namespace, name, write)
    assert f"{field}:" in message, case
    assert want in message, case


@pytest.mark.parametrize("reason", WAIT_REASONS)
def test_succeeded_cannot_keep_a_wait_reason(
    custom_objects: CustomObjectsApi, shared_namespace: str, reason: str
) -> None:
    name = create(custom_objects, shared_namespace)["metadata"]["name"]
    assigned = {"phase": "Assigned", "workerName": "w1", "attempt": 1}
    patch_status(custom_objects, shared_namespace, name, assigned)
    message = refused(
        patch_status, custom_objects, shared_namespace, name, {"phase": "Succeeded", "reason": reason}
    )
    assert "status.reason:" in message


def test_a_new_build_can_be_assigned_in_one_write(
    custom_objects: CustomObjectsApi, shared_namespace: str
) -> None:
    name = create(custom_objects, shared_namespace)["metadata"]["name"]
    status = patch_status(
        custom_objects,
        shared_namespace,
        name,
        {"phase": "Assigned", "workerName": "mac-mini-1.farm", "attempt": 1, "reason": "Assigned"},
    )["status"]
    assert (status["phase"], status["workerName"], status["attempt"]) == ("Assigned", "mac-mini-1.farm", 1)
