"""Tags: the rules of the documentation beyond the model's patterns, and resource ARNs."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from .errors import ValidationFailed

MAX_TAGS_PER_RESOURCE = 50


def tag_pairs(tags: Iterable[Mapping[str, str]] | None) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for tag in tags or ():
        key, value = tag["Key"], tag["Value"]
        if key.lower().startswith("aws:"):
            raise ValidationFailed(f"Tag key '{key}' uses the reserved prefix 'aws:'.")
        if key in seen:
            raise ValidationFailed(f"Tag key '{key}' is given more than once.")
        seen.add(key)
        pairs.append((key, value))
    return pairs


def check_tag_count(existing_keys: Iterable[str], new_keys: Iterable[str]) -> None:
    total = len(set(existing_keys) | set(new_keys))
    if total > MAX_TAGS_PER_RESOURCE:
        raise ValidationFailed(
            f"A resource can have at most {MAX_TAGS_PER_RESOURCE} tags; this request would give it {total}."
        )


@dataclasses.dataclass(frozen=True)
class ResourceName:
    region: str
    account_id: str
    kind: str  # "server" or "backup"
    name: str  # server name, or backup id


def parse_resource_arn(arn: str) -> ResourceName | None:
    """``arn:aws:opsworks-cm:<region>:<account>:server/<name>/<id>`` or ``...:backup/<backup-id>``."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "opsworks-cm":
        return None
    kind, _, rest = parts[5].partition("/")
    if kind == "server" and "/" in rest:
        return ResourceName(parts[3], parts[4], kind, rest.split("/", 1)[0])
    if kind == "backup" and rest:
        return ResourceName(parts[3], parts[4], kind, rest)
    return None
