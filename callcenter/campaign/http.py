"""Campaign HTTP API for IOC operators: the same operations as ``callcenter campaign …``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, UploadFile, status
from sqlalchemy.orm import Session

from callcenter.api.auth import Principal, Role, get_session, require_roles
from callcenter.campaign import service
from callcenter.campaign.calendar_store import add_holiday, list_holidays, remove_holiday
from callcenter.campaign.models import CampaignStatus
from callcenter.campaign.optouts import decode_list, import_opt_outs
from callcenter.campaign.reporting import campaign_report
from callcenter.campaign.schemas import (
    AgencyProgressOut,
    CampaignOut,
    CampaignReportOut,
    CampaignSpec,
    EventOut,
    HolidayIn,
    HolidayOut,
    OptOutImportOut,
    TransitionIn,
)
from callcenter.core.errors import CallCenterError, ConflictError, NotFound, ValidationError

router = APIRouter(prefix="/campaigns", tags=["campaigns"])
operator = require_roles(Role.OPERATOR)

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or unknown API key"},
    403: {"description": "The key's role may not manage campaigns"},
    404: {"description": "No such campaign"},
    409: {"description": "Not allowed in the campaign's current status"},
    422: {"description": "Invalid input; `detail.field` names the field at fault"},
}


def _http_error(exc: CallCenterError) -> HTTPException:
    if isinstance(exc, ValidationError):
        return HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, {"field": exc.field, "message": exc.reason}
        )
    if isinstance(exc, NotFound):
        return HTTPException(status.HTTP_404_NOT_FOUND, str(exc))
    if isinstance(exc, ConflictError):
        return HTTPException(status.HTTP_409_CONFLICT, str(exc))
    return HTTPException(status.HTTP_400_BAD_REQUEST, str(exc))


def _now(request: Request) -> datetime:
    now: datetime = request.app.state.runtime.clock.now()
    return now


@router.get("/holidays", response_model=list[HolidayOut], summary="List the holiday calendar")
def get_holidays(
    year: int | None = Query(None, ge=1900, le=2100),
    session: Session = Depends(get_session),
    _: Principal = Depends(operator),
) -> list[HolidayOut]:
    return [HolidayOut.model_validate(h) for h in list_holidays(session, year=year)]


@router.post(
    "/holidays",
    response_model=HolidayOut,
    status_code=201,
    summary="Add a no-call day",
    responses=ERROR_RESPONSES,
)
def post_holiday(
    body: HolidayIn, session: Session = Depends(get_session), _: Principal = Depends(operator)
) -> HolidayOut:
    try:
        return HolidayOut.model_validate(add_holiday(session, day=body.day, name=body.name))
    except CallCenterError as exc:
        raise _http_error(exc) from exc


@router.delete(
    "/holidays/{day}", status_code=204, summary="Remove a day from the calendar", responses=ERROR_RESPONSES
)
def delete_holiday(
    day: date, session: Session = Depends(get_session), _: Principal = Depends(operator)
) -> None:
    try:
        remove_holiday(session, day=day)
    except CallCenterError as exc:
        raise _http_error(exc) from exc


@router.post(
    "/opt-outs",
    response_model=OptOutImportOut,
    summary="Import a do-not-call list (CSV of phones)",
    responses=ERROR_RESPONSES,
)
def post_opt_outs(
    request: Request,
    file: UploadFile,
    session: Session = Depends(get_session),
    _: Principal = Depends(operator),
) -> OptOutImportOut:
    # A plain def: FastAPI runs it in its thread pool, so the database work never blocks the event loop.
    try:
        text = decode_list(file.file.read(), name=file.filename or "file")
    except ValidationError as exc:
        raise HTTPException(422, {"field": "file", "message": exc.reason}) from None
    runtime = request.app.state.runtime
    result = import_opt_outs(session, text=text, cipher=runtime.cipher, now=_now(request))
    if result.failed:
        # Not one phone taken (no phone column, or every row bad): a 200 would pass for an applied list.
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            {
                "field": "file",
                "message": f"{file.filename or 'the file'}: no phone number was imported",
                "errors": result.errors,
            },
        )
    return OptOutImportOut(
        rows=result.rows, added=result.added, already_listed=result.already_listed, errors=result.errors
    )


@router.post(
    "",
    response_model=CampaignOut,
    status_code=201,
    summary="Create a campaign and draw its call lists",
    responses=ERROR_RESPONSES,
)
def create(
    spec: CampaignSpec,
    request: Request,
    session: Session = Depends(get_session),
    who: Principal = Depends(operator),
) -> CampaignOut:
    """The campaign is created in status **draft**; start it with `POST /campaigns/{id}/start`."""
    try:
        campaign = service.create_campaign(session, spec=spec, actor=who.name, now=_now(request))
    except CallCenterError as exc:
        raise _http_error(exc) from exc
    return CampaignOut.model_validate(campaign)


@router.get("", response_model=list[CampaignOut], summary="List campaigns, newest first")
def list_all(
    status_: CampaignStatus | None = Query(None, alias="status"),
    session: Session = Depends(get_session),
    _: Principal = Depends(operator),
) -> list[CampaignOut]:
    return [CampaignOut.model_validate(c) for c in service.list_campaigns(session, status=status_)]


@router.get(
    "/{campaign_id}",
    response_model=CampaignReportOut,
    summary="Progress per agency, with ETA",
    responses=ERROR_RESPONSES,
)
def get_report(
    campaign_id: int,
    request: Request,
    session: Session = Depends(get_session),
    _: Principal = Depends(operator),
) -> CampaignReportOut:
    try:
        report = campaign_report(session, campaign_id=campaign_id, now=_now(request))
    except CallCenterError as exc:
        raise _http_error(exc) from exc
    return CampaignReportOut(
        campaign=CampaignOut.model_validate(report.campaign),
        agencies=[AgencyProgressOut.model_validate(a, from_attributes=True) for a in report.agencies],
        target=report.target,
        completed=report.completed,
        in_progress=report.in_progress,
        completion_rate_per_open_hour=report.completion_rate_per_open_hour,
        eta=report.eta,
        note=report.note,
    )


@router.get(
    "/{campaign_id}/events",
    response_model=list[EventOut],
    summary="Lifecycle changes: who, when",
    responses=ERROR_RESPONSES,
)
def get_events(
    campaign_id: int, session: Session = Depends(get_session), _: Principal = Depends(operator)
) -> list[EventOut]:
    try:
        return [EventOut.model_validate(e) for e in service.campaign_events(session, campaign_id=campaign_id)]
    except CallCenterError as exc:
        raise _http_error(exc) from exc


def _transition_endpoint(action: Callable[..., Any], *, with_note: bool) -> Callable[..., CampaignOut]:
    def endpoint(
        campaign_id: int,
        request: Request,
        body: TransitionIn | None = None,
        session: Session = Depends(get_session),
        who: Principal = Depends(operator),
    ) -> CampaignOut:
        kwargs: dict[str, Any] = {"campaign_id": campaign_id, "actor": who.name, "now": _now(request)}
        if with_note:
            kwargs["note"] = body.note if body else None
        try:
            return CampaignOut.model_validate(action(session, **kwargs))
        except CallCenterError as exc:
            raise _http_error(exc) from exc

    return endpoint


for _name, _action, _doc in (
    ("start", service.start_campaign, "Schedule a draft campaign (it runs from its start time)"),
    ("pause", service.pause_campaign, "Pause: no new calls; calls in progress finish"),
    ("resume", service.resume_campaign, "Resume a paused campaign"),
    ("stop", service.stop_campaign, "Cancel for good: nothing more is called"),
):
    router.add_api_route(
        f"/{{campaign_id}}/{_name}",
        _transition_endpoint(_action, with_note=_name != "start"),
        methods=["POST"],
        response_model=CampaignOut,
        summary=_doc,
        responses=ERROR_RESPONSES,
        name=f"campaign_{_name}",
    )
