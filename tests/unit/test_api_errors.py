"""How API errors are classified: what retries, what fails a build, and what a log line says."""

import json

import pytest
from kubernetes.client.exceptions import ApiException

from buildfarm.errors import Conflict, NotFound, PermanentError, TransientError
from buildfarm.kube.errors import classify


def api_error(status: int, message: str = "") -> ApiException:
    exc = ApiException(status=status, reason="Reason")
    exc.body = json.dumps({"message": message})
    return exc


@pytest.mark.parametrize(
    ("status", "message", "want_class", "want_reason"),
    [
        (409, "", Conflict, "Conflict"),
        (404, "", NotFound, "NotFound"),
        (503, "", TransientError, "ApiUnavailable"),
        (429, "", TransientError, "ApiUnavailable"),
        (403, 'events is forbidden: User "x" cannot create', TransientError, "Forbidden"),
        (
            403,
            "unable to create new content in namespace t because it is being terminated",
            TransientError,
            "NamespaceTerminating",
        ),
        (422, "status.phase is final", Conflict, "Invalid"),
        (400, "bad", PermanentError, "ApiError"),
    ],
)
def test_classify(status: int, message: str, want_class: type[Exception], want_reason: str) -> None:
    error = classify(api_error(status, message), "write build ns/b")
    assert type(error) is want_class
    assert getattr(error, "reason", "") == want_reason
