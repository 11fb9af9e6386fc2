"""How the API and the pages answer what they cannot serve (DESIGN.md rule 7).

Bad parameters get a 400 naming each bad field, before any query runs: ids (trial, site,
patient) are NATS subject tokens, and no parameter may carry control characters (PostgreSQL
refuses NUL, and CR/LF would end up in headers) or be longer than any real value. Anything
unexpected is logged with an error id and answered with that id only: no exception text and
no traceback reaches a user. The API answers in JSON, the pages with an HTML page.
"""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlencode

import structlog
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from events.envelope import TOKEN_RE
from services.api.render import render

log = structlog.get_logger("api")

MAX_PARAMETER_LENGTH = 256
MAX_ID_LENGTH = 64  # events.envelope.Token
ID_PARAMETERS = frozenset({"trial", "site", "patient"})
# Routes that answer in JSON; every other path is a page (or the pages' static files).
JSON_PREFIXES = ("/api/", "/openapi.json", "/docs", "/redoc")
TITLES = {400: "Bad request", 401: "Sign in", 404: "Not found", 405: "Not allowed"}


class BadParameters(ValueError):
    """Path or query parameters no route could serve (HTTP 400)."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = errors


def _unprintable(value: str) -> bool:
    """Control characters (C0, DEL, C1), lone surrogates and non-characters."""
    return any(unicodedata.category(char) in ("Cc", "Cs", "Cn") for char in value)


def is_id(value: str) -> bool:
    """A trial, site or patient id: a NATS subject token (events.envelope.Token)."""
    return len(value) <= MAX_ID_LENGTH and TOKEN_RE.fullmatch(value) is not None


def parameter_errors(parameters: Iterable[tuple[str, str, str]]) -> list[dict[str, str]]:
    """Each (where, name, value) that no route could serve, as {field, message}; the value
    itself is not echoed (it may be anything)."""
    errors = []
    for where, name, value in parameters:
        field = f"{where}.{name}"
        if len(value) > MAX_PARAMETER_LENGTH:
            errors.append({"field": field, "message": f"longer than {MAX_PARAMETER_LENGTH}"})
        elif _unprintable(value):
            errors.append({"field": field, "message": "contains a control character"})
        elif name in ID_PARAMETERS and not is_id(value) and (where == "path" or value):
            errors.append(
                {
                    "field": field,
                    "message": f"not a {name} id: 1 to {MAX_ID_LENGTH} letters, digits, '_' or '-'",
                }
            )
    return errors


async def checked_parameters(request: Request) -> None:
    """App-wide dependency: refuse bad path and query parameters before the route runs."""
    found = [("path", name, str(value)) for name, value in request.path_params.items()]
    found += [("query", name, value) for name, value in request.query_params.multi_items()]
    errors = parameter_errors(found)
    if errors:
        raise BadParameters(errors)


def is_page(request: Request) -> bool:
    return not request.url.path.startswith(JSON_PREFIXES)


def error_page(
    request: Request,
    status_code: int,
    message: str,
    *,
    trial: str | None = None,
    as_of: str | None = None,
    href: Callable[..., str] | None = None,
) -> HTMLResponse:
    """A page that says what went wrong, in the pages' layout."""

    def plain_href(path: str, **params: Any) -> str:
        query = urlencode({k: v for k, v in params.items() if v is not None})
        return f"{request.scope.get('root_path', '')}{path}" + (f"?{query}" if query else "")

    title = TITLES.get(status_code, "Error" if status_code >= 500 else "Refused")
    return HTMLResponse(
        render(
            "error.html",
            title=title,
            message=message,
            trial=trial,
            as_of=as_of,
            href=href or plain_href,
            path=request.url.path,
        ),
        status_code=status_code,
    )


async def bad_parameters(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BadParameters)
    if is_page(request):
        return error_page(request, 400, str(exc))
    return JSONResponse({"detail": "bad request parameters", "errors": exc.errors}, 400)


async def invalid_request(request: Request, exc: Exception) -> Response:
    """A parameter of the wrong type or value (FastAPI's validation): 400, field by field."""
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": ".".join(str(part) for part in error["loc"]), "message": str(error["msg"])}
        for error in exc.errors()
    ]
    if is_page(request):
        return error_page(request, 400, "; ".join(f"{e['field']}: {e['message']}" for e in errors))
    return JSONResponse({"detail": "bad request parameters", "errors": errors}, 400)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if is_page(request) and exc.status_code >= 400:
        response = error_page(request, exc.status_code, str(exc.detail))
        response.headers.update(exc.headers or {})
        return response
    return await http_exception_handler(request, exc)


async def unexpected_error(request: Request, exc: Exception) -> Response:
    """Anything no handler expected: logged with an id, answered with the id alone."""
    error_id = uuid.uuid4().hex[:16]
    route = request.scope.get("route")
    log.error(
        "api_request_failed",
        error_id=error_id,
        route=getattr(route, "path", None),
        error_type=type(exc).__name__,
        exc_info=exc,
    )
    message = f"internal error; quote error id {error_id} to the operator"
    if is_page(request):
        return error_page(request, 500, message)
    return JSONResponse({"detail": message, "error_id": error_id}, 500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(BadParameters, bad_parameters)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected_error)
