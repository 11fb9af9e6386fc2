"""The site client: submit events to `intake.<trial>.<site>` and get a verdict for each.

A timeout or a lost connection never means "not recorded": the client resubmits the very
same event (same `event_id`), and the writer answers `duplicate` with the original seq if
the first attempt did land. So retrying is always safe.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from typing import Any

from nats.aio.client import Client
from nats.errors import ConnectionClosedError, NoRespondersError, TimeoutError

from events.intake_reply import read_reply
from events.subjects import intake_subject
from services.config.retry import retried

RETRYABLE = (TimeoutError, NoRespondersError, ConnectionClosedError, asyncio.TimeoutError)


def new_event_id() -> str:
    return str(uuid.uuid4())


class SiteClient:
    """One site's submissions to one trial."""

    def __init__(
        self,
        nc: Client,
        trial_id: str,
        site_id: str,
        *,
        timeout: float = 10.0,
        attempts: int = 8,
        backoff: float = 0.2,
    ) -> None:
        self.nc = nc
        self.trial_id = trial_id
        self.site_id = site_id
        self.subject = intake_subject(trial_id, site_id)
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff

    async def _request(self, body: dict[str, Any]) -> dict[str, Any]:
        payload = json.dumps(body, separators=(",", ":")).encode()

        async def ask() -> dict[str, Any]:
            reply = await self.nc.request(self.subject, payload, timeout=self.timeout)
            return read_reply(reply.data).wire()  # NotAReply (a ValueError) if off-contract

        return await retried(
            ask, retry_on=RETRYABLE, attempts=self.attempts, first_wait=self.backoff
        )

    async def submit(self, event: dict[str, Any]) -> dict[str, Any]:
        """Submit one event; its `event_id` is set here if the caller left it out."""
        event.setdefault("event_id", new_event_id())
        return await self._request(event)

    async def submit_batch(self, events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Submit several events in one request; each is judged on its own."""
        for event in events:
            event.setdefault("event_id", new_event_id())
        reply = await self._request({"events": list(events)})
        results = reply.get("results")
        if not isinstance(results, list):
            return [reply for _ in events]  # the batch as a whole was refused
        return results
