"""Associations per hour as an SVG bar chart, drawn on the server (no script, no assets)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from opscm.service.console import HourCount

WIDTH, HEIGHT = 720, 160
PLOT_TOP, PLOT_BOTTOM, PLOT_LEFT = 12, 130, 36
# Stacked from the bottom, each with its CSS class.
OUTCOMES = (("associated", "bar-associated"), ("disassociated", "bar-disassociated"), ("failed", "bar-failed"))


@dataclasses.dataclass(frozen=True)
class Segment:
    y: float
    height: float
    css_class: str


@dataclasses.dataclass(frozen=True)
class Bar:
    x: float
    width: float
    segments: list[Segment]
    title: str  # the tooltip: the hour and its counts
    label: str | None  # the hour under every sixth bar


@dataclasses.dataclass(frozen=True)
class Chart:
    width: int
    height: int
    top: int
    bottom: int
    left: int
    peak: int  # the value at the top of the scale
    bars: list[Bar]
    total: int


def hourly_chart(hours: Sequence[HourCount]) -> Chart:
    peak = max([hour.total for hour in hours] + [1])
    slot = (WIDTH - PLOT_LEFT) / max(len(hours), 1)
    scale = (PLOT_BOTTOM - PLOT_TOP) / peak
    bars = []
    for index, hour in enumerate(hours):
        y = float(PLOT_BOTTOM)
        segments = []
        for outcome, css_class in OUTCOMES:
            height = getattr(hour, outcome) * scale
            if height:
                y -= height
                segments.append(Segment(round(y, 1), round(height, 1), css_class))
        title = (
            f"{hour.start:%Y-%m-%d %H:00} UTC: {hour.associated} associated, "
            f"{hour.disassociated} disassociated, {hour.failed} failed"
        )
        label = f"{hour.start:%H}:00" if index % 6 == 0 else None
        bars.append(Bar(round(PLOT_LEFT + index * slot + 1, 1), round(slot - 2, 1), segments, title, label))
    return Chart(WIDTH, HEIGHT, PLOT_TOP, PLOT_BOTTOM, PLOT_LEFT, peak, bars, sum(hour.total for hour in hours))
