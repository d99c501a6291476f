"""The artifact service end to end against the real API server: who may upload and download what, that
refusals write nothing, names that could escape storage are refused, limits stop uploads mid-stream,
partial uploads never become visible, credentials reach only the assigned agent, and logs resume and
follow. (docs/artifacts-api.md is the contract.)"""

import asyncio
import base64
import hashlib
import os
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from buildfarm.artifacts import retention
from buildfarm.artifacts.backends.filesystem import FilesystemBackend
from buildfarm.dev import certs
from buildfarm.dev.controlplane import new_api_client
from buildfarm.kube.artifacts_gateway import ArtifactsGateway
from buildfarm.telemetry import exporter
from tests.integration.artifacts.conftest import ARTIFACT_LIMIT, LOG_LIMIT, Builds, Setup
from tests.support.artifacts import Caller, bind, files_under, wait_until

SOURCE = os.urandom(300_000)
SOURCE_SHA = hashlib.sha256(SOURCE).hexdigest()


def sources(ns: str, sha: str = SOURCE_SHA) -> str:
    return f"/v1/namespaces/{ns}/sources/{sha}"


def build_path(ns: str, name: str, attempt: int | None = None) -> str:
    base = f"/v1/namespaces/{ns}/builds/{name}"
    return base if attempt is None else f"{base}/attempts/{attempt}"


def stored(users: Setup, namespace: str) -> list[str]:
    """The files stored for this test's namespace (the service's storage is shared by the module)."""
    return [f for f in files_under(users.root) if f.split("/")[1:2] == [namespace]]


def uploaded_build(users: Setup, builds: Builds, namespace: str, name: str = "b1", **extra: str) -> str:
    """A Build whose source was uploaded by the editor, assigned to worker a at attempt 1."""
    reply = users.caller(users.editor).call("PUT", sources(namespace), SOURCE)
    assert reply.status in (200, 201), reply.body
    builds.create(name, reply.json()["url"], **extra)
    builds.assign(name, "a", 1)
    return str(reply.json()["url"])


def test_source_artifact_round_trip(users: Setup, builds: Builds, namespace: str) -> None:
    editor, viewer, agent = users.caller(users.editor), users.caller(users.viewer), users.agent("a")

    first = editor.call("PUT", sources(namespace), SOURCE)
    again = editor.call("PUT", sources(namespace), SOURCE)

    assert (first.status, again.status) == (201, 200), first.body
    assert first.json() == {
        "url": f"{users.service.url}{sources(namespace)}",
        "sha256": SOURCE_SHA,
        "size": len(SOURCE),
    }
    builds.create("b1", first.json()["url"])
    builds.assign("b1", "a", 1)
    downloaded = agent.call("GET", f"{sources(namespace)}?build=b1&attempt=1")
    assert (downloaded.status, downloaded.body) == (200, SOURCE)

    artifact = os.urandom(2_000_000)
    put = agent.call("PUT", f"{build_path(namespace, 'b1', 1)}/artifacts/app.apk", iter_chunks(artifact))
    assert put.status == 201, put.body
    location = f"{users.service.url}{build_path(namespace, 'b1')}/artifacts/app.apk"
    assert put.json() == {
        "name": "app.apk",
        "size": len(artifact),
        "sha256": hashlib.sha256(artifact).hexdigest(),
        "location": location,
    }
    got = editor.call("GET", f"{build_path(namespace, 'b1')}/artifacts/app.apk")
    assert (got.status, got.body) == (200, artifact)
    assert got.headers["X-Buildfarm-Sha256"] == hashlib.sha256(artifact).hexdigest()
    # The viewer may get the build but was not granted builds/artifacts: granted apart.
    refused = viewer.call("GET", f"{build_path(namespace, 'b1')}/artifacts/app.apk")
    assert (refused.status, refused.json()["reason"]) == (403, "Forbidden")


def iter_chunks(data: bytes, size: int = 65536) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_refused_requests_write_nothing(
    users: Setup, builds: Builds, namespace: str, core_v1: client.CoreV1Api
) -> None:
    url = uploaded_build(users, builds, namespace)
    other_ns = core_v1.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(generate_name="other-")), _request_timeout=10
    ).metadata.name
    before = files_under(users.root)
    forbidden_before = refusals("Forbidden")
    artifact = f"{build_path(namespace, 'b1', 1)}/artifacts/app.apk"
    other_sha = hashlib.sha256(b"other").hexdigest()
    cases = {
        "anonymous upload": (users.caller(None), "PUT", sources(namespace, other_sha), b"other", 401),
        "bad token": (
            Caller(users.service.url, "not-a-token", users.context()),
            "PUT",
            sources(namespace, other_sha),
            b"other",
            401,
        ),
        "viewer upload": (users.caller(users.viewer), "PUT", sources(namespace, other_sha), b"other", 403),
        "cross-namespace upload": (
            users.caller(users.editor),
            "PUT",
            sources(other_ns, other_sha),
            b"other",
            403,
        ),
        "user writes an artifact": (users.caller(users.editor), "PUT", artifact, b"x", 403),
        "other worker writes an artifact": (users.agent("b"), "PUT", artifact, b"x", 403),
        "other worker reads the source": (
            users.agent("b"),
            "GET",
            f"{sources(namespace)}?build=b1&attempt=1",
            None,
            403,
        ),
        "other worker appends to the log": (
            users.agent("b"),
            "POST",
            f"{build_path(namespace, 'b1', 1)}/log?offset=0",
            b"x",
            403,
        ),
        "agent reads a user's view": (
            users.agent("a"),
            "GET",
            f"{build_path(namespace, 'b1')}/artifacts/app.apk",
            None,
            403,
        ),
        "wrong attempt": (users.agent("a"), "PUT", artifact.replace("/1/", "/2/"), b"x", 409),
    }
    got = {
        name: caller.call(method, path, body).status
        for name, (caller, method, path, body, _) in cases.items()
    }

    assert got == {name: case[-1] for name, case in cases.items()}
    assert files_under(users.root) == before
    assert url.endswith(sources(namespace))
    assert refusals("Forbidden") - forbidden_before == 7


def refusals(reason: str) -> float:
    """What the service's /metrics would report for refusals of `reason` (same process in tests)."""
    value = exporter.registry_for("artifacts").get_sample_value(
        "buildfarm_artifacts_refusals_total", {"reason": reason}
    )
    return value or 0.0


def test_stale_attempt_is_fenced_off(users: Setup, builds: Builds, namespace: str) -> None:
    uploaded_build(users, builds, namespace)
    artifact = f"{build_path(namespace, 'b1')}/attempts/{{}}/artifacts/app.apk"
    builds.assign("b1", "a", 2)  # requeued to the same worker (its agent restarted): attempt 2
    same_worker = users.agent("a").call("PUT", artifact.format(1), b"late")
    builds.assign("b1", "b", 3)  # requeued again, to worker b
    moved = users.agent("a").call("PUT", artifact.format(2), b"late")
    current = users.agent("b").call("PUT", artifact.format(3), b"new")

    assert (same_worker.status, same_worker.json()["reason"]) == (409, "StaleAttempt")
    assert (moved.status, moved.json()["reason"]) == (403, "Forbidden")
    assert current.status == 201
    assert [f for f in stored(users, namespace) if "/artifacts/" in f] == [
        f"builds/{namespace}/b1/{uid(builds, 'b1')}/3/artifacts/app.apk"
    ]
    finished = builds.status("b1", phase="Succeeded")
    assert finished["status"]["phase"] == "Succeeded"
    after = users.agent("b").call("PUT", artifact.format(3).replace("app.apk", "more.apk"), b"x")
    assert (after.status, after.json()["reason"]) == (409, "StaleAttempt")


def uid(builds: Builds, name: str) -> str:
    body = builds.api.get_namespaced_custom_object(
        "buildfarm.dev", "v1alpha1", builds.namespace, "builds", name, _request_timeout=10
    )
    return str(body["metadata"]["uid"])


@pytest.mark.parametrize(
    "file",
    [
        "..",
        "%2e%2e",
        "..%2Fescape",
        "a%2Fb",
        "a%5Cb",
        "%2Fetc%2Fpasswd",
        "nul%00byte",
        "bell%07",
        "line%0Abreak",
        ".hidden",
    ],
)
def test_odd_file_names_are_refused(users: Setup, builds: Builds, namespace: str, file: str) -> None:
    uploaded_build(users, builds, namespace)
    before = files_under(users.root)
    reply = users.agent("a").call("PUT", f"{build_path(namespace, 'b1', 1)}/artifacts/{file}", b"evil")

    assert reply.status in (404, 422), reply.body  # 404: the router never matched a path with a '/'
    if reply.status == 422:
        assert reply.json()["reason"] == "BadName"
    assert files_under(users.root) == before


def test_symlink_in_storage_is_not_followed(
    users: Setup, builds: Builds, namespace: str, tmp_path: Path
) -> None:
    uploaded_build(users, builds, namespace)
    outside = tmp_path / "outside"
    outside.mkdir()
    build_dir = users.root / "builds" / namespace / "b1" / uid(builds, "b1")
    build_dir.mkdir(parents=True)
    (build_dir / "1").symlink_to(outside)  # planted in the volume

    reply = users.agent("a").call("PUT", f"{build_path(namespace, 'b1', 1)}/artifacts/app.apk", b"x")

    assert reply.status == 503, reply.body
    assert list(outside.iterdir()) == []


def test_oversize_upload_is_stopped_mid_stream(users: Setup, builds: Builds, namespace: str) -> None:
    uploaded_build(users, builds, namespace)
    path = f"{build_path(namespace, 'b1', 1)}/artifacts/big.apk"
    sent = 0
    refused_at: int | None = None

    def chunks() -> Iterator[bytes]:
        """Keep sending until the service is seen to have dropped the upload (its temporary file)."""
        nonlocal sent, refused_at
        while sent < ARTIFACT_LIMIT * 4:
            sent += 65536
            yield b"x" * 65536
            if sent > ARTIFACT_LIMIT and not list((users.root / ".tmp").iterdir()):
                refused_at = sent
                return

    streamed = users.agent("a").call("PUT", path, chunks())
    declared = users.agent("a").call("PUT", path, b"", headers={"Content-Length": str(ARTIFACT_LIMIT + 1)})

    assert (streamed.status, streamed.json()["reason"]) == (413, "TooLarge")
    assert (declared.status, declared.json()["reason"]) == (413, "TooLarge")
    assert refused_at is not None, "the service stored the whole oversize body before refusing it"
    assert not any("big.apk" in f for f in stored(users, namespace))
    wait_until(lambda: not list((users.root / ".tmp").iterdir()), what="the temporary file to go")


def test_interrupted_upload_leaves_nothing_visible(users: Setup, builds: Builds, namespace: str) -> None:
    uploaded_build(users, builds, namespace)
    path = f"{build_path(namespace, 'b1', 1)}/artifacts/app.apk"
    caller = users.agent("a")
    connection = caller.connection()
    connection.putrequest("PUT", path)
    for key, value in caller.headers({"Content-Length": str(3_000_000)}).items():
        connection.putheader(key, value)
    connection.endheaders()
    connection.send(b"y" * 1_000_000)
    wait_until(lambda: any((users.root / ".tmp").iterdir()), what="the upload to start")
    connection.sock.shutdown(socket.SHUT_RDWR)  # the agent dies halfway
    connection.close()

    wait_until(lambda: not list((users.root / ".tmp").iterdir()), what="the temporary file to go")
    got = users.caller(users.editor).call("GET", f"{build_path(namespace, 'b1')}/artifacts/app.apk")
    assert got.status == 404
    assert not any("app.apk" in f for f in stored(users, namespace))


def test_sha256_mismatch_is_refused(users: Setup, builds: Builds, namespace: str) -> None:
    uploaded_build(users, builds, namespace)
    wrong = hashlib.sha256(b"something else").hexdigest()

    source = users.caller(users.editor).call("PUT", sources(namespace, wrong), SOURCE)
    artifact = users.agent("a").call(
        "PUT",
        f"{build_path(namespace, 'b1', 1)}/artifacts/app.apk",
        b"content",
        headers={"X-Buildfarm-Sha256": wrong},
    )

    assert (source.status, source.json()["reason"]) == (422, "DigestMismatch")
    assert (artifact.status, artifact.json()["reason"]) == (422, "DigestMismatch")
    assert not any(wrong in f or "app.apk" in f for f in stored(users, namespace))


def test_credentials_reach_only_the_assigned_agent(
    users: Setup, builds: Builds, namespace: str, core_v1: client.CoreV1Api
) -> None:
    core_v1.create_namespaced_secret(
        namespace,
        client.V1Secret(metadata=client.V1ObjectMeta(name="signing"), string_data={"keystore": "s3cr3t"}),
        _request_timeout=10,
    )
    uploaded_build(users, builds, namespace, secret="signing")
    path = f"{build_path(namespace, 'b1', 1)}/credentials"

    mine = users.agent("a").call("GET", path)
    others = {
        who: caller.call("GET", path).status
        for who, caller in (
            ("worker b", users.agent("b")),
            ("editor", users.caller(users.editor)),
            ("nobody", users.caller(None)),
        )
    }
    builds.assign("b1", "b", 2)
    stale = users.agent("a").call("GET", path)
    now_b = users.agent("b").call("GET", f"{build_path(namespace, 'b1', 2)}/credentials")

    assert mine.status == 200
    assert base64.b64decode(mine.json()["data"]["keystore"]) == b"s3cr3t"
    assert others == {"worker b": 403, "editor": 403, "nobody": 401}
    assert stale.status == 403
    assert b"s3cr3t" not in stale.body
    assert now_b.status == 200
    assert not any("signing" in f or "credentials" in f for f in files_under(users.root))


def test_log_append_resume_and_follow(users: Setup, builds: Builds, namespace: str) -> None:
    uploaded_build(users, builds, namespace)
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
    assert (gap.status, gap.json()) == (
        409,
        {"error": gap.json()["error"], "reason": "OffsetMismatch", "size": 14},
    )
    too_much = agent.call("POST", f"{log}?offset=14", b"z" * LOG_LIMIT)
    assert (too_much.status, too_much.json()["reason"]) == (413, "TooLarge")
    assert editor.call("GET", f"{build_path(namespace, 'b1')}/log").body == b"line 1\nline 2\n"
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


def test_client_certificate_of_the_cluster_ca(
    users: Setup, builds: Builds, namespace: str, tmp_path: Path
) -> None:
    if users.cluster_ca is None:
        pytest.skip("needs the local control plane's CA key to issue a client certificate")
    cert = certs.client_cert(users.cluster_ca, f"cert-user-{namespace}", ["cert-group"])
    subject = client.RbacV1Subject(
        kind="User", name=f"cert-user-{namespace}", api_group="rbac.authorization.k8s.io"
    )
    bind(
        users.rbac,
        namespace,
        "cert-user",
        [
            {"apiGroups": ["buildfarm.dev"], "resources": ["builds"], "verbs": ["create"]},
        ],
        subject,
    )
    caller = Caller(users.service.url, None, users.context(cert, tmp_path), "cert-user")

    def uploaded() -> bool:
        return caller.call("PUT", sources(namespace), SOURCE).status in (200, 201)

    wait_until(uploaded, what="the certificate user's upload to be allowed")
    stranger = certs.client_cert(certs.generate().ca, "cert-user", ["system:masters"])
    # The TLS handshake refuses a certificate of another CA.
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        Caller(users.service.url, None, users.context(stranger, tmp_path)).call("GET", sources(namespace))


def test_deleted_builds_lose_their_files(
    users: Setup, builds: Builds, namespace: str, kubeconfig: str
) -> None:
    uploaded_build(users, builds, namespace, name="gone")
    uploaded_build(users, builds, namespace, name="kept")
    for name in ("gone", "kept"):
        reply = users.agent("a").call("PUT", f"{build_path(namespace, name, 1)}/artifacts/app.apk", b"x")
        assert reply.status == 201
    gone_uid, uid_of_kept = uid(builds, "gone"), uid(builds, "kept")
    builds.delete("gone")

    with new_api_client(Path(kubeconfig)) as api_client:
        gateway = ArtifactsGateway(api_client, (5, 10))
        sweeper = retention.Sweeper(FilesystemBackend(users.root), gateway)
        deleted = asyncio.run(sweeper.sweep())
        left = stored(users, namespace)
        builds.delete("kept")
        asyncio.run(sweeper.sweep())
        unused_once = stored(users, namespace)
        asyncio.run(sweeper.sweep())
        unused_twice = stored(users, namespace)

    assert deleted >= 1  # other tests' namespaces went too, with their builds
    assert left == [
        f"builds/{namespace}/kept/{uid_of_kept}/1/artifacts/app.apk",
        f"sources/{namespace}/{SOURCE_SHA}/source.tar.gz",
    ]
    assert gone_uid not in str(files_under(users.root))
    # The source outlives its last Build by one sweep (it may have been uploaded for a Build to come).
    assert unused_once == [f"sources/{namespace}/{SOURCE_SHA}/source.tar.gz"]
    assert unused_twice == []
