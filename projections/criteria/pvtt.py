"""Response of a portal vein tumour thrombus (PVTT), for patients with PVTT at baseline.

There is no published standard: DOMAIN.md "PVTT response" fixes the rules as protocol
parameters (`pvtt_pr_ratio_pct`, `pvtt_pd_increase_pct`). Thrombus diameters are compared in
integer tenths of a millimetre. For this criterion the `Assessment.target_sum` holds the
thrombus diameter, so the waterfall of PVTT reads like the others.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from events import ProtocolParameters, PvttAssessment, ScanReadData
from projections.criteria.recist import CR, NE, PD, PR, SD, Assessment, percent_change, tenths

VP_RANK = {"Vp1": 1, "Vp2": 2, "Vp3": 3, "Vp4": 4}


@dataclass(frozen=True, slots=True)
class _Nadir:
    """The smallest thrombus so far and its Vp grade (0 once the thrombus is gone)."""

    diameter: int | None
    grade: int

    def after(self, diameter: int | None, grade: int) -> _Nadir:
        if diameter is None:
            return _Nadir(self.diameter, min(self.grade, grade))
        if self.diameter is None or diameter < self.diameter:
            return _Nadir(diameter, grade)
        if diameter == self.diameter:
            return _Nadir(diameter, min(self.grade, grade))
        return self


def has_pvtt(baseline: ScanReadData | None) -> bool:
    """PVTT response is assessed only for patients whose baseline scan shows a thrombus."""
    return baseline is not None and baseline.pvtt is not None and baseline.pvtt.present


def pvtt_response(
    pvtt: PvttAssessment | None,
    baseline_diameter: int | None,
    nadir_diameter: int | None,
    nadir_grade: int,
    params: ProtocolParameters,
) -> str:
    """PVTT response at one timepoint (DOMAIN.md "PVTT response", defaults 70 % / 20 %).

    PD: thrombus in a new branch, a higher Vp grade than at the nadir, or a diameter ≥ 20 %
    above the nadir; CR: no enhancing thrombus (gone, or no longer enhancing); PR: diameter
    ≤ 70 % of baseline; else SD. No PVTT read on the scan → NE, and so is a present,
    enhancing thrombus without a diameter when a baseline diameter exists to compare with.
    """
    if pvtt is None:
        return NE
    if pvtt.new_branch:
        return PD
    if not pvtt.present or pvtt.enhancing is False:
        return CR
    if VP_RANK[pvtt.vp_grade or "Vp1"] > nadir_grade:
        return PD
    diameter = None if pvtt.thrombus_diameter_mm is None else tenths(pvtt.thrombus_diameter_mm)
    if diameter is None:
        return SD if baseline_diameter is None else NE
    if nadir_diameter is not None:
        rise = diameter - nadir_diameter
        if rise > 0 and 100 * rise >= params.pvtt_pd_increase_pct * nadir_diameter:
            return PD
    if baseline_diameter and 100 * diameter <= params.pvtt_pr_ratio_pct * baseline_diameter:
        return PR
    return SD


def assess_pvtt(
    baseline: PvttAssessment,
    scans: Sequence[tuple[dt.date, ScanReadData]],
    params: ProtocolParameters,
) -> tuple[Assessment, ...]:
    """Every follow-up scan's PVTT response; the nadir includes the baseline thrombus.

    A timepoint without an enhancing thrombus sets the nadir to 0 mm and grade 0, so a
    thrombus that comes back after a CR is progression.
    """
    base = None if baseline.thrombus_diameter_mm is None else tenths(baseline.thrombus_diameter_mm)
    nadir = _Nadir(base, VP_RANK[baseline.vp_grade or "Vp1"])
    results: list[Assessment] = []
    for day, data in scans:
        pvtt = data.pvtt
        overall = pvtt_response(pvtt, base, nadir.diameter, nadir.grade, params)
        diameter: int | None = None
        if pvtt is not None and overall == CR:
            diameter = 0
        elif pvtt is not None and pvtt.thrombus_diameter_mm is not None:
            diameter = tenths(pvtt.thrombus_diameter_mm)
        flags = ("pvtt_not_assessed",) if pvtt is None else ()
        results.append(
            Assessment(
                target_response=None,
                non_target_response=None,
                new_lesion=pvtt is not None and pvtt.new_branch,
                overall=overall,
                target_sum=diameter,
                pct_from_baseline=None if diameter is None else percent_change(diameter, base),
                pct_from_nadir=None
                if diameter is None
                else percent_change(diameter, nadir.diameter),
                pd_date=day if overall == PD else None,
                flags=flags,
            )
        )
        if pvtt is not None and overall != NE:
            grade = 0 if overall == CR else VP_RANK[pvtt.vp_grade or "Vp1"]
            nadir = nadir.after(diameter, grade)
    return tuple(results)
