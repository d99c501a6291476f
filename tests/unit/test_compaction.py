"""The cache's copies are shrunk without changing a value: models share pydantic's field-name sets, and
equal strings are one object."""

from buildfarm.api.builds import Build
from buildfarm.api.meta import ConditionStatus
from buildfarm.domain.conditions import SCHEDULED, set_condition
from buildfarm.operator.compaction import cached_build
from tests.factories import T0, build


def parsed(b: Build) -> Build:
    """A fresh copy, as a watch event gives one: nothing shared with any other."""
    return Build.model_validate(b.model_dump(mode="json", by_alias=True))


def waiting(name: str) -> Build:
    b = build(name, phase="Pending")
    conditions = set_condition(
        [],
        type_=SCHEDULED,
        status=ConditionStatus.FALSE,
        reason="WorkerBusy",
        message="All 3 Ready Worker(s) for platform ios are busy; waiting in the queue.",
        generation=1,
        now=T0,
    )
    return parsed(b.model_copy(update={"status": b.status.model_copy(update={"conditions": conditions})}))


def test_a_cached_build_has_every_value_it_had() -> None:
    original = waiting("a")
    assert cached_build(parsed(original)) == original
    assert cached_build(parsed(original)).to_api() == original.to_api()


def test_cached_builds_share_field_sets_and_equal_strings() -> None:
    a, b = cached_build(waiting("a")), cached_build(waiting("b"))
    assert a.__pydantic_fields_set__ is b.__pydantic_fields_set__
    assert a.status.__pydantic_fields_set__ is b.status.__pydantic_fields_set__
    assert a.status.conditions[0].message is b.status.conditions[0].message
    assert a.namespace is b.namespace
    assert next(iter(a.metadata)) is next(iter(b.metadata))


def test_a_copy_of_a_cached_model_leaves_the_cached_ones_as_they_were() -> None:
    a, b = cached_build(waiting("a")), cached_build(waiting("b"))
    shared, before = set(a.status.__pydantic_fields_set__), (a.to_api(), b.to_api())
    changed = a.status.model_copy(update={"reason": "Queued"})
    changed.message = "set on the copy"  # as transitions do to their own copy
    assert (changed.reason, changed.message) == ("Queued", "set on the copy")
    assert (a.to_api(), b.to_api()) == before
    assert a.status.__pydantic_fields_set__ == shared
