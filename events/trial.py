"""Trial-level and audit events: protocol parameters, corrections, retractions, seals."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import Field

from events.envelope import Envelope, EventRef, Model, Text, Token

# No trial of these agents (lenvatinib, PD-1 inhibitors) enrolled before this: the default
# lower bound of a clinical date when the sponsor has not set the trial's own.
EARLIEST_FIRST_ENROLLMENT = dt.date(2000, 1, 1)


class ProtocolParameters(Model):
    """The SAP knobs DOMAIN.md calls protocol parameters, with its defaults.

    `first_enrollment_on` is the earliest enrollment the trial allows: no clinical date of a
    patient lies before it (a baseline scan no more than the screening window before it).
    """

    agents: tuple[Literal["haic", "pd1", "lenvatinib"], ...] = ("haic", "pd1", "lenvatinib")
    sites: tuple[Token, ...] = ()
    screening_window_days: int = Field(default=28, ge=0, le=120)
    sd_min_days: int = Field(default=42, ge=0)
    confirm_days: int = Field(default=28, ge=0)
    max_ne_between: int = Field(default=1, ge=0)
    mrecist_pd_min_abs_mm: float = Field(default=0, ge=0)
    recist_pd_min_abs_mm: float = Field(default=5, ge=0)
    pvtt_pr_ratio_pct: int = Field(default=70, ge=0, le=100)
    pvtt_pd_increase_pct: int = Field(default=20, ge=0)
    missed_visits_censor: int = Field(default=2, ge=1)
    scan_interval_days: int = Field(default=42, ge=1)
    scan_window_days: int = Field(default=7, ge=0)
    extrahepatic_pd_includes_baseline_progression: bool = True
    km_conf_type: Literal["log-log", "log", "plain"] = "log-log"
    teae_window_days: int = Field(default=30, ge=0)
    data_cutoff: dt.date | None = None
    late_entry_hours: int = Field(default=24, ge=1)
    first_enrollment_on: dt.date = Field(
        default=EARLIEST_FIRST_ENROLLMENT, ge=EARLIEST_FIRST_ENROLLMENT
    )


class ProtocolParametersSetData(Model):
    version: int = Field(ge=1)
    title: Text | None = None
    parameters: ProtocolParameters = ProtocolParameters()


class EventCorrectedData(Model):
    """Replaces the target event's `data` (and optionally its clinical date).

    The replacement is validated against the target's own type by the writer.
    """

    target_event_id: EventRef
    occurred_on: dt.date | None = None
    data: dict[str, Any]


class EventRetractedData(Model):
    target_event_id: EventRef


class LedgerSealedData(Model):
    """A signed commitment to every patient's chain head at a ledger position."""

    upto_seq: int = Field(ge=0)
    event_count: int = Field(ge=0)
    heads_digest: str = Field(pattern=r"^[0-9a-f]{64}$")
    heads: dict[str, str]
    previous_seal_hash: str | None = None
    # SHA-256 of the [[seq, hash], ...] of the trial's events since the previous seal's
    # upto_seq: commits to their order across patients, which no chain covers
    order_digest: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    public_key: str
    signature: str


class ProtocolParametersSet(Envelope):
    type: Literal["protocol_parameters_set"] = "protocol_parameters_set"
    data: ProtocolParametersSetData


class EventCorrected(Envelope):
    type: Literal["event_corrected"] = "event_corrected"
    data: EventCorrectedData


class EventRetracted(Envelope):
    type: Literal["event_retracted"] = "event_retracted"
    data: EventRetractedData


class LedgerSealed(Envelope):
    type: Literal["ledger_sealed"] = "ledger_sealed"
    data: LedgerSealedData
