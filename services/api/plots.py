"""Server-side SVG of the trial's curves: Kaplan–Meier with CI band, enrollment by site.

Plots are plain strings of inline SVG, so a page and the self-contained report embed the same
markup and no script or CDN is needed offline. Each plotted point carries its exact value in
`data-*` attributes (Python's shortest round-trip float repr, as JSON prints it), so a test can
compare what is drawn with what the API serves, number for number.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from projections.endpoints.tte import DAYS_PER_MONTH

WIDTH, HEIGHT = 640, 320
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 40


@dataclass(frozen=True, slots=True)
class Frame:
    """Maps data (x in [x0, x1], y in [y0, y1]) onto the drawing area of a WIDTH × HEIGHT box."""

    x0: float
    x1: float
    y0: float
    y1: float
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT

    def x(self, value: float) -> float:
        span = (self.x1 - self.x0) or 1.0
        return round(self.left + (value - self.x0) / span * (self.width - self.left - RIGHT), 2)

    def y(self, value: float) -> float:
        span = (self.y1 - self.y0) or 1.0
        return round(
            self.height - BOTTOM - (value - self.y0) / span * (self.height - TOP - BOTTOM), 2
        )


def attr(value: Any) -> str:
    """One attribute value: floats in shortest round-trip form, None as empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return escape(repr(value) if isinstance(value, float) else str(value), quote=True)


def svg_open(frame: Frame, css: str, label: str) -> str:
    return (
        f'<svg class="plot {css}" viewBox="0 0 {frame.width} {frame.height}" role="img" '
        f'aria-label="{escape(label, quote=True)}" xmlns="http://www.w3.org/2000/svg">'
    )


def axes(
    frame: Frame,
    x_ticks: Iterable[tuple[float, str]],
    y_ticks: Iterable[tuple[float, str]],
    x_label: str,
    y_label: str,
) -> str:
    parts = [
        f'<line class="axis" x1="{frame.left}" y1="{frame.y(frame.y0)}" x2="{frame.width - RIGHT}" y2="{frame.y(frame.y0)}"/>',
        f'<line class="axis" x1="{frame.left}" y1="{TOP}" x2="{frame.left}" y2="{frame.y(frame.y0)}"/>',
    ]
    for value, text in x_ticks:
        x = frame.x(value)
        parts.append(
            f'<line class="tick" x1="{x}" y1="{frame.y(frame.y0)}" x2="{x}" y2="{frame.y(frame.y0) + 4}"/>'
            f'<text class="tick-label" x="{x}" y="{frame.y(frame.y0) + 16}" text-anchor="middle">{escape(text)}</text>'
        )
    for value, text in y_ticks:
        y = frame.y(value)
        parts.append(
            f'<line class="grid" x1="{frame.left}" y1="{y}" x2="{frame.width - RIGHT}" y2="{y}"/>'
            f'<text class="tick-label" x="{frame.left - 6}" y="{y + 4}" text-anchor="end">{escape(text)}</text>'
        )
    parts.append(
        f'<text class="axis-label" x="{(frame.left + frame.width - RIGHT) / 2}" y="{frame.height - 4}" '
        f'text-anchor="middle">{escape(x_label)}</text>'
    )
    parts.append(
        f'<text class="axis-label" x="12" y="{(TOP + frame.height - BOTTOM) / 2}" text-anchor="middle" '
        f'transform="rotate(-90 12 {(TOP + frame.height - BOTTOM) / 2})">{escape(y_label)}</text>'
    )
    return "".join(parts)


def month_ticks(max_days: float, every: int = 3) -> list[tuple[float, str]]:
    last = max(every, int(max_days / DAYS_PER_MONTH) + 1)
    return [(m * DAYS_PER_MONTH, str(m)) for m in range(0, last + 1, every if last <= 36 else 6)]


def _steps(points: Sequence[tuple[float, float]], frame: Frame, start: float = 1.0) -> str:
    """A right-continuous step function: flat until each time, then a drop (or rise) to the new value."""
    path = [f"M{frame.x(0)},{frame.y(start)}"]
    path.extend(f"H{frame.x(time)}V{frame.y(value)}" for time, value in points)
    return "".join(path)


def km_svg(paramcd: str, curve: Sequence[dict[str, Any]], median_days: float | None = None) -> str:
    """The Kaplan–Meier step curve of one endpoint (the API's `curve` rows: time in days, surv,
    lower, upper, n_risk, n_event, n_censor) with its pointwise CI band (conf_type of the fit),
    censoring ticks and the median line; x in months (days / 30.4375, DOMAIN.md)."""
    max_days = max((float(row["time"]) for row in curve), default=DAYS_PER_MONTH)
    frame = Frame(0.0, max(max_days, DAYS_PER_MONTH) * 1.02, 0.0, 1.0)
    parts = [
        svg_open(frame, "km", f"Kaplan–Meier curve of {paramcd}"),
        axes(
            frame,
            month_ticks(frame.x1),
            [(v / 4, f"{v * 25}%") for v in range(5)],
            "months since start of treatment",
            "survival probability",
        ),
    ]
    # R gives no limit where S is 1 (log-log) or 0: the band collapses onto the curve there.
    band = [
        (
            float(r["time"]),
            r["surv"] if r["lower"] is None else r["lower"],
            r["surv"] if r["upper"] is None else r["upper"],
        )
        for r in curve
    ]
    if band:
        end = frame.x(band[-1][0])
        top = _steps([(t, hi) for t, _, hi in band], frame)
        bottom = [(frame.x(0), frame.y(1.0))]
        level = 1.0
        for time, low, _ in band:
            bottom += [(frame.x(time), frame.y(level)), (frame.x(time), frame.y(low))]
            level = low
        back = "".join(f"L{x},{y}" for x, y in reversed([*bottom, (end, frame.y(level))]))
        parts.append(f'<path class="km-band" d="{top}H{end}{back}Z"/>')
    parts.append(
        f'<line class="median-line" x1="{LEFT}" y1="{frame.y(0.5)}" x2="{frame.width - RIGHT}" y2="{frame.y(0.5)}"/>'
    )
    steps = [(float(r["time"]), float(r["surv"])) for r in curve]
    parts.append(f'<path class="km-curve" d="{_steps(steps, frame)}"/>')
    for row in curve:
        x, y = frame.x(float(row["time"])), frame.y(float(row["surv"]))
        kind = "km-censor" if row["n_event"] == 0 else "km-step"
        parts.append(
            f'<circle class="km-point {kind}" cx="{x}" cy="{y}" r="{2.5 if kind == "km-step" else 2}" '
            f'data-time="{attr(row["time"])}" data-surv="{attr(row["surv"])}" data-lower="{attr(row["lower"])}" '
            f'data-upper="{attr(row["upper"])}" data-n-risk="{attr(row["n_risk"])}" '
            f'data-n-event="{attr(row["n_event"])}" data-n-censor="{attr(row["n_censor"])}">'
            f"<title>day {row['time']:g}: S = {row['surv']:.3f} (at risk {row['n_risk']})</title></circle>"
        )
    if median_days is not None:
        x = frame.x(median_days)
        parts.append(
            f'<line class="median-drop" x1="{x}" y1="{frame.y(0.5)}" x2="{x}" y2="{frame.y(0)}" '
            f'data-median-days="{attr(median_days)}"/>'
        )
    parts.append("</svg>")
    return "".join(parts)


def enrollment_svg(enrolled: Sequence[tuple[str, dt.date]]) -> str:
    """Cumulative enrollment over time, one step line per site and one for the trial."""
    if not enrolled:
        return '<p class="empty">No patient enrolled yet.</p>'
    days = sorted({on for _, on in enrolled})
    first, last = days[0], max(days[-1], days[0] + dt.timedelta(days=30))
    frame = Frame(0.0, float((last - first).days) * 1.02, 0.0, float(len(enrolled)) * 1.05)
    months = [first.replace(day=1)]
    while months[-1] < last:
        nxt = months[-1].replace(
            year=months[-1].year + (months[-1].month == 12), month=months[-1].month % 12 + 1
        )
        months.append(nxt)
    step = max(1, len(months) // 8)
    x_ticks = [
        (float((m - first).days), m.strftime("%Y-%m")) for m in months[::step] if first <= m <= last
    ]
    total = len(enrolled)
    y_every = max(1, round(total / 5))
    parts = [
        svg_open(frame, "enrollment", "Cumulative enrollment by site"),
        axes(
            frame,
            x_ticks,
            [(float(v), str(v)) for v in range(0, total + 1, y_every)],
            "enrollment date",
            "patients enrolled",
        ),
    ]
    sites = sorted({site for site, _ in enrolled})
    for index, (label, dates) in enumerate(
        [("all sites", sorted(on for _, on in enrolled))]
        + [(site, sorted(on for s, on in enrolled if s == site)) for site in sites]
    ):
        points = [(float((on - first).days), float(n)) for n, on in enumerate(dates, start=1)]
        css = "series-total" if index == 0 else f"series-{(index - 1) % 8}"
        path = _steps(points, frame, start=0.0)
        parts.append(
            f'<path class="enrollment-line {css}" d="{path}H{frame.x(frame.x1)}" '
            f'data-site="{escape(label, quote=True)}" data-count="{len(dates)}"/>'
        )
        parts.append(
            f'<text class="legend {css}" x="{LEFT + 8}" y="{TOP + 12 + 13 * index}">'
            f"{escape(label)} ({len(dates)})</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
