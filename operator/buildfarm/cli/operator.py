"""`buildfarm operator`: check the settings and the cluster, then run the operator.

Every setting comes from a `BUILDFARM_*` environment variable; a flag given here overrides it. A problem
found before the operator starts is one line on stderr: exit code 2 for a wrong setting or flag, 1 for
a cluster that cannot be reached or used.
"""

import logging
import warnings
from pathlib import Path
from typing import Any, Final

import click
import urllib3

from buildfarm.cli import logformat
from buildfarm.cli.errors import BadSettingsError, StartupError, settings_from
from buildfarm.kube import client as kube_client
from buildfarm.kube.preflight import PreflightError, preflight
from buildfarm.settings import OperatorSettings, env_var
from buildfarm.telemetry import exporter

# The flag that sets each setting, to name it in error messages instead of its environment variable.
_FLAGS: Final = {
    "kubeconfig": "--kubeconfig",
    "context": "--context",
    "namespaces": "--namespace",
    "standalone": "--standalone",
    "request_timeout": "--request-timeout",
    "handler_timeout": "--handler-timeout",
    "liveness_endpoint": "--liveness",
    "metrics_port": "--metrics-port",
}


def _named(field: str, given: dict[str, Any]) -> str:
    """How a message names a setting: by its flag if the flag set it, else by its environment variable."""
    return _FLAGS[field] if field in given and field in _FLAGS else env_var(field)


@click.command("operator")
@click.option(
    "--kubeconfig",
    # Not dir_okay=False: click's refusal spans three lines; the client names a directory in one.
    type=click.Path(path_type=Path),
    help=f"The kubeconfig file. [env: {env_var('kubeconfig')}; default: $KUBECONFIG, the pod's service "
    "account in a cluster, ~/.kube/config]",
)
@click.option("--context", help=f"The kubeconfig context. [env: {env_var('context')}; default: current]")
@click.option(
    "-n",
    "--namespace",
    "namespaces",
    multiple=True,
    help=f"Serve Builds in this namespace; repeat for more. [env: {env_var('namespaces')}, comma-separated]",
)
@click.option(
    "-A",
    "--all-namespaces",
    is_flag=True,
    help="Serve Builds in all namespaces (the default when no namespace is given anywhere).",
)
@click.option(
    "--standalone",
    is_flag=True,
    default=None,
    help=f"Run without peering with other operator replicas. [env: {env_var('standalone')}]",
)
@click.option(
    "--request-timeout",
    metavar="SECONDS",
    help=f"The longest one Kubernetes API call may take. [env: {env_var('request_timeout')}; default: 10]",
)
@click.option(
    "--handler-timeout",
    metavar="SECONDS",
    help=f"The longest one handler may run. [env: {env_var('handler_timeout')}; default: 60]",
)
@click.option(
    "--liveness",
    "liveness_endpoint",
    metavar="URL",
    help="Serve kopf's liveness probe, e.g. http://0.0.0.0:8080/healthz. "
    f"[env: {env_var('liveness_endpoint')}]",
)
@click.option(
    "--metrics-port",
    metavar="PORT",
    help=f"Serve Prometheus metrics on this port (0: off). [env: {env_var('metrics_port')}; default: 9090]",
)
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages too.")
def operator_command(
    kubeconfig: Path | None,
    context: str | None,
    namespaces: tuple[str, ...],
    all_namespaces: bool,
    standalone: bool | None,
    request_timeout: str | None,
    handler_timeout: str | None,
    liveness_endpoint: str | None,
    metrics_port: str | None,
    verbose: bool,
) -> None:
    """Run the operator: assign Builds to Workers until stopped (Ctrl-C or SIGTERM).

    Before it starts, it checks the settings (an unknown BUILDFARM_* variable is an error), that the API
    server answers, that its credentials have every permission it needs, and that the buildfarm CRDs are
    installed.
    """
    if namespaces and all_namespaces:
        raise BadSettingsError("--namespace and --all-namespaces exclude each other: use one")
    # Numbers are passed on as typed, so the settings report a bad one like a bad environment variable.
    flags: dict[str, Any] = {
        "kubeconfig": kubeconfig,
        "context": context,
        "namespaces": list(namespaces) if namespaces else ([] if all_namespaces else None),
        "standalone": standalone,
        "request_timeout": request_timeout,
        "handler_timeout": handler_timeout,
        "liveness_endpoint": liveness_endpoint,
        "metrics_port": metrics_port,
    }
    given = {name: value for name, value in flags.items() if value is not None}
    settings = settings_from(OperatorSettings, flags, _FLAGS)

    # A kubeconfig with insecure-skip-tls-verify asked for it; urllib3 would warn on every single call.
    warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)
    try:
        api_client = kube_client.make_api_client(
            settings, kubeconfig_source="--kubeconfig" if "kubeconfig" in given else None
        )
    except kube_client.KubeConfigError as error:
        raise StartupError(str(error)) from None
    with api_client:
        try:
            cautions = preflight(
                api_client,
                kube_client.request_timeout(settings),
                settings.namespaces,
                standalone=settings.standalone,
                farm_namespace=settings.farm_namespace,
                timeout_names=(_named("connect_timeout", given), _named("request_timeout", given)),
            )
        except PreflightError as error:
            raise StartupError(str(error)) from None

        from buildfarm.operator.config import configure_logging
        from buildfarm.operator.runner import run

        try:
            metrics = exporter.serve("operator", settings.metrics_port, setting=_named("metrics_port", given))
        except exporter.MetricsPortError as error:
            raise StartupError(str(error)) from None
        configure_logging(verbose=verbose, log_format=logformat.chosen())
        for caution in cautions:
            # Logged, not printed: it belongs with the operator's log, where it is looked for later.
            logging.getLogger("buildfarm.startup").warning(caution)
        try:
            run(settings, api_client)
        finally:
            exporter.stop(metrics)
