"""mRECIST for HCC per timepoint (DOMAIN.md "mRECIST (HCC)"), and the intra-/extra-hepatic
progression flags the PFS variants read (DOMAIN.md "PFS intra-hepatic", "PFS extra-hepatic")."""

from __future__ import annotations

from decimal import Decimal

import pytest

from events import ProtocolParameters
from projections.criteria.recist import CR, NE, NON_CR_NON_PD, PD, PR, SD
from projections.criteria.response import MRECIST, RECIST, assess_patient
from tests.unit.test_recist import (
    PARAMS,
    START,
    WEEK_6,
    WEEK_12,
    baseline,
    new,
    node,
    non_target,
    overall,
    responses,
    scan,
    target,
)

pytestmark = pytest.mark.unit

PVTT_ENHANCING = {
    "present": True,
    "vp_grade": "Vp3",
    "thrombus_diameter_mm": 15.0,
    "enhancing": True,
}


def test_20_percent_with_4_mm_is_progression_under_mrecist_but_not_recist() -> None:
    # Viable 20.0 → 24.0 mm: +20 %, +4 mm. The published mRECIST rule has no 5 mm clause.
    scans = (
        baseline(target("T1", 20.0, viable_diameter_mm=20.0)),
        scan(2, WEEK_6, target("T1", 24.0, viable_diameter_mm=24.0)),
    )
    assert overall(*scans, criterion=MRECIST) == [PD]
    assert overall(*scans, criterion=RECIST) == [SD]


def test_mrecist_absolute_minimum_is_a_protocol_parameter() -> None:
    params = ProtocolParameters(mrecist_pd_min_abs_mm=5)
    assert overall(
        baseline(target("T1", 20.0, viable_diameter_mm=20.0)),
        scan(2, WEEK_6, target("T1", 24.0, viable_diameter_mm=24.0)),
        criterion=MRECIST,
        params=params,
    ) == [SD]


def test_shrinking_viable_tumour_is_partial_response_while_the_diameter_holds() -> None:
    # Viable 40.0 → 28.0 mm is −30 %; the longest diameter stays 50 mm (RECIST SD).
    scans = (
        baseline(target("T1", 50.0, viable_diameter_mm=40.0)),
        scan(2, WEEK_6, target("T1", 50.0, viable_diameter_mm=28.0)),
    )
    tp = responses(*scans, criterion=MRECIST)[0]
    assert (tp.overall, tp.target_sum_mm, tp.pct_change_from_baseline) == (
        PR,
        Decimal("28.0"),
        -30.0,
    )
    assert overall(*scans, criterion=RECIST) == [SD]


def test_no_arterial_enhancement_in_any_target_is_complete_response() -> None:
    assert overall(
        baseline(
            target("T1", 50.0, viable_diameter_mm=40.0), target("T2", 30.0, viable_diameter_mm=20.0)
        ),
        scan(
            2,
            WEEK_6,
            target("T1", 45.0, viable_diameter_mm=0.0),
            target("T2", 28.0, viable_diameter_mm=0.0),
        ),
        criterion=MRECIST,
    ) == [CR]


def test_intrahepatic_target_without_a_viable_diameter_is_not_assessed() -> None:
    assert overall(
        baseline(target("T1", 50.0, viable_diameter_mm=40.0)),
        scan(2, WEEK_6, target("T1", 45.0)),
        criterion=MRECIST,
    ) == [NE]


def test_extrahepatic_target_without_viable_diameter_keeps_its_recist_measurement() -> None:
    lung = {"organ": "lung", "location": "extrahepatic"}
    tp = responses(
        baseline(target("T1", 40.0, viable_diameter_mm=40.0), target("T2", 20.0, **lung)),
        scan(2, WEEK_6, target("T1", 40.0, viable_diameter_mm=22.0), target("T2", 20.0, **lung)),
        criterion=MRECIST,
    )[0]
    # (22 + 20) / (40 + 20) = 70 %: PR.
    assert (tp.target_sum_mm, tp.overall) == (Decimal("42.0"), PR)


def test_non_target_that_stops_enhancing_counts_as_gone() -> None:
    tps = responses(
        baseline(
            target("T1", 30.0, viable_diameter_mm=30.0),
            non_target("NT1", "present", enhancing=True),
        ),
        scan(
            2,
            WEEK_6,
            target("T1", 30.0, viable_diameter_mm=0.0),
            non_target("NT1", "present", enhancing=False),
        ),
        scan(
            3,
            WEEK_12,
            target("T1", 30.0, viable_diameter_mm=0.0),
            non_target("NT1", "present", enhancing=True),
        ),
        criterion=MRECIST,
    )
    assert [(tp.non_target_response, tp.overall) for tp in tps] == [
        (CR, CR),
        (NON_CR_NON_PD, PR),
    ]


def test_new_intrahepatic_lesion_counts_from_10_mm_with_the_typical_hcc_pattern() -> None:
    def first_follow_up(lesion: dict[str, object]) -> str:
        return overall(
            baseline(target("T1", 40.0, viable_diameter_mm=40.0)),
            scan(2, WEEK_6, target("T1", 40.0, viable_diameter_mm=30.0), lesion),
            criterion=MRECIST,
        )[0]

    liver = {"location": "intrahepatic", "organ": "liver"}
    assert first_follow_up(new("N1", 10.0, typical_hcc_pattern=True, **liver)) == PD
    assert first_follow_up(new("N1", 9.9, typical_hcc_pattern=True, **liver)) == SD
    assert first_follow_up(new("N1", 25.0, typical_hcc_pattern=False, **liver)) == SD
    assert first_follow_up(new("N1", 4.0)) == PD  # extrahepatic: any unequivocal new lesion


def test_atypical_new_lesion_counts_only_after_10_mm_interval_growth() -> None:
    liver = {"location": "intrahepatic", "organ": "liver", "typical_hcc_pattern": False}
    stable = target("T1", 40.0, viable_diameter_mm=30.0)
    tps = responses(
        baseline(target("T1", 40.0, viable_diameter_mm=40.0)),
        scan(2, WEEK_6, stable, new("N1", 12.0, **liver)),
        scan(3, WEEK_12, stable, new("N1", 21.9, **liver)),
        scan(4, WEEK_12.replace(day=30), stable, new("N1", 22.0, **liver)),
        criterion=MRECIST,
    )
    # Growth is measured from first sighting (12.0 mm), and PD is not re-dated: it was
    # never equivocal, it just did not qualify yet.
    assert [tp.overall for tp in tps] == [SD, SD, PD]
    assert tps[2].pd_date == WEEK_12.replace(day=30)
    assert tps[2].intrahepatic_pd and not tps[2].extrahepatic_pd


def test_porta_hepatis_node_is_malignant_only_from_20_mm_short_axis() -> None:
    porta = {"organ": "porta_hepatis", "location": "extrahepatic"}
    patient = assess_patient(
        [
            baseline(
                target("T1", 40.0, viable_diameter_mm=40.0),
                node("P1", 18.0, **porta),
                node("P2", 22.0, **porta),
            )
        ],
        START,
        PARAMS,
    )
    mrecist = patient.baselines[MRECIST]
    assert "not_malignant_by_size:P1" in mrecist.flags
    assert mrecist.target_sum_mm == Decimal("62.0")  # 40 + 22; P1 is not tumour
    assert patient.baselines[RECIST].target_sum_mm == Decimal("80.0")


def test_new_porta_hepatis_node_below_20_mm_is_not_progression_under_mrecist() -> None:
    scans = (
        baseline(target("T1", 40.0, viable_diameter_mm=40.0)),
        scan(
            2,
            WEEK_6,
            target("T1", 40.0, viable_diameter_mm=35.0),
            new("P9", None, organ="porta_hepatis", is_lymph_node=True, short_axis_mm=15.0),
        ),
    )
    assert overall(*scans, criterion=MRECIST) == [SD]
    assert overall(*scans, criterion=RECIST) == [PD]


def test_enhancing_portal_thrombus_is_a_non_target_that_prevents_complete_response() -> None:
    tps = responses(
        baseline(target("T1", 30.0, viable_diameter_mm=30.0), pvtt=PVTT_ENHANCING),
        scan(2, WEEK_6, target("T1", 30.0, viable_diameter_mm=0.0), pvtt=PVTT_ENHANCING),
        scan(
            3,
            WEEK_12,
            target("T1", 30.0, viable_diameter_mm=0.0),
            pvtt=PVTT_ENHANCING | {"enhancing": False},
        ),
        scan(4, WEEK_12.replace(day=30), target("T1", 30.0, viable_diameter_mm=0.0)),
        criterion=MRECIST,
    )
    assert [(tp.non_target_response, tp.overall) for tp in tps] == [
        (NON_CR_NON_PD, PR),
        (CR, CR),
        (NE, PR),
    ]


def test_new_extrahepatic_lesion_is_extrahepatic_not_intrahepatic_progression() -> None:
    tp = responses(
        baseline(target("T1", 40.0, viable_diameter_mm=40.0)),
        scan(2, WEEK_6, target("T1", 40.0, viable_diameter_mm=20.0), new("N1", 6.0)),
        criterion=MRECIST,
    )[0]
    assert (tp.overall, tp.extrahepatic_pd, tp.intrahepatic_pd) == (PD, True, False)


def test_intrahepatic_progression_uses_liver_targets_only() -> None:
    # Liver viable 30 → 36 (+20 %), lung 50 → 20: the sum falls (80 → 56), the liver grows.
    lung = {"organ": "lung", "location": "extrahepatic"}
    tp = responses(
        baseline(
            target("T1", 40.0, viable_diameter_mm=30.0),
            target("T2", 50.0, viable_diameter_mm=50.0, **lung),
        ),
        scan(
            2,
            WEEK_6,
            target("T1", 40.0, viable_diameter_mm=36.0),
            target("T2", 20.0, viable_diameter_mm=20.0, **lung),
        ),
        criterion=MRECIST,
    )[0]
    assert (tp.overall, tp.intrahepatic_pd, tp.extrahepatic_pd) == (PR, True, False)


def test_baseline_extrahepatic_disease_progressing_is_extrahepatic_progression_by_parameter() -> (
    None
):
    bone = {"organ": "bone", "location": "extrahepatic"}
    scans = (
        baseline(target("T1", 40.0, viable_diameter_mm=40.0), non_target("B1", "present", **bone)),
        scan(
            2,
            WEEK_6,
            target("T1", 40.0, viable_diameter_mm=40.0),
            non_target("B1", "unequivocal_progression", **bone),
        ),
    )
    tp = responses(*scans, criterion=MRECIST)[0]
    assert (tp.overall, tp.extrahepatic_pd, tp.intrahepatic_pd) == (PD, True, False)
    off = ProtocolParameters(extrahepatic_pd_includes_baseline_progression=False)
    assert not responses(*scans, criterion=MRECIST, params=off)[0].extrahepatic_pd


def test_equivocal_new_liver_lesion_confirmed_later_redates_mrecist_progression() -> None:
    liver = {"location": "intrahepatic", "organ": "liver", "typical_hcc_pattern": True}
    stable = target("T1", 40.0, viable_diameter_mm=35.0)
    tps = responses(
        baseline(target("T1", 40.0, viable_diameter_mm=40.0)),
        scan(2, WEEK_6, stable, new("N1", 11.0, equivocal=True, **liver)),
        scan(3, WEEK_12, stable, new("N1", 14.0, **liver)),
        criterion=MRECIST,
    )
    assert [(tp.overall, tp.pd_date, tp.intrahepatic_pd) for tp in tps] == [
        (PD, WEEK_6, True),
        (PD, WEEK_6, True),
    ]


def test_mrecist_reader_disagreement_is_flagged() -> None:
    tp = responses(
        baseline(target("T1", 40.0, viable_diameter_mm=40.0)),
        scan(
            2,
            WEEK_6,
            target("T1", 40.0, viable_diameter_mm=0.0),
            calls={"mrecist": "PR", "recist": "SD"},
        ),
        criterion=MRECIST,
    )[0]
    assert (tp.overall, tp.reader_call, tp.disagrees) == (CR, "PR", True)
