"""A Kafka Connect-compatible REST endpoint (Starlette, served by uvicorn): ``make connect-api``.

Paths, verbs, status codes and JSON bodies are Kafka Connect's, so the team's curl commands and
tools that speak Kafka Connect's REST API work unchanged; refusals answer
``{"error_code": <status>, "message": ...}``. Each request runs the shared operations
(``core/operations/service.py``) in a worker thread. It binds loopback by default; with
``MUNGMO_CONNECT_API_USER`` and ``MUNGMO_CONNECT_API_PASSWORD`` set it asks for HTTP basic auth,
as Kafka Connect's ``BasicAuthSecurityRestExtension`` does. This module does not import Dagster:
the orchestrator is handed in.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mungmo_pipelines.core.errors import BadRequest, OperationError
from mungmo_pipelines.core.operations.service import Connect
from mungmo_pipelines.core.operations.state import TargetState
from mungmo_pipelines.core.operations.validate import plugins

log = logging.getLogger(__name__)

VERSION = {"version": "3.9.1-mungmo", "commit": "mungmo-pipelines", "kafka_cluster_id": None}
RELOAD_HEADER = "X-Mungmo-Reload"
LAUNCH_HEADER = "X-Mungmo-Launched"


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error_code": status, "message": message}, status_code=status)


def _flag(request: Request, name: str, default: bool) -> bool:
    value = request.query_params.get(name)
    if value is None:
        return default
    if value.lower() not in ("true", "false"):
        raise BadRequest(f"query parameter {name} must be true or false, got {value!r}")
    return value.lower() == "true"


async def _json(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw) if raw else None
    except json.JSONDecodeError as err:
        raise BadRequest(f"request body is not valid JSON: {err}") from None


Handler = Callable[[Request, Connect], Awaitable[Response]]


def create_app(connect: Connect, credentials: tuple[str, str] | None = None) -> Starlette:
    """The REST API over ``connect``; ``credentials`` (user, password) turns on basic auth."""

    def route(path: str, methods: list[str], handler: Handler) -> Route:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request, connect)
            except OperationError as err:
                return error(err.status, err.message)

        return Route(path, endpoint, methods=methods)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return error(exc.status_code, f"HTTP {exc.status_code} {exc.detail}")

    async def server_error(request: Request, exc: Exception) -> Response:
        log.exception("%s %s failed", request.method, request.url.path)
        return error(500, f"{type(exc).__name__}: {exc}")

    middleware = [Middleware(BasicAuth, credentials=credentials)] if credentials else []
    return Starlette(
        routes=[
            route("/", ["GET"], _root),
            route("/connectors", ["GET"], _list),
            route("/connectors", ["POST"], _create),
            route("/connectors/{name}", ["GET"], _info),
            route("/connectors/{name}", ["DELETE"], _delete),
            route("/connectors/{name}/config", ["GET"], _config),
            route("/connectors/{name}/config", ["PUT"], _put_config),
            route("/connectors/{name}/status", ["GET"], _status),
            route("/connectors/{name}/topics", ["GET"], _topics),
            route("/connectors/{name}/pause", ["PUT"], _state_setter(TargetState.PAUSED, 202)),
            route("/connectors/{name}/resume", ["PUT"], _state_setter(TargetState.RUNNING, 202)),
            route("/connectors/{name}/stop", ["PUT"], _state_setter(TargetState.STOPPED, 204)),
            route("/connectors/{name}/restart", ["POST"], _restart),
            route("/connectors/{name}/offsets", ["GET"], _offsets),
            route("/connectors/{name}/offsets", ["DELETE"], _reset_offsets),
            route("/connectors/{name}/offsets", ["PATCH"], _alter_offsets),
            route("/connector-plugins", ["GET"], _plugins),
            route("/connector-plugins/{plugin}/config/validate", ["PUT"], _validate),
        ],
        middleware=middleware,
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )


class BasicAuth(BaseHTTPMiddleware):
    """HTTP basic auth with one user, compared in constant time."""

    def __init__(self, app: Any, credentials: tuple[str, str]) -> None:
        super().__init__(app)
        self.expected = f"{credentials[0]}:{credentials[1]}".encode()

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        try:
            given = base64.b64decode(encoded, validate=True) if scheme.lower() == "basic" else b""
        except (binascii.Error, ValueError):
            given = b""
        if not hmac.compare_digest(given, self.expected):
            response = error(401, "User cannot access the resource.")
            response.headers["WWW-Authenticate"] = 'Basic realm="mungmo-connect"'
            return response
        return await call_next(request)


def _name(request: Request) -> str:
    return str(request.path_params["name"])


async def _root(request: Request, connect: Connect) -> Response:
    return JSONResponse(VERSION)


async def _list(request: Request, connect: Connect) -> Response:
    expand = request.query_params.getlist("expand")
    return JSONResponse(await run_in_threadpool(connect.connectors, expand))


async def _create(request: Request, connect: Connect) -> Response:
    body = await _json(request)
    info, reload = await run_in_threadpool(connect.create, body)
    return JSONResponse(
        info, status_code=201, headers={"Location": f"/connectors/{info['name']}", RELOAD_HEADER: reload}
    )


async def _info(request: Request, connect: Connect) -> Response:
    return JSONResponse(await run_in_threadpool(connect.info, _name(request)))


async def _delete(request: Request, connect: Connect) -> Response:
    keep = _flag(request, "keepOffsets", True)
    removed, reload = await run_in_threadpool(connect.delete, _name(request), keep)
    return Response(status_code=204, headers={RELOAD_HEADER: reload, "X-Mungmo-Removed": ", ".join(removed)})


async def _config(request: Request, connect: Connect) -> Response:
    return JSONResponse(await run_in_threadpool(connect.config, _name(request)))


async def _put_config(request: Request, connect: Connect) -> Response:
    body = await _json(request)
    info, created, reload = await run_in_threadpool(connect.put_config, _name(request), body)
    headers = {RELOAD_HEADER: reload}
    if created:
        headers["Location"] = f"/connectors/{info['name']}"
    return JSONResponse(info, status_code=201 if created else 200, headers=headers)


async def _status(request: Request, connect: Connect) -> Response:
    return JSONResponse(await run_in_threadpool(connect.status, _name(request)))


async def _topics(request: Request, connect: Connect) -> Response:
    return JSONResponse(await run_in_threadpool(connect.topics, _name(request)))


def _state_setter(state: TargetState, status: int) -> Handler:
    async def set_state(request: Request, connect: Connect) -> Response:
        await run_in_threadpool(connect.set_state, _name(request), state)
        return Response(status_code=status)

    return set_state


async def _restart(request: Request, connect: Connect) -> Response:
    include_tasks = _flag(request, "includeTasks", False)
    only_failed = _flag(request, "onlyFailed", False)
    status, launched = await run_in_threadpool(connect.restart, _name(request), include_tasks, only_failed)
    headers = {LAUNCH_HEADER: launched or "nothing"}
    if not include_tasks and not only_failed:  # Kafka Connect's plain restart: no body
        return Response(status_code=204, headers=headers)
    return JSONResponse(status, status_code=202, headers=headers)


async def _offsets(request: Request, connect: Connect) -> Response:
    return JSONResponse(await run_in_threadpool(connect.offsets, _name(request)))


async def _reset_offsets(request: Request, connect: Connect) -> Response:
    return JSONResponse(await run_in_threadpool(connect.reset_offsets, _name(request)))


async def _alter_offsets(request: Request, connect: Connect) -> Response:
    body = await _json(request)
    return JSONResponse(await run_in_threadpool(connect.alter_offsets, _name(request), body))


async def _plugins(request: Request, connect: Connect) -> Response:
    return JSONResponse(plugins())


async def _validate(request: Request, connect: Connect) -> Response:
    body = await _json(request)
    if not isinstance(body, dict):
        raise BadRequest("expected the connector config as a JSON object of options")
    return JSONResponse(await run_in_threadpool(connect.validate, str(request.path_params["plugin"]), body))
