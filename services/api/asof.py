"""Read models "as of" a past instant: rebuilt on demand from the ledger into a side schema.

`?as_of=2025-06-01T00:00:00Z` on any read route serves the read models as the ledger stood
then (events recorded at or before it). Builds are cached per instant (a few at a time) and
named by a hash of the instant, so repeated views are instant.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib

from fastapi import HTTPException
from nats.aio.client import Client
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.common.calendar import parse_instant
from projections.common.lru import Lru
from services.projector.rebuild import drop_schema, rebuild


def parse_as_of(value: str) -> dt.datetime:
    try:
        return parse_instant(value)
    except ValueError as exc:
        raise HTTPException(400, f"as_of is not an ISO 8601 instant: {value!r}") from exc


class AsOfBuilds:
    def __init__(self, engine: AsyncEngine, nc: Client | None, keep: int = 4) -> None:
        self.engine = engine
        self.nc = nc
        self.keep = keep
        self._built: Lru[str, str] = Lru(keep)  # instant → its schema, the newest kept
        self._lock = asyncio.Lock()

    async def schema_for(self, instant: dt.datetime) -> str:
        key = instant.isoformat()
        async with self._lock:
            built = self._built.get(key)
            if built is not None:
                return built
            if self.nc is None:
                raise HTTPException(503, "as-of views need the ledger (no NATS connection)")
            from services.projector.app import all_projections

            schema = "asof_" + hashlib.sha256(key.encode()).hexdigest()[:16]
            await rebuild(
                self.nc.jetstream(), self.engine, schema, all_projections(), as_of=instant
            )
            for _, old in self._built.put(key, schema):
                await drop_schema(self.engine, old)
            return schema
