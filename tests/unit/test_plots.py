"""The pages' SVG plots draw exactly the numbers they are given (checked through data-* attributes)."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

import pytest

from services.api.plots import LEFT, RIGHT, WIDTH, Frame, enrollment_svg, km_svg
from services.api.plots_patients import Bar, Lane, Marker, swimmer_svg, waterfall_svg

pytestmark = pytest.mark.unit
SVG = "{http://www.w3.org/2000/svg}"


def elements(svg: str, css: str) -> list[ET.Element]:
    return [e for e in ET.fromstring(svg).iter() if css in (e.get("class") or "").split()]


def km_row(
    time: float, n_risk: int, n_event: int, surv: float, lower: float | None, upper: float | None
) -> dict[str, object]:
    return {
        "time": time,
        "n_risk": n_risk,
        "n_event": n_event,
        "n_censor": 1 - n_event if n_event < 1 else 0,
        "surv": surv,
        "std_err": None,
        "lower": lower,
        "upper": upper,
    }


# Three patients: death day 10, censored day 20, death day 60 → S = 2/3 at 10, 0 at 60.
CURVE = [
    km_row(10.0, 3, 1, 2 / 3, 0.05, 0.95),
    km_row(20.0, 2, 0, 2 / 3, 0.05, 0.95),
    km_row(60.0, 1, 1, 0.0, None, None),
]


def test_a_km_curve_marks_every_step_with_its_exact_time_and_survival() -> None:
    points = elements(km_svg("OS", CURVE, 30.0), "km-point")
    assert [(float(p.get("data-time", "")), float(p.get("data-surv", ""))) for p in points] == [
        (10.0, 2 / 3),
        (20.0, 2 / 3),
        (60.0, 0.0),
    ]
    assert [p.get("data-n-risk") for p in points] == ["3", "2", "1"]


def test_a_censoring_is_drawn_as_a_tick_not_a_step() -> None:
    svg = km_svg("OS", CURVE)
    assert [p.get("data-time") for p in elements(svg, "km-censor")] == ["20.0"]
    assert [p.get("data-time") for p in elements(svg, "km-step")] == ["10.0", "60.0"]


def test_the_km_curve_is_a_right_continuous_step_path_from_one() -> None:
    frame = Frame(0.0, 60.0 * 1.02, 0.0, 1.0)
    [path] = elements(km_svg("OS", CURVE), "km-curve")
    assert path.get("d") == (
        f"M{frame.x(0)},{frame.y(1.0)}H{frame.x(10)}V{frame.y(2 / 3)}"
        f"H{frame.x(20)}V{frame.y(2 / 3)}H{frame.x(60)}V{frame.y(0.0)}"
    )


def test_the_median_is_drawn_at_the_days_given() -> None:
    [drop] = elements(km_svg("OS", CURVE, 60.0), "median-drop")
    assert drop.get("data-median-days") == "60.0"
    assert elements(km_svg("OS", CURVE, None), "median-drop") == []


def test_a_frame_maps_its_data_range_onto_the_drawing_area() -> None:
    frame = Frame(0.0, 10.0, 0.0, 1.0)
    assert (frame.x(0.0), frame.x(10.0)) == (LEFT, WIDTH - RIGHT)
    assert frame.y(1.0) < frame.y(0.0)


def test_the_waterfall_sorts_patients_from_the_largest_growth_to_the_deepest_shrinkage() -> None:
    svg = waterfall_svg(
        "RECIST 1.1",
        [
            Bar("site01/P1", -45.5, "PR"),
            Bar("site01/P2", 25.0, "PD"),
            Bar("site02/P3", -10.0, "SD"),
        ],
    )
    bars = elements(svg, "waterfall-bar")
    assert [(b.get("data-patient"), float(b.get("data-pct", ""))) for b in bars] == [
        ("site01/P2", 25.0),
        ("site02/P3", -10.0),
        ("site01/P1", -45.5),
    ]
    assert [b.get("class") for b in bars] == [
        "waterfall-bar bor-PD",
        "waterfall-bar bor-SD",
        "waterfall-bar bor-PR",
    ]


def test_a_waterfall_without_a_follow_up_sum_says_so() -> None:
    assert "No patient" in waterfall_svg("mRECIST", [])


def test_the_swimmer_plot_shows_each_lane_with_its_exposure_and_markers() -> None:
    svg = swimmer_svg(
        [
            Lane(
                "site01/P1",
                90,
                200,
                False,
                (Marker(56, "PR", "PR"), Marker(150, "PD", "PD"), Marker(200, "death", "death")),
            ),
            Lane("site01/P2", 300, 300, True, (Marker(40, "SAE", "SAE: Hypertension grade 3"),)),
        ]
    )
    lanes = elements(svg, "lane")
    assert [(g.get("data-patient"), g.get("data-exposure-days")) for g in lanes] == [
        ("site01/P2", "300"),
        ("site01/P1", "90"),
    ]
    assert [(m.get("data-kind"), m.get("data-day")) for m in elements(svg, "swim-marker")] == [
        ("SAE", "40"),
        ("PR", "56"),
        ("PD", "150"),
        ("death", "200"),
    ]
    assert len(elements(svg, "ongoing-arrow")) == 1


def test_enrollment_counts_each_site_and_the_whole_trial() -> None:
    on = dt.date(2024, 1, 10)
    svg = enrollment_svg(
        [
            ("site01", on),
            ("site02", on + dt.timedelta(days=5)),
            ("site01", on + dt.timedelta(days=40)),
        ]
    )
    lines = {
        line.get("data-site"): line.get("data-count") for line in elements(svg, "enrollment-line")
    }
    assert lines == {"all sites": "3", "site01": "2", "site02": "1"}
