"""The event envelope every ledger entry shares (DESIGN.md, "Event envelope")."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, ClassVar
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)

TOKEN_PATTERN = r"^[A-Za-z0-9_-]+$"
TOKEN_RE = re.compile(TOKEN_PATTERN)

# Control characters (Unicode category Cc) other than tab, line feed and carriage return, and
# lone surrogates. NUL cannot be stored by PostgreSQL and stalls every read model; the others
# corrupt terminals, CSV exports and logs. CR stays allowed: a free-text note pasted from a
# Windows form ends its lines with CRLF, and text never travels in a header or a log line.
_FORBIDDEN_TEXT_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """Why `value` may not be stored as text in the ledger, or None when it may."""
    found = _FORBIDDEN_TEXT_RE.search(value)
    if found is None:
        return None
    return (
        f"control character U+{ord(found.group()):04X} at position {found.start()} is not "
        "allowed in text (tab and line breaks are)"
    )


def _plain_text(value: str) -> str:
    problem = text_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _canonical_uuid(value: Any) -> Any:
    """A reference spelled as a UUID is stored in its canonical lower-case form, so every
    comparison with an `event_id` (itself a UUID) is a comparison of the same spelling."""
    if isinstance(value, str) and len(value) <= 64:
        try:
            return str(UUID(value))
        except ValueError:
            return value
    return value


PlainText = AfterValidator(_plain_text)
# NATS subject tokens: the ids travel inside subjects, so they share its alphabet.
Token = Annotated[str, StringConstraints(pattern=TOKEN_PATTERN, min_length=1, max_length=64)]
UserId = Annotated[str, StringConstraints(min_length=1, max_length=128), PlainText]
Text = Annotated[str, StringConstraints(max_length=2000), PlainText]
# A reference to another event's `event_id` (an AE, a corrected event).
EventRef = Annotated[
    str, BeforeValidator(_canonical_uuid), StringConstraints(min_length=1, max_length=64), PlainText
]
# The fields the writer adds to a stored event; a site never sends them.
WRITER_FIELDS = ("recorded_at", "prev_hash", "hash")

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
