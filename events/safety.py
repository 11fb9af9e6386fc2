"""Adverse events and their follow-up (DOMAIN.md "Adverse events", "Serious AEs and clocks")."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from events.envelope import Envelope, EventRef, Model, Text

Seriousness = Literal[
    "death",
    "life_threatening",
    "hospitalisation",
    "disability",
    "congenital_anomaly",
    "important_medical_event",
]
Causality = Literal["unrelated", "unlikely", "possible", "probable", "definite"]
Outcome = Literal[
    "recovering",
    "recovered",
    "recovered_with_sequelae",
    "not_recovered",
    "fatal",
    "unknown",
]
ActionTaken = Literal[
    "none",
    "dose_reduced",
    "interrupted",
    "withdrawn",
    "not_applicable",
]


class Attribution(Model):
    """Causality per study agent (the HAIC procedure and its chemotherapy count as one).

    None = not yet assessed (schema v2; v1 filled in "unrelated"): until the investigator
    assesses it, causality counts as suspected (DOMAIN.md "Serious AEs and clocks"). In an
    `ae_updated`, an agent left None keeps its earlier assessment.
    """

    haic: Causality | None = None
    pd1: Causality | None = None
    lenvatinib: Causality | None = None


class AeReportedData(Model):
    """A new AE episode; its onset date is the envelope's `occurred_on`."""

    ctcae_version: Literal["5.0"] = "5.0"
    term: Text
    verbatim: Text | None = None
    grade: int = Field(ge=1, le=5)
    serious: bool = False
    seriousness: tuple[Seriousness, ...] = ()
    attribution: Attribution = Attribution()
    # None = expectedness not yet assessed (v2; v1 filled in True): counts as unexpected.
    expected: bool | None = None
    immune_related: bool = False
    action_taken: ActionTaken = "none"
    outcome: Outcome = "not_recovered"
    resolved_on: dt.date | None = None
    site_aware_at: dt.datetime | None = None
    pre_existing: bool = False

    @model_validator(mode="after")
    def _seriousness_agrees(self) -> AeReportedData:
        if self.serious and not self.seriousness:
            raise ValueError("a serious AE names at least one seriousness criterion")
        if self.seriousness and not self.serious:
            raise ValueError("seriousness criteria given but serious is false")
        return self


class AeUpdatedData(Model):
    """A change to an AE episode: only the fields given change."""

    ae_event_id: EventRef
    grade: int | None = Field(default=None, ge=1, le=5)
    serious: bool | None = None
    seriousness: tuple[Seriousness, ...] | None = None
    attribution: Attribution | None = None
    expected: bool | None = None
    action_taken: ActionTaken | None = None
    outcome: Outcome | None = None
    resolved_on: dt.date | None = None
    site_aware_at: dt.datetime | None = None


class SaeAcknowledgedData(Model):
    """A safety officer's acknowledgement of an SAE alert (and, later, the expedited report).

    `alert_id` names an initial alert (`sae-<event_id>`) or a follow-up alert raised by an
    escalation (`sae-<ae_event_id>-fu-<ledger seq>`); the writer accepts it only if the
    ledger called for that alert (`projections.safety.sae_alerts`)."""

    # lower-cased like the event_id it names, so one alert has one spelling
    alert_id: Annotated[
        str,
        Field(pattern=r"^sae-[0-9a-fA-F-]{36}(-fu-[0-9]{1,19})?$"),
        AfterValidator(str.lower),
    ]
    ae_event_id: EventRef
    expedited_report_submitted_on: dt.date | None = None
    note: Text | None = None


def assessment_defaults_v1_to_v2(raw: dict[str, Any]) -> dict[str, Any]:
    """Upcaster of `ae_reported` and `ae_updated` v1 → v2: an absent causality or
    expectedness means "not yet assessed" from v2 on (v1 read it as unrelated / expected).

    Values given stay as they are. Every v1 event the writer stored carries all three
    causalities and the expectedness explicitly (it stored the full model), so no recorded
    fact changes meaning; only a v1 submission that leaves them out is now read as not yet
    assessed — the conservative reading the safety rules require.
    """
    return dict(raw)


class AeReported(Envelope):
    type: Literal["ae_reported"] = "ae_reported"
    data: AeReportedData


class AeUpdated(Envelope):
    type: Literal["ae_updated"] = "ae_updated"
    data: AeUpdatedData


class SaeAcknowledged(Envelope):
    type: Literal["sae_acknowledged"] = "sae_acknowledged"
    data: SaeAcknowledgedData
