"""Errors as RFC 9457 problem+json, with a message a person can act on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import DataError, DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from facegate import errors as e

STATUS = {
    e.AuthenticationError: 401,
    e.PermissionDeniedError: 403,
    e.NotFoundError: 404,
    e.ConflictError: 409,
    e.SessionClosedError: 409,
    e.LockedOutError: 423,
    e.ModelMismatchError: 409,
    e.ImageTooLargeError: 413,
    e.ImageError: 422,
    e.StreamUnavailableError: 502,
    e.VideoTooLargeError: 413,
    e.VideoError: 422,
    e.FaceError: 422,
    e.InvalidRequestError: 400,
    e.ModelError: 500,
    e.ConfigurationError: 500,
}


def status_for(exc: e.FaceGateError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


def problem(request: Request, status: int, code: str, title: str, detail: str, **extra) -> JSONResponse:
    body = {
        "type": f"https://facegate.local/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "instance": str(request.url.path),
        "request_id": getattr(request.state, "request_id", ""),
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def validation_problem(request: Request, errors: Sequence[Any]) -> JSONResponse:
    """422 with one entry per invalid field."""
    issues = [{"field": ".".join(str(p) for p in err.get("loc", [])), "message": err.get("msg", "")} for err in errors]
    detail = "; ".join(f"{i['field']}: {i['message']}" for i in issues)
    return problem(request, 422, "validation_error", "Invalid request", detail, errors=issues)


def install(app: FastAPI) -> None:
    @app.exception_handler(e.FaceGateError)
    async def facegate_error(request: Request, exc: e.FaceGateError) -> JSONResponse:
        status = status_for(exc)
        response = problem(request, status, exc.code, type(exc).__name__, exc.message)
        if status == 401:
            response.headers["WWW-Authenticate"] = "ApiKey"
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_problem(request, exc.errors())

    @app.exception_handler(ValidationError)
    async def model_validation_error(request: Request, exc: ValidationError) -> JSONResponse:
        # Form fields gathered into a model inside a route (e.g. a registration): the caller's
        # input, so a 422 like any other invalid field, never a 500.
        return validation_problem(request, exc.errors())

    @app.exception_handler(RecursionError)
    async def too_deep(request: Request, exc: RecursionError) -> JSONResponse:
        # JSON nested thousands of levels deep exhausts the parser's recursion, not the server.
        return problem(request, 400, "invalid_request", "Invalid request", "the request body is nested too deeply")

    @app.exception_handler(OverflowError)
    async def overflow(request: Request, exc: OverflowError) -> JSONResponse:
        return problem(request, 400, "invalid_request", "Invalid request", f"a number is out of range ({exc})")

    @app.exception_handler(DBAPIError)
    async def database_refused(request: Request, exc: DBAPIError) -> JSONResponse:
        # The database refused a value the validation let through (a NUL byte in text on
        # PostgreSQL, an integer past its column): the caller's input, so 400, not 500. Anything
        # else the driver raises (a lost connection) stays a 500.
        if isinstance(exc, DataError) or "NUL" in str(exc.orig):
            return problem(request, 400, "invalid_request", "Invalid request",
                           "a value in the request cannot be stored (NUL character or out of range)")
        return await unexpected_error(request, exc)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        # Runs outside the request-id middleware (Starlette's server-error layer): set the header
        # here. Starlette re-raises after this response and the server then drops the connection,
        # so tell the client not to reuse it (else its next request meets a reset connection).
        response = problem(
            request, 500, "internal_error", "Internal server error",
            "the server failed to handle this request; quote the request id when reporting it",
        )
        response.headers["X-Request-ID"] = getattr(request.state, "request_id", "")
        response.headers["Connection"] = "close"
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(request, exc.status_code, f"http_{exc.status_code}", "HTTP error", str(exc.detail))
