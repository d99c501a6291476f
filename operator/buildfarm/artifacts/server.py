"""The HTTP API of the artifact service (docs/artifacts-api.md): thin handlers that authenticate,
authorize, build the storage key and stream between the request and the backend.

Order in every handler: authenticate, check names, authorize, and only then touch storage, so a refused
request never writes. Bodies are streamed in CHUNK pieces with backpressure both ways: memory does not
grow with the size of a file.
"""

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Final, TypeVar

from aiohttp import ClientPayloadError, web

from buildfarm.api.builds import TERMINAL_PHASES, Build
from buildfarm.artifacts import access, errors, keys
from buildfarm.artifacts.auth import Authenticator
from buildfarm.artifacts.backends.base import (
    Backend,
    DigestMismatch,
    OffsetMismatch,
    StorageError,
    TooLarge,
)
from buildfarm.artifacts.settings import ArtifactSettings
from buildfarm.errors import BuildfarmError, NotFound
from buildfarm.kube.artifacts_gateway import Access, ArtifactsGateway, User
from buildfarm.telemetry import artifacts as metrics

logger = logging.getLogger(__name__)

CHUNK: Final = 256 * 1024
SHA256_HEADER: Final = "X-Buildfarm-Sha256"
T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Service:
    settings: ArtifactSettings
    backend: Backend
    gateway: ArtifactsGateway
    authenticator: Authenticator

    # Kubernetes, off the event loop

    async def kube(self, call: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(call)
        except NotFound:
            raise
        except BuildfarmError as error:
            raise errors.unavailable(f"the Kubernetes API failed: {error.message}; retry shortly") from None

    async def build(self, namespace: str, name: str) -> Build:
        try:
            return await self.kube(lambda: self.gateway.get_build(namespace, name))
        except NotFound:
            raise errors.not_found(f"build {namespace}/{name} does not exist") from None

    # Who is asking

    async def user(self, request: web.Request) -> User:
        peercert = request.transport.get_extra_info("peercert") if request.transport else None
        return await self.authenticator.user(request.headers, peercert)

    async def authorize_user(self, user: User, question: Access, doing: str) -> None:
        if not await self.kube(lambda: self.gateway.allowed(user, question)):
            what = (
                f"{question.resource}/{question.subresource}" if question.subresource else question.resource
            )
            raise errors.forbidden(
                f"{user.name} may not {doing} in namespace {question.namespace}: it needs "
                f"{question.verb} on {what}.{question.group} there (ask for a RoleBinding)"
            )

    async def assigned_agent(self, request: web.Request, namespace: str, name: str, attempt: int) -> Build:
        """The Build, if the caller is the agent it is assigned to at `attempt`; else a refusal."""
        user = await self.user(request)
        worker = access.agent_worker(user.name, self.settings.farm_namespace)
        if worker is None:
            raise errors.forbidden(f"{user.name} is not a worker agent: only the build's agent may do this")
        build = await self.build(namespace, name)
        access.check_agent(build, worker, attempt)
        return build

    def base_url(self, request: web.Request) -> str:
        return (self.settings.base_url or f"{request.scheme}://{request.host}").rstrip("/")


SERVICE: Final = web.AppKey("service", Service)


def make_app(service: Service) -> web.Application:
    app = web.Application(middlewares=[_measured, _refusals], client_max_size=1024**2)
    app[SERVICE] = service
    app.router.add_get("/healthz", _healthz)
    base = "/v1/namespaces/{ns}"
    # Route names are the `operation` label of the request metrics.
    add = app.router.add_route
    add("PUT", base + "/sources/{sha256}", _put_source, name="upload_source")
    add("GET", base + "/sources/{sha256}", _get_source, name="download_source")
    add("GET", base + "/builds/{name}/attempts/{attempt}/credentials", _get_credentials, name="credentials")
    add(
        "PUT",
        base + "/builds/{name}/attempts/{attempt}/artifacts/{file}",
        _put_artifact,
        name="upload_artifact",
    )
    add("GET", base + "/builds/{name}/artifacts/{file}", _get_artifact, name="download_artifact")
    add("POST", base + "/builds/{name}/attempts/{attempt}/log", _append_log, name="append_log")
    add("GET", base + "/builds/{name}/log", _get_log, name="read_log")
    return app


@web.middleware
async def _measured(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Time every API request by operation and status code (not /healthz or unmatched paths)."""
    operation = request.match_info.route.name
    if operation is None:
        return await handler(request)
    start = time.monotonic()
    code = 500
    try:
        response = await handler(request)
        code = response.status
        return response
    except web.HTTPException as redirect:
        code = redirect.status
        raise
    finally:
        metrics.REQUEST_SECONDS.labels(operation, str(code)).observe(time.monotonic() - start)


@web.middleware
async def _refusals(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every refusal and storage failure becomes the JSON error of the contract."""
    try:
        return await handler(request)
    except StorageError as error:
        backend = request.app[SERVICE].backend.name
        metrics.STORAGE_ERRORS.labels(backend, request.match_info.route.name or "unknown").inc()
        logger.warning("Storage failed for %s %s: %s", request.method, request.path, error)
        return _error(errors.unavailable(f"the storage failed: {error}; retry shortly"))
    except errors.Refused as refused:
        return _error(refused)
    except keys.BadName as error:
        return _error(errors.bad_name(str(error)))
    except TooLarge as error:
        return _error(errors.too_large(f"{error}: raise the service's limit or upload less"))
    except DigestMismatch as error:
        return _error(errors.digest_mismatch(f"{error}: the upload was corrupted or the digest is wrong"))
    except OffsetMismatch as error:
        return _error(errors.Refused(409, "OffsetMismatch", str(error), size=error.size))
    except (ConnectionResetError, ClientPayloadError) as error:
        # The client went away mid-body: nothing was made visible; there is nobody left to answer.
        logger.info("Client left during %s %s: %s", request.method, request.path, error)
        return _error(errors.Refused(400, "Incomplete", "the request body ended early: send it again"))


def _error(refused: errors.Refused) -> web.Response:
    if refused.reason in metrics.REFUSAL_REASONS:
        metrics.REFUSALS.labels(refused.reason).inc()
    return web.json_response(refused.body(), status=refused.status)


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


# Sources


async def _put_source(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    user = await service.user(request)
    namespace = keys.namespace(request.match_info["ns"])
    digest = keys.sha256(request.match_info["sha256"])
    await service.authorize_user(user, access.source_upload(namespace), "upload sources (create builds)")
    key = keys.source_key(namespace, digest)
    limit = service.settings.source_limit_bytes
    _check_length(request, limit)
    existing = await service.backend.stat(key)
    if existing is not None and existing.sha256 == digest:
        await _discard(request)  # Idempotent: the same content is stored already.
        stored, status = existing, 200
    else:
        stored = await service.backend.put(key, _body(request), limit=limit, expected_sha256=digest)
        metrics.RECEIVED_BYTES.labels("source").inc(stored.size)
        status = 201
    url = f"{service.base_url(request)}/v1/namespaces/{namespace}/sources/{digest}"
    return web.json_response({"url": url, "sha256": stored.sha256, "size": stored.size}, status=status)


async def _get_source(request: web.Request) -> web.StreamResponse:
    service = request.app[SERVICE]
    namespace = keys.namespace(request.match_info["ns"])
    digest = keys.sha256(request.match_info["sha256"])
    name = keys.object_name(request.query.get("build", ""))
    attempt = keys.attempt(request.query.get("attempt", ""))
    build = await service.assigned_agent(request, namespace, name, attempt)
    if not access.uses_source(build, namespace, digest):
        raise errors.forbidden(f"build {namespace}/{name} does not use source {digest}")
    return await _serve(request, service, keys.source_key(namespace, digest), f"source {digest}", "source")


# Credentials


async def _get_credentials(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    namespace = keys.namespace(request.match_info["ns"])
    name = keys.object_name(request.match_info["name"])
    attempt = keys.attempt(request.match_info["attempt"])
    build = await service.assigned_agent(request, namespace, name, attempt)
    if build.spec.credentials is None:
        raise errors.not_found(f"build {namespace}/{name} names no credentials (spec.credentials)")
    secret = build.spec.credentials.secret_name
    try:
        data = await service.kube(lambda: service.gateway.secret_data(namespace, secret))
    except NotFound:
        raise errors.not_found(f"the credentials Secret {namespace}/{secret} does not exist") from None
    response = web.json_response({"data": data})
    response.headers["Cache-Control"] = "no-store"
    return response


# Artifacts


async def _put_artifact(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    namespace = keys.namespace(request.match_info["ns"])
    name = keys.object_name(request.match_info["name"])
    attempt = keys.attempt(request.match_info["attempt"])
    file = keys.file_name(request.match_info["file"])
    build = await service.assigned_agent(request, namespace, name, attempt)
    limit = service.settings.artifact_limit_bytes
    _check_length(request, limit)
    expected = request.headers.get(SHA256_HEADER)
    if expected is not None:
        keys.sha256(expected)
    key = keys.artifact_key(namespace, name, build.uid, attempt, file)
    stored = await service.backend.put(key, _body(request), limit=limit, expected_sha256=expected)
    metrics.RECEIVED_BYTES.labels("artifact").inc(stored.size)
    location = f"{service.base_url(request)}/v1/namespaces/{namespace}/builds/{name}/artifacts/{file}"
    return web.json_response(
        {"name": file, "size": stored.size, "sha256": stored.sha256, "location": location}, status=201
    )


async def _get_artifact(request: web.Request) -> web.StreamResponse:
    service = request.app[SERVICE]
    user = await service.user(request)
    namespace = keys.namespace(request.match_info["ns"])
    name = keys.object_name(request.match_info["name"])
    file = keys.file_name(request.match_info["file"])
    await service.authorize_user(user, access.artifact_read(namespace, name), f"read artifacts of {name}")
    build = await service.build(namespace, name)
    if build.status.attempt < 1:
        raise errors.not_found(f"build {namespace}/{name} has not run yet: it has no artifacts")
    key = keys.artifact_key(namespace, name, build.uid, build.status.attempt, file)
    return await _serve(request, service, key, f"artifact {file} of build {namespace}/{name}", "artifact")


# Logs


async def _append_log(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    namespace = keys.namespace(request.match_info["ns"])
    name = keys.object_name(request.match_info["name"])
    attempt = keys.attempt(request.match_info["attempt"])
    offset = _offset(request)
    build = await service.assigned_agent(request, namespace, name, attempt)
    key = keys.log_key(namespace, name, build.uid, attempt)
    before = await service.backend.stat(key)
    size = await service.backend.append(key, offset, _body(request), limit=service.settings.log_limit_bytes)
    metrics.RECEIVED_BYTES.labels("log").inc(max(0, size - (before.size if before else 0)))
    return web.json_response({"size": size})


async def _get_log(request: web.Request) -> web.StreamResponse:
    service = request.app[SERVICE]
    user = await service.user(request)
    namespace = keys.namespace(request.match_info["ns"])
    name = keys.object_name(request.match_info["name"])
    offset = _offset(request)
    follow = request.query.get("follow", "false").lower() in ("true", "1", "yes")
    await service.authorize_user(user, access.log_read(namespace, name), f"read the log of {name}")
    build = await service.build(namespace, name)
    attempt = keys.attempt(request.query["attempt"]) if "attempt" in request.query else build.status.attempt
    if attempt < 1:
        if not follow:
            return web.Response(body=b"", content_type="text/plain")
        raise errors.not_found(f"build {namespace}/{name} has not started: follow it once it is assigned")
    key = keys.log_key(namespace, name, build.uid, attempt)
    response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
    response.headers["X-Buildfarm-Attempt"] = str(attempt)
    await response.prepare(request)
    # From here on the answer has begun: a failure can only end the stream, not become an error body.
    position = offset
    try:
        while True:
            position = await _copy_from(service.backend, key, position, response)
            if not follow or _log_complete(build, attempt):
                # One more pass after the build finished: bytes appended just before it did are sent too.
                if follow:
                    position = await _copy_from(service.backend, key, position, response)
                break
            await asyncio.sleep(service.settings.follow_poll_seconds)
            stored = await service.backend.stat(key)
            if stored is None or stored.size <= position:
                build = await service.build(namespace, name)
        await response.write_eof()
    except (errors.Refused, StorageError) as error:
        logger.info("Stopped following the log of %s/%s: %s", namespace, name, error)
    except ConnectionResetError:
        pass  # The reader left.
    return response


def _log_complete(build: Build, attempt: int) -> bool:
    """No more bytes will come: the build finished, or this attempt was superseded."""
    return build.status.phase in TERMINAL_PHASES or build.status.attempt != attempt


async def _copy_from(backend: Backend, key: str, offset: int, response: web.StreamResponse) -> int:
    try:
        async for chunk in backend.read(key, offset):
            await response.write(chunk)
            offset += len(chunk)
            metrics.SENT_BYTES.labels("log").inc(len(chunk))
    except KeyError:
        pass  # No log yet.
    return offset


# Streaming helpers


async def _serve(
    request: web.Request, service: Service, key: str, what: str, kind: str
) -> web.StreamResponse:
    stored = await service.backend.stat(key)
    if stored is None:
        raise errors.not_found(f"the {what} is not stored")
    url = service.backend.presigned_get(key, service.settings.presign_seconds)
    headers = {SHA256_HEADER: stored.sha256} if stored.sha256 else {}
    if url is not None:
        raise web.HTTPTemporaryRedirect(url, headers=headers)
    response = web.StreamResponse(
        headers={**headers, "Content-Type": "application/octet-stream", "Content-Length": str(stored.size)}
    )
    await response.prepare(request)
    try:
        async for chunk in service.backend.read(key):
            await response.write(chunk)
            metrics.SENT_BYTES.labels(kind).inc(len(chunk))
        await response.write_eof()
    except (StorageError, KeyError) as error:
        # Begun already: the client sees a short body (Content-Length tells it), never a wrong one.
        logger.warning("Serving %s stopped: %s", what, error)
    except ConnectionResetError:
        pass  # The reader left.
    return response


async def _body(request: web.Request) -> AsyncIterator[bytes]:
    async for chunk in request.content.iter_chunked(CHUNK):
        yield chunk


async def _discard(request: web.Request) -> None:
    async for _ in request.content.iter_chunked(CHUNK):
        pass


def _check_length(request: web.Request, limit: int) -> None:
    """Refuse a declared oversize body before reading any of it."""
    if request.content_length is not None and request.content_length > limit:
        raise errors.too_large(
            f"the body is {request.content_length} bytes, over the limit of {limit}: upload less"
        )


def _offset(request: web.Request) -> int:
    text = request.query.get("offset", "0")
    if not text.isdigit():
        raise errors.Refused(422, "BadOffset", f"offset {text!r} is not a byte offset (0 or more)")
    return int(text)
