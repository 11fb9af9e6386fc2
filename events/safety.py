"""Adverse events and their follow-up (DOMAIN.md "Adverse events", "Serious AEs and clocks")."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

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
    """Causality per study agent (the HAIC procedure and its chemotherapy count as one)."""

    haic: Causality = "unrelated"
    pd1: Causality = "unrelated"
    lenvatinib: Causality = "unrelated"


class AeReportedData(Model):
    """A new AE episode; its onset date is the envelope's `occurred_on`."""

    ctcae_version: Literal["5.0"] = "5.0"
    term: Text
    verbatim: Text | None = None
    grade: int = Field(ge=1, le=5)
    serious: bool = False
    seriousness: tuple[Seriousness, ...] = ()
    attribution: Attribution = Attribution()
    expected: bool = True
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
    """A safety officer's acknowledgement of an SAE alert (and, later, the expedited report)."""

    # lower-cased like the event_id it names, so one alert has one spelling
    alert_id: Annotated[str, Field(pattern=r"^sae-[0-9a-fA-F-]{36}$"), AfterValidator(str.lower)]
    ae_event_id: EventRef
    expedited_report_submitted_on: dt.date | None = None
    note: Text | None = None


class AeReported(Envelope):
    type: Literal["ae_reported"] = "ae_reported"
    data: AeReportedData


class AeUpdated(Envelope):
    type: Literal["ae_updated"] = "ae_updated"
    data: AeUpdatedData


class SaeAcknowledged(Envelope):
    type: Literal["sae_acknowledged"] = "sae_acknowledged"
    data: SaeAcknowledgedData
