"""Maintenance and backup windows: ``HH:MM`` (daily) or ``Ddd:HH:MM`` (weekly), one hour long, UTC."""

from __future__ import annotations

from datetime import datetime, timedelta

from .errors import ValidationFailed

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
WINDOW_LENGTH = timedelta(hours=1)


def _parse(window: str) -> tuple[int | None, int, int]:
    parts = window.split(":")
    try:
        if len(parts) == 3:
            day, hour, minute = DAYS.index(parts[0]), int(parts[1]), int(parts[2])
        elif len(parts) == 2:
            day, hour, minute = None, int(parts[0]), int(parts[1])
        else:
            raise ValueError(window)
    except ValueError:
        raise ValidationFailed(f"'{window}' is not a window of the form HH:MM or Ddd:HH:MM.") from None
    if not (0 <= hour < 24 and 0 <= minute < 60):
        raise ValidationFailed(f"'{window}' is not a valid time of day.")
    return day, hour, minute


def current_window_start(window: str, now: datetime) -> datetime | None:
    """Start of the window that ``now`` falls in, or None when it falls in none."""
    day, hour, minute = _parse(window)
    start = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    for candidate in (start, start - timedelta(days=1)):  # a window may start before midnight
        if day is not None and candidate.weekday() != day:
            continue
        if candidate <= now < candidate + WINDOW_LENGTH:
            return candidate
    return None


def check_window(window: str) -> None:
    _parse(window)


def next_window_start(window: str, now: datetime) -> datetime:
    """Start of the window ``now`` falls in, else of the next one to come."""
    day, hour, minute = _parse(window)
    # From yesterday: a window that started before midnight may still be open.
    first = now.replace(hour=hour, minute=minute, second=0, microsecond=0) - timedelta(days=1)
    for days in range(9):
        candidate = first + timedelta(days=days)
        if (day is None or candidate.weekday() == day) and now < candidate + WINDOW_LENGTH:
            return candidate
    raise AssertionError("a weekly window recurs within 8 days")
