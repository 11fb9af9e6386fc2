"""What outside the ledger says the ledger must hold: seqs it must reach, events it must keep.

A replay can prove that what the stream holds is intact, never that nothing is missing from
its end: a truncated or re-created stream replays clean. So `verify` also collects marks kept
elsewhere and checks the ledger against each:
- the writer's high-water mark (<data dir>/ledger-high-water.json): the highest seq JetStream
  acknowledged to a writer, with that event's hash;
- the latest seal the writer appended, kept in the same file: signed, so only a trusted
  writer can have made it (an editor of the data dir can remove it, not forge it);
- every read-model checkpoint in PostgreSQL: a projection applied events up to that seq.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from events import event_hash
from services.db.migrate import active_build, make_engine
from services.ledger.high_water import mark_path, read_mark
from services.security.checkpoints import projection_checkpoints
from services.security.seals import seal_signature_valid


@dataclass(frozen=True)
class Mark:
    """The ledger must reach `seq` (and hold the event hashed `hash` there, when known)."""

    seq: int
    source: str
    hash: str | None = None


def writer_marks(data_dir: Path, trusted: tuple[str, ...]) -> tuple[list[Mark], list[str]]:
    """The writer's high-water mark and its latest seal; notes on what could not be used."""
    notes: list[str] = []
    try:
        recorded = read_mark(data_dir)
    except (OSError, ValueError) as exc:
        return [], [f"the writer's high-water mark is unreadable: {exc}"]
    if recorded is None:
        return [], [f"no writer high-water mark in {data_dir}"]
    marks = [
        Mark(recorded.seq, f"the writer's high-water mark ({mark_path(data_dir)})", recorded.hash)
    ]
    seal = recorded.seal
    if seal is not None:
        if _trusted_seal(seal, trusted):
            marks.append(
                Mark(
                    recorded.seal_seq,
                    "the writer's latest signed seal (high-water file)",
                    str(seal["hash"]),
                )
            )
        else:
            notes.append("the seal in the high-water file is not signed by a trusted key")
    return marks, notes


def _trusted_seal(stored: dict[str, Any], trusted: tuple[str, ...]) -> bool:
    data = stored.get("data")
    return (
        isinstance(data, dict)
        and (not trusted or data.get("public_key") in trusted)
        and seal_signature_valid(data)
        and event_hash(stored) == stored.get("hash")
    )


async def checkpoint_marks(database_url: str | None) -> tuple[list[Mark], list[str]]:
    """Every projection checkpoint of the live read-model build."""
    if not database_url:
        return [], ["no database: read-model checkpoints not compared"]
    engine = make_engine(database_url, pool_size=1)
    try:
        build = await active_build(engine)
        checkpoints = await projection_checkpoints(engine, build)
    except Exception as exc:  # an unreachable database costs this evidence, not the verify
        return [], [f"read-model checkpoints not compared: {type(exc).__name__}: {exc}"]
    finally:
        await engine.dispose()
    marks = [
        Mark(seq, f"read model {name}'s checkpoint ({build})")
        for name, seq in sorted(checkpoints.items())
        if seq > 0
    ]
    return marks, []
