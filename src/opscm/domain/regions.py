"""Regions a request may be scoped to.

A region names where resources live (it is in every ARN, and limits count per region), so
only known regions are served: by default the ones where AWS ran OpsWorks CM, as the model's
own documentation lists its endpoints (``opsworks-cm.<region>.amazonaws.com``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

OPSWORKS_CM_REGIONS = (
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "ap-northeast-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "eu-central-1",
    "eu-west-1",
)
# What an ARN and the store take: lower-case letters, digits, inner '-'; at most 64.
_REGION = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")


def check_regions(regions: Iterable[str]) -> tuple[str, ...]:
    """The regions in order, once each; ValueError for a name that cannot be a region."""
    checked = tuple(dict.fromkeys(region.strip() for region in regions))
    for region in checked:
        if not _REGION.fullmatch(region):
            raise ValueError(f"'{region[:80]}' is not a region name (lower-case letters, digits and '-', e.g. eu-west-1)")
    if not checked:
        raise ValueError("at least one region is needed")
    return checked
