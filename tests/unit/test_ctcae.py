"""CTCAE v5.0: the shipped term table, the writer's AE checks and the lab grading rules."""

from __future__ import annotations

from decimal import Decimal

import pytest

from projections.safety.ctcae import (
    check_ae,
    ctcae_table,
    grade_aminotransferase_increased,
    grade_bilirubin_increased,
    grade_hypertension,
    grade_neutrophil_count_decreased,
    grade_platelet_count_decreased,
)

pytestmark = pytest.mark.unit


# The term table


def test_table_holds_837_terms_in_26_system_organ_classes() -> None:
    table = ctcae_table()
    assert len(table) == 837
    assert len(table.socs) == 26


def test_table_is_read_once() -> None:
    assert ctcae_table() is ctcae_table()


def test_343_terms_have_no_grade_5() -> None:
    table = ctcae_table()
    assert sum(1 for entry in table.terms.values() if 5 not in entry.allowed_grades) == 343


def test_hypertension_allows_grades_1_to_5_in_vascular_disorders() -> None:
    table = ctcae_table()
    assert table.allowed_grades("Hypertension") == (1, 2, 3, 4, 5)
    assert table.soc("Hypertension") == "Vascular disorders"


def test_palmar_plantar_erythrodysesthesia_stops_at_grade_3() -> None:
    assert ctcae_table().allowed_grades("Palmar-plantar erythrodysesthesia syndrome") == (1, 2, 3)


def test_fatigue_stops_at_grade_3() -> None:
    assert ctcae_table().allowed_grades("Fatigue") == (1, 2, 3)


def test_eosinophilia_skips_grade_2() -> None:
    assert ctcae_table().allowed_grades("Eosinophilia") == (1, 3)


def test_hepatic_failure_starts_at_grade_3() -> None:
    assert ctcae_table().allowed_grades("Hepatic failure") == (3, 4, 5)


def test_lookup_ignores_case_and_surrounding_spaces() -> None:
    entry = ctcae_table().lookup("  hYPERTENSION ")
    assert entry is not None
    assert entry.term == "Hypertension"


def test_lookup_is_otherwise_exact() -> None:
    assert ctcae_table().lookup("Hypertension arterial") is None


def test_unknown_term_suggests_the_closest_terms() -> None:
    assert ctcae_table().suggestions("Hypertensoin")[0] == "Hypertension"
    assert ctcae_table().suggestions("Diarrhoea")[0] == "Diarrhea"


def test_asking_the_grades_of_an_unknown_term_names_the_closest() -> None:
    with pytest.raises(KeyError, match="Did you mean 'Hypertension'"):
        ctcae_table().allowed_grades("Hypertensoin")


def test_other_specify_terms_need_a_verbatim_and_ordinary_terms_do_not() -> None:
    table = ctcae_table()
    assert table.requires_verbatim("Cardiac disorders - Other, specify")
    assert not table.requires_verbatim("Hypertension")
    assert sum(1 for entry in table.terms.values() if entry.requires_verbatim) == 26


# The writer's checks


def test_a_known_term_at_an_allowed_grade_passes() -> None:
    assert check_ae("Hypertension", 3, None) == []


def test_a_misspelt_term_is_rejected_with_a_suggestion() -> None:
    [(field, message)] = check_ae("Hypertensoin", 2, None)
    assert field == "term"
    assert message.startswith(
        "'Hypertensoin' is not a CTCAE v5.0 term. Did you mean 'Hypertension'"
    )


def test_a_term_with_nothing_close_is_rejected_without_suggestion() -> None:
    assert check_ae("zzzz", 1, None) == [("term", "'zzzz' is not a CTCAE v5.0 term.")]


def test_grade_4_palmar_plantar_erythrodysesthesia_is_rejected() -> None:
    assert check_ae("Palmar-plantar erythrodysesthesia syndrome", 4, None) == [
        (
            "grade",
            "'Palmar-plantar erythrodysesthesia syndrome' has no grade 4 in CTCAE v5.0; "
            "its grades are 1, 2 and 3.",
        )
    ]


def test_grade_5_fatigue_is_rejected() -> None:
    [(field, message)] = check_ae("fatigue", 5, None)
    assert field == "grade"
    assert "'Fatigue' has no grade 5" in message


def test_grade_outside_1_to_5_is_rejected() -> None:
    assert check_ae("Hypertension", 6, None) == [
        ("grade", "Grade 6 does not exist: CTCAE grades run from 1 to 5."),
    ]


def test_other_specify_without_verbatim_is_rejected() -> None:
    expected = [
        (
            "verbatim",
            "'Cardiac disorders - Other, specify' needs a verbatim description of the event.",
        )
    ]
    assert check_ae("Cardiac disorders - Other, specify", 2, None) == expected
    assert check_ae("Cardiac disorders - Other, specify", 2, "   ") == expected
    assert check_ae("Cardiac disorders - Other, specify", 2, "Sinus arrest") == []


# ALT / AST increased


@pytest.mark.parametrize(
    ("value", "grade"),
    [
        ("40", 0),
        ("40.1", 1),
        ("120", 1),
        ("120.1", 2),
        ("200", 2),
        ("200.1", 3),
        ("800", 3),
        ("800.1", 4),
    ],
)
def test_aminotransferase_with_normal_baseline_is_graded_by_multiples_of_uln(
    value: str, grade: int
) -> None:
    assert grade_aminotransferase_increased(Decimal(value), uln=40, baseline=30) == grade


def test_aminotransferase_without_baseline_is_graded_by_multiples_of_uln() -> None:
    assert grade_aminotransferase_increased(120.1, 40) == 2


@pytest.mark.parametrize(
    ("value", "grade"),
    [
        ("89.9", 0),
        ("90", 1),
        ("180", 1),
        ("180.1", 2),
        ("300", 2),
        ("300.1", 3),
        ("1200", 3),
        ("1200.1", 4),
    ],
)
def test_aminotransferase_with_abnormal_baseline_is_graded_by_multiples_of_baseline(
    value: str, grade: int
) -> None:
    # Baseline 60 U/L is above the ULN of 40: grades are 1.5 / 3 / 5 / 20 × 60.
    assert grade_aminotransferase_increased(Decimal(value), uln=40, baseline=60) == grade


def test_aminotransferase_at_exactly_three_uln_from_floats_is_grade_1() -> None:
    # 0.1 × 3 is not 0.3 in binary floating point; the grading must not care.
    assert grade_aminotransferase_increased(0.3, uln=0.1) == 1


# Bilirubin increased


@pytest.mark.parametrize(
    ("value", "grade"),
    [
        ("20", 0),
        ("20.1", 1),
        ("30", 1),
        ("30.1", 2),
        ("60", 2),
        ("60.1", 3),
        ("200", 3),
        ("200.1", 4),
    ],
)
def test_bilirubin_with_normal_baseline_is_graded_by_multiples_of_uln(
    value: str, grade: int
) -> None:
    assert grade_bilirubin_increased(Decimal(value), uln=20, baseline=15) == grade


@pytest.mark.parametrize(
    ("value", "grade"),
    [
        ("30", 0),
        ("30.1", 1),
        ("45", 1),
        ("45.1", 2),
        ("90", 2),
        ("90.1", 3),
        ("300", 3),
        ("300.1", 4),
    ],
)
def test_bilirubin_with_abnormal_baseline_is_graded_by_multiples_of_baseline(
    value: str, grade: int
) -> None:
    assert grade_bilirubin_increased(Decimal(value), uln=20, baseline=30) == grade


def test_bilirubin_baseline_exactly_at_uln_counts_as_normal() -> None:
    assert grade_bilirubin_increased(25, uln=20, baseline=20) == 1


# Blood counts


@pytest.mark.parametrize(
    ("value", "grade"),
    [
        ("150", 0),
        ("149.9", 1),
        ("75", 1),
        ("74.9", 2),
        ("50", 2),
        ("49.9", 3),
        ("25", 3),
        ("24.9", 4),
        ("0", 4),
    ],
)
def test_platelet_count_decreased_bands(value: str, grade: int) -> None:
    assert grade_platelet_count_decreased(Decimal(value), lln=150) == grade


def test_platelet_count_below_a_low_lln_but_under_75_is_grade_2() -> None:
    assert grade_platelet_count_decreased(70, lln=72) == 2


@pytest.mark.parametrize(
    ("value", "grade"),
    [
        ("1.8", 0),
        ("1.79", 1),
        ("1.5", 1),
        ("1.49", 2),
        ("1.0", 2),
        ("0.99", 3),
        ("0.5", 3),
        ("0.49", 4),
    ],
)
def test_neutrophil_count_decreased_bands(value: str, grade: int) -> None:
    assert grade_neutrophil_count_decreased(Decimal(value), lln="1.8") == grade


# Hypertension (adult)


@pytest.mark.parametrize(
    ("systolic", "diastolic", "grade"),
    [
        (119, 79, 0),
        (120, 70, 1),
        (139, 79, 1),
        (110, 80, 1),
        (118, 89, 1),
        (140, 70, 2),
        (159, 89, 2),
        (130, 90, 2),
        (130, 99, 2),
        (160, 80, 3),
        (130, 100, 3),
        (200, 120, 3),
    ],
)
def test_hypertension_is_graded_by_the_worse_of_systolic_and_diastolic(
    systolic: int, diastolic: int, grade: int
) -> None:
    assert grade_hypertension(systolic, diastolic) == grade


def test_life_threatening_hypertension_is_grade_4() -> None:
    assert grade_hypertension(230, 130, life_threatening=True) == 4
