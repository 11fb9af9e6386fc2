"""Clinical dates and instants lie in a plausible window (issue 14 item 6): not before the
trial's first enrollment, not before the patient's birth year, not after the site's today."""

from __future__ import annotations

import copy
import datetime as dt
import types
import typing
import uuid
from typing import Any

import pytest
from pydantic import BaseModel

from events import EVENT_CLASSES, ProtocolParameters, decode
from events.catalogue import TRIAL_LEVEL_TYPES
from events.examples import EXAMPLES
from projections.fold.history import Recorded
from projections.intake.rules import (
    check_event,
    date_fields,
    date_window,
    date_window_errors,
    patient_facts,
    trial_date_errors,
)
from projections.safety.ctcae import check_ae

pytestmark = pytest.mark.unit
TODAY = dt.date(2026, 1, 1)
PARAMS = ProtocolParameters()


def raw(kind: str, **changes: Any) -> dict[str, Any]:
    event = {**copy.deepcopy(EXAMPLES[kind]), "event_id": str(uuid.uuid4())}
    data = changes.pop("data", None)
    if data is not None:
        event["data"] = {**event["data"], **data}
    event.update(changes)
    return event


def ev(kind: str, **changes: Any) -> Any:
    return decode(raw(kind, **changes), mode="strict")


ENROLLED = ev("enrolled", occurred_on="2025-02-03")
AE = ev("ae_reported", occurred_on="2025-02-20")
HISTORY = [Recorded(1, ENROLLED), Recorded(2, AE)]


def fields_rejected(event: Any, params: ProtocolParameters = PARAMS) -> set[str]:
    facts = patient_facts(HISTORY if event.event_type != "enrolled" else [])
    return {e.field for e in check_event(facts, event, params, TODAY, check_ae)}


@pytest.mark.parametrize("kind", ["enrolled", "infusion_given", "scan_read"])
def test_a_clinical_date_in_year_1_is_rejected_on_occurred_on(kind: str) -> None:
    assert "occurred_on" in fields_rejected(ev(kind, occurred_on="0001-01-01"))


@pytest.mark.parametrize("moment", ["9999-12-31T23:00:00-05:00", "0001-01-01T00:30:00+14:00"])
def test_an_awareness_instant_at_the_ends_of_the_calendar_is_rejected_on_its_field(
    moment: str,
) -> None:
    reported = ev("ae_reported", occurred_on="2025-02-20", data={"site_aware_at": moment})
    assert fields_rejected(reported) == {"data.site_aware_at"}
    updated = ev(
        "ae_updated",
        data={"ae_event_id": str(AE.event_id), "site_aware_at": moment, "grade": None},
    )
    assert fields_rejected(updated) == {"data.site_aware_at"}


def test_a_resolution_in_the_future_and_a_report_submitted_before_the_trial_are_rejected() -> None:
    resolved = ev(
        "ae_updated",
        data={"ae_event_id": str(AE.event_id), "resolved_on": "2030-01-01", "grade": None},
    )
    assert fields_rejected(resolved) == {"data.resolved_on"}
    acknowledged = ev(
        "sae_acknowledged",
        data={
            "alert_id": f"sae-{AE.event_id}",
            "ae_event_id": str(AE.event_id),
            "expedited_report_submitted_on": "1999-01-01",
        },
    )
    assert fields_rejected(acknowledged) == {"data.expedited_report_submitted_on"}


def test_an_enrollment_before_the_trials_first_enrollment_date_is_rejected() -> None:
    params = ProtocolParameters(first_enrollment_on=dt.date(2025, 3, 1))
    errors = check_event(
        patient_facts([]), ev("enrolled", occurred_on="2025-02-28"), params, TODAY, check_ae
    )
    assert [e.field for e in errors] == ["occurred_on"]
    assert "first enrollment" in errors[0].message
    assert (
        check_event(
            patient_facts([]), ev("enrolled", occurred_on="2025-03-01"), params, TODAY, check_ae
        )
        == []
    )


def test_a_baseline_scan_in_the_screening_window_before_the_first_enrollment_is_accepted() -> None:
    params = ProtocolParameters(first_enrollment_on=dt.date(2025, 2, 3))
    scan = ev("scan_read", occurred_on="2025-01-10")
    assert check_event(patient_facts(HISTORY), scan, params, TODAY, check_ae) == []
    too_early = ev("scan_read", occurred_on="2025-01-05")
    assert "occurred_on" in {
        e.field for e in check_event(patient_facts(HISTORY), too_early, params, TODAY, check_ae)
    }


def test_no_date_of_a_patient_lies_before_the_birth_year_implied_by_the_age_at_enrollment() -> None:
    old = ev("enrolled", occurred_on="2025-02-03", data={"age_years": 110})
    facts = patient_facts([Recorded(1, old)])
    params = ProtocolParameters(screening_window_days=0)
    window = date_window(params, TODAY, facts, ev("infusion_given"))
    assert window.earliest == params.first_enrollment_on  # 1914 is earlier: the trial binds
    young_trial = ProtocolParameters.model_construct(
        **{**PARAMS.model_dump(), "first_enrollment_on": dt.date(1900, 1, 1)}
    )
    window = date_window(young_trial, TODAY, facts, ev("infusion_given"))
    assert window.earliest == dt.date(1914, 1, 1)
    assert "birth year" in window.why_earliest


def test_a_correction_moving_a_date_out_of_the_window_is_rejected_on_the_correction_field() -> None:
    correction = ev(
        "event_corrected",
        occurred_on="2025-03-01",
        data={
            "target_event_id": str(AE.event_id),
            "occurred_on": "0001-01-01",
            "data": {**EXAMPLES["ae_reported"]["data"], "site_aware_at": "9999-12-31T23:00:00Z"},
        },
        reason="typo",
    )
    assert {"data.occurred_on", "data.data.site_aware_at"} <= fields_rejected(correction)


def test_trial_level_dates_are_judged_too() -> None:
    params = raw("protocol_parameters_set", occurred_on="9999-01-01")
    params["data"]["parameters"] = {
        "first_enrollment_on": "2025-01-01",
        "data_cutoff": "2024-12-31",
    }
    found = {e.field for e in trial_date_errors(decode(params, mode="strict"), TODAY)}
    assert found == {"occurred_on", "data.parameters.data_cutoff"}


def test_first_enrollment_parameter_cannot_lie_before_the_year_2000() -> None:
    with pytest.raises(ValueError, match="first_enrollment_on"):
        ProtocolParameters(first_enrollment_on=dt.date(1, 1, 1))


def _date_paths(model: type[BaseModel], prefix: str) -> set[str]:
    """Every field path of `model` whose type admits a date or a datetime (from the types,
    not from the rule's code: a new date field anywhere shows up here)."""
    found: set[str] = set()
    for name, info in model.model_fields.items():
        path = f"{prefix}.{name}" if prefix else name
        pending, seen = [info.annotation], []
        while pending:
            kind = pending.pop()
            seen.append(kind)
            if isinstance(kind, types.UnionType) or typing.get_origin(kind) is not None:
                pending.extend(typing.get_args(kind))
        for kind in seen:
            if kind in (dt.date, dt.datetime):
                found.add(path)
            elif isinstance(kind, type) and issubclass(kind, BaseModel):
                inner = path if typing.get_origin(info.annotation) is None else f"{path}[0]"
                found |= _date_paths(kind, inner)
    return found


@pytest.mark.parametrize("kind", sorted(set(EVENT_CLASSES) - {"ledger_sealed"}))
def test_every_date_and_instant_of_every_event_type_is_judged(kind: str) -> None:
    cls = EVENT_CLASSES[kind]
    paths = _date_paths(cls, "") - {"recorded_at"}  # recorded_at is the writer's
    if kind == "event_corrected":
        paths -= {"data.occurred_on"}  # judged as the corrected event's occurred_on
    if kind in TRIAL_LEVEL_TYPES:
        paths -= {"data.parameters.first_enrollment_on"}  # the window's own bound
    assert "occurred_on" in paths
    window = date_window(PARAMS, TODAY)
    for path in sorted(paths):
        event = raw(kind)
        where: Any = event
        *parents, leaf = path.replace("[0]", ".0").split(".")
        for part in parents:
            where = where[0] if part == "0" else where.setdefault(part, {})
        where[leaf] = "0001-01-01T00:00:00+05:00" if leaf.endswith("_at") else "0001-01-01"
        decoded = decode(event, mode="tolerant")
        assert path in {p for p, _ in date_fields(decoded)}, path
        assert path in {e.field for e in date_window_errors(decoded, window)}, path
