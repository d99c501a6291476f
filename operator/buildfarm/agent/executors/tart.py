"""The tart executor: every build in a throwaway Tart VM cloned from a golden image, reached over ssh, and
deleted afterwards whatever happened (as Orchard and the seed's macOS workers do). VMs a dead agent left
behind (named with this agent's prefix) are deleted when the agent starts.

ssh joins its command arguments into one line for the VM's shell, so every argument is quoted here
(commands.remote_command): a Build's fields never become shell syntax.
"""

import json
import logging
import subprocess
import tarfile
import time
from typing import Final

from buildfarm.agent import commands, sources
from buildfarm.agent.executors.base import Job, Outcome, fetch_source
from buildfarm.agent.settings import AgentSettings

log = logging.getLogger(__name__)

CLEANUP_TIMEOUT: Final = 60.0
REMOTE_DIR: Final = "buildfarm-build"  # in the VM user's home; the VM is new for every build
IP_POLL_SECONDS: Final = 1.0


class TartError(Exception):
    """The VM could not be made ready; the message says which step failed."""


def vm_prefix(worker: str) -> str:
    return f"buildfarm-{worker}-"


class TartExecutor:
    def __init__(self, settings: AgentSettings) -> None:
        if not settings.tart_image:
            raise ValueError("the tart executor needs tart_image")
        self.settings = settings
        self.image = settings.tart_image
        self.prefix = vm_prefix(settings.worker_name)
        commands.check_template(settings.command)

    def prepare(self) -> None:
        """Delete the VMs of a previous agent process of this worker (it died, or was killed)."""
        try:
            listed = subprocess.run(
                ["tart", "list", "--format", "json"],
                capture_output=True,
                timeout=CLEANUP_TIMEOUT,
                check=False,
            )
            entries = json.loads(listed.stdout or b"[]") if listed.returncode == 0 else []
        except (OSError, subprocess.TimeoutExpired, ValueError) as error:
            log.warning("Could not list Tart VMs to clean up: %s", error)
            return
        for entry in entries:
            name = str(entry.get("Name", "")) if isinstance(entry, dict) else ""
            if name.startswith(self.prefix):
                log.info("Deleting VM %s left by a previous agent.", name)
                self._stop(name)
                self._delete(name)

    def vm_name(self, job: Job) -> str:
        return f"{self.prefix}{job.build.uid[:8]}-{job.build.status.attempt}"

    def execute(self, job: Job) -> Outcome:
        fetch_source(job, self.settings)
        vm = self.vm_name(job)
        job.log.say(f"Cloning VM {vm} from {self.image}.")
        if job.processes.run(["tart", "clone", self.image, vm], cwd=job.workspace) != 0:
            self._delete(vm)  # a half-made clone
            raise TartError(f"tart clone {self.image} failed")
        runner = None
        try:
            runner = job.processes.spawn(["tart", "run", "--no-graphics", vm], cwd=job.workspace)
            ip = self._wait_for_ip(job, vm)
            return self._build_in(job, ip)
        finally:
            self._stop(vm)
            if runner is not None:
                job.processes.finish(runner)
            self._delete(vm)
            job.log.say(f"Deleted VM {vm}.")

    def _wait_for_ip(self, job: Job, vm: str) -> str:
        deadline = time.monotonic() + self.settings.tart_boot_timeout_seconds
        answer = job.workspace / "ip.txt"
        while time.monotonic() < deadline:
            with answer.open("wb") as out:
                code = job.processes.run(["tart", "ip", vm], cwd=job.workspace, stdout=out)
            ip = answer.read_text().strip()
            if code == 0 and ip:
                return ip
            time.sleep(IP_POLL_SECONDS)
            job.processes.check()
        raise TartError(f"VM {vm} got no IP address within {self.settings.tart_boot_timeout_seconds:g}s")

    def _ssh(self, ip: str) -> list[str]:
        argv = [
            "ssh",
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null",
            "-o", "ConnectTimeout=15",
            "-o", "LogLevel=ERROR",
        ]  # fmt: skip
        if self.settings.tart_ssh_key is not None:
            argv += ["-i", str(self.settings.tart_ssh_key.expanduser())]
        return [*argv, f"{self.settings.tart_ssh_user}@{ip}"]

    def _remote(self, job: Job, ip: str, argv: list[str], **kwargs: object) -> int:
        return job.processes.run([*self._ssh(ip), commands.remote_command(argv)], cwd=job.workspace, **kwargs)  # type: ignore[arg-type]

    def _build_in(self, job: Job, ip: str) -> Outcome:
        src, out = f"{REMOTE_DIR}/src", f"{REMOTE_DIR}/out"
        if self._remote(job, ip, ["mkdir", "-p", src, out]) != 0:
            raise TartError("could not reach the VM over ssh")
        bundle = job.workspace / "src.tar"
        with tarfile.open(bundle, "w") as tar:
            tar.add(job.source_dir, arcname=".")
        with bundle.open("rb") as stdin:
            if self._remote(job, ip, ["tar", "-x", "-f", "-", "-C", src], stdin=stdin) != 0:
                raise TartError("could not copy the source into the VM")
        artifact = f"../out/{commands.artifact_name(job.build)}"
        argv = commands.render(
            self.settings.command,
            commands.values_for(job.build, source_dir=".", output_dir="../out", artifact=artifact),
        )
        env = [f"{key}={value}" for key, value in _vm_env(job).items()]
        line = f"cd {commands.remote_command([src])} && exec {commands.remote_command(['env', *env, *argv])}"
        job.log.say(f"Running in the VM: {commands.remote_command(argv)}")
        code = job.processes.run([*self._ssh(ip), line], cwd=job.workspace)
        job.log.say(f"The build command exited with code {code}.")
        results = job.workspace / "out.tar"
        with results.open("wb") as stdout:
            fetched = self._remote(job, ip, ["tar", "-c", "-f", "-", "-C", out, "."], stdout=stdout)
        if fetched == 0:
            sources.extract(results, job.output_dir)
        elif code == 0:
            raise TartError("could not copy the artifacts out of the VM")
        return Outcome(code)

    def _stop(self, vm: str) -> None:
        _quiet(["tart", "stop", vm])

    def _delete(self, vm: str) -> None:
        _quiet(["tart", "delete", vm])


def _vm_env(job: Job) -> dict[str, str]:
    """The BUILDFARM_BUILD_* facts, as the shell executor gives them (the VM has its own PATH and HOME)."""
    return {k: v for k, v in job.processes.env.items() if k.startswith("BUILDFARM_BUILD_") or k == "LANG"}


def _quiet(argv: list[str]) -> None:
    """Cleanup: never raises, never hangs; it runs after a cancel too, so not through job.processes."""
    try:
        subprocess.run(argv, capture_output=True, timeout=CLEANUP_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        log.warning("%s failed: %s", " ".join(argv), error)
