"""The survey report for Home Affairs or one agency: an HTML page with SVG charts and an XLSX workbook.

:func:`build_report` gathers the figures (all aggregated in SQL by :mod:`.service`) into a
:class:`ReportData`; :func:`render_html` and :func:`render_xlsx` only lay them out. No output carries a
name, a phone number or an ID number: figures are counts, and comments are masked.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet
from sqlalchemy.orm import Session

from callcenter.analysis import charts, service
from callcenter.analysis.periods import Period, trailing_months
from callcenter.analysis.service import Figures, Summary, SummaryRow, TrendPoint
from callcenter.core.clock import VN_TZ
from callcenter.core.pii import PiiCipher

TEMPLATES = Path(__file__).with_name("templates")
CHANNEL_LABELS = {
    "call": "Gọi điện tự động (1022)",
    "web": "Khảo sát trực tuyến",
    "paper": "Phiếu giấy",
    "independent": "Khảo sát độc lập",
}
TREND_MONTHS = 12

WEIGHTING_PARAGRAPH = (
    "Hệ thống chủ động gọi khảo sát nhiều hơn đối với hồ sơ trễ hẹn, quá hạn để lắng nghe kỹ ý kiến của "
    "nhóm người dân, tổ chức này. Vì vậy, nếu chỉ lấy số phiếu hài lòng chia cho tổng số phiếu thu được "
    "(tỷ lệ thô) thì ý kiến về hồ sơ trễ hẹn, quá hạn sẽ chiếm tỷ trọng lớn hơn thực tế. Để phản ánh đúng "
    "mức độ hài lòng chung, tỷ lệ hài lòng gia quyền được tính riêng cho từng nhóm hồ sơ (đúng hạn; trễ "
    "hẹn, quá hạn), sau đó cộng lại theo tỷ trọng thực tế của mỗi nhóm trong tổng số hồ sơ mà cơ quan đã "
    "trả kết quả trong kỳ. Ví dụ: cơ quan có 80% hồ sơ đúng hạn với 75% người được hỏi hài lòng và 20% hồ "
    "sơ trễ hẹn với 33% người được hỏi hài lòng thì tỷ lệ gia quyền là 0,8 × 75% + 0,2 × 33% ≈ 67%, trong "
    "khi tỷ lệ thô trên số phiếu (phần lớn thuộc nhóm trễ hẹn) có thể chỉ là 50%. Khoảng tin cậy 95% cho "
    "biết phạm vi mà tỷ lệ thực tế nhiều khả năng nằm trong đó; số phiếu càng ít thì khoảng này càng rộng. "
    "Phiếu trực tuyến, phiếu giấy không gắn với hồ sơ cụ thể được tính vào tỷ lệ thô nhưng không tham gia "
    "tính tỷ lệ gia quyền."
)


def pct(value: float | None, digits: int = 1) -> str:
    """``0.6667`` → ``66,7%`` (Vietnamese decimal comma); ``—`` when unknown."""
    if value is None:
        return "—"
    return f"{value * 100:.{digits}f}".replace(".", ",") + "%"


def signed_points(value: float | None) -> str:
    """A change in percentage points: ``+4,2 điểm %``."""
    if value is None:
        return "—"
    sign = "+" if value > 0 else ("−" if value < 0 else "±")
    return f"{sign}{abs(value) * 100:.1f}".replace(".", ",") + " điểm %"


def number(value: int | None) -> str:
    """``12345`` → ``12.345`` (Vietnamese thousands separator)."""
    if value is None:
        return "—"
    return f"{value:,}".replace(",", ".")


@dataclass(frozen=True)
class ReportData:
    period: Period
    scope_label: str  # "Toàn thành phố" or the agency's name
    agency_id: int | None
    generated_at: datetime
    summary: Summary  # rows by agency (city) or by field (one agency)
    by_agency_field: Summary  # rows by agency and field, for the per-agency sheets
    by_channel: Summary
    trend: Sequence[TrendPoint]
    trend_by_agency: Sequence[TrendPoint]
    comments: Sequence[service.Comment]
    untranscribed: service.UntranscribedComments
    reason_labels: Mapping[int, str]
    agency_names: Mapping[int, str]
    field_names: Mapping[int, str]

    @property
    def is_city(self) -> bool:
        return self.agency_id is None

    def reason_label(self, code: int) -> str:
        return self.reason_labels.get(code, f"Lý do mã {code}")


def build_report(
    session: Session,
    *,
    period: Period,
    cipher: PiiCipher,
    now: datetime,
    agency_id: int | None = None,
    reason_labels: Mapping[int, str] | None = None,
    policy: str = "danang_2223",
    comment_limit: int = 30,
) -> ReportData:
    """Gather every figure of a city or agency report for one period."""
    # One set of queries serves the three groupings the report shows.
    main_view = ("agency",) if agency_id is None else ("agency", "field")
    summary, by_agency_field, by_channel = service.summarise_views(
        session,
        period=period,
        views=[main_view, ("agency", "field"), ("channel",)],
        agency_id=agency_id,
        policy=policy,
    )
    months = trailing_months(period, TREND_MONTHS)
    if agency_id is None:
        # One query per agency and month; the city line is their sum.
        trend_by_agency = service.monthly_trend(session, months=months, by_agency=True)
        trend = service.sum_trend(trend_by_agency, months)
    else:
        trend = trend_by_agency = service.monthly_trend(session, months=months, agency_id=agency_id)
    comments = service.recent_comments(
        session, period=period, cipher=cipher, agency_id=agency_id, limit=comment_limit
    )
    untranscribed = service.untranscribed_comments(session, period=period, agency_id=agency_id)
    agency_names = {
        r.key.agency_id: r.agency_name or "" for r in by_agency_field.rows if r.key.agency_id is not None
    }
    field_names = {
        r.key.field_id: r.field_name or "" for r in by_agency_field.rows if r.key.field_id is not None
    }
    if agency_id is not None and agency_id not in agency_names:
        agency_names[agency_id] = service.agency_name(session, agency_id)
    return ReportData(
        period=period,
        scope_label="Toàn thành phố" if agency_id is None else agency_names[agency_id],
        agency_id=agency_id,
        generated_at=now.astimezone(VN_TZ),
        summary=summary,
        by_agency_field=by_agency_field,
        by_channel=by_channel,
        trend=trend,
        trend_by_agency=trend_by_agency,
        comments=comments,
        untranscribed=untranscribed,
        reason_labels=dict(reason_labels or {}),
        agency_names=agency_names,
        field_names=field_names,
    )


# --- HTML --------------------------------------------------------------------------------------------


def _row_label(data: ReportData, row: SummaryRow) -> str:
    if data.is_city:
        return row.agency_name or row.agency_code or "?"
    return row.field_name or row.field_code or "Không rõ lĩnh vực"


def _satisfaction_chart(data: ReportData) -> Markup:
    items = []
    for row in data.summary.rows:
        f = row.figures
        items.append(
            charts.BarItem(
                label=_row_label(data, row),
                value=f.satisfied_rate,
                low=f.satisfied_interval.low if f.satisfied_interval else None,
                high=f.satisfied_interval.high if f.satisfied_interval else None,
                marker=f.weighted.estimate if f.weighted else None,
                note=f"n={number(f.rated)}",
            )
        )
    items.sort(key=lambda i: -1.0 if i.value is None else i.value)
    title = "Tỷ lệ hài lòng theo cơ quan" if data.is_city else "Tỷ lệ hài lòng theo lĩnh vực"
    return charts.horizontal_bars(items, title=title, kind="satisfaction")


def _reasons_chart(figures: Figures, data: ReportData) -> Markup:
    items = [
        charts.BarItem(label=data.reason_label(r.code), value=r.share, note=f"({number(r.count)} ý kiến)")
        for r in sorted(figures.reasons, key=lambda r: -r.count)
    ]
    return charts.horizontal_bars(items, title="Lý do chưa hài lòng", kind="reasons", label_width=380)


def _trend_chart(data: ReportData) -> Markup:
    labels = [p.month.label_vi.replace("Tháng ", "") for p in data.trend]
    series = [charts.Series(data.scope_label, [p.satisfied_rate for p in data.trend])]
    return charts.line_chart(labels, series, title="Diễn biến tỷ lệ hài lòng theo tháng", kind="trend")


def render_html(data: ReportData) -> str:
    """The self-contained HTML report (inline CSS and SVG; opens offline)."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]), trim_blocks=True
    )
    env.filters.update(pct=pct, number=number, signed=signed_points)
    template = env.get_template("report.html.j2")
    return template.render(
        data=data,
        total=data.summary.total,
        satisfaction_chart=_satisfaction_chart(data),
        reasons_chart=_reasons_chart(data.summary.total, data),
        trend_chart=_trend_chart(data),
        channel_labels=CHANNEL_LABELS,
        weighting_paragraph=WEIGHTING_PARAGRAPH,
        row_label=lambda row: _row_label(data, row),
    )


# --- XLSX --------------------------------------------------------------------------------------------

_HEADER_FILL = PatternFill("solid", fgColor="DCE6F1")
_BOLD = Font(bold=True)
_PCT = "0.0%"

SUMMARY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("eligible", "Hồ sơ đã trả kết quả"),
    ("eligible_late_overdue", "Trong đó trễ hẹn, quá hạn"),
    ("called", "Số hồ sơ đã gọi"),
    ("reached", "Số hồ sơ liên lạc được"),
    ("completed", "Số phiếu hoàn thành"),
    ("rated", "Số phiếu có đánh giá"),
    ("satisfied", "Số phiếu hài lòng"),
    ("satisfied_rate", "Tỷ lệ hài lòng (thô)"),
    ("ci_low", "KTC 95% - cận dưới"),
    ("ci_high", "KTC 95% - cận trên"),
    ("weighted", "Tỷ lệ hài lòng gia quyền"),
    ("on_time_rate", "Tỷ lệ hài lòng - hồ sơ đúng hạn"),
    ("late_overdue_rate", "Tỷ lệ hài lòng - hồ sơ trễ hẹn, quá hạn"),
    ("response_rate", "Tỷ lệ phản hồi"),
    ("completion_rate", "Tỷ lệ hoàn thành"),
    ("required_minimum", "Số phiếu tối thiểu theo quy định"),
    ("attainment", "Mức đạt số phiếu tối thiểu"),
    ("previous", "Tỷ lệ hài lòng kỳ trước"),
    ("last_year", "Tỷ lệ hài lòng cùng kỳ năm trước"),
)
_PCT_KEYS = {
    "satisfied_rate",
    "ci_low",
    "ci_high",
    "weighted",
    "on_time_rate",
    "late_overdue_rate",
    "response_rate",
    "completion_rate",
    "attainment",
    "previous",
    "last_year",
}


def _values(f: Figures) -> dict[str, float | int | None]:
    return {
        "eligible": f.eligible,
        "eligible_late_overdue": f.eligible_late_overdue,
        "called": f.called,
        "reached": f.reached,
        "completed": f.completed,
        "rated": f.rated,
        "satisfied": f.satisfied,
        "satisfied_rate": f.satisfied_rate,
        "ci_low": f.satisfied_interval.low if f.satisfied_interval else None,
        "ci_high": f.satisfied_interval.high if f.satisfied_interval else None,
        "weighted": f.weighted.estimate if f.weighted else None,
        "on_time_rate": f.on_time_rate,
        "late_overdue_rate": f.late_overdue_rate,
        "response_rate": f.response_rate,
        "completion_rate": f.completion_rate,
        "required_minimum": f.required_minimum,
        "attainment": f.attainment,
        "previous": f.previous.satisfied_rate if f.previous else None,
        "last_year": f.last_year.satisfied_rate if f.last_year else None,
    }


def _header(ws: Worksheet, row: int, titles: Sequence[str]) -> None:
    for col, title in enumerate(titles, start=1):
        cell = ws.cell(row=row, column=col, value=title)
        cell.font = _BOLD
        cell.fill = _HEADER_FILL
        cell.alignment = Alignment(wrap_text=True, vertical="top")


def _figure_row(
    ws: Worksheet, row: int, lead: Sequence[str | None], f: Figures, reason_codes: Sequence[int]
) -> None:
    col = 1
    for value in lead:
        ws.cell(row=row, column=col, value=value)
        col += 1
    values = _values(f)
    for key, _title in SUMMARY_COLUMNS:
        cell = ws.cell(row=row, column=col, value=values[key])
        if key in _PCT_KEYS:
            cell.number_format = _PCT
        col += 1
    counts = {r.code: r.count for r in f.reasons}
    for code in reason_codes:
        ws.cell(row=row, column=col, value=counts.get(code, 0))
        col += 1


_SHEET_BAD = re.compile(r"[\[\]:*?/\\]")


def _sheet_title(code: str, used: set[str]) -> str:
    base = _SHEET_BAD.sub("-", code)[:28] or "CQ"
    title, n = base, 2
    while title.lower() in used:
        title = f"{base[:25]}~{n}"
        n += 1
    used.add(title.lower())
    return title


def render_xlsx(data: ReportData) -> bytes:
    """The workbook: a summary sheet and one sheet per agency (figures by field, reasons, trend)."""
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Tổng hợp"
    codes = sorted({r.code for r in data.by_agency_field.total.reasons} | set(data.reason_labels))
    ws.cell(row=1, column=1, value=f"Kết quả khảo sát mức độ hài lòng - {data.scope_label}").font = Font(
        bold=True, size=14
    )
    ws.cell(row=2, column=1, value=f"Kỳ báo cáo: {data.period.label_vi}")
    ws.cell(row=3, column=1, value=f"Lập lúc: {data.generated_at:%H:%M ngày %d/%m/%Y}")
    lead = ["Mã cơ quan", "Cơ quan"] if data.is_city else ["Mã lĩnh vực", "Lĩnh vực"]
    titles = [*lead, *(t for _k, t in SUMMARY_COLUMNS), *(f"Lý do: {data.reason_label(c)}" for c in codes)]
    _header(ws, 5, titles)
    row = 6
    for r in data.summary.rows:
        key = [r.agency_code, r.agency_name] if data.is_city else [r.field_code, r.field_name]
        _figure_row(ws, row, key, r.figures, codes)
        row += 1
    _figure_row(ws, row, ["", "Tổng cộng"], data.summary.total, codes)
    for col in range(1, 3):
        ws.cell(row=row, column=col).font = _BOLD
    row += 2
    ws.cell(row=row, column=1, value="Theo kênh khảo sát").font = _BOLD
    _header(ws, row + 1, ["Kênh", "", *(t for _k, t in SUMMARY_COLUMNS)])
    row += 2
    for r in data.by_channel.rows:
        _figure_row(ws, row, [CHANNEL_LABELS.get(r.key.channel or "", r.key.channel), ""], r.figures, [])
        row += 1
    _figure_row(ws, row, ["Kết hợp mọi kênh", ""], data.by_channel.total, [])
    row += 2
    ws.cell(row=row, column=1, value="Về phương pháp gia quyền").font = _BOLD
    note = ws.cell(row=row + 1, column=1, value=WEIGHTING_PARAGRAPH)
    note.alignment = Alignment(wrap_text=True, vertical="top")
    ws.merge_cells(start_row=row + 1, start_column=1, end_row=row + 1, end_column=12)
    ws.row_dimensions[row + 1].height = 150
    _widths(ws, len(titles))

    used = {ws.title.lower()}
    rows_by_agency: dict[int, list[SummaryRow]] = {}
    for r in data.by_agency_field.rows:
        if r.key.agency_id is not None:
            rows_by_agency.setdefault(r.key.agency_id, []).append(r)
    trend_by_agency: dict[int | None, list[TrendPoint]] = {}
    for p in data.trend_by_agency:
        trend_by_agency.setdefault(p.agency_id, []).append(p)
    agency_rows = {r.key.agency_id: r for r in data.summary.rows} if data.is_city else {}
    for agency_id, field_rows in sorted(rows_by_agency.items(), key=lambda kv: kv[1][0].agency_code or ""):
        first = field_rows[0]
        sheet = wb.create_sheet(_sheet_title(first.agency_code or str(agency_id), used))
        sheet.cell(row=1, column=1, value=first.agency_name).font = Font(bold=True, size=13)
        sheet.cell(row=2, column=1, value=f"Kỳ báo cáo: {data.period.label_vi}")
        _header(
            sheet,
            4,
            [
                "Mã lĩnh vực",
                "Lĩnh vực",
                *(t for _k, t in SUMMARY_COLUMNS),
                *(f"Lý do: {data.reason_label(c)}" for c in codes),
            ],
        )
        r_i = 5
        for fr in field_rows:
            _figure_row(sheet, r_i, [fr.field_code, fr.field_name or "Không rõ lĩnh vực"], fr.figures, codes)
            r_i += 1
        agency_total = agency_rows[agency_id].figures if agency_id in agency_rows else data.summary.total
        _figure_row(sheet, r_i, ["", "Cả cơ quan"], agency_total, codes)
        sheet.cell(row=r_i, column=2).font = _BOLD
        r_i += 2
        sheet.cell(row=r_i, column=1, value="Diễn biến theo tháng").font = _BOLD
        _header(sheet, r_i + 1, ["Tháng", "Số phiếu có đánh giá", "Số phiếu hài lòng", "Tỷ lệ hài lòng"])
        r_i += 2
        for p in trend_by_agency.get(agency_id, []):
            sheet.cell(row=r_i, column=1, value=p.month.key)
            sheet.cell(row=r_i, column=2, value=p.rated)
            sheet.cell(row=r_i, column=3, value=p.satisfied)
            sheet.cell(row=r_i, column=4, value=p.satisfied_rate).number_format = _PCT
            r_i += 1
        _widths(sheet, len(SUMMARY_COLUMNS) + 2 + len(codes))
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


def _widths(ws: Worksheet, columns: int) -> None:
    ws.column_dimensions["A"].width = 14
    ws.column_dimensions["B"].width = 36
    for col in range(3, columns + 1):
        ws.column_dimensions[get_column_letter(col)].width = 15
    ws.freeze_panes = "C6" if ws.title == "Tổng hợp" else "C5"
