"""The FastAPI application, built around one Runtime. Each domain contributes a router."""

from __future__ import annotations

import importlib

from fastapi import FastAPI

from callcenter.core.runtime import Runtime, build_runtime

# Explicit list of the domains' HTTP modules; each exposes ``router`` (an APIRouter).
ROUTER_MODULES = (
    "callcenter.campaign.http",
    "callcenter.analysis.http",
    "callcenter.ivr.twilio_http",
    "callcenter.dialer.http",
)


def create_app(runtime: Runtime | None = None) -> FastAPI:
    """Build the API around an existing runtime (tests) or a new one from the environment."""
    app = FastAPI(
        title="1022 survey caller",
        description="Campaigns for IOC operators, survey summaries for Home Affairs and agencies.",
        version="0.1.0",
    )
    app.state.runtime = runtime or build_runtime()
    for name in ROUTER_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        app.include_router(module.router)

    @app.get("/health", tags=["ops"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
