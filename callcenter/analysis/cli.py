"""``callcenter report`` and ``callcenter analysis …``: reports, API keys, imports, alerts, phúc tra."""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table
from sqlalchemy.orm import QueryableAttribute

from callcenter.analysis import alerts, channel_import, integrity, reverify, service
from callcenter.analysis import report as report_module
from callcenter.analysis.labels import reason_labels
from callcenter.analysis.models import AlertSubscription, DeliveryMode, NotifierKind
from callcenter.analysis.periods import Period, PeriodKind
from callcenter.analysis.settings import get_analysis_settings
from callcenter.api.auth import Role, issue_key, list_keys, revoke_key
from callcenter.core.clock import VN_TZ
from callcenter.core.db import column_length, session_scope
from callcenter.core.errors import CallCenterError, ValidationError
from callcenter.core.models import ApiKey
from callcenter.core.pii import mask_digit_runs
from callcenter.core.runtime import Runtime, build_runtime

COMMAND_NAME = "analysis"
app = typer.Typer(help="Survey results: API keys, imports, alerts, re-verification.", no_args_is_help=True)
apikey_app = typer.Typer(help="HTTP API keys for Home Affairs, agencies and verifiers.", no_args_is_help=True)
app.add_typer(apikey_app, name="apikey")
console = Console()
err = Console(stderr=True)


def _runtime() -> Runtime:
    return build_runtime()


def _fail(exc: Exception) -> typer.Exit:
    err.print(f"[red]Lỗi:[/red] {escape(mask_digit_runs(str(exc)))}")
    return typer.Exit(code=2)


def report(
    agency: str | None = typer.Option(None, "--agency", help="Agency code; omit for the whole city."),
    period: str | None = typer.Option(
        None,
        "--period",
        help="2026 (year), 2026-Q3 (quarter) or 2026-07 (month); default: the current month.",
    ),
    out: Path = typer.Option(Path("var/reports"), "--out", help="Directory for the HTML and XLSX files."),
    policy: str = typer.Option("danang_2223", "--policy", help="Minimum-sample policy."),
) -> None:
    """Write the survey report (HTML with charts + XLSX workbook) for the city or one agency."""
    runtime = _runtime()
    try:
        with session_scope(runtime.sessions) as session:
            now = runtime.clock.now()
            chosen = Period.parse(period) if period else Period.containing(now, PeriodKind.MONTH)
            agency_id = service.agency_by_code(session, agency).id if agency else None
            data = report_module.build_report(
                session,
                period=chosen,
                cipher=runtime.cipher,
                now=now,
                agency_id=agency_id,
                reason_labels=reason_labels(runtime.settings.prompts_dir / "questionnaire.vi.yaml"),
                policy=policy,
            )
            html = report_module.render_html(data)
            xlsx = report_module.render_xlsx(data)
    except CallCenterError as exc:
        raise _fail(exc) from None
    stem = f"bao-cao-{agency or 'thanh-pho'}-{chosen.key}"
    html_path, xlsx_path = out / f"{stem}.html", out / f"{stem}.xlsx"
    try:
        out.mkdir(parents=True, exist_ok=True)
        html_path.write_text(html, encoding="utf-8")
        xlsx_path.write_bytes(xlsx)
    except OSError as exc:  # --out names a file, or a place that cannot be written
        where = exc.filename or out
        raise _fail(
            ValidationError(f"cannot write the report to {where}: {exc.strerror}", field="--out")
        ) from None
    console.print(f"Đã lập báo cáo {data.scope_label}, {chosen.label_vi}:")
    console.print(f"  {html_path}\n  {xlsx_path}")


TOP_LEVEL_COMMANDS = (report,)


def _stored_text(attribute: QueryableAttribute[str], *, what: str) -> Callable[[str | None], str | None]:
    """An option callback: the value stripped, refused (exit 2, naming the option) if it is blank or
    longer than the column it is stored in, before anything is written."""
    limit = column_length(attribute)

    def check(value: str | None) -> str | None:
        if value is None:
            return None
        text = value.strip()
        if not text:
            raise typer.BadParameter(f"{what} must not be empty")
        if len(text) > limit:
            raise typer.BadParameter(f"{len(text)} characters is too long; {what} has at most {limit}")
        return text

    return check


@apikey_app.command("issue")
def apikey_issue(
    role: Role = typer.Option(..., "--role", help="home_affairs | agency | verifier | operator | admin"),
    agency: str | None = typer.Option(None, "--agency", help="Agency code (required for --role agency)."),
    name: str = typer.Option(
        ...,
        "--name",
        help="Who holds the key (unit or person), for the audit log.",
        callback=_stored_text(ApiKey.name, what="a key's name"),
    ),
) -> None:
    """Issue an API key; the clear key is printed once and only its hash is stored."""
    if role == Role.AGENCY and not agency:
        raise _fail(ValueError("--agency is required for a key with role 'agency'"))
    if role != Role.AGENCY and agency:
        raise _fail(ValueError("--agency only applies to a key with role 'agency'"))
    runtime = _runtime()
    try:
        with session_scope(runtime.sessions) as session:
            agency_id = service.agency_by_code(session, agency).id if agency else None
            raw, row = issue_key(session, name=name, role=role, now=runtime.clock.now(), agency_id=agency_id)
            key_id = row.id
    except CallCenterError as exc:
        raise _fail(exc) from None
    console.print(f"key id {key_id}, role {role.value}" + (f", agency {agency}" if agency else ""))
    console.print("Store this key now; it is not shown again:")
    print(raw)


@apikey_app.command("list")
def apikey_list(
    active: bool = typer.Option(False, "--active", help="Only keys that are not revoked."),
) -> None:
    """List the API keys: id, holder, role, agency, when issued and revoked (never the key itself)."""
    runtime = _runtime()
    with session_scope(runtime.sessions) as session:
        keys = list_keys(session, include_revoked=not active)
    table = Table(
        Column("id", no_wrap=True),
        "Tên / name",
        "role",
        "Cơ quan / agency",
        Column("Cấp / created", no_wrap=True),
        Column("Thu hồi / revoked", no_wrap=True),
    )
    for key in keys:
        table.add_row(
            str(key.key_id),
            escape(key.name),
            key.role,
            key.agency_code or "",
            _local(key.created_at),
            _local(key.revoked_at) if key.revoked_at else "",
        )
    console.print(table)


@apikey_app.command("revoke")
def apikey_revoke(key_id: int = typer.Argument(..., help="The key's id (see 'apikey list').")) -> None:
    """Revoke an API key: every request carrying it is refused (401) from now on."""
    runtime = _runtime()
    try:
        with session_scope(runtime.sessions) as session:
            row = revoke_key(session, key_id=key_id, now=runtime.clock.now())
            line = f"Đã thu hồi / revoked: key {row.id} ({row.name}, role {row.role})"
    except CallCenterError as exc:
        raise _fail(exc) from None
    console.print(escape(line))


def _local(moment: datetime) -> str:
    return f"{moment.astimezone(VN_TZ):%Y-%m-%d %H:%M}"


@app.command("import-results")
def import_results_command(
    path: Path = typer.Argument(..., exists=True, dir_okay=False, help="CSV or XLSX file of survey results."),
    channel: str = typer.Option(..., "--channel", help="web | paper | independent"),
    mapping: Path | None = typer.Option(
        None, "--mapping", help="Column mapping YAML (default: Vietnamese headers)."
    ),
) -> None:
    """Import web, paper or independent survey results; a file with any bad row is rejected whole."""
    runtime = _runtime()
    try:
        with session_scope(runtime.sessions) as session:
            summary = channel_import.import_results(
                session,
                rows=channel_import.read_table(path),
                channel=channel,
                cipher=runtime.cipher,
                now=runtime.clock.now(),
                reason_codes=sorted(reason_labels(runtime.settings.prompts_dir / "questionnaire.vi.yaml")),
                alert_settings=get_analysis_settings(),
                mapping=channel_import.load_mapping(mapping) if mapping else None,
            )
    except channel_import.ResultsRejected as exc:
        err.print(f"[red]Tệp bị từ chối, không có dòng nào được nhập[/red] ({len(exc.errors)} lỗi):")
        for error in exc.errors:
            err.print(f"  {error}")
        raise typer.Exit(code=2) from None
    except CallCenterError as exc:
        raise _fail(exc) from None
    console.print(
        f"{path.name}: {summary.rows} dòng, nhập mới {summary.inserted}, "
        f"đã có từ trước {summary.already_imported}, cảnh báo chưa hài lòng {summary.alerts}"
    )


staff_app = typer.Typer(help="Phone lists of agency staff (stored as hashes only).", no_args_is_help=True)
app.add_typer(staff_app, name="staff-phones")


@staff_app.command("import")
def staff_phones_import(
    path: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="CSV/XLSX with a 'Số điện thoại' column."
    ),
    agency: str = typer.Option(..., "--agency", help="Agency code."),
) -> None:
    """Import an agency's staff phones; answers from them are flagged. Only keyed hashes are stored."""
    runtime = _runtime()
    try:
        with session_scope(runtime.sessions) as session:
            agency_id = service.agency_by_code(session, agency).id
            result = integrity.import_staff_phones(
                session,
                agency_id=agency_id,
                phones=integrity.read_phone_column(path),
                cipher=runtime.cipher,
                source=path.name,
                now=runtime.clock.now(),
            )
    except CallCenterError as exc:
        raise _fail(exc) from None
    console.print(f"{agency}: thêm {result.added} số, đã có {result.already_known} số")


alerts_app = typer.Typer(help="Where agencies receive negative-answer alerts.", no_args_is_help=True)
app.add_typer(alerts_app, name="alerts")


@alerts_app.command("subscribe")
def alerts_subscribe(
    agency: str = typer.Option(..., "--agency", help="Agency code."),
    webhook: str | None = typer.Option(
        None,
        "--webhook",
        help="HTTPS URL receiving signed JSON.",
        callback=_stored_text(AlertSubscription.target, what="a webhook URL"),
    ),
    email: str | None = typer.Option(
        None,
        "--email",
        help="E-mail address.",
        callback=_stored_text(AlertSubscription.target, what="an e-mail address"),
    ),
    digest: bool = typer.Option(False, "--digest", help="One message a day instead of one per answer."),
) -> None:
    """Subscribe an agency to alerts; a webhook's signing secret is printed once."""
    if (webhook is None) == (email is None):
        raise _fail(ValueError("give exactly one of --webhook or --email"))
    runtime = _runtime()
    try:
        with session_scope(runtime.sessions) as session:
            row, secret = alerts.add_subscription(
                session,
                agency_id=service.agency_by_code(session, agency).id,
                notifier=NotifierKind.WEBHOOK if webhook else NotifierKind.EMAIL,
                target=webhook or email or "",
                mode=DeliveryMode.DIGEST if digest else DeliveryMode.IMMEDIATE,
                cipher=runtime.cipher,
                now=runtime.clock.now(),
            )
            sub_id = row.id
    except CallCenterError as exc:
        raise _fail(exc) from None
    console.print(f"subscription {sub_id} for {agency} ({'digest' if digest else 'immediate'})")
    if secret:
        console.print("HMAC-SHA256 signing secret (store it now; it is not shown again):")
        print(secret)


@alerts_app.command("list")
def alerts_list(
    agency: str | None = typer.Option(None, "--agency", help="Agency code; omit for every agency."),
    active: bool = typer.Option(False, "--active", help="Only subscriptions still in force."),
) -> None:
    """List alert subscriptions (a webhook is shown by its host only; its secret never)."""
    runtime = _runtime()
    try:
        with session_scope(runtime.sessions) as session:
            agency_id = service.agency_by_code(session, agency).id if agency else None
            subs = alerts.list_subscriptions(session, agency_id=agency_id, include_ended=not active)
    except CallCenterError as exc:
        raise _fail(exc) from None
    table = Table(
        Column("id", no_wrap=True),
        "Cơ quan / agency",
        "Kênh / via",
        "Gửi tới / target",
        "mode",
        Column("Từ / since", no_wrap=True),
        "Trạng thái / state",
    )
    for sub in subs:
        table.add_row(
            str(sub.subscription_id),
            sub.agency_code,
            sub.notifier,
            escape(sub.target),
            sub.mode,
            _local(sub.created_at),
            "đang nhận / active" if sub.active else "đã dừng / ended",
        )
    console.print(table)


@alerts_app.command("unsubscribe")
def alerts_unsubscribe(
    subscription_id: int = typer.Argument(..., help="The subscription's id (see 'alerts list')."),
) -> None:
    """End a subscription: no new alert is raised for it and its queued alerts are cancelled
    (the row is kept for the sent alerts)."""
    runtime = _runtime()
    try:
        with session_scope(runtime.sessions) as session:
            cancelled = alerts.end_subscription(session, subscription_id=subscription_id)
    except CallCenterError as exc:
        raise _fail(exc) from None
    console.print(f"Đã dừng / ended: subscription {subscription_id}")
    console.print(
        f"Đã hủy {cancelled} cảnh báo đang chờ gửi; các cảnh báo này sẽ không được gửi / "
        f"{cancelled} queued alert(s) cancelled, never to be sent"
    )


reverify_app = typer.Typer(help="Phúc tra: re-check samples (personal data, audited).", no_args_is_help=True)
app.add_typer(reverify_app, name="reverify")


@reverify_app.command("draw")
def reverify_draw(
    agency: str = typer.Option(..., "--agency"),
    period: str = typer.Option(..., "--period", help="2026-07 (month) or 2026-Q3 (quarter)."),
    size: int | None = typer.Option(None, "--size", help="Default: 5% of the answers, at least 10."),
    actor: str = typer.Option(..., "--actor", help="Who draws it (for the record)."),
) -> None:
    """Draw the reproducible re-check sample of an agency for a month or quarter."""
    runtime = _runtime()
    try:
        with session_scope(runtime.sessions) as session:
            sample = reverify.draw_sample(
                session,
                agency_id=service.agency_by_code(session, agency).id,
                period=Period.parse(period),
                actor=f"cli:{actor}",
                now=runtime.clock.now(),
                size=size,
            )
            line = f"sample {sample.id}: {sample.size} of {sample.population} answers (seed {sample.seed})"
    except CallCenterError as exc:
        raise _fail(exc) from None
    console.print(line)


@reverify_app.command("export")
def reverify_export(
    sample: int = typer.Option(..., "--sample", help="Sample id."),
    actor: str = typer.Option(..., "--actor", help="The verifier exporting it; written to the audit log."),
    out: Path = typer.Option(..., "--out", help="CSV file to write (contains names and phones)."),
) -> None:
    """Export a sample with names and phones for the verifier; the access is audited.

    The command line has no key to check: whoever runs it holds the database and the PII key. The
    audit therefore records what is known (the operating-system account and the name given) under
    the role ``cli``, not a verifier's role it cannot vouch for.
    """
    runtime = _runtime()
    # The file is opened first: a path that cannot be written (no such folder, a folder, no
    # permission) must fail before the access is audited, or the log would record a disclosure
    # that never happened. Created 0600, never readable by others even for a moment (an existing
    # file is narrowed).
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise _fail(ValidationError(f"cannot write {out}: {exc.strerror}", field="--out")) from None
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
        os.fchmod(fd, 0o600)
        try:
            with session_scope(runtime.sessions) as session:
                records = reverify.export_sample(
                    session,
                    sample_id=sample,
                    cipher=runtime.cipher,
                    actor=f"cli:{actor} (os user {_os_user()})",
                    role="cli",
                    now=runtime.clock.now(),
                )
        except CallCenterError as exc:
            out.unlink(missing_ok=True)  # nothing exported: no empty file left behind
            raise _fail(exc) from None
        handle.write("\ufeff" + reverify.records_csv(records))
    console.print(f"{len(records)} dòng → {out} (đã ghi nhật ký truy cập)")


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container's arbitrary uid)
        return f"uid {os.getuid()}"


@app.command("detect-anomalies")
def detect_anomalies_command(
    period: str = typer.Option(..., "--period", help="2026, 2026-Q3 or 2026-07."),
    burst_minutes: int = typer.Option(10, "--burst-minutes", min=1, help="Window of a burst."),
    burst_answers: int = typer.Option(30, "--burst-answers", min=2, help="Answers in a window."),
    phone_answers: int = typer.Option(3, "--phone-answers", min=2, help="Answers from one phone."),
) -> None:
    """Flag bursts of answers, repeated phones and staff phones for a period."""
    runtime = _runtime()
    try:
        thresholds = integrity.Thresholds(burst_minutes, burst_answers, phone_answers)
        with session_scope(runtime.sessions) as session:
            found = integrity.detect_anomalies(
                session, period=Period.parse(period), now=runtime.clock.now(), thresholds=thresholds
            )
            lines = [
                f"{a.kind}: agency {a.agency_id}, {a.count} answers from {a.window_start:%Y-%m-%d %H:%M}"
                for a in found
            ]
    except CallCenterError as exc:
        raise _fail(exc) from None
    console.print(f"{len(lines)} new flag(s)")
    for line in lines:
        console.print("  " + line)
