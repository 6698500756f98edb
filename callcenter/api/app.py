"""The FastAPI application, built around one Runtime. Each domain contributes a router."""

from __future__ import annotations

from fastapi import FastAPI

from callcenter.analysis import http as analysis_http
from callcenter.campaign import http as campaign_http
from callcenter.core.logging import mask_installed_handlers
from callcenter.core.runtime import Runtime, build_runtime
from callcenter.dialer import http as dialer_http
from callcenter.ivr import twilio_http

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

    @app.get("/health", tags=["ops"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
