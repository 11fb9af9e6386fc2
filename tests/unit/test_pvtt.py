"""PVTT response per timepoint (DOMAIN.md "PVTT response": CR no enhancing thrombus, PR ≤ 70 %
of baseline, PD ≥ 20 % over the nadir or a higher Vp grade or a new branch)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from events import ProtocolParameters
from projections.criteria.recist import CR, NE, PD, PR, SD
from projections.criteria.response import PVTT, assess_patient
from tests.unit.test_recist import (
    PARAMS,
    START,
    WEEK_6,
    WEEK_12,
    WEEK_18,
    baseline,
    overall,
    responses,
    scan,
    target,
)

pytestmark = pytest.mark.unit


def thrombus(diameter: float | None, grade: str = "Vp3", **fields: Any) -> dict[str, Any]:
    return {
        "present": True,
        "vp_grade": grade,
        "thrombus_diameter_mm": diameter,
        "enhancing": True,
    } | fields


def pvtt_course(
    *reads: dict[str, Any] | None,
    base: dict[str, Any] | None = None,
    params: ProtocolParameters = PARAMS,
) -> list[str]:
    """Overall PVTT responses for a baseline thrombus of 20.0 mm Vp3 and these follow-ups."""
    days = [WEEK_6, WEEK_12, WEEK_18, dt.date(2025, 7, 23)]
    scans = [scan(k + 2, days[k], target("T1", 40.0), pvtt=read) for k, read in enumerate(reads)]
    first = baseline(target("T1", 40.0), pvtt=base or thrombus(20.0))
    return overall(first, *scans, criterion=PVTT, params=params)


def test_thrombus_gone_or_no_longer_enhancing_is_complete_response() -> None:
    assert pvtt_course({"present": False}, thrombus(18.0, enhancing=False)) == [CR, CR]


def test_thrombus_at_exactly_70_percent_of_baseline_is_partial_response() -> None:
    assert pvtt_course(thrombus(14.0)) == [PR]
    assert pvtt_course(thrombus(14.1)) == [SD]


def test_thrombus_20_percent_over_its_nadir_is_progression() -> None:
    # 20.0 → 10.0 (PR, nadir) → 12.0: +2.0 mm is 20 % of the nadir.
    assert pvtt_course(thrombus(10.0), thrombus(12.0)) == [PR, PD]
    assert pvtt_course(thrombus(10.0), thrombus(11.9)) == [PR, PR]


def test_higher_vp_grade_than_at_the_nadir_is_progression() -> None:
    assert pvtt_course(thrombus(20.0, "Vp4")) == [PD]
    # Nadir 15.0 mm at Vp2: back to Vp3 at the same size is a grade increase over the nadir.
    assert pvtt_course(thrombus(15.0, "Vp2"), thrombus(15.0, "Vp3")) == [SD, PD]


def test_thrombus_in_a_new_branch_is_progression() -> None:
    assert pvtt_course(thrombus(12.0, new_branch=True)) == [PD]


def test_thrombus_returning_after_complete_response_is_progression() -> None:
    assert pvtt_course({"present": False}, thrombus(4.0, "Vp1")) == [CR, PD]


def test_scan_without_a_pvtt_read_is_not_evaluable() -> None:
    assert pvtt_course(None, thrombus(20.0)) == [NE, SD]


def test_thresholds_are_protocol_parameters() -> None:
    params = ProtocolParameters(pvtt_pr_ratio_pct=50, pvtt_pd_increase_pct=25)
    # 14.0 is 70 % of 20.0 (SD at 50 %); 10.0 → 12.0 is +20 % (< 25 %).
    assert pvtt_course(thrombus(14.0), params=params) == [SD]
    assert pvtt_course(thrombus(10.0), thrombus(12.0), params=params) == [PR, SD]


def test_only_patients_with_pvtt_at_baseline_have_pvtt_responses() -> None:
    patient = assess_patient(
        [baseline(target("T1", 40.0)), scan(2, WEEK_6, target("T1", 30.0), pvtt=thrombus(9.0))],
        START,
        PARAMS,
    )
    assert not patient.has_pvtt
    assert not patient.measurable(PVTT)
    assert patient.timepoints[PVTT] == ()


def test_pvtt_timepoint_reports_the_thrombus_diameter_and_its_change() -> None:
    tp = responses(
        baseline(target("T1", 40.0), pvtt=thrombus(20.0)),
        scan(2, WEEK_6, target("T1", 40.0), pvtt=thrombus(15.0), calls={"pvtt": "PR"}),
        criterion=PVTT,
    )[0]
    assert (tp.overall, tp.target_sum_mm, tp.pct_change_from_baseline) == (
        SD,
        Decimal("15.0"),
        -25.0,
    )
    assert tp.disagrees
    assert tp.flags == ("reader_disagrees",)


def test_pvtt_progression_is_dated_at_its_scan() -> None:
    tps = responses(
        baseline(target("T1", 40.0), pvtt=thrombus(20.0)),
        scan(2, WEEK_6, target("T1", 40.0), pvtt=thrombus(20.0, "Vp4")),
        criterion=PVTT,
    )
    assert [(tp.overall, tp.pd_date) for tp in tps] == [(PD, WEEK_6)]
