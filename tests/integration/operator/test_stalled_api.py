"""A stalled API server must not hang the operator: its calls time out within the configured limits, and
once the server answers again the next build is assigned. The stall is a TCP proxy in front of the real
API server that stops forwarding bytes (a hung server or a dead link, as the operator sees it)."""

from pathlib import Path
from urllib.parse import urlsplit

import yaml

from tests.support.farm import Farm, wait_for
from tests.support.operators import operators
from tests.support.stallproxy import StallProxy

SETTINGS = {
    "BUILDFARM_REQUEST_TIMEOUT": "2",
    "BUILDFARM_CONNECT_TIMEOUT": "1",
    "BUILDFARM_WATCH_SERVER_TIMEOUT": "10",
    "BUILDFARM_WATCH_CLIENT_TIMEOUT": "12",
}


def proxied_kubeconfig(kubeconfig: str, port: int, path: Path) -> Path:
    config = yaml.safe_load(Path(kubeconfig).read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = f"https://127.0.0.1:{port}"
    path.write_text(yaml.safe_dump(config))
    return path


def api_port(kubeconfig: str) -> int:
    config = yaml.safe_load(Path(kubeconfig).read_text())
    return int(urlsplit(config["clusters"][0]["cluster"]["server"]).port or 443)


def test_operator_survives_a_stalled_api_server(farm: Farm, kubeconfig: str, tmp_path: Path) -> None:
    farm.worker("mac", capacity=2)
    with StallProxy("127.0.0.1", api_port(kubeconfig)) as proxy:
        via_proxy = proxied_kubeconfig(kubeconfig, proxy.port, tmp_path / "kubeconfig")
        with operators(1, via_proxy, tmp_path, ["--namespace", farm.namespace], env=SETTINGS):
            farm.build("before")
            wait_for("the first build assigned", lambda: farm.phases().get("before") == "Assigned")

            proxy.stall()
            farm.build("during")  # the test talks to the API server directly; the operator cannot see it
            log = tmp_path / "operator-0.log"
            wait_for("the operator's watches to time out", lambda: "TimeoutError" in log.read_text(), 90)
            assert farm.phases()["during"] is None

            proxy.resume()
            wait_for("the next build assigned", lambda: farm.phases().get("during") == "Assigned")
    assert farm.get_build("during").status.attempt == 1
