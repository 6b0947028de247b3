"""经办事项 / 备案 cases, each delivered as a sequence of events sharing its
case_id: SUBMITTED -> ACCEPTED -> COMPLETED or REJECTED, sometimes a later
COMPLETED event carrying the 好差评 rating.

Online channels take submissions at any hour, holidays included; windows,
kiosks, banks, phone and mail only on working days (调休 Saturdays count,
via transforms.timeutil).  Completion days come from the INDICATORS.md
deadline(d, N) with N the promised working days of the matters.csv row
that applies to the case's region: most on time, some late, some rejected,
a few left open past their deadline; cases still running at as_of stay open.
"""
from __future__ import annotations

import math

from datagen import codes
from datagen import timebase as tb
from datagen.context import Context, new_uuid

INSTANT_CHANNELS = frozenset({"ONLINE", "MOBILE", "SMS", "KIOSK"})
ANY_HOUR_CHANNELS = frozenset({"ONLINE", "MOBILE", "SMS"})
RATINGS = ((5, 86), (4, 9), (3, 3), (2, 1), (1, 1))


class FilingGenerator:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.rng = ctx.rng("filing")
        self.records: list[dict] = []
        self.after_as_of: list[dict] = []
        self.late_share = 0.015 * ctx.defect_rate
        self.pending: list[tuple] = []  # completions that happen after as_of
        self._applicable = {}
        self.matters = list(codes.MATTER_VOLUME)
        self.matter_w = list(codes.MATTER_VOLUME.values())
        self.ltc_regions = ["640200"] + [c for c in ctx.counties if ctx.city_of[c] == "640200"]

    def applicable(self, region: str) -> dict:
        if region not in self._applicable:
            self._applicable[region] = self.ctx.ref.applicable_matters(region)
        return self._applicable[region]

    def _region(self) -> str:
        rng, ctx = self.rng, self.ctx
        r = rng.random()
        if r < 0.85:
            return rng.choices(ctx.counties, weights=ctx.county_weights)[0]
        return rng.choice(ctx.cities) if r < 0.97 else ctx.province

    def generate(self) -> list[dict]:
        ctx, rng = self.ctx, self.rng
        for m in ctx.months:
            days = m.last_day - m.first_day + 1
            season = 1 + 0.15 * math.cos(2 * math.pi * (m.month - 2) / 12)
            expected = ctx.persons * 0.25 / 12 * season
            for _ in range(max(0, round(rng.gauss(expected, math.sqrt(expected))))):
                self._case(m.first_day + rng.randrange(days))
        return self.records

    def _case(self, day: int) -> None:
        ctx, rng = self.ctx, self.rng
        matter = rng.choices(self.matters, weights=self.matter_w)[0]
        region = rng.choice(self.ltc_regions) if matter == "LTC_ASSESS" else self._region()
        row = self.applicable(region)[matter]
        promised = row["promised_working_days"]
        table = codes.CHANNELS_ONLINE_MATTER if row["online_capable"] else \
            codes.CHANNELS_OFFLINE_MATTER
        channel = rng.choices(*zip(*table))[0]
        if channel in ANY_HOUR_CHANNELS:
            secs = rng.randrange(7 * 3600, 23 * 3600) if rng.random() < 0.95 else \
                rng.randrange(0, 24 * 3600)
        else:
            day = tb.deadline(day, 0)  # offices open on working days only
            secs = rng.randrange(8 * 3600 + 1800, 17 * 3600 + 1800)
        if day > ctx.last_day:
            return
        sub = tb.at(day, secs)
        case = {
            "case_id": f"{region}{tb.ymd(day)}{ctx.next_id('case'):07d}", "matter_code": matter,
            "insu_admdvs": region, "channel": channel,
            "cross_province": matter == "OFFSITE_FILING" and rng.random() < 0.7,
            "submitted_time": sub, "promised_working_days": promised,
        }
        r = rng.random()
        outcome = "REJECTED" if r < 0.03 else "OPEN" if r < 0.04 else "LATE" if r < 0.09 \
            else "ON_TIME"
        if outcome == "ON_TIME":
            k = 0 if promised == 0 else min(promised, int(rng.expovariate(2.5 / promised)))
            done_day = tb.deadline(day, k)
        elif outcome == "LATE":
            done_day = tb.deadline(day, promised + rng.randint(1, 6))
        else:
            done_day = tb.deadline(day, min(promised, rng.randrange(0, 2)))
        if done_day == day:
            instant = promised == 0 and channel in INSTANT_CHANNELS
            spent = rng.randrange(60, 1200) if instant else rng.randrange(300, 3 * 3600)
            done = min(sub + spent * 1000, tb.at(day, 24 * 3600 - 1))
        else:
            done = tb.at(done_day, rng.randrange(9 * 3600, 17 * 3600 + 1800))
        accepted = sub + rng.randrange(10_000, max(20_000, min(4 * tb.HOUR_MS, (done - sub) // 2)))
        # (status, event_time, completed_time, rating) in delivery order
        events = [("SUBMITTED", sub + rng.randrange(1, 120) * 1000, None, None),
                  ("ACCEPTED", accepted, None, None)]
        if outcome != "OPEN":  # an open case is never completed: overdue at as_of
            status = "REJECTED" if outcome == "REJECTED" else "COMPLETED"
            t = done + rng.randrange(1, 300) * 1000
            if rng.random() < self.late_share:
                t = done + rng.randrange(49 * tb.HOUR_MS, 10 * tb.DAY_MS)
            rating = None
            if rng.random() < (0.6 if status == "COMPLETED" else 0.1):
                rating = rng.choices(*zip(*RATINGS))[0] if status == "COMPLETED" else \
                    rng.randint(1, 3)
            if rating is not None and rng.random() < 0.5:  # rated a while after completion
                events.append((status, t, done, None))
                events.append((status, t + rng.randrange(10 * tb.MINUTE_MS, 40 * tb.HOUR_MS),
                               done, rating))
            else:
                events.append((status, t, done, rating))
        last = 0
        for status, t, completed, rating in events:
            t = max(t, last + 1000)  # strictly increasing: the last event is the latest
            last = t
            if t > ctx.as_of:  # not delivered by as_of: the case is still open then
                if completed is not None:
                    self.pending.append((case, status, t, completed, rating))
                return
            self._event(case, status, t, completed, rating)

    def deliver_some_after_as_of(self) -> None:
        """A few completions emitted after as_of (a run at as_of ignores them)."""
        n = min(len(self.pending), self.ctx.scaled(0.001 * self.ctx.counters.get("case", 0)))
        for case, status, t, completed, rating in self.rng.sample(self.pending, n):
            rec = self._event(case, status, t, completed, rating)
            self.after_as_of.append({"case_id": case["case_id"], "event_id": rec["event_id"]})

    def _event(self, case: dict, status: str, event_time: int, completed, rating) -> dict:
        rec = {"event_id": new_uuid(self.rng), "event_time": event_time, **case,
               "status": status, "completed_time": completed, "rating": rating}
        self.records.append(rec)
        return rec


def generate(ctx: Context) -> tuple[list[dict], list[dict]]:
    gen = FilingGenerator(ctx)
    gen.generate()
    gen.deliver_some_after_as_of()
    return gen.records, gen.after_as_of
