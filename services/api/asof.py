"""Read models "as of" a past instant: built in the background into a side schema.

`?as_of=2025-06-01T00:00:00Z` on any read route serves the read models as the ledger stood
then (events recorded at or before it). The API only reads: each view is built by a process
of its own (`services.projector.asof_view`), never inside a request, and until it is ready the
route answers 202 with the build's progress (`AsOfPending`; the pages show a "being prepared"
page that refreshes itself). At most `builds` views are built at once (another instant gets a
503 with Retry-After); the `keep` views used last stay ready and the others are dropped; a
failed build is answered as a JSON status naming the failure, and started again once
`retry_after` seconds have passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import os
import secrets
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from fastapi import HTTPException

from projections.common.calendar import parse_instant
from projections.common.lru import Lru

MAX_BUILDS = 2
KEEP = 4
RETRY_AFTER_S = 5


def parse_as_of(value: str) -> dt.datetime:
    try:
        return parse_instant(value)
    except ValueError as exc:
        raise HTTPException(400, f"as_of is not an ISO 8601 instant: {value!r}") from exc


def schema_name(instant: dt.datetime, owner: str) -> str:
    """The view's schema: the instant's hash and the building API process's own token, so
    that API replicas sharing a database never build into, or drop, each other's views."""
    return f"asof_{hashlib.sha256(instant.isoformat().encode()).hexdigest()[:16]}_{owner}"


@dataclass
class View:
    """One as-of view: building (with progress), ready, or failed (with why)."""

    as_of: str
    schema: str
    status: str = "building"
    done: int = 0
    total: int | None = None
    error: str | None = None
    failed_at: float = 0.0
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "status": self.status,
            "as_of": self.as_of,
            "progress": {"done": self.done, "total": self.total},
        }
        if self.error is not None:
            body["error"] = self.error
        return body


class AsOfPending(Exception):
    """The view a request needs is not ready: `status_code` 202 while it is built, 503 when
    the build failed or too many are under way. The app answers with `body()` (JSON) or a
    page that refreshes itself."""

    def __init__(self, status_code: int, body: dict[str, Any], retry_after: int = 1) -> None:
        super().__init__(body.get("detail") or body.get("status"))
        self.status_code = status_code
        self.body = body
        self.retry_after = retry_after


class AsOfBuilds:
    """The as-of views of one API process. `environment` holds the builder's connection
    settings (LEDGER_NATS_URL, LEDGER_DATABASE_URL, LEDGER_REBUILD_CREDS); None when the API
    has no ledger to build from."""

    def __init__(
        self,
        environment: dict[str, str] | None,
        *,
        keep: int = KEEP,
        builds: int = MAX_BUILDS,
        retry_after: float = RETRY_AFTER_S,
        command: tuple[str, ...] = (sys.executable, "-m", "services.projector.asof_view"),
    ) -> None:
        self.environment = environment
        self.builds = builds
        self.retry_after = retry_after
        self.command = command
        self.owner = secrets.token_hex(4)
        self.ready: Lru[str, View] = Lru(keep)
        self.building: dict[str, View] = {}
        self.failed: dict[str, View] = {}
        self.dropping: set[asyncio.Task[None]] = set()
        self.dropped: list[str] = []  # schemas of evicted views, as their drops finish

    async def schema_for(self, instant: dt.datetime) -> str:
        """The schema of the view as of `instant` when it is ready; else AsOfPending (a build
        started if none is under way). Never waits for a build."""
        key = instant.isoformat()
        view = self.ready.get(key)
        if view is not None:
            return view.schema
        view = self.building.get(key)
        if view is not None:
            raise AsOfPending(202, view.body())
        failed = self.failed.get(key)
        if failed is not None:
            if time.monotonic() - failed.failed_at < self.retry_after:
                raise AsOfPending(503, failed.body(), retry_after=int(self.retry_after) or 1)
            del self.failed[key]
        if self.environment is None:
            raise HTTPException(503, "as-of views need the ledger (no NATS connection)")
        if len(self.building) >= self.builds:
            raise AsOfPending(
                503,
                {
                    "status": "busy",
                    "as_of": key,
                    "detail": f"{self.builds} as-of views are being built; ask again shortly",
                },
                retry_after=int(self.retry_after) or 1,
            )
        view = View(key, schema_name(instant, self.owner))
        self.building[key] = view
        view.task = asyncio.create_task(self._build(view), name=f"asof {key}")
        raise AsOfPending(202, view.body())

    async def _build(self, view: View) -> None:
        errors: deque[str] = deque(maxlen=5)
        process: asyncio.subprocess.Process | None = None
        try:
            process = await self._start("--schema", view.schema, "--as-of", view.as_of)
            assert process.stdout is not None and process.stderr is not None
            reading_errors = asyncio.create_task(_tail(process.stderr, errors))
            async for line in process.stdout:
                _progress(view, line)
            await reading_errors
            code = await process.wait()
            if code != 0 or view.status != "ready":
                raise RuntimeError(errors[-1] if errors else f"the builder exited with {code}")
        except asyncio.CancelledError:
            if process is not None and process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
            raise
        except Exception as exc:
            view.status, view.error, view.failed_at = "failed", str(exc), time.monotonic()
            self.failed[view.as_of] = view
            self._drop(view.schema)  # whatever part of it was made
            return
        finally:
            self.building.pop(view.as_of, None)
        view.done = view.total or view.done
        for _, evicted in self.ready.put(view.as_of, view):
            self._drop(evicted.schema)

    async def _start(self, *arguments: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            *self.command,
            *arguments,
            env={**os.environ, **(self.environment or {})},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )

    def _drop(self, schema: str) -> None:
        async def drop() -> None:
            process = await self._start("--drop", schema)
            await process.communicate()
            if process.returncode == 0:
                self.dropped.append(schema)

        task = asyncio.create_task(drop(), name=f"drop {schema}")
        self.dropping.add(task)
        task.add_done_callback(self.dropping.discard)

    async def close(self) -> None:
        """Stop the builds under way (their processes end with them) and drop every view of
        this process (nobody else reads them)."""
        tasks = [view.task for view in self.building.values() if view.task is not None]
        for task in tasks:
            task.cancel()
        for view in [*self.building.values(), *self.ready.values()]:
            self._drop(view.schema)
        self.ready.clear()
        for task in [*tasks, *self.dropping]:
            with contextlib.suppress(BaseException):
                await task


def _progress(view: View, line: bytes) -> None:
    try:
        said = json.loads(line)
    except ValueError:
        return
    if not isinstance(said, dict):
        return
    if isinstance(said.get("total"), int):
        view.total = said["total"]
    if isinstance(said.get("done"), int):
        view.done = said["done"]
    if said.get("ready") is True:
        view.status = "ready"


async def _tail(stream: asyncio.StreamReader, lines: deque[str]) -> None:
    async for line in stream:
        text = line.decode(errors="replace").strip()
        if text:
            lines.append(text[:500])
