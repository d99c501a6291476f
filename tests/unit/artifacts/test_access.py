"""Which agent may act on a build at which attempt, and who a request comes from."""

import pytest

from buildfarm.artifacts import access, errors
from buildfarm.artifacts.auth import TokenCache, certificate_user
from buildfarm.kube.artifacts_gateway import User
from tests import factories


@pytest.mark.parametrize(
    ("phase", "worker", "attempt", "want"),
    [
        ("Assigned", "w1", 2, None),
        ("Running", "w1", 2, None),
        ("Running", "w2", 2, 403),
        ("Running", "w1", 1, 409),
        ("Running", "w1", 3, 409),
        ("Succeeded", "w1", 2, 409),
        ("Pending", "", 2, 403),
    ],
)
def test_agent_fencing(phase: str, worker: str, attempt: int, want: int | None) -> None:
    build = factories.build("b", phase=phase, worker=worker if phase != "Pending" else "", attempt=2)
    if want is None:
        access.check_agent(build, "w1", attempt)
        return
    with pytest.raises(errors.Refused) as refused:
        access.check_agent(build, "w1", attempt)
    assert refused.value.status == want


@pytest.mark.parametrize(
    ("user", "want"),
    [
        ("system:serviceaccount:farm:worker-mac-1", "mac-1"),
        ("system:serviceaccount:other:worker-mac-1", None),
        ("system:serviceaccount:farm:worker-", None),
        ("system:serviceaccount:farm:editor", None),
        ("worker-mac-1", None),
    ],
)
def test_agent_worker(user: str, want: str | None) -> None:
    assert access.agent_worker(user, "farm") == want


def test_token_cache_expires_and_is_bounded() -> None:
    now = [0.0]
    cache = TokenCache(seconds=10, size=2, clock=lambda: now[0])
    cache.put("a", User("alice"))
    cache.put("b", None)
    cache.put("c", User("carol"))

    assert cache.get("a") == (False, None)  # evicted: the oldest beyond the size
    assert cache.get("b") == (True, None)  # a refusal is remembered too
    now[0] = 10.0
    assert cache.get("c") == (False, None)
    assert len(cache) <= 2


def test_certificate_identity() -> None:
    peercert = {
        "subject": (
            (("organizationName", "devs"),),
            (("organizationName", "ops"),),
            (("commonName", "alice"),),
        )
    }
    assert certificate_user(peercert) == User("alice", ("devs", "ops", "system:authenticated"))
