"""Tiny inline-SVG charts: a trend line and a horizontal bar chart.

Built as text so the report opens offline (no JavaScript, no CDN) and a
notebook shows the same figure. Styling uses presentation attributes, not
page CSS, so a figure is self-contained wherever it is pasted.

Every data point drawn is an element with class ``mark``; the root ``<svg>``
carries ``data-count`` = the number of data points, so a test can check in
the rendered DOM that nothing was lost.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape

from report import fmt

FONT = (
    '"Noto Sans CJK SC", "Source Han Sans SC", "Microsoft YaHei", "PingFang SC",'
    ' "Hiragino Sans GB", sans-serif'
)
BLUE, PURPLE, RED, GREEN, GREY, LIGHT = (
    "#1f6feb",
    "#8250df",
    "#cf222e",
    "#1a7f37",
    "#57606a",
    "#d0d7de",
)
STATUS_COLOURS = {"met": GREEN, "missed": RED, "": BLUE}
WIDTH = 320


@dataclass
class Figure:
    """An SVG chart: shows itself in Jupyter and drops into Jinja unescaped."""

    svg: str
    count: int  # data points drawn as marks
    title: str = ""

    def _repr_svg_(self) -> str:
        return self.svg

    def _repr_html_(self) -> str:
        return self.svg

    def __html__(self) -> str:  # markupsafe protocol: Jinja inserts it as is
        return self.svg

    def __str__(self) -> str:
        return self.svg

    def save(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            f.write('<?xml version="1.0" encoding="UTF-8"?>\n' + self.svg)


@dataclass
class Series:
    name: str
    values: Sequence[float | None]
    colour: str = BLUE
    dashed: bool = False
    kind: str = "month"  # class of its marks, e.g. "mark month"
    tips: Sequence[str] = field(default_factory=list)


def nice_ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    """Round tick values covering [lo, hi] (1-2-2.5-5 steps)."""
    if hi - lo < 1e-12:
        pad = abs(hi) * 0.05 or 0.05
        lo, hi = lo - pad, hi + pad
    raw_step = (hi - lo) / n
    step = 10 ** math.floor(math.log10(raw_step))
    for m in (1, 2, 2.5, 5, 10):
        if raw_step <= step * m:
            step *= m
            break
    start, end = math.floor(lo / step + 1e-9) * step, math.ceil(hi / step - 1e-9) * step
    return [start + i * step for i in range(round((end - start) / step) + 1)]


def _pct_tick(ticks: list[float]) -> Callable[[float], str]:
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1
    digits = 0 if step * 100 >= 1 - 1e-9 else 1 if step * 1000 >= 1 - 1e-9 else 2
    return lambda v: f"{v * 100:.{digits}f}%"


def _count_tick(v: float) -> str:
    return f"{v:,.0f}" if abs(v - round(v)) < 1e-9 else f"{v:,.1f}"


def _svg(width: int, height: int, body: list[str], attrs: dict[str, str], title: str) -> str:
    extra = "".join(f' {k}="{escape(str(v))}"' for k, v in attrs.items())
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}"{extra}'
        f' style="font-family: {escape(FONT)}; font-size: 10px">' + "".join(body) + "</svg>"
    )


def _header(title: str, subtitle: str) -> list[str]:
    """Chinese title, English subtitle below (cut to the width: the report shows it in full)."""
    if len(subtitle) > 60:
        subtitle = subtitle[:59] + "…"
    return [
        f'<text x="4" y="13" font-size="12" font-weight="600" fill="#1f2328">{escape(title)}'
        f'</text><text x="4" y="25" font-size="9.5" fill="{GREY}">{escape(subtitle)}</text>'
    ]


def _no_data(body: list[str], x: float, y: float) -> None:
    """The 'no data' label on a white plate, so a target line never runs through it."""
    body.append(
        f'<rect class="no-data" x="{x - 42:.1f}" y="{y - 11:.1f}" width="84" height="15"'
        f' fill="#fff" opacity="0.9"/><text x="{x:.1f}" y="{y:.1f}" text-anchor="middle"'
        f' fill="{GREY}">无数据 no data</text>'
    )


def rate_axis(values: Sequence[float]) -> tuple[list[float], bool]:
    """Ticks of a rate axis and whether it is broken (does not start at zero).

    A rate axis starts at zero so that 99.0 % against 99.8 % does not look like
    a collapse; only when every value sits in the top third of the range from
    zero (e.g. I07 at 99 %) is the axis zoomed, and then it is drawn broken (≈)
    so nobody reads the bottom of the chart as zero."""
    lo, hi = min(values, default=0), max(values, default=1)
    if lo < 0 or hi <= 0 or lo < hi * 2 / 3:
        return nice_ticks(min(lo, 0), max(hi, 0)), False
    ticks = nice_ticks(lo, hi)
    return ticks, ticks[0] > 0


def _axis_break(body: list[str], x: float, y: float) -> None:
    """A zig-zag on the y axis just above its foot, and the words saying so."""
    body.append(
        f'<path class="axis-break" d="M{x - 5:.1f},{y - 3:.1f}l3,-3l4,6l3,-3" stroke="{GREY}"'
        f' fill="#fff" stroke-width="1"/><text class="axis-break-label" x="{x + 6:.1f}"'
        f' y="{y - 2:.1f}" font-size="8.5" fill="{GREY}">≈ 纵轴未从 0 开始</text>'
    )


def line_chart(
    title: str,
    subtitle: str,
    x_labels: Sequence[str],
    series: Sequence[Series],
    target: Sequence[float | None] | None = None,
    highlight: int | None = None,
    attrs: dict[str, str] | None = None,
) -> Figure:
    """Values per x (months) as lines with point marks, the target as a red dashed step line."""
    height, left, right, top, bottom = 184, 44, 8, 46, 20
    pw, ph = WIDTH - left - right, height - top - bottom
    points = [v for s in series for v in s.values if v is not None]
    targets = [t for t in (target or []) if t is not None]
    count = len(points)
    body = _header(title, subtitle)
    legend = "".join(
        f'<tspan fill="{s.colour}">{"┅" if s.dashed else "●"} {escape(s.name)}  </tspan>'
        for s in series
    )
    body.append(
        f'<text x="4" y="38" fill="{GREY}">{legend}<tspan fill="{RED}">┄ 目标 target</tspan></text>'
    )
    n = len(x_labels)
    band = pw / max(n, 1)

    def x(i: int) -> float:
        return left + band * (i + 0.5)

    ticks, broken = rate_axis(points + targets)
    lo, hi = ticks[0], ticks[-1]

    def y(v: float) -> float:
        return top + (hi - v) / (hi - lo) * ph

    if highlight is not None and 0 <= highlight < n:
        body.append(
            f'<rect class="period" x="{left + band * highlight:.1f}" y="{top}"'
            f' width="{band:.1f}" height="{ph}" fill="#fff8c5"/>'
        )
    tick_text = _pct_tick(ticks)
    for t in ticks:
        body.append(
            f'<line x1="{left}" x2="{left + pw}" y1="{y(t):.1f}" y2="{y(t):.1f}"'
            f' stroke="{LIGHT}" stroke-width="0.5"/>'
            f'<text x="{left - 4}" y="{y(t) + 3:.1f}" text-anchor="end" fill="{GREY}">'
            f"{tick_text(t)}</text>"
        )
    for i, label in enumerate(x_labels):
        body.append(
            f'<text x="{x(i):.1f}" y="{height - 6}" text-anchor="middle" fill="{GREY}">'
            f"{escape(label)}</text>"
        )
    if target:  # a step per x: targets may change during the year
        d = "".join(
            f"M{x(i) - band / 2:.1f},{y(t):.1f}H{x(i) + band / 2:.1f}"
            for i, t in enumerate(target)
            if t is not None
        )
        body.append(
            f'<path class="target" d="{d}" stroke="{RED}" stroke-width="1.2"'
            ' stroke-dasharray="4 3" fill="none"/>'
        )
    for s in series:
        d, pen = "", "M"
        for i, v in enumerate(s.values):
            if v is None:
                pen = "M"  # a gap in the data is a gap in the line
                continue
            d += f"{pen}{x(i):.1f},{y(v):.1f}"
            pen = "L"
        dash = ' stroke-dasharray="3 2"' if s.dashed else ""
        body.append(
            f'<path class="line {s.kind}" d="{d}" stroke="{s.colour}" stroke-width="1.5"'
            f' fill="none"{dash}/>'
        )
        for i, v in enumerate(s.values):
            if v is None:
                continue
            tip = s.tips[i] if i < len(s.tips) else f"{x_labels[i]} {s.name} {fmt.pct(v)}"
            fill = "#fff" if s.dashed else s.colour
            body.append(
                f'<circle class="mark {s.kind}" cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.6"'
                f' fill="{fill}" stroke="{s.colour}" stroke-width="1.2"'
                f' data-value="{fmt.raw(v)}"><title>{escape(tip)}</title></circle>'
            )
    if broken:
        _axis_break(body, left, top + ph)
    if not points:  # above the middle, where a lone target line is drawn
        _no_data(body, left + pw / 2, top + ph / 4)
    attrs = {**(attrs or {}), "data-count": str(count), "data-axis-from": fmt.raw(float(lo))}
    if broken:
        attrs["data-axis-broken"] = "true"
    return Figure(_svg(WIDTH, height, body, attrs, title), count, title)


def bar_chart(
    title: str,
    subtitle: str,
    labels: Sequence[str],
    values: Sequence[float | None],
    target: float | None = None,
    statuses: Sequence[str] | None = None,
    highlight: int | None = None,
    as_percent: bool = True,
    attrs: dict[str, str] | None = None,
) -> Figure:
    """One horizontal bar per label from zero (values may be negative), target as a red line."""
    row, left, right, top, bottom = 17, 86, 48, 34, 18
    pw = WIDTH - left - right
    height = top + row * max(len(labels), 1) + bottom
    body = _header(title, subtitle)
    present = [v for v in values if v is not None]
    ends = [0.0, *present, *([target] if target is not None else [])]
    ticks = nice_ticks(min(ends), max(ends))
    lo, hi = ticks[0], ticks[-1]

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * pw

    tick_text = _pct_tick(ticks) if as_percent else _count_tick
    show = fmt.pct if as_percent else fmt.count
    bottom_y = top + row * len(labels)
    for t in ticks:
        body.append(
            f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top}" y2="{bottom_y}"'
            f' stroke="{LIGHT}" stroke-width="0.5"/>'
            f'<text x="{x(t):.1f}" y="{bottom_y + 12}" text-anchor="middle" fill="{GREY}">'
            f"{tick_text(t)}</text>"
        )
    for i, (label, v) in enumerate(zip(labels, values)):
        ry = top + row * i
        if i == highlight:
            body.append(
                f'<rect class="period" x="0" y="{ry}" width="{WIDTH}" height="{row}"'
                ' fill="#fff8c5"/>'
            )
        weight = ' font-weight="600"' if i == highlight else ""
        body.append(
            f'<text x="{left - 4}" y="{ry + 12}" text-anchor="end" fill="#1f2328"{weight}>'
            f"{escape(label)}</text>"
        )
        if v is None:
            body.append(f'<text x="{x(0) + 3:.1f}" y="{ry + 12}" fill="{GREY}">{fmt.DASH}</text>')
            continue
        status = statuses[i] if statuses else ""
        x0, x1 = sorted((x(0), x(v)))
        body.append(
            f'<rect class="mark bar {status}" x="{x0:.1f}" y="{ry + 3}"'
            f' width="{max(x1 - x0, 1):.1f}" height="{row - 6}"'
            f' fill="{STATUS_COLOURS.get(status, BLUE)}" data-value="{fmt.raw(v)}">'
            f"<title>{escape(label)} {show(v)}</title></rect>"
        )
        body.append(f'<text x="{x1 + 3:.1f}" y="{ry + 12}" fill="#1f2328">{show(v)}</text>')
    if target is not None and labels:
        body.append(
            f'<line class="target" x1="{x(target):.1f}" x2="{x(target):.1f}" y1="{top - 2}"'
            f' y2="{bottom_y}" stroke="{RED}" stroke-width="1.2" stroke-dasharray="4 3"/>'
        )
    if not present:
        _no_data(body, left + pw / 2, top + 12)
    attrs = {**(attrs or {}), "data-count": str(len(present))}
    return Figure(_svg(WIDTH, height, body, attrs, title), len(present), title)
