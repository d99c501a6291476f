"""The watch cache: deletions are final, even against a late answer to the operator's own write."""

from buildfarm.operator.store import Store
from tests.factories import T0, build, worker


def test_a_late_answer_does_not_bring_a_deleted_build_back() -> None:
    store = Store()
    old = build("b")
    store.on_build_event("ADDED", old.model_dump(mode="json", by_alias=True))
    store.on_build_event("DELETED", old.model_dump(mode="json", by_alias=True))
    store.observe_build(old)  # e.g. the answer to a write that raced with the deletion
    snapshot = store.snapshot(T0)
    assert snapshot.builds == []
    assert snapshot.deleted == {old.uid}


def test_a_recreated_build_of_the_same_name_is_seen() -> None:
    store = Store()
    old, new = build("b", uid="one"), build("b", uid="two")
    store.on_build_event("DELETED", old.model_dump(mode="json", by_alias=True))
    store.on_build_event("ADDED", new.model_dump(mode="json", by_alias=True))
    assert [b.uid for b in store.snapshot(T0).builds] == ["two"]


def test_a_worker_reported_gone_is_not_planned_on() -> None:
    store = Store()
    store.observe_worker(worker("w"))
    store.forget_worker("w")
    assert store.snapshot(T0).workers == []


def test_an_older_copy_does_not_undo_a_newer_one() -> None:
    store = Store()
    newer = build("b", phase="Assigned", worker="w", attempt=1).model_copy(
        update={"metadata": {**build("b").metadata, "resourceVersion": "20"}}
    )
    older = build("b").model_copy(update={"metadata": {**build("b").metadata, "resourceVersion": "10"}})
    store.observe_build(newer)
    store.merge_listing([older], [])  # e.g. a LIST answered before the watch event was applied
    assert [b.status.phase for b in store.snapshot(T0).builds] == ["Assigned"]
    assert store.synced


def test_a_build_a_read_found_gone_is_forgotten_and_its_uid_remembered() -> None:
    store = Store()
    b = build("b")
    store.observe_build(b)
    store.forget_build(b.namespace, b.name, b.uid)
    snapshot = store.snapshot(T0)
    assert (snapshot.builds, snapshot.deleted) == ([], {b.uid})


def test_the_cache_drops_metadata_the_operator_never_reads() -> None:
    store = Store()
    body = build("b").model_dump(mode="json", by_alias=True)
    body["metadata"]["managedFields"] = [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]
    body["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/last-applied-configuration": "{...}",
        "buildfarm.dev/retry-of": "a",
    }
    store.on_build_event("ADDED", body)
    store.merge_listing([], [])
    [cached] = store.snapshot(T0).builds
    assert "managedFields" not in cached.metadata
    assert cached.metadata["annotations"] == {"buildfarm.dev/retry-of": "a"}
    assert (cached.uid, cached.resource_version) == (
        body["metadata"]["uid"],
        body["metadata"]["resourceVersion"],
    )


def _at(version: str, **kwargs: object) -> dict[str, object]:
    b = build("b", **kwargs)  # type: ignore[arg-type]
    body = b.model_dump(mode="json", by_alias=True)
    body["metadata"]["resourceVersion"] = version
    return body


def test_an_echo_of_a_copy_the_cache_has_changes_nothing() -> None:
    """The watch's copy of the operator's own write (or of its LIST) does not wake the scheduler again."""
    store = Store()
    assert store.on_build_event("ADDED", _at("10")) is True
    changes = store.changes
    assert store.on_build_event("MODIFIED", _at("10")) is False  # the same version: the echo
    assert store.on_build_event("MODIFIED", _at("9")) is False  # older
    assert store.observe_build(build("b").model_validate(_at("10"))) is False
    assert store.changes == changes
    assert store.on_build_event("MODIFIED", _at("11", phase="Assigned", worker="w", attempt=1)) is True
    assert store.changes == changes + 1
    assert [b.status.phase for b in store.snapshot(T0).builds] == ["Assigned"]


def test_every_change_to_the_cache_is_counted_once() -> None:
    store = Store()
    b = build("b")
    store.observe_build(b)
    store.observe_worker(worker("w"))
    start = store.changes
    store.forget_build(b.namespace, b.name, b.uid)
    store.forget_build(b.namespace, b.name, b.uid)  # known already
    store.forget_worker("w")
    store.forget_worker("w")
    store.credentials_checked("u")
    store.credentials_checked("u")
    assert store.changes == start + 3


def test_the_cache_keeps_no_log_tail_or_artifacts() -> None:
    """Only the agent writes them, the operator's writes leave them alone, and a log tail alone can be
    16 KiB per build."""
    store = Store()
    body = _at("10", phase="Running", worker="w", attempt=1)
    body["status"]["logTail"] = "x" * 16384
    body["status"]["artifacts"] = [{"name": "app.ipa", "size": 1, "sha256": "0" * 64, "location": "s3://a/b"}]
    store.on_build_event("ADDED", body)
    written = build("b").model_validate(_at("11", phase="Running", worker="w", attempt=1))
    written = written.model_copy(update={"status": written.status.model_copy(update={"log_tail": "y"})})
    store.observe_build(written)  # the answer to a write
    [cached] = store.snapshot(T0).builds
    assert (cached.status.log_tail, cached.status.artifacts, cached.resource_version) == ("", [], "11")
