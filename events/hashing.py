"""Canonical JSON (RFC 8785) and the per-patient hash chain (DESIGN.md, "Event envelope")."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

import rfc8785
from pydantic import BaseModel

from events.envelope import WRITER_FIELDS, ZERO_HASH

# Python's shortest round-trip repr equals ECMAScript's Number.toString for non-integral
# floats from 1e-4 up (below it Python switches to exponents earlier than ECMAScript).
_PLAIN_FLOAT_LOW = 1e-4
_PLAIN_FLOAT_HIGH = 1e21
_ENCODER = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False
)


def _plain(value: Any) -> Any:
    """The value with integral floats as ints, or None when the fast path cannot be exact."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**53 else None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        if value.is_integer():
            return int(value) if abs(value) < 2**53 else None
        magnitude = abs(value)
        return value if _PLAIN_FLOAT_LOW <= magnitude < _PLAIN_FLOAT_HIGH else None
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str) or not key.isascii():
                return None  # RFC 8785 sorts by UTF-16 code units: only ASCII sorts alike
            plain = _plain(item)
            if plain is None and item is not None:
                return None
            out[key] = plain
        return out
    if isinstance(value, list | tuple):
        items = []
        for item in value:
            plain = _plain(item)
            if plain is None and item is not None:
                return None
            items.append(plain)
        return items
    return None


def canonical_json(obj: Any) -> bytes:
    """RFC 8785 JSON Canonicalization Scheme bytes of a JSON-compatible value.

    Fast path through the standard encoder for the values clinical events hold (ASCII keys,
    finite numbers in the range where both number formats agree); anything else goes
    through the `rfc8785` reference implementation. Tests hold the two equal.
    """
    plain = _plain(obj)
    if plain is None and obj is not None:
        return rfc8785.dumps(obj)
    return _ENCODER.encode(plain).encode("utf-8")


def event_hash(stored: Mapping[str, Any]) -> str:
    """Hex SHA-256 of the canonical JSON of the stored event object without its `hash`."""
    body = {key: value for key, value in stored.items() if key != "hash"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def submission_digest(event: BaseModel) -> str:
    """What makes two submissions of one `event_id` the same event: the SHA-256 of the RFC 8785
    canonical JSON of the validated event without the writer's fields. Validated, so a default
    spelt out or left implicit and a UUID in either case count alike; a resubmission is
    "duplicate" only when this matches the stored event's (issue 14, item 1)."""
    body = event.model_dump(mode="json", exclude=set(WRITER_FIELDS))
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
