"""Times as SQLite's stored text: the form SQLAlchemy's SQLite ``DateTime`` writes, so the write path's plain SQL
and Core reads and range filters see the same values (the text orders as the moments do)."""

from __future__ import annotations

from datetime import UTC, datetime


def sqlite_time(value: datetime) -> str:
    """The text form SQLAlchemy's SQLite DateTime uses, so Core reads and range filters see the same values."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def sqlite_time_or_none(value: datetime | None) -> str | None:
    return None if value is None else sqlite_time(value)


def read_sqlite_time(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def read_sqlite_time_or_none(text: str | None) -> datetime | None:
    return None if text is None else read_sqlite_time(text)
