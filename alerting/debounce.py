"""Debounce and recovery, from what dq_alerts already holds.

Per alert key the sent (non-suppressed) rows form episodes: a run of firing
rows, then a run of resolved rows, and so on.  Per channel we know when it
last succeeded in the current episode.  Hence:

- breached, key not firing       -> fire to every channel (a new episode);
- breached, key firing           -> channels whose last success in this
  episode is older than the quiet period (or never succeeded) get it again;
  none due -> a suppressed row;
- clear, key firing              -> "resolved" to every channel, once;
- clear, key resolved            -> retry only channels the resolution was
  tried on and never reached; otherwise nothing.

A failed channel is therefore retried at the next evaluation, and a working
one is not spammed.  Sending happens before the row is written: a crash in
between re-sends (at least once), never loses.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

from alerting.model import FIRING, RESOLVED, Key, kind_and_state


@dataclass
class KeyState:
    state: str | None = None  # firing | resolved | None (never sent)
    ok_at: dict[str, dt.datetime] = field(default_factory=dict)  # channel -> last success
    tried: set[str] = field(default_factory=set)  # channels tried in this episode


def key_states(sent_rows: list[dict]) -> dict[Key, KeyState]:
    """``sent_rows``: dq_alerts rows with suppressed false, oldest first."""
    states: dict[Key, KeyState] = {}
    for r in sent_rows:
        kind, state = kind_and_state(r["kind"])
        key = (kind, r["subject"], r["region_code"] or "", r["period"] or "")
        st = states.setdefault(key, KeyState())
        if st.state != state:  # a new episode: earlier successes no longer count
            st.state, st.ok_at, st.tried = state, {}, set()
        for c in json.loads(r["channels"] or "[]"):
            st.tried.add(c["channel"])
            if c.get("ok"):
                st.ok_at[c["channel"]] = r["raised_at"]
    return states


@dataclass(frozen=True)
class Plan:
    state: str  # firing | resolved
    channels: tuple[str, ...]  # to send to; empty + suppressed = a suppressed row
    suppressed: bool = False


def plan(breached: bool, st: KeyState | None, channels: list[str], quiet_seconds: float,
         now: dt.datetime) -> Plan | None:
    """What to do with one observation; None = nothing to write."""
    st = st or KeyState()
    if breached:
        if st.state != FIRING:
            return Plan(FIRING, tuple(channels))
        due = tuple(c for c in channels
                    if c not in st.ok_at or (now - st.ok_at[c]).total_seconds() >= quiet_seconds)
        return Plan(FIRING, due) if due else Plan(FIRING, (), suppressed=True)
    if st.state == FIRING:
        return Plan(RESOLVED, tuple(channels))
    if st.state == RESOLVED:
        missing = tuple(c for c in channels if c in st.tried and c not in st.ok_at)
        return Plan(RESOLVED, missing) if missing else None
    return None
