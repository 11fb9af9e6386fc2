"""The writer's Ed25519 key, per-event signatures and signed seals of the ledger.

Two signatures, both by the key only the writer holds:
- every appended event carries the header `Ledger-Signature` = signature of its `hash`, so
  an event put into the stream by anyone else (even with admin rights on NATS) is visible;
- every N events or T seconds a `ledger_sealed` event commits to every patient's chain head
  of the trial at a ledger seq (`upto_seq`), chained to the previous seal, signed over the
  canonical JSON (RFC 8785) of its `data` without `signature`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from events import canonical_json

# How often the writer seals each trial (services/writer/sealer.py); verify's completeness
# check bounds an unsealed tail by the same numbers.
SEAL_EVERY_EVENTS = 500
SEAL_EVERY_SECONDS = 10.0

SIGNATURE_HEADER = "Ledger-Signature"
KEY_FILE = "writer_ed25519"
# Where auditors find the public key to pin (`verify --public-key`): beside runtime.json.
PUBLIC_PEM_FILE = "seal-public-key.pem"


def key_path(data_dir: Path) -> Path:
    return data_dir / "keys" / KEY_FILE


def public_key_path(data_dir: Path) -> Path:
    return data_dir / "keys" / f"{KEY_FILE}.pub"


def public_pem_path(data_dir: Path) -> Path:
    return data_dir / PUBLIC_PEM_FILE


def ensure_writer_key(data_dir: Path) -> Path:
    """Create the writer's key once (PEM, 0600, in a 0700 directory) and keep it; write its
    public key beside it (base64) and as <data dir>/seal-public-key.pem for auditors to pin."""
    path = key_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    if not path.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
    path.chmod(0o600)
    private = load_private_key(str(path))
    public_key_path(data_dir).write_text(public_key_b64(private) + "\n")
    write_public_pem(data_dir, private)
    return path


def write_public_pem(data_dir: Path, key: Ed25519PrivateKey) -> Path:
    """<data dir>/seal-public-key.pem: the key auditors pin (`verify --public-key`)."""
    path = public_pem_path(data_dir)
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


def fingerprint(public_key: str) -> str:
    """`SHA256:<hex>` of the raw 32-byte public key: short enough to read out and compare."""
    return "SHA256:" + hashlib.sha256(base64.b64decode(public_key)).hexdigest()


def read_public_key_file(path: Path) -> str:
    """An auditor's pinned key → base64 of the raw key. The file holds a PEM public key
    (seal-public-key.pem) or the base64 line of keys/writer_ed25519.pub."""
    raw = path.read_bytes()
    if b"-----BEGIN" in raw:
        key = serialization.load_pem_public_key(raw)
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError(f"{path} does not hold an Ed25519 public key")
        public = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return base64.b64encode(public).decode()
    text = raw.decode().strip()
    if _public(text) is None:
        raise ValueError(f"{path} holds neither a PEM nor a base64 Ed25519 public key")
    return text


def load_private_key(value: str) -> Ed25519PrivateKey:
    """`value` is a PEM file's path or the base64 of the raw 32-byte private key."""
    path = Path(value)
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} does not hold an Ed25519 private key")
        return key
    return Ed25519PrivateKey.from_private_bytes(base64.b64decode(value, validate=True))


def public_key_b64(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def _public(value: str) -> Ed25519PublicKey | None:
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(value, validate=True))
    except (ValueError, binascii.Error):
        return None


def _valid(public_key: str, signature: str, message: bytes) -> bool:
    key = _public(public_key)
    if key is None:
        return False
    try:
        key.verify(base64.b64decode(signature, validate=True), message)
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True


# -- per-event signatures -------------------------------------------------------------------
def sign_event_hash(key: Ed25519PrivateKey, event_hash: str) -> str:
    return base64.b64encode(key.sign(event_hash.encode())).decode()


def event_signed_by(public_keys: tuple[str, ...], event_hash: str, signature: str | None) -> bool:
    return signature is not None and any(
        _valid(public, signature, event_hash.encode()) for public in public_keys
    )


# -- seals ----------------------------------------------------------------------------------
def heads_digest(heads: Mapping[str, str]) -> str:
    """SHA-256 of the canonical JSON of the {"trial.site.patient": head hash} map."""
    return hashlib.sha256(canonical_json(dict(heads))).hexdigest()


def order_digest(entries: Iterable[tuple[int, str]]) -> str:
    """SHA-256 of the canonical JSON of [[seq, hash], ...]: the order of a trial's events
    between two seals. A chain orders one patient's events; only this orders the patients'
    events among each other, so two of them swapped in the stream show at the next seal."""
    return hashlib.sha256(canonical_json([[seq, h] for seq, h in entries])).hexdigest()


def signed_part(data: Mapping[str, Any]) -> bytes:
    return canonical_json({name: value for name, value in data.items() if name != "signature"})


def seal_data(
    key: Ed25519PrivateKey,
    *,
    upto_seq: int,
    event_count: int,
    heads: Mapping[str, str],
    previous_seal_hash: str | None,
    order: Iterable[tuple[int, str]] | None = None,
) -> dict[str, Any]:
    """The `data` of a `ledger_sealed` event, signed. `order`: (seq, hash) of the trial's
    events after the previous seal's upto_seq, up to this one's."""
    data: dict[str, Any] = {
        "upto_seq": upto_seq,
        "event_count": event_count,
        "heads_digest": heads_digest(heads),
        "heads": dict(sorted(heads.items())),
        "previous_seal_hash": previous_seal_hash,
        "public_key": public_key_b64(key),
    }
    if order is not None:
        data["order_digest"] = order_digest(order)
    data["signature"] = base64.b64encode(key.sign(signed_part(data))).decode()
    return data


def seal_signature_valid(data: Mapping[str, Any]) -> bool:
    """The seal's signature checks against the public key it names (trust is checked apart)."""
    public, signature = data.get("public_key"), data.get("signature")
    if not isinstance(public, str) or not isinstance(signature, str):
        return False
    return _valid(public, signature, signed_part(data))


def trusted_keys(configured: str | None, data_dir: Path) -> tuple[str, ...]:
    """The writer public keys an auditor trusts: configured ones, else the data dir's."""
    if configured:
        return tuple(k.strip() for k in configured.split(",") if k.strip())
    path = public_key_path(data_dir)
    return (path.read_text().strip(),) if path.exists() else ()
