"""Test data for campaign tests: agencies, fields and dossiers written with the intake models directly."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.orm import Session

from callcenter.campaign import service
from callcenter.campaign.models import Campaign
from callcenter.campaign.schemas import parse_spec
from callcenter.core.clock import VN_TZ
from callcenter.core.pii import PiiCipher
from callcenter.intake.models import Agency, Dossier, Field

# Monday 23 November 2026, 09:00 in Da Nang: inside the default calling window.
MONDAY_9 = datetime(2026, 11, 23, 9, 0, tzinfo=VN_TZ)


def phone_for(index: int) -> str:
    return f"+849{index:08d}"  # +849xxxxxxxx: a syntactically valid VN mobile number


@dataclass
class World:
    session: Session
    cipher: PiiCipher
    agencies: dict[str, Agency]
    field: Field
    next_index: int = 0

    def add_dossiers(
        self,
        agency_code: str,
        count: int,
        *,
        late_every: int = 0,
        returned_at: datetime = datetime(2026, 10, 15, 3, 0, tzinfo=UTC),
        phone: Callable[[int], str] = phone_for,
        status: str = "returned",
        phone_kind: str = "mobile",
    ) -> list[int]:
        """Insert ``count`` dossiers of one agency; every ``late_every``-th one is late. Returns their ids."""
        agency = self.agencies[agency_code]
        rows: list[dict[str, Any]] = []
        now = datetime(2026, 11, 1, tzinfo=UTC)
        # One ciphertext reused for name and phone: campaigns never decrypt, and AES-GCM per row is slow.
        name_enc = self.cipher.encrypt("Nguyễn Văn An")
        for i in range(count):
            index = self.next_index + i
            e164 = phone(index)
            rows.append(
                {
                    "source": "test",
                    "code": f"HS-{index:07d}",
                    "agency_id": agency.id,
                    "field_id": self.field.id,
                    "submitter_name_enc": name_enc,
                    "phone_enc": name_enc,  # never decrypted here; see above
                    "phone_hash": self.cipher.phone_hash(e164),
                    "phone_kind": phone_kind,
                    "is_organisation": agency.organisations_only,
                    "received_at": returned_at - timedelta(days=10),
                    "due_at": returned_at - timedelta(days=1),
                    "returned_at": returned_at if status == "returned" else None,
                    "status": status,
                    "timeliness": "late" if late_every and i % late_every == 0 else "on_time",
                    "content_hash": hashlib.sha256(str(index).encode()).hexdigest(),
                    "created_at": now,
                    "updated_at": now,
                }
            )
        self.next_index += count
        result = self.session.execute(insert(Dossier).returning(Dossier.id), rows)
        return [row[0] for row in result]


@pytest.fixture
def world(db_session: Session, cipher: PiiCipher) -> World:
    agencies = {
        "SO-TP": Agency(code="SO-TP", name="Sở Tư pháp", organisations_only=False),
        "SO-XD": Agency(code="SO-XD", name="Sở Xây dựng", organisations_only=False),
        "VP-UB": Agency(code="VP-UB", name="Văn phòng UBND thành phố", organisations_only=True),
    }
    field = Field(code="HO-TICH", name="Hộ tịch")
    db_session.add_all([*agencies.values(), field])
    db_session.flush()
    return World(db_session, cipher, agencies, field)


def make_campaign(
    world: World,
    *,
    total: int,
    agencies: tuple[str, ...] = ("SO-TP",),
    start: bool = True,
    days: int = 30,
    **rules: Any,
) -> Campaign:
    spec = parse_spec(
        {
            "name": "test",
            "policy": "fixed_total",
            "policy_params": {"total": total},
            "returned_from": "2026-10-01",
            "returned_to": "2026-10-31",
            "agencies": list(agencies),
            "starts_at": MONDAY_9.isoformat(),
            "ends_at": (MONDAY_9 + timedelta(days=days)).isoformat(),
            "calling_rules": rules,
            "seed": 1,
        }
    )
    campaign = service.create_campaign(
        world.session, spec=spec, actor="op", now=MONDAY_9 - timedelta(hours=1)
    )
    if start:
        service.start_campaign(world.session, campaign_id=campaign.id, actor="op", now=MONDAY_9)
    return campaign
