"""A real validating admission webhook that makes the API server fail chosen writes with a 500.

The API server calls it over TLS for status updates of Builds in one namespace; while a rule says so,
the webhook answers HTTP 500, and with failurePolicy Fail the API server answers the writer
"500 Internal error occurred: failed calling webhook". Faults come from the real API server, not a mock.
"""

import base64
import json
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from kubernetes import client

from buildfarm.dev import certs

Rule = Callable[[dict[str, Any]], bool]  # gets the AdmissionReview request; True = fail this write


class FaultWebhook:
    def __init__(self, should_fail: Rule) -> None:
        self.should_fail = should_fail
        self.seen: list[dict[str, Any]] = []
        self.failed: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def handle(self, review: dict[str, Any]) -> bool:
        request = review["request"]
        with self._lock:
            self.seen.append(request)
            fail = self.should_fail(request)
            if fail:
                self.failed.append(request)
        return fail


@contextmanager
def fault_webhook(
    admission: client.AdmissionregistrationV1Api, namespace: str, should_fail: Rule
) -> Iterator[FaultWebhook]:
    hook = FaultWebhook(should_fail)
    material = certs.generate(("127.0.0.1",))
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = Path(tmp, "tls.crt"), Path(tmp, "tls.key")
        cert.write_bytes(material.serving.cert_pem)
        key.write_bytes(material.serving.key_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if hook.handle(review):
                self.send_error(500, "injected fault")
                return
            body = json.dumps(
                {
                    "apiVersion": "admission.k8s.io/v1",
                    "kind": "AdmissionReview",
                    "response": {"uid": review["request"]["uid"], "allowed": True},
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    name = f"buildfarm-test-faults-{namespace}"
    config = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": "faults.buildfarm.dev",
                "clientConfig": {
                    "url": f"https://127.0.0.1:{server.server_address[1]}/validate",
                    "caBundle": base64.b64encode(material.ca.cert_pem).decode(),
                },
                "rules": [
                    {
                        "apiGroups": ["buildfarm.dev"],
                        "apiVersions": ["v1alpha1"],
                        "operations": ["UPDATE"],
                        "resources": ["builds/status"],
                        "scope": "Namespaced",
                    }
                ],
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 5,
            }
        ],
    }
    admission.create_validating_webhook_configuration(config, _request_timeout=10)
    try:
        yield hook
    finally:
        admission.delete_validating_webhook_configuration(name, _request_timeout=10)
        server.shutdown()
        server.server_close()
