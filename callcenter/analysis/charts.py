"""Server-side SVG charts for the offline HTML report (no JavaScript, no CDN).

Each function returns a complete ``<svg>`` element as :class:`markupsafe.Markup`; every text that
comes from data is escaped. Charts carry ``role="img"``, a ``<title>`` and ``data-chart`` so that
screen readers and tests can find them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

FONT = "font-family=\"'Segoe UI', 'Noto Sans', 'DejaVu Sans', Arial, sans-serif\""
BAR = "#1f6fb2"
BAR_LOW = "#c0392b"
WEIGHTED = "#e08e0b"
GRID = "#d5dbe1"
TEXT = "#1d2733"


@dataclass(frozen=True)
class BarItem:
    label: str
    value: float | None  # a share in [0, 1]
    low: float | None = None  # Wilson interval, drawn as a whisker
    high: float | None = None
    marker: float | None = None  # a second value (the weighted estimate), drawn as a diamond
    note: str = ""  # shown after the value, e.g. "n=123"


def _pct(value: float) -> str:
    return f"{value * 100:.1f}".replace(".", ",") + "%"


def _open(kind: str, width: int, height: int, title: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" data-chart="{kind}" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" {FONT} font-size="12">',
        f"<title>{escape(title)}</title>",
    ]


def horizontal_bars(
    items: Sequence[BarItem], *, title: str, kind: str, threshold: float | None = None, label_width: int = 260
) -> Markup:
    """One bar per item (a share), with optional interval whiskers, a marker and a threshold line."""
    row_h, top, plot_w = 24, 28, 420
    width = label_width + plot_w + 150
    height = top + row_h * max(1, len(items)) + 30
    x0 = label_width
    parts = _open(kind, width, height, title)
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        x = x0 + tick * plot_w
        parts.append(f'<line x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{height - 24}" stroke="{GRID}"/>')
        parts.append(
            f'<text x="{x:.1f}" y="{height - 8}" text-anchor="middle" fill="{TEXT}">{int(tick * 100)}%</text>'
        )
    if threshold is not None:
        x = x0 + threshold * plot_w
        parts.append(
            f'<line x1="{x:.1f}" y1="{top - 10}" x2="{x:.1f}" y2="{height - 24}" stroke="{BAR_LOW}" '
            f'stroke-dasharray="4 3"/>'
        )
    if not items:
        parts.append(f'<text x="{x0}" y="{top + 14}" fill="{TEXT}">Chưa có dữ liệu</text>')
    for i, item in enumerate(items):
        y = top + i * row_h
        label = item.label if len(item.label) <= 42 else item.label[:40] + "…"
        parts.append(
            f'<text x="{x0 - 8}" y="{y + 15}" text-anchor="end" fill="{TEXT}">{escape(label)}</text>'
        )
        if item.value is None:
            parts.append(f'<text x="{x0 + 4}" y="{y + 15}" fill="#77818c">không có câu trả lời</text>')
            continue
        colour = BAR_LOW if threshold is not None and item.value < threshold else BAR
        w = max(0.5, item.value * plot_w)
        parts.append(
            f'<rect class="bar" x="{x0}" y="{y + 4}" width="{w:.1f}" height="{row_h - 8}" fill="{colour}">'
            f"<title>{escape(item.label)}: {_pct(item.value)}</title></rect>"
        )
        if item.low is not None and item.high is not None:
            xl, xh, ym = x0 + item.low * plot_w, x0 + item.high * plot_w, y + row_h / 2
            parts.append(
                f'<path class="ci" d="M{xl:.1f},{ym - 5:.1f}v10M{xl:.1f},{ym:.1f}H{xh:.1f}'
                f'M{xh:.1f},{ym - 5:.1f}v10" stroke="{TEXT}" fill="none"/>'
            )
        if item.marker is not None:
            xm, ym = x0 + item.marker * plot_w, y + row_h / 2
            parts.append(
                f'<path class="weighted" d="M{xm:.1f},{ym - 6:.1f}l5,6l-5,6l-5,-6z" fill="{WEIGHTED}" '
                f'stroke="#fff"/>'
            )
        note = f" {escape(item.note)}" if item.note else ""
        parts.append(
            f'<text x="{x0 + plot_w + 8}" y="{y + 15}" fill="{TEXT}">{_pct(item.value)}{note}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


@dataclass(frozen=True)
class Series:
    name: str
    points: Sequence[float | None]  # one per x label; None = no answer that month
    colour: str = BAR


def line_chart(labels: Sequence[str], series: Sequence[Series], *, title: str, kind: str) -> Markup:
    """Shares over time (one line per series); gaps where a month has no answer."""
    left, top, plot_w, plot_h = 48, 20, 640, 220
    width, height = left + plot_w + 170, top + plot_h + 50
    parts = _open(kind, width, height, title)
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        y = top + plot_h * (1 - tick)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="{GRID}"/>')
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="{TEXT}">{int(tick * 100)}%</text>'
        )
    n = len(labels)
    step = plot_w / max(1, n - 1) if n > 1 else 0.0

    def x_of(i: int) -> float:
        return left + (i * step if n > 1 else plot_w / 2)

    for i, label in enumerate(labels):
        parts.append(
            f'<text x="{x_of(i):.1f}" y="{top + plot_h + 18}" text-anchor="middle" fill="{TEXT}">'
            f"{escape(label)}</text>"
        )
    for s_index, s in enumerate(series):
        segments: list[list[tuple[float, float]]] = [[]]
        for i, value in enumerate(s.points):
            if value is None:
                if segments[-1]:
                    segments.append([])
                continue
            segments[-1].append((x_of(i), top + plot_h * (1 - value)))
        for seg in segments:
            if len(seg) > 1:
                d = "M" + "L".join(f"{x:.1f},{y:.1f}" for x, y in seg)
                parts.append(f'<path class="line" d="{d}" fill="none" stroke="{s.colour}" stroke-width="2"/>')
            for x, y in seg:
                parts.append(f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{s.colour}"/>')
        ly = top + 14 + s_index * 18
        parts.append(
            f'<rect x="{left + plot_w + 14}" y="{ly - 9}" width="12" height="12" fill="{s.colour}"/>'
            f'<text x="{left + plot_w + 32}" y="{ly + 1}" fill="{TEXT}">{escape(s.name)}</text>'
        )
    if not any(v is not None for s in series for v in s.points):
        parts.append(f'<text x="{left + 10}" y="{top + 20}" fill="{TEXT}">Chưa có dữ liệu</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
