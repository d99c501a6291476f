"""`buildfarm agent`: check the settings and the cluster, then run this machine's worker agent.

Every setting comes from a `BUILDFARM_AGENT_*` environment variable; a flag given here overrides it. A
problem found before the agent starts is one line on stderr: exit code 2 for a wrong setting or flag, 1
for a cluster that cannot be reached or used (as `buildfarm operator`).
"""

import logging
import warnings
from pathlib import Path
from typing import Any, Final

import click
import urllib3

from buildfarm.agent.settings import ENV_PREFIX, AgentSettings
from buildfarm.cli import logformat
from buildfarm.cli.errors import StartupError, settings_from
from buildfarm.errors import BuildfarmError
from buildfarm.kube import client as kube_client
from buildfarm.kube.preflight import PreflightError, preflight_agent
from buildfarm.settings import env_var
from buildfarm.telemetry import exporter, logs

_FLAGS: Final = {
    "worker_name": "--worker-name",
    "namespace": "--namespace",
    "kubeconfig": "--kubeconfig",
    "context": "--context",
    "platforms": "--platform",
    "capacity": "--capacity",
    "labels": "--label",
    "executor": "--executor",
    "command": "--command",
    "work_dir": "--work-dir",
    "tart_image": "--tart-image",
    "stop_grace_seconds": "--stop-grace",
    "metrics_port": "--metrics-port",
}


def _env(field: str) -> str:
    return env_var(field, ENV_PREFIX)


@click.command("agent")
@click.option(
    "--worker-name", help=f"The Worker this machine is. [env: {_env('worker_name')}; default: host name]"
)
@click.option(
    "-n",
    "--namespace",
    help=f"The farm's namespace (holds the Lease). [env: {_env('namespace')}; default: buildfarm-system]",
)
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"The kubeconfig file. [env: {_env('kubeconfig')}; default: $KUBECONFIG, ~/.kube/config]",
)
@click.option("--context", help=f"The kubeconfig context. [env: {_env('context')}; default: current]")
@click.option(
    "--platform",
    "platforms",
    multiple=True,
    help=f"A platform of a Worker the agent creates; repeat for more. [env: {_env('platforms')}]",
)
@click.option(
    "--capacity", metavar="N", help=f"Capacity of a Worker the agent creates. [env: {_env('capacity')}]"
)
@click.option(
    "--label",
    "labels",
    multiple=True,
    metavar="KEY=VALUE",
    help=f"A label of a Worker the agent creates; repeat for more. [env: {_env('labels')}]",
)
@click.option("--executor", help=f"shell or tart. [env: {_env('executor')}; default: shell]")
@click.option("--command", help=f"The build command template. [env: {_env('command')}]")
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help=f"Workspaces, logs and artifacts. [env: {_env('work_dir')}; default: ~/.buildfarm/agent]",
)
@click.option("--tart-image", help=f"The Tart image build VMs are cloned from. [env: {_env('tart_image')}]")
@click.option(
    "--stop-grace",
    metavar="SECONDS",
    help=f"On SIGTERM, how long running builds may finish. [env: {_env('stop_grace_seconds')}; default: 600]",
)
@click.option(
    "--metrics-port",
    metavar="PORT",
    help=f"Serve Prometheus metrics on this port (0: off). [env: {_env('metrics_port')}; default: 9091]",
)
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages too.")
def agent_command(
    worker_name: str | None,
    namespace: str | None,
    kubeconfig: Path | None,
    context: str | None,
    platforms: tuple[str, ...],
    capacity: str | None,
    labels: tuple[str, ...],
    executor: str | None,
    command: str | None,
    work_dir: Path | None,
    tart_image: str | None,
    stop_grace: str | None,
    metrics_port: str | None,
    verbose: bool,
) -> None:
    """Run the worker agent of this machine: register its Worker, renew its Lease, and run the Builds
    assigned to it, until stopped (SIGTERM: finish or hand back running builds; SIGQUIT: hand back now).
    """
    flags: dict[str, Any] = {
        "worker_name": worker_name,
        "namespace": namespace,
        "kubeconfig": kubeconfig,
        "context": context,
        "platforms": list(platforms) or None,
        "capacity": capacity,
        "labels": ",".join(labels) if labels else None,
        "executor": executor,
        "command": command,
        "work_dir": work_dir,
        "tart_image": tart_image,
        "stop_grace_seconds": stop_grace,
        "metrics_port": metrics_port,
    }
    settings = settings_from(AgentSettings, flags, _FLAGS)

    warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)
    source = _FLAGS["kubeconfig"] if kubeconfig is not None else _env("kubeconfig")
    try:
        api_client = kube_client.make_api_client(settings, kubeconfig_source=source)
        lease_client = kube_client.make_api_client(settings, kubeconfig_source=source)
    except kube_client.KubeConfigError as error:
        raise StartupError(str(error)) from None
    with api_client, lease_client:
        timeout_names = (_env("connect_timeout"), _env("request_timeout"))
        try:
            preflight_agent(api_client, kube_client.request_timeout(settings), timeout_names=timeout_names)
        except PreflightError as error:
            raise StartupError(str(error)) from None

        from buildfarm.agent.main import run

        setting = _FLAGS["metrics_port"] if metrics_port is not None else _env("metrics_port")
        try:
            metrics = exporter.serve("agent", settings.metrics_port, setting=setting)
        except exporter.MetricsPortError as error:
            raise StartupError(str(error)) from None
        # Every line of the agent is about its worker: in json, each carries it.
        logs.configure(
            logformat.chosen(),
            level=logging.DEBUG if verbose else logging.INFO,
            text_format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            fields={"worker": settings.worker_name},
        )
        try:
            run(settings, api_client, lease_client)
        except BuildfarmError as error:
            raise StartupError(f"the agent cannot run: {error.message}") from None
        finally:
            exporter.stop(metrics)
