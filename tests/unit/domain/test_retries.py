"""Table tests for what `buildfarm retry` decides: refusals, the retry's name and its body."""

import re

import pytest

from buildfarm import constants as c
from buildfarm.api.builds import Build
from buildfarm.domain import retries
from tests.factories import build

# A DNS subdomain, as the API server checks object names.
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@pytest.mark.parametrize(
    ("name", "parent", "number", "want"),
    [
        ("short", "app", 1, "app-retry-1"),
        ("two digits", "app", 12, "app-retry-12"),
        ("a retry of a retry", "app-retry-1", 1, "app-retry-1-retry-1"),
        ("longest name: cut", "a" * 253, 1, "a" * 245 + "-retry-1"),
        ("a dot at the cut is dropped", "a" * 244 + "." + "b" * 8, 1, "a" * 244 + "-retry-1"),
        ("a dash at the cut is dropped", "a" * 243 + "--" + "b" * 8, 1, "a" * 243 + "-retry-1"),
    ],
)
def test_retry_name_is_a_valid_name(name: str, parent: str, number: int, want: str) -> None:
    got = retries.retry_name(parent, number)
    assert got == want
    assert len(got) <= 253
    assert DNS_SUBDOMAIN.match(got)


@pytest.mark.parametrize("number", [0, retries.MAX_RETRIES + 1])
def test_retry_numbers_are_bounded(number: int) -> None:
    with pytest.raises(ValueError, match="retry number"):
        retries.retry_name("app", number)


CANCEL_FIRST = "cancel it first (`buildfarm cancel b -n ns`) or wait"


@pytest.mark.parametrize(
    ("name", "phase", "cancel", "want"),
    [
        ("succeeded", "Succeeded", False, None),
        ("failed", "Failed", False, None),
        ("cancelled", "Cancelled", True, None),
        ("not admitted", None, False, f"build ns/b is still being admitted: {CANCEL_FIRST}"),
        ("pending", "Pending", False, f"build ns/b is still Pending: {CANCEL_FIRST}"),
        ("assigned", "Assigned", False, f"build ns/b is still Assigned: {CANCEL_FIRST}"),
        ("running", "Running", False, f"build ns/b is still Running: {CANCEL_FIRST}"),
        (
            "running, cancel requested",
            "Running",
            True,
            "build ns/b is still Running (cancel requested): wait for it to stop, then retry",
        ),
    ],
)
def test_not_final(name: str, phase: str | None, cancel: bool, want: str | None) -> None:
    assert retries.not_final(build("b", phase=phase, cancel=cancel)) == want


def with_metadata(b: Build, **metadata: object) -> Build:
    return b.model_copy(update={"metadata": {**b.metadata, **metadata}})


def test_retry_body_copies_the_spec_and_labels_and_links_the_parent() -> None:
    parent = with_metadata(
        build("app", phase="Cancelled", cancel=True, priority=7),
        labels={"team": "mobile", c.RETRY_OF: "older"},
        annotations={"kubectl.kubernetes.io/last-applied-configuration": "{}"},
    )
    body = retries.retry_body(parent, "app-retry-1")
    assert body["metadata"] == {
        "name": "app-retry-1",
        "namespace": "ns",
        "labels": {"team": "mobile", c.RETRY_OF: "app"},
        "annotations": {c.RETRY_OF: "app", c.RETRY_OF_UID: "uid-ns-app"},
    }
    assert body["spec"] == {**parent.spec.to_api(), "cancel": False}
    assert (body["apiVersion"], body["kind"]) == (c.API_VERSION, "Build")
    assert "status" not in body


@pytest.mark.parametrize(
    ("name", "parent_name", "want_label"),
    [
        ("fits a label value", "a" * 63, "a" * 63),
        ("too long for a label value: annotations only", "a" * 64, None),
    ],
)
def test_the_label_is_left_out_for_long_names(name: str, parent_name: str, want_label: str | None) -> None:
    body = retries.retry_body(build(parent_name, phase="Failed"), "x")
    assert body["metadata"]["labels"].get(c.RETRY_OF) == want_label
    assert body["metadata"]["annotations"][c.RETRY_OF] == parent_name


def test_links_are_read_back() -> None:
    parent = build("app", phase="Failed")
    assert retries.latest_retry(parent) is None
    assert (
        retries.latest_retry(with_metadata(parent, annotations={c.RETRIED_BY: "app-retry-2"}))
        == "app-retry-2"
    )
    child = Build.model_validate(retries.retry_body(parent, "app-retry-1"))
    assert retries.is_retry_of(child, parent)
    assert not retries.is_retry_of(child, with_metadata(parent, uid="another"))
