"""The audit trail: who, what, when, why, and old → new (DOMAIN.md "Audit trail")."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pydantic import JsonValue

from events import LedgerEvent, decode
from projections.fold.audit import RETRACTED, AuditRow, FieldChange, audit_trail, json_diff
from projections.fold.history import Recorded, effective_history

pytestmark = pytest.mark.unit


def _id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def _event(
    event_type: str,
    n: int,
    on: str,
    /,
    by: str = "site01.coordinator",
    reason: str | None = None,
    **data: Any,
) -> LedgerEvent:
    return decode(
        {
            "event_id": _id(n),
            "type": event_type,
            "trial_id": "HAIC-PD1-LEN",
            "site_id": "site01",
            "patient_id": "P0001",
            "occurred_on": on,
            "recorded_by": by,
            "reason": reason,
            "recorded_at": f"2025-03-{n:02d}T10:00:00Z",
            "prev_hash": f"{n - 1:064x}",
            "hash": f"{n:064x}",
            "data": data,
        }
    )


def _lesions(t1: float, t2: float) -> list[dict[str, Any]]:
    return [
        {
            "lesion_id": "T1",
            "location": "intrahepatic",
            "organ": "liver",
            "role": "target",
            "longest_diameter_mm": t1,
        },
        {
            "lesion_id": "T2",
            "location": "extrahepatic",
            "organ": "lung",
            "role": "target",
            "longest_diameter_mm": t2,
        },
    ]


ENROLLED = _event(
    "enrolled",
    1,
    "2025-02-03",
    bclc_stage="C",
    child_pugh="A6",
    ecog=1,
    prior_systemic_therapy=["sorafenib"],
    baseline_pvtt=False,
    baseline_extrahepatic_spread=True,
    body_weight_kg=70,
    age_years=61,
    sex="F",
)
BASELINE_SCAN = _event(
    "scan_read", 2, "2025-01-28", timepoint="baseline", lesions=_lesions(52.0, 14.0)
)
INFUSION = _event("infusion_given", 3, "2025-02-05", agent="haic", cycle=1)
FIRST_CORRECTION = _event(
    "event_corrected",
    4,
    "2025-03-04",
    by="site01.radiologist",
    reason="T1 measured on the wrong slice",
    target_event_id=_id(2),
    data={"timepoint": "baseline", "lesions": _lesions(48.0, 14.0)},
)
SECOND_CORRECTION = _event(
    "event_corrected",
    5,
    "2025-03-05",
    by="site01.monitor",
    reason="source data verification",
    target_event_id=_id(2),
    data={"timepoint": "baseline", "lesions": _lesions(47.0, 15.0)},
)
RETRACTION = _event(
    "event_retracted",
    6,
    "2025-03-06",
    reason="entered for the wrong patient",
    target_event_id=_id(3),
)
AE = _event("ae_reported", 7, "2025-02-20", term="Hypertension", grade=2)


def trail(*events: LedgerEvent) -> dict[int, AuditRow]:
    recorded = [Recorded(int(str(e.event_id)[-12:]), e) for e in events]
    rows = audit_trail(effective_history(recorded), recorded)
    assert [row.seq for row in rows] == sorted(row.seq for row in rows)
    return {row.seq: row for row in rows}


def full_trail() -> dict[int, AuditRow]:
    return trail(
        ENROLLED, BASELINE_SCAN, INFUSION, FIRST_CORRECTION, SECOND_CORRECTION, RETRACTION, AE
    )


def test_a_scan_corrected_twice_shows_both_changes_in_order_with_old_and_new_values() -> None:
    rows = full_trail()
    assert rows[2].status == "corrected"
    assert rows[2].amended_by == (4, 5)
    assert rows[4].changes == (FieldChange("data.lesions[0].longest_diameter_mm", 52.0, 48.0),)
    assert rows[5].changes == (
        FieldChange("data.lesions[0].longest_diameter_mm", 48.0, 47.0),
        FieldChange("data.lesions[1].longest_diameter_mm", 14.0, 15.0),
    )


def test_a_correction_names_who_when_why_and_its_target() -> None:
    row = full_trail()[4]
    assert row.recorded_by == "site01.radiologist"
    assert row.recorded_at == dt.datetime(2025, 3, 4, 10, tzinfo=dt.UTC)
    assert row.reason == "T1 measured on the wrong slice"
    assert (row.target_event_id, row.target_seq) == (_id(2), 2)


def test_a_correction_replaced_by_a_later_one_is_superseded_and_the_later_one_effective() -> None:
    rows = full_trail()
    assert rows[4].status == "superseded correction"
    assert rows[5].status == "effective"


def test_a_retraction_shows_the_old_event_turned_retracted() -> None:
    rows = full_trail()
    assert rows[3].status == "retracted"
    assert rows[3].amended_by == (6,)
    assert rows[6].status == "effective"
    assert rows[6].changes == (
        FieldChange(
            "event",
            {
                "type": "infusion_given",
                "occurred_on": "2025-02-05",
                "data": {
                    "agent": "haic",
                    "cycle": 1,
                    "regimen": None,
                    "dose": None,
                    "dose_unit": None,
                },
            },
            RETRACTED,
        ),
    )
    assert rows[6].reason == "entered for the wrong patient"


def test_events_untouched_by_corrections_stay_effective_with_their_chain_links() -> None:
    rows = full_trail()
    assert (rows[1].status, rows[7].status) == ("effective", "effective")
    assert rows[7].changes == ()
    assert rows[7].amended_by == ()
    assert (rows[7].hash, rows[7].prev_hash) == (f"{7:064x}", f"{6:064x}")
    assert (rows[1].type, rows[1].occurred_on) == ("enrolled", dt.date(2025, 2, 3))


def test_a_corrected_clinical_date_shows_in_the_trail() -> None:
    moved = _event(
        "event_corrected",
        4,
        "2025-03-04",
        reason="date transcribed wrongly",
        target_event_id=_id(3),
        occurred_on="2025-02-04",
        data={"agent": "haic", "cycle": 1},
    )
    rows = trail(ENROLLED, BASELINE_SCAN, INFUSION, moved)
    assert rows[4].changes == (FieldChange("occurred_on", "2025-02-05", "2025-02-04"),)
    assert rows[3].status == "corrected"


def test_a_correction_of_an_event_later_retracted_is_superseded() -> None:
    fix = _event(
        "event_corrected",
        4,
        "2025-03-04",
        reason="cycle number",
        target_event_id=_id(3),
        data={"agent": "haic", "cycle": 2},
    )
    withdraw = _event(
        "event_retracted", 5, "2025-03-05", reason="wrong patient", target_event_id=_id(3)
    )
    rows = trail(ENROLLED, INFUSION, fix, withdraw)
    assert rows[4].changes == (FieldChange("data.cycle", 1, 2),)
    assert (rows[3].status, rows[4].status, rows[5].status) == (
        "retracted",
        "superseded correction",
        "effective",
    )


def test_a_correction_of_a_retracted_event_is_shown_as_rejected() -> None:
    late_fix = _event(
        "event_corrected",
        5,
        "2025-03-05",
        reason="cycle number",
        target_event_id=_id(3),
        data={"agent": "haic", "cycle": 2},
    )
    retraction = _event(
        "event_retracted", 4, "2025-03-04", reason="wrong patient", target_event_id=_id(3)
    )
    rows = trail(ENROLLED, INFUSION, retraction, late_fix)
    assert rows[5].status == "rejected"
    assert rows[5].changes == ()
    assert rows[5].target_event_id == _id(3)


def test_the_json_form_lists_changes_as_field_old_new() -> None:
    row = full_trail()[4].as_dict()
    assert row["changes"] == [
        {"field": "data.lesions[0].longest_diameter_mm", "old": 52.0, "new": 48.0},
    ]
    assert row["recorded_at"] == "2025-03-04T10:00:00+00:00"
    assert row["data"]["target_event_id"] == _id(2)


def test_an_added_lesion_reads_as_absent_before() -> None:
    lesion: JsonValue = {"lesion_id": "N1", "status": "present"}
    assert json_diff({"lesions": []}, {"lesions": [lesion]}) == [
        FieldChange("lesions[0]", None, lesion),
    ]


def test_a_flag_turned_into_a_number_is_a_change() -> None:
    assert json_diff({"x": True}, {"x": 1}) == [FieldChange("x", True, 1)]
    assert json_diff({"x": {"y": [1, 2]}}, {"x": {"y": [1, 2]}}) == []
