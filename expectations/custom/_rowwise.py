"""Apply a per-row predicate to the columns a map metric receives."""
from __future__ import annotations

from collections.abc import Callable

import pandas as pd


def _missing(value) -> bool:
    flag = pd.isna(value)
    return isinstance(flag, bool) and flag  # arrays (list cells) are never "missing" here


def values(series: pd.Series) -> list:
    """The column's values with every kind of missing (None, NaN, NaT, NA) as None."""
    return [None if _missing(v) else v for v in series.tolist()]


def rowwise(passes: Callable[..., bool], *columns: pd.Series) -> pd.Series:
    """Boolean Series (True = the row meets the expectation) aligned with the domain."""
    rows = zip(*(values(c) for c in columns))
    return pd.Series([bool(passes(*row)) for row in rows], index=columns[0].index, dtype=bool)


def frame_columns(frame: pd.DataFrame) -> list[pd.Series]:
    """A multicolumn domain's columns, in column_list order."""
    return [frame[c] for c in frame.columns]
