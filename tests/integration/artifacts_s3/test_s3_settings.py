"""S3 settings are checked at start: a malformed value by the settings model, an unreachable endpoint, a
missing bucket or wrong credentials by S3Backend.check() against the real server; each is one line."""

import asyncio
import os
from typing import Any

import pytest

from buildfarm.artifacts.backends.base import StorageError
from buildfarm.artifacts.backends.s3 import S3Backend
from buildfarm.artifacts.backends.s3_settings import S3Settings
from buildfarm.settings import SettingsError, validated
from tests.support.s3 import S3Server, free_port

REQUIRED = {
    "BUILDFARM_ARTIFACTS_S3_BUCKET": "artifacts",
    "BUILDFARM_ARTIFACTS_S3_ACCESS_KEY_ID": "key-id",
    "BUILDFARM_ARTIFACTS_S3_SECRET_ACCESS_KEY": "the-secret-value",
}


def load(monkeypatch: pytest.MonkeyPatch, **env: str) -> S3Settings:
    for name in [n for n in os.environ if n.startswith("BUILDFARM_ARTIFACTS_S3_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return validated(S3Settings, env)


def check(settings: S3Settings) -> None:
    backend = S3Backend(settings)
    try:
        asyncio.run(backend.check())
    finally:
        backend.close()


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load(
        monkeypatch,
        **REQUIRED,
        BUILDFARM_ARTIFACTS_S3_ENDPOINT="http://minio.storage:9000",
        BUILDFARM_ARTIFACTS_S3_PREFIX="buildfarm/",
        BUILDFARM_ARTIFACTS_S3_PATH_STYLE="false",
    )
    assert (settings.endpoint.host, settings.endpoint.port) == ("minio.storage", 9000)
    assert (settings.bucket, settings.prefix, settings.path_style) == ("artifacts", "buildfarm/", False)
    assert "the-secret-value" not in repr(settings)


@pytest.mark.parametrize(
    ("env", "want"),
    [
        pytest.param({}, "BUILDFARM_ARTIFACTS_S3_BUCKET: is required", id="missing-bucket"),
        pytest.param(
            {"BUILDFARM_ARTIFACTS_S3_BUCKET": "Not_A_Bucket"},
            "BUILDFARM_ARTIFACTS_S3_BUCKET: 'Not_A_Bucket' is not an S3 bucket name",
            id="bad-bucket",
        ),
        pytest.param(
            {"BUILDFARM_ARTIFACTS_S3_ENDPOINT": "minio:9000"},
            "BUILDFARM_ARTIFACTS_S3_ENDPOINT: URL scheme should be 'http' or 'https' (got minio:9000)",
            id="endpoint-without-scheme",
        ),
        pytest.param(
            {"BUILDFARM_ARTIFACTS_S3_ENDPOINT": "http://minio:9000/bucket"},
            "must be a bare http(s)://host[:port] URL",
            id="endpoint-with-path",
        ),
        pytest.param(
            {"BUILDFARM_ARTIFACTS_S3_PREFIX": "/abs"},
            "BUILDFARM_ARTIFACTS_S3_PREFIX: '/abs' must be empty or path segments",
            id="bad-prefix",
        ),
        pytest.param(
            {"BUILDFARM_ARTIFACTS_S3_SECRET_KEY": "x"},
            "did you mean BUILDFARM_ARTIFACTS_S3_SECRET_ACCESS_KEY?",
            id="misspelled",
        ),
    ],
)
def test_bad_settings_are_one_line(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], want: str) -> None:
    values = {k: v for k, v in REQUIRED.items() if env or k != "BUILDFARM_ARTIFACTS_S3_BUCKET"}
    with pytest.raises(SettingsError) as error:
        load(monkeypatch, **{**values, **env})
    message = str(error.value)
    assert want in message
    assert "\n" not in message
    assert "the-secret-value" not in message


def one_line_error(settings: S3Settings) -> str:
    with pytest.raises(StorageError) as error:
        check(settings)
    message = str(error.value)
    assert "\n" not in message
    assert settings.secret_access_key.get_secret_value() not in message
    return message


def test_check_passes_against_the_real_bucket(s3_server: S3Server) -> None:
    check(s3_server.settings())


@pytest.mark.parametrize(
    ("overrides", "want"),
    [
        pytest.param(
            {"endpoint": "http://127.0.0.1:{closed}"},
            "is unreachable",
            id="nothing-listening",
        ),
        pytest.param({"bucket": "no-such-bucket"}, "NoSuchBucket", id="missing-bucket"),
        pytest.param({"secret_access_key": "wrong-secret-0123"}, "SECRET_ACCESS_KEY", id="wrong-secret"),
        pytest.param({"access_key_id": "nobody"}, "ACCESS_KEY_ID", id="unknown-key"),
    ],
)
def test_check_explains_what_is_wrong(s3_server: S3Server, overrides: dict[str, Any], want: str) -> None:
    values = {k: (v.format(closed=free_port()) if isinstance(v, str) else v) for k, v in overrides.items()}
    message = one_line_error(s3_server.settings(**values))
    assert want in message, message


def test_the_service_settings_bucket_is_used(monkeypatch: pytest.MonkeyPatch, s3_server: S3Server) -> None:
    """make_backend passes the service's settings; their `bucket` (BUILDFARM_ARTIFACTS_BUCKET) wins."""
    env = {
        "BUILDFARM_ARTIFACTS_S3_ENDPOINT": s3_server.endpoint,
        "BUILDFARM_ARTIFACTS_S3_ACCESS_KEY_ID": s3_server.access_key,
        "BUILDFARM_ARTIFACTS_S3_SECRET_ACCESS_KEY": s3_server.secret_key,
    }
    load(monkeypatch, **{**env, "BUILDFARM_ARTIFACTS_S3_BUCKET": s3_server.bucket})

    class ServiceSettings:
        bucket = "no-such-bucket"

    for bucket, works in [("no-such-bucket", False), (s3_server.bucket, True)]:
        ServiceSettings.bucket = bucket
        backend = S3Backend.from_settings(ServiceSettings())
        try:
            if works:
                asyncio.run(backend.check())
            else:
                with pytest.raises(StorageError, match="NoSuchBucket"):
                    asyncio.run(backend.check())
        finally:
            backend.close()
