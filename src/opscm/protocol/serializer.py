"""Output serialization driven by the botocore model: one recursive walk.

Handlers return plain Python data keyed by member names; :func:`serialize_output`
turns it into the JSON-ready dict of the JSON 1.1 protocol.  A key the shape does not
have, or a value of the wrong Python type, is a bug in the handler and raises
``ValueError`` (never answered to the client as such).
"""

from __future__ import annotations

import base64
import enum
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from botocore.model import Shape, StructureShape

__all__ = ["serialize_output", "epoch_seconds"]


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
    return _structure(shape, data, shape.name)


def _fail(path: str, expected: str, value: Any) -> ValueError:
    return ValueError(f"{path}: expected {expected}, got {type(value).__name__} {value!r:.80}")


def _structure(shape: Shape, data: Mapping, path: str) -> dict:
    members = shape.members
    unknown = [key for key in data if key not in members]
    if unknown:
        raise ValueError(f"{path}: {', '.join(map(str, unknown))} not a member of {shape.name}")
    out = {}
    for name, value in data.items():
        if value is None:
            continue
        member = members[name]
        out[member.serialization.get("name", name)] = _value(member, value, f"{path}.{name}")
    return out


def _value(shape: Shape, value: Any, path: str) -> Any:
    kind = shape.type_name
    if value is None:
        raise _fail(path, f"a {kind} (None only drops a structure member)", value)
    if isinstance(value, enum.Enum) and kind in ("string", "integer", "long"):
        value = value.value
    if kind == "structure":
        if shape.is_document_type:
            return value
        if not isinstance(value, Mapping):
            raise _fail(path, "a mapping", value)
        return _structure(shape, value, path)
    if kind == "list":
        if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
            raise _fail(path, "a sequence", value)
        return [_value(shape.member, item, f"{path}[{index}]") for index, item in enumerate(value)]
    if kind == "map":
        if not isinstance(value, Mapping):
            raise _fail(path, "a mapping", value)
        return {
            _value(shape.key, key, f"{path}.<key>"): _value(shape.value, item, f"{path}[{key!r}]")
            for key, item in value.items()
        }
    if kind == "string":
        if not isinstance(value, str):
            raise _fail(path, "str", value)
        return str(value)
    if kind == "boolean":
        if not isinstance(value, bool):
            raise _fail(path, "bool", value)
        return value
    if kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            raise _fail(path, "int", value)
        return int(value)
    if kind in ("float", "double"):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise _fail(path, "a number", value)
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if kind == "timestamp":
        return _timestamp(shape, value, path)
    if kind == "blob":
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise _fail(path, "bytes", value)
        return base64.b64encode(bytes(value)).decode("ascii")
    raise ValueError(f"{path}: unsupported shape type {kind}")


def _timestamp(shape: Shape, value: Any, path: str) -> Any:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        moment = datetime.fromtimestamp(value, UTC)
    else:
        raise _fail(path, "datetime", value)
    style = shape.serialization.get("timestampFormat", "unixTimestamp")
    if style == "iso8601":
        return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if style == "rfc822":
        return format_datetime(moment.astimezone(UTC), usegmt=True)
    return epoch_seconds(moment)
