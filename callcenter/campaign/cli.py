"""``callcenter campaign …``: IOC operators create, start, pause, resume, stop and watch campaigns.

Times given without a zone are Da Nang local time (Asia/Ho_Chi_Minh); output is in local time too.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from callcenter.campaign import service
from callcenter.campaign.calendar_store import add_holiday, list_holidays, remove_holiday, seed_holidays
from callcenter.campaign.models import CAMPAIGN_STATUS_LABELS_VI, CampaignStatus
from callcenter.campaign.optouts import decode_list, import_opt_outs
from callcenter.campaign.reporting import CampaignReport, campaign_report
from callcenter.campaign.rules import parse_rules
from callcenter.campaign.schemas import parse_spec
from callcenter.campaign.windows import describe, windows_with_saturday
from callcenter.core.clock import VN_TZ, ensure_aware
from callcenter.core.db import session_scope
from callcenter.core.errors import CallCenterError, ValidationError
from callcenter.core.outcomes import CALL_OUTCOME_LABELS_VI
from callcenter.core.runtime import Runtime, build_runtime

app = typer.Typer(help="Survey campaigns: sample sizes, call lists, calling rules.", no_args_is_help=True)
holidays_app = typer.Typer(help="The holiday calendar (no calls on these days).", no_args_is_help=True)
optout_app = typer.Typer(help="The do-not-call list.", no_args_is_help=True)
app.add_typer(holidays_app, name="holidays")
app.add_typer(optout_app, name="optout")
console = Console()

ACTOR_OPTION = typer.Option(None, "--actor", help="Who does this (recorded); default: the login name.")


@contextmanager
def _unit_of_work() -> Iterator[tuple[Session, Runtime]]:
    """One runtime and one committed unit of work per command; errors become a clear message."""
    runtime = build_runtime()
    try:
        with session_scope(runtime.sessions) as session:
            yield session, runtime
    except ValidationError as exc:
        console.print(f"[red]Invalid input[/red] — {exc}")
        raise typer.Exit(2) from None
    except CallCenterError as exc:
        console.print(f"[red]Refused[/red] — {exc}")
        raise typer.Exit(1) from None
    finally:
        runtime.engine.dispose()


def _actor(actor: str | None) -> str:
    if actor:
        return actor
    try:
        return getpass.getuser()
    except OSError:
        return "operator"


def _local(value: datetime | None) -> str:
    return value.astimezone(VN_TZ).strftime("%d/%m/%Y %H:%M") if value else "—"


def _load_mapping(path: Path | None, what: str) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise ValidationError(
            f"{path} is not UTF-8 text (byte {exc.start}); save it as UTF-8", field=what
        ) from None
    except (OSError, yaml.YAMLError) as exc:
        raise ValidationError(f"cannot read {path}: {exc}", field=what) from None
    if not isinstance(data, dict):
        raise ValidationError(f"{path} must hold a mapping", field=what)
    return data


@app.command("create")
def create(
    name: str = typer.Option(..., help="Campaign name."),
    returned_from: str = typer.Option(
        ..., "--from", help="Scope: results returned from this day (YYYY-MM-DD)."
    ),
    returned_to: str = typer.Option(..., "--to", help="… to this day, inclusive."),
    starts: str = typer.Option(..., help="Calls allowed from (ISO time; no zone = local time)."),
    ends: str = typer.Option(..., help="Nothing called after (ISO time; no zone = local time)."),
    agency: list[str] | None = typer.Option(
        None, "--agency", help="Agency code (repeat); default: every agency."
    ),
    field: list[str] | None = typer.Option(
        None, "--field", help="Field code (repeat); default: every field."
    ),
    policy: str = typer.Option(
        "danang_2223", help="danang_2223 | repeated_submitter | seed003 | fixed_total."
    ),
    params: str = typer.Option("{}", help='Policy parameters as JSON, e.g. \'{"rounding": "ceil"}\'.'),
    rules_file: Path | None = typer.Option(None, "--rules", help="Calling rules (YAML or JSON file)."),
    saturday: bool = typer.Option(False, "--saturday", help="Also call on Saturday mornings."),
    seed: int | None = typer.Option(None, help="Seed of the random draw (default: random, stored)."),
    actor: str | None = ACTOR_OPTION,
) -> None:
    """Create a campaign (status draft) and draw its call lists."""
    with _unit_of_work() as (session, runtime):
        try:
            policy_params = json.loads(params)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"not valid JSON ({exc.msg})", field="params") from None
        rules = _load_mapping(rules_file, "rules")
        if saturday:
            rules["saturday_morning"] = True
        spec = parse_spec(
            {
                "name": name,
                "policy": policy,
                "policy_params": policy_params,
                "returned_from": returned_from,
                "returned_to": returned_to,
                "agencies": agency or None,
                "fields": field or None,
                "starts_at": _parse_local(starts, "starts"),
                "ends_at": _parse_local(ends, "ends"),
                "calling_rules": rules,
                "seed": seed,
            }
        )
        campaign = service.create_campaign(session, spec=spec, actor=_actor(actor), now=runtime.clock.now())
        report = campaign_report(session, campaign_id=campaign.id, now=runtime.clock.now())
        console.print(
            f"[green]Đã tạo chiến dịch #{campaign.id}[/green] (draft): {report.target} phiếu cần đạt, "
            f"{sum(a.drawn for a in report.agencies)} hồ sơ trong danh sách gọi, seed {campaign.seed}."
        )


def _parse_local(text: str, option: str) -> str:
    try:
        return ensure_aware(datetime.fromisoformat(text)).isoformat()
    except ValueError:
        raise ValidationError(
            f"{text!r} is not an ISO date-time (e.g. 2027-01-04T08:00)", field=option
        ) from None


NOTE_OPTION = typer.Option(None, "--note", help="Why (recorded with the change).")
VERBS: dict[str, Any] = {
    "start": service.start_campaign,
    "pause": service.pause_campaign,
    "resume": service.resume_campaign,
    "stop": service.stop_campaign,
}


def _transition(action: str, campaign_id: int, actor: str | None, note: str | None) -> None:
    with _unit_of_work() as (session, runtime):
        func = VERBS[action]
        kwargs: dict[str, Any] = {
            "campaign_id": campaign_id,
            "actor": _actor(actor),
            "now": runtime.clock.now(),
        }
        if action != "start":
            kwargs["note"] = note
        campaign = func(session, **kwargs)
        console.print(f"Chiến dịch #{campaign.id}: [bold]{campaign.status}[/bold]")


@app.command("start")
def start(campaign_id: int, actor: str | None = ACTOR_OPTION) -> None:
    """Schedule a draft campaign; it runs from its start time."""
    _transition("start", campaign_id, actor, None)


@app.command("pause")
def pause(campaign_id: int, actor: str | None = ACTOR_OPTION, note: str | None = NOTE_OPTION) -> None:
    """Stop placing new calls for now (calls in progress finish)."""
    _transition("pause", campaign_id, actor, note)


@app.command("resume")
def resume(campaign_id: int, actor: str | None = ACTOR_OPTION, note: str | None = NOTE_OPTION) -> None:
    """Resume a paused campaign."""
    _transition("resume", campaign_id, actor, note)


@app.command("stop")
def stop(campaign_id: int, actor: str | None = ACTOR_OPTION, note: str | None = NOTE_OPTION) -> None:
    """Cancel a campaign for good: nothing more is called."""
    _transition("stop", campaign_id, actor, note)


@app.command("list")
def list_(status: str | None = typer.Option(None, help="Only campaigns in this status.")) -> None:
    """List campaigns, newest first."""
    with _unit_of_work() as (session, _runtime):
        try:
            wanted = CampaignStatus(status) if status else None
        except ValueError:
            choices = ", ".join(s.value for s in CampaignStatus)
            raise ValidationError(
                f"unknown status {status!r} (choose one of {choices})", field="status"
            ) from None
        table = Table("#", "Tên", "Trạng thái", "Chính sách", "Hồ sơ trả từ–đến", "Gọi từ", "Đến")
        for c in service.list_campaigns(session, status=wanted):
            table.add_row(
                str(c.id),
                c.name,
                c.status,
                c.policy,
                f"{c.returned_from:%d/%m/%Y}–{c.returned_to:%d/%m/%Y}",
                _local(c.starts_at),
                _local(c.ends_at),
            )
        console.print(table)


@app.command("status")
def status(campaign_id: int) -> None:
    """Per agency: target, completed, in progress, attempts by outcome and the ETA at the current rate."""
    with _unit_of_work() as (session, runtime):
        report = campaign_report(session, campaign_id=campaign_id, now=runtime.clock.now())
        _print_report(report)


def _print_report(report: CampaignReport) -> None:
    c = report.campaign
    rules = parse_rules(c.calling_rules)
    status = CAMPAIGN_STATUS_LABELS_VI.get(c.status, c.status)
    console.print(f"[bold]#{c.id} {c.name}[/bold] — {status}; chính sách {c.policy}; seed {c.seed}")
    hours = describe(windows_with_saturday(rules.windows, rules.saturday_morning), vietnamese=True)
    console.print(f"Giờ gọi: {hours}; từ {_local(c.starts_at)} đến {_local(c.ends_at)}")
    table = Table(
        "Cơ quan",
        "N",
        "Trễ/quá hạn",
        "Đủ điều kiện",
        "Chỉ tiêu",
        "Hoàn thành",
        "Đang gọi",
        "Chờ gọi",
        "Kết thúc không KS",
        "Lượt gọi theo kết quả",
        "Dự kiến xong",
        "Ghi chú",
    )
    for a in report.agencies:
        outcomes = (
            ", ".join(f"{CALL_OUTCOME_LABELS_VI.get(k, k)} {v}" for k, v in a.attempts_by_outcome.items())
            or "—"
        )
        table.add_row(
            f"{a.agency_name} ({a.agency_code})",
            str(a.population),
            str(a.population_late_overdue),
            str(a.eligible),
            str(a.target),
            str(a.completed),
            str(a.in_progress),
            str(a.queued),
            str(a.ended_without_survey),
            outcomes,
            _local(a.eta),
            a.note,
        )
    console.print(table)
    console.print(
        f"Tổng: {report.completed}/{report.target} hoàn thành, {report.in_progress} đang gọi; "
        f"{report.completion_rate_per_open_hour} phiếu/giờ gọi; dự kiến xong {_local(report.eta)}"
        + (f" ({report.note})" if report.note else "")
    )


@holidays_app.command("seed")
def holidays_seed(years: list[int] = typer.Argument(..., help="Years to fill, e.g. 2026 2027.")) -> None:
    """Add the computed public holidays (solar and lunar) of the given years; days already there stay."""
    with _unit_of_work() as (session, _runtime):
        # Year by year: a year already complete (``campaign create`` seeds its years) is named as such.
        added = {year: seed_holidays(session, years=[year]) for year in dict.fromkeys(years)}
    for year, count in added.items():
        if count:
            console.print(f"Năm {year}: đã thêm {count} ngày nghỉ lễ.")
        else:
            console.print(f"Năm {year} đã có đủ lịch nghỉ lễ; không thêm ngày nào.")


@holidays_app.command("add")
def holidays_add(day: str = typer.Argument(..., help="YYYY-MM-DD"), name: str = typer.Argument(...)) -> None:
    """Add a no-call day (e.g. a substitute day off decreed this year)."""
    with _unit_of_work() as (session, _runtime):
        row = add_holiday(session, day=_parse_day(day), name=name)
        console.print(f"{row.day:%d/%m/%Y}: {row.name}")


@holidays_app.command("remove")
def holidays_remove(day: str = typer.Argument(..., help="YYYY-MM-DD")) -> None:
    """Remove a day from the calendar."""
    with _unit_of_work() as (session, _runtime):
        remove_holiday(session, day=_parse_day(day))
        console.print(f"Đã xóa {day}.")


@holidays_app.command("list")
def holidays_list(year: int | None = typer.Option(None, help="Only this year.")) -> None:
    """Show the calendar."""
    with _unit_of_work() as (session, _runtime):
        table = Table("Ngày", "Thứ", "Tên", "Loại")
        weekdays = ("Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ Nhật")
        for h in list_holidays(session, year=year):
            table.add_row(f"{h.day:%d/%m/%Y}", weekdays[h.day.weekday()], h.name, h.kind)
        console.print(table)


def _parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"{text!r} is not a date (YYYY-MM-DD)", field="day") from None


@optout_app.command("import")
def optout_import(
    path: Path = typer.Argument(..., help="CSV with one phone number per row (header optional)."),
    note: str | None = typer.Option(None, help="Where the list came from."),
) -> None:
    """Add a do-not-call list; bad rows are reported by row number, the rest imported.

    Exits 2 when nothing could be taken from the file (no phone column, or every row bad), so a
    scripted import does not pass for a successful one.
    """
    with _unit_of_work() as (session, runtime):
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ValidationError(f"cannot read {path}: {exc.strerror}", field="path") from None
        text = decode_list(data, name=path.name)
        result = import_opt_outs(
            session, text=text, cipher=runtime.cipher, now=runtime.clock.now(), note=note
        )
        console.print(
            f"{result.rows} dòng: {result.added} số mới, {result.already_listed} đã có, "
            f"{len(result.errors)} lỗi."
        )
        colour = "red" if result.failed else "yellow"
        for error in result.errors:
            console.print(f"[{colour}]{error}[/{colour}]")
    if result.failed:
        console.print(f"[red]Invalid input[/red] — {path.name}: no phone number was imported")
        raise typer.Exit(2)
