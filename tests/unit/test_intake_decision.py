"""The writer's decider on an in-memory ledger: given these facts, this decision (pure)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from events import LedgerEvent, ProtocolParametersSet, decode
from events.examples import EXAMPLES
from projections.fold.history import Recorded
from projections.intake.decision import (
    ID_IN_USE,
    Accepted,
    Decision,
    Duplicate,
    Rejected,
    Submission,
    admit,
    decide,
)
from projections.intake.rules import PatientFacts, patient_facts

pytestmark = pytest.mark.unit
TODAY = dt.date(2026, 1, 1)
TRIAL = "HAIC-PD1-LEN"


def ev(kind: str, **changes: Any) -> Any:
    raw = {**EXAMPLES[kind], "event_id": str(uuid.uuid4())}
    data = changes.pop("data", None)
    if data is not None:
        raw["data"] = {**raw["data"], **data}
    raw.update(changes)
    return decode(raw, mode="strict")


PARAMETERS: ProtocolParametersSet = ev("protocol_parameters_set")
ENROLLED = ev("enrolled", occurred_on="2025-02-03")


@dataclass
class FakeLedger:
    """The ledger port in memory: every stored event by id, and the submitted patient's history."""

    entries: list[Recorded] = field(default_factory=list)
    elsewhere: dict[str, tuple[int, LedgerEvent]] = field(default_factory=dict)

    def stored(self, event_id: str) -> tuple[int, LedgerEvent] | None:
        for entry in self.entries:
            if str(entry.event.event_id) == event_id:
                return entry.seq, entry.event
        return self.elsewhere.get(event_id)

    def history(self) -> Sequence[Recorded]:
        return self.entries

    def patient(self) -> PatientFacts:
        return patient_facts(self.entries)


def ledger(*events: LedgerEvent, elsewhere: Sequence[LedgerEvent] = ()) -> FakeLedger:
    return FakeLedger(
        [Recorded(n, e) for n, e in enumerate(events, 1)],
        {str(e.event_id): (100 + n, e) for n, e in enumerate(elsewhere)},
    )


def judged(
    event: LedgerEvent,
    facts: FakeLedger,
    *,
    site: str = "site01",
    trial: str = TRIAL,
    parameters: ProtocolParametersSet | None = PARAMETERS,
) -> Decision:
    return decide(Submission(trial, site, event), facts, parameters, TODAY)


def fields(decision: Decision) -> list[str]:
    assert isinstance(decision, Rejected), decision
    return [error.field for error in decision.errors]


def test_an_infusion_after_enrollment_is_accepted_as_submitted() -> None:
    infusion = ev("infusion_given")
    assert judged(infusion, ledger(ENROLLED)) == Accepted(infusion)


def test_the_same_event_submitted_again_is_a_duplicate_at_its_seq() -> None:
    infusion = ev("infusion_given")
    assert judged(infusion, ledger(ENROLLED, infusion)) == Duplicate(2)


def test_a_used_event_id_with_other_content_is_refused_and_says_nothing_of_the_stored_event() -> (
    None
):
    infusion = ev("infusion_given")
    other = infusion.model_copy(update={"occurred_on": dt.date(2025, 2, 6)})
    decision = judged(other, ledger(ENROLLED, infusion))
    assert isinstance(decision, Rejected)
    assert [(e.field, e.message) for e in decision.errors] == [("event_id", ID_IN_USE)]


def test_an_id_used_by_another_site_s_patient_is_refused_with_the_same_words() -> None:
    theirs = ev("infusion_given", site_id="site02", patient_id="P0900")
    mine = ev("infusion_given", event_id=str(theirs.event_id))
    decision = judged(mine, ledger(ENROLLED, elsewhere=[theirs]))
    assert isinstance(decision, Rejected)
    assert [(e.field, e.message) for e in decision.errors] == [("event_id", ID_IN_USE)]


def test_an_upper_case_event_id_is_the_same_id_as_its_lower_case_spelling() -> None:
    infusion = ev("infusion_given")
    shouted = ev("infusion_given", event_id=str(infusion.event_id).upper())
    assert judged(shouted, ledger(ENROLLED, infusion)) == Duplicate(2)


def test_a_site_cannot_submit_another_site_s_event() -> None:
    assert fields(judged(ev("infusion_given"), ledger(ENROLLED), site="site02")) == ["site_id"]


def test_another_site_resubmitting_a_stored_event_learns_nothing_of_it() -> None:
    infusion = ev("infusion_given")
    decision = judged(infusion, ledger(ENROLLED, infusion), site="site02")
    assert fields(decision) == ["site_id"]


def test_an_own_stored_event_that_now_fails_a_rule_is_still_recognised_as_a_duplicate() -> None:
    infusion = ev("infusion_given", site_id="site09")  # site09 is not (or no longer) a trial site
    assert judged(infusion, ledger(ENROLLED, infusion), site="site09") == Duplicate(2)


def test_an_event_naming_another_trial_than_its_intake_is_refused() -> None:
    assert "trial_id" in fields(judged(ev("infusion_given"), ledger(ENROLLED), trial="OTHER"))


def test_an_event_of_a_trial_without_parameters_is_refused() -> None:
    assert fields(judged(ev("infusion_given"), ledger(ENROLLED), parameters=None)) == ["trial_id"]


def test_a_site_outside_the_trial_s_sites_is_refused() -> None:
    event = ev("infusion_given", site_id="site07")
    assert fields(judged(event, ledger(ENROLLED), site="site07")) == ["site_id"]


def test_a_site_cannot_submit_an_acknowledgement() -> None:
    assert fields(judged(ev("sae_acknowledged"), ledger(ENROLLED))) == ["type"]


def test_the_safety_intake_takes_acknowledgements_only() -> None:
    assert fields(judged(ev("infusion_given"), ledger(ENROLLED), site="_safety")) == ["type"]


def test_a_patient_event_under_the_sponsor_s_trial_patient_is_refused() -> None:
    event = ev("infusion_given", site_id="_sponsor", patient_id="_trial")
    assert "site_id" in fields(judged(event, ledger(), site="_sponsor"))


def test_nothing_of_a_patient_before_the_enrollment() -> None:
    assert fields(judged(ev("infusion_given"), ledger())) == ["patient_id"]


def test_a_visit_dated_after_the_latest_today_on_earth_is_refused() -> None:
    visit = ev("follow_up_contact", occurred_on="2026-01-02")
    assert "occurred_on" in fields(judged(visit, ledger(ENROLLED)))


def test_a_visit_before_the_enrollment_is_refused() -> None:
    visit = ev("follow_up_contact", occurred_on="2025-02-02")
    assert fields(judged(visit, ledger(ENROLLED))) == ["occurred_on"]


def test_a_baseline_scan_29_days_before_enrollment_is_outside_the_screening_window() -> None:
    scan = ev("scan_read", occurred_on="2025-01-05")
    assert fields(judged(scan, ledger(ENROLLED))) == ["occurred_on"]


def test_an_sae_reported_without_causality_is_accepted_as_not_yet_assessed() -> None:
    raw = {**EXAMPLES["ae_reported"], "event_id": str(uuid.uuid4())}
    raw["data"] = {k: v for k, v in raw["data"].items() if k != "attribution"}
    sae = decode(raw, mode="strict")
    assert judged(sae, ledger(ENROLLED)) == Accepted(sae)


def test_an_ae_with_a_grade_ctcae_does_not_define_is_refused() -> None:
    ae = ev("ae_reported", data={"term": "Palmar-plantar erythrodysesthesia syndrome", "grade": 4})
    assert "data.grade" in fields(judged(ae, ledger(ENROLLED)))


def test_acknowledging_an_alert_never_raised_is_refused() -> None:
    ack = ev("sae_acknowledged", site_id="site01")
    assert "data.alert_id" in fields(judged(ack, ledger(ENROLLED), site="_safety"))


def test_acknowledging_the_alert_the_patient_s_sae_raised_is_accepted() -> None:
    sae = ev("ae_reported", event_id="00000000-0000-4000-8000-000000000006")
    ack = ev("sae_acknowledged")
    assert judged(ack, ledger(ENROLLED, sae), site="_safety") == Accepted(ack)


def test_parameters_versions_run_without_gaps() -> None:
    first = ev("protocol_parameters_set")
    second = ev("protocol_parameters_set", data={"version": 2})
    skipped = ev("protocol_parameters_set", data={"version": 3})
    assert judged(first, ledger(), site="_sponsor", parameters=None) == Accepted(first)
    assert judged(second, ledger(first), site="_sponsor") == Accepted(second)
    assert fields(judged(skipped, ledger(first), site="_sponsor")) == ["data.version"]


def test_a_baseline_scan_with_a_non_measurable_target_is_accepted_with_a_warning() -> None:
    lesion = {
        "lesion_id": "T1",
        "location": "intrahepatic",
        "organ": "liver",
        "role": "target",
        "longest_diameter_mm": 8.0,
    }
    scan = ev("scan_read", data={"lesions": [lesion]})
    decision = judged(scan, ledger(ENROLLED))
    assert isinstance(decision, Accepted)
    assert decision.warnings, "a site learns of the breach at once"


# --- admission: the submitted JSON object as the event it claims to be ---------------------


def admitted_fields(raw: dict[str, Any]) -> list[str]:
    decision = admit(raw)
    assert isinstance(decision, Rejected), decision
    return [error.field for error in decision.errors]


def test_a_site_never_sets_the_writer_s_fields() -> None:
    raw = {**EXAMPLES["infusion_given"], "hash": "0" * 64, "recorded_at": "2025-02-05T00:00:00Z"}
    assert admitted_fields(raw) == ["recorded_at", "hash"]


def test_a_seal_is_written_by_the_writer_only() -> None:
    assert admitted_fields({**EXAMPLES["ledger_sealed"]}) == ["type"]


def test_an_unknown_type_is_refused_naming_the_known_ones() -> None:
    decision = admit({**EXAMPLES["infusion_given"], "type": "infusion_planned"})
    assert isinstance(decision, Rejected)
    assert "infusion_given" in decision.errors[0].message


def test_a_schema_version_newer_than_the_code_knows_is_refused() -> None:
    assert admitted_fields({**EXAMPLES["infusion_given"], "schema_version": 99}) == [
        "schema_version"
    ]


def test_an_invalid_field_is_refused_with_its_path() -> None:
    raw = {**EXAMPLES["infusion_given"], "data": {**EXAMPLES["infusion_given"]["data"], "cycle": 0}}
    assert admitted_fields(raw) == ["data.cycle"]


def test_a_valid_object_is_admitted_as_its_event() -> None:
    event = admit({**EXAMPLES["infusion_given"]})
    assert not isinstance(event, Rejected) and event.event_type == "infusion_given"
