"""How every route reads: the active build (or an as-of build) through one connection.

Kept apart from the app factory so that route modules import it, and the factory imports the
route modules by name, without a cycle."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.api.asof import parse_as_of
from services.db.migrate import active_build


class Builds:
    """Which schema the API reads: the active build, re-read at most once a second."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._name = ""
        self._read_at = 0.0

    async def current(self) -> str:
        if time.monotonic() - self._read_at > 1.0:
            self._name = await active_build(self.engine)
            self._read_at = time.monotonic()
        return self._name


def jsonable(row: Any) -> dict[str, Any]:
    value = dict(row._mapping)
    for key, item in value.items():
        if hasattr(item, "isoformat"):
            value[key] = item.isoformat()
    return value


@contextlib.asynccontextmanager
async def reading(request: Request) -> AsyncIterator[AsyncConnection]:
    """A connection reading the live build, or with `?as_of=` the build as of that instant."""
    as_of = request.query_params.get("as_of")
    if as_of:
        schema = await request.app.state.asof.schema_for(parse_as_of(as_of))
    else:
        schema = await request.app.state.builds.current()
    async with request.app.state.engine.connect() as conn:
        yield await conn.execution_options(schema_translate_map={None: schema})
