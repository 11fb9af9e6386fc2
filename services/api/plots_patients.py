"""Server-side SVG of per-patient plots: waterfall, swimmer lanes and one patient's timeline.

Same conventions as `services.api.plots`: inline SVG strings, exact values in `data-*`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

from projections.endpoints.tte import DAYS_PER_MONTH
from services.api.plots import (
    BOTTOM,
    LEFT,
    RIGHT,
    TOP,
    WIDTH,
    Frame,
    attr,
    axes,
    month_ticks,
    svg_open,
)

# RECIST 1.1 §4.3.1 thresholds on the target sum, drawn as reference lines on the waterfall.
PROGRESSION_PCT, RESPONSE_PCT = 20.0, -30.0


@dataclass(frozen=True, slots=True)
class Bar:
    """One patient's best % change in the target sum from baseline, with the BOR it led to."""

    patient: str
    pct: float
    bor: str


def waterfall_svg(criterion: str, bars: Sequence[Bar]) -> str:
    """Best % change from baseline in the sum of target lesions, one bar per patient, sorted
    from the largest increase to the deepest shrinkage; lines at +20 % and −30 % (RECIST 1.1)."""
    if not bars:
        return f'<p class="empty">No patient with a follow-up target sum under {escape(criterion)} yet.</p>'
    ordered = sorted(bars, key=lambda bar: (-bar.pct, bar.patient))
    low = min(-100.0, min(bar.pct for bar in ordered))
    high = max(40.0, max(bar.pct for bar in ordered) + 5)
    frame = Frame(0.0, float(len(ordered)), low, high)
    parts = [
        svg_open(frame, "waterfall", f"Waterfall of best % change per {criterion}"),
        axes(
            frame,
            [],
            [(v, f"{v:+.0f}%") for v in range(-100, int(high) + 1, 20) if v >= low],
            "patients",
            "best % change in target sum",
        ),
    ]
    width = (frame.x(1) - frame.x(0)) * 0.8
    for index, bar in enumerate(ordered):
        x = frame.x(index + 0.1)
        top, bottom = frame.y(max(bar.pct, 0.0)), frame.y(min(bar.pct, 0.0))
        parts.append(
            f'<rect class="waterfall-bar bor-{escape(bar.bor.replace("/", "-"), quote=True)}" x="{x}" y="{top}" '
            f'width="{round(width, 2)}" height="{round(max(bottom - top, 0.5), 2)}" data-patient="{attr(bar.patient)}" '
            f'data-pct="{attr(bar.pct)}" data-bor="{attr(bar.bor)}"><title>{escape(bar.patient)}: '
            f"{bar.pct:+.1f}% ({escape(bar.bor)})</title></rect>"
        )
    for level, css in (
        (PROGRESSION_PCT, "ref-progression"),
        (RESPONSE_PCT, "ref-response"),
        (0.0, "ref-zero"),
    ):
        parts.append(
            f'<line class="ref {css}" x1="{LEFT}" y1="{frame.y(level)}" x2="{WIDTH - RIGHT}" y2="{frame.y(level)}"/>'
        )
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class Marker:
    """Something that happened to a patient on study day `day`: a response, PD, an SAE, death."""

    day: int
    kind: str
    label: str


@dataclass(frozen=True, slots=True)
class Lane:
    """One patient's swimmer lane: treatment exposure (days 0..`exposure_days`) then follow-up."""

    patient: str
    exposure_days: int
    followed_days: int
    ongoing: bool
    markers: tuple[Marker, ...] = field(default=())


MARKER_SHAPES = {
    "CR": "circle",
    "PR": "circle",
    "PD": "square",
    "SAE": "triangle",
    "death": "cross",
}


def _marker(x: float, y: float, marker: Marker) -> str:
    data = (
        f'class="swim-marker marker-{escape(marker.kind, quote=True)}" data-day="{marker.day}" '
        f'data-kind="{escape(marker.kind, quote=True)}"'
    )
    title = f"<title>day {marker.day}: {escape(marker.label)}</title>"
    shape = MARKER_SHAPES.get(marker.kind, "circle")
    if shape == "square":
        return f'<rect {data} x="{x - 3}" y="{y - 3}" width="6" height="6">{title}</rect>'
    if shape == "triangle":
        return f'<path {data} d="M{x},{y - 4}L{x + 4},{y + 3}L{x - 4},{y + 3}Z">{title}</path>'
    if shape == "cross":
        return f'<path {data} d="M{x - 4},{y - 4}L{x + 4},{y + 4}M{x - 4},{y + 4}L{x + 4},{y - 4}">{title}</path>'
    return f'<circle {data} cx="{x}" cy="{y}" r="3.5">{title}</circle>'


def swimmer_svg(lanes: Sequence[Lane]) -> str:
    """Treatment exposure per treated patient (thick bar to the last dose, thin line through
    follow-up, arrow if still on treatment) with responses, PD, SAEs and death marked."""
    if not lanes:
        return '<p class="empty">No treated patient yet.</p>'
    ordered = sorted(lanes, key=lambda lane: (-lane.followed_days, lane.patient))
    lane_height = 14
    height = TOP + BOTTOM + lane_height * len(ordered)
    max_days = max(lane.followed_days for lane in ordered) or int(DAYS_PER_MONTH)
    frame = Frame(0.0, max_days * 1.04, 0.0, float(len(ordered)), height=height, left=110)
    parts = [
        svg_open(frame, "swimmer", "Swimmer plot of treatment exposure"),
        axes(frame, month_ticks(frame.x1), [], "months since start of treatment", ""),
    ]
    for index, lane in enumerate(ordered):
        y = round(TOP + lane_height * (index + 0.5), 2)
        parts.append(
            f'<g class="lane" data-patient="{attr(lane.patient)}" data-exposure-days="{lane.exposure_days}" '
            f'data-followed-days="{lane.followed_days}">'
        )
        parts.append(
            f'<text class="lane-label" x="{frame.left - 4}" y="{y + 3}" text-anchor="end">{escape(lane.patient)}</text>'
        )
        parts.append(
            f'<line class="follow-up" x1="{frame.x(0)}" y1="{y}" x2="{frame.x(lane.followed_days)}" y2="{y}"/>'
        )
        parts.append(
            f'<rect class="exposure{" ongoing" if lane.ongoing else ""}" x="{frame.x(0)}" y="{y - 4}" '
            f'width="{round(frame.x(lane.exposure_days) - frame.x(0), 2)}" height="8"/>'
        )
        if lane.ongoing:
            end = frame.x(lane.exposure_days)
            parts.append(
                f'<path class="ongoing-arrow" d="M{end},{y - 5}L{end + 6},{y}L{end},{y + 5}Z"/>'
            )
        parts.extend(_marker(frame.x(m.day), y, m) for m in lane.markers)
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class Moment:
    """One ledger entry on a patient's timeline."""

    on: dt.date
    seq: int
    type: str
    status: str


def timeline_svg(moments: Sequence[Moment]) -> str:
    """Every ledger entry of one patient on a date axis, one row per kind of event; retracted
    and corrected entries are drawn hollow so the auditor sees them next to what replaced them."""
    if not moments:
        return '<p class="empty">No event.</p>'
    kinds = sorted({m.type for m in moments})
    first = min(m.on for m in moments)
    last = max(max(m.on for m in moments), first + dt.timedelta(days=30))
    row = 16
    height = TOP + BOTTOM + row * len(kinds)
    frame = Frame(0.0, float((last - first).days) * 1.02, 0.0, float(len(kinds)), height=height)
    left = 150
    span = frame.x1 or 1.0

    def x(day: float) -> float:
        return round(left + day / span * (WIDTH - left - RIGHT), 2)

    parts = [svg_open(frame, "timeline", "Timeline of every ledger entry")]
    for index, kind in enumerate(kinds):
        y = TOP + row * (index + 0.5)
        parts.append(
            f'<text class="lane-label" x="{left - 6}" y="{y + 4}" text-anchor="end">{escape(kind)}</text>'
            f'<line class="grid" x1="{left}" y1="{y}" x2="{WIDTH - RIGHT}" y2="{y}"/>'
        )
    for moment in moments:
        y = TOP + row * (kinds.index(moment.type) + 0.5)
        parts.append(
            f'<circle class="moment status-{escape(moment.status.replace(" ", "-"), quote=True)}" '
            f'cx="{x((moment.on - first).days)}" cy="{y}" r="4" data-seq="{moment.seq}" '
            f'data-on="{moment.on.isoformat()}" data-type="{escape(moment.type, quote=True)}">'
            f"<title>seq {moment.seq} · {moment.on.isoformat()} · {escape(moment.type)} ({escape(moment.status)})"
            f"</title></circle>"
        )
    baseline = height - BOTTOM
    for tick in range(0, (last - first).days + 1, max(30, (last - first).days // 6)):
        on = first + dt.timedelta(days=tick)
        parts.append(
            f'<text class="tick-label" x="{x(tick)}" y="{baseline + 14}" text-anchor="middle">{on.isoformat()}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
