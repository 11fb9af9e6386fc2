"""The writer's decider: one submitted event, the ledger's facts about it → one decision.

`decide(submission, facts, parameters, today)` is the whole rule set of the intake write path
once the event has decoded: the envelope (intake subject against the event's trial, site and
patient; the trial's sites), the identity of an event_id (DESIGN.md: an id names one event for
ever) and the per-patient rules (`intake_rules.check_event`, acknowledgements, parameters
versions), plus the warnings an accepted event carries. The writer gathers the facts over NATS
and turns the decision into its reply; nothing here reads the ledger or the clock.

The writer reads a patient's history only for an event whose envelope holds, so it calls the
two halves of `decide` — `envelope_decision` before taking the patient's lock and
`history_decision` under it — with the facts it has at each point; `decide` is their
composition, and what the unit tests pin down with an in-memory `LedgerFacts`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from events import (
    EVENT_CLASSES,
    SPONSOR_SITE,
    TRIAL_PATIENT,
    LedgerEvent,
    NewerSchemaVersion,
    ProtocolParameters,
    ProtocolParametersSet,
    SaeAcknowledged,
    UnknownEventType,
    decode,
    submission_digest,
)
from events.catalogue import TRIAL_LEVEL_TYPES, WRITER_ONLY_TYPES
from events.envelope import WRITER_FIELDS
from events.subjects import SAFETY_SITE, safety_intake_subject
from projections.common.field_error import FieldError
from projections.endpoints.patient_endpoints import DEFAULT_PARAMETERS, newest_parameters
from projections.fold.history import Recorded
from projections.intake.rules import AeCheck, PatientFacts, check_event, error_path
from projections.intake.rules import trial_date_errors as _trial_date_errors
from projections.intake.warnings import baseline_warnings
from projections.safety.ctcae import check_ae as ctcae_check
from projections.safety.sae_alerts import acknowledgement_errors

# One answer for an id already in the ledger with other content, whoever's event holds it:
# it never tells a site whether that event is its own or another site's, nor what it says.
ID_IN_USE = "this event_id is already used for other content; give this event a new event_id"


@dataclass(frozen=True)
class Submission:
    """A decoded event and the intake it came on (`intake.<trial_id>.<site_id>`)."""

    trial_id: str
    site_id: str
    event: LedgerEvent


@dataclass(frozen=True)
class Accepted:
    """Append `event`; `warnings` go into the reply, never a reason to refuse."""

    event: LedgerEvent
    warnings: tuple[FieldError, ...] = ()


@dataclass(frozen=True)
class Rejected:
    errors: tuple[FieldError, ...]


@dataclass(frozen=True)
class Duplicate:
    """This very event is already in the ledger at `seq`."""

    seq: int


Decision = Accepted | Rejected | Duplicate


class LedgerFacts(Protocol):
    """What the decision needs to know of the ledger (the writer's port)."""

    def stored(self, event_id: str) -> tuple[int, LedgerEvent] | None:
        """The event the ledger holds under `event_id` (any patient, any site) and its seq."""
        ...

    def history(self) -> Sequence[Recorded]:
        """The submitted event's patient (or trial-level) entries, in seq order."""
        ...

    def patient(self) -> PatientFacts:
        """The per-patient rules' view of `history()`."""
        ...


def validation_errors(exc: ValidationError) -> list[FieldError]:
    return [FieldError(error_path(e["loc"]), e["msg"]) for e in exc.errors(include_url=False)]


def admit(raw: dict[str, Any]) -> LedgerEvent | Rejected:
    """A submitted JSON object as the event it claims to be, strictly (STYLE.md rule 5):
    never with a field only the writer sets, never of a type only the writer writes, never
    of an unknown type or a schema version newer than the code knows."""
    forbidden = [
        FieldError(name, "set by the writer, never by a site")
        for name in WRITER_FIELDS
        if name in raw
    ]
    if forbidden:
        return Rejected(tuple(forbidden))
    kind = raw.get("type")
    if isinstance(kind, str) and kind in WRITER_ONLY_TYPES:
        return Rejected((FieldError("type", f"{kind} events are written by the writer only"),))
    try:
        return decode(raw, mode="strict")
    except UnknownEventType:
        known = ", ".join(sorted(EVENT_CLASSES))
        return Rejected((FieldError("type", f"unknown event type {kind!r}; known: {known}"),))
    except NewerSchemaVersion as exc:
        return Rejected((FieldError("schema_version", str(exc)),))
    except ValidationError as exc:
        return Rejected(tuple(validation_errors(exc)))


def by_identity(event: LedgerEvent, seq: int, stored: LedgerEvent) -> Duplicate | Rejected:
    """An event whose id the ledger holds at `seq` as `stored`: the same content (the
    submission digest, blind to the writer's fields) is a duplicate, anything else refused."""
    if submission_digest(event) == submission_digest(stored):
        return Duplicate(seq)
    return Rejected((FieldError("event_id", ID_IN_USE),))


def envelope_errors(
    submission: Submission, parameters: ProtocolParametersSet | None, today: dt.date
) -> list[FieldError]:
    """Whether the event may come through this intake at all (DESIGN.md "Intake"): a site
    submits its own patients' events for trials it belongs to; safety officers submit only
    acknowledgements, on the trial's safety intake; trial-level events are the sponsor's."""
    trial_id, site_id, event = submission.trial_id, submission.site_id, submission.event
    errors: list[FieldError] = []
    if event.trial_id != trial_id:
        errors.append(
            FieldError(
                "trial_id", f"submitted on trial {trial_id}'s intake but names {event.trial_id}"
            )
        )
    acknowledgement = event.event_type == "sae_acknowledged"
    if site_id == SAFETY_SITE:
        if not acknowledgement:
            errors.append(
                FieldError("type", "the safety officers' intake takes sae_acknowledged events only")
            )
    elif acknowledgement:
        errors.append(
            FieldError(
                "type",
                f"acknowledgements come from safety officers, on {safety_intake_subject(trial_id)}",
            )
        )
    elif event.site_id != site_id:
        errors.append(
            FieldError(
                "site_id",
                f"site {site_id} may only submit events of its own site, not {event.site_id}",
            )
        )
    trial_level = event.event_type in TRIAL_LEVEL_TYPES
    if trial_level != (event.site_id == SPONSOR_SITE and event.patient_id == TRIAL_PATIENT):
        errors.append(
            FieldError(
                "site_id",
                f"trial-level events use site {SPONSOR_SITE} and patient {TRIAL_PATIENT}; patient events never do",
            )
        )
    if trial_level:
        errors += _trial_date_errors(event, today)
    if isinstance(event, ProtocolParametersSet):
        return errors  # its version is judged on the trial's history (history_decision)
    if parameters is None:
        errors.append(
            FieldError(
                "trial_id",
                f"unknown trial {event.trial_id}: its protocol parameters are not in the ledger",
            )
        )
    elif parameters.data.parameters.sites and event.site_id not in parameters.data.parameters.sites:
        errors.append(
            FieldError("site_id", f"{event.site_id} is not a site of trial {event.trial_id}")
        )
    return errors


def envelope_decision(
    submission: Submission,
    facts: LedgerFacts,
    parameters: ProtocolParametersSet | None,
    today: dt.date,
) -> Decision | None:
    """The decision that needs no patient history, or None when the history must decide.

    A refused envelope is refused — unless the submitter resubmits its own event that is
    already stored: a rule may fail long after the fact, and the ledger is the authority on
    whether this very event is in it. An id already used decides by identity."""
    event = submission.event
    known = facts.stored(str(event.event_id))
    errors = envelope_errors(submission, parameters, today)
    if errors:
        own = event.site_id == submission.site_id and event.trial_id == submission.trial_id
        if own and known is not None:
            verdict = by_identity(event, *known)
            if isinstance(verdict, Duplicate):
                return verdict
        return Rejected(tuple(errors))
    if known is not None:
        return by_identity(event, *known)
    return None


def version_errors(history: Sequence[Recorded], event: ProtocolParametersSet) -> list[FieldError]:
    """Versions run 1, 2, 3... without gaps (DOMAIN.md: "versioned, so replay knows which
    rules applied"), judged against the trial-level history."""
    current = newest_parameters(DEFAULT_PARAMETERS, history).version
    if event.data.version != current + 1:
        return [
            FieldError(
                "data.version",
                f"parameters version must be {current + 1}, the next after the current {current}",
            )
        ]
    return []


def history_decision(
    event: LedgerEvent,
    facts: LedgerFacts,
    parameters: ProtocolParametersSet | None,
    today: dt.date,
    check_ae: AeCheck = ctcae_check,
) -> Decision:
    """The decision on the patient's (or trial's) history: an id it holds decides by
    identity; otherwise the per-patient rules (DOMAIN.md "Time origin", "Adverse events",
    "Serious AEs and clocks") or the parameters' version rule, then the baseline warnings."""
    known = facts.stored(str(event.event_id))
    if known is not None:
        return by_identity(event, *known)
    if isinstance(event, ProtocolParametersSet):
        errors = version_errors(facts.history(), event)
        return Rejected(tuple(errors)) if errors else Accepted(event)
    if event.event_type in TRIAL_LEVEL_TYPES:
        return Accepted(event)
    params = parameters.data.parameters if parameters is not None else ProtocolParameters()
    patient = facts.patient()
    errors = check_event(patient, event, params, today, check_ae)
    if isinstance(event, SaeAcknowledged):  # only an alert ever raised
        errors += acknowledgement_errors(facts.history(), event, today)
    if errors:
        return Rejected(tuple(errors))
    return Accepted(event, tuple(baseline_warnings(patient, event, params)))


def decide(
    submission: Submission,
    facts: LedgerFacts,
    parameters: ProtocolParametersSet | None,
    today: dt.date,
    check_ae: AeCheck = ctcae_check,
) -> Decision:
    """Accept, refuse or recognise one submitted event (DESIGN.md "Intake"). `today` is the
    latest calendar date anywhere on Earth when the writer judges; `parameters` the trial's
    newest protocol parameters set known to the writer."""
    early = envelope_decision(submission, facts, parameters, today)
    if early is not None:
        return early
    return history_decision(submission.event, facts, parameters, today, check_ae)
