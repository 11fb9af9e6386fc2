"""A ledger that went backwards: shorter than what a service or a read model already saw.

Every service keeps a position outside the stream (the writer its high-water mark, each
projection its checkpoint in PostgreSQL, the alerter the ledger seqs named in ALERTS). A
head below such a position means acknowledged events are gone (a truncated or re-created
stream); running on would overwrite the evidence and build on a shortened history, so each
service refuses to start, naming the missing seqs.
"""

from __future__ import annotations

import contextlib
import json

import structlog
from nats.js import JetStreamContext

from events.subjects import ALERTS_STREAM
from services.ledger.io import ledger_head

log = structlog.get_logger("ledger")


class LedgerWentBackwards(RuntimeError):
    """The ledger is shorter than what a service already saw: never run on it."""


def refuse_if_behind(head: int, seq: int, who: str, source: str) -> None:
    """Raise (and log loudly) when the ledger head is below a seq `who` already saw."""
    if head >= seq:
        return
    message = (
        f"{who} refuses to run: the ledger went backwards. Its head is seq {head} but "
        f"{source} reached seq {seq}, so seqs {head + 1}..{seq} are missing. Restore the "
        f"ledger and run `trial-ledger verify` before starting {who} again."
    )
    log.error("ledger_went_backwards", who=who, head=head, seen=seq, source=source)
    raise LedgerWentBackwards(message)


async def last_alerted_seq(js: JetStreamContext) -> int:
    """The ledger seq of the newest alert in ALERTS (alerts are raised in ledger order)."""
    last = await ledger_head(js, ALERTS_STREAM)
    if last == 0:
        return 0
    stored = await js.get_msg(ALERTS_STREAM, seq=last)
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        seq = json.loads(stored.data or b"").get("seq")
        if isinstance(seq, int):
            return seq
    return 0


async def refuse_alerts_ahead(js: JetStreamContext) -> None:
    """The alerter never runs on a ledger shorter than the AE events it already alerted on."""
    refuse_if_behind(
        await ledger_head(js), await last_alerted_seq(js), "the alerter", "the newest SAE alert"
    )
