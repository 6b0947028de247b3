"""The report's charts, for notebooks too.

Each function takes a warehouse URI (``duckdb:///…`` or
``bigquery://PROJECT/DATASET``), a DuckDB path or connection, and
returns ``report.svg.Figure`` objects, which Jupyter displays inline::

    from report import charts
    charts.trend_chart("duckdb:///var/warehouse.duckdb", "I08", "640100", 2023)
    charts.peers_chart(con, "I08", "640000", "2023-11")
    charts.quality_chart(con, "640100", "2023-11")

The report calls the same functions with its open connection.
"""

from __future__ import annotations

from collections.abc import Sequence

from report import data
from report.data import Period, Region
from report.svg import PURPLE, Figure, Series, bar_chart, line_chart
from transforms.indicators.catalog import BY_CODE


def _title(code: str) -> tuple[str, str]:
    ind = BY_CODE.get(code)
    return (f"{code} {ind.name_zh}", ind.name_en) if ind else (code, "")


def _status(meets) -> str:
    return "" if meets is None else "met" if meets else "missed"


def trend_figures(
    rows: Sequence[dict], region_code: str, codes: Sequence[str], highlight: Period | None = None
) -> dict[str, Figure]:
    """One trend figure per code from ``data.trend`` rows: MONTH line, YTD
    dashed line, target step line; x = every month the rows hold."""
    months = sorted({r["period_end"] for r in rows if r["period_type"] == "MONTH"})
    index = {m: i for i, m in enumerate(months)}
    labels = [f"{m.month}月" for m in months]
    by_code: dict[str, dict] = {}
    for r in rows:
        if r["period_end"] in index:
            by_code.setdefault(r["indicator_code"], {})[(r["period_type"], r["period_end"])] = r
    at = index.get(highlight.end) if highlight else None
    figures = {}
    for code in codes:
        got = by_code.get(code, {})

        def col(period_type: str, field: str, got=got) -> list:
            return [(got.get((period_type, m)) or {}).get(field) for m in months]

        series = [
            Series("月度 month", col("MONTH", "value"), kind="month"),
            Series("累计 YTD", col("YTD", "value"), colour=PURPLE, dashed=True, kind="ytd"),
        ]
        title, subtitle = _title(code)
        figures[code] = line_chart(
            title,
            subtitle,
            labels,
            series,
            target=col("MONTH", "target"),
            highlight=at,
            attrs={"data-chart": "trend", "data-indicator": code, "data-region": region_code},
        )
    return figures


def trend_chart(source, indicator: str, region: str, year: int | None = None) -> Figure:
    """An indicator's months of one year (default: the latest year held) for a region."""
    with data.reading(source) as con:
        if year is None:
            year = data.rows(
                con,
                "SELECT max(year(period_end)) AS y FROM indicator_values WHERE pipeline = ?"
                " AND region_code = ?",
                [data.NIGHTLY, region],
            )[0]["y"]
        rows = data.trend(con, region, year or 0, indicator)
    return trend_figures(rows, region, [indicator])[indicator]


def peers_figures(
    rows: Sequence[dict],
    peers: Sequence[Region],
    codes: Sequence[str],
    period_type: str,
    highlight: str | None = None,
) -> dict[str, Figure]:
    """One bar chart per code: the regions side by side, coloured met / missed."""
    got = {(r["indicator_code"], r["region_code"]): r for r in rows}
    figures = {}
    for code in codes:
        # Best first (highest, or lowest for a <= target such as C01); no value last.
        best_low = BY_CODE[code].direction == "<=" if code in BY_CODE else False
        ordered = sorted(peers, key=lambda p, code=code: _sort_key(got.get((code, p.code)), best_low))
        cells = [got.get((code, p.code)) or {} for p in ordered]
        targets = {c.get("target") for c in cells if c.get("target") is not None}
        title, subtitle = _title(code)
        figures[code] = bar_chart(
            title,
            subtitle,
            [p.name for p in ordered],
            [c.get("value") for c in cells],
            target=targets.pop() if len(targets) == 1 else None,
            statuses=[_status(c.get("meets_target")) for c in cells],
            highlight=next((i for i, p in enumerate(ordered) if p.code == highlight), None),
            attrs={"data-chart": "peers", "data-indicator": code, "data-period-type": period_type},
        )
    return figures


def _sort_key(row: dict | None, best_low: bool) -> tuple:
    value = (row or {}).get("value")
    if value is None:
        return (1, 0.0)
    return (0, value if best_low else -value)


def peers_chart(
    source, indicator: str, region: str, period: str, period_type: str = "MONTH"
) -> Figure:
    """The region's counties (a province: its pooling regions) for one period."""
    with data.reading(source) as con:
        r = data.region(con, region)
        peers = data.peers(con, r)
        rows = data.values(
            con, [p.code for p in peers] or [r.code], Period.parse(period), period_type
        )
    return peers_figures(rows, peers, [indicator], period_type, highlight=r.code)[indicator]


def quality_figure(results: Sequence[dict], period_type: str, top: int = 10) -> Figure:
    """Failed records per rule, the rules failing most first."""
    worst = [r for r in results if r["failed"]][:top]
    return bar_chart(
        f"失败最多的规则 · {period_type}",
        "Rules failing most (failed records)",
        [f"{r['rule_id']} {r['stream']}" for r in worst],
        [r["failed"] for r in worst],
        as_percent=False,
        attrs={"data-chart": "quality", "data-period-type": period_type},
    )


def quality_chart(
    source, region: str, period: str, period_type: str = "YTD", top: int = 10
) -> Figure:
    with data.reading(source) as con:
        results = data.rule_results(con, region, Period.parse(period), period_type)
    return quality_figure(results, period_type, top)
