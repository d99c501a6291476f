"""The artifact service's client, for the worker agent and the user CLI (docs/artifacts-api.md is the API).

- It authenticates with the kubeconfig's own credentials (kube.credentials): a bearer token in the
  Authorization header, or the kubeconfig's client certificate in the TLS handshake.
- Credentials go to the configured service URL only: every request it signs is built from that base URL,
  a URL from elsewhere (a Build's spec) is signed only if it has the same origin, and a redirect (the S3
  backend's presigned URLs) is followed by a second client that holds neither the token nor the
  certificate.
- Bodies stream both ways in chunks of CHUNK bytes, so memory stays constant for any file size; a download
  is hashed while it is written, lands under a temporary name, and is renamed into place only when its
  sha256 is the expected one.
- Every failure is an ArtifactError whose message is one line: what failed and what to do. `retryable`
  says whether trying again may help (the network, a timeout, a 5xx), as opposed to a refusal.

It is synchronous (httpx): the agent runs each build on threads and the CLI is a plain click program.
"""

import base64
import binascii
import contextlib
import hashlib
import ipaddress
import json
import os
import secrets
import ssl
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx

from buildfarm.kube.credentials import HttpCredentials

CHUNK: Final = 256 * 1024
ERROR_BODY_MAX: Final = 4096  # bytes of an error answer read at most
JSON_MAX: Final = 1024 * 1024  # bytes of any JSON answer read at most
REDIRECTS_MAX: Final = 3
SHA256_HEADER: Final = "X-Buildfarm-Sha256"
URL_SETTING: Final = "BUILDFARM_ARTIFACTS_URL"
CA_SETTING: Final = "BUILDFARM_ARTIFACTS_CA"

Progress = Callable[[int], None]  # called with the number of bytes just sent or received


class ArtifactError(Exception):
    """A call to the artifact service failed; str() is one line saying what and what to do."""

    def __init__(self, message: str, *, status: int | None = None, reason: str = "", retryable: bool = False):
        super().__init__(" ".join(message.split()))
        self.status = status
        self.reason = reason
        self.retryable = retryable


class OffsetMismatch(ArtifactError):
    """A log append started past the stored end; `size` is where the service's copy ends."""

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message, status=409, reason="OffsetMismatch")
        self.size = size


class DigestMismatch(ArtifactError):
    """Downloaded bytes do not have the expected sha256; nothing was kept."""


@dataclass(frozen=True)
class Stored:
    """What the service answered for an upload."""

    url: str  # where it can be read again (`location` of an artifact, `url` of a source)
    size: int
    sha256: str


@dataclass(frozen=True)
class Downloaded:
    path: Path
    size: int
    sha256: str


def check_base_url(url: str) -> str:
    """The service URL without a trailing slash; https, or http to this machine only (tokens must not
    cross a network in the clear). ValueError with a one-line reason otherwise."""
    parsed = urllib.parse.urlsplit(url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL (e.g. https://artifacts.example.com)")
    if parsed.scheme == "http" and not _loopback(parsed.hostname):
        raise ValueError(f"{url!r} is plain http to another machine: use https (http is for 127.0.0.1 only)")
    if parsed.query or parsed.fragment or parsed.username or parsed.password:
        raise ValueError(f"{url!r} must not carry a query, a fragment or a user: give the service's base URL")
    return urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, parsed.path.rstrip("/"), "", ""))


def _check_redirect(url: str) -> None:
    """A redirect target (a presigned URL) is fetched without credentials, but still only over https,
    or http to this machine."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme == "https" and parsed.hostname:
        return
    if parsed.scheme == "http" and _loopback(parsed.hostname or ""):
        return
    raise ValueError(f"{url[:200]!r} is neither https nor http to this machine")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _origin(url: str) -> tuple[str, str, int | None]:
    parsed = urllib.parse.urlsplit(url)
    scheme = parsed.scheme.lower()
    try:
        port = parsed.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:
        port = -1
    return scheme, (parsed.hostname or "").lower(), port


def _segment(value: str) -> str:
    return urllib.parse.quote(value, safe="")


class ArtifactClient:
    """One connection pool to the service; close it (or use `with`) when done."""

    def __init__(
        self,
        base_url: str,
        credentials: HttpCredentials,
        *,
        ca_file: Path | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
    ) -> None:
        self.base_url = check_base_url(base_url)
        self._credentials = credentials
        self._timeout = httpx.Timeout(read_timeout, connect=connect_timeout)
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        if credentials.cert_file:
            context.load_cert_chain(credentials.cert_file, credentials.key_file)
        # trust_env=False: no .netrc credentials and no proxy from the environment are mixed in.
        self._http = httpx.Client(
            verify=context, timeout=self._timeout, follow_redirects=False, trust_env=False
        )
        # Redirect targets (presigned URLs of an object store) get no token and no client certificate.
        self._bare = httpx.Client(timeout=self._timeout, follow_redirects=False, trust_env=False)

    def __enter__(self) -> "ArtifactClient":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()
        self._bare.close()

    def owns(self, url: str) -> bool:
        """Whether `url` is on this service (same scheme, host and port, under its base path)."""
        path = urllib.parse.urlsplit(url).path
        base_path = urllib.parse.urlsplit(self.base_url).path
        return _origin(url) == _origin(self.base_url) and path.startswith(base_path + "/")

    # Sources

    def upload_source(
        self, namespace: str, path: Path, sha256: str, progress: Progress | None = None
    ) -> Stored:
        url = self._url("v1", "namespaces", namespace, "sources", sha256)
        answer = self._put_file(url, path, progress, f"upload the source archive to namespace {namespace}")
        return Stored(str(answer.get("url") or url), int(answer["size"]), str(answer["sha256"]))

    def download_source(
        self, url: str, dest: Path, *, build: str, attempt: int, limit: int, sha256: str | None
    ) -> Downloaded:
        """The agent's download of its build's source archive from this service."""
        if not self.owns(url):
            raise ArtifactError(
                f"the source URL {url[:200]!r} is not on the artifact service {self.base_url}"
            )
        params = {"build": build, "attempt": str(attempt)}
        return self._download(
            url, dest, params=params, sha256=sha256, limit=limit, what="download the source"
        )

    # The agent's writes and reads for one attempt of a build

    def credentials(self, namespace: str, build: str, attempt: int) -> dict[str, bytes]:
        """The build's signing credentials (Secret keys to bytes); never logged, never stored here."""
        url = self._url(
            "v1", "namespaces", namespace, "builds", build, "attempts", str(attempt), "credentials"
        )
        answer = self._json("GET", url, what=f"fetch the credentials of build {namespace}/{build}")
        data = answer.get("data")
        if not isinstance(data, dict):
            raise ArtifactError("the artifact service answered credentials without a data object")
        try:
            return {str(key): base64.b64decode(str(value), validate=True) for key, value in data.items()}
        except (binascii.Error, ValueError):
            raise ArtifactError("the artifact service answered credentials that are not base64") from None

    def upload_artifact(
        self,
        namespace: str,
        build: str,
        attempt: int,
        path: Path,
        progress: Progress | None = None,
        *,
        sha256: str | None = None,
    ) -> Stored:
        url = self._url(
            "v1", "namespaces", namespace, "builds", build, "attempts", str(attempt), "artifacts", path.name
        )
        what = f"upload artifact {path.name} of build {namespace}/{build}"
        # With the digest given, the service refuses (422, nothing stored) bytes that changed on the way.
        answer = self._put_file(url, path, progress, what, {SHA256_HEADER: sha256} if sha256 else None)
        return Stored(str(answer["location"]), int(answer["size"]), str(answer["sha256"]))

    def append_log(self, namespace: str, build: str, attempt: int, offset: int, data: bytes) -> int:
        """Append `data` at byte `offset` of the attempt's log; returns the stored size. A retry of a
        request whose answer was lost is safe: the service skips the bytes it has."""
        url = self._url("v1", "namespaces", namespace, "builds", build, "attempts", str(attempt), "log")
        what = f"append to the log of build {namespace}/{build}"
        response = self._send("POST", url, what, params={"offset": str(offset)}, content=data)
        with contextlib.closing(response):
            if response.status_code == 409:
                body = _json_body(response)
                if body.get("reason") == "OffsetMismatch" and isinstance(body.get("size"), int):
                    raise OffsetMismatch(f"{what}: the service has {body['size']} bytes", body["size"])
            self._raise_for(response, what)
            return int(_json_body(response)["size"])

    # The user's reads

    def read_log(
        self, namespace: str, build: str, *, offset: int = 0, follow: bool = False, attempt: int | None = None
    ) -> Iterator[bytes]:
        """The log's bytes from `offset`; with `follow`, until the build is finished and all is sent.
        Reconnecting after an error is the caller's (it knows how many bytes it got)."""
        url = self._url("v1", "namespaces", namespace, "builds", build, "log")
        params = {"offset": str(offset), "follow": "true" if follow else "false"}
        if attempt is not None:
            params["attempt"] = str(attempt)
        what = f"read the log of build {namespace}/{build}"
        response = self._send("GET", url, what, params=params, stream=True)
        with contextlib.closing(response):
            self._raise_for(response, what)
            try:
                yield from response.iter_bytes()
            except httpx.HTTPError as error:
                raise self._network_error(what, error) from None

    def download_artifact(
        self,
        namespace: str,
        build: str,
        name: str,
        dest: Path,
        *,
        sha256: str | None,
        progress: Progress | None = None,
    ) -> Downloaded:
        url = self._url("v1", "namespaces", namespace, "builds", build, "artifacts", name)
        what = f"download artifact {name} of build {namespace}/{build}"
        return self._download(url, dest, params=None, sha256=sha256, progress=progress, what=what)

    # Plumbing

    def _url(self, *segments: str) -> str:
        return self.base_url + "/" + "/".join(_segment(s) for s in segments)

    def _headers(self) -> dict[str, str]:
        token = self._credentials.authorization()
        return {"Authorization": token} if token else {}

    def _send(
        self,
        method: str,
        url: str,
        what: str,
        *,
        params: dict[str, str] | None = None,
        content: Any = None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        if not self.owns(url):  # the one gate every signed request passes
            raise ArtifactError(f"refusing to send credentials to {url[:200]!r}: it is not {self.base_url}")
        request = self._http.build_request(
            method, url, params=params, content=content, headers=self._headers() | (headers or {})
        )
        try:
            return self._http.send(request, stream=stream)
        except httpx.HTTPError as error:
            raise self._network_error(what, error) from None

    def _json(self, method: str, url: str, *, what: str) -> dict[str, Any]:
        response = self._send(method, url, what)
        with contextlib.closing(response):
            self._raise_for(response, what)
            return _json_body(response)

    def _put_file(
        self, url: str, path: Path, progress: Progress | None, what: str, extra: dict[str, str] | None = None
    ) -> dict[str, Any]:
        try:
            size = path.stat().st_size
        except OSError as error:
            raise ArtifactError(f"cannot {what}: {error.strerror or error}: {path}") from None
        response = self._send(
            "PUT",
            url,
            what,
            content=_file_chunks(path, progress),
            # A known length lets the service refuse an oversized body before it reads it.
            headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"} | (extra or {}),
        )
        with contextlib.closing(response):
            self._raise_for(response, what)
            return _json_body(response)

    def _download(
        self,
        url: str,
        dest: Path,
        *,
        params: dict[str, str] | None,
        sha256: str | None,
        what: str,
        limit: int | None = None,
        progress: Progress | None = None,
    ) -> Downloaded:
        response = self._send("GET", url, what, params=params, stream=True)
        # The service states the digest; a presigned store's answer does not carry it.
        stated = response.headers.get(SHA256_HEADER)
        for _ in range(REDIRECTS_MAX):
            if response.status_code not in (301, 302, 303, 307, 308):
                break
            stated = stated or response.headers.get(SHA256_HEADER)
            target = urllib.parse.urljoin(url, response.headers.get("Location", ""))
            response.close()
            try:
                _check_redirect(target)
            except ValueError as error:
                raise ArtifactError(
                    f"cannot {what}: the service redirected to an unsafe URL: {error}"
                ) from None
            try:
                response = self._bare.send(self._bare.build_request("GET", target), stream=True)
            except httpx.HTTPError as error:
                raise self._network_error(what, error, where=urllib.parse.urlsplit(target).netloc) from None
        with contextlib.closing(response):
            self._raise_for(response, what)
            expected = sha256 or stated or response.headers.get(SHA256_HEADER)
            return _write_checked(response, dest, expected, limit, progress, what)

    def _raise_for(self, response: httpx.Response, what: str) -> None:
        status = response.status_code
        if status < 400:
            return
        body = _json_body(response, quiet=True)
        reason = str(body.get("reason") or response.reason_phrase or "")
        said = str(body.get("error") or "").strip()
        if not said:
            said = f"HTTP {status} {response.reason_phrase}".strip()
        hint = ""
        if status == 401:
            hint = ": the service does not accept the kubeconfig's credentials (are they expired?)"
        retryable = status >= 500 or status == 429
        raise ArtifactError(
            f"cannot {what}: {said}{hint} (HTTP {status})", status=status, reason=reason, retryable=retryable
        )

    def _network_error(self, what: str, error: httpx.HTTPError, where: str | None = None) -> ArtifactError:
        where = where or self.base_url
        kind = "timed out" if isinstance(error, httpx.TimeoutException) else "failed"
        detail = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        return ArtifactError(
            f"cannot {what}: the connection to the artifact service at {where} {kind} ({detail}); "
            f"check that it runs and that {URL_SETTING} or --artifacts-url points at it",
            retryable=True,
        )


def _file_chunks(path: Path, progress: Progress | None) -> Iterator[bytes]:
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            if progress is not None:
                progress(len(chunk))
            yield chunk


def _json_body(response: httpx.Response, *, quiet: bool = False) -> dict[str, Any]:
    """The answer's JSON object, of at most JSON_MAX bytes (ERROR_BODY_MAX for an error answer, where
    `quiet` turns anything unreadable into {})."""
    cap = ERROR_BODY_MAX if quiet else JSON_MAX
    raw = b""
    try:
        for chunk in response.iter_bytes():
            raw += chunk
            if len(raw) > cap:
                break
        body = json.loads(raw[:cap]) if len(raw) <= cap or quiet else None
    except (httpx.HTTPError, ValueError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict):
        return body
    if quiet:
        return {}
    raise ArtifactError(
        f"the artifact service at {response.url} answered something that is not a JSON object"
    )


def _write_checked(
    response: httpx.Response,
    dest: Path,
    expected: str | None,
    limit: int | None,
    progress: Progress | None,
    what: str,
) -> Downloaded:
    """Stream the body into a temporary file next to `dest`, hashing; rename it into place only if the
    sha256 matches (and the size is within `limit`); else delete it."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.part")
    digest = hashlib.sha256()
    size = 0
    try:
        with partial.open("xb") as out:
            try:
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if limit is not None and size > limit:
                        raise ArtifactError(f"cannot {what}: it is larger than {limit} bytes")
                    digest.update(chunk)
                    out.write(chunk)
                    if progress is not None:
                        progress(len(chunk))
            except httpx.HTTPError as error:
                detail = str(error).strip() or type(error).__name__
                raise ArtifactError(
                    f"cannot {what}: the connection broke after {size} bytes ({detail[:200]}); try again",
                    retryable=True,
                ) from None
        actual = digest.hexdigest()
        if expected is not None and actual != expected.lower():
            raise DigestMismatch(
                f"cannot {what}: its sha256 is {actual}, not {expected} as recorded; nothing was kept, "
                "try again (if it persists, the stored file is damaged)"
            )
        os.replace(partial, dest)
    except OSError as error:
        raise ArtifactError(f"cannot {what}: cannot write {dest}: {error.strerror or error}") from None
    finally:
        partial.unlink(missing_ok=True)
    return Downloaded(dest, size, actual)
