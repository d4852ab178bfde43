"""Stored times as aware UTC datetimes, typed for the columns that cannot be NULL."""

from __future__ import annotations

import datetime as dt

from facegate.storage.models import as_utc


def aware(value: dt.datetime) -> dt.datetime:
    """``as_utc`` for a NOT NULL column. ``as_utc`` also takes nullable columns, so its result
    is typed ``datetime | None``; this form keeps the non-null type for the checker."""
    out = as_utc(value)
    if out is None:  # as_utc returns None only for None, which this signature excludes
        raise TypeError("aware() needs a datetime, not None")
    return out
