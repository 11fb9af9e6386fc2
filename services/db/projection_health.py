"""What an operator looks at in a build: each projection's position and lag behind the
ledger, and the events projections set aside (parked)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ledger.io import ledger_head


async def projection_status(engine: AsyncEngine, js: Any, schema: str) -> list[dict[str, Any]]:
    head = await ledger_head(js)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    f"SELECT p.projection, p.last_seq, p.applied, "
                    f"(SELECT count(*) FROM \"{schema}\".parked_event x WHERE x.projection = split_part(p.projection, '#', 1)) "
                    f'FROM "{schema}".projection_checkpoint p ORDER BY p.projection'
                )
            )
        ).all()
    return [
        {
            "projection": r[0],
            "checkpoint_seq": int(r[1]),
            "ledger_head": head,
            "lag": max(0, head - int(r[1])),
            "applied": int(r[2]),
            "parked": int(r[3]),
        }
        for r in rows
    ]


async def parked_events(
    engine: AsyncEngine, schema: str, trial_id: str, site_id: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """The events of a trial (of one site, if given) that projections set aside, newest
    first: what an operator looks into (the reason is the error, never the event's content)."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                f'SELECT projection, seq, event_id, reason, parked_at FROM "{schema}".parked_event '
                "WHERE split_part(subject, '.', 2) = :t "
                "AND (CAST(:s AS text) IS NULL OR split_part(subject, '.', 3) = :s) "
                "ORDER BY seq DESC, projection LIMIT :n"
            ),
            {"t": trial_id, "s": site_id, "n": limit},
        )
        return [
            {
                "projection": r.projection,
                "seq": int(r.seq),
                "event_id": r.event_id,
                "reason": r.reason,
                "parked_at": r.parked_at.isoformat(),
            }
            for r in rows
        ]
