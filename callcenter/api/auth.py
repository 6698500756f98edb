"""API keys with roles. A request carries ``X-API-Key``; the key's role bounds what it may see.

Roles: ``home_affairs`` (every summary, no personal data), ``agency`` (its own agency only),
``verifier`` (personal data for re-verification, every access audited), ``operator`` (campaigns),
``admin`` (everything but personal data).
"""

from __future__ import annotations

import enum
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import Depends, HTTPException, Request, status
from sqlalchemy import select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from callcenter.core.errors import ConflictError, NotFound
from callcenter.core.models import ApiKey
from callcenter.intake.models import Agency


class Role(enum.StrEnum):
    HOME_AFFAIRS = "home_affairs"
    AGENCY = "agency"
    VERIFIER = "verifier"
    OPERATOR = "operator"
    ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    key_id: int
    name: str
    role: Role
    agency_id: int | None

    def may_read_agency(self, agency_id: int) -> bool:
        return self.role != Role.AGENCY or self.agency_id == agency_id


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def issue_key(
    session: Session, *, name: str, role: Role, now: datetime, agency_id: int | None = None
) -> tuple[str, ApiKey]:
    """Create a key; the clear key is returned once and never stored."""
    if role == Role.AGENCY and agency_id is None:
        raise ValueError("an agency key needs agency_id")
    raw = "cc_" + secrets.token_urlsafe(24)
    row = ApiKey(key_hash=hash_key(raw), name=name, role=role.value, agency_id=agency_id, created_at=now)
    session.add(row)
    session.flush()
    return raw, row


@dataclass(frozen=True)
class KeyListing:
    """What may be shown about a key: never the key nor its hash."""

    key_id: int
    name: str
    role: str
    agency_code: str | None
    created_at: datetime
    revoked_at: datetime | None


def list_keys(session: Session, *, include_revoked: bool = True) -> list[KeyListing]:
    """Every API key, oldest first, without the key or its hash."""
    stmt = (
        select(ApiKey.id, ApiKey.name, ApiKey.role, Agency.code, ApiKey.created_at, ApiKey.revoked_at)
        .outerjoin(Agency, Agency.id == ApiKey.agency_id)
        .order_by(ApiKey.id)
    )
    if not include_revoked:
        stmt = stmt.where(ApiKey.revoked_at.is_(None))
    return [KeyListing(*row) for row in session.execute(stmt)]


def revoke_key(session: Session, *, key_id: int, now: datetime) -> ApiKey:
    """Revoke a key: every request carrying it is refused from the next one on (the caller commits).

    Compare-and-set on ``revoked_at IS NULL``, so the first revocation's time is kept; an unknown id
    raises :class:`NotFound`, an already revoked one :class:`ConflictError`.
    """
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None)).values(revoked_at=now)
    )
    row = session.get(ApiKey, key_id, populate_existing=True)
    if row is None:
        raise NotFound(f"no API key with id {key_id}")
    if result.rowcount != 1:
        raise ConflictError(f"API key {key_id} was already revoked at {row.revoked_at:%Y-%m-%d %H:%M %Z}")
    return row


def get_session(request: Request):  # type: ignore[no-untyped-def]
    """One session per request; the request boundary commits (see ``callcenter.core.db.session_scope``)."""
    factory = request.app.state.runtime.sessions
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def current_principal(request: Request, session: Session = Depends(get_session)) -> Principal:
    raw = request.headers.get("X-API-Key")
    if not raw:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing X-API-Key header")
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(raw), ApiKey.revoked_at.is_(None)))
    if row is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown or revoked API key")
    return Principal(key_id=row.id, name=row.name, role=Role(row.role), agency_id=row.agency_id)


def require_roles(*roles: Role, admin: bool = True) -> Callable[..., Principal]:
    """A dependency that admits only the given roles, and admin unless ``admin=False``.

    ``admin=False`` is for personal data: only the role named may read it, so that every disclosure
    in the audit log is a verifier's, not an administrator's who happens to hold every key.
    """
    allowed = {*roles, Role.ADMIN} if admin else set(roles)

    def _check(principal: Principal = Depends(current_principal)) -> Principal:
        if principal.role not in allowed:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"role '{principal.role}' may not use this endpoint"
            )
        return principal

    return _check
