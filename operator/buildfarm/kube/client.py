"""The one place that builds a Kubernetes API client, from a kubeconfig or the pod's service account.

Which credentials, in order: `settings.kubeconfig` (--kubeconfig / BUILDFARM_KUBECONFIG), then $KUBECONFIG,
then the in-cluster service account when running in a pod (KUBERNETES_SERVICE_HOST is set), then
~/.kube/config. A problem is a KubeConfigError whose message is one line saying what to do.
"""

import os
from pathlib import Path
from typing import Any, Final, Protocol

import yaml
from kubernetes import config as kube_config
from kubernetes.client import ApiClient, Configuration

from buildfarm.settings import env_var
from buildfarm.telemetry import kube as kube_metrics

DEFAULT_KUBECONFIG: Final = Path("~/.kube/config")
IN_CLUSTER_ENV: Final = "KUBERNETES_SERVICE_HOST"
CONNECTION_POOL_SIZE: Final = 16


class ClientSettings(Protocol):
    """What a client needs from any command's settings (the operator's, the agent's)."""

    @property
    def kubeconfig(self) -> Path | None: ...
    @property
    def context(self) -> str | None: ...
    @property
    def connect_timeout(self) -> float: ...
    @property
    def request_timeout(self) -> float: ...


class KubeConfigError(Exception):
    """No usable kubeconfig or in-cluster credentials; the message is one line saying what to do."""


def request_timeout(settings: ClientSettings) -> tuple[float, float]:
    """`_request_timeout=` for every API call: (connect, read) seconds."""
    return (settings.connect_timeout, settings.request_timeout)


def make_api_client(settings: ClientSettings, *, kubeconfig_source: str | None = None) -> ApiClient:
    """A client for the cluster the settings point at; close it (or use `with`) when done.

    `kubeconfig_source` names where `settings.kubeconfig` came from in messages (default: its variable,
    BUILDFARM_KUBECONFIG; the command line passes `--kubeconfig` when the flag set it).
    The client does not retry by itself: a call fails after its `_request_timeout`, and the caller decides.
    """
    configuration = Configuration()
    if settings.kubeconfig is not None:
        source = kubeconfig_source or env_var("kubeconfig")
        _load_kubeconfig(configuration, [settings.kubeconfig], settings.context, source)
    elif os.environ.get("KUBECONFIG"):
        paths = [Path(p) for p in os.environ["KUBECONFIG"].split(os.pathsep) if p]
        _load_kubeconfig(configuration, paths, settings.context, "KUBECONFIG")
    elif os.environ.get(IN_CLUSTER_ENV):
        if settings.context is not None:
            raise KubeConfigError(
                f"--context {settings.context} needs a kubeconfig, but none is set and this runs in a pod: "
                "pass --kubeconfig or drop --context"
            )
        _load_in_cluster(configuration)
    else:
        _load_kubeconfig(configuration, [DEFAULT_KUBECONFIG], settings.context, None)
    # urllib3 would retry a refused or timed-out call 3 more times, quadrupling every timeout.
    configuration.retries = False
    # One reused, bounded pool of connections: as many as threads may call at once (the operator's
    # scheduler runs up to a dozen steps in parallel), so no call opens and drops its own TLS connection.
    # The client's default (5 per CPU) is smaller than that on a small machine.
    configuration.connection_pool_maxsize = CONNECTION_POOL_SIZE
    return MeasuredApiClient(configuration)


class MeasuredApiClient(ApiClient):
    """An ApiClient that times and counts every call (buildfarm_kube_api_request_*): every gateway
    method, typed or not, ends in call_api, so this one place sees them all."""

    def call_api(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        with kube_metrics.measured(method, url) as call:
            response = super().call_api(method, url, *args, **kwargs)
            call.answered(response.status)
        return response


def _load_kubeconfig(
    configuration: Configuration, paths: list[Path], context: str | None, source: str | None
) -> None:
    """Load the first usable context of `paths`; `source` is the setting that named them (None: default)."""
    expanded = [path.expanduser() for path in paths]
    named = f" ({source})" if source else ""
    elsewhere = f"point {source}" if source else "point KUBECONFIG or --kubeconfig"
    for path in expanded:
        # Checked before anything else: "no kubeconfig found" would send the user looking in the wrong place.
        if path.is_dir():
            inside = path / "config"
            fix = f"did you mean {inside}?" if inside.is_file() else f"{elsewhere} at a kubeconfig file"
            raise KubeConfigError(f"the kubeconfig {path}{named} is a directory, not a file: {fix}")
        if path.is_file() and not os.access(path, os.R_OK):
            raise KubeConfigError(
                f"the kubeconfig {path}{named} is not readable by this user: "
                f"fix its permissions or {elsewhere} at another file"
            )
    readable = [path for path in expanded if path.is_file()]
    shown = os.pathsep.join(str(path) for path in expanded)
    if not readable:
        raise KubeConfigError(f"no kubeconfig found at {shown}: set KUBECONFIG or --kubeconfig")
    names: list[str] = []
    current: str | None = None
    for path in readable:
        document = _read_kubeconfig(path)
        names.extend(
            str(entry["name"])
            for entry in document.get("contexts") or []
            if isinstance(entry, dict) and "name" in entry
        )
        current = current or document.get("current-context") or None  # The first file's wins.
    if context is not None and context not in names:
        raise KubeConfigError(
            f"context {context!r} is not in the kubeconfig {shown} (it has: {', '.join(names) or 'none'}): "
            "pick one with --context (see `kubectl config get-contexts`)"
        )
    if context is None and current is None:
        raise KubeConfigError(
            f"the kubeconfig {shown} has no current-context: pass --context "
            "or run `kubectl config use-context NAME`"
        )
    try:
        kube_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=os.pathsep.join(str(path) for path in readable),
            context=context,
            client_configuration=configuration,
            persist_config=False,
        )
    except (kube_config.ConfigException, OSError, ValueError, KeyError, TypeError) as error:
        raise KubeConfigError(
            f"cannot use the kubeconfig {shown}: {_first_line(error)}; fix it or point --kubeconfig elsewhere"
        ) from None


def _read_kubeconfig(path: Path) -> dict[str, Any]:
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError) as error:
        raise KubeConfigError(
            f"cannot read the kubeconfig {path}: {_first_line(error)}; fix it or point --kubeconfig elsewhere"
        ) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise KubeConfigError(
            f"the kubeconfig {path} is not valid YAML ({problem}{where}): "
            "fix it or point --kubeconfig elsewhere"
        ) from None
    if not isinstance(document, dict):
        raise KubeConfigError(
            f"the kubeconfig {path} is not a kubeconfig (expected clusters, users and contexts): "
            "fix it or point --kubeconfig elsewhere"
        )
    return document


def _load_in_cluster(configuration: Configuration) -> None:
    try:
        kube_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except kube_config.ConfigException as error:
        raise KubeConfigError(
            f"the in-cluster service account is unusable ({_first_line(error)}): "
            "mount a service account token in the pod (automountServiceAccountToken) or pass --kubeconfig"
        ) from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    return line if len(line) <= 200 else f"{line[:197]}..."
