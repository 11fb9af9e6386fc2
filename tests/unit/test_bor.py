"""Best overall response, unconfirmed and confirmed (DOMAIN.md "Best overall response and ORR").

The worked examples mirror pharmaverse admiralonco's unit tests
(tests/testthat/test-derive_param_bor.R and test-derive_param_confirmed_bor.R): the same
patients, treatment start dates (TRTSDT = our STARTDT) and overall responses, run with
`ref_start_window = 28` and `ref_confirm = 28`, i.e. `sd_min_days = 28`, `confirm_days = 28`.
Where admiralonco keeps a separate PD date source, our PD is itself an assessment.
"""

from __future__ import annotations

import datetime as dt

import pytest

from events import ProtocolParameters
from projections.criteria.recist import CR, NE, NON_CR_NON_PD, PD, PR, SD
from projections.criteria.response import (
    MISSING,
    RECIST,
    BestResponse,
    TimepointResponse,
    assess_patient,
    best_response,
    confirmed_best_response,
)
from tests.unit.test_recist import baseline, scan, target

pytestmark = pytest.mark.unit

ADMIRALONCO = ProtocolParameters(sd_min_days=28, confirm_days=28)
D = dt.date.fromisoformat


def tp(on: str, overall: str, seq: int = 0) -> TimepointResponse:
    return TimepointResponse(
        criterion=RECIST,
        occurred_on=D(on),
        seq=seq,
        target_response=None,
        non_target_response=None,
        new_lesion=False,
        overall=overall,
        target_sum_mm=None,
        pct_change_from_baseline=None,
        pct_change_from_nadir=None,
        pd_date=D(on) if overall == PD else None,
        intrahepatic_pd=False,
        extrahepatic_pd=False,
        reader_call=None,
        disagrees=False,
        flags=(),
    )


def course(*reads: tuple[str, str]) -> list[TimepointResponse]:
    return [tp(on, overall, seq) for seq, (on, overall) in enumerate(reads, start=2)]


# admiralonco's ADSL (TRTSDT) and OVR records, patient by patient.
PATIENTS: dict[str, tuple[str, list[TimepointResponse]]] = {
    "1": (
        "2020-01-01",
        course(
            ("2020-01-01", PR),
            ("2020-02-01", CR),
            ("2020-02-16", NE),
            ("2020-03-01", CR),
            ("2020-04-01", SD),
        ),
    ),
    "2": (
        "2019-12-12",
        course(("2020-01-01", SD), ("2020-02-01", PR), ("2020-03-01", SD), ("2020-03-13", CR)),
    ),
    "3": ("2019-11-11", course(("2019-11-12", CR), ("2019-12-02", CR), ("2020-01-01", SD))),
    "4": (
        "2019-12-30",
        course(
            ("2020-01-01", PR),
            ("2020-03-01", SD),
            ("2020-04-01", SD),
            ("2020-05-01", PR),
            ("2020-05-15", NON_CR_NON_PD),
        ),
    ),
    "5": (
        "2020-01-01",
        course(
            ("2020-01-01", PR),
            ("2020-01-10", SD),
            ("2020-01-20", PR),
            ("2020-05-15", NON_CR_NON_PD),
        ),
    ),
    "6": ("2020-02-02", course(("2020-02-06", PR), ("2020-02-16", CR), ("2020-03-30", PR))),
    "7": ("2020-02-02", course(("2020-02-06", PR), ("2020-02-16", CR), ("2020-04-01", NE))),
    "8": ("2020-04-01", []),
    "9": ("2020-02-01", course(("2020-02-16", PD), ("2020-03-06", SD))),
}


def bor(patient: str, params: ProtocolParameters = ADMIRALONCO) -> tuple[str, dt.date | None]:
    start, tps = PATIENTS[patient]
    result = best_response(tps, D(start), params)
    return result.response, result.occurred_on


def cbor(patient: str, params: ProtocolParameters = ADMIRALONCO) -> tuple[str, dt.date | None]:
    start, tps = PATIENTS[patient]
    result = confirmed_best_response(tps, D(start), params)
    return result.response, result.occurred_on


@pytest.mark.parametrize(
    ("patient", "expected"),
    [
        ("1", (CR, D("2020-02-01"))),
        ("2", (CR, D("2020-03-13"))),
        ("3", (CR, D("2019-11-12"))),
        ("4", (PR, D("2020-01-01"))),
        ("5", (PR, D("2020-01-01"))),
        ("6", (CR, D("2020-02-16"))),
        ("7", (CR, D("2020-02-16"))),
        ("8", (MISSING, None)),
        ("9", (PD, D("2020-02-16"))),
    ],
)
def test_best_overall_response_mirrors_admiralonco_bor_test_1(
    patient: str, expected: tuple[str, dt.date | None]
) -> None:
    """derive_param_bor Test 1 (no source_pd): CR and PR need no time window."""
    assert bor(patient) == expected


def test_stable_disease_before_the_minimum_duration_is_not_evaluable() -> None:
    """derive_param_bor Test 1, third case: SD only before TRTSDT + ref_start_window → NE at
    the first assessment. Shown with the default sd_min_days = 42 (day 41 vs day 42)."""
    start = D("2025-02-05")
    early = [tp("2025-02-20", SD), tp("2025-03-18", SD)]
    assert best_response(early, start, ProtocolParameters()) == BestResponse(NE, D("2025-02-20"), 0)
    on_time = [*early, tp("2025-03-19", SD, seq=9)]
    assert best_response(on_time, start, ProtocolParameters()) == BestResponse(
        SD, D("2025-03-19"), 9
    )


def test_assessments_after_the_first_progression_are_ignored() -> None:
    """derive_param_bor Test 2 (with source_pd), patient 2: PD on 2020-03-01 removes the later
    CR, so BOR is the PR. Here the PD is a second read on the SD's date, and the worst read of
    a date is kept."""
    start, tps = PATIENTS["2"]
    with_pd = [*tps, tp("2020-03-01", PD, seq=20)]
    assert best_response(with_pd, D(start), ADMIRALONCO) == BestResponse(PR, D("2020-02-01"), 3)


@pytest.mark.parametrize(
    ("patient", "expected"),
    [
        ("1", (CR, D("2020-02-01"))),
        ("2", (SD, D("2020-02-01"))),
        ("3", (SD, D("2020-01-01"))),
        ("4", (SD, D("2020-03-01"))),
        ("5", (NON_CR_NON_PD, D("2020-05-15"))),
        ("6", (SD, D("2020-03-30"))),
        ("7", (NE, D("2020-02-06"))),
        ("8", (MISSING, None)),
        ("9", (PD, D("2020-02-16"))),
    ],
)
def test_confirmed_best_overall_response_mirrors_admiralonco_confirmed_bor_test_1(
    patient: str, expected: tuple[str, dt.date | None]
) -> None:
    """derive_param_confirmed_bor Test 1 (default confirmed BOR). Patient 1: CR confirmed with
    one NE between; 6: CR then PR is not a confirmed response; 7: nothing confirmable, all
    early → NE."""
    assert cbor(patient) == expected


@pytest.mark.parametrize(
    ("patient", "expected"),
    [
        ("1", (PR, D("2020-01-01"))),
        ("3", (CR, D("2019-11-12"))),
        ("4", (SD, D("2020-03-01"))),
        ("6", (SD, D("2020-03-30"))),
        ("9", (PD, D("2020-02-16"))),
    ],
)
def test_confirmed_best_overall_response_mirrors_admiralonco_confirmed_bor_test_2(
    patient: str, expected: tuple[str, dt.date | None]
) -> None:
    """derive_param_confirmed_bor Test 2: ref_confirm = 14, max_nr_ne = 0. Patient 1's CR
    now fails (an NE between) and the PR is confirmed by the CR; patient 3's CR is confirmed
    20 days later. Patients 2, 5, 7, 8 depend on accept_sd / ND / missing_as_ne, which the
    protocol does not use, and are left out."""
    assert (
        cbor(patient, ProtocolParameters(sd_min_days=28, confirm_days=14, max_ne_between=0))
        == expected
    )


def test_no_ne_allowance_leaves_a_partial_response_confirmed_by_the_cr() -> None:
    """Patient 1 with max_ne_between = 0: PR 2020-01-01 → CR 2020-02-01 (31 days) confirms
    the PR; the CR's confirmation has an NE between."""
    assert cbor("1", ProtocolParameters(sd_min_days=28, confirm_days=28, max_ne_between=0)) == (
        PR,
        D("2020-01-01"),
    )


def test_two_not_evaluable_reads_between_break_the_confirmation() -> None:
    start = D("2025-02-05")
    tps = course(("2025-03-19", CR), ("2025-04-02", NE), ("2025-04-09", NE), ("2025-04-30", CR))
    assert confirmed_best_response(tps, start, ProtocolParameters()).response == SD
    one_ne = course(("2025-03-19", CR), ("2025-04-02", NE), ("2025-04-30", CR))
    assert confirmed_best_response(one_ne, start, ProtocolParameters()).response == CR


def test_partial_response_then_complete_response_is_a_confirmed_partial_response() -> None:
    start = D("2025-02-05")
    tps = course(("2025-03-19", PR), ("2025-04-30", CR))
    assert confirmed_best_response(tps, start, ProtocolParameters()) == BestResponse(
        PR, D("2025-03-19"), 2
    )
    assert best_response(tps, start, ProtocolParameters()).response == CR


def test_response_confirmed_too_early_is_not_confirmed() -> None:
    start = D("2025-02-05")
    tps = course(("2025-03-19", PR), ("2025-04-15", PR))  # 27 days apart
    assert confirmed_best_response(tps, start, ProtocolParameters()).response == SD


def test_unconfirmed_early_response_before_the_sd_window_is_not_evaluable() -> None:
    start = D("2025-02-05")
    tps = course(("2025-03-01", PR), ("2025-03-10", PD))
    assert confirmed_best_response(tps, start, ProtocolParameters()) == BestResponse(
        PD, D("2025-03-10"), 3
    )
    assert confirmed_best_response(tps[:1], start, ProtocolParameters()).response == NE


def test_reads_on_one_date_keep_the_worst_and_any_response_beats_ne() -> None:
    start = D("2025-02-05")
    assert best_response(
        [tp("2025-03-19", NE, 5), tp("2025-03-19", PR, 6)], start, ProtocolParameters()
    ) == BestResponse(PR, D("2025-03-19"), 6)
    assert (
        best_response(
            [tp("2025-03-19", PR, 5), tp("2025-03-19", PD, 6)], start, ProtocolParameters()
        ).response
        == PD
    )


def test_assessments_from_subsequent_therapy_on_are_ignored() -> None:
    start = D("2025-02-05")
    tps = course(("2025-03-19", SD), ("2025-04-30", CR))
    assert best_response(tps, start, ProtocolParameters(), D("2025-04-30")).response == SD
    assert best_response(tps, start, ProtocolParameters(), D("2025-05-01")).response == CR


def test_patient_never_treated_has_missing_best_response() -> None:
    assert best_response(course(("2025-03-19", CR)), None, ProtocolParameters()).response == (
        MISSING
    )


def test_patient_responses_give_best_and_confirmed_response_and_waterfall_change() -> None:
    scans = [
        baseline(target("T1", 50.0)),
        scan(2, D("2025-03-19"), target("T1", 30.0)),  # −40 % PR
        scan(3, D("2025-04-30"), target("T1", 25.0)),  # −50 % PR, confirms
        scan(4, D("2025-06-11"), target("T1", 40.0)),  # +60 % over the nadir: PD
        scan(5, D("2025-07-23"), target("T1", 10.0)),  # after PD: ignored
    ]
    patient = assess_patient(scans, D("2025-02-05"), ProtocolParameters())
    assert patient.best_response(RECIST) == BestResponse(PR, D("2025-03-19"), 2)
    assert patient.confirmed_best_response(RECIST) == BestResponse(PR, D("2025-03-19"), 2)
    assert patient.best_pct_change(RECIST) == -50.0
    assert patient.measurable(RECIST)

    treated_again = assess_patient(scans, D("2025-02-05"), ProtocolParameters(), D("2025-04-01"))
    assert treated_again.best_response(RECIST) == BestResponse(PR, D("2025-03-19"), 2)
    assert treated_again.confirmed_best_response(RECIST) == BestResponse(SD, D("2025-03-19"), 2)
    assert treated_again.best_pct_change(RECIST) == -40.0
