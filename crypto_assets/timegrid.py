"""The UTC hour and day grid shared by the price clients, the transforms and the assets (no dependencies)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

HOUR_NS = 3_600_000_000_000
_ONE_DAY = dt.timedelta(days=1)


def consecutive_runs(days: Iterable[dt.date]) -> list[list[dt.date]]:
    """Runs of consecutive days of ``days``, in their order (sort them first for the longest runs)."""
    runs: list[list[dt.date]] = []
    for day in days:
        if runs and day - runs[-1][-1] == _ONE_DAY:
            runs[-1].append(day)
        else:
            runs.append([day])
    return runs
