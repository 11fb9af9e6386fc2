"""Reading a stream without a consumer: JetStream's batched direct get (issue 14, item 13).

A reader that creates consumers needs the right to create them, and the server cannot tell an
ephemeral reader's create from a rewrite of somebody else's durable (the ephemeral form names
the consumer only inside the request body). So nothing here creates a consumer: each request
to `$JS.API.DIRECT.GET.<stream>` asks for the next `batch` messages matching the filter from a
seq, `{"seq": n, "batch": N, "next_by_subj": filter}`, and the server answers with the
messages themselves (headers `Nats-Sequence`, `Nats-Subject`, `Nats-Num-Pending`) and then an
end-of-batch status (`204 EOB`). The reading role needs only the DIRECT.GET and STREAM.MSG.GET
subjects of the stream, and may be denied every `$JS.API.CONSUMER.>` subject.

Direct gets may be answered by any replica of a clustered stream, and a replica may lag the
leader: a read that a replica says is complete is confirmed by one `STREAM.MSG.GET` (always
answered by the leader) before it ends. A stream without `allow_direct` (an ALERTS stream made
before it was turned on) is read through `STREAM.MSG.GET`, one message a request.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError


@dataclass(frozen=True, slots=True)
class StoredMessage:
    seq: int
    subject: str
    body: bytes
    headers: dict[str, str] | None

    def json(self) -> dict[str, Any]:
        value = json.loads(self.body.decode())
        if not isinstance(value, dict):
            raise ValueError(f"ledger seq {self.seq} is not a JSON object")
        return value


JS_API = "$JS.API"
DEFAULT_BATCH = 1024
MAX_BATCH_BYTES = 8 * 1024 * 1024
REPLY_TIMEOUT_S = 5.0
# Headers the server adds to a direct get reply; what is left is what the publisher sent.
SERVER_HEADERS = frozenset(
    {
        "Nats-Stream",
        "Nats-Subject",
        "Nats-Sequence",
        "Nats-Time-Stamp",
        "Nats-Num-Pending",
        "Nats-Last-Sequence",
        "Nats-UpTo-Sequence",
    }
)


class DirectGetUnavailable(Exception):
    """The stream does not answer direct gets (no `allow_direct`)."""


class Stalled(Exception):
    """A batch that neither delivered anything nor ended (a message the server cannot read)."""


def _publisher_headers(headers: dict[str, str] | None) -> dict[str, str] | None:
    kept = {k: v for k, v in (headers or {}).items() if k not in SERVER_HEADERS}
    return kept or None


def _batch_request(seq: int, batch: int, filter_subject: str) -> bytes:
    request: dict[str, Any] = {"seq": seq, "batch": batch, "max_bytes": MAX_BATCH_BYTES}
    if filter_subject not in ("", ">"):
        request["next_by_subj"] = filter_subject
    return json.dumps(request).encode()


async def _direct_batch(
    js: JetStreamContext, stream: str, seq: int, batch: int, filter_subject: str, timeout: float
) -> tuple[list[StoredMessage], int | None]:
    """One batched direct get: the messages and the matching count after them (None if the
    batch was cut short without its end-of-batch reply).

    The replies are taken by a callback, not by `next_msg`: nats-py's per-message timer there
    costs more than the read itself."""
    nc = js._nc
    got: list[StoredMessage] = []
    ended: list[int | None] = []
    problem: list[BaseException] = []
    done = asyncio.Event()

    async def take(msg: Any) -> None:
        headers = msg.headers or {}
        status = headers.get("Status")
        if not status:
            got.append(
                StoredMessage(
                    int(headers["Nats-Sequence"]),
                    headers["Nats-Subject"],
                    msg.data,
                    _publisher_headers(headers),
                )
            )
            return
        if status == "204":  # end of batch
            ended.append(int(headers.get("Nats-Num-Pending") or 0))
        elif status == "404":  # nothing at or after seq
            ended.append(0)
        elif status == "503":  # no responders: direct get is off for this stream
            problem.append(DirectGetUnavailable(stream))
        else:
            problem.append(RuntimeError(f"direct get on {stream}: {status} {headers}"))
        done.set()

    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox, cb=take, pending_msgs_limit=0, pending_bytes_limit=0)
    try:
        await nc.publish(
            f"{JS_API}.DIRECT.GET.{stream}",
            _batch_request(seq, batch, filter_subject),
            reply=inbox,
        )
        seen = -1
        while not done.is_set():
            try:
                await asyncio.wait_for(done.wait(), timeout)
            except TimeoutError:
                if len(got) == seen:  # nothing arrived for `timeout`
                    break
                seen = len(got)
    finally:
        await sub.unsubscribe()
    if problem:
        raise problem[0]
    if ended:
        return got, ended[0]
    if got:
        return got, None
    raise Stalled(f"{stream}: no reply for seq {seq}")


async def _leader_next(
    js: JetStreamContext, stream: str, seq: int, filter_subject: str
) -> StoredMessage | None:
    """The first message matching `filter_subject` at or after `seq`, as the leader has it."""
    try:
        if filter_subject in ("", ">"):
            raw = await js.get_msg(stream, seq=seq, subject=">", next=True)
        else:
            raw = await js.get_msg(stream, seq=seq, subject=filter_subject, next=True)
    except NotFoundError:
        return None
    assert raw.seq is not None and raw.subject is not None
    return StoredMessage(raw.seq, raw.subject, raw.data or b"", raw.headers or None)


async def head_seq(js: JetStreamContext, stream: str) -> int:
    return int((await js.stream_info(stream)).state.last_seq)


async def read_direct(
    js: JetStreamContext,
    filter_subject: str = ">",
    *,
    stream: str,
    start_seq: int = 1,
    stop_seq: int | None = None,
    batch: int = DEFAULT_BATCH,
    timeout: float = REPLY_TIMEOUT_S,
    stop_when_stalled: bool = False,
) -> AsyncIterator[list[StoredMessage]]:
    """Every message matching `filter_subject` from `start_seq` up to `stop_seq` (or up to the
    stream's last seq when the read started), in seq order and in batches; no consumer.

    `stop_when_stalled`: a batch that times out without delivering anything (a message the
    server can no longer read) ends the read instead of raising `Stalled`."""
    stop = stop_seq if stop_seq is not None else await head_seq(js, stream)
    seq = max(1, start_seq)
    direct = True

    def ask(at: int) -> asyncio.Task[tuple[list[StoredMessage], int | None]]:
        size = min(batch, stop - at + 1)
        return asyncio.create_task(_direct_batch(js, stream, at, size, filter_subject, timeout))

    # The next batch is asked for before this one is handed over: the server sends it while the
    # caller works (what a push consumer's flow control did).
    ahead: asyncio.Task[tuple[list[StoredMessage], int | None]] | None = None
    try:
        while seq <= stop:
            if direct:
                try:
                    got, pending = await (ahead or ask(seq))
                except DirectGetUnavailable:
                    direct = False
                    continue
                except Stalled:
                    if stop_when_stalled:
                        return
                    raise
                finally:
                    ahead = None
            else:
                one = await _leader_next(js, stream, seq, filter_subject)
                got, pending = ([one], None) if one is not None else ([], 0)
            within = [m for m in got if seq <= m.seq <= stop]
            if within:
                seq = within[-1].seq + 1
                if direct and pending and len(within) == len(got) and seq <= stop:
                    ahead = ask(seq)
                yield within
            if len(within) < len(got) or seq > stop:
                return
            if pending == 0:
                # The replica that answered has nothing more; the leader has the last word,
                # and what a lagging replica has not got yet is taken from the leader.
                confirmed = await _leader_next(js, stream, seq, filter_subject)
                if confirmed is None or confirmed.seq > stop:
                    return
                yield [confirmed]
                seq = confirmed.seq + 1
    finally:
        if ahead is not None:
            ahead.cancel()
