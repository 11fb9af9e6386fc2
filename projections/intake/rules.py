"""The writer's per-patient rules: decide whether a submitted event may enter the ledger.

Pure (the Decider's `decide`): the patient's recorded history, the trial's protocol
parameters and today's date go in; a list of field errors comes out (empty = accept).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import ValidationError

from events import (
    EVENT_ADAPTER,
    EVENT_CLASSES,
    AeReported,
    AeUpdated,
    Death,
    DoseModified,
    Enrolled,
    EventCorrected,
    EventRetracted,
    InfusionGiven,
    LedgerEvent,
    ProtocolParameters,
    ProtocolParametersSet,
    SaeAcknowledged,
    ScanRead,
)
from events.trial import EARLIEST_FIRST_ENROLLMENT
from projections.common.field_error import (
    FieldError,  # re-exported: the intake's callers name it here
)
from projections.criteria.baseline import screening_window_opens
from projections.fold.history import Recorded, effective_history

ADMINISTRATIVE = (EventCorrected, EventRetracted, SaeAcknowledged)
_TYPE_TAGS = frozenset(EVENT_CLASSES)


AeCheck = Callable[[str, int, str | None], list[tuple[str, str]]]


@dataclass(frozen=True)
class PatientFacts:
    """What the rules need to know of one patient, from its effective history."""

    enrolled_on: dt.date | None = None
    death_on: dt.date | None = None
    latest_clinical_on: dt.date | None = None
    baseline_lesions: dict[str, str] = field(default_factory=dict)
    events: dict[str, LedgerEvent] = field(default_factory=dict)
    recorded_ids: frozenset[str] = frozenset()
    ae_terms: dict[str, str] = field(default_factory=dict)
    age_years: int | None = None


def patient_facts(recorded: Sequence[Recorded]) -> PatientFacts:
    """Fold a patient's recorded events (seq order) into the facts the rules use."""
    facts = PatientFacts(recorded_ids=frozenset(str(entry.event.event_id) for entry in recorded))
    for entry in effective_history(recorded).events:
        facts = _absorb(facts, entry.event)
    return facts


def extend_facts(facts: PatientFacts, entry: Recorded) -> PatientFacts | None:
    """The facts after one more entry, without re-reading the history — or None when the
    entry is a correction or retraction, which can change anything (then fold again)."""
    if isinstance(entry.event, EventCorrected | EventRetracted):
        return None
    return _absorb(
        replace(facts, recorded_ids=facts.recorded_ids | {str(entry.event.event_id)}), entry.event
    )


def _absorb(facts: PatientFacts, event: LedgerEvent) -> PatientFacts:
    """One effective event into the facts (dicts are extended in place: the caller owns them)."""
    event_id = str(event.event_id)
    facts.events[event_id] = event
    changes: dict[str, Any] = {}
    if not isinstance(event, ADMINISTRATIVE):
        latest = facts.latest_clinical_on
        changes["latest_clinical_on"] = (
            event.occurred_on if latest is None else max(latest, event.occurred_on)
        )
    match event:
        case Enrolled():
            changes["enrolled_on"] = event.occurred_on
            changes["age_years"] = event.data.age_years
        case Death():
            changes["death_on"] = event.occurred_on
        case ScanRead(data=scan) if scan.timepoint == "baseline":
            facts.baseline_lesions.update(
                {lesion.lesion_id: lesion.role for lesion in scan.lesions}
            )
        case AeReported(data=ae):
            facts.ae_terms[event_id] = ae.term
        case _:
            pass
    return replace(facts, **changes) if changes else facts


def check_event(
    facts: PatientFacts,
    event: LedgerEvent,
    params: ProtocolParameters,
    today: dt.date,
    check_ae: AeCheck,
) -> list[FieldError]:
    """Every per-patient rule of the intake (DOMAIN.md "Time origin", "Adverse events")."""
    errors = date_window_errors(event, date_window(params, today, facts, event))
    errors += _date_rules(facts, event, params, today)
    errors += _type_rules(facts, event, params, today, check_ae)
    return errors


def _date_rules(
    facts: PatientFacts, event: LedgerEvent, params: ProtocolParameters, today: dt.date
) -> list[FieldError]:
    errors: list[FieldError] = []
    on = event.occurred_on
    if isinstance(event, Enrolled):
        if facts.enrolled_on is not None:
            errors.append(FieldError("type", "the patient is already enrolled: one enrollment"))
        return errors
    if facts.enrolled_on is None:
        errors.append(
            FieldError(
                "patient_id", "the enrollment must be recorded before anything else of this patient"
            )
        )
        return errors
    if isinstance(event, ADMINISTRATIVE):
        return errors
    if on < facts.enrolled_on:
        screening = screening_window_opens(facts.enrolled_on, None, params)
        baseline_scan = isinstance(event, ScanRead) and event.data.timepoint == "baseline"
        if not baseline_scan:
            errors.append(
                FieldError("occurred_on", f"{on} is before enrollment on {facts.enrolled_on}")
            )
        elif screening is not None and on < screening:
            errors.append(
                FieldError(
                    "occurred_on",
                    f"baseline scan on {on} is outside the {params.screening_window_days}-day "
                    f"screening window before enrollment on {facts.enrolled_on}",
                )
            )
    if facts.death_on is not None and on > facts.death_on:
        errors.append(
            FieldError("occurred_on", f"{on} is after the patient's death on {facts.death_on}")
        )
    return errors


@dataclass(frozen=True, slots=True)
class DateWindow:
    """The plausible calendar dates of a clinical date or instant, both ends included."""

    earliest: dt.date
    latest: dt.date
    why_earliest: str


def date_window(
    params: ProtocolParameters,
    today: dt.date,
    facts: PatientFacts | None = None,
    event: LedgerEvent | None = None,
) -> DateWindow:
    """Where a patient's dates may lie: not before the trial's first enrollment (a baseline
    scan may precede it by the screening window, DOMAIN.md "Time origin"), not before the
    birth year implied by the age at enrollment, and not after `today` (the site's date)."""
    earliest = params.first_enrollment_on - dt.timedelta(days=params.screening_window_days)
    why = f"the screening window before the trial's first enrollment ({params.first_enrollment_on})"
    if isinstance(event, Enrolled):
        earliest, why = params.first_enrollment_on, "the trial's first enrollment"
    elif facts is not None and facts.enrolled_on is not None and facts.age_years is not None:
        # aged A on the enrollment date: born in that year - A or the year before
        birth_year = max(1, facts.enrolled_on.year - facts.age_years - 1)
        if dt.date(birth_year, 1, 1) > earliest:
            earliest, why = dt.date(birth_year, 1, 1), "the patient's birth year"
    return DateWindow(earliest, today, why)


def date_fields(event: LedgerEvent) -> list[tuple[str, dt.date | dt.datetime]]:
    """Every clinical date and instant an event carries, by field path (writer fields aside;
    a correction's replacement is judged as the corrected event, see `_correction_rules`)."""
    found: list[tuple[str, dt.date | dt.datetime]] = [("occurred_on", event.occurred_on)]
    if not isinstance(event, EventCorrected):
        found += _dates_in(event.data, "data")
    return found


def _dates_in(value: Any, path: str) -> list[tuple[str, dt.date | dt.datetime]]:
    if isinstance(value, dt.date):  # a datetime is a date too
        return [(path, value)]
    if isinstance(value, tuple | list):
        return [d for n, item in enumerate(value) for d in _dates_in(item, f"{path}[{n}]")]
    if hasattr(type(value), "model_fields"):
        return [
            d
            for name in type(value).model_fields
            for d in _dates_in(getattr(value, name), f"{path}.{name}")
        ]
    return []


def date_window_errors(event: LedgerEvent, window: DateWindow) -> list[FieldError]:
    """A field error for each date or instant outside the window. An instant is judged by its
    calendar date where it was taken (no conversion: year 1 or 9999 with an offset would
    overflow it)."""
    errors: list[FieldError] = []
    for path, value in date_fields(event):
        day = value.date() if isinstance(value, dt.datetime) else value
        if day > window.latest:
            errors.append(FieldError(path, f"{value.isoformat()} is in the future"))
        elif day < window.earliest:
            errors.append(
                FieldError(
                    path, f"{value.isoformat()} is before {window.why_earliest}, {window.earliest}"
                )
            )
    return errors


def trial_date_errors(event: LedgerEvent, today: dt.date) -> list[FieldError]:
    """A trial-level event's dates: recorded no later than today, no earlier than any trial
    of these agents, and a data cut-off not before the trial's first enrollment."""
    errors = date_window_errors(event, DateWindow(EARLIEST_FIRST_ENROLLMENT, today, "any trial"))
    if isinstance(event, ProtocolParametersSet):
        params = event.data.parameters
        cutoff = params.data_cutoff
        if cutoff is not None and cutoff < params.first_enrollment_on:
            errors.append(
                FieldError(
                    "data.parameters.data_cutoff",
                    f"the data cut-off {cutoff} is before the first enrollment "
                    f"{params.first_enrollment_on}",
                )
            )
    return errors


def _type_rules(
    facts: PatientFacts,
    event: LedgerEvent,
    params: ProtocolParameters,
    today: dt.date,
    check_ae: AeCheck,
) -> list[FieldError]:
    match event:
        case InfusionGiven(data=dose) | DoseModified(data=dose):
            if dose.agent not in params.agents:
                return [FieldError("data.agent", f"{dose.agent} is not an agent of this protocol")]
            return []
        case ScanRead():
            return _lesion_rules(facts, event)
        case AeReported(data=ae):
            found = [
                FieldError(_in_data(f), m) for f, m in check_ae(ae.term, ae.grade, ae.verbatim)
            ]
            if ae.grade == 5 and facts.death_on is None:
                found.append(
                    FieldError(
                        "data.grade", "grade 5 (death) needs the patient's death recorded first"
                    )
                )
            return found
        case AeUpdated(data=update):
            return _ae_update_rules(facts, update.ae_event_id, update.grade, check_ae)
        case Death(data=death):
            return _death_rules(facts, event, death.ae_event_id)
        case SaeAcknowledged(data=ack):
            if ack.ae_event_id not in facts.ae_terms:
                return [
                    FieldError("data.ae_event_id", "no adverse event with this id for this patient")
                ]
            return []
        case EventCorrected() | EventRetracted():
            return _correction_rules(facts, event, params, today, check_ae)
        case _:
            return []


def _lesion_rules(facts: PatientFacts, scan: ScanRead) -> list[FieldError]:
    errors: list[FieldError] = []
    baseline = facts.baseline_lesions
    if scan.data.timepoint == "baseline":
        if baseline:
            errors.append(
                FieldError(
                    "data.timepoint", "a baseline scan is already recorded: correct it instead"
                )
            )
        return errors
    if not baseline:
        return errors
    for index, lesion in enumerate(scan.data.lesions):
        where = f"data.lesions[{index}].lesion_id"
        if lesion.role == "new":
            if baseline.get(lesion.lesion_id) is not None:
                errors.append(
                    FieldError(where, f"{lesion.lesion_id} is a baseline lesion, not a new one")
                )
        elif lesion.lesion_id not in baseline:
            errors.append(
                FieldError(where, f"{lesion.lesion_id} is not a lesion of the baseline scan")
            )
        elif baseline[lesion.lesion_id] != lesion.role:
            errors.append(
                FieldError(
                    where,
                    f"{lesion.lesion_id} was a {baseline[lesion.lesion_id]} lesion at baseline",
                )
            )
    return errors


def _ae_update_rules(
    facts: PatientFacts, ae_event_id: str, grade: int | None, check_ae: AeCheck
) -> list[FieldError]:
    term = facts.ae_terms.get(ae_event_id)
    if term is None:
        return [FieldError("data.ae_event_id", "no adverse event with this id for this patient")]
    if grade is None:
        return []
    errors = [
        FieldError("data.grade", m)
        for f, m in check_ae(term, grade, "-")
        if _in_data(f) == "data.grade"
    ]
    if grade == 5 and facts.death_on is None:
        errors.append(
            FieldError("data.grade", "grade 5 (death) needs the patient's death recorded first")
        )
    return errors


def _death_rules(facts: PatientFacts, death: Death, ae_event_id: str | None) -> list[FieldError]:
    errors: list[FieldError] = []
    if facts.death_on is not None:
        errors.append(
            FieldError("type", f"the patient's death is already recorded ({facts.death_on})")
        )
    if ae_event_id is not None and ae_event_id not in facts.ae_terms:
        errors.append(
            FieldError("data.ae_event_id", "no adverse event with this id for this patient")
        )
    if facts.latest_clinical_on is not None and facts.latest_clinical_on > death.occurred_on:
        errors.append(
            FieldError(
                "occurred_on",
                f"events dated up to {facts.latest_clinical_on} exist after this death date",
            )
        )
    return errors


def _correction_rules(
    facts: PatientFacts,
    event: EventCorrected | EventRetracted,
    params: ProtocolParameters,
    today: dt.date,
    check_ae: AeCheck,
) -> list[FieldError]:
    errors: list[FieldError] = []
    if not (event.reason or "").strip():
        errors.append(FieldError("reason", "corrections and retractions must say why"))
    target_id = event.data.target_event_id
    target = facts.events.get(target_id)
    if target is None:
        gone = target_id in facts.recorded_ids
        message = (
            "that event is retracted or is itself a correction"
            if gone
            else "no event with this id for this patient"
        )
        return [*errors, FieldError("data.target_event_id", message)]
    verb = "retracted" if isinstance(event, EventRetracted) else "corrected"
    if isinstance(target, ADMINISTRATIVE) or (isinstance(target, Enrolled) and verb == "retracted"):
        message = f"a {target.event_type} event cannot be {verb}"
        return [*errors, FieldError("data.target_event_id", message)]
    if isinstance(event, EventRetracted):
        return errors
    raw = target.model_dump(mode="json", exclude={"recorded_at", "prev_hash", "hash"})
    raw["data"] = event.data.data
    if event.data.occurred_on is not None:
        raw["occurred_on"] = event.data.occurred_on.isoformat()
    try:
        corrected = EVENT_ADAPTER.validate_python(raw, extra="forbid")
    except ValidationError as exc:
        return [
            *errors,
            *(FieldError(_correction_field(error_path(e["loc"])), e["msg"]) for e in exc.errors()),
        ]
    others = {k: v for k, v in facts.events.items() if k != target_id}
    without = PatientFacts(
        enrolled_on=facts.enrolled_on if not isinstance(target, Enrolled) else None,
        age_years=facts.age_years if not isinstance(target, Enrolled) else None,
        death_on=facts.death_on if not isinstance(target, Death) else None,
        latest_clinical_on=None if isinstance(target, Death) else facts.latest_clinical_on,
        baseline_lesions=(
            {}
            if isinstance(target, ScanRead) and target.data.timepoint == "baseline"
            else facts.baseline_lesions
        ),
        events=others,
        recorded_ids=facts.recorded_ids,
        ae_terms=facts.ae_terms,
    )
    for problem in check_event(without, corrected, params, today, check_ae):
        errors.append(FieldError(_correction_field(problem.field), problem.message))
    return errors


def _correction_field(field_name: str) -> str:
    """Where a problem of the corrected event lives inside the correction's own payload."""
    if field_name == "occurred_on":
        return "data.occurred_on"
    if field_name.startswith("data."):
        return f"data.{field_name}"
    return "data.target_event_id"


def error_path(loc: Sequence[int | str]) -> str:
    """A pydantic error location as a field path: data.lesions[0].role (union tag dropped)."""
    tagged = bool(loc) and isinstance(loc[0], str) and loc[0] in _TYPE_TAGS
    parts = [str(p) for p in (loc[1:] if tagged else loc)]
    path = ""
    for part in parts:
        path += f"[{part}]" if part.isdigit() else (f".{part}" if path else part)
    return path or "event"


def _in_data(field_name: str) -> str:
    return field_name if field_name.startswith("data.") else f"data.{field_name}"
