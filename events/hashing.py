"""Canonical JSON (RFC 8785) and the per-patient hash chain (DESIGN.md, "Event envelope")."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import rfc8785

from events.envelope import ZERO_HASH


def canonical_json(obj: Any) -> bytes:
    """RFC 8785 JSON Canonicalization Scheme bytes of a JSON-compatible value."""
    return rfc8785.dumps(obj)


def event_hash(stored: Mapping[str, Any]) -> str:
    """Hex SHA-256 of the canonical JSON of the stored event object without its `hash`."""
    body = {key: value for key, value in stored.items() if key != "hash"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def seal_stored(
    event: Mapping[str, Any], *, recorded_at: str, prev_hash: str | None
) -> dict[str, Any]:
    """The stored form of an accepted event: writer fields set, hash computed last."""
    stored = dict(event)
    stored["recorded_at"] = recorded_at
    stored["prev_hash"] = prev_hash or ZERO_HASH
    stored.pop("hash", None)
    stored["hash"] = event_hash(stored)
    return stored


def hash_is_valid(stored: Mapping[str, Any]) -> bool:
    return stored.get("hash") == event_hash(stored)
