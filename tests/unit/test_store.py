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
