"""Every error is `{"error": {"code", "message"}}` with a 4xx (or 503 when the store is down); never a 500 for bad input."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match, Mount

from relay.base.log import log
from relay.base.replicas import NotReplicated
from relay.core.ratelimit import RateLimited


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    """Every refusal: `{"error": {"code", "message"}}`."""

    error: ErrorDetail


_MEANINGS = {
    400: "Malformed: not JSON, or a bad header",
    401: "No token, or a token that is forged, expired or of an unknown person",
    403: "The caller's kind may not use this endpoint, or may not act on this request",
    404: "No such request or student for this caller (another's look the same as none)",
    409: "The change does not apply to the request's current state",
    413: "The body is over RELAY_MAX_BODY_BYTES",
    415: "The body is not application/json",
    422: "The body is well-formed JSON but not acceptable",
    429: "Too many requests: wait Retry-After seconds",
    503: "The store or a vendor is unavailable, or (code `overloaded`) the API is saturated and the message is "
         "not an emergency: nothing was saved; retry after Retry-After",
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}}},
    429: {"Retry-After": {"description": "seconds", "schema": {"type": "string"}}},
    503: {"Retry-After": {"description": "seconds", "schema": {"type": "string"}}},
}


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for these error statuses, each with the error schema."""
    return described({status: _MEANINGS[status] for status in statuses})


def described(meanings: dict[int, str], model: type[BaseModel] = ErrorBody) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for error statuses in a router's own words (which codes, and why)."""
    return {status: {"model": model, "description": meaning,
                     **({"headers": _HEADERS[status]} if status in _HEADERS else {})}
            for status, meaning in meanings.items()}


def document_errors(app: FastAPI, prefix: str = "/v1/") -> None:
    """Every API operation documents every error response, with the error schema
    (what the fuzz test holds every operation to: tests/test_fuzz.py). Done on the generated
    document, FastAPI's way of extending it, so it covers routers added by anyone."""
    generate = app.openapi
    every = {str(status): {"description": _MEANINGS[status],
                           "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
                           **({"headers": _HEADERS[status]} if status in _HEADERS else {})}
             for status in _MEANINGS}

    def openapi() -> dict[str, Any]:
        document = generate()  # cached by FastAPI: the additions below are made once
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        body = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(body.pop("$defs", {}))
        schemas.setdefault("ErrorBody", body)
        for path, operations in document.get("paths", {}).items():
            for operation in operations.values() if path.startswith(prefix) else ():
                responses = operation.setdefault("responses", {})
                if "HTTPValidationError" in str(responses.get("422")):  # FastAPI's own 422 is not what Relay answers
                    responses["422"] = every["422"]
                for status, documented in every.items():  # what a route declares itself is kept
                    responses.setdefault(status, documented)
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


_STATUS_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    406: "not_acceptable", 409: "conflict", 413: "body_too_large", 415: "unsupported_media_type",
    422: "invalid_request", 429: "rate_limited",
}


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> str | None:
    """Every method some route serves at this path: Starlette's 405 names only the first route's,
    and a path often has two (GET shows a page, POST changes something). Asked of the app's own
    routing, one method at a time; mounts (static files) answer their own 405s."""
    path, root_path = request.scope["path"], request.scope.get("root_path", "")
    routes = [route for route in request.app.router.routes if not isinstance(route, Mount)]
    allowed = [method for method in _METHODS if any(
        route.matches({"type": "http", "method": method, "path": path, "root_path": root_path, "headers": []})[0]
        is Match.FULL for route in routes)]
    return ", ".join(allowed) or None


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(RateLimited)
    async def _rate_limited(_: Request, exc: RateLimited) -> JSONResponse:
        return error_response(429, "rate_limited", str(exc), {"Retry-After": str(exc.seconds)})

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405 and (allowed := allowed_methods(request)):
            headers = {**(headers or {}), "Allow": allowed}
        return error_response(exc.status_code, code, str(exc.detail), headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error_response(422, "invalid_request", f"{where}: {first.get('msg', 'invalid')}")

    @app.exception_handler(ClientDisconnect)
    async def _gone(_: Request, exc: ClientDisconnect) -> JSONResponse:
        # The client left before sending its body: nothing was stored, nobody is listening.
        return error_response(400, "client_disconnected", "the client disconnected")

    @app.exception_handler(NotReplicated)
    async def _not_replicated(_: Request, exc: NotReplicated) -> JSONResponse:
        # Registered before RedisError's handler, and more specific: Starlette picks by the exception's class.
        log.error("store_unavailable", error="NotReplicated", replicas=exc.confirmed, wanted=exc.wanted.replicas)
        return error_response(503, "store_unavailable", "暂时无法确认保存，请用同一 Idempotency-Key 重试 (not yet "
                              "confirmed on a replica; retry with the same Idempotency-Key to get the stored request)",
                              {"Retry-After": "1"})

    @app.exception_handler(RedisError)
    async def _store_down(_: Request, exc: RedisError) -> JSONResponse:
        log.error("store_unavailable", error=type(exc).__name__)
        return error_response(503, "store_unavailable", "暂时无法保存，请稍后重试 (the store is unavailable; nothing was saved)",
                              {"Retry-After": "5"})
