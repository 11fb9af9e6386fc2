"""The body of an ALERTS message on `alerts.sae.<trial>.<site>` (DESIGN.md, "Contracts").

The alerter builds each message through `SaeAlertMessage` (`projections.safety.sae_alerts`), and
officers' clients read them through it (`services.client.follow`). The fields DESIGN.md
names are required; the ones added later (follow-ups, clocks, data quality) have defaults,
so a message published by an older alerter is still read.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, PlainSerializer, ValidationError


def utc_text(moment: dt.datetime) -> str:
    """An instant as ISO 8601 in UTC with `Z` (a naive instant is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


ExpeditedDays = Literal[7, 15]
UtcInstant = Annotated[dt.datetime, PlainSerializer(utc_text, return_type=str)]


class SaeAlertMessage(BaseModel):
    """An initial alert (the AE became serious) or a follow-up raised by an escalation."""

    model_config = ConfigDict(frozen=True, extra="ignore", title="SaeAlertMessage")

    alert_id: str  # also the message's Nats-Msg-Id
    kind: Literal["initial", "follow_up"] = "initial"
    follows: str | None = None  # a follow-up's initial alert
    reasons: list[str] = []  # a follow-up's escalations
    trial_id: str
    site_id: str
    patient_id: str
    ae_event_id: str
    seq: int  # ledger seq of the AE report
    term: str
    grade: int
    seriousness: list[str]
    susar: bool = False
    expedited_days: ExpeditedDays | None
    report_due: dt.date | None
    acknowledgement_due: dt.date | None = None
    awareness_at: UtcInstant | None = None
    late_entry: bool | None = None
    clock_unknown: bool = False
    data_quality: list[str] = []
    not_yet_assessed: list[str] = []
    trigger: str | None = None
    trigger_seq: int | None = None
    raised_at: UtcInstant  # the alerter's clock

    def wire(self) -> dict[str, Any]:
        """The message as JSON: every field, in this order."""
        return self.model_dump(mode="json")

    def as_sent(self) -> dict[str, Any]:
        """A message read from ALERTS as its alerter sent it: only the fields it carried (an
        older alerter's carries fewer; their defaults are the model's to give)."""
        return self.model_dump(mode="json", exclude_unset=True)


class NotAnAlert(ValueError):
    """An ALERTS message that is not an alert of the contract."""


def read_alert(data: bytes | str) -> SaeAlertMessage:
    try:
        return SaeAlertMessage.model_validate_json(data)
    except ValidationError as exc:
        raise NotAnAlert(f"not an SAE alert message: {exc}") from None
