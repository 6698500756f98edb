"""Composition for one API sync: settings → client → ``sync_api`` inside one unit of work.

Shared by the Celery task, the CLI and the demo so that all three do exactly the same thing.
"""

from __future__ import annotations

from datetime import timedelta

from callcenter.analysis.dossier_copies import refresh_dossier_copies
from callcenter.core.db import session_scope
from callcenter.core.runtime import Runtime
from callcenter.intake.adapters.onestop_api import OneStopApiClient
from callcenter.intake.importer import ImportResult, ProgressCallback, sync_api
from callcenter.intake.mapping import MappingConfig, load_mapping
from callcenter.intake.settings import IntakeSettings


def build_api_client(settings: IntakeSettings, mapping: MappingConfig) -> OneStopApiClient:
    """The one-stop API client as the settings describe it."""
    return OneStopApiClient(
        base_url=settings.api_base_url,
        token=settings.api_token.get_secret_value(),
        mapping=mapping,
        page_size=settings.page_size,
        timeout=settings.timeout_seconds,
        max_attempts=settings.max_attempts,
        max_retry_after=settings.max_retry_after_seconds,
    )


def run_api_sync(
    runtime: Runtime,
    *,
    settings: IntakeSettings,
    full: bool = False,
    progress: ProgressCallback | None = None,
) -> ImportResult:
    """Sync the configured source in one transaction: committed on success, rolled back on error."""
    mapping = load_mapping(settings.mapping_path)
    now = runtime.clock.now()
    with build_api_client(settings, mapping) as client, session_scope(runtime.sessions) as session:
        result = sync_api(
            session,
            client=client,
            source=settings.source,
            mapping=mapping,
            cipher=runtime.cipher,
            now=now,
            overlap=timedelta(seconds=settings.sync_overlap_seconds),
            full=full,
            batch_size=settings.batch_size,
            progress=progress,
        )
        # Same transaction: the calls and answers of corrected dossiers follow them (see the module).
        refresh_dossier_copies(session, changed_since=now)
        return result
