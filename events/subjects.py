"""NATS subjects of the ledger's contract (DESIGN.md, "Contracts"): the one place that
builds and parses them.

Every service, tool and test names a subject through these functions, so a subject's shape
is written once. Builders refuse a value that is not a token (`[A-Za-z0-9_-]+`: no `.`, no
wildcard, never empty); parsers refuse a subject of the wrong family, with the wrong number
of tokens, or with a token that is not one, naming what they expected.
"""

from __future__ import annotations

from typing import NamedTuple

from events.envelope import SPONSOR_SITE, TOKEN_RE, TRIAL_PATIENT

LEDGER_STREAM = "LEDGER"
ALERTS_STREAM = "ALERTS"
LEDGER_SUBJECTS = "ledger.>"
ALERTS_SUBJECTS = "alerts.sae.>"

# Safety officers submit acknowledgements on intake.<trial>._safety (never a site's intake).
SAFETY_SITE = "_safety"

# The subjects' shapes, as the AsyncAPI document names them (services/cli/docs.py).
INTAKE_PATTERN = "intake.{trial_id}.{site_id}"
SAFETY_INTAKE_PATTERN = "intake.{trial_id}." + SAFETY_SITE
LEDGER_PATTERN = "ledger.{trial_id}.{site_id}.{patient_id}.{event_type}"
ALERT_PATTERN = "alerts.sae.{trial_id}.{site_id}"


class IntakeSubject(NamedTuple):
    trial_id: str
    site_id: str


class LedgerSubject(NamedTuple):
    trial_id: str
    site_id: str
    patient_id: str
    event_type: str


class AlertSubject(NamedTuple):
    trial_id: str
    site_id: str


class NotASubject(ValueError):
    """A subject that is not of the family its parser reads (the message says why)."""


def _tokens(*values: str) -> None:
    for value in values:
        if not isinstance(value, str) or not TOKEN_RE.fullmatch(value):
            raise ValueError(f"not a subject token: {value!r}")


def _parse(subject: str, prefix: tuple[str, ...], names: tuple[str, ...], shape: str) -> list[str]:
    """The tokens after `prefix`, one per name; NotASubject unless `subject` has that shape."""
    if not isinstance(subject, str):
        raise NotASubject(f"not a subject: {subject!r} (expected {shape})")
    parts = subject.split(".")
    if len(parts) != len(prefix) + len(names) or tuple(parts[: len(prefix)]) != prefix:
        raise NotASubject(f"not a {prefix[0]} subject: {subject!r} (expected {shape})")
    values = parts[len(prefix) :]
    for name, value in zip(names, values, strict=True):
        if not TOKEN_RE.fullmatch(value):
            raise NotASubject(
                f"not a {prefix[0]} subject: {subject!r} ({name} {value!r} is not a token "
                f"of letters, digits, _ and -; expected {shape})"
            )
    return values


# -- intake: request/reply ------------------------------------------------------------------
def intake_subject(trial_id: str, site_id: str) -> str:
    _tokens(trial_id, site_id)
    return f"intake.{trial_id}.{site_id}"


def safety_intake_subject(trial_id: str) -> str:
    """Where safety officers submit `sae_acknowledged` events for one trial."""
    return intake_subject(trial_id, SAFETY_SITE)


def intake_wildcard() -> str:
    """Every intake subject (the writer's subscription)."""
    return "intake.*.*"


def site_intake_wildcard(site_id: str) -> str:
    """One site's intake, on any trial (what a site's credential may publish to)."""
    _tokens(site_id)
    return f"intake.*.{site_id}"


def parse_intake_subject(subject: str) -> IntakeSubject:
    trial_id, site_id = _parse(subject, ("intake",), ("trial_id", "site_id"), INTAKE_PATTERN)
    return IntakeSubject(trial_id, site_id)


# -- ledger: stream LEDGER ------------------------------------------------------------------
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


def type_wildcard(event_type: str) -> str:
    """Every ledger entry of one event type, in every trial."""
    _tokens(event_type)
    return f"ledger.*.*.*.{event_type}"


def trial_level_wildcard(event_type: str) -> str:
    """Every trial-level entry (site `_sponsor`, patient `_trial`) of one type, in every trial."""
    _tokens(event_type)
    return f"ledger.*.{SPONSOR_SITE}.{TRIAL_PATIENT}.{event_type}"


def parse_ledger_subject(subject: str) -> LedgerSubject:
    values = _parse(
        subject, ("ledger",), ("trial_id", "site_id", "patient_id", "event_type"), LEDGER_PATTERN
    )
    return LedgerSubject(*values)


# -- alerts: stream ALERTS ------------------------------------------------------------------
def alert_subject(trial_id: str, site_id: str) -> str:
    _tokens(trial_id, site_id)
    return f"alerts.sae.{trial_id}.{site_id}"


def alerts_wildcard(trial_id: str, site_id: str | None = None) -> str:
    """The alerts of one trial: of one site, or (site None) of every site."""
    if site_id is None:
        _tokens(trial_id)
        return f"alerts.sae.{trial_id}.*"
    return alert_subject(trial_id, site_id)


def parse_alert_subject(subject: str) -> AlertSubject:
    trial_id, site_id = _parse(subject, ("alerts", "sae"), ("trial_id", "site_id"), ALERT_PATTERN)
    return AlertSubject(trial_id, site_id)
