"""The FastAPI application, built around one Runtime. Each domain contributes a router."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy.exc import StatementError

from callcenter.analysis import http as analysis_http
from callcenter.campaign import http as campaign_http
from callcenter.core.db import DB_INT_MAX, DB_INT_MIN, is_out_of_range
from callcenter.core.logging import mask_installed_handlers
from callcenter.core.runtime import Runtime, build_runtime
from callcenter.dialer import http as dialer_http
from callcenter.ivr import twilio_http

log = logging.getLogger(__name__)

# Explicit list of the domains' HTTP modules; each exposes ``router`` (an APIRouter).
ROUTER_MODULES = (campaign_http, analysis_http, twilio_http, dialer_http)


def create_app(runtime: Runtime | None = None) -> FastAPI:
    """Build the API around an existing runtime (tests) or a new one from the environment."""
    mask_installed_handlers()  # uvicorn set up its logging before calling this factory
    app = FastAPI(
        title="1022 survey caller",
        description="Campaigns for IOC operators, survey summaries for Home Affairs and agencies.",
        version="0.1.0",
    )
    app.state.runtime = runtime or build_runtime()
    for module in ROUTER_MODULES:
        app.include_router(module.router)
    install_error_handlers(app)

    @app.get("/health", tags=["ops"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def install_error_handlers(app: FastAPI) -> None:
    """Answer 422, not 500, when a number in the request is beyond what the database can store.

    One handler for the whole application rather than bounds on each endpoint's parameters: it
    covers every id wherever it comes from (path, query, form, JSON body) and every endpoint a domain
    adds later, on both databases, and it only speaks when the database itself refused the number, so
    no endpoint needs to know the column types. The session was already rolled back by
    ``get_session`` / ``session_scope`` when the exception reached it: nothing is half-written.
    """
    app.add_exception_handler(StatementError, _out_of_range_handler)
    app.add_exception_handler(OverflowError, _out_of_range_handler)


async def _out_of_range_handler(request: Request, exc: Exception) -> JSONResponse:
    if not is_out_of_range(exc):
        raise exc  # not ours to explain: the usual 500, with its traceback in the log
    detail = _out_of_range_detail(request)
    log.info("refused %s %s: %s", request.method, request.url.path, detail)
    return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


def _out_of_range_detail(request: Request) -> str:
    """Name the path or query parameters whose value is an integer past the range, when there are any."""
    named = [
        f"{where} parameter '{name}' ({_short(value)})"
        for where, params in (("path", request.path_params), ("query", request.query_params))
        for name, value in params.items()
        if _beyond_range(str(value))
    ]
    what = ", ".join(named) if named else "a number in the request"
    verb = "are" if len(named) > 1 else "is"
    return f"{what} {verb} out of range: the database stores whole numbers up to {DB_INT_MAX}"


def _beyond_range(text: str) -> bool:
    digits = text.strip().removeprefix("-").removeprefix("+")
    if not (digits.isascii() and digits.isdigit()):
        return False
    # More than 19 significant digits is past the range whatever they say (and int() refuses 4,300+).
    return len(digits.lstrip("0")) > 19 or not DB_INT_MIN <= int(text) <= DB_INT_MAX


def _short(value: object) -> str:
    text = str(value)
    return text if len(text) <= 30 else text[:29] + "…"
