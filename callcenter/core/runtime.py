"""The composition root's product: every process builds one Runtime at start-up and passes it on."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from callcenter.core.clock import Clock, SystemClock
from callcenter.core.db import make_engine, make_session_factory
from callcenter.core.pii import PiiCipher, cipher_from_settings
from callcenter.core.settings import Settings, get_settings


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    cipher: PiiCipher
    clock: Clock = field(default_factory=SystemClock)


def build_runtime(settings: Settings | None = None, *, clock: Clock | None = None) -> Runtime:
    """Build the shared clients once: engine, session factory, PII cipher, clock."""
    settings = settings or get_settings()
    engine = make_engine(settings.database_url)
    return Runtime(
        settings=settings,
        engine=engine,
        sessions=make_session_factory(engine),
        cipher=cipher_from_settings(settings),
        clock=clock or SystemClock(),
    )
