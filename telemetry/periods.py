"""Hours and days in UTC: the periods roll-ups and usage are kept by."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def hour_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def day_of(moment: datetime) -> datetime:
    return hour_of(moment).replace(hour=0)


def next_hour(moment: datetime) -> datetime:
    """The first hour boundary at or after ``moment``."""
    start = hour_of(moment)
    return start if start == moment else start + HOUR


def next_day(moment: datetime) -> datetime:
    """The first midnight (UTC) at or after ``moment``."""
    start = day_of(moment)
    return start if start == moment else start + DAY
