"""The API keeps a few as-of builds, the most recently viewed, and drops the schema of the one
it lets go (through the code base's one bounded cache)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from services.api import asof

pytestmark = pytest.mark.unit


async def test_the_least_recently_viewed_build_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[str] = []
    dropped: list[str] = []

    async def rebuild(_js: Any, _engine: Any, schema: str, *_: Any, **__: Any) -> None:
        built.append(schema)

    async def drop_schema(_engine: Any, schema: str) -> None:
        dropped.append(schema)

    class Nats:
        def jetstream(self) -> None:
            return None

    monkeypatch.setattr(asof, "rebuild", rebuild)
    monkeypatch.setattr(asof, "drop_schema", drop_schema)
    builds = asof.AsOfBuilds(None, Nats(), keep=2)  # type: ignore[arg-type]
    day = [dt.datetime(2025, 1, n, tzinfo=dt.UTC) for n in (1, 2, 3)]
    first = await builds.schema_for(day[0])
    second = await builds.schema_for(day[1])
    assert await builds.schema_for(day[0]) == first  # viewed again: kept, not rebuilt
    third = await builds.schema_for(day[2])
    assert built == [first, second, third]
    assert dropped == [second]
    assert await builds.schema_for(day[0]) == first and len(built) == 3
