"""Hand-worked clinical cases for issue 14 "Clinical derivations" (items 21-24).

Calendar of tests/unit/test_endpoints.py (2024, a leap year): baseline scan 3 Jan, STARTDT =
first HAIC infusion 10 Jan (day 1); scans every 6 weeks on 21 Feb (day 43), 3 Apr (day 85),
15 May (day 127).
"""

from __future__ import annotations

from typing import Any

import pytest

from events import ProtocolParameters
from projections.recist import SD
from projections.response import MRECIST
from tests.unit.test_endpoints import (
    BASELINE,
    START,
    W6,
    W12,
    Ledger,
    derive,
    outcome,
    scan_data,
)
from tests.unit.test_mrecist import responses
from tests.unit.test_recist import WEEK_6, WEEK_12, baseline, scan, target

pytestmark = pytest.mark.unit

LUNG = {"organ": "lung", "location": "extrahepatic"}


def lung(ld: float, lesion_id: str = "L1") -> dict[str, Any]:
    return {"lesion_id": lesion_id, "role": "target", "longest_diameter_mm": ld, **LUNG}


def liver_target(ld: float, viable: float) -> dict[str, Any]:
    return {
        "lesion_id": "T1",
        "role": "target",
        "location": "intrahepatic",
        "organ": "liver",
        "longest_diameter_mm": ld,
        "viable_diameter_mm": viable,
    }


# --- 23. PFS extra-hepatic: RECIST 1.1 on the extra-hepatic targets, as intra-hepatic -----------


def test_growing_lung_target_is_extrahepatic_progression_while_the_liver_responds() -> None:
    # Liver viable 40 → 20 mm, lung 20 → 26 mm. Whole mRECIST sum 60 → 46 (−23 %): SD.
    # Extra-hepatic sum 20 → 26: +30 % and +6 mm over its nadir (20) — RECIST 1.1 PD.
    tp = responses(
        baseline(target("T1", 40.0, viable_diameter_mm=40.0), target("L1", 20.0, **LUNG)),
        scan(2, WEEK_6, target("T1", 40.0, viable_diameter_mm=20.0), target("L1", 26.0, **LUNG)),
        criterion=MRECIST,
    )[0]
    assert (tp.overall, tp.extrahepatic_pd, tp.intrahepatic_pd) == (SD, True, False)


def test_extrahepatic_growth_of_4_mm_is_not_progression_by_the_recist_5_mm_clause() -> None:
    # Lung 20 → 24 mm: +20 % but only +4 mm: RECIST 1.1 §4.3.1 needs 5 mm.
    tp = responses(
        baseline(target("T1", 40.0, viable_diameter_mm=40.0), target("L1", 20.0, **LUNG)),
        scan(2, WEEK_6, target("T1", 40.0, viable_diameter_mm=40.0), target("L1", 24.0, **LUNG)),
        criterion=MRECIST,
    )[0]
    assert not tp.extrahepatic_pd


def test_extrahepatic_progression_is_measured_against_the_extrahepatic_nadir() -> None:
    # Lung 30 → 15 (nadir) → 21 mm: +40 %, +6 mm over the nadir, still below baseline.
    tps = responses(
        baseline(target("T1", 40.0, viable_diameter_mm=40.0), target("L1", 30.0, **LUNG)),
        scan(2, WEEK_6, target("T1", 40.0, viable_diameter_mm=40.0), target("L1", 15.0, **LUNG)),
        scan(3, WEEK_12, target("T1", 40.0, viable_diameter_mm=40.0), target("L1", 21.0, **LUNG)),
        criterion=MRECIST,
    )
    assert [tp.extrahepatic_pd for tp in tps] == [False, True]


def test_extrahepatic_target_growth_is_no_event_when_the_parameter_excludes_baseline_disease() -> (
    None
):
    off = ProtocolParameters(extrahepatic_pd_includes_baseline_progression=False)
    tp = responses(
        baseline(target("T1", 40.0, viable_diameter_mm=40.0), target("L1", 20.0, **LUNG)),
        scan(2, WEEK_6, target("T1", 40.0, viable_diameter_mm=20.0), target("L1", 26.0, **LUNG)),
        criterion=MRECIST,
        params=off,
    )[0]
    assert not tp.extrahepatic_pd


def test_lung_target_growth_ends_extrahepatic_pfs_but_not_overall_pfs() -> None:
    ledger = Ledger()
    ledger.add(
        "scan_read", BASELINE, scan_data(liver_target(40.0, 40.0), lung(20.0), timepoint="baseline")
    )
    ledger.add("infusion_given", START, {"agent": "haic", "cycle": 1})
    ledger.add("scan_read", W6, scan_data(liver_target(40.0, 20.0), lung(26.0)))
    ledger.add("scan_read", W12, scan_data(liver_target(40.0, 20.0), lung(26.0)))
    result = derive(ledger)
    assert outcome(result, "PFSEH") == (W6, 43, 0)
    assert outcome(result, "PFS") == (W12, 85, 1)  # mRECIST SD throughout: censored
