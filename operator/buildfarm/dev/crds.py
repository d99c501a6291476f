"""Installs the CustomResourceDefinitions in a directory (the repo's `crds/`) and waits until they serve."""

import json
import time
from pathlib import Path
from typing import Any, Final

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

FIELD_MANAGER: Final = "buildfarm-dev"
DEFAULT_TIMEOUT_SECONDS: Final = 30.0
_REQUEST_TIMEOUT_SECONDS: Final = 10.0
_POLL_SECONDS: Final = 0.2


class CrdInstallError(RuntimeError):
    """A CRD file is invalid or a CRD did not become Established; the message says which."""


def load(directory: Path) -> list[dict[str, Any]]:
    """Every CustomResourceDefinition in `directory/*.yaml` (not subdirectories: samples live there)."""
    definitions: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            with path.open() as file:
                documents = [doc for doc in yaml.safe_load_all(file) if doc is not None]
        except yaml.YAMLError as error:
            raise CrdInstallError(f"{path} is not valid YAML: {_one_line(error)}") from error
        for document in documents:
            kind = document.get("kind") if isinstance(document, dict) else None
            if kind != "CustomResourceDefinition":
                raise CrdInstallError(
                    f"{path} holds a {kind or 'non-object document'}: "
                    "only CustomResourceDefinitions belong there"
                )
            if not isinstance((document.get("metadata") or {}).get("name"), str):
                raise CrdInstallError(f"{path} has a CustomResourceDefinition without metadata.name")
            definitions.append(document)
    return definitions


def install(
    api_client: client.ApiClient,
    definitions: list[dict[str, Any]],
    *,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
) -> None:
    """Server-side applies each definition (re-running updates them), then waits until all are Established."""
    api = client.ApiextensionsV1Api(api_client)
    for definition in definitions:
        name = definition["metadata"]["name"]
        try:
            api.patch_custom_resource_definition(
                name=name,
                body=definition,
                field_manager=FIELD_MANAGER,
                force=True,
                _content_type="application/apply-patch+yaml",
                _request_timeout=_REQUEST_TIMEOUT_SECONDS,
            )
        except ApiException as error:
            raise CrdInstallError(f"the API server rejected CRD {name}: {_api_message(error)}") from error
    deadline = time.monotonic() + timeout_seconds
    for definition in definitions:
        _wait_established(api, definition["metadata"]["name"], deadline, timeout_seconds)


def _wait_established(
    api: client.ApiextensionsV1Api, name: str, deadline: float, timeout_seconds: float
) -> None:
    while True:
        crd = api.read_custom_resource_definition(name, _request_timeout=_REQUEST_TIMEOUT_SECONDS)
        conditions = {c.type: c for c in (crd.status.conditions if crd.status else None) or []}
        established = conditions.get("Established")
        if established is not None and established.status == "True":
            return
        names = conditions.get("NamesAccepted")
        if names is not None and names.status == "False":
            raise CrdInstallError(f"CRD {name} was rejected: {names.message}")
        if time.monotonic() > deadline:
            raise CrdInstallError(
                f"CRD {name} was not Established within {timeout_seconds:g} s: "
                f"check `kubectl get crd {name} -o yaml` and the kube-apiserver log"
            )
        time.sleep(_POLL_SECONDS)


def _api_message(error: ApiException) -> str:
    try:
        status = json.loads(error.body or "")
    except ValueError:
        return f"{error.status} {error.reason}"
    return _one_line(status.get("message") or f"{error.status} {error.reason}")


def _one_line(error: object) -> str:
    return " ".join(str(error).split())
