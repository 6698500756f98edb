"""``callcenter report`` and ``callcenter analysis …``: reports, API keys, imports, alerts, phúc tra."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from callcenter.analysis import report as report_module
from callcenter.analysis import service
from callcenter.analysis.labels import reason_labels
from callcenter.analysis.periods import Period, PeriodKind
from callcenter.api.auth import Role, issue_key
from callcenter.core.db import session_scope
from callcenter.core.errors import CallCenterError
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
    err.print(f"[red]Lỗi:[/red] {exc}")
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
    out.mkdir(parents=True, exist_ok=True)
    stem = f"bao-cao-{agency or 'thanh-pho'}-{chosen.key}"
    html_path, xlsx_path = out / f"{stem}.html", out / f"{stem}.xlsx"
    html_path.write_text(html, encoding="utf-8")
    xlsx_path.write_bytes(xlsx)
    console.print(f"Đã lập báo cáo {data.scope_label}, {chosen.label_vi}:")
    console.print(f"  {html_path}\n  {xlsx_path}")


TOP_LEVEL_COMMANDS = (report,)


@apikey_app.command("issue")
def apikey_issue(
    role: Role = typer.Option(..., "--role", help="home_affairs | agency | verifier | operator | admin"),
    agency: str | None = typer.Option(None, "--agency", help="Agency code (required for --role agency)."),
    name: str = typer.Option(..., "--name", help="Who holds the key (unit or person), for the audit log."),
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
