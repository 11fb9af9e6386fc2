"""Patient state as a fold of the effective ledger (DOMAIN.md "Time origin and units")."""

from __future__ import annotations

import datetime as dt
from functools import reduce
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events import LedgerEvent, decode
from projections.fold.history import Effective, Recorded, effective_history
from projections.fold.patient import PatientState, evolve, fold, fold_ledger

pytestmark = pytest.mark.unit

D = dt.date.fromisoformat


def _event(
    event_type: str, n: int, on: str, /, reason: str | None = None, **data: Any
) -> LedgerEvent:
    return decode(
        {
            "event_id": f"00000000-0000-4000-8000-{n:012d}",
            "type": event_type,
            "trial_id": "HAIC-PD1-LEN",
            "site_id": "site01",
            "patient_id": "P0001",
            "occurred_on": on,
            "recorded_by": "site01.coordinator",
            "reason": reason,
            "hash": f"{n:064x}",
            "data": data,
        }
    )


def _id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def enrolled(n: int, on: str, **overrides: Any) -> LedgerEvent:
    data = {
        "bclc_stage": "C",
        "child_pugh": "A6",
        "ecog": 1,
        "prior_systemic_therapy": ["sorafenib"],
        "baseline_pvtt": True,
        "baseline_pvtt_vp": "Vp3",
        "baseline_extrahepatic_spread": False,
        "body_weight_kg": 64.5,
        "age_years": 58,
        "sex": "M",
        **overrides,
    }
    return _event("enrolled", n, on, **data)


def infusion(n: int, on: str, agent: str = "haic", cycle: int = 1) -> LedgerEvent:
    return _event("infusion_given", n, on, agent=agent, cycle=cycle)


def dose(
    n: int, on: str, action: str, dose_mg: float | None = None, agent: str = "lenvatinib"
) -> LedgerEvent:
    return _event("dose_modified", n, on, agent=agent, action=action, dose_mg=dose_mg)


def scan(n: int, on: str, timepoint: str = "follow_up", *lesions: dict[str, Any]) -> LedgerEvent:
    return _event("scan_read", n, on, timepoint=timepoint, lesions=list(lesions))


def ae(n: int, on: str, grade: int) -> LedgerEvent:
    return _event("ae_reported", n, on, term="Hypertension", grade=grade)


def ae_update(n: int, on: str, target: int, grade: int) -> LedgerEvent:
    return _event("ae_updated", n, on, ae_event_id=_id(target), grade=grade)


def death(n: int, on: str) -> LedgerEvent:
    return _event("death", n, on, cause="disease_progression")


def corrected(
    n: int, on: str, target: int, occurred_on: str | None, data: dict[str, Any]
) -> LedgerEvent:
    return _event(
        "event_corrected",
        n,
        on,
        reason="date transcribed wrongly",
        target_event_id=_id(target),
        occurred_on=occurred_on,
        data=data,
    )


def retracted(n: int, on: str, target: int) -> LedgerEvent:
    return _event(
        "event_retracted",
        n,
        on,
        reason="entered for the wrong patient",
        target_event_id=_id(target),
    )


def ledger(*events: LedgerEvent) -> list[Recorded]:
    """Ledger entries in entry order: seq 1, 2, 3…"""
    return [Recorded(seq, event) for seq, event in enumerate(events, start=1)]


def state_of(*events: LedgerEvent) -> PatientState:
    return fold_ledger(ledger(*events))


def test_a_patient_with_no_ledger_entries_has_no_status() -> None:
    state = fold([])
    assert state.status is None
    assert state.enrolled_on is None
    assert state.startdt is None


def test_an_enrolled_patient_not_yet_dosed_is_enrolled_with_baseline_characteristics() -> None:
    state = state_of(enrolled(1, "2025-02-03"))
    assert state.status == "enrolled"
    assert state.enrolled_on == D("2025-02-03")
    assert (state.bclc_stage, state.child_pugh, state.ecog) == ("C", "A6", 1)
    assert (state.baseline_pvtt, state.baseline_pvtt_vp) == (True, "Vp3")
    assert state.baseline_extrahepatic_spread is False
    assert state.startdt is None
    assert state.patient_id == "P0001"


def test_first_haic_infusion_puts_the_patient_on_treatment_and_sets_startdt() -> None:
    state = state_of(enrolled(1, "2025-02-03"), infusion(2, "2025-02-05"))
    assert state.status == "on_treatment"
    assert state.startdt == D("2025-02-05")
    assert state.haic_cycles == 1
    assert state.last_dose_on == D("2025-02-05")


def test_a_late_entered_earlier_pd1_infusion_moves_startdt_back() -> None:
    state = state_of(
        enrolled(1, "2025-02-03"),
        infusion(2, "2025-02-10", agent="haic"),
        infusion(3, "2025-02-06", agent="pd1"),
    )
    assert state.startdt == D("2025-02-06")
    assert state.pd1_infusions == 1
    assert state.last_dose_on == D("2025-02-10")


def test_lenvatinib_start_alone_sets_startdt() -> None:
    state = state_of(enrolled(1, "2025-02-03"), dose(2, "2025-02-04", "start", 12))
    assert state.startdt == D("2025-02-04")
    assert state.status == "on_treatment"
    assert (state.lenvatinib_status, state.lenvatinib_dose_mg) == ("ongoing", 12)


def test_correcting_the_first_infusion_date_moves_startdt() -> None:
    state = state_of(
        enrolled(1, "2025-02-03"),
        infusion(2, "2025-02-12"),
        infusion(3, "2025-03-05", cycle=2),
        corrected(
            4, "2025-02-20", target=2, occurred_on="2025-02-07", data={"agent": "haic", "cycle": 1}
        ),
    )
    assert state.startdt == D("2025-02-07")
    assert state.haic_cycles == 2


def test_retracting_the_only_infusion_returns_the_patient_to_enrolled() -> None:
    state = state_of(
        enrolled(1, "2025-02-03"), infusion(2, "2025-02-05"), retracted(3, "2025-02-06", 2)
    )
    assert state.status == "enrolled"
    assert state.startdt is None
    assert state.haic_cycles == 0
    assert state.last_dose_on is None


def test_lenvatinib_dose_follows_clinical_dates_not_entry_order() -> None:
    # Entered: start 12, resume (no dose) dated 03-20, reduce to 8 dated 03-01, interrupt 03-10.
    # In clinical order: 12 → 8 → interrupted → resumed at 8.
    state = state_of(
        enrolled(1, "2025-02-03"),
        dose(2, "2025-02-05", "start", 12),
        dose(3, "2025-03-20", "resume"),
        dose(4, "2025-03-01", "reduce", 8),
        dose(5, "2025-03-10", "interrupt"),
    )
    assert (state.lenvatinib_status, state.lenvatinib_dose_mg) == ("ongoing", 8)
    assert state.last_dose_on == D("2025-03-20")


def test_an_interrupted_lenvatinib_has_no_current_dose() -> None:
    state = state_of(
        enrolled(1, "2025-02-03"),
        dose(2, "2025-02-05", "start", 8),
        dose(3, "2025-02-20", "interrupt"),
    )
    assert (state.lenvatinib_status, state.lenvatinib_dose_mg) == ("interrupted", None)
    assert state.status == "on_treatment"


def test_same_day_lenvatinib_actions_apply_in_seq_order() -> None:
    state = state_of(
        enrolled(1, "2025-02-03"),
        dose(2, "2025-02-05", "start", 12),
        dose(3, "2025-03-01", "interrupt"),
        dose(4, "2025-03-01", "resume", 4),
    )
    assert (state.lenvatinib_status, state.lenvatinib_dose_mg) == ("ongoing", 4)


def test_the_patient_is_off_treatment_only_when_every_started_agent_is_discontinued() -> None:
    course = [
        enrolled(1, "2025-02-03"),
        infusion(2, "2025-02-05", agent="haic"),
        infusion(3, "2025-02-05", agent="pd1"),
        dose(4, "2025-03-01", "discontinue", agent="haic"),
    ]
    assert state_of(*course).status == "on_treatment"
    state = state_of(*course, dose(5, "2025-03-02", "discontinue", agent="pd1"))
    assert state.status == "off_treatment"
    assert (state.haic_status, state.pd1_status, state.lenvatinib_status) == (
        "discontinued",
        "discontinued",
        "not_started",
    )


def test_a_pd1_infusion_after_its_discontinuation_makes_pd1_ongoing_again() -> None:
    state = state_of(
        enrolled(1, "2025-02-03"),
        infusion(2, "2025-02-05", agent="pd1"),
        dose(3, "2025-03-01", "discontinue", agent="pd1"),
        infusion(4, "2025-04-01", agent="pd1", cycle=2),
    )
    assert state.pd1_status == "ongoing"


def test_treatment_discontinuation_puts_the_patient_in_follow_up() -> None:
    state = state_of(
        enrolled(1, "2025-02-03"),
        infusion(2, "2025-02-05"),
        _event("treatment_discontinued", 3, "2025-05-01", cause="progression"),
    )
    assert state.status == "follow_up"
    assert state.discontinued_on == D("2025-05-01")


def test_death_is_terminal_even_when_an_earlier_scan_is_entered_after_it() -> None:
    state = state_of(
        enrolled(1, "2025-02-03"),
        infusion(2, "2025-02-05"),
        death(3, "2025-06-30"),
        scan(4, "2025-06-01"),
    )
    assert state.status == "dead"
    assert state.death_on == D("2025-06-30")
    assert state.last_known_alive_on == D("2025-06-30")
    assert state.last_scan_on == D("2025-06-01")
    assert state.scans == 1


def test_last_known_alive_is_the_latest_clinical_date_of_a_living_patient() -> None:
    state = state_of(
        enrolled(1, "2025-02-03"),
        infusion(2, "2025-02-05"),
        _event("follow_up_contact", 3, "2025-09-01", method="phone"),
        scan(4, "2025-08-15"),
    )
    assert state.last_known_alive_on == D("2025-09-01")


def test_a_lost_to_follow_up_declaration_is_not_a_date_known_alive() -> None:
    state = state_of(
        enrolled(1, "2025-02-03"),
        infusion(2, "2025-02-05"),
        _event("withdrawn", 3, "2025-10-10", kind="lost_to_follow_up"),
    )
    assert state.status == "lost"
    assert state.withdrawn_on == D("2025-10-10")
    assert state.last_known_alive_on == D("2025-02-05")


def test_consent_withdrawal_makes_the_patient_withdrawn() -> None:
    state = state_of(
        enrolled(1, "2025-02-03"), _event("withdrawn", 2, "2025-03-01", kind="consent_withdrawn")
    )
    assert state.status == "withdrawn"
    assert state.last_known_alive_on == D("2025-03-01")


def test_only_anticancer_subsequent_therapy_dates_subsequent_therapy() -> None:
    state = state_of(
        enrolled(1, "2025-02-03"),
        _event(
            "subsequent_therapy_started",
            2,
            "2025-06-01",
            therapy="paracentesis",
            kind="other",
            anticancer=False,
        ),
        _event(
            "subsequent_therapy_started", 3, "2025-07-01", therapy="regorafenib", kind="systemic"
        ),
    )
    assert state.subsequent_therapy_on == D("2025-07-01")


def test_worst_ae_grade_counts_updates_of_effective_aes_only() -> None:
    state = state_of(
        enrolled(1, "2025-02-03"),
        ae(2, "2025-02-20", grade=2),
        ae_update(3, "2025-02-27", target=2, grade=3),
        ae_update(4, "2025-03-10", target=2, grade=1),
        ae(5, "2025-03-01", grade=4),
        ae_update(6, "2025-03-05", target=5, grade=5),
        retracted(7, "2025-03-06", target=5),
    )
    assert state.worst_ae_grade == 3
    assert state.ae_event_ids == frozenset({_id(2)})
    assert state.grade5_ae_ids == frozenset()


def test_a_grade_5_update_marks_the_ae_as_fatal_for_the_death_check() -> None:
    state = state_of(
        enrolled(1, "2025-02-03"),
        ae(2, "2025-02-20", grade=3),
        ae_update(3, "2025-03-01", target=2, grade=5),
    )
    assert state.grade5_ae_ids == frozenset({_id(2)})
    assert state.worst_ae_grade == 5


def test_writer_facts_name_baseline_lesions_and_known_events() -> None:
    target = {
        "lesion_id": "T1",
        "location": "intrahepatic",
        "organ": "liver",
        "role": "target",
        "longest_diameter_mm": 52.0,
    }
    non_target = {
        "lesion_id": "N1",
        "location": "intrahepatic",
        "organ": "liver",
        "role": "non_target",
        "status": "present",
    }
    new = {"lesion_id": "X1", "location": "extrahepatic", "organ": "bone", "role": "new"}
    state = state_of(
        scan(1, "2025-01-28", "baseline", target, non_target),
        enrolled(2, "2025-02-03"),
        scan(3, "2025-03-20", "follow_up", {**target, "longest_diameter_mm": 40.0}, new),
        ae(4, "2025-03-01", grade=2),
    )
    assert state.baseline_lesion_ids == frozenset({"T1", "N1"})
    assert state.new_lesion_ids == frozenset({"X1"})
    assert dict(state.known_events) == {
        _id(1): "scan_read",
        _id(2): "enrolled",
        _id(3): "scan_read",
        _id(4): "ae_reported",
    }
    assert state.enrollment_count == 1
    assert state.enrolled_on == D("2025-02-03")
    assert state.latest_clinical_on == D("2025-03-20")


def test_a_second_enrollment_is_counted_and_the_earliest_one_stands() -> None:
    state = state_of(enrolled(1, "2025-02-03"), enrolled(2, "2025-01-30", ecog=0))
    assert state.enrollment_count == 2
    assert state.enrolled_on == D("2025-01-30")
    assert state.ecog == 0


def test_the_ledger_fold_ends_at_the_chain_head_even_when_it_is_a_retraction() -> None:
    state = state_of(
        enrolled(1, "2025-02-03"), infusion(2, "2025-02-05"), retracted(3, "2025-02-06", 2)
    )
    assert (state.last_seq, state.last_hash) == (3, f"{3:064x}")
    assert state.event_count == 1


def test_an_effective_history_alone_knows_the_retraction_seq_but_not_its_hash() -> None:
    history = effective_history(
        ledger(enrolled(1, "2025-02-03"), infusion(2, "2025-02-05"), retracted(3, "2025-02-06", 2))
    )
    state = fold(history)
    assert (state.last_seq, state.last_hash) == (3, None)
    assert fold(history.events).last_seq == 1


def _course() -> list[Effective]:
    events = [
        scan(1, "2025-01-28", "baseline"),
        enrolled(2, "2025-02-03"),
        infusion(3, "2025-02-05", agent="haic"),
        infusion(4, "2025-02-05", agent="pd1"),
        dose(5, "2025-02-05", "start", 12),
        ae(6, "2025-02-20", grade=3),
        dose(7, "2025-02-21", "interrupt"),
        dose(8, "2025-02-21", "resume", 8),
        ae_update(9, "2025-02-27", target=6, grade=2),
        infusion(10, "2025-02-26", agent="haic", cycle=2),
        dose(11, "2025-03-20", "reduce", 4),
        scan(12, "2025-03-25"),
        dose(13, "2025-04-01", "discontinue", agent="pd1"),
        _event("follow_up_contact", 14, "2025-04-15", method="visit"),
        _event("treatment_discontinued", 15, "2025-05-01", cause="adverse_event"),
        _event(
            "subsequent_therapy_started", 16, "2025-05-20", therapy="regorafenib", kind="systemic"
        ),
        death(17, "2025-08-30"),
    ]
    return [Effective(seq, event) for seq, event in enumerate(events, start=1)]


@settings(max_examples=60, deadline=None)
@given(order=st.permutations(_course()))
def test_the_state_does_not_depend_on_the_entry_order_of_the_same_events(
    order: list[Effective],
) -> None:
    assert fold(order) == fold(_course())


@settings(max_examples=30, deadline=None)
@given(size=st.integers(min_value=0, max_value=17))
def test_evolving_one_event_at_a_time_equals_folding_the_history(size: int) -> None:
    course = _course()[:size]
    assert reduce(evolve, course, PatientState()) == fold(course)


def test_the_course_reads_as_hand_derived() -> None:
    state = fold(_course())
    assert state.status == "dead"
    assert state.startdt == D("2025-02-05")
    assert (state.haic_cycles, state.pd1_infusions, state.scans) == (2, 1, 2)
    assert (state.lenvatinib_status, state.lenvatinib_dose_mg) == ("ongoing", 4)
    assert state.pd1_status == "discontinued"
    assert state.last_dose_on == D("2025-03-20")
    assert state.worst_ae_grade == 3
    assert state.subsequent_therapy_on == D("2025-05-20")
    assert state.last_known_alive_on == D("2025-08-30")
    assert (state.event_count, state.last_seq, state.last_hash) == (17, 17, f"{17:064x}")


def test_folding_two_thousand_infusions_counts_every_one() -> None:
    start = dt.date(2025, 2, 5)
    history = [Effective(1, enrolled(1, "2025-02-03"))] + [
        Effective(
            n,
            infusion(
                n,
                (start + dt.timedelta(days=n % 700)).isoformat(),
                agent="pd1" if n % 2 else "haic",
                cycle=1 + n % 200,
            ),
        )
        for n in range(2, 2001)
    ]
    state = fold(history)
    assert (state.haic_cycles, state.pd1_infusions) == (1000, 999)  # even n: HAIC, odd n: PD-1
