"""The one discriminated union of every event type, and how to decode one.

Strict producing, tolerant consuming: the writer decodes with `extra="forbid"`; readers
(projections, replay) decode with unknown fields ignored. A newer schema version than this
code knows is an error, never silently skipped (STYLE.md rule 5).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter

from events.clinical import (
    Death,
    DoseModified,
    Enrolled,
    FollowUpContact,
    InfusionGiven,
    SubsequentTherapyStarted,
    TreatmentDiscontinued,
    Withdrawn,
)
from events.safety import AeReported, AeUpdated, SaeAcknowledged, assessment_defaults_v1_to_v2
from events.scans import ScanRead
from events.trial import (
    EventCorrected,
    EventRetracted,
    LedgerSealed,
    ProtocolParametersSet,
)

LedgerEvent = Annotated[
    Enrolled
    | InfusionGiven
    | DoseModified
    | ScanRead
    | AeReported
    | AeUpdated
    | Death
    | FollowUpContact
    | SubsequentTherapyStarted
    | TreatmentDiscontinued
    | Withdrawn
    | EventCorrected
    | EventRetracted
    | SaeAcknowledged
    | ProtocolParametersSet
    | LedgerSealed,
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter[LedgerEvent] = TypeAdapter(LedgerEvent)

EVENT_CLASSES: dict[str, type[Any]] = {
    cls.model_fields["type"].default: cls
    for cls in (
        Enrolled,
        InfusionGiven,
        DoseModified,
        ScanRead,
        AeReported,
        AeUpdated,
        Death,
        FollowUpContact,
        SubsequentTherapyStarted,
        TreatmentDiscontinued,
        Withdrawn,
        EventCorrected,
        EventRetracted,
        SaeAcknowledged,
        ProtocolParametersSet,
        LedgerSealed,
    )
}
EVENT_TYPES: tuple[str, ...] = tuple(EVENT_CLASSES)

# The newest schema version of each type this code understands.
CURRENT_VERSION: dict[str, int] = {
    **dict.fromkeys(EVENT_TYPES, 1),
    "ae_reported": 2,  # v2: absent causality / expectedness = not yet assessed
    "ae_updated": 2,
}

# (type, from_version) -> pure function turning a raw v(n) dict into a raw v(n+1) dict.
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
UPCASTERS: dict[tuple[str, int], Upcaster] = {
    ("ae_reported", 1): assessment_defaults_v1_to_v2,
    ("ae_updated", 1): assessment_defaults_v1_to_v2,
}

TRIAL_LEVEL_TYPES = frozenset({"protocol_parameters_set", "ledger_sealed"})
WRITER_ONLY_TYPES = frozenset({"ledger_sealed"})


class UnknownEventType(ValueError):
    """A type this code does not know: readers log and skip it."""


class NewerSchemaVersion(ValueError):
    """A version newer than this code knows: never skipped silently."""


def upcast(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Bring a raw event dict up to the current schema version of its type."""
    event = dict(raw)
    kind = event.get("type")
    if not isinstance(kind, str) or kind not in CURRENT_VERSION:
        raise UnknownEventType(f"unknown event type {kind!r}")
    version = event.get("schema_version", 1)
    if not isinstance(version, int):
        return event  # let validation report the wrong type
    current = CURRENT_VERSION[kind]
    if version > current:
        raise NewerSchemaVersion(f"{kind} schema_version {version} > known {current}")
    while version < current:
        event = UPCASTERS[(kind, version)](event)
        version += 1
        event["schema_version"] = version
    return event


def decode(
    raw: Mapping[str, Any], *, mode: Literal["strict", "tolerant"] = "tolerant"
) -> LedgerEvent:
    """Decode a stored or submitted event dict into its model (after upcasting)."""
    extra: Literal["forbid", "ignore"] = "forbid" if mode == "strict" else "ignore"
    return EVENT_ADAPTER.validate_python(upcast(raw), extra=extra)
