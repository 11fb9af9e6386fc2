"""NATS subjects of the ledger's contract (DESIGN.md, "Contracts")."""

from __future__ import annotations

from typing import NamedTuple

from events.envelope import TOKEN_RE

LEDGER_STREAM = "LEDGER"
ALERTS_STREAM = "ALERTS"
LEDGER_SUBJECTS = "ledger.>"
ALERTS_SUBJECTS = "alerts.sae.>"


class LedgerSubject(NamedTuple):
    trial_id: str
    site_id: str
    patient_id: str
    event_type: str


def _tokens(*values: str) -> None:
    for value in values:
        if not TOKEN_RE.fullmatch(value):
            raise ValueError(f"not a subject token: {value!r}")


def intake_subject(trial_id: str, site_id: str) -> str:
    _tokens(trial_id, site_id)
    return f"intake.{trial_id}.{site_id}"


def intake_wildcard() -> str:
    return "intake.*.*"


def parse_intake_subject(subject: str) -> tuple[str, str]:
    parts = subject.split(".")
    if len(parts) != 3 or parts[0] != "intake":
        raise ValueError(f"not an intake subject: {subject!r}")
    return parts[1], parts[2]


def ledger_subject(trial_id: str, site_id: str, patient_id: str, event_type: str) -> str:
    _tokens(trial_id, site_id, patient_id, event_type)
    return f"ledger.{trial_id}.{site_id}.{patient_id}.{event_type}"


def trial_wildcard(trial_id: str) -> str:
    """Every ledger subject of one trial."""
    _tokens(trial_id)
    return f"ledger.{trial_id}.>"


def patient_wildcard(trial_id: str, site_id: str, patient_id: str) -> str:
    """Every ledger subject of one patient: the unit of optimistic concurrency."""
    _tokens(trial_id, site_id, patient_id)
    return f"ledger.{trial_id}.{site_id}.{patient_id}.*"


def parse_ledger_subject(subject: str) -> LedgerSubject:
    parts = subject.split(".")
    if len(parts) != 5 or parts[0] != "ledger":
        raise ValueError(f"not a ledger subject: {subject!r}")
    return LedgerSubject(parts[1], parts[2], parts[3], parts[4])


def alert_subject(trial_id: str, site_id: str) -> str:
    _tokens(trial_id, site_id)
    return f"alerts.sae.{trial_id}.{site_id}"
