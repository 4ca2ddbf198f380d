"""Case-insensitive "contains" matching of names, the same on SQLite and PostgreSQL."""

from __future__ import annotations

# Compared as ``lower(column) LIKE :pattern ESCAPE '\'``: PostgreSQL's LIKE is case-sensitive,
# SQLite's is not, lower() on both sides makes them agree.
LIKE_ESCAPE = "\\"


def contains_pattern(text: str) -> str:
    """A LIKE pattern matching names that contain ``text`` (its ``%`` and ``_`` taken literally)."""
    escaped = text.lower().replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
