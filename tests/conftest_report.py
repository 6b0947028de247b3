"""Helpers for tests/test_report.py: a hand-made warehouse, a headless
Chromium (installed from Debian if missing) and a tiny DevTools client.

Not a conftest.py on purpose: only the report tests pay for Chromium.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import fcntl
import json
import os
import random
import shutil
import subprocess
import tempfile
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

import pyarrow as pa

CHROMIUM = Path("/usr/bin/chromium")
APT_PACKAGES = ("chromium", "fonts-noto-cjk")


# --- Chromium installation ----------------------------------------------------


def _apt(args: list[str], log: list[str]) -> bool:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", APT_LISTCHANGES_FRONTEND="none")
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    # Wait for a dpkg lock held by someone else instead of failing at once.
    cmd = [*sudo, "apt-get", "-o", "DPkg::Lock::Timeout=600", *args]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired:
        log.append(f"$ {' '.join(cmd)} -> timed out after 30 min")
        return False
    log.append(
        f"$ {' '.join(cmd)} -> {proc.returncode}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    )
    return proc.returncode == 0


def ensure_chromium() -> Path:
    """/usr/bin/chromium, installing Debian's chromium + fonts-noto-cjk when absent.

    CI gets Chromium only this way, so: non-interactive, waits for the dpkg
    lock, retries (mirrors hiccup), and serialises concurrent test workers
    with a file lock. Raises RuntimeError with apt's output on failure.
    """
    override = os.environ.get("YIBAO_CHROMIUM")
    if override:
        return Path(override)
    lock_path = Path(tempfile.gettempdir()) / "yibao-chromium-install.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if CHROMIUM.exists() and _has_cjk_font():
            return CHROMIUM
        if not shutil.which("apt-get"):
            raise RuntimeError("chromium is missing and there is no apt-get (set YIBAO_CHROMIUM)")
        if os.geteuid() != 0 and not shutil.which("sudo"):
            raise RuntimeError("chromium is missing and apt-get needs root (no sudo)")
        log: list[str] = []
        for attempt in range(3):
            if attempt:
                time.sleep(5 * attempt)
                _apt(["-y", "-f", "install"], log)  # repair a half-finished install
            _apt(["update", "-q"], log)  # one unreachable list need not stop the install
            if _apt(["install", "-y", "-q", "--no-install-recommends", *APT_PACKAGES], log):
                break
        if not CHROMIUM.exists():
            raise RuntimeError("could not install chromium:\n" + "\n".join(log))
        if shutil.which("fc-cache"):
            subprocess.run(["fc-cache", "-f"], capture_output=True, check=False)
        return CHROMIUM


def _has_cjk_font() -> bool:
    if shutil.which("dpkg-query"):
        status = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", "fonts-noto-cjk"], capture_output=True, text=True
        ).stdout
        if status.strip() == "install ok installed":
            return True
    if shutil.which("fc-list"):
        return bool(
            subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True).stdout.strip()
        )
    return False


# --- a hand-made warehouse ------------------------------------------------------

REGIONS = [  # code, name, level, parent, pooling
    ("640000", "宁夏回族自治区", "province", None, None),
    ("610000", "陕西省", "province", None, None),  # another province: never a peer
    ("640100", "银川市", "pooling", "640000", "640100"),
    ("640104", "兴庆区", "county", "640100", "640100"),
    ("640105", "西夏区", "county", "640100", "640100"),
    ("640106", "金凤区", "county", "640100", "640100"),
    ("640200", "石嘴山市", "pooling", "640000", "640200"),
    ("640202", "大武口区", "county", "640200", "640200"),
    ("640205", "惠农区", "county", "640200", "640200"),
]
COUNTIES = [r for r in REGIONS if r[2] == "county"]
RULES = (
    [(f"E{i:02d}", "enrolment", "blocking" if i in (5, 6) else "quality") for i in range(1, 10)]
    + [
        (f"T{i:02d}", "settlement", "blocking" if i in (2, 3, 9) else "quality")
        for i in range(1, 10)
    ]
    + [(f"F{i:02d}", "filing", "blocking") for i in range(1, 5)]
)
STREAMS = ("enrolment", "contribution", "settlement", "settlement_list", "filing")
MONTHS = list(range(1, 12))  # January..November 2023
RUN_ID = "11111111-2222-4333-8444-555555555555"
STREAM_RUN_ID = "99999999-8888-4777-8666-555555555555"
AS_OF = dt.datetime(2023, 11, 30, 16, 0, tzinfo=dt.UTC)


def _counties_in(region: str) -> list[str]:
    """Components add up from counties (INDICATORS.md: roll-ups add, then divide)."""
    return [c[0] for c in COUNTIES if region in (c[0], c[4], "640000")]


def _month_end(month: int) -> dt.date:
    return (dt.date(2023, month, 28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)


def _components(rnd, code: str, county: str, month: int) -> tuple[Decimal, Decimal]:
    """County-month numerator / denominator; some 0/0, money with cents."""
    if code == "I21" and county == "640106" and month in (3, 6, 9, 11):
        return Decimal(0), Decimal(0)  # no filings: value null, no verdict
    if code == "I19" and month == 11 and county.startswith("6401"):
        return Decimal(0), Decimal(0)  # a whole pooling region without data: a gap
    if code in ("R01", "R02", "R03", "R04", "R05", "I17"):  # money sums
        den = Decimal(rnd.randint(500_000_00, 900_000_00)) / 100
        return (den * Decimal(rnd.uniform(0.45, 0.95))).quantize(Decimal("0.01")), den
    den = rnd.randint(200, 2000)
    lo = {"I07": 0.97, "I08": 0.97, "I10": 0.95, "I13": 0.9, "I14": 0.96, "I24": 0.9}.get(code, 0.6)
    return Decimal(min(den, round(den * rnd.uniform(lo, 1.0)))), Decimal(den)


def _value_rows(pipeline: str, run_id: str) -> list[dict]:
    from transforms.indicators.catalog import INDICATORS

    rnd = random.Random(7 if pipeline == "nightly" else 8)
    targets = {
        "I17": 0.5,
        "I22": 0.7,
        "I04": 0.8,
        "I25": 0.8,
        "S02": 0.8,
        "I26": 0.95,
        "I09": 0.95,
        "R02": 0.7,
        "R03": 0.5,
        "R04": 0.6,
        "R05": 0.7,
        "S01": 0.7,
        "S05": 0.5,
        "C01": 0.05,
        "R01": 0.8,
    }
    month_parts: dict[tuple, tuple[Decimal, Decimal]] = {}
    for ind in INDICATORS:
        for county, *_ in COUNTIES:
            for m in MONTHS:
                month_parts[(ind.code, county, m)] = _components(rnd, ind.code, county, m)
    members = {r[0]: _counties_in(r[0]) for r in REGIONS if r[0] != "610000"}
    rows = []
    for ind in INDICATORS:
        target = targets.get(ind.code, 0.99 if ind.code in ("I07", "I08") else 1.0)
        for region, counties in members.items():
            level = next(r[2] for r in REGIONS if r[0] == region)
            for m in MONTHS:
                for period_type, months in (("MONTH", [m]), ("YTD", range(1, m + 1))):
                    num = sum(month_parts[(ind.code, c, k)][0] for c in counties for k in months)
                    den = sum(month_parts[(ind.code, c, k)][1] for c in counties for k in months)
                    value = float(num / den) if den else None
                    meets = (
                        None
                        if value is None
                        else (value <= target if ind.direction == "<=" else value >= target)
                    )
                    rows.append(
                        {
                            "indicator_code": ind.code,
                            "region_code": region,
                            "region_level": level,
                            "period_type": period_type,
                            "period_start": dt.date(2023, m if period_type == "MONTH" else 1, 1),
                            "period_end": _month_end(m),
                            "numerator": num,
                            "denominator": den,
                            "value": value,
                            "target": target,
                            "direction": ind.direction,
                            "meets_target": meets,
                            "as_of": AS_OF,
                            "pipeline": pipeline,
                            "components": json.dumps({"cur_sum": str(num)})
                            if ind.code == "C01"
                            else None,
                        }
                    )
    if pipeline == "stream":  # streams write DAY and MONTH only, for the latest month
        rows = [r for r in rows if r["period_type"] == "MONTH" and r["period_end"].month == 11]
    return rows


def _quality_rows() -> tuple[list[dict], list[dict]]:
    rnd = random.Random(11)
    per_month = {
        (rule, c[0], m): (
            checked := rnd.randint(100, 900),
            rnd.choice([0, 0, 1, 3, rnd.randint(0, checked // 20)]),
        )
        for rule, _, _ in RULES
        for c in COUNTIES
        for m in MONTHS
    }
    results, failures = [], []
    for region, _, level, _, _ in REGIONS:
        if region == "610000":
            continue
        counties = _counties_in(region)
        for rule, stream, _ in RULES:
            for m in MONTHS:
                for period_type, months in (("MONTH", [m]), ("YTD", range(1, m + 1))):
                    checked = sum(per_month[(rule, c, k)][0] for c in counties for k in months)
                    failed = sum(per_month[(rule, c, k)][1] for c in counties for k in months)
                    results.append(
                        {
                            "rule_id": rule,
                            "stream": stream,
                            "region_code": region,
                            "region_level": level,
                            "period_type": period_type,
                            "period_start": dt.date(2023, m if period_type == "MONTH" else 1, 1),
                            "period_end": _month_end(m),
                            "checked": checked,
                            "failed": failed,
                            "pass_rate": 1 - failed / checked if checked else None,
                            "pipeline": "nightly",
                        }
                    )
    for (rule, county, m), (_, failed) in per_month.items():
        stream = next(s for r, s, _ in RULES if r == rule)
        for i in range(min(failed, 2)):
            failures.append(
                {
                    "stream": stream,
                    "record_key": f"{rule}-{county}-{m:02d}-{i}",
                    "rule_id": rule,
                    "region_code": county,
                    "business_date": dt.date(2023, m, 10 + i),
                    "details": json.dumps(
                        {"certno": "640104********123X", "value": f"<{rule}>"}, ensure_ascii=False
                    ),
                    "run_id": RUN_ID,
                    "pipeline": "nightly",
                }
            )
    return results, failures


def _arrow(name: str, rows: list[dict]) -> pa.Table:
    from warehouse.tables import arrow_schema

    schema = arrow_schema(name)
    return pa.Table.from_pylist(rows, schema=pa.schema([f for f in schema if f.name in rows[0]]))


def build_warehouse(path: str | Path) -> Path:
    """A DuckDB warehouse published the way the pipeline publishes: a
    succeeded nightly run (Jan–Nov 2023) and a running stream job whose
    MONTH rows for November differ (the report must ignore them)."""
    from transforms.indicators.catalog import INDICATORS
    from warehouse.duckdb_store import DuckDBWarehouse
    from warehouse.scope import Scope

    results, failures = _quality_rows()
    dims = {
        "dim_region": _arrow(
            "dim_region",
            [
                dict(zip(("region_code", "name", "level", "parent_code", "pooling_code"), r))
                for r in REGIONS
            ],
        ),
        "dim_indicator": _arrow(
            "dim_indicator",
            [
                {
                    "indicator_code": i.code,
                    "name_zh": i.name_zh,
                    "name_en": i.name_en,
                    "plan_number": i.plan_number,
                    "direction": i.direction,
                    "family": i.family,
                }
                for i in INDICATORS
            ],
        ),
        "dim_quality_rule": _arrow(
            "dim_quality_rule",
            [
                {"rule_id": r, "stream": s, "severity": sev, "description": f"rule {r} <checks>"}
                for r, s, sev in RULES
            ],
        ),
    }
    started = AS_OF + dt.timedelta(hours=2)
    with DuckDBWarehouse(path) as wh:
        wh.ensure_schema([i.code for i in INDICATORS])
        wh.begin_run(
            RUN_ID, "nightly", "FnApiRunner", started, AS_OF, {"months": "2023-01..2023-11"}
        )
        wh.publish(
            RUN_ID,
            {
                **dims,
                "indicator_values": _arrow("indicator_values", _value_rows("nightly", RUN_ID)),
                "quality_rule_results": _arrow("quality_rule_results", results),
                "quality_failures": _arrow("quality_failures", failures),
                "pipeline_run_streams": _arrow(
                    "pipeline_run_streams",
                    [
                        {
                            "run_id": RUN_ID,
                            "stream": s,
                            "read": 1000 * (i + 1) + 7,
                            "accepted": 1000 * (i + 1),
                            "duplicates": 5,
                            "dead_lettered": 2,
                            "late_dropped": 0,
                            "quality_failures": 40 + i,
                        }
                        for i, s in enumerate(STREAMS)
                    ],
                ),
            },
            {"quality_failures": Scope(values={"stream": ["enrolment", "settlement", "filing"]})},
        )
        wh.finish_run(RUN_ID, finished_at=started + dt.timedelta(minutes=9))
        wh.begin_run(STREAM_RUN_ID, "stream", "FnApiRunner", started, None, {})
        wh.publish(
            STREAM_RUN_ID,
            {"indicator_values": _arrow("indicator_values", _value_rows("stream", STREAM_RUN_ID))},
        )
    return Path(path)


# --- headless Chromium over the DevTools protocol ----------------------------------

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


class Browser:
    """One Chromium process; ``visit`` loads a page and reports what happened."""

    def __init__(self, binary: Path, workdir: Path):
        self.profile = workdir / "profile"
        self.log = open(workdir / "chromium.log", "wb")  # closed in close()
        self.proc = subprocess.Popen(
            [str(binary), *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.port = self._port()

    def _port(self) -> int:
        # Port 0 = Chromium picks a free one and writes it here: no clashes in CI.
        active = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.proc.returncode}")
            with contextlib.suppress(FileNotFoundError, ValueError, IndexError):
                return int(active.read_text().split()[0])
            time.sleep(0.1)
        raise RuntimeError("chromium did not open its DevTools port in 60 s")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def _devtools(self, path: str, method: str = "GET") -> bytes:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method)
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.read()

    def visit(self, url: str, script: str, screenshots: dict[str, Path]) -> dict:
        """Load ``url`` in a new tab; returns the script's value, console errors,
        requested URLs, the fonts that drew the <h1>, and the URL the tab showed
        when the DevTools domains were enabled (``enabled_on``: about:blank).
        ``screenshots``: {"full": path, "top": path} -> PNG of the page / first screen."""
        # A fresh about:blank tab per visit: domains must be enabled before a
        # file: page is there (see _visit), and Log.enable would replay the log
        # entries of the tab's previous page.
        tab = json.loads(self._devtools("/json/new?about:blank", method="PUT"))
        try:
            return asyncio.run(_visit(tab["webSocketDebuggerUrl"], url, script, screenshots))
        finally:
            self._devtools(f"/json/close/{tab['id']}")


class _Cdp:
    """Sequential DevTools calls; events arriving meanwhile are kept."""

    def __init__(self, ws):
        self.ws, self.last_id, self.events = ws, 0, []

    async def _next(self, timeout: float) -> dict:
        return json.loads(await asyncio.wait_for(self.ws.recv(), timeout))

    async def call(self, method: str, timeout: float = 60, **params) -> dict:
        self.last_id += 1
        await self.ws.send(json.dumps({"id": self.last_id, "method": method, "params": params}))
        while True:
            msg = await self._next(timeout)
            if msg.get("id") == self.last_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    async def wait_for(self, event: str, timeout: float = 60) -> None:
        while not any(e["method"] == event for e in self.events):
            msg = await self._next(timeout)
            if "method" in msg:
                self.events.append(msg)


async def _visit(ws_url: str, url: str, script: str, screenshots: dict[str, Path]) -> dict:
    import websockets

    async with websockets.connect(ws_url, max_size=None, open_timeout=30) as ws:
        cdp = _Cdp(ws)
        # Every domain is enabled while the tab still shows about:blank. CSS.enable
        # on a loaded page makes DevTools fetch that page again for its style
        # sheets; for a file: page Chromium 150 blocks this fetch (file: URLs are
        # unique origins) and logs "Unsafe attempt to load URL file:///…/x.html
        # from frame with URL file:///…/x.html" as the page's console error.
        enabled_on = (await cdp.call("Page.getFrameTree"))["frameTree"]["frame"]["url"]
        for domain in ("Page", "Runtime", "Log", "Network", "DOM", "CSS"):
            await cdp.call(f"{domain}.enable")
        await cdp.call(
            "Emulation.setDeviceMetricsOverride",
            width=1280,
            height=900,
            deviceScaleFactor=1,
            mobile=False,
        )
        await cdp.call("Page.navigate", url=url)
        await cdp.wait_for("Page.loadEventFired")
        value = (
            await cdp.call(
                "Runtime.evaluate", expression=script, returnByValue=True, awaitPromise=True
            )
        )["result"].get("value")
        # Which installed font really drew the Chinese title (tofu would mean none).
        root = (await cdp.call("DOM.getDocument"))["root"]["nodeId"]
        h1 = (await cdp.call("DOM.querySelector", nodeId=root, selector="h1"))["nodeId"]
        fonts = (await cdp.call("CSS.getPlatformFontsForNode", nodeId=h1))["fonts"] if h1 else []
        if "top" in screenshots:
            shot = await cdp.call("Page.captureScreenshot", format="png")
            screenshots["top"].write_bytes(base64.b64decode(shot["data"]))
        if "full" in screenshots:
            size = (await cdp.call("Page.getLayoutMetrics"))["cssContentSize"]
            shot = await cdp.call(
                "Page.captureScreenshot",
                format="png",
                captureBeyondViewport=True,
                clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
            )
            screenshots["full"].write_bytes(base64.b64decode(shot["data"]))
    errors = []
    for e in cdp.events:
        p = e.get("params", {})
        if e["method"] == "Runtime.exceptionThrown":
            errors.append(p["exceptionDetails"].get("text", "exception"))
        elif e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            errors.append(" ".join(str(a.get("value", a.get("description"))) for a in p["args"]))
        elif e["method"] == "Log.entryAdded" and p["entry"]["level"] == "error":
            errors.append(p["entry"]["text"])
    requests = [
        e["params"]["request"]["url"]
        for e in cdp.events
        if e["method"] == "Network.requestWillBeSent"
    ]
    return {
        "value": value,
        "errors": errors,
        "requests": requests,
        "h1_fonts": [f["familyName"] for f in fonts],
        "enabled_on": enabled_on,
    }


if __name__ == "__main__":  # manual run: python -m tests.conftest_report
    print(ensure_chromium())
