"""Input validation driven by the botocore model: one recursive walk over shape and value.

Every constraint the model states is checked (required, type, length, value range,
pattern, enum) and reported the way AWS words it::

    1 validation error detected: Value 'a b' at 'nodeName' failed to satisfy
    constraint: Member must satisfy regular expression pattern: ^[\\-\\p{Alnum}_:.]+$

Conventions (AWS's, as its services answer):

* paths are lowerCamel member names joined by ``.``; an item of a list of structures
  is ``tags.1.member.key`` (1-based), a value of a map of structures
  ``attributes.<key>.member.x``;
* items of a list of scalars are reported once for the list, listing every
  constraint of the item shape: ``Value '[a b, c]' at 'tagKeys' failed to satisfy
  constraint: Member must satisfy constraint: [Member must have length less than or
  equal to 128, ...]``; maps likewise with ``Map keys must satisfy constraint: [...]``
  and ``Map value must satisfy constraint: [...]``;
* a value whose shape is (or contains) a ``sensitive`` shape is never echoed: the
  entry reads ``Value at 'engineAttributes.1.member.value' failed to ...``, as AWS
  does for sensitive members; long values are cut at :data:`MAX_VALUE_CHARS`;
* a JSON value of the wrong type is a ``Member must be of type <type>`` entry
  (``true`` is not an integer, ``1.0`` is not an integer, ``1`` is not a string);
* a string holding NUL or an unpaired surrogate (``"\\u0000"``, ``"\\ud800"`` in JSON) is
  refused wherever it is (no store keeps NUL, no encoder writes a lone surrogate): the entry
  never shows the value, and its other constraints are not checked;
* members the shape does not know are ignored, as AWS ignores them.

String lengths count Unicode code points (Smithy's definition).  Integers must fit in
32 bits (``long``: 64 bits).

A request is first given to :func:`fit`, a check made once per shape that passes or refuses a
value without building paths or messages (AssociateNode: 8 µs against 17); only a request it
refuses is walked, to say why.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from botocore.model import OperationModel, Shape

from .errors import ApiError
from .patterns import compile_pattern, is_linear

__all__ = [
    "MAX_VALUE_CHARS",
    "MAX_REPORTED_ERRORS",
    "check_input",
    "validated_input",
    "validation_errors",
    "validation_message",
]

MAX_VALUE_CHARS = 256
"""Longest rendering of a value in a message; longer ones end with ``...``."""

MAX_REPORTED_ERRORS = 100
"""Entries listed in one message (and rendered at all); the count in front is always the full count."""

PATTERN_TIMEOUT = 2.0
"""Seconds a single pattern match may take before the value counts as not matching."""

_INT_RANGES = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_SPECIAL_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_SCALARS = frozenset({"string", "integer", "long", "float", "double", "boolean", "timestamp", "blob"})
_NOT_NULL = "Member must not be null"
# Patterns every string satisfies (the model's way of saying "any text").
_MATCH_ANYTHING = frozenset({"(?s).*", "[\\s\\S]*"})
_UNSAFE_TEXT = "Member must not contain NUL characters or unpaired surrogates"
# In a str decoded from JSON, a surrogate code point is always an unpaired one.
_UNSAFE_CHARACTERS = re.compile("[\x00\ud800-\udfff]")
_MISSING = object()


def _is_unsafe(text: str) -> bool:
    # An ASCII str (known without a scan) has no surrogates, and a NUL is found by memchr: the
    # pattern's scan costs ~50 instructions a character (a node's public key: ~20 K).
    if text.isascii():
        return "\x00" in text
    return _UNSAFE_CHARACTERS.search(text) is not None


def member_path(path: str, member_name: str) -> str:
    """``path`` extended by a member, lowerCamel as AWS writes it."""
    name = member_name[:1].lower() + member_name[1:]
    return f"{path}.{name}" if path else name


def _item_path(path: str, key: object) -> str:
    return f"{path}.{key}.member" if path else f"{key}.member"


# -- rendering values -----------------------------------------------------------------


def _pieces(value: Any) -> Iterator[str]:
    """Java ``toString``-like rendering: ``[a, b]``, ``{k=v}``, ``true``, ``null``."""
    if value is None:
        yield "null"
    elif isinstance(value, bool):
        yield "true" if value else "false"
    elif isinstance(value, str):
        yield value
    elif isinstance(value, list):
        yield "["
        for index, item in enumerate(value):
            if index:
                yield ", "
            yield from _pieces(item)
        yield "]"
    elif isinstance(value, dict):
        yield "{"
        for index, (key, item) in enumerate(value.items()):
            yield (", " if index else "") + f"{key}="
            yield from _pieces(item)
        yield "}"
    else:
        yield str(value)


def _render(value: Any) -> str:
    out: list[str] = []
    size = 0
    for piece in _pieces(value):
        out.append(piece)
        size += len(piece)
        if size > MAX_VALUE_CHARS:
            return _UNSAFE_CHARACTERS.sub("\ufffd", "".join(out)[:MAX_VALUE_CHARS]) + "..."
    return _UNSAFE_CHARACTERS.sub("\ufffd", "".join(out))


def _is_sensitive(shape: Shape, _seen: frozenset[str] = frozenset()) -> bool:
    """Whether the shape or anything inside it is marked ``sensitive``."""
    if shape.metadata.get("sensitive"):
        return True
    if shape.name in _seen:
        return False
    seen = _seen | {shape.name}
    if shape.type_name == "structure":
        return any(_is_sensitive(member, seen) for member in shape.members.values())
    if shape.type_name == "list":
        return _is_sensitive(shape.member, seen)
    if shape.type_name == "map":
        return _is_sensitive(shape.key, seen) or _is_sensitive(shape.value, seen)
    return False


def _entry(shape: Shape, value: Any, path: str, constraint: str) -> str:
    if value is None:
        shown = "Value null"
    elif _is_sensitive(shape) or constraint == _UNSAFE_TEXT:
        shown = "Value"
    else:
        shown = f"Value '{_render(value)}'"
    # A map key is part of the path: it may be the unsafe text itself.
    return f"{shown} at '{_UNSAFE_CHARACTERS.sub(chr(0xFFFD), path)}' failed to satisfy constraint: {constraint}"


# -- scalar constraints ---------------------------------------------------------------


_CONSTRAINTS: dict[tuple[str, str], list[tuple[str, Callable[[Any], bool]]]] = {}


def _constraints(shape: Shape) -> list[tuple[str, Callable[[Any], bool]]]:
    """The constraints of a scalar shape, in AWS's order, as ``(text, predicate)``; made once
    per shape (a named shape of the model carries its constraints)."""
    key = (shape.name, shape.type_name)
    found = _CONSTRAINTS.get(key)
    if found is None:
        found = _CONSTRAINTS[key] = _make_constraints(shape)
    return found


def _make_constraints(shape: Shape) -> list[tuple[str, Callable[[Any], bool]]]:
    meta = shape.metadata
    kind = shape.type_name
    checks: list[tuple[str, Callable[[Any], bool]]] = []
    if kind in ("string", "blob", "integer", "long", "float", "double"):
        measure, size = ("length", len) if kind in ("string", "blob") else ("value", _identity)
        if "max" in meta:
            high = meta["max"]
            checks.append((f"Member must have {measure} less than or equal to {high}", lambda v: not size(v) > high))
        if "min" in meta:
            low = meta["min"]
            checks.append((f"Member must have {measure} greater than or equal to {low}", lambda v: not size(v) < low))
    if kind == "string" and "pattern" in meta:
        compiled = compile_pattern(meta["pattern"])
        text = f"Member must satisfy regular expression pattern: {meta['pattern']}"
        if meta["pattern"] in _MATCH_ANYTHING:  # most string shapes: listed, nothing to match
            checks.append((text, lambda v: True))
        else:
            # A linear match needs no timeout, whose own clock costs more than the match.
            timeout = None if is_linear(meta["pattern"]) else PATTERN_TIMEOUT
            checks.append((text, lambda v: _pattern_matches(compiled, v, timeout)))
    if kind == "string" and "enum" in meta:
        allowed = frozenset(meta["enum"])
        checks.append((f"Member must satisfy enum value set: [{', '.join(meta['enum'])}]", lambda v: v in allowed))
    return checks


_MEMBERS: dict[str, tuple[tuple[str, str, Shape, bool], ...]] = {}


def _members(shape: Shape) -> tuple[tuple[str, str, Shape, bool], ...]:
    """A structure's members as ``(name, wire name, shape, required)``; made once per shape
    (botocore's shape properties cost more than the checks themselves)."""
    found = _MEMBERS.get(shape.name)
    if found is None:
        required = set(shape.required_members)
        found = _MEMBERS[shape.name] = tuple(
            (name, member.serialization.get("name", name), member, name in required)
            for name, member in shape.members.items()
        )
    return found


def _identity(value: Any) -> Any:
    return value


def _pattern_matches(compiled: Any, value: str, timeout: float | None) -> bool:
    try:
        # concurrent=False: the regex module would release the GIL around each match (a few µs)
        # and then wait to take it back, up to the 5 ms switch interval while a thread runs Python:
        # on the event loop, that wait is every request's.
        if timeout is None:
            return compiled.fullmatch(value, concurrent=False) is not None
        return compiled.fullmatch(value, timeout=timeout, concurrent=False) is not None
    except TimeoutError:
        return False


def _coerce_scalar(shape: Shape, value: Any) -> Any:
    """The Python value of a JSON scalar for the shape, or ``_MISSING`` if mistyped."""
    kind = shape.type_name
    if kind == "string":
        return value if isinstance(value, str) else _MISSING
    if kind == "boolean":
        return value if isinstance(value, bool) else _MISSING
    if kind in _INT_RANGES:
        low, high = _INT_RANGES[kind]
        ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
        return value if ok else _MISSING
    if kind in ("float", "double"):
        if isinstance(value, str):
            return _SPECIAL_FLOATS.get(value, _MISSING)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return value if ok else _MISSING
    if kind == "timestamp":
        return _timestamp(value)
    if kind == "blob":
        if not isinstance(value, str):
            return _MISSING
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return _MISSING
    raise AssertionError(kind)


def _timestamp(value: Any) -> Any:
    """Epoch seconds (number) or an ISO 8601 string, as an aware UTC datetime."""
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.strip())
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return parsed.astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        pass
    return _MISSING


# -- the walk ---------------------------------------------------------------------------


class _Walk:
    def __init__(self) -> None:
        self.errors: list[str] = []  # the first MAX_REPORTED_ERRORS entries
        self.count = 0  # all of them: the rest are counted, never rendered

    def error(self, shape: Shape, value: Any, path: str, constraint: str) -> None:
        self.count += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(_entry(shape, value, path, constraint))

    def wrong_type(self, shape: Shape, value: Any, path: str) -> Any:
        self.error(shape, value, path, f"Member must be of type {shape.type_name}")
        return _MISSING

    def value(self, shape: Shape, value: Any, path: str) -> Any:
        """Check one non-null value; return its cleaned form (``_MISSING`` if mistyped)."""
        kind = shape.type_name
        if kind == "structure":
            if shape.is_document_type:
                return value
            if not isinstance(value, dict):
                return self.wrong_type(shape, value, path)
            return self.structure(shape, value, path)
        if kind == "list":
            if not isinstance(value, list):
                return self.wrong_type(shape, value, path)
            self.size(shape, value, path)
            if shape.member.type_name in _SCALARS:
                return self.scalar_items(shape, shape.member, value, path, "Member", enumerate(value, 1))
            return [self.item(shape.member, item, _item_path(path, index)) for index, item in enumerate(value, 1)]
        if kind == "map":
            if not isinstance(value, dict):
                return self.wrong_type(shape, value, path)
            self.size(shape, value, path)
            return self.map(shape, value, path)
        cleaned = self.scalar(shape, value, path)
        if cleaned is not _MISSING:
            for text, ok in _constraints(shape):
                if not ok(cleaned):
                    self.error(shape, value, path, text)
        return cleaned

    def scalar(self, shape: Shape, value: Any, path: str) -> Any:
        """The Python value of a JSON scalar, or ``_MISSING`` (reported) if mistyped or unsafe text."""
        cleaned = _coerce_scalar(shape, value)
        if cleaned is _MISSING:
            return self.wrong_type(shape, value, path)
        if isinstance(cleaned, str) and _is_unsafe(cleaned):
            self.error(shape, cleaned, path, _UNSAFE_TEXT)
            return _MISSING
        return cleaned

    def item(self, shape: Shape, value: Any, path: str) -> Any:
        if value is None:
            self.error(shape, None, path, _NOT_NULL)
            return None
        return self.value(shape, value, path)

    def size(self, shape: Shape, value: Any, path: str) -> None:
        meta = shape.metadata
        if "max" in meta and len(value) > meta["max"]:
            self.error(shape, value, path, f"Member must have length less than or equal to {meta['max']}")
        if "min" in meta and len(value) < meta["min"]:
            self.error(shape, value, path, f"Member must have length greater than or equal to {meta['min']}")

    def structure(self, shape: Shape, value: dict, path: str) -> dict:
        cleaned = {}
        for name, wire_name, member, required in _members(shape):
            raw = value.get(wire_name)
            if raw is None:
                if required:
                    self.error(member, None, member_path(path, name), _NOT_NULL)
                continue
            result = self.value(member, raw, member_path(path, name))
            if result is not _MISSING:
                cleaned[name] = result
        return cleaned

    def scalar_items(
        self, container_shape: Shape, shape: Shape, container: Any, path: str, label: str, items: Any
    ) -> Any:
        """Scalars inside a list or map: one entry for the container if any item fails."""
        failed = has_null = False
        cleaned: dict[Any, Any] = {}
        checks = _constraints(shape)
        for key, item in items:
            if item is None:
                has_null = True
                continue
            result = self.scalar(shape, item, _item_path(path, key))
            if result is _MISSING:
                continue
            failed = failed or not all(ok(result) for _, ok in checks)
            cleaned[key] = result
        if failed or has_null:
            texts = [text for text, _ in checks] + ([_NOT_NULL] if has_null else [])
            self.error(container_shape, container, path, f"{label} must satisfy constraint: [{', '.join(texts)}]")
        return list(cleaned.values()) if isinstance(container, list) else cleaned

    def map(self, shape: Shape, value: dict, path: str) -> dict:
        self.scalar_items(shape, shape.key, value, path, "Map keys", ((key, key) for key in value))
        if shape.value.type_name in _SCALARS:
            return self.scalar_items(shape, shape.value, value, path, "Map value", value.items())
        return {key: self.item(shape.value, item, _item_path(path, key)) for key, item in value.items()}


# -- the fast check: the same constraints, no paths, no messages ------------------------------


class Unfit(Exception):
    """A value :func:`fit` does not pass: :class:`_Walk` words why."""


_FIT: dict[tuple[str, str], Callable[[Any], Any]] = {}


def fit(shape: Shape, value: Any) -> Any:
    """The cleaned value, as the walk makes it, of a value that breaks no constraint of the
    shape; else :class:`Unfit`. One check made once per shape: no path or message is built
    (the walk builds one per member of every request, and most requests break nothing).
    A request it refuses is walked to say why."""
    return _fit(shape)(value)


def _fit(shape: Shape) -> Callable[[Any], Any]:
    key = (shape.name, shape.type_name)
    found = _FIT.get(key)
    if found is None:
        found = _FIT[key] = _make_fit(shape)
    return found


def _make_fit(shape: Shape) -> Callable[[Any], Any]:
    kind = shape.type_name
    if kind == "structure":
        return _identity if shape.is_document_type else _fit_structure(shape)
    if kind in ("list", "map"):
        low, high = shape.metadata.get("min", 0), shape.metadata.get("max", math.inf)
        return _fit_list(shape, low, high) if kind == "list" else _fit_map(shape, low, high)
    checks = tuple(ok for _, ok in _constraints(shape))
    if kind == "string":

        def fit_string(value: Any) -> Any:
            if not isinstance(value, str) or _is_unsafe(value):
                raise Unfit
            for ok in checks:
                if not ok(value):
                    raise Unfit
            return value

        return fit_string

    def fit_scalar(value: Any) -> Any:
        cleaned = _coerce_scalar(shape, value)
        if cleaned is _MISSING:
            raise Unfit
        for ok in checks:
            if not ok(cleaned):
                raise Unfit
        return cleaned

    return fit_scalar


def _fit_structure(shape: Shape) -> Callable[[Any], Any]:
    members: tuple = ()

    def fit_structure(value: Any) -> Any:
        nonlocal members
        if not members:  # the members' checks made at first use: a shape may contain itself
            members = tuple((name, wire, _fit(member), required) for name, wire, member, required in _members(shape))
        if not isinstance(value, dict):
            raise Unfit
        cleaned = {}
        for name, wire_name, check, required in members:
            raw = value.get(wire_name)
            if raw is None:
                if required:
                    raise Unfit
                continue
            cleaned[name] = check(raw)
        return cleaned

    return fit_structure


def _fit_list(shape: Shape, low: float, high: float) -> Callable[[Any], Any]:
    def fit_list(value: Any) -> Any:
        if not isinstance(value, list) or not low <= len(value) <= high:
            raise Unfit
        check = _fit(shape.member)
        return [_not_null(check, item) for item in value]

    return fit_list


def _fit_map(shape: Shape, low: float, high: float) -> Callable[[Any], Any]:
    def fit_map(value: Any) -> Any:
        if not isinstance(value, dict) or not low <= len(value) <= high:
            raise Unfit
        key, check = _fit(shape.key), _fit(shape.value)
        return {key(name): _not_null(check, item) for name, item in value.items()}

    return fit_map


def _not_null(check: Callable[[Any], Any], value: Any) -> Any:
    if value is None:
        raise Unfit
    return check(value)


def _walk(shape: Shape, value: Any, path: str) -> tuple[_Walk, Any]:
    walk = _Walk()
    if value is None:
        walk.error(shape, None, path, _NOT_NULL)
        return walk, None
    cleaned = walk.value(shape, value, path)
    return walk, cleaned


def validation_errors(shape: Shape, value: Any, *, path: str = "") -> list[str]:
    """The constraints of *shape* that *value* (decoded JSON) violates, as AWS words them
    (the first :data:`MAX_REPORTED_ERRORS`)."""
    return _walk(shape, value, path)[0].errors


def validation_message(errors: list[str], count: int | None = None) -> str:
    """The message for *count* errors (default: as many as listed), the first ones *errors*."""
    count = len(errors) if count is None else count
    noun = "validation error" if count == 1 else "validation errors"
    listed = "; ".join(errors[:MAX_REPORTED_ERRORS])
    if count > MAX_REPORTED_ERRORS:
        listed += f"; ... ({count - MAX_REPORTED_ERRORS} more)"
    return f"{count} {noun} detected: {listed}"


def validated_input(operation_model: OperationModel, params: dict) -> dict:
    """The request parameters as the handlers get them, or ``ValidationException``.

    Only members of the input shape are kept (keyed by member name), nulls dropped,
    timestamps as aware UTC datetimes, blobs as bytes.
    """
    shape = operation_model.input_shape
    if shape is None:
        return {}
    try:
        return fit(shape, params)
    except Unfit:
        pass
    walk, cleaned = _walk(shape, params, "")
    if walk.count:
        raise ApiError("ValidationException", validation_message(walk.errors, walk.count))
    return cleaned


def check_input(operation_model: OperationModel, params: dict) -> None:
    """Raise ``ApiError("ValidationException", ...)`` if *params* break the model."""
    validated_input(operation_model, params)
