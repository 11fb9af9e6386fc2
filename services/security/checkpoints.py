"""The read models' checkpoints as evidence of how far the ledger went (PostgreSQL side of
services.ledger.backwards, apart so that NATS-only services never import SQL)."""

from __future__ import annotations

from nats.js import JetStreamContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.db.migrate import check_schema_name
from services.ledger.backwards import refuse_if_behind
from services.ledger.io import ledger_head


async def projection_checkpoints(engine: AsyncEngine, schema: str) -> dict[str, int]:
    """Each projection's (and partition's) checkpoint seq in the read-model build `schema`."""
    check_schema_name(schema)
    async with engine.connect() as conn:
        exists = (
            await conn.execute(
                text("SELECT to_regclass(:t)"), {"t": f'"{schema}".projection_checkpoint'}
            )
        ).scalar()
        if exists is None:
            return {}
        rows = (
            await conn.execute(
                text(f'SELECT projection, last_seq FROM "{schema}".projection_checkpoint')
            )
        ).all()
    return {str(name): int(seq) for name, seq in rows}


async def refuse_checkpoints_ahead(js: JetStreamContext, engine: AsyncEngine, schema: str) -> None:
    """A projector never runs on a ledger shorter than its read models' checkpoints."""
    checkpoints = await projection_checkpoints(engine, schema)
    if checkpoints:
        name, seq = max(checkpoints.items(), key=lambda item: item[1])
        refuse_if_behind(
            await ledger_head(js), seq, "the projector", f"projection {name}'s checkpoint"
        )
