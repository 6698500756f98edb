"""The results API: what each role may see, and every refusal."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from callcenter.analysis import reverify
from callcenter.analysis.http import router
from callcenter.api.auth import Role, issue_key
from callcenter.core.clock import ManualClock
from callcenter.core.models import AuditLog
from callcenter.core.pii import PiiCipher
from callcenter.core.runtime import Runtime
from callcenter.core.settings import Settings

from .conftest import Builder, populate_small_city

NOW = datetime(2026, 4, 2, 3, 0, tzinfo=UTC)


@pytest.fixture
def city(build: Builder) -> dict[str, Any]:
    return populate_small_city(build)


@pytest.fixture
def client(db_session: Session, cipher: PiiCipher, settings: Settings) -> Iterator[TestClient]:
    """The router in an app whose sessions join the test's rolled-back transaction."""
    connection = db_session.connection()
    factory = sessionmaker(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    runtime = Runtime(
        settings=settings, engine=connection.engine, sessions=factory, cipher=cipher, clock=ManualClock(NOW)
    )
    app = FastAPI()
    app.state.runtime = runtime
    app.include_router(router)
    with TestClient(app) as c:
        yield c


@pytest.fixture
def keys(db_session: Session, city: dict[str, Any]) -> dict[str, str]:
    def key(role: Role, agency_id: int | None = None) -> str:
        raw, _row = issue_key(db_session, name=f"test {role}", role=role, now=NOW, agency_id=agency_id)
        return raw

    return {
        "home_affairs": key(Role.HOME_AFFAIRS),
        "agency_a": key(Role.AGENCY, city["a"].id),
        "verifier": key(Role.VERIFIER),
        "operator": key(Role.OPERATOR),
        "admin": key(Role.ADMIN),
    }


def _h(raw: str) -> dict[str, str]:
    return {"X-API-Key": raw}


def _audits(session: Session) -> int:
    return (
        session.scalar(
            select(func.count()).select_from(AuditLog).where(AuditLog.action == "reverification.export")
        )
        or 0
    )


def test_no_key_or_a_bad_key_is_refused(
    client: TestClient, keys: dict[str, str], db_session: Session
) -> None:
    assert client.get("/analysis/summary").status_code == 401
    assert client.get("/analysis/summary", headers=_h("cc_not-a-key")).status_code == 401
    from callcenter.core.models import ApiKey

    row = db_session.scalar(select(ApiKey).where(ApiKey.role == "operator"))
    assert row is not None
    row.revoked_at = NOW
    db_session.flush()
    assert client.get("/analysis/summary", headers=_h(keys["operator"])).status_code == 401


def test_home_affairs_reads_every_agency_without_personal_data(
    client: TestClient, keys: dict[str, str], build: Builder
) -> None:
    r = client.get("/analysis/summary", params={"period": "2026-03"}, headers=_h(keys["home_affairs"]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert [row["agency_code"] for row in body["rows"]] == ["A", "B"]
    a = body["rows"][0]["figures"]
    assert a["rated"] == 12 and a["satisfied"] == 7
    assert a["satisfied_interval"]["low"] < 7 / 12 < a["satisfied_interval"]["high"]
    assert a["weighted"]["estimate"] == pytest.approx(0.8 * 0.75 + 0.2 / 3)
    assert a["previous"]["period"] == "2026-02" and a["last_year"]["period"] == "2025-03"
    assert {x["code"]: x["count"] for x in a["reasons"]} == {2: 3, 4: 2, 9: 1}
    assert body["period_label"] == "Tháng 03/2026"
    by_field = client.get(
        "/analysis/summary",
        params=[("period", "2026-03"), ("group_by", "agency"), ("group_by", "field"), ("channel", "call")],
        headers=_h(keys["home_affairs"]),
    ).json()
    assert {(row["agency_code"], row["field_code"]) for row in by_field["rows"]} == {
        ("A", "F1"),
        ("A", "F2"),
        ("B", "F1"),
    }
    for text in (
        r.text,
        client.get("/analysis/report.html?period=2026-03", headers=_h(keys["home_affairs"])).text,
    ):
        for phone in build.phones.values():
            assert phone not in text and phone.replace("+84", "0") not in text
        assert "Nguyễn Văn An" not in text and "048090001234" not in text


def test_agency_key_sees_only_its_own_agency(client: TestClient, keys: dict[str, str]) -> None:
    own = client.get("/analysis/summary?period=2026-03", headers=_h(keys["agency_a"]))
    assert own.status_code == 200
    assert [row["agency_code"] for row in own.json()["rows"]] == ["A"]
    assert own.json()["agency"] == "A"
    explicit = client.get("/analysis/summary?period=2026-03&agency=A", headers=_h(keys["agency_a"]))
    assert explicit.status_code == 200
    for url in (
        "/analysis/summary?period=2026-03&agency=B",
        "/analysis/summary?period=2026-03&agency=NOPE",
        "/analysis/trend?period=2026-03&agency=B",
        "/analysis/report.html?period=2026-03&agency=B",
        "/analysis/report.xlsx?period=2026-03&agency=B",
        "/analysis/anomalies?period=2026-03&agency=B",
    ):
        refused = client.get(url, headers=_h(keys["agency_a"]))
        assert refused.status_code == 403, url
        assert "own agency" in refused.json()["detail"]
    html = client.get("/analysis/report.html?period=2026-03", headers=_h(keys["agency_a"]))
    assert html.status_code == 200
    assert 'filename="bao-cao-A-2026-03.html"' in html.headers["content-disposition"]
    assert "Sở Xây dựng" in html.text and "Sở Tư pháp" not in html.text


def test_downloads_and_trend(client: TestClient, keys: dict[str, str]) -> None:
    xlsx = client.get("/analysis/report.xlsx?period=2026-03", headers=_h(keys["operator"]))
    assert xlsx.status_code == 200
    assert load_workbook(io.BytesIO(xlsx.content)).sheetnames == ["Tổng hợp", "A", "B"]
    trend = client.get("/analysis/trend?period=2026-04&months=3", headers=_h(keys["home_affairs"]))
    assert [(p["month"], p["rated"]) for p in trend.json()] == [
        ("2026-02", 2),
        ("2026-03", 13),
        ("2026-04", 1),
    ]
    bad = client.get("/analysis/summary?period=2026-13", headers=_h(keys["home_affairs"]))
    assert bad.status_code == 422 and "period" in bad.json()["detail"]
    unknown_field = client.get(
        "/analysis/summary?period=2026-03&field=NOPE", headers=_h(keys["home_affairs"])
    )
    assert unknown_field.status_code == 404


def test_a_report_named_after_a_vietnamese_agency_code_downloads(
    client: TestClient, keys: dict[str, str], build: Builder
) -> None:
    # Source agency codes are stored as they come: "UBND-ĐN" failed the Latin-1 header (500).
    build.agency("UBND-ĐN", "Ủy ban nhân dân thành phố Đà Nẵng")
    for suffix in ("html", "xlsx"):
        got = client.get(
            f"/analysis/report.{suffix}?period=2026-03&agency=UBND-ĐN", headers=_h(keys["operator"])
        )
        assert got.status_code == 200, got.text
        disposition = got.headers["content-disposition"]
        assert f'filename="bao-cao-UBND-DN-2026-03.{suffix}"' in disposition
        assert f"filename*=UTF-8''bao-cao-UBND-%C4%90N-2026-03.{suffix}" in disposition


@pytest.mark.parametrize("url", ["/analysis/trend?period=2000-03", "/analysis/report.html?period=2000"])
def test_the_first_periods_compare_with_empty_ones_instead_of_failing(
    client: TestClient, keys: dict[str, str], url: str
) -> None:
    assert client.get(url, headers=_h(keys["home_affairs"])).status_code == 200
    summary = client.get("/analysis/summary?period=2000-05", headers=_h(keys["home_affairs"]))
    assert summary.status_code == 200, summary.text
    too_early = client.get("/analysis/summary?period=1999-12", headers=_h(keys["home_affairs"]))
    assert too_early.status_code == 422 and "year 1999 is outside 2000..2100" in too_early.json()["detail"]


def test_personal_data_only_for_the_verifier_and_always_audited(
    client: TestClient, keys: dict[str, str], db_session: Session, build: Builder
) -> None:
    body = {"agency": "A", "period": "2026-03", "size": 4}
    for role in ("home_affairs", "agency_a", "operator"):
        assert (
            client.post("/analysis/reverification/samples", json=body, headers=_h(keys[role])).status_code
            == 403
        )
    drawn = client.post("/analysis/reverification/samples", json=body, headers=_h(keys["verifier"]))
    assert drawn.status_code == 200, drawn.text
    sample = drawn.json()
    assert (sample["population"], sample["size"]) == (10, 4)  # the 10 call answers tied to a dossier
    again = client.post("/analysis/reverification/samples", json=body, headers=_h(keys["verifier"]))
    assert again.json()["id"] == sample["id"]

    url = f"/analysis/reverification/samples/{sample['id']}/export"
    for role in ("home_affairs", "agency_a", "operator", "admin"):  # admin too: personal data
        assert client.get(url, headers=_h(keys[role])).status_code == 403
    assert _audits(db_session) == 0
    csv_export = client.get(url, headers=_h(keys["verifier"]))
    assert csv_export.status_code == 200
    lines = csv_export.text.lstrip("\ufeff").strip().splitlines()
    assert lines[0].startswith("STT,Mã phiếu,Mã hồ sơ") and len(lines) == 1 + 4
    assert "Nguyễn Văn An" in csv_export.text
    # The CSV gives the number as a verifier dials it (grouped, so spreadsheets keep it as text) ...
    assert any(reverify.dial_form(phone) in csv_export.text for phone in build.phones.values())
    assert _audits(db_session) == 1
    as_json = client.get(url + "?format=json", headers=_h(keys["verifier"]))
    assert as_json.status_code == 200 and len(as_json.json()) == 4
    assert {r["phone"] for r in as_json.json()} <= set(build.phones.values())  # ... the JSON, E.164
    assert _audits(db_session) == 2
    entry = db_session.scalars(select(AuditLog).order_by(AuditLog.id)).all()[-1]
    assert entry.role == "verifier" and entry.subject == f"reverification_sample:{sample['id']}"
    assert (
        client.get("/analysis/reverification/samples/999999/export", headers=_h(keys["verifier"])).status_code
        == 404
    )
    year = client.post(
        "/analysis/reverification/samples",
        json={"agency": "A", "period": "2026"},
        headers=_h(keys["verifier"]),
    )
    assert year.status_code == 422


def test_openapi_documents_the_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/analysis/summary", "/analysis/report.html", "/analysis/report.xlsx", "/analysis/trend"} <= set(
        paths
    )
