"""The one-stop API connector: against the real simulator (uvicorn on a free port) and a mock transport."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from intake_helpers import FIELD_ORDER, NOW, good_row
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callcenter.core.pii import PiiCipher
from callcenter.intake.adapters.onestop_api import OneStopApiClient, parse_retry_after
from callcenter.intake.errors import ApiAuthError, ApiError, ApiUnavailable
from callcenter.intake.importer import ImportResult, sync_api
from callcenter.intake.mapping import MappingConfig
from callcenter.intake.models import Dossier, DossierStatusHistory, QuarantinedRecord
from callcenter.intake.service import get_watermark, set_watermark
from callcenter.intake.simulator import Faults, OneStopStore, SimulatorServer, create_simulator_app
from callcenter.intake.synthetic import make_raw_dossiers

TOKEN = "test-token"


@pytest.fixture(scope="module")
def store(mapping: MappingConfig) -> OneStopStore:
    return OneStopStore(make_raw_dossiers(120, seed=5, now=NOW, bad_share=0.1), mapping=mapping)


@pytest.fixture(scope="module")
def simulator(store: OneStopStore) -> Iterator[SimulatorServer]:
    with SimulatorServer(create_simulator_app(store, token=TOKEN)) as server:
        yield server


def _sync(
    session: Session, client: OneStopApiClient, mapping: MappingConfig, cipher: PiiCipher, now: datetime
) -> ImportResult:
    return sync_api(session, client=client, source="onestop", mapping=mapping, cipher=cipher, now=now)


def _client(url: str, mapping: MappingConfig, **kw: object) -> OneStopApiClient:
    options: dict[str, object] = {"page_size": 25, "timeout": 5.0, "sleep": lambda _s: None}
    options.update(kw)
    return OneStopApiClient(base_url=url, token=TOKEN, mapping=mapping, **options)  # type: ignore[arg-type]


def test_full_sync_then_incremental_sync(
    simulator: SimulatorServer,
    store: OneStopStore,
    mapping: MappingConfig,
    db_session: Session,
    cipher: PiiCipher,
) -> None:
    with _client(simulator.url, mapping) as client:
        first = _sync(db_session, client, mapping, cipher, NOW)
        assert client.requests == 5  # 120 records, 25 per page
    counts = first.counts
    assert counts.inserted + counts.quarantined == 120
    assert 3 <= counts.quarantined <= 25  # bad_share=0.1: each bad record is quarantined, not dropped
    quarantined_refs = set(db_session.scalars(select(QuarantinedRecord.row_ref)))
    assert all(ref.startswith("id HS-") for ref in quarantined_refs)
    watermark = get_watermark(db_session, source="onestop")
    assert watermark is not None and watermark <= NOW

    # Nothing changed at the source: the next sync only re-reads the overlap window, writes nothing.
    with _client(simulator.url, mapping) as client:
        second = sync_api(
            db_session, client=client, source="onestop", mapping=mapping, cipher=cipher, now=NOW
        )
        assert client.updated_since == watermark - timedelta(minutes=5)
    assert (second.counts.inserted, second.counts.updated) == (0, 0)
    assert second.counts.total < 20
    # Bad records re-read in the overlap window are not quarantined a second time.
    assert db_session.scalar(select(func.count()).select_from(QuarantinedRecord)) == counts.quarantined

    # The agency returns a pending dossier's result: the incremental sync picks it up.
    pending_code = db_session.scalars(
        select(Dossier.code).where(Dossier.returned_at.is_(None), Dossier.status == "received")
    ).first()
    assert pending_code is not None
    original = store.get(pending_code)
    store.mark_returned(pending_code, when=NOW + timedelta(hours=1))
    try:
        with _client(simulator.url, mapping) as client:
            later = NOW + timedelta(hours=2)
            third = sync_api(
                db_session, client=client, source="onestop", mapping=mapping, cipher=cipher, now=later
            )
        assert third.counts.updated == 1
        assert get_watermark(db_session, source="onestop") == (NOW + timedelta(hours=1)).astimezone(UTC)
        dossier = db_session.scalars(select(Dossier).where(Dossier.code == pending_code)).one()
        db_session.refresh(dossier)
        assert dossier.status == "returned"
        history = db_session.scalar(
            select(func.count())
            .select_from(DossierStatusHistory)
            .where(DossierStatusHistory.dossier_id == dossier.id)
        )
        assert history == 2
    finally:
        store.upsert(original)  # the store is shared by the module's tests


def test_wrong_token_fails_at_once_with_a_clear_message(
    simulator: SimulatorServer, mapping: MappingConfig
) -> None:
    client = OneStopApiClient(base_url=simulator.url, token="wrong", mapping=mapping, sleep=lambda _s: None)
    with (
        client,
        pytest.raises(ApiAuthError, match=r"refused the token \(HTTP 401\).*CALLCENTER_INTAKE_API_TOKEN"),
    ):
        list(client.rows())
    assert client.requests == 1  # not retried
    with pytest.raises(ApiAuthError, match="no API token configured"):
        OneStopApiClient(base_url=simulator.url, token="", mapping=mapping)


def test_simulator_faults_429_then_503_are_retried(
    store: OneStopStore, mapping: MappingConfig, db_session: Session, cipher: PiiCipher
) -> None:
    faults = Faults(rate_limited=2, retry_after="3", server_errors=2)
    slept: list[float] = []
    with SimulatorServer(create_simulator_app(store, token=TOKEN, faults=faults)) as server:
        client = _client(server.url, mapping, sleep=slept.append, page_size=200)
        with client:
            result = sync_api(
                db_session, client=client, source="onestop", mapping=mapping, cipher=cipher, now=NOW
            )
    assert result.counts.total == 120
    assert faults.requests == 5  # 2 × 429, 2 × 503, then the page
    assert slept == [3.0, 3.0, 2.0, 4.0]  # Retry-After honoured for 429, then exponential backoff


def _mock(handler: httpx.MockTransport, mapping: MappingConfig, **kw: object) -> OneStopApiClient:
    options: dict[str, object] = {"sleep": lambda _s: None, "max_attempts": 4, "transport": handler}
    options.update(kw)
    return OneStopApiClient(base_url="http://onestop.test", token=TOKEN, mapping=mapping, **options)  # type: ignore[arg-type]


def _page(items: list[dict[str, object]], has_more: bool = False) -> httpx.Response:
    return httpx.Response(200, json={"items": items, "has_more": has_more})


def test_timeouts_and_5xx_are_retried_with_backoff(mapping: MappingConfig) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            raise httpx.ReadTimeout("slow", request=request)
        if len(calls) == 2:
            return httpx.Response(502)
        return _page([{"maHoSo": "HS-1"}])

    slept: list[float] = []
    with _mock(httpx.MockTransport(handler), mapping, sleep=slept.append) as client:
        rows = list(client.rows())
    assert [r.ref for r in rows] == ["id HS-1"]
    assert slept == [0.5, 1.0]  # exponential backoff
    assert calls[0].headers["Authorization"] == f"Bearer {TOKEN}"


def test_giving_up_after_max_attempts_is_a_transient_error(mapping: MappingConfig) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(503))
    with _mock(transport, mapping) as client, pytest.raises(ApiUnavailable, match="after 4 attempts"):
        list(client.rows())
    assert client.requests == 4


def test_retry_after_is_capped(mapping: MappingConfig) -> None:
    answers = iter([httpx.Response(429, headers={"Retry-After": "3600"}), _page([])])
    slept: list[float] = []
    with _mock(
        httpx.MockTransport(lambda r: next(answers)), mapping, sleep=slept.append, max_retry_after=60
    ) as c:
        assert list(c.rows()) == []
    assert slept == [60]


def test_pagination_and_updated_since_parameters(mapping: MappingConfig) -> None:
    seen: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(dict(request.url.params))
        page = int(request.url.params["page"])
        return _page([{"maHoSo": f"HS-{page}"}], has_more=page < 3)

    with _mock(httpx.MockTransport(handler), mapping, page_size=1) as client:
        client.updated_since = datetime(2026, 1, 1, 7, 0, tzinfo=UTC)
        refs = [r.ref for r in client.rows()]
    assert refs == ["id HS-1", "id HS-2", "id HS-3"]
    assert [s["page"] for s in seen] == ["1", "2", "3"]
    assert seen[0]["updated_since"] == "2026-01-01T07:00:00+00:00"
    assert seen[0]["page_size"] == "1"


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (httpx.Response(200, text="<html>"), "not JSON"),
        (httpx.Response(200, json={"data": []}), "no 'items' list"),
        (httpx.Response(404, text="nope"), "HTTP 404"),
    ],
)
def test_bad_answers_are_clear_errors(mapping: MappingConfig, response: httpx.Response, message: str) -> None:
    with (
        _mock(httpx.MockTransport(lambda r: response), mapping) as client,
        pytest.raises(ApiError, match=message),
    ):
        list(client.rows())


def test_an_item_that_is_not_an_object_is_quarantined_not_fatal(mapping: MappingConfig) -> None:
    with _mock(httpx.MockTransport(lambda r: _page(["not an object"])), mapping) as client:  # type: ignore[list-item]
        (row,) = client.rows()
        assert row.problem is not None and row.problem.field == "record"


def test_parse_retry_after() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Thu, 01 Jan 2026 00:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def _record(code: str, **overrides: str) -> dict[str, str]:
    return dict(zip(FIELD_ORDER, good_row(code, **overrides), strict=True))


def test_a_future_updated_at_does_not_freeze_the_incremental_sync(
    mapping: MappingConfig, db_session: Session, cipher: PiiCipher, caplog: pytest.LogCaptureFixture
) -> None:
    store = OneStopStore(
        [
            _record("HS-1", updated_at="2026-01-10T08:00:00+07:00"),
            _record("HS-2", updated_at="2062-01-08T15:05:00+07:00"),  # a typo for 2026, yet a valid date
        ],
        mapping=mapping,
    )
    with SimulatorServer(create_simulator_app(store, token=TOKEN)) as server:
        with _client(server.url, mapping) as client, caplog.at_level(logging.WARNING):
            first = _sync(db_session, client, mapping, cipher, NOW)
        assert first.counts.inserted == 2
        # The newest sane update, not "now": capped at now, every later sync's overlap would be void.
        assert get_watermark(db_session, source="onestop") == datetime(2026, 1, 10, 1, 0, tzinfo=UTC)
        assert "1 record(s) carry an update time later than now" in caplog.text

        # A dossier updated after the first sync is still picked up by the next one.
        store.upsert(_record("HS-3", updated_at=(NOW + timedelta(minutes=30)).isoformat()))
        with _client(server.url, mapping) as client:
            second = _sync(db_session, client, mapping, cipher, NOW + timedelta(hours=1))
    assert second.counts.inserted == 1
    # HS-1 again through the overlap (it still works), HS-2 on every sync (its future date): no-ops.
    assert second.counts.unchanged == 2
    assert sorted(db_session.scalars(select(Dossier.code))) == ["HS-1", "HS-2", "HS-3"]


def test_a_full_sync_repairs_a_watermark_stored_in_the_future(
    mapping: MappingConfig, db_session: Session, cipher: PiiCipher
) -> None:
    # Stored before the cap existed (or by hand): every incremental sync would ask from 2062.
    set_watermark(db_session, source="onestop", watermark=datetime(2062, 1, 8, tzinfo=UTC), now=NOW)
    store = OneStopStore([_record("HS-1", updated_at="2026-01-10T08:00:00+07:00")], mapping=mapping)
    with SimulatorServer(create_simulator_app(store, token=TOKEN)) as server:
        with _client(server.url, mapping) as client:
            assert _sync(db_session, client, mapping, cipher, NOW).counts.inserted == 0  # asks from 2062
        with _client(server.url, mapping) as client:
            full = sync_api(
                db_session,
                client=client,
                source="onestop",
                mapping=mapping,
                cipher=cipher,
                now=NOW,
                full=True,
            )
    assert full.counts.inserted == 1
    assert get_watermark(db_session, source="onestop") == datetime(2026, 1, 10, 1, 0, tzinfo=UTC)


def test_a_refused_record_with_an_out_of_range_updated_at_leaves_the_watermark_alone(
    mapping: MappingConfig, db_session: Session, cipher: PiiCipher
) -> None:
    store = OneStopStore(
        [
            _record("HS-1", updated_at="2026-01-10T08:00:00+07:00"),
            _record("HS-2", updated_at="2206-01-08T15:05"),  # refused: year outside 1990-2100
        ],
        mapping=mapping,
    )
    with (
        SimulatorServer(create_simulator_app(store, token=TOKEN)) as server,
        _client(server.url, mapping) as client,
    ):
        result = _sync(db_session, client, mapping, cipher, NOW)
    assert (result.counts.inserted, result.counts.quarantined) == (1, 1)
    assert get_watermark(db_session, source="onestop") == datetime(2026, 1, 10, 1, 0, tzinfo=UTC)


def test_a_nul_character_in_a_record_is_quarantined_and_the_sync_goes_on(
    mapping: MappingConfig, db_session: Session, cipher: PiiCipher
) -> None:
    # JSON "\u0000" decodes to a NUL, which no PostgreSQL text column or parameter accepts.
    store = OneStopStore(
        [
            _record("HS-1", updated_at="2026-01-10T08:00:00+07:00"),
            _record(
                "HS-\x002", updated_at="2026-01-12T08:00:00+07:00"
            ),  # in the id: the quarantine's row_ref
            _record("HS-3", field_name="Hộ\x00 tịch", updated_at="2026-01-12T08:00:00+07:00"),
        ],
        mapping=mapping,
    )
    with SimulatorServer(create_simulator_app(store, token=TOKEN)) as server:
        for now in (NOW, NOW + timedelta(hours=1)):  # the second sync re-reads both bad records
            with _client(server.url, mapping) as client:
                result = _sync(db_session, client, mapping, cipher, now)
            assert result.counts.quarantined == 2
    quarantined = db_session.execute(
        select(QuarantinedRecord.row_ref, QuarantinedRecord.field, QuarantinedRecord.reason).order_by(
            QuarantinedRecord.id
        )
    ).all()
    assert [(ref, field) for ref, field, _ in quarantined] == [
        ("id HS-\\x002", "code"),
        ("id HS-3", "field_name"),
    ]
    assert all("contains a NUL character" in reason for _, _, reason in quarantined)
    assert get_watermark(db_session, source="onestop") == datetime(2026, 1, 12, 1, 0, tzinfo=UTC)
