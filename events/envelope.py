"""The event envelope every ledger entry shares (DESIGN.md, "Event envelope")."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, ClassVar
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

TOKEN_PATTERN = r"^[A-Za-z0-9_-]+$"
TOKEN_RE = re.compile(TOKEN_PATTERN)

# NATS subject tokens: the ids travel inside subjects, so they share its alphabet.
Token = Annotated[str, StringConstraints(pattern=TOKEN_PATTERN, min_length=1, max_length=64)]
UserId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Text = Annotated[str, StringConstraints(max_length=2000)]

SPONSOR_SITE = "_sponsor"
TRIAL_PATIENT = "_trial"
ZERO_HASH = "0" * 64


def _tenth_of_mm(value: float) -> float:
    """Measurements are read to 0.1 mm: anything finer is a data-entry error, and the
    response engine compares sums in exact tenths, never as floats."""
    if value < 0:
        raise ValueError("a measurement cannot be negative")
    if abs(value * 10 - round(value * 10)) > 1e-6:
        raise ValueError("measurements are recorded to 0.1 mm")
    return value


Millimetres = Annotated[float, Field(ge=0, le=1000), AfterValidator(_tenth_of_mm)]


class Model(BaseModel):
    """Base of every event and every data block: frozen, snake_case, no surprises."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Envelope(Model):
    """Fields common to every event. Subclasses pin `type` and `data`.

    `recorded_at`, `prev_hash` and `hash` are set by the writer; a site never sends them
    (the writer rejects a submission that tries to).
    """

    CORRECTION_TYPES: ClassVar[frozenset[str]] = frozenset({"event_corrected", "event_retracted"})

    event_id: UUID
    schema_version: int = Field(default=1, ge=1)
    trial_id: Token
    site_id: Token
    patient_id: Token
    occurred_on: dt.date
    recorded_by: UserId
    reason: Text | None = None
    recorded_at: dt.datetime | None = None
    prev_hash: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] | None = None
    hash: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] | None = None

    @property
    def event_type(self) -> str:
        value: Any = getattr(self, "type")  # noqa: B009 - pinned by each subclass
        return str(value)

    @property
    def patient_key(self) -> tuple[str, str, str]:
        return (self.trial_id, self.site_id, self.patient_id)
