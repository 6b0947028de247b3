"""What both warehouse engines share: the run bookkeeping contract and the
checks on a publish's arguments. Engines implement ``_close_run`` and the
writing itself."""
from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping

from warehouse.scope import Scope
from warehouse.tables import TABLES, table


def instant(value: dt.datetime | None, what: str) -> dt.datetime | None:
    """A naive time would be read in some machine's zone: refuse it."""
    if value is not None and value.tzinfo is None:
        raise ValueError(f"{what} must be timezone-aware (a UTC instant), got {value!r}")
    return value


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def check_publish(tables: Mapping, scopes: Mapping[str, Scope]) -> None:
    """Unknown tables, and keyed / scoped tables written the wrong way, fail
    before anything is written."""
    for name in [*tables, *scopes]:
        table(name)
    for name in tables:
        if TABLES[name].write == "scope" and name not in scopes:
            raise ValueError(f"{name} needs a Scope: which earlier rows does it replace?")
    for name in scopes:
        if TABLES[name].write != "scope":
            raise ValueError(f"{name} is replaced by key, not by scope")


def abandoned_error(max_age: dt.timedelta) -> str:
    """pipeline_runs.error of a run marked abandoned."""
    return (f"abandoned: still running {max_age.total_seconds() / 3600:g} h after it started"
            " (its process died or was killed); marked by a later run")


class RunLog:
    """pipeline_runs bookkeeping common to both engines. Engines also
    implement ``abandon_stale_runs(max_age) -> [run_id]`` (batch rows left
    ``running`` longer than max_age become ``abandoned``) and
    ``run_statuses(run_ids) -> {run_id: status}``."""

    def _close_run(self, run_id, status, finished_at, error) -> None:
        raise NotImplementedError

    def finish_run(
        self, run_id: str, status: str = "succeeded", finished_at: dt.datetime | None = None
    ) -> None:
        if status not in ("succeeded", "failed"):
            raise ValueError(f"finish status must be succeeded or failed, not {status!r}")
        self._close_run(run_id, status, instant(finished_at, "finished_at") or now(), None)

    def fail_run(
        self, run_id: str, error: BaseException | str, finished_at: dt.datetime | None = None
    ) -> None:
        if isinstance(error, BaseException):
            error = f"{type(error).__name__}: {error}"
        self._close_run(run_id, "failed", instant(finished_at, "finished_at") or now(), error)


def calendar_json(sources: Mapping[int, str] | None) -> str | None:
    """pipeline_runs.calendar_sources text: {2027: "config"} -> '{"2027": "config"}'."""
    return None if sources is None else json.dumps({str(y): s for y, s in sorted(sources.items())})
