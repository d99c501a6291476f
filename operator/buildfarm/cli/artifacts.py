"""`buildfarm artifacts serve`: check the settings, then run the artifact service.

Every setting comes from a `BUILDFARM_ARTIFACTS_*` environment variable; a flag given here overrides it.
A problem found before the service starts is one line on stderr: exit code 2 for a wrong setting or
flag, 1 for a cluster or port it cannot use (as `buildfarm operator`).
"""

import logging
import warnings
from pathlib import Path
from typing import Any, Final

import click
import urllib3

from buildfarm.artifacts.settings import ENV_PREFIX, ArtifactSettings
from buildfarm.cli import logformat
from buildfarm.cli.errors import StartupError, settings_from
from buildfarm.kube import client as kube_client
from buildfarm.settings import env_var
from buildfarm.telemetry import exporter, logs

_FLAGS: Final = {
    "backend": "--backend",
    "root": "--root",
    "bucket": "--bucket",
    "host": "--host",
    "port": "--port",
    "base_url": "--base-url",
    "tls_cert_file": "--tls-cert",
    "tls_key_file": "--tls-key",
    "farm_namespace": "--farm-namespace",
    "kubeconfig": "--kubeconfig",
    "context": "--context",
    "metrics_port": "--metrics-port",
}


def _env(field: str) -> str:
    return env_var(field, ENV_PREFIX)


@click.group("artifacts")
def artifacts_group() -> None:
    """The artifact service: sources, credentials, artifacts and logs of builds."""


@artifacts_group.command("serve")
@click.option("--backend", help=f"filesystem or s3. [env: {_env('backend')}; default: filesystem]")
@click.option("--root", type=click.Path(path_type=Path), help=f"The storage directory. [env: {_env('root')}]")
@click.option("--bucket", help=f"The S3 bucket. [env: {_env('bucket')}]")
@click.option("--host", help=f"The address to listen on. [env: {_env('host')}; default: 127.0.0.1]")
@click.option("--port", help=f"The port to listen on. [env: {_env('port')}; default: 8443]")
@click.option("--base-url", help=f"The URL clients reach the service at. [env: {_env('base_url')}]")
@click.option(
    "--tls-cert", type=click.Path(path_type=Path), help=f"Serving cert. [env: {_env('tls_cert_file')}]"
)
@click.option("--tls-key", type=click.Path(path_type=Path), help=f"Its key. [env: {_env('tls_key_file')}]")
@click.option(
    "--farm-namespace",
    help=f"The farm's namespace. [env: {_env('farm_namespace')}; default: buildfarm-system]",
)
@click.option(
    "--kubeconfig", type=click.Path(path_type=Path), help=f"The kubeconfig. [env: {_env('kubeconfig')}]"
)
@click.option("--context", help=f"The kubeconfig context. [env: {_env('context')}; default: current]")
@click.option(
    "--metrics-port",
    metavar="PORT",
    help=f"Serve Prometheus metrics on this port (0: off). [env: {_env('metrics_port')}; default: 9092]",
)
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages too.")
def serve_command(
    backend: str | None,
    root: Path | None,
    bucket: str | None,
    host: str | None,
    port: str | None,
    base_url: str | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    farm_namespace: str | None,
    kubeconfig: Path | None,
    context: str | None,
    metrics_port: str | None,
    verbose: bool,
) -> None:
    """Serve build sources, credentials, artifacts and logs, authorized by the cluster (docs/artifacts.md)."""
    flags: dict[str, Any] = {
        "backend": backend,
        "root": root,
        "bucket": bucket,
        "host": host,
        "port": port,
        "base_url": base_url,
        "tls_cert_file": tls_cert,
        "tls_key_file": tls_key,
        "farm_namespace": farm_namespace,
        "kubeconfig": kubeconfig,
        "context": context,
        "metrics_port": metrics_port,
    }
    settings = settings_from(ArtifactSettings, flags, _FLAGS)
    warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)
    source = _FLAGS["kubeconfig"] if kubeconfig is not None else _env("kubeconfig")
    try:
        api_client = kube_client.make_api_client(settings, kubeconfig_source=source)
    except kube_client.KubeConfigError as error:
        raise StartupError(str(error)) from None
    logs.configure(
        logformat.chosen(),
        level=logging.DEBUG if verbose else logging.INFO,
        text_format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from buildfarm.artifacts.service import ServeError, run

    setting = _FLAGS["metrics_port"] if metrics_port is not None else _env("metrics_port")
    with api_client:
        try:
            metrics = exporter.serve("artifacts", settings.metrics_port, setting=setting)
        except exporter.MetricsPortError as error:
            raise StartupError(str(error)) from None
        try:
            run(settings, api_client)
        except ServeError as error:
            raise StartupError(str(error)) from None
        finally:
            exporter.stop(metrics)
