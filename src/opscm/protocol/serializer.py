"""Output serialization driven by the botocore model.

Handlers return plain Python data keyed by member names; :func:`serialize_output`
turns it into the JSON-ready dict of the JSON 1.1 protocol.  A key the shape does not
have, or a value of the wrong Python type, is a bug in the handler and raises
``ValueError`` (never answered to the client as such).

Each shape of the model is turned once into a function (it answers every request of a boot
storm); the path of a bad value is put together only when one is found.
"""

from __future__ import annotations

import base64
import enum
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from botocore.model import Shape, StructureShape

__all__ = ["serialize_output", "epoch_seconds"]

Serialize = Callable[[Any], Any]


def epoch_seconds(value: datetime) -> int | float:
    """Seconds since the epoch, to the millisecond; naive datetimes are taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    seconds = round(value.timestamp(), 3)
    return int(seconds) if seconds == int(seconds) else seconds


def serialize_output(shape: StructureShape, data: dict) -> dict:
    """The JSON body (as a dict) of *data* for the output *shape*; ``None`` values dropped."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{shape.name}: expected a mapping, got {type(data).__name__}")
    try:
        return _serializer(shape)(data)
    except _Bad as bad:
        raise ValueError(bad.message(shape.name)) from None


class _Bad(Exception):
    """A bad value found deep inside: the segments of its path gather on the way out."""

    def __init__(self, problem: str):
        self.problem = problem
        self.where: list[str] = []

    def inside(self, segment: str) -> _Bad:
        self.where.append(segment)
        return self

    def message(self, root: str) -> str:
        return f"{root}{''.join(reversed(self.where))}: {self.problem}"


def _expected(expected: str, value: Any) -> _Bad:
    return _Bad(f"expected {expected}, got {type(value).__name__} {value!r:.80}")


_SERIALIZERS: dict[tuple[str, str], Serialize] = {}


def _serializer(shape: Shape) -> Serialize:
    """The function of a named shape, made on first use (shape names are unique in a model)."""
    key = (shape.name, shape.type_name)
    found = _SERIALIZERS.get(key)
    if found is None:
        found = _SERIALIZERS[key] = _make(shape)
    return found


def _make(shape: Shape) -> Serialize:
    kind = shape.type_name
    maker = _MAKERS.get(kind)
    if maker is None:
        raise ValueError(f"{shape.name}: unsupported shape type {kind}")
    serialize = maker(shape)
    if kind in ("integer", "long"):
        return _enum_values(serialize)
    return serialize


def _enum_values(serialize: Serialize) -> Serialize:
    def unwrapped(value: Any) -> Any:
        return serialize(value.value if isinstance(value, enum.Enum) else value)

    return unwrapped


def _structure(shape: Shape) -> Serialize:
    if shape.is_document_type:
        return lambda value: value
    members = shape.members
    # Member name -> (wire name, serializer); filled on first use, as a shape may hold itself.
    plan: dict[str, tuple[str, Serialize]] = {}

    def serialize(data: Any) -> dict:
        if type(data) is not dict and not isinstance(data, Mapping):  # the ABC's check only for others
            raise _expected("a mapping", data)
        if not plan:
            plan.update(
                (name, (member.serialization.get("name", name), _serializer(member))) for name, member in members.items()
            )
        out = {}
        for name, value in data.items():
            entry = plan.get(name)
            if entry is None:
                unknown = [key for key in data if key not in members]
                raise _Bad(f"{', '.join(map(str, unknown))} not a member of {shape.name}")
            if value is None:
                continue
            try:
                out[entry[0]] = entry[1](value)
            except _Bad as bad:
                raise bad.inside(f".{name}") from None
        return out

    return serialize


def _list(shape: Shape) -> Serialize:
    member = shape.member

    def serialize(value: Any) -> list:
        if type(value) is not list and (isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__")):
            raise _expected("a sequence", value)
        item_serializer = _serializer(member)
        out = []
        for index, item in enumerate(value):
            try:
                if item is None:
                    raise _expected(f"a {member.type_name} (None only drops a structure member)", item)
                out.append(item_serializer(item))
            except _Bad as bad:
                raise bad.inside(f"[{index}]") from None
        return out

    return serialize


def _map(shape: Shape) -> Serialize:
    def serialize(value: Any) -> dict:
        if not isinstance(value, Mapping):
            raise _expected("a mapping", value)
        keys, values = _serializer(shape.key), _serializer(shape.value)
        out = {}
        for key, item in value.items():
            try:
                wire_key = keys(key)
            except _Bad as bad:
                raise bad.inside(".<key>") from None
            try:
                if item is None:
                    raise _expected(f"a {shape.value.type_name} (None only drops a structure member)", item)
                out[wire_key] = values(item)
            except _Bad as bad:
                raise bad.inside(f"[{key!r}]") from None
        return out

    return serialize


def _checked(accept: Callable[[Any], bool], expected: str, convert: Callable[[Any], Any] = lambda v: v):
    def make(shape: Shape) -> Serialize:
        def serialize(value: Any) -> Any:
            if not accept(value):
                raise _expected(expected, value)
            return convert(value)

        return serialize

    return make


def _string(shape: Shape) -> Serialize:
    def serialize(value: Any) -> str:
        if type(value) is str:  # nearly every value: no more to check
            return value
        if isinstance(value, enum.Enum):
            value = value.value
        if not isinstance(value, str):
            raise _expected("str", value)
        return str(value)

    return serialize


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(value: Any) -> Any:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _timestamp(shape: Shape) -> Serialize:
    style = shape.serialization.get("timestampFormat", "unixTimestamp")

    def serialize(value: Any) -> Any:
        if isinstance(value, datetime):
            moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            moment = datetime.fromtimestamp(value, UTC)
        else:
            raise _expected("datetime", value)
        if style == "iso8601":
            return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        if style == "rfc822":
            return format_datetime(moment.astimezone(UTC), usegmt=True)
        return epoch_seconds(moment)

    return serialize


def _blob(value: Any) -> str:
    return base64.b64encode(bytes(value)).decode("ascii")


_MAKERS: dict[str, Callable[[Shape], Serialize]] = {
    "structure": _structure,
    "list": _list,
    "map": _map,
    "string": _string,
    "boolean": _checked(lambda v: isinstance(v, bool), "bool"),
    "integer": _checked(_is_int, "int", int),
    "long": _checked(_is_int, "int", int),
    "float": _checked(_is_number, "a number", _number),
    "double": _checked(_is_number, "a number", _number),
    "timestamp": _timestamp,
    "blob": _checked(lambda v: isinstance(v, (bytes, bytearray, memoryview)), "bytes", _blob),
}
