"""RECIST 1.1 per timepoint (DOMAIN.md "RECIST 1.1"): given scan reads, these responses.

The builders at the top are shared by the mRECIST, PVTT and BOR tests.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from events import ProtocolParameters, ScanRead
from projections.criteria.recist import CR, NE, NON_CR_NON_PD, PD, PR, SD, overall_response
from projections.criteria.response import RECIST, TimepointResponse, assess_patient
from projections.fold.history import Effective

pytestmark = pytest.mark.unit

PARAMS = ProtocolParameters()
START = dt.date(2025, 2, 5)
BASELINE_ON = dt.date(2025, 1, 28)
WEEK_6, WEEK_12, WEEK_18 = dt.date(2025, 3, 19), dt.date(2025, 4, 30), dt.date(2025, 6, 11)


def target(lesion_id: str, ld: float | None = None, **fields: Any) -> dict[str, Any]:
    """A target lesion, in the liver unless told otherwise."""
    base: dict[str, Any] = {
        "lesion_id": lesion_id,
        "role": "target",
        "location": "intrahepatic",
        "organ": "liver",
    }
    if ld is not None:
        base["longest_diameter_mm"] = ld
    return base | fields


def node(lesion_id: str, short_axis: float | None, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "lesion_id": lesion_id,
        "role": "target",
        "location": "extrahepatic",
        "organ": "mediastinum",
        "is_lymph_node": True,
    }
    if short_axis is not None:
        base["short_axis_mm"] = short_axis
    return base | fields


def non_target(lesion_id: str, status: str, **fields: Any) -> dict[str, Any]:
    base = {
        "lesion_id": lesion_id,
        "role": "non_target",
        "status": status,
        "location": "intrahepatic",
        "organ": "liver",
    }
    return base | fields


def new(lesion_id: str, ld: float | None = 8.0, **fields: Any) -> dict[str, Any]:
    """A new lesion, in the lung unless told otherwise."""
    base = {
        "lesion_id": lesion_id,
        "role": "new",
        "location": "extrahepatic",
        "organ": "lung",
        "longest_diameter_mm": ld,
    }
    return base | fields


def scan(
    seq: int,
    on: dt.date,
    *lesions: dict[str, Any],
    timepoint: str = "follow_up",
    pvtt: dict[str, Any] | None = None,
    calls: dict[str, str] | None = None,
    ascites: bool = False,
) -> Effective:
    """One effective `scan_read`, as the ledger would hold it at `seq`."""
    event = ScanRead.model_validate(
        {
            "event_id": str(UUID(int=seq)),
            "trial_id": "HAIC",
            "site_id": "site01",
            "patient_id": "P0001",
            "occurred_on": on.isoformat(),
            "recorded_by": "rad07",
            "data": {
                "timepoint": timepoint,
                "lesions": list(lesions),
                "pvtt": pvtt,
                "reader_calls": calls or {},
                "new_ascites_cytology_proven": ascites,
            },
        }
    )
    return Effective(seq, event)


def baseline(*lesions: dict[str, Any], **kwargs: Any) -> Effective:
    return scan(1, BASELINE_ON, *lesions, timepoint="baseline", **kwargs)


def responses(
    *scans: Effective,
    criterion: str = RECIST,
    params: ProtocolParameters = PARAMS,
    startdt: dt.date | None = START,
) -> tuple[TimepointResponse, ...]:
    return assess_patient(scans, startdt, params).timepoints[criterion]


def overall(*scans: Effective, **kwargs: Any) -> list[str]:
    return [tp.overall for tp in responses(*scans, **kwargs)]


def test_sum_exactly_30_percent_below_baseline_is_partial_response() -> None:
    tps = responses(
        baseline(target("T1", 60.0), target("T2", 40.0)),
        scan(2, WEEK_6, target("T1", 42.0), target("T2", 28.0)),
    )
    assert tps[0].target_response == PR
    assert tps[0].overall == PR
    assert tps[0].target_sum_mm == Decimal("70.0")
    assert tps[0].pct_change_from_baseline == -30.0


def test_sum_29_9_percent_below_baseline_is_stable_disease() -> None:
    tps = responses(
        baseline(target("T1", 60.0), target("T2", 40.0)),
        scan(2, WEEK_6, target("T1", 42.1), target("T2", 28.0)),
    )
    assert tps[0].overall == SD
    assert tps[0].target_sum_mm == Decimal("70.1")


def test_20_percent_and_5_mm_over_nadir_is_progression() -> None:
    # 25.0 → 30.0 mm: +5.0 mm is exactly 20 % of the nadir (the baseline).
    assert overall(baseline(target("T1", 25.0)), scan(2, WEEK_6, target("T1", 30.0))) == [PD]


def test_20_percent_but_only_4_mm_over_nadir_is_not_progression() -> None:
    # 20.0 → 24.0 mm: +20 % but +4 mm < the 5 mm RECIST 1.1 minimum.
    assert overall(baseline(target("T1", 20.0)), scan(2, WEEK_6, target("T1", 24.0))) == [SD]


def test_progression_is_measured_from_the_nadir_not_the_baseline() -> None:
    # 100 → 50 (PR, nadir 50) → 60: +10 mm = +20 % over the nadir, still 40 % below baseline.
    tps = responses(
        baseline(target("T1", 100.0)),
        scan(2, WEEK_6, target("T1", 50.0)),
        scan(3, WEEK_12, target("T1", 60.0)),
    )
    assert [tp.overall for tp in tps] == [PR, PD]
    assert tps[1].pct_change_from_nadir == 20.0
    assert tps[1].pct_change_from_baseline == -40.0
    assert tps[1].pd_date == WEEK_12


def test_target_not_assessed_makes_the_timepoint_not_evaluable() -> None:
    tps = responses(
        baseline(target("T1", 50.0), target("T2", 50.0)),
        scan(2, WEEK_6, target("T1", 30.0), target("T2", not_assessed=True)),
    )
    assert tps[0].target_response == NE
    assert tps[0].overall == NE
    assert tps[0].target_sum_mm is None


def test_target_missing_from_the_scan_is_not_assessed() -> None:
    assert overall(
        baseline(target("T1", 50.0), target("T2", 50.0)), scan(2, WEEK_6, target("T1", 20.0))
    ) == [NE]


def test_progression_can_be_declared_with_a_target_not_assessed() -> None:
    # T1 alone already exceeds the nadir of 100 mm by 30 mm (30 %).
    assert overall(
        baseline(target("T1", 50.0), target("T2", 50.0)),
        scan(2, WEEK_6, target("T1", 130.0), target("T2", not_assessed=True)),
    ) == [PD]


def test_disappeared_target_is_complete_response_and_reappearance_of_5_mm_is_progression() -> None:
    # After a CR the nadir is 0: a target back at 5 mm is ≥ 20 % and ≥ 5 mm over it.
    tps = responses(
        baseline(target("T1", 20.0)),
        scan(2, WEEK_6, target("T1", 0.0)),
        scan(3, WEEK_12, target("T1", 5.0)),
    )
    assert [tp.overall for tp in tps] == [CR, PD]


def test_target_too_small_to_measure_read_as_5_mm_is_not_complete_response() -> None:
    assert overall(baseline(target("T1", 20.0)), scan(2, WEEK_6, target("T1", 5.0))) == [PR]


def test_new_lesion_after_complete_response_is_progression() -> None:
    tps = responses(
        baseline(target("T1", 20.0)),
        scan(2, WEEK_6, target("T1", 0.0)),
        scan(3, WEEK_12, target("T1", 0.0), new("N1")),
    )
    assert [tp.overall for tp in tps] == [CR, PD]
    assert tps[1].target_response == CR
    assert tps[1].new_lesion


def test_nodal_target_below_10_mm_short_axis_counts_as_complete_response() -> None:
    tps = responses(
        baseline(target("T1", 30.0), node("L1", 18.0)),
        scan(2, WEEK_6, target("T1", 0.0), node("L1", 9.9)),
        scan(3, WEEK_12, target("T1", 0.0), node("L1", 10.0)),
    )
    # A CR sum is not 0 when nodes remain: 9.9 mm here.
    assert tps[0].overall == CR
    assert tps[0].target_sum_mm == Decimal("9.9")
    assert tps[1].overall == PR


def test_non_target_only_disease_follows_the_non_target_response() -> None:
    only = non_target("NT1", "present")
    assert overall(
        baseline(only),
        scan(2, WEEK_6, non_target("NT1", "present")),
        scan(3, WEEK_12, non_target("NT1", "absent")),
        scan(4, WEEK_18, non_target("NT1", "not_assessed")),
    ) == [NON_CR_NON_PD, CR, NE]
    assert overall(
        baseline(only), scan(2, WEEK_6, non_target("NT1", "unequivocal_progression"))
    ) == [PD]
    patient = assess_patient([baseline(only)], START, PARAMS)
    assert not patient.measurable(RECIST)
    assert patient.baselines[RECIST].has_disease


def test_target_complete_response_with_persisting_non_target_is_partial_response() -> None:
    tps = responses(
        baseline(target("T1", 30.0), non_target("NT1", "present")),
        scan(2, WEEK_6, target("T1", 0.0), non_target("NT1", "present")),
    )
    assert (tps[0].target_response, tps[0].non_target_response, tps[0].overall) == (
        CR,
        NON_CR_NON_PD,
        PR,
    )


def test_nodal_non_target_back_below_10_mm_counts_as_gone() -> None:
    tps = responses(
        baseline(
            target("T1", 30.0),
            non_target("L2", "present", is_lymph_node=True, short_axis_mm=12.0, organ="hilum"),
        ),
        scan(
            2,
            WEEK_6,
            target("T1", 0.0),
            non_target("L2", "present", is_lymph_node=True, short_axis_mm=9.0, organ="hilum"),
        ),
    )
    assert tps[0].non_target_response == CR
    assert tps[0].overall == CR


@pytest.mark.parametrize(
    ("target_response", "non_target_response", "new_lesion", "expected"),
    [
        (CR, CR, False, CR),
        (CR, None, False, CR),
        (CR, NON_CR_NON_PD, False, PR),
        (CR, NE, False, PR),
        (PR, NE, False, PR),
        (SD, NON_CR_NON_PD, False, SD),
        (SD, NE, False, SD),
        (NE, NON_CR_NON_PD, False, NE),
        (PR, PD, False, PD),
        (CR, CR, True, PD),
        (None, CR, False, CR),
        (None, NON_CR_NON_PD, False, NON_CR_NON_PD),
        (None, NE, False, NE),
        (None, None, False, NE),
    ],
)
def test_overall_response_follows_the_recist_combination_table(
    target_response: str | None, non_target_response: str | None, new_lesion: bool, expected: str
) -> None:
    assert overall_response(target_response, non_target_response, new_lesion) == expected


def test_equivocal_new_lesion_later_confirmed_dates_progression_at_first_sighting() -> None:
    tps = responses(
        baseline(target("T1", 40.0)),
        scan(2, WEEK_6, target("T1", 30.0), new("N1", equivocal=True)),
        scan(3, WEEK_12, target("T1", 30.0), new("N1", 12.0)),
    )
    assert [tp.overall for tp in tps] == [PD, PD]
    assert [tp.pd_date for tp in tps] == [WEEK_6, WEEK_6]
    assert "equivocal_new_lesion_confirmed_later:N1" in tps[0].flags


def test_equivocal_new_lesion_never_confirmed_is_not_progression() -> None:
    assert overall(
        baseline(target("T1", 40.0)),
        scan(2, WEEK_6, target("T1", 30.0), new("N1", equivocal=True)),
        scan(3, WEEK_12, target("T1", 30.0)),
    ) == [SD, SD]


def test_cytology_proven_new_ascites_is_progression() -> None:
    tps = responses(baseline(target("T1", 40.0)), scan(2, WEEK_6, target("T1", 30.0), ascites=True))
    assert tps[0].overall == PD
    assert tps[0].extrahepatic_pd


def test_baseline_breaking_the_target_selection_rules_is_flagged_and_still_assessed() -> None:
    lesions = [target(f"T{k}", 20.0) for k in range(1, 4)] + [
        node("L1", 12.0),  # 10–<15 mm: a non-target by rule
        node("L2", 16.0, organ="hilum"),
        node("L3", 15.0, organ="axilla"),  # three nodes in three organs: one organ, "nodes"
        target("T9", 8.0, organ="lung", location="extrahepatic"),
    ]
    patient = assess_patient(
        [
            baseline(*lesions),
            scan(
                2,
                WEEK_6,
                *[target(f"T{k}", 10.0) for k in range(1, 4)],
                node("L1", 6.0),
                node("L2", 8.0),
                node("L3", 7.0),
                target("T9", 4.0, organ="lung", location="extrahepatic"),
            ),
        ],
        START,
        PARAMS,
    )
    flags = set(patient.baselines[RECIST].flags)
    assert {
        "more_than_5_targets",
        "more_than_2_targets_in:liver",
        "more_than_2_targets_in:lymph_node",
        "target_not_measurable:L1",
        "target_not_measurable:T9",
    } <= flags
    assert "target_not_measurable:L3" not in flags
    assert patient.baselines[RECIST].target_sum_mm == Decimal("111.0")
    # 30 + 6 + 8 + 7 + 4 = 55.0 mm, 49.5 % of 111.0: all seven targets still count.
    assert patient.timepoints[RECIST][0].overall == PR


def test_baseline_is_the_last_scan_on_or_before_start_within_the_screening_window() -> None:
    too_early = scan(1, START - dt.timedelta(days=29), target("T1", 90.0), timepoint="baseline")
    screening = scan(5, START - dt.timedelta(days=3), target("T1", 50.0), timepoint="baseline")
    follow_up = scan(3, WEEK_6, target("T1", 35.0))  # entered before the screening read
    patient = assess_patient([too_early, follow_up, screening], START, PARAMS)
    assert patient.baseline_seq == 5
    assert patient.baselines[RECIST].target_sum_mm == Decimal("50.0")
    assert [tp.overall for tp in patient.timepoints[RECIST]] == [PR]


def test_without_a_baseline_every_follow_up_is_not_evaluable() -> None:
    too_early = scan(1, START - dt.timedelta(days=29), target("T1", 90.0), timepoint="baseline")
    patient = assess_patient(
        [too_early, scan(2, WEEK_6, target("T1", 30.0), new("N1"))], START, PARAMS
    )
    assert patient.baseline_seq is None
    assert [tp.overall for tp in patient.timepoints[RECIST]] == [NE]
    assert not patient.measurable(RECIST)


def test_without_startdt_the_scan_marked_baseline_is_used() -> None:
    assert overall(
        baseline(target("T1", 50.0)), scan(2, WEEK_6, target("T1", 35.0)), startdt=None
    ) == [PR]


def test_reader_call_differing_from_the_computed_response_is_flagged() -> None:
    tps = responses(
        baseline(target("T1", 50.0)),
        scan(2, WEEK_6, target("T1", 36.0), calls={"recist": "PR"}),
        scan(3, WEEK_12, target("T1", 35.0), calls={"recist": "PR"}),
    )
    # 36/50 = 72 % of baseline: SD, not the PR the reader called.
    assert [(tp.overall, tp.reader_call, tp.disagrees) for tp in tps] == [
        (SD, "PR", True),
        (PR, "PR", False),
    ]
    assert "reader_disagrees" in tps[0].flags


def test_partial_sums_do_not_lower_the_nadir() -> None:
    # The NE read (T2 missing, known sum 20) must not become the nadir: 60 is +20 % of 50, not of 20.
    assert overall(
        baseline(target("T1", 30.0), target("T2", 30.0)),
        scan(2, WEEK_6, target("T1", 25.0), target("T2", 25.0)),
        scan(3, WEEK_12, target("T1", 20.0)),
        scan(4, WEEK_18, target("T1", 30.0), target("T2", 30.0)),
    ) == [SD, NE, PD]
