"""The campaign HTTP API through FastAPI's TestClient, on a real database (both engines)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from callcenter.api.app import create_app
from callcenter.api.auth import Role, issue_key
from callcenter.campaign.models import Campaign
from callcenter.core.clock import ManualClock
from callcenter.core.models import OptOut
from callcenter.core.runtime import Runtime
from callcenter.core.settings import Settings
from tests.campaign.conftest import MONDAY_9, World


@pytest.fixture
def client(world: World, settings: Settings) -> Iterator[tuple[TestClient, dict[str, str]]]:
    session = world.session
    # The app's sessions share the test's connection: each request's commit is a savepoint, and
    # everything is rolled back with the test.
    sessions = sessionmaker(
        bind=session.bind, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    runtime = Runtime(
        settings=settings,
        engine=session.get_bind().engine,
        sessions=sessions,  # type: ignore[union-attr]
        cipher=world.cipher,
        clock=ManualClock(MONDAY_9 - timedelta(days=1)),
    )
    raw, _ = issue_key(session, name="ioc-lan", role=Role.OPERATOR, now=MONDAY_9)
    agency_raw, _ = issue_key(
        session, name="so-tp", role=Role.AGENCY, now=MONDAY_9, agency_id=world.agencies["SO-TP"].id
    )
    world.add_dossiers("SO-TP", 300, late_every=5)
    world.add_dossiers("SO-XD", 50)
    session.flush()
    with TestClient(create_app(runtime)) as test_client:
        yield test_client, {"operator": raw, "agency": agency_raw}


def body(**over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "Khảo sát tháng 10",
        "returned_from": "2026-10-01",
        "returned_to": "2026-10-31",
        "agencies": ["SO-TP", "SO-XD"],
        "starts_at": MONDAY_9.isoformat(),
        "ends_at": (MONDAY_9 + timedelta(days=20)).isoformat(),
        "seed": 3,
    }
    data.update(over)
    return data


def test_campaign_lifecycle_over_http(client: tuple[TestClient, dict[str, str]]) -> None:
    http, keys = client
    h = {"X-API-Key": keys["operator"]}
    created = http.post("/campaigns", json=body(), headers=h)
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    assert created.json()["status"] == "draft" and created.json()["created_by"] == "ioc-lan"
    assert [c["id"] for c in http.get("/campaigns", headers=h).json()] == [cid]
    report = http.get(f"/campaigns/{cid}", headers=h).json()
    by_code = {a["agency_code"]: a for a in report["agencies"]}
    assert by_code["SO-TP"]["target"] == 300 * 10000 // (10000 + 300 * 49)  # 120
    assert by_code["SO-TP"]["population_late_overdue"] == 60
    assert by_code["SO-XD"]["drawn"] == by_code["SO-XD"]["target"]
    assert http.post(f"/campaigns/{cid}/start", headers=h).json()["status"] == "scheduled"  # starts tomorrow
    refused = http.post(f"/campaigns/{cid}/resume", headers=h)
    assert refused.status_code == 409 and "scheduled" in refused.json()["detail"]
    assert (
        http.post(f"/campaigns/{cid}/stop", json={"note": "sai phạm vi"}, headers=h).json()["status"]
        == "cancelled"
    )
    events = http.get(f"/campaigns/{cid}/events", headers=h).json()
    assert [(e["to_status"], e["actor"]) for e in events] == [
        ("draft", "ioc-lan"),
        ("scheduled", "ioc-lan"),
        ("cancelled", "ioc-lan"),
    ]
    assert events[-1]["note"] == "sai phạm vi"


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"agencies": ["SO-TP", "KHONG-CO"]}, "agencies"),
        (
            {"ends_at": MONDAY_9.isoformat(), "starts_at": (MONDAY_9 + timedelta(days=1)).isoformat()},
            "ends_at",
        ),
        ({"policy_params": {"rounding": "nearest"}}, "policy_params.rounding"),
        ({"calling_rules": {"caps": {"cooloff_days": -1}}}, "calling_rules.caps.cooloff_days"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(
    client: tuple[TestClient, dict[str, str]], world: World, over: dict[str, Any], field: str
) -> None:
    http, keys = client
    response = http.post("/campaigns", json=body(**over), headers={"X-API-Key": keys["operator"]})
    assert response.status_code == 422
    assert response.json()["detail"]["field"] == field
    assert world.session.scalar(select(func.count()).select_from(Campaign)) == 0


@pytest.mark.parametrize(
    ("over", "field", "message"),
    [
        ({"agencies": ["SO-TP", "KHONG-CO"]}, "agencies", "unknown agency code(s): KHONG-CO"),
        ({"fields": ["HO-TICH", "NOPE"]}, "fields", "unknown field code(s): NOPE"),
    ],
    ids=["agency", "field"],
)
def test_an_unknown_code_is_named_in_the_422(
    client: tuple[TestClient, dict[str, str]], over: dict[str, Any], field: str, message: str
) -> None:
    http, keys = client
    response = http.post("/campaigns", json=body(**over), headers={"X-API-Key": keys["operator"]})
    assert response.status_code == 422
    assert response.json()["detail"] == {"field": field, "message": message}


def test_naive_times_are_refused_by_the_schema(client: tuple[TestClient, dict[str, str]]) -> None:
    http, keys = client
    response = http.post(
        "/campaigns", json=body(starts_at="2026-11-23T08:00:00"), headers={"X-API-Key": keys["operator"]}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "starts_at"]


def test_unknown_campaign_and_roles(client: tuple[TestClient, dict[str, str]]) -> None:
    http, keys = client
    assert http.get("/campaigns/999", headers={"X-API-Key": keys["operator"]}).status_code == 404
    assert http.get("/campaigns").status_code == 401
    assert http.get("/campaigns", headers={"X-API-Key": keys["agency"]}).status_code == 403


def test_holidays_and_opt_out_upload(client: tuple[TestClient, dict[str, str]], world: World) -> None:
    http, keys = client
    h = {"X-API-Key": keys["operator"]}
    added = http.post("/campaigns/holidays", json={"day": "2026-12-24", "name": "Nghỉ bù"}, headers=h)
    assert added.status_code == 201 and added.json()["kind"] == "custom"
    assert "2026-12-24" in [d["day"] for d in http.get("/campaigns/holidays?year=2026", headers=h).json()]
    assert http.delete("/campaigns/holidays/2026-12-24", headers=h).status_code == 204
    assert http.delete("/campaigns/holidays/2026-12-24", headers=h).status_code == 404
    csv_text = "so_dien_thoai\n0905 123 456\nabc\n+84905123456\n"
    uploaded = http.post("/campaigns/opt-outs", files={"file": ("dnc.csv", csv_text, "text/csv")}, headers=h)
    assert uploaded.status_code == 200, uploaded.text
    result = uploaded.json()
    assert (result["rows"], result["added"], result["already_listed"]) == (3, 1, 1)
    assert result["errors"] and result["errors"][0].startswith("row 3:")
    assert world.session.scalar(select(func.count()).select_from(OptOut)) == 1


def test_openapi_documents_the_campaign_routes(client: tuple[TestClient, dict[str, str]]) -> None:
    http, _ = client
    paths = http.get("/openapi.json").json()["paths"]
    assert {
        "/campaigns",
        "/campaigns/{campaign_id}",
        "/campaigns/{campaign_id}/pause",
        "/campaigns/holidays",
        "/campaigns/opt-outs",
    } <= set(paths)
    assert "422" in paths["/campaigns"]["post"]["responses"]


def test_opt_out_upload_that_takes_nothing_is_refused(
    client: tuple[TestClient, dict[str, str]], world: World
) -> None:
    http, keys = client
    h = {"X-API-Key": keys["operator"]}
    for csv_text in ("Họ tên,Ghi chú\nAn,không gọi\n", "sdt\n123\nabc\n"):
        refused = http.post(
            "/campaigns/opt-outs", files={"file": ("dnc.csv", csv_text, "text/csv")}, headers=h
        )
        assert refused.status_code == 422, refused.text
        detail = refused.json()["detail"]
        assert detail["field"] == "file" and "dnc.csv: no phone number was imported" in detail["message"]
        assert detail["errors"] and detail["errors"][0].startswith(("row 1: no phone column", "row 2:"))
    accepted = http.post(
        "/campaigns/opt-outs",
        files={"file": ("dnc.csv", "Họ tên,Điện thoại\nAn,0905 123 456\n", "text/csv")},
        headers=h,
    )
    assert accepted.status_code == 200 and accepted.json()["added"] == 1
    assert world.session.scalar(select(func.count()).select_from(OptOut)) == 1
