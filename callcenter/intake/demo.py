"""The demo's intake step: serve synthetic dossiers from the in-process simulator and sync them."""

from __future__ import annotations

import secrets

from pydantic import SecretStr

from callcenter.core.runtime import Runtime
from callcenter.intake.importer import ImportResult, ProgressCallback
from callcenter.intake.mapping import load_mapping
from callcenter.intake.settings import IntakeSettings
from callcenter.intake.simulator import OneStopStore, SimulatorServer, create_simulator_app
from callcenter.intake.sync import run_api_sync
from callcenter.intake.synthetic import make_raw_dossiers


def run_demo_intake(
    runtime: Runtime,
    n_dossiers: int,
    seed: int,
    *,
    bad_share: float = 0.01,
    progress: ProgressCallback | None = None,
) -> ImportResult:
    """Start the one-stop simulator (a stand-in) on a free port, sync ``n_dossiers`` from it, stop it.

    Goes through the real connector, HTTP, pagination, watermark and upsert; commits its own unit
    of work. The dossiers are dated relative to the runtime's clock, so a demo clock works too.
    """
    base = IntakeSettings()
    mapping = load_mapping(base.mapping_path)
    records = make_raw_dossiers(n_dossiers, seed=seed, now=runtime.clock.now(), bad_share=bad_share)
    store = OneStopStore(records, mapping=mapping)
    token = secrets.token_urlsafe(16)
    with SimulatorServer(create_simulator_app(store, token=token)) as server:
        settings = base.model_copy(
            update={"api_base_url": server.url, "api_token": SecretStr(token), "source": "onestop-simulator"}
        )
        return run_api_sync(runtime, settings=settings, progress=progress)
