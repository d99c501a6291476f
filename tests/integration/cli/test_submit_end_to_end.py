"""The user's whole path, on the real test API server with the real artifact service and a real agent
(shell executor): `buildfarm submit` packs and uploads a project and creates the Build; the agent
downloads the source from the service with its own credentials, runs the build and streams its log;
`buildfarm logs -f` shows a line while the build is still running (the build waits on a gate the test
opens only after seeing it); `buildfarm download` fetches the artifact, whose sha256 matches the status.
No operator runs: the test assigns the build as the operator would."""

import base64
import hashlib
import json
import subprocess
import threading
from pathlib import Path
from typing import Final

from click.testing import CliRunner, Result
from kubernetes.client import ApiClient, CoreV1Api, V1ObjectMeta, V1Secret
from kubernetes.client.exceptions import ApiException

from buildfarm.cli.main import cli
from buildfarm.kube.worker_access import agent_service_account
from tests.integration.cli.conftest import cli_env, command, run_cli
from tests.support.agents import AgentFarm, assign
from tests.support.artifacts_serve import artifact_service
from tests.support.farm import Farm, wait_for
from tests.support.identities import Identity, service_account

GROUP: Final = "buildfarm.dev"
SIGNING_KEY: Final = b"-----FAKE SIGNING KEY 4f1c-----"
EVERYTHING: Final = [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]
USER_RULES: Final = [
    {"apiGroups": [GROUP], "resources": ["builds", "builds/log", "builds/artifacts"], "verbs": ["*"]},
]


def project(root: Path) -> Path:
    root.mkdir()
    (root / "app.json").write_text(json.dumps({"expo": {"name": "Demo App", "slug": "demo-app"}}))
    (root / "package.json").write_text(json.dumps({"name": "demo-app"}))
    (root / ".gitignore").write_text("secret.txt\n")
    (root / "secret.txt").write_text("not for the farm")
    return root


def test_submit_logs_download(
    farm: Farm, api_client: ApiClient, kubeconfig: str, namespace: str, tmp_path: Path
) -> None:
    identities: list[Identity] = []
    worker = f"{namespace}-mac"
    try:
        agent_id = service_account(
            api_client, Path(kubeconfig), namespace, agent_service_account(worker), tmp_path
        )
        user = service_account(api_client, Path(kubeconfig), namespace, "dev", tmp_path)
        identities += [agent_id, user]
        agent_id.grant(EVERYTHING)
        user.grant(USER_RULES)
        wait_for(
            "RBAC to reach the authorizer", lambda: agent_id.holds(EVERYTHING) and user.holds(USER_RULES)
        )
        _run(farm, api_client, kubeconfig, namespace, worker, agent_id, user, tmp_path)
    finally:
        for identity in identities:
            identity.cleanup()


def _run(
    farm: Farm,
    api_client: ApiClient,
    kubeconfig: str,
    namespace: str,
    worker: str,
    agent_id: Identity,
    user: Identity,
    tmp_path: Path,
) -> None:
    gate = tmp_path / "gate"
    # Prints a line, waits for the gate, then proves which source it built: the artifact is its app.json,
    # and secret.txt (ignored by .gitignore) must not have been uploaded.
    # The signing key arrives as a file in $BUILDFARM_CREDENTIALS_DIR; it is appended to the artifact.
    build_command = (
        f"sh -c 'echo first-line; test ! -e secret.txt || exit 9; while [ ! -e {gate} ]; do sleep 0.1; done; "
        'echo second-line; cp app.json "$1"; cat "$BUILDFARM_CREDENTIALS_DIR/key.p12" >> "$1"\' sh {artifact}'
    )
    secret = V1Secret(
        metadata=V1ObjectMeta(name="signing"), data={"key.p12": base64.b64encode(SIGNING_KEY).decode()}
    )
    CoreV1Api(api_client).create_namespaced_secret(namespace, secret, _request_timeout=10)
    home = tmp_path / "home"
    home.mkdir()
    with artifact_service(kubeconfig, namespace, tmp_path) as url:
        agents = AgentFarm(farm, str(agent_id.kubeconfig), tmp_path)
        with agents.agent("mac", command=build_command, artifacts_url=url):
            submitted = run_cli(
                str(user.kubeconfig),
                home,
                "submit",
                str(project(tmp_path / "app")),
                "--platform",
                "android",
                "-n",
                namespace,
                "--artifacts-url",
                url,
                "--credentials",
                "signing",
            )
            assert submitted.returncode == 0, submitted.stderr
            name = submitted.stdout.strip()
            assert name.startswith("demo-app-android-")
            build = farm.get_build(name)
            archive = build.spec.source.archive
            assert archive is not None
            assert archive.url.startswith(f"{url}/v1/namespaces/{namespace}/sources/")
            assert archive.sha256 is not None
            assert archive.url.endswith(archive.sha256)

            assign(farm, name, worker)
            follower = subprocess.Popen(
                command(str(user.kubeconfig), "logs", name, "-f", "-n", namespace, "--artifacts-url", url),
                env=cli_env(home),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            seen: list[str] = []
            reader = threading.Thread(
                target=lambda: seen.extend(raw.decode() for raw in follower.stdout or [])
            )
            reader.start()
            try:

                def shown_or_failed() -> bool:
                    if "first-line\n" in seen:
                        return True
                    status = farm.get_build(name).status
                    assert status.phase != "Failed", status.message
                    return False

                wait_for("`logs -f` to show first-line", shown_or_failed)
                # Seen while the build is still running: it cannot finish before the gate opens.
                assert farm.get_build(name).status.phase == "Running"
                gate.touch()
                follower.wait(timeout=120)
                reader.join(timeout=30)
            finally:
                if follower.poll() is None:
                    follower.kill()
                    follower.wait()
                errors = follower.stderr.read() if follower.stderr else b""
                for stream in (follower.stdout, follower.stderr):
                    if stream is not None:
                        stream.close()
            assert follower.returncode == 0, errors.decode()
            text = "".join(seen)
            assert "second-line" in text
            assert "from the artifact service" in text  # the agent fetched the source from the service
            assert seen.count("first-line\n") == 1  # nothing shown twice
            assert seen.index("first-line\n") < seen.index("second-line\n")

            final = farm.get_build(name)
            assert final.status.phase == "Succeeded", final.status.message
            (artifact,) = final.status.artifacts
            assert (
                artifact.location
                == f"{url}/v1/namespaces/{namespace}/builds/{name}/artifacts/{artifact.name}"
            )

            out = tmp_path / "downloaded.apk"
            fetched = run_cli(
                str(user.kubeconfig),
                home,
                "download",
                name,
                "-n",
                namespace,
                "-o",
                str(out),
                "--artifacts-url",
                url,
            )
            assert fetched.returncode == 0, fetched.stderr
            assert fetched.stdout.strip() == str(out)
            data = out.read_bytes()
            assert hashlib.sha256(data).hexdigest() == artifact.sha256
            assert data.endswith(SIGNING_KEY)
            assert json.loads(data.removesuffix(SIGNING_KEY))["expo"]["slug"] == "demo-app"
            # The key was in the build's workspace only: never in the log, gone with the workspace.
            assert SIGNING_KEY.decode() not in text
            assert "Fetched credentials: key.p12" in text
            assert not list((tmp_path / "agent-mac" / "workspaces").iterdir())

            # The rest in-process (each process start costs seconds on a busy machine).
            listed = in_process(user, "list", "-n", namespace)
            assert listed.exit_code == 0, listed.output
            lines = listed.stdout.splitlines()
            assert lines[0].split() == ["NAME", "PHASE", "PLATFORM", "WORKER", "ATTEMPT", "AGE"]
            assert lines[1].split()[:5] == [name, "Succeeded", "android", worker, "1"]

            tail = in_process(user, "logs", name, "-n", namespace, "--tail", "2", "--artifacts-url", url)
            assert tail.exit_code == 0, tail.output
            assert tail.stdout.splitlines() == text.splitlines()[-2:]

            missing = in_process(user, "download", "nope", "-n", namespace, "--artifacts-url", url)
            assert missing.exit_code == 3
            assert missing.stderr.startswith("error: build nope not found")

            # `submit --wait` of a project that does not ignore secret.txt: the build exits 9, the CLI 5.
            bare = tmp_path / "bare"
            bare.mkdir()
            (bare / "secret.txt").write_text("x")
            assigner = threading.Thread(target=assign_when_created, args=(farm, "failing", worker))
            assigner.start()
            waited = in_process(
                user, "submit", str(bare), "--platform", "android", "-n", namespace, "--name", "failing",
                "--wait", "--artifacts-url", url,
            )  # fmt: skip
            assigner.join()
            assert waited.exit_code == 5, waited.output
            assert waited.stdout == "failing\n"
            assert "first-line" in waited.stderr  # the log was followed
            assert (
                waited.stderr.splitlines()[-1]
                == f"error: build {namespace}/failing ended Failed (BuildFailed)"
            )


def assign_when_created(farm: Farm, name: str, worker: str) -> None:
    wait_for(f"build {name} to be created", lambda: _exists(farm, name))
    assign(farm, name, worker)


def _exists(farm: Farm, name: str) -> bool:
    try:
        farm.get_build(name)
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def in_process(user: Identity, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--kubeconfig", str(user.kubeconfig)], catch_exceptions=False)
