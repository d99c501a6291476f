"""The artifact service on S3 (a real versitygw) against the real API server: it only authorizes, and
downloads of sources and artifacts answer 307 to a presigned URL of the store that the client fetches
without its credentials; logs are still streamed by the service; a store it cannot use stops it at start.
(docs/artifacts.md, "Storing in S3"; docs/artifacts-s3.md.)"""

import asyncio
import hashlib
import os
import threading
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from kubernetes import client

from buildfarm import constants as c
from buildfarm.artifacts import retention
from buildfarm.artifacts.backends.s3 import S3Backend
from buildfarm.artifacts.service import ServeError, serve
from buildfarm.artifacts.settings import ArtifactSettings
from buildfarm.dev.controlplane import new_api_client
from buildfarm.kube.artifacts_gateway import ArtifactsGateway
from tests.integration.artifacts.conftest import LOG_LIMIT, Builds, Setup
from tests.support.artifacts import Reply, files_under, wait_until
from tests.support.s3 import S3Server, free_port

SOURCE = os.urandom(300_000)
SOURCE_SHA = hashlib.sha256(SOURCE).hexdigest()
PRESIGN_SECONDS = 300  # ArtifactSettings' default, which the setup keeps


def sources(ns: str) -> str:
    return f"/v1/namespaces/{ns}/sources/{SOURCE_SHA}"


def build_path(ns: str, name: str, attempt: int | None = None) -> str:
    base = f"/v1/namespaces/{ns}/builds/{name}"
    return base if attempt is None else f"{base}/attempts/{attempt}"


def follow_redirect(reply: Reply, s3_server: S3Server) -> bytes:
    """What a client does with the service's answer: a 307 to the store, fetched with no credentials
    (a plain request: no Authorization header, no client certificate), checked against the digest the
    service named."""
    assert reply.status == 307, reply.body
    location = reply.headers["Location"]
    assert location.startswith(s3_server.endpoint + "/"), location  # the store's origin, not the service's
    query = parse_qs(urlsplit(location).query)
    assert query["X-Amz-Expires"] == [str(PRESIGN_SECONDS)]
    assert "X-Amz-Signature" in query
    with urllib.request.urlopen(urllib.request.Request(location), timeout=10) as response:
        body: bytes = response.read()
    assert hashlib.sha256(body).hexdigest() == reply.headers["X-Buildfarm-Sha256"]
    return body


def refused_without_url(
    reply: Reply, s3_server: S3Server, want: tuple[int, str] = (403, "Forbidden")
) -> None:
    assert (reply.status, reply.json()["reason"]) == want, reply.body
    assert "Location" not in reply.headers
    assert s3_server.endpoint.encode() not in reply.body
    assert b"X-Amz" not in reply.body


def stored(users: Setup, namespace: str) -> list[str]:
    """The objects stored for this test's namespace (log parts included), as the store keeps them."""
    return [f for f in files_under(users.root) if f.split("/")[1:2] == [namespace]]


def test_source_and_artifact_go_through_presigned_redirects(
    users: Setup, builds: Builds, namespace: str, s3_server: S3Server
) -> None:
    editor, viewer = users.caller(users.editor), users.caller(users.viewer)
    agent, other_agent = users.agent("a"), users.agent("b")

    put = editor.call("PUT", sources(namespace), SOURCE)
    again = editor.call("PUT", sources(namespace), SOURCE)
    assert (put.status, again.status) == (201, 200), put.body
    assert put.json()["sha256"] == SOURCE_SHA
    builds.create("b1", put.json()["url"])
    builds.assign("b1", "a", 1)

    # The assigned agent at the current attempt gets the source from the store; nobody else gets a URL.
    downloaded = agent.call("GET", f"{sources(namespace)}?build=b1&attempt=1")
    assert follow_redirect(downloaded, s3_server) == SOURCE
    refused_without_url(other_agent.call("GET", f"{sources(namespace)}?build=b1&attempt=1"), s3_server)
    refused_without_url(editor.call("GET", f"{sources(namespace)}?build=b1&attempt=1"), s3_server)

    artifact = os.urandom(2_000_000)
    uploaded = agent.call(
        "PUT",
        f"{build_path(namespace, 'b1', 1)}/artifacts/app.apk",
        [artifact[i : i + 65536] for i in range(0, len(artifact), 65536)],
    )
    assert uploaded.status == 201, uploaded.body
    assert uploaded.json()["sha256"] == hashlib.sha256(artifact).hexdigest()

    # A user with get on builds/artifacts is sent to the store; one with only get on builds is not.
    got = editor.call("GET", f"{build_path(namespace, 'b1')}/artifacts/app.apk")
    assert got.headers["X-Buildfarm-Sha256"] == uploaded.json()["sha256"]
    assert follow_redirect(got, s3_server) == artifact
    refused_without_url(viewer.call("GET", f"{build_path(namespace, 'b1')}/artifacts/app.apk"), s3_server)

    # Fencing reaches the store too: after a retry the old attempt's agent gets no URL.
    builds.assign("b1", "a", 2)
    stale = agent.call("GET", f"{sources(namespace)}?build=b1&attempt=1")
    refused_without_url(stale, s3_server, (409, "StaleAttempt"))
    assert stored(users, namespace) == [
        f"builds/{namespace}/b1/{builds_uid(builds, 'b1')}/1/artifacts/app.apk",
        f"sources/{namespace}/{SOURCE_SHA}/source.tar.gz",
    ]


def builds_uid(builds: Builds, name: str) -> str:
    body: dict[str, Any] = builds.api.get_namespaced_custom_object(
        c.GROUP, c.VERSION, builds.namespace, c.BUILD_PLURAL, name, _request_timeout=10
    )
    return str(body["metadata"]["uid"])


def test_log_append_and_follow_on_s3(users: Setup, builds: Builds, namespace: str) -> None:
    put = users.caller(users.editor).call("PUT", sources(namespace), SOURCE)
    builds.create("b1", put.json()["url"])
    builds.assign("b1", "a", 1)
    agent, editor = users.agent("a"), users.caller(users.editor)
    log = f"{build_path(namespace, 'b1', 1)}/log"

    def append(offset: int, data: bytes) -> int:
        reply = agent.call("POST", f"{log}?offset={offset}", data)
        assert reply.status == 200, reply.body
        return int(reply.json()["size"])

    assert append(0, b"line 1\n") == 7
    assert append(0, b"line 1\n") == 7  # a retry after a lost answer: nothing doubled
    assert append(4, b" 1\nline 2\n") == 14  # overlapping bytes skipped, the rest appended
    gap = agent.call("POST", f"{log}?offset=20", b"x")
    assert (gap.status, gap.json()["reason"], gap.json()["size"]) == (409, "OffsetMismatch", 14)
    too_much = agent.call("POST", f"{log}?offset=14", b"z" * LOG_LIMIT)
    assert (too_much.status, too_much.json()["reason"]) == (413, "TooLarge")
    # A log is many part objects: the service streams it (no redirect).
    whole = editor.call("GET", f"{build_path(namespace, 'b1')}/log")
    assert (whole.status, whole.body) == (200, b"line 1\nline 2\n")
    assert editor.call("GET", f"{build_path(namespace, 'b1')}/log?offset=7").body == b"line 2\n"

    received: list[bytes] = []
    seen_first = threading.Event()

    def follow() -> None:
        for chunk in editor.stream(f"{build_path(namespace, 'b1')}/log?offset=7&follow=true"):
            received.append(chunk)
            seen_first.set()

    reader = threading.Thread(target=follow)
    reader.start()
    assert seen_first.wait(20)
    append(14, b"line 3\n")
    wait_until(lambda: b"".join(received).endswith(b"line 3\n"), what="the follower to see line 3")
    builds.status("b1", phase="Running")
    append(21, b"line 4\n")
    builds.status("b1", phase="Succeeded")
    reader.join(20)

    assert not reader.is_alive(), "following did not end when the build finished"
    assert b"".join(received) == b"line 2\nline 3\nline 4\n"
    assert users.caller(users.viewer).call("GET", f"{build_path(namespace, 'b1')}/log").status == 403


def test_deleted_builds_lose_their_objects(
    users: Setup, builds: Builds, namespace: str, kubeconfig: str, s3_server: S3Server
) -> None:
    """The retention sweep on S3: a deleted Build's objects go (log parts too), a kept one's stay; the
    sweep of temporary uploads runs with it."""
    put = users.caller(users.editor).call("PUT", sources(namespace), SOURCE)
    for name in ("gone", "kept"):
        builds.create(name, put.json()["url"])
        builds.assign(name, "a", 1)
        agent = users.agent("a")
        assert agent.call("PUT", f"{build_path(namespace, name, 1)}/artifacts/app.apk", b"x").status == 201
        assert agent.call("POST", f"{build_path(namespace, name, 1)}/log?offset=0", b"log\n").status == 200
    kept_uid = builds_uid(builds, "kept")
    builds.delete("gone")
    assert users.s3 is not None
    backend = S3Backend(users.s3)

    async def sweep() -> int:
        with new_api_client(Path(kubeconfig)) as kube:
            return await retention.Sweeper(backend, ArtifactsGateway(kube, (5, 10))).sweep()

    try:
        deleted = asyncio.run(sweep())
    finally:
        backend.close()

    assert deleted >= 2
    assert stored(users, namespace) == [
        f"builds/{namespace}/kept/{kept_uid}/1/artifacts/app.apk",
        f"builds/{namespace}/kept/{kept_uid}/1/log.parts/{0:020d}",
        f"sources/{namespace}/{SOURCE_SHA}/source.tar.gz",
    ]


@pytest.mark.parametrize(
    ("overrides", "want"),
    [
        pytest.param(
            {"bucket": "no-such-bucket"},
            "NoSuchBucket",
            id="missing-bucket",
        ),
        pytest.param(
            {"secret_access_key": "not-the-secret-0123"},
            "check BUILDFARM_ARTIFACTS_S3_SECRET_ACCESS_KEY",
            id="wrong-secret",
        ),
        pytest.param({"endpoint": "http://127.0.0.1:{closed}"}, "is unreachable", id="unreachable"),
    ],
)
def test_refuses_to_start_on_an_unusable_store(
    api_client: client.ApiClient,
    kubeconfig: str,
    s3_server: S3Server,
    overrides: dict[str, str],
    want: str,
) -> None:
    values = {k: v.format(closed=free_port()) for k, v in overrides.items()}
    settings = ArtifactSettings(backend="s3", port=0, metrics_port=0)
    listening = asyncio.Event()

    async def ready(port: int) -> None:
        listening.set()

    with new_api_client(Path(kubeconfig)) as kube, pytest.raises(ServeError) as error:
        asyncio.run(serve(settings, kube, ready, s3=s3_server.settings(**values)))

    message = str(error.value)
    assert message.startswith("the s3 storage is unusable: S3 could not list the bucket"), message
    assert want in message, message
    assert "\n" not in message
    if want == "NoSuchBucket":
        assert message.endswith(
            "; create the bucket, or set BUILDFARM_ARTIFACTS_S3_BUCKET to an existing one"
        )
    assert s3_server.secret_key not in message
    assert not listening.is_set()
