"""Dates at the ends of the calendar already in a ledger (older writers, events published
around the writer) still give every derivation an answer: no OverflowError stalls a read model
(issue 14 item 6b)."""

from __future__ import annotations

import copy
import datetime as dt
import uuid
from typing import Any

import pytest

from events import ProtocolParameters, decode
from events.examples import EXAMPLES
from projections.common.calendar import add_days, as_utc
from projections.endpoints.patient_endpoints import DEFAULT_PARAMETERS, derive_patient
from projections.fold.history import Recorded, effective_history
from projections.fold.patient import fold_ledger
from projections.safety.clocks import sae_clocks
from projections.safety.episodes import patient_safety

pytestmark = pytest.mark.unit

Y1, Y9999 = "0001-01-01", "9999-12-31"
SERIOUS: dict[str, Any] = {"serious": True, "seriousness": ["hospitalisation"], "grade": 3}


def stored(kind: str, recorded_at: str = "2025-03-01T10:00:00Z", **changes: Any) -> Any:
    raw = {**copy.deepcopy(EXAMPLES[kind]), "event_id": str(uuid.uuid4())}
    data = changes.pop("data", None)
    if data is not None:
        raw["data"] = {**raw["data"], **data}
    raw.update(changes, recorded_at=recorded_at)
    return decode(raw)


def derive_everything(*events: Any) -> None:
    recorded = [Recorded(n, event) for n, event in enumerate(events, 1)]
    derive_patient(recorded, DEFAULT_PARAMETERS)
    effective = effective_history(recorded).events
    parameters = ProtocolParameters()
    sae_clocks(patient_safety(effective, parameters).episodes, effective, parameters)
    fold_ledger(recorded)


@pytest.mark.parametrize("day", [Y1, Y9999])
def test_a_course_dated_at_an_end_of_the_calendar_is_derived(day: str) -> None:
    derive_everything(
        stored("enrolled", occurred_on=day),
        stored("scan_read", occurred_on=day),
        stored("infusion_given", occurred_on=day),
        stored("scan_read", occurred_on=day, data={"timepoint": "follow_up"}),
        stored("ae_reported", occurred_on=day, data=SERIOUS),
        stored("death", occurred_on=day),
    )


@pytest.mark.parametrize("day", [Y1, Y9999])
def test_one_infusion_or_scan_at_an_end_of_the_calendar_in_a_normal_course_is_derived(
    day: str,
) -> None:
    derive_everything(
        stored("enrolled"),
        stored("scan_read"),
        stored("infusion_given", occurred_on=day),
        stored("scan_read", occurred_on=day, data={"timepoint": "follow_up"}),
        stored("follow_up_contact"),
    )


@pytest.mark.parametrize(
    "moment",
    ["0001-01-01T00:00:00+05:00", "9999-12-31T23:00:00-05:00", "9999-12-31T23:59:59"],
)
def test_an_sae_with_an_awareness_instant_beyond_the_calendar_gets_its_clock(moment: str) -> None:
    ae = stored("ae_reported", data={**SERIOUS, "site_aware_at": moment})
    derive_everything(stored("enrolled"), stored("infusion_given"), ae)


def test_an_sae_recorded_on_the_last_day_of_the_calendar_has_its_deadlines_held_there() -> None:
    ae = stored("ae_reported", recorded_at=f"{Y9999}T23:59:00+00:00", data=SERIOUS)
    recorded = [
        Recorded(1, stored("enrolled")),
        Recorded(2, stored("infusion_given")),
        Recorded(3, ae),
    ]
    effective = effective_history(recorded).events
    parameters = ProtocolParameters()
    [clock] = sae_clocks(patient_safety(effective, parameters).episodes, effective, parameters)
    assert clock.acknowledgement_due == dt.date.max


def test_shifts_and_conversions_stop_at_the_ends_of_the_calendar() -> None:
    assert add_days(dt.date(9999, 12, 30), 15) == dt.date.max
    assert add_days(dt.date(1, 1, 2), -28) == dt.date.min
    assert add_days(dt.date(2025, 1, 1), 1) == dt.date(2025, 1, 2)
    east = dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=5)))
    west = dt.datetime(9999, 12, 31, 23, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    assert as_utc(east) == dt.datetime.min.replace(tzinfo=dt.UTC)
    assert as_utc(west) == dt.datetime.max.replace(tzinfo=dt.UTC)
    assert as_utc(dt.datetime(2025, 1, 1, 12)) == dt.datetime(2025, 1, 1, 12, tzinfo=dt.UTC)
