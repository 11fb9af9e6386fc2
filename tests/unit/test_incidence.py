"""AE incidence tables on a hand-built trial of 10 treated patients and 1 never treated.

Every patient starts PD-1 on 2025-01-06 with a single infusion, so the TEAE window runs to
2025-02-05. Patient i's events are numbered 10·i, 10·i + 1, ... (the number is the seq).

    P01  Hypertension G2, lenvatinib probable
    P02  Hypertension G1 → G3, lenvatinib possible, lenvatinib reduced for it; Diarrhea G1
    P03  ALT increased G3, serious (hospitalisation), expected, PD-1 possible
    P04  Fatigue G1
    P05  Pneumonitis G4, unexpected, PD-1 probable (a SUSAR); treatment discontinued for it
    P06  Hepatic failure G3 → G5, unrelated, death linked to it
    P07  no AE
    P08  Abdominal pain before STARTDT, Fatigue G2 on last dose + 31 days: no TEAE
    P09  Diarrhea G2, HAIC definite
    P10  Fatigue G2, Hypertension G1; dies of progression in June
    P11  never treated: Fatigue G3 not counted
"""

from __future__ import annotations

import pytest

from events import LedgerEvent, ProtocolParameters
from projections.safety.episodes import PatientSafety, patient_safety
from projections.statistics.incidence import Count, IncidenceTables, incidence_tables
from tests.unit.test_safety import (
    death,
    discontinued,
    history,
    infusion,
    lenvatinib,
    reported,
    updated,
)

pytestmark = pytest.mark.unit

N = 10


UNRELATED = {"haic": "unrelated", "pd1": "unrelated", "lenvatinib": "unrelated"}


def p(number: int) -> tuple[str, str, str]:
    return ("HAIC-PD1-LEN", "site01", f"P{number:02d}")


def patient(*events: LedgerEvent) -> PatientSafety:
    return patient_safety(history(*events), ProtocolParameters())


def treated(number: int, *events: LedgerEvent) -> PatientSafety:
    return patient(infusion(10 * number, "2025-01-06", patient=f"P{number:02d}"), *events)


def _trial() -> IncidenceTables:
    return incidence_tables(trial_patients())


def trial_patients() -> list[PatientSafety]:
    """The 11 patients of the module docstring."""
    return list(  # noqa: C410 — the hand-built trial keeps its layout
        [
            treated(
                1,
                reported(
                    11,
                    "2025-01-20",
                    "Hypertension",
                    2,
                    patient="P01",
                    attribution={"lenvatinib": "probable"},
                ),
            ),
            treated(
                2,
                reported(
                    21,
                    "2025-01-15",
                    "Hypertension",
                    1,
                    patient="P02",
                    attribution={"lenvatinib": "possible"},
                ),
                updated(22, "2025-01-22", ae=21, grade=3, patient="P02"),
                lenvatinib(23, "2025-01-22", "reduce", ae=21, patient="P02"),
                reported(24, "2025-01-25", "Diarrhea", 1, patient="P02"),
            ),
            treated(
                3,
                reported(
                    31,
                    "2025-01-28",
                    "Alanine aminotransferase increased",
                    3,
                    patient="P03",
                    serious=True,
                    seriousness=["hospitalisation"],
                    expected=True,
                    attribution={"pd1": "possible"},
                ),
            ),
            treated(4, reported(41, "2025-01-10", "Fatigue", 1, patient="P04")),
            treated(
                5,
                reported(
                    51,
                    "2025-02-01",
                    "Pneumonitis",
                    4,
                    patient="P05",
                    expected=False,
                    attribution={"pd1": "probable"},
                ),
                discontinued(52, "2025-02-02", ae=51, patient="P05"),
            ),
            treated(
                6,
                reported(
                    61,
                    "2025-02-03",
                    "Hepatic failure",
                    3,
                    patient="P06",
                    attribution=UNRELATED,
                ),
                updated(62, "2025-02-05", ae=61, grade=5, outcome="fatal", patient="P06"),
                death(63, "2025-02-05", ae=61, patient="P06"),
            ),
            treated(7),
            treated(
                8,
                reported(81, "2025-01-02", "Abdominal pain", 1, patient="P08"),
                reported(82, "2025-02-06", "Fatigue", 2, patient="P08"),
            ),
            treated(
                9,
                reported(
                    91, "2025-01-12", "Diarrhea", 2, patient="P09", attribution={"haic": "definite"}
                ),
            ),
            treated(
                10,
                reported(101, "2025-01-14", "Fatigue", 2, patient="P10"),
                reported(102, "2025-01-16", "Hypertension", 1, patient="P10"),
                death(103, "2025-06-01", patient="P10"),
            ),
            patient(reported(111, "2025-01-10", "Fatigue", 3, patient="P11")),
        ]
    )


TABLES = _trial()


def assert_count(count: Count, patients: list[int], seqs: list[int]) -> None:
    assert count.patient_keys == tuple(p(number) for number in patients)
    assert count.patients == len(patients)
    assert count.n == N
    assert count.seqs == tuple(seqs)


def test_treated_population_is_the_10_patients_with_a_startdt() -> None:
    assert TABLES.n_treated == 10


def test_8_of_10_treated_patients_had_a_teae_with_its_exact_ci() -> None:
    count = TABLES.overall.any_grade
    assert_count(
        count,
        [1, 2, 3, 4, 5, 6, 9, 10],
        [11, 21, 22, 23, 24, 31, 41, 51, 52, 61, 62, 63, 91, 101, 102],
    )
    assert count.percent == pytest.approx(80.0)
    # R: binom.test(8, 10)$conf.int
    assert count.ci == pytest.approx((0.4439045, 0.9747893), abs=1e-7)


def test_each_patient_is_counted_once_at_their_worst_grade() -> None:
    overall = TABLES.overall
    assert_count(overall.grade(1), [4], [41])
    assert_count(overall.grade(2), [1, 9, 10], [11, 91, 101])
    assert_count(overall.grade(3), [2, 3], [21, 22, 23, 31])
    assert_count(overall.grade(4), [5], [51, 52])
    assert_count(overall.grade(5), [6], [61, 62, 63])


def test_4_of_10_had_a_grade_3_or_worse_teae() -> None:
    count = TABLES.overall.grade_3_or_more
    assert_count(count, [2, 3, 5, 6], [21, 22, 23, 31, 51, 52, 61, 62, 63])
    assert count.ci == pytest.approx((0.1215523, 0.7376219), abs=1e-7)


def test_socs_are_ordered_by_patients_then_name() -> None:
    assert [row.soc for row in TABLES.by_soc] == [
        "Vascular disorders",
        "Gastrointestinal disorders",
        "General disorders and administration site conditions",
        "Hepatobiliary disorders",
        "Investigations",
        "Respiratory, thoracic and mediastinal disorders",
    ]


def test_hypertension_by_worst_grade() -> None:
    [vascular] = [row for row in TABLES.by_soc if row.soc == "Vascular disorders"]
    [hypertension] = vascular.terms
    assert hypertension.term == "Hypertension"
    counts = hypertension.counts
    assert_count(counts.any_grade, [1, 2, 10], [11, 21, 22, 23, 102])
    assert_count(counts.grade(1), [10], [102])
    assert_count(counts.grade(2), [1], [11])
    assert_count(counts.grade(3), [2], [21, 22, 23])
    assert_count(counts.grade_3_or_more, [2], [21, 22, 23])
    assert counts.any_grade.ci is None


def test_a_patient_is_counted_at_their_worst_grade_within_the_soc() -> None:
    [gastro] = [row for row in TABLES.by_soc if row.soc == "Gastrointestinal disorders"]
    assert_count(gastro.counts.grade(1), [2], [24])
    assert_count(gastro.counts.grade(2), [9], [91])
    assert [term.term for term in gastro.terms] == ["Diarrhea"]


def test_fatigue_outside_the_window_or_untreated_is_not_counted() -> None:
    [general] = [row for row in TABLES.by_soc if row.soc.startswith("General disorders")]
    assert_count(general.counts.any_grade, [4, 10], [41, 101])


def test_serious_teaes_include_grade_4_and_5_without_a_serious_flag() -> None:
    assert_count(TABLES.serious, [3, 5, 6], [31, 51, 52, 61, 62, 63])
    assert TABLES.serious.ci == pytest.approx((0.0667395, 0.6524529), abs=1e-7)


def test_the_only_susar_is_the_unexpected_related_pneumonitis() -> None:
    assert_count(TABLES.susar, [5], [51, 52])


def test_treatment_related_teaes_by_agent() -> None:
    assert_count(TABLES.related["any"], [1, 2, 3, 5, 9], [11, 21, 22, 23, 31, 51, 52, 91])
    assert_count(TABLES.related["lenvatinib"], [1, 2], [11, 21, 22, 23])
    assert_count(TABLES.related["pd1"], [3, 5], [31, 51, 52])
    assert_count(TABLES.related["haic"], [9], [91])


def test_teaes_leading_to_dose_modification_and_discontinuation() -> None:
    assert_count(TABLES.leading_to_dose_modification, [2], [21, 22, 23])
    assert_count(TABLES.leading_to_discontinuation, [5], [51, 52])


def test_deaths_of_treated_patients_from_any_cause() -> None:
    assert_count(TABLES.deaths, [6, 10], [63, 103])
    assert TABLES.deaths.ci == pytest.approx((0.0252107, 0.5560955), abs=1e-7)


def test_no_treated_patients_gives_empty_tables_without_rates() -> None:
    empty = incidence_tables([])
    assert empty.n_treated == 0
    assert empty.overall.any_grade.percent is None
    assert empty.overall.any_grade.ci is None
    assert empty.by_soc == ()
