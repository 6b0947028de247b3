"""What every stream generator shares: the seeded random source, the time
window, the reference data and id counters.

One ``random.Random`` per stream, seeded from (seed, stream index), so that
a stream's data does not shift when another stream's generator changes.
"""
from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field

import reference as reference_data
from datagen import timebase as tb

STREAM_SEEDS = {"people": 1, "enrolment": 2, "contribution": 3, "settlement": 4,
                "settlement_list": 5, "filing": 6, "defects": 7, "delivery": 8}


@dataclass
class Context:
    seed: int
    persons: int
    months: list[tb.Month]
    defect_rate: float
    ref: reference_data.Reference
    counters: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.first_day = self.months[0].first_day
        self.last_day = self.months[-1].last_day
        # as_of: the last millisecond of the last month, Beijing time.
        self.as_of = tb.at(self.last_day + 1, 0) - 1
        self.years = sorted({m.year for m in self.months})
        self.counties = [c.code for c in self.ref.counties]
        self.city_of = {c.code: c.pooling_code for c in self.ref.counties}
        self.cities = [c.code for c in self.ref.cities]
        self.province = self.ref.province.code
        pop = {(p["county_code"], p["year"]): p["registered_population"]
               for p in self.ref.population}
        self.local_codes = frozenset(self.counties) | frozenset(self.cities) | {self.province}
        self.institution_codes = frozenset(i["fixmedins_code"] for i in self.ref.institutions)
        # regions where the 石嘴山-only long-term-care matter applies (F03 defects)
        self.ltc_regions = frozenset(r for r in self.local_codes
                                     if "LTC_ASSESS" in self.ref.applicable_matters(r))
        year = self.months[0].year
        self.county_weights = [pop.get((c, year), pop.get((c, 2023), 100_000))
                               for c in self.counties]

    def rng(self, stream: str) -> random.Random:
        return random.Random(self.seed * 1_000 + STREAM_SEEDS[stream])

    def next_id(self, name: str) -> int:
        n = self.counters.get(name, 0) + 1
        self.counters[name] = n
        return n

    def scaled(self, base_count: float) -> int:
        """A defect count: the base scaled by --defect-rate, at least 3 when
        the rate is positive (so every kind shows up in small runs)."""
        if self.defect_rate <= 0:
            return 0
        return max(3, round(base_count * self.defect_rate))


def new_uuid(rng: random.Random) -> str:
    """A version-4 UUID drawn from the seeded source (never os.urandom)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))
