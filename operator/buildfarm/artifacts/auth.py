"""Authentication, delegated to Kubernetes as an aggregated API server does it.

- `Authorization: Bearer <token>`: the API server's TokenReview says whose it is. Answers are reused for
  a few seconds (bounded LRU keyed by the token's sha256, never the token itself), so a burst of log
  appends costs one review, and a revoked token stops working within `token_cache_seconds`.
- A TLS client certificate: the TLS handshake already verified it against the cluster's client CA
  (`extension-apiserver-authentication`), so its subject is the identity: CN the user, O the groups.
"""

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Final

from buildfarm.artifacts import errors
from buildfarm.errors import BuildfarmError
from buildfarm.kube.artifacts_gateway import ArtifactsGateway, User

_BEARER: Final = "bearer "


class TokenCache:
    """Recent TokenReview answers (None: not authenticated), at most `size`, each for `seconds`."""

    def __init__(self, seconds: float, size: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.size = size
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, User | None]] = OrderedDict()

    def get(self, digest: str) -> tuple[bool, User | None]:
        entry = self._entries.get(digest)
        if entry is None or entry[0] <= self._clock():
            self._entries.pop(digest, None)
            return False, None
        self._entries.move_to_end(digest)
        return True, entry[1]

    def put(self, digest: str, user: User | None) -> None:
        if self.seconds <= 0:
            return
        self._entries[digest] = (self._clock() + self.seconds, user)
        self._entries.move_to_end(digest)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class Authenticator:
    def __init__(self, gateway: ArtifactsGateway, cache: TokenCache) -> None:
        self._gateway = gateway
        self._cache = cache

    async def user(self, headers: Mapping[str, str], peercert: dict[str, Any] | None) -> User:
        """Who sent the request; raises a 401 refusal if nobody the cluster knows."""
        header = headers.get("Authorization", "")
        if header[: len(_BEARER)].lower() == _BEARER:
            return await self._token_user(header[len(_BEARER) :].strip())
        if header:
            raise errors.unauthenticated("only Bearer tokens are accepted in Authorization: fix the client")
        if peercert:
            return certificate_user(peercert)
        raise errors.unauthenticated(
            "no credentials: send a Bearer token or a client certificate of the cluster "
            "(the buildfarm CLI uses your kubeconfig's)"
        )

    async def _token_user(self, token: str) -> User:
        if not token:
            raise errors.unauthenticated("the Bearer token is empty: fix the client's credentials")
        digest = hashlib.sha256(token.encode()).hexdigest()
        hit, user = self._cache.get(digest)
        if not hit:
            try:
                user = await asyncio.to_thread(self._gateway.review_token, token)
            except BuildfarmError as error:
                raise errors.unavailable(f"cannot check the token with the API server: {error}") from None
            self._cache.put(digest, user)
        if user is None:
            raise errors.unauthenticated(
                "the API server does not accept this token (expired or revoked?): get a fresh one"
            )
        return user


def certificate_user(peercert: dict[str, Any]) -> User:
    """The Kubernetes identity of a verified client certificate: CN is the user, each O a group."""
    names: list[str] = []
    groups: list[str] = []
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                names.append(str(value))
            elif key == "organizationName":
                groups.append(str(value))
    if not names or not names[0]:
        raise errors.unauthenticated("the client certificate has no common name: use a cluster user's cert")
    return User(name=names[0], groups=(*groups, "system:authenticated"))
