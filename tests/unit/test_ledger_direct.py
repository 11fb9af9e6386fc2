"""Reading a stream through batched direct gets, no consumer (issue 14, item 13): batches
follow on in seq order up to the head the read started at, what the server adds to the
headers is dropped, a lagging replica's "that is all" is checked with the leader, a stream
without direct gets is read through the leader, and a read whose reply never comes either
ends (verify) or raises."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from fnmatch import fnmatch
from types import SimpleNamespace
from typing import Any

import pytest
from nats.js.errors import NotFoundError

from services.ledger.direct import Stalled, read_direct
from services.ledger.io import read_stream
from services.security import verify

pytestmark = pytest.mark.unit


def _matches(subject: str, pattern: str) -> bool:
    """NATS wildcards for the fake, enough for `a.*.c` and `a.>`."""
    if pattern in ("", ">"):
        return True
    glob = pattern.replace(">", "*").replace(".*.", ".[!.]*.") if ">" in pattern else pattern
    return fnmatch(subject, glob) and subject.count(".") >= pattern.count(".")


@dataclass
class FakeSub:
    cb: Any

    def put_nowait(self, msg: Any) -> None:
        asyncio.get_running_loop().create_task(self.cb(msg))

    async def unsubscribe(self) -> None:
        return None


@dataclass
class FakeServer:
    """A stream `seq → subject`; direct gets answered by a replica holding seqs up to
    `replica_head` (the leader holds all), or by nobody (`direct=False`, no responders)."""

    subjects: dict[int, str]
    replica_head: int | None = None
    direct: bool = True
    silent_from: int | None = None  # direct gets from here on get no reply at all
    requests: list[dict[str, Any]] = field(default_factory=list)
    leader_gets: int = 0
    subs: dict[str, FakeSub] = field(default_factory=dict)
    inboxes: int = 0

    # -- the connection -------------------------------------------------------------------
    def new_inbox(self) -> str:
        self.inboxes += 1
        return f"_INBOX_t.{self.inboxes}"

    async def subscribe(self, subject: str, cb: Any, **_: Any) -> FakeSub:
        self.subs[subject] = FakeSub(cb)
        return self.subs[subject]

    def _reply(self, data: bytes, headers: dict[str, str]) -> Any:
        return SimpleNamespace(data=data, headers=headers)

    async def publish(self, subject: str, payload: bytes, reply: str) -> None:
        sub = self.subs[reply]
        if not self.direct:
            sub.put_nowait(self._reply(b"", {"Status": "503"}))
            return
        request = json.loads(payload)
        self.requests.append(request)
        if self.silent_from is not None and request["seq"] >= self.silent_from:
            return
        head = self.replica_head or max(self.subjects)
        pattern = request.get("next_by_subj", ">")
        found = [
            s
            for s in sorted(self.subjects)
            if s >= request["seq"] and s <= head
            if _matches(self.subjects[s], pattern)
        ]
        sent = found[: request["batch"]]
        if not sent:
            sub.put_nowait(self._reply(b"", {"Status": "404"}))
            return
        for seq in sent:
            headers = {
                "Nats-Msg-Id": f"id{seq}",
                "Nats-Stream": "T",
                "Nats-Subject": self.subjects[seq],
                "Nats-Sequence": str(seq),
                "Nats-Time-Stamp": "2026-01-01T00:00:00Z",
                "Nats-Num-Pending": str(len(found) - found.index(seq) - 1),
                "Nats-Last-Sequence": "0",
            }
            sub.put_nowait(self._reply(f"m{seq}".encode(), headers))
        eob = {"Status": "204", "Nats-Num-Pending": str(len(found) - len(sent))}
        sub.put_nowait(self._reply(b"", eob))

    # -- the JetStream context ------------------------------------------------------------
    @property
    def _nc(self) -> FakeServer:
        return self

    async def stream_info(self, stream: str) -> Any:
        return SimpleNamespace(state=SimpleNamespace(last_seq=max(self.subjects)))

    async def get_msg(self, stream: str, *, seq: int, subject: str, next: bool) -> Any:
        self.leader_gets += 1
        for s in sorted(self.subjects):
            if s >= seq and _matches(self.subjects[s], subject):
                return SimpleNamespace(seq=s, subject=self.subjects[s], data=b"m", headers=None)
        raise NotFoundError


def _ledger(n: int) -> dict[int, str]:
    return {seq: f"ledger.T.s{seq % 2}.p{seq}.enrolled" for seq in range(1, n + 1)}


async def _seqs(js: Any, *args: Any, **kwargs: Any) -> list[int]:
    return [m.seq async for batch in read_direct(js, *args, **kwargs) for m in batch]


async def test_batches_follow_on_up_to_the_head_the_read_started_at() -> None:
    server = FakeServer(_ledger(25))
    assert await _seqs(server, "ledger.T.s1.>", stream="T", batch=4) == list(range(1, 26, 2))
    assert [r["seq"] for r in server.requests] == [1, 8, 16, 24]
    assert all(r["next_by_subj"] == "ledger.T.s1.>" for r in server.requests)
    assert await _seqs(server, stream="T", start_seq=5, stop_seq=9) == [5, 6, 7, 8, 9]


async def test_the_server_added_headers_are_dropped_the_publishers_are_kept() -> None:
    messages = [m async for m in read_stream(FakeServer(_ledger(2)), stream="T")]  # type: ignore[arg-type]
    assert [(m.seq, m.body, m.headers) for m in messages] == [
        (1, b"m1", {"Nats-Msg-Id": "id1"}),
        (2, b"m2", {"Nats-Msg-Id": "id2"}),
    ]


async def test_a_lagging_replicas_end_is_checked_with_the_leader() -> None:
    server = FakeServer(_ledger(10), replica_head=6)
    assert await _seqs(server, stream="T") == list(range(1, 11))
    assert server.leader_gets >= 4  # seqs 7..10 came from the leader, then its "no more"


async def test_a_stream_without_direct_gets_is_read_through_the_leader() -> None:
    server = FakeServer(_ledger(5), direct=False)
    assert await _seqs(server, stream="T") == [1, 2, 3, 4, 5]


async def test_a_read_whose_reply_never_comes_raises_and_verify_ends_there() -> None:
    server = FakeServer(_ledger(10), silent_from=5)
    with pytest.raises(Stalled):
        await _seqs(server, stream="T", batch=4, timeout=0.05)
    audited = [m.seq async for m in verify.read_ledger(server, 10, batch=4, idle=0.05)]  # type: ignore[arg-type]
    assert audited == [1, 2, 3, 4]
