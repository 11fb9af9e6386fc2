"""The writer's per-patient rules, given a patient's recorded history (pure)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from events import ProtocolParameters, decode
from events.examples import EXAMPLES
from projections.fold.history import Recorded
from projections.intake.rules import check_event, patient_facts
from projections.safety.ctcae import check_ae

pytestmark = pytest.mark.unit
TODAY = dt.date(2026, 1, 1)
PARAMS = ProtocolParameters()


def ev(kind: str, **changes: Any) -> Any:
    raw = {**EXAMPLES[kind], "event_id": str(uuid.uuid4())}
    data = changes.pop("data", None)
    if data is not None:
        raw["data"] = {**raw["data"], **data}
    raw.update(changes)
    return decode(raw, mode="strict")


def history(*events: Any) -> list[Recorded]:
    return [Recorded(n, e) for n, e in enumerate(events, 1)]


def errors(recorded: list[Recorded], event: Any) -> list[tuple[str, str]]:
    return [
        (e.field, e.message)
        for e in check_event(patient_facts(recorded), event, PARAMS, TODAY, check_ae)
    ]


ENROLLED = ev("enrolled", occurred_on="2025-02-03")


def test_baseline_scan_inside_the_28_day_screening_window_is_accepted() -> None:
    assert errors(history(ENROLLED), ev("scan_read", occurred_on="2025-01-06")) == []


def test_baseline_scan_29_days_before_enrollment_is_rejected() -> None:
    found = errors(history(ENROLLED), ev("scan_read", occurred_on="2025-01-05"))
    assert found and found[0][0] == "occurred_on" and "screening window" in found[0][1]


def test_a_follow_up_visit_before_enrollment_is_rejected() -> None:
    assert (
        errors(history(ENROLLED), ev("follow_up_contact", occurred_on="2025-02-02"))[0][0]
        == "occurred_on"
    )


def test_nothing_of_a_patient_before_the_enrollment() -> None:
    assert errors([], ev("infusion_given"))[0][0] == "patient_id"


def test_a_death_dated_before_recorded_events_is_rejected_but_late_entries_before_death_are_not() -> (
    None
):
    recorded = history(ENROLLED, ev("follow_up_contact", occurred_on="2025-06-10"))
    assert errors(recorded, ev("death", occurred_on="2025-06-01"))[0][0] == "occurred_on"
    dead = history(ENROLLED, ev("death", occurred_on="2025-06-01"))
    assert (
        errors(
            dead,
            ev(
                "scan_read",
                occurred_on="2025-05-30",
                data={"timepoint": "follow_up", "lesions": []},
            ),
        )
        == []
    )


def test_a_correction_is_checked_as_the_event_it_would_make() -> None:
    infusion = ev("infusion_given", occurred_on="2025-02-05")
    bad = ev(
        "event_corrected",
        data={"target_event_id": str(infusion.event_id), "data": {"agent": "haic", "cycle": 0}},
    )
    found = errors(history(ENROLLED, infusion), bad)
    assert "data.data.cycle" in {f for f, _ in found}


def test_a_correction_may_not_move_an_event_after_the_death() -> None:
    infusion = ev("infusion_given", occurred_on="2025-02-05")
    death = ev("death", occurred_on="2025-06-01")
    moved = ev(
        "event_corrected",
        data={
            "target_event_id": str(infusion.event_id),
            "occurred_on": "2025-06-05",
            "data": EXAMPLES["infusion_given"]["data"],
        },
    )
    assert "data.occurred_on" in {f for f, _ in errors(history(ENROLLED, infusion, death), moved)}


def test_a_retracted_event_cannot_be_corrected_again() -> None:
    infusion = ev("infusion_given", occurred_on="2025-02-05")
    retraction = ev("event_retracted", data={"target_event_id": str(infusion.event_id)})
    again = ev(
        "event_corrected",
        data={
            "target_event_id": str(infusion.event_id),
            "data": EXAMPLES["infusion_given"]["data"],
        },
    )
    found = errors(history(ENROLLED, infusion, retraction), again)
    assert found == [("data.target_event_id", "that event is retracted or is itself a correction")]


def test_an_ae_update_must_name_an_ae_of_this_patient_and_a_grade_its_term_allows() -> None:
    ae = ev(
        "ae_reported",
        data={
            "term": "Palmar-plantar erythrodysesthesia syndrome",
            "grade": 2,
            "serious": False,
            "seriousness": [],
        },
    )
    recorded = history(ENROLLED, ae)
    assert (
        errors(recorded, ev("ae_updated", data={"ae_event_id": str(uuid.uuid4())}))[0][0]
        == "data.ae_event_id"
    )
    assert (
        errors(recorded, ev("ae_updated", data={"ae_event_id": str(ae.event_id), "grade": 4}))[0][0]
        == "data.grade"
    )
    assert (
        errors(recorded, ev("ae_updated", data={"ae_event_id": str(ae.event_id), "grade": 3})) == []
    )


def test_new_lesions_may_not_reuse_a_baseline_lesion_id() -> None:
    baseline = ev("scan_read", occurred_on="2025-01-28")
    follow_up = ev(
        "scan_read",
        occurred_on="2025-03-20",
        data={
            "timepoint": "follow_up",
            "lesions": [
                {
                    "lesion_id": "T1",
                    "location": "intrahepatic",
                    "organ": "liver",
                    "role": "new",
                    "longest_diameter_mm": 12.0,
                }
            ],
        },
    )
    assert errors(history(ENROLLED, baseline), follow_up)[0][0] == "data.lesions[0].lesion_id"


def test_facts_kept_up_event_by_event_equal_the_facts_folded_from_scratch() -> None:
    from projections.intake.rules import extend_facts

    ae = ev("ae_reported", occurred_on="2025-02-20")
    entries = history(
        ENROLLED,
        ev("scan_read", occurred_on="2025-01-28"),
        ev("infusion_given", occurred_on="2025-02-05"),
        ae,
        ev("ae_updated", occurred_on="2025-02-27", data={"ae_event_id": str(ae.event_id)}),
        ev("death", occurred_on="2025-06-01"),
    )
    facts = patient_facts(entries[:1])
    for n, entry in enumerate(entries[1:], 2):
        extended = extend_facts(facts, entry)
        assert extended is not None
        facts = extended
        assert facts == patient_facts(entries[:n])
    correction = Recorded(
        7,
        ev(
            "event_corrected",
            data={"target_event_id": str(ae.event_id), "data": EXAMPLES["ae_reported"]["data"]},
        ),
    )
    assert extend_facts(facts, correction) is None
