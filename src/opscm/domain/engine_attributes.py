"""Reading the ``EngineAttributes`` lists of requests: names are unique, values present."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .errors import ValidationFailed


def attribute_map(attributes: Iterable[Mapping[str, str]] | None, *, allowed: Iterable[str]) -> dict[str, str]:
    """Turn ``[{"Name": n, "Value": v}]`` into ``{n: v}``, refusing unknown or repeated names."""
    allowed = tuple(allowed)
    result: dict[str, str] = {}
    for attribute in attributes or ():
        name = attribute.get("Name")
        if not name:
            raise ValidationFailed("Every engine attribute needs a Name.")
        if name not in allowed:
            raise ValidationFailed(
                f"Engine attribute {name} is not supported here; supported: {', '.join(allowed)}."
            )
        if name in result:
            raise ValidationFailed(f"Engine attribute {name} is given more than once.")
        result[name] = attribute.get("Value") or ""
    return result


def first_of(values: Mapping[str, str], *names: str) -> str | None:
    """The value of the first of ``names`` present (old and new attribute spellings)."""
    present = [name for name in names if name in values]
    if len(present) > 1:
        raise ValidationFailed(f"Give only one of {' / '.join(present)}.")
    return values[present[0]] if present else None
