"""The results API for Home Affairs, agencies and the verifying unit (FastAPI router).

Who sees what:

* ``home_affairs``, ``operator`` — every summary and report; never personal data;
* ``agency`` — summaries and reports of its own agency only (another agency → 403);
* ``verifier`` — summaries, and the phúc tra samples with names and phones, each access audited;
* ``admin`` — everything (admitted by :func:`callcenter.api.auth.require_roles`), audited the same way.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from callcenter.analysis import integrity, report, reverify, service
from callcenter.analysis.labels import reason_labels
from callcenter.analysis.periods import Period, PeriodKind, trailing_months
from callcenter.analysis.schemas import SummaryOut, TrendPointOut, summary_out
from callcenter.api.auth import Principal, Role, get_session, require_roles
from callcenter.core.errors import NotFound, ValidationError
from callcenter.core.runtime import Runtime

router = APIRouter(prefix="/analysis", tags=["analysis"])

READERS = (Role.HOME_AFFAIRS, Role.AGENCY, Role.VERIFIER, Role.OPERATOR)
PERSONAL_DATA = (Role.VERIFIER,)

SessionDep = Annotated[Session, Depends(get_session)]
ReaderDep = Annotated[Principal, Depends(require_roles(*READERS))]
VerifierDep = Annotated[Principal, Depends(require_roles(*PERSONAL_DATA))]
# Names and phones leave only to a verifier's key: admin keys draw samples but do not export them.
PersonalDataDep = Annotated[Principal, Depends(require_roles(*PERSONAL_DATA, admin=False))]
PeriodQuery = Annotated[
    str | None, Query(description="2026 (year), 2026-Q3 (quarter) or 2026-07 (month); default: this month")
]
AgencyQuery = Annotated[str | None, Query(description="Agency code; an agency key may only name its own")]


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _period(request: Request, text: str | None) -> Period:
    if text is None:
        return Period.containing(_runtime(request).clock.now(), PeriodKind.MONTH)
    try:
        return Period.parse(text)
    except ValidationError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None


def _labels(request: Request) -> dict[int, str]:
    state = request.app.state
    if not hasattr(state, "analysis_reason_labels"):
        state.analysis_reason_labels = reason_labels(
            _runtime(request).settings.prompts_dir / "questionnaire.vi.yaml"
        )
    labels: dict[int, str] = state.analysis_reason_labels
    return labels


def _agency_scope(session: Session, principal: Principal, code: str | None) -> tuple[int | None, str | None]:
    """The agency a request may read: an agency key is held to its own, whatever it asks for."""
    if code is None:
        if principal.role == Role.AGENCY:
            assert principal.agency_id is not None
            agency = service.agency_code(session, principal.agency_id)
            return principal.agency_id, agency
        return None, None
    try:
        agency_id = service.agency_by_code(session, code).id
    except ValidationError:
        if principal.role == Role.AGENCY:
            # Do not reveal which codes exist to a key that could not read them anyway.
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, "an agency key may only read its own agency"
            ) from None
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no agency with code '{code}'") from None
    if not principal.may_read_agency(agency_id):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "an agency key may only read its own agency")
    return agency_id, code


def _field_id(session: Session, code: str | None) -> int | None:
    if code is None:
        return None
    try:
        return service.field_by_code(session, code).id
    except ValidationError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no field with code '{code}'") from None


@router.get("/summary", response_model=SummaryOut, summary="Survey figures for one period")
def get_summary(
    request: Request,
    session: SessionDep,
    principal: ReaderDep,
    period: PeriodQuery = None,
    group_by: Annotated[
        list[Literal["agency", "field", "channel"]] | None, Query(description="Dimensions; default: agency")
    ] = None,
    agency: AgencyQuery = None,
    field: Annotated[str | None, Query(description="Field (lĩnh vực) code")] = None,
    channel: Annotated[Literal["call", "web", "paper", "independent"] | None, Query()] = None,
    policy: Annotated[str, Query(description="Minimum-sample policy")] = "danang_2223",
) -> SummaryOut:
    """Eligible, called, reached, completed, satisfied rate with its Wilson interval, weighted estimate,
    reasons, response rates, minimum-sample attainment, and the comparison with the previous period
    and the same period a year earlier."""
    chosen = _period(request, period)
    agency_id, agency_code = _agency_scope(session, principal, agency)
    field_id = _field_id(session, field)
    try:
        summary = service.summarise(
            session,
            period=chosen,
            group_by=tuple(group_by or ("agency",)),
            agency_id=agency_id,
            field_id=field_id,
            channel=channel,
            policy=policy,
        )
    except ValidationError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    return summary_out(summary, agency=agency_code, field=field, labels=_labels(request))


@router.get("/trend", response_model=list[TrendPointOut], summary="Satisfied rate month by month")
def get_trend(
    request: Request,
    session: SessionDep,
    principal: ReaderDep,
    period: PeriodQuery = None,
    months: Annotated[int, Query(ge=1, le=60)] = 12,
    agency: AgencyQuery = None,
) -> list[TrendPointOut]:
    """The satisfied rate per local calendar month, ending with the last month of ``period``."""
    chosen = _period(request, period)
    agency_id, agency_code = _agency_scope(session, principal, agency)
    points = service.monthly_trend(session, months=trailing_months(chosen, months), agency_id=agency_id)
    return [
        TrendPointOut(
            month=p.month.key,
            agency_code=agency_code,
            rated=p.rated,
            satisfied=p.satisfied,
            satisfied_rate=p.satisfied_rate,
        )
        for p in points
    ]


def _report(
    request: Request, session: Session, principal: Principal, period: str | None, agency: str | None
) -> tuple[report.ReportData, str]:
    chosen = _period(request, period)
    agency_id, agency_code = _agency_scope(session, principal, agency)
    runtime = _runtime(request)
    data = report.build_report(
        session,
        period=chosen,
        cipher=runtime.cipher,
        now=runtime.clock.now(),
        agency_id=agency_id,
        reason_labels=_labels(request),
    )
    return data, f"bao-cao-{agency_code or 'thanh-pho'}-{chosen.key}"


@router.get(
    "/report.html",
    response_class=Response,
    responses={200: {"content": {"text/html": {}}}},
    summary="The report as a self-contained HTML file",
)
def get_report_html(
    request: Request,
    session: SessionDep,
    principal: ReaderDep,
    period: PeriodQuery = None,
    agency: AgencyQuery = None,
) -> Response:
    data, stem = _report(request, session, principal, period, agency)
    return Response(
        report.render_html(data),
        media_type="text/html; charset=utf-8",
        headers={"Content-Disposition": _attachment(f"{stem}.html")},
    )


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@router.get(
    "/report.xlsx",
    response_class=Response,
    responses={200: {"content": {XLSX: {}}}},
    summary="The report as an XLSX workbook",
)
def get_report_xlsx(
    request: Request,
    session: SessionDep,
    principal: ReaderDep,
    period: PeriodQuery = None,
    agency: AgencyQuery = None,
) -> Response:
    data, stem = _report(request, session, principal, period, agency)
    return Response(
        report.render_xlsx(data),
        media_type=XLSX,
        headers={"Content-Disposition": _attachment(f"{stem}.xlsx")},
    )


def _attachment(filename: str) -> str:
    """``Content-Disposition`` for a download named after an agency code, which may be Vietnamese.

    HTTP headers are Latin-1: "UBND-ĐN" in ``filename`` failed the response (500). Every client
    gets an ASCII name without diacritics; those that read RFC 6266's ``filename*`` get the exact one.
    """
    decomposed = unicodedata.normalize("NFD", filename.replace("đ", "d").replace("Đ", "D"))
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    ascii_name = re.sub(r"[^A-Za-z0-9._-]+", "-", plain)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


# --- anomalies ---------------------------------------------------------------------------------------


class AnomalyOut(BaseModel):
    id: int
    kind: str
    agency_code: str
    window_start: datetime
    window_end: datetime
    count: int
    detected_at: datetime


@router.get("/anomalies", response_model=list[AnomalyOut], summary="Integrity flags for phúc tra")
def get_anomalies(
    request: Request,
    session: SessionDep,
    principal: ReaderDep,
    period: PeriodQuery = None,
    agency: AgencyQuery = None,
) -> list[AnomalyOut]:
    """Bursts of answers, many answers from one phone, answers from the agency's own staff phones."""
    chosen = _period(request, period)
    agency_id, _code = _agency_scope(session, principal, agency)
    return [
        AnomalyOut(
            id=a.id,
            kind=a.kind,
            agency_code=code,
            window_start=a.window_start,
            window_end=a.window_end,
            count=a.count,
            detected_at=a.detected_at,
        )
        for a, code in integrity.list_anomalies(session, period=chosen, agency_id=agency_id)
    ]


# --- phúc tra (personal data: verifier only, audited) -----------------------------------------------


class SampleIn(BaseModel):
    agency: str
    period: str = Field(description="2026-07 (month) or 2026-Q3 (quarter)")
    size: int | None = Field(default=None, ge=1, description="Default: 5 % of the answers, at least 10")


class SampleOut(BaseModel):
    id: int
    agency: str
    period: str
    population: int
    size: int
    seed: int
    created_by: str
    created_at: datetime


@router.post("/reverification/samples", response_model=SampleOut, summary="Draw a phúc tra sample")
def post_sample(request: Request, session: SessionDep, principal: VerifierDep, body: SampleIn) -> SampleOut:
    """Draw (or return the already drawn) reproducible re-check sample of an agency for a month/quarter."""
    chosen = _period(request, body.period)
    agency_id, code = _agency_scope(session, principal, body.agency)
    assert agency_id is not None and code is not None
    try:
        sample = reverify.draw_sample(
            session,
            agency_id=agency_id,
            period=chosen,
            actor=_actor(principal),
            now=_runtime(request).clock.now(),
            size=body.size,
        )
    except ValidationError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    return SampleOut(
        id=sample.id,
        agency=code,
        period=sample.period_key,
        population=sample.population,
        size=sample.size,
        seed=sample.seed,
        created_by=sample.created_by,
        created_at=sample.created_at,
    )


def _actor(principal: Principal) -> str:
    return f"api-key:{principal.key_id}:{principal.name}"


@router.get(
    "/reverification/samples/{sample_id}/export",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}, "application/json": {}}}},
    summary="The sample with names and phones (verifier only; audited)",
)
def export_sample(
    request: Request,
    session: SessionDep,
    principal: PersonalDataDep,
    sample_id: int,
    format: Annotated[Literal["csv", "json"], Query()] = "csv",
) -> Response:
    """Personal data for the re-check calls. The access is committed to the audit log before the data
    leaves: a disclosure that is not on record must not happen."""
    runtime = _runtime(request)
    try:
        records = reverify.export_sample(
            session,
            sample_id=sample_id,
            cipher=runtime.cipher,
            actor=_actor(principal),
            role=principal.role.value,
            now=runtime.clock.now(),
        )
    except NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    session.commit()
    if format == "json":
        payload = json.dumps([asdict(r) for r in records], ensure_ascii=False)
        return Response(payload, media_type="application/json")
    return Response(
        "\ufeff" + reverify.records_csv(records),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="phuc-tra-{sample_id}.csv"'},
    )
