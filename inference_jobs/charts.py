"""Line charts as inline SVG, drawn on the server so that a task's latency reads without JavaScript.

A chart is a few series sharing one time axis (the buckets of ``telemetry.latency.task_latency``): each series
becomes one ``<polyline>`` per unbroken run of values (a bucket without requests has no latency, so the line
breaks there instead of dropping to zero), with a y axis from 0 to a round maximum and labels on both axes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

COLOURS = ("#2456d6", "#b26b00", "#13805a", "#7c3aed")
TARGET_COLOUR = "#c0392b"
Y_TICKS = 4


@dataclass(frozen=True)
class Line:
    """One series: a value per point of the time axis, ``None`` where there is nothing to show."""

    label: str
    values: Sequence[float | None]


@dataclass(frozen=True)
class Frame:
    """Where the plot area lies inside the SVG's view box."""

    width: int
    height: int
    left: int = 52
    right: int = 14
    top: int = 30
    bottom: int = 26

    @property
    def plot_width(self) -> int:
        return self.width - self.left - self.right

    @property
    def plot_height(self) -> int:
        return self.height - self.top - self.bottom


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10ⁿ at or above ``value``: a y axis maximum that reads well."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for factor in (1, 2, 2.5, 5, 10):
        if value <= factor * magnitude * (1 + 1e-9):
            return factor * magnitude
    return 10 * magnitude


def axis_label(value: float) -> str:
    """A tick label: at most three significant digits (whole numbers from 100), thousands as k, millions as M."""
    if value >= 1_000_000:
        return f"{value / 1_000_000:.3g}M"
    if value >= 10_000:
        return f"{value / 1000:.3g}k"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def time_label(moment: datetime, span_s: float) -> str:
    local = timezone.localtime(moment) if timezone.is_aware(moment) else moment
    return local.strftime("%H:%M") if span_s <= 86_400 else local.strftime("%b %d %H:%M")


def segments(values: Sequence[float | None]) -> list[list[tuple[int, float]]]:
    """Runs of consecutive present values as ``(index, value)`` lists."""
    runs: list[list[tuple[int, float]]] = []
    current: list[tuple[int, float]] = []
    for index, value in enumerate(values):
        if value is None:
            if current:
                runs.append(current)
            current = []
        else:
            current.append((index, float(value)))
    if current:
        runs.append(current)
    return runs


def line_chart(
    *,
    title: str,
    unit: str,
    times: Sequence[datetime],
    lines: Sequence[Line],
    target: float | None = None,
    width: int = 560,
    height: int = 200,
) -> SafeString:
    """An ``<svg>`` of ``lines`` over ``times``; ``target`` draws a dashed reference line (a latency SLO)."""
    frame = Frame(width, height)
    present = [value for line in lines for value in line.values if value is not None]
    y_max = nice_ceiling(max([*present, target or 0, 0]))
    count = len(times)

    def x(index: int) -> float:
        if count <= 1:
            return frame.left + frame.plot_width / 2
        return frame.left + frame.plot_width * index / (count - 1)

    def y(value: float) -> float:
        return frame.top + frame.plot_height * (1 - value / y_max)

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg" font-size="11" font-family="system-ui, sans-serif">',
        f"<title>{escape(title)}</title>",
        f'<text x="{frame.left}" y="16" font-weight="600" fill="#1d2330">{escape(title)}'
        f'<tspan fill="#5d6677" font-weight="400"> ({escape(unit)})</tspan></text>',
    ]
    parts += _y_axis(frame, y_max, y)
    parts += _x_axis(frame, times, x)
    if target is not None:
        parts.append(
            f'<line class="target" x1="{frame.left}" x2="{frame.width - frame.right}" y1="{y(target):.1f}" '
            f'y2="{y(target):.1f}" stroke="{TARGET_COLOUR}" stroke-dasharray="4 3"/>'
            f'<text x="{frame.width - frame.right}" y="{y(target) - 3:.1f}" text-anchor="end" '
            f'fill="{TARGET_COLOUR}">target {escape(axis_label(target))}</text>'
        )
    for number, line in enumerate(lines):
        colour = COLOURS[number % len(COLOURS)]
        label = escape(line.label)
        for run in segments(line.values):
            if len(run) == 1:
                index, value = run[0]
                parts.append(
                    f'<circle class="series" data-series="{label}" cx="{x(index):.1f}" cy="{y(value):.1f}" r="2.5" '
                    f'fill="{colour}"/>'
                )
                continue
            points = " ".join(f"{x(index):.1f},{y(value):.1f}" for index, value in run)
            parts.append(
                f'<polyline class="series" data-series="{label}" points="{points}" fill="none" stroke="{colour}" '
                f'stroke-width="1.8" stroke-linejoin="round"/>'
            )
    parts += _legend(frame, lines)
    if not present:
        parts.append(
            f'<text x="{frame.left + frame.plot_width / 2:.1f}" y="{frame.top + frame.plot_height / 2:.1f}" '
            f'text-anchor="middle" fill="#5d6677">No requests in this window</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # every dynamic text above is escaped


def _y_axis(frame: Frame, y_max: float, y) -> list[str]:
    parts = []
    for tick in range(Y_TICKS + 1):
        value = y_max * tick / Y_TICKS
        position = y(value)
        parts.append(
            f'<line x1="{frame.left}" x2="{frame.width - frame.right}" y1="{position:.1f}" y2="{position:.1f}" '
            f'stroke="#e8ebf0"/>'
            f'<text class="y-label" x="{frame.left - 6}" y="{position + 4:.1f}" text-anchor="end" '
            f'fill="#5d6677">{escape(axis_label(value))}</text>'
        )
    return parts


def _x_axis(frame: Frame, times: Sequence[datetime], x) -> list[str]:
    if not times:
        return []
    span_s = (times[-1] - times[0]).total_seconds()
    indexes = sorted({0, (len(times) - 1) // 2, len(times) - 1})
    baseline = frame.height - frame.bottom
    right = frame.width - frame.right
    parts = [f'<line x1="{frame.left}" x2="{right}" y1="{baseline}" y2="{baseline}" stroke="#9aa3b2"/>']
    for position, index in enumerate(indexes):
        anchor = "start" if position == 0 and len(indexes) > 1 else "end" if index == len(times) - 1 else "middle"
        parts.append(
            f'<text class="x-label" x="{x(index):.1f}" y="{baseline + 16}" text-anchor="{anchor}" '
            f'fill="#5d6677">{escape(time_label(times[index], span_s))}</text>'
        )
    return parts


def _legend(frame: Frame, lines: Sequence[Line]) -> list[str]:
    parts = []
    right = frame.width - frame.right
    for number, line in reversed(list(enumerate(lines))):
        colour = COLOURS[number % len(COLOURS)]
        parts.append(f'<text x="{right}" y="16" text-anchor="end" fill="{colour}">■ {escape(line.label)}</text>')
        right -= 14 + 7 * len(line.label)
    return parts
