"""Event schemas of the trial ledger: envelope, types, subjects, canonical JSON + hashing.

Pure: imports only the standard library and pydantic (and the RFC 8785 encoder).
"""

from events.catalogue import (
    CURRENT_VERSION,
    EVENT_ADAPTER,
    EVENT_CLASSES,
    EVENT_TYPES,
    LedgerEvent,
    NewerSchemaVersion,
    UnknownEventType,
    decode,
    upcast,
)
from events.clinical import *  # noqa: F403 - the catalogue is the package's surface
from events.envelope import SPONSOR_SITE, TRIAL_PATIENT, ZERO_HASH, Envelope
from events.hashing import (
    canonical_json,
    event_hash,
    hash_is_valid,
    seal_stored,
    submission_digest,
)
from events.safety import (
    AeReported,
    AeReportedData,
    AeUpdated,
    AeUpdatedData,
    Attribution,
    SaeAcknowledged,
    SaeAcknowledgedData,
)
from events.scans import Lesion, PvttAssessment, ReaderCalls, ScanRead, ScanReadData
from events.trial import (
    EventCorrected,
    EventCorrectedData,
    EventRetracted,
    EventRetractedData,
    LedgerSealed,
    LedgerSealedData,
    ProtocolParameters,
    ProtocolParametersSet,
    ProtocolParametersSetData,
)

__all__ = [
    "CURRENT_VERSION",
    "EVENT_ADAPTER",
    "EVENT_CLASSES",
    "EVENT_TYPES",
    "SPONSOR_SITE",
    "TRIAL_PATIENT",
    "ZERO_HASH",
    "AeReported",
    "AeReportedData",
    "AeUpdated",
    "AeUpdatedData",
    "Attribution",
    "Envelope",
    "EventCorrected",
    "EventCorrectedData",
    "EventRetracted",
    "EventRetractedData",
    "LedgerEvent",
    "LedgerSealed",
    "LedgerSealedData",
    "Lesion",
    "NewerSchemaVersion",
    "ProtocolParameters",
    "ProtocolParametersSet",
    "ProtocolParametersSetData",
    "PvttAssessment",
    "ReaderCalls",
    "SaeAcknowledged",
    "SaeAcknowledgedData",
    "ScanRead",
    "ScanReadData",
    "UnknownEventType",
    "canonical_json",
    "decode",
    "event_hash",
    "hash_is_valid",
    "seal_stored",
    "submission_digest",
    "upcast",
]
