"""Building blocks of the fault tests: what each site was told, the ledger checked against it,
services as processes, and the cluster's view of its stream and consumers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nats.js import JetStreamContext

from events.subjects import LEDGER_STREAM
from services.client.site import SiteClient
from services.config.settings import Settings
from services.ledger.connection import connect
from services.ledger.io import ledger_head
from services.security.verify import verify_ledger
from services.simulator.trial import SimulatedTrial, generate_trial, submit_trial
from tests.integration.helpers import SIMULATED_TODAY, chains_intact, ledger_of

ROOT = Path(__file__).resolve().parents[2]
SEAL_TYPE = "ledger_sealed"
ACKNOWLEDGED = {"accepted", "duplicate"}


# -- what the sites were told ---------------------------------------------------------------


@dataclass
class Answers:
    """Every reply any site got, per event_id (a retried event may collect several)."""

    replies: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add(self, events: list[dict[str, Any]], replies: list[dict[str, Any]]) -> None:
        assert len(events) == len(replies), "one reply per submitted event"
        for submitted, reply in zip(events, replies, strict=True):
            self.replies.setdefault(submitted["event_id"], []).append(reply)

    def summary(self) -> str:
        """For the test log: verdicts, and how many events a site had to send again."""
        statuses = Counter(r["status"] for got in self.replies.values() for r in got)
        retried = sum(len(got) > 1 for got in self.replies.values())
        return f"{len(self.replies)} events, verdicts {dict(statuses)}, answered twice {retried}"

    def with_status(self, statuses: set[str]) -> set[str]:
        return {
            eid for eid, got in self.replies.items() if any(r["status"] in statuses for r in got)
        }


class RecordingClient:
    """A site client that writes down every verdict it hears."""

    def __init__(self, client: SiteClient, answers: Answers) -> None:
        self.client = client
        self.answers = answers

    async def submit_batch(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        replies = await self.client.submit_batch(events)
        self.answers.add(events, replies)
        return replies


def simulated(patients: int, seed: int, sites: int = 3) -> SimulatedTrial:
    """The same trial whatever the day the tests run (a fixed day in the past: the writer
    refuses events dated after its own today)."""
    return generate_trial(seed=seed, sites=sites, patients=patients, today=SIMULATED_TODAY)


async def ingest(
    nats_url: str,
    answers: Answers,
    trial: SimulatedTrial,
    *,
    timeout: float = 10.0,
    attempts: int = 30,
) -> str:
    """A simulated trial through the site clients; sites retry with the same event_id."""
    conns = {
        site: await connect(nats_url, name=f"site-{site}")
        for site in ["_sponsor", *trial.site_events]
    }
    try:
        await submit_trial(
            trial,
            lambda site: RecordingClient(
                SiteClient(conns[site], trial.trial_id, site, timeout=timeout, attempts=attempts),
                answers,
            ),
            batch_size=25,
        )
    finally:
        for nc in conns.values():
            await nc.close()
    return trial.trial_id


async def mid_ingest(
    answers: Answers, ingesting: asyncio.Task[str], at: int, timeout: float = 120.0
) -> None:
    """Wait until `at` events are answered; the fault then strikes while the rest are in flight."""
    deadline = time.monotonic() + timeout
    while len(answers.replies) < at:
        assert not ingesting.done(), "the ingest ended before the fault"
        assert time.monotonic() < deadline, f"{len(answers.replies)} of {at} answered in {timeout}s"
        await asyncio.sleep(0.05)
    assert not ingesting.done(), "the fault should strike mid-ingest"


async def rides_on(
    answers: Answers, ingesting: asyncio.Task[str], more: int, timeout: float = 120.0
) -> None:
    """Wait until `more` further events are answered (or the ingest is done): sites make
    progress through the fault, whatever the machine's speed."""
    deadline = time.monotonic() + timeout
    target = len(answers.replies) + more
    while len(answers.replies) < target and not ingesting.done():
        assert time.monotonic() < deadline, (
            f"no progress through the fault: {answers.summary()} after {timeout}s"
        )
        await asyncio.sleep(0.05)
    if ingesting.done():
        ingesting.result()  # an ingest that ended in an error says so here


async def assert_nothing_lost_or_repeated(
    js: JetStreamContext, trial_id: str, answers: Answers
) -> int:
    """The ledger against the verdicts; returns how many submitted events it holds."""
    entries = await ledger_of(js, trial_id)
    ids = Counter(stored["event_id"] for _, stored in entries)
    assert [eid for eid, count in ids.items() if count > 1] == [], "an event_id is stored twice"
    submitted = {
        eid: seq
        for seq, stored in entries
        if stored["type"] != SEAL_TYPE
        for eid in [stored["event_id"]]
    }
    acknowledged = answers.with_status(ACKNOWLEDGED)
    assert acknowledged - submitted.keys() == set(), "an acknowledged event is missing"
    assert submitted.keys() - acknowledged == set(), "an event is stored that no site was told of"
    rejected_but_stored = answers.with_status({"rejected"}) & submitted.keys()
    assert rejected_but_stored == set(), rejected_but_stored
    told = {
        (eid, r["seq"])
        for eid, got in answers.replies.items()
        for r in got
        if r["status"] in ACKNOWLEDGED
    }
    assert {(eid, seq) for eid, seq in told if submitted[eid] != seq} == set(), (
        "a verdict names the wrong seq"
    )
    broken = chains_intact(entries)
    assert broken == [], broken[:5]
    return len(submitted)


async def assert_verifies_clean(nats_url: str, public_key: str) -> None:
    nc = await connect(nats_url, name="verify")
    try:
        report = await verify_ledger(nc.jetstream(), (public_key,))
    finally:
        await nc.close()
    assert report.problems == [], [str(p) for p in report.problems[:5]]
    assert report.seals > 0 and report.signed_events == report.events, report


def serve(
    role: str, settings: Settings, data_dir: Path, writer_key: str
) -> subprocess.Popen[bytes]:
    """`trial-ledger serve <role>` as its own process, the way a deployment runs it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "LEDGER_NATS_URL": settings.nats_url or "",
        "LEDGER_DATA_DIR": str(data_dir),
        "LEDGER_WRITER_KEY": writer_key,
    }
    if settings.database_url:
        env["LEDGER_DATABASE_URL"] = settings.database_url
    log = open(data_dir / f"{role}.log", "ab")  # noqa: SIM115 - the child owns it
    return subprocess.Popen(
        [sys.executable, "-m", "services.cli", "serve", role],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- the cluster's view ---------------------------------------------------------------------


async def stream_leader(js: JetStreamContext) -> str:
    info = await js.stream_info(LEDGER_STREAM)
    assert info.cluster is not None
    return str(info.cluster.leader)


async def wait_all_replicas_current(js: JetStreamContext, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # Just after a leader change the stream answers nothing for a moment.
        with contextlib.suppress(Exception):
            info = await js.stream_info(LEDGER_STREAM)
            peers = (info.cluster.replicas or []) if info.cluster else []
            if len(peers) == 2 and all(p.current and not p.offline for p in peers):
                return
        await asyncio.sleep(0.25)
    raise AssertionError("the restarted node did not catch up with the stream")


async def consumer_states(js: JetStreamContext) -> dict[str, Any]:
    """Why a reader is behind: each durable's pending, unacked and redelivered counts."""
    states: dict[str, Any] = {}
    for info in await js.consumers_info(LEDGER_STREAM):
        leader = info.cluster.leader if info.cluster else None
        states[str(info.name)] = {
            "pending": info.num_pending,
            "ack_pending": info.num_ack_pending,
            "redelivered": info.num_redelivered,
            "delivered": info.delivered.stream_seq,
            "acked": info.ack_floor.stream_seq,
            "leader": leader,
        }
    return states


async def wait_read_models(
    projector: Any, alerter: Any, js: JetStreamContext, timeout: float
) -> None:
    """Wait for the projector and the alerter to reach the ledger head.

    A delivery lost while a consumer's leader moved comes back only after the consumer's
    ack_wait (120 s), and the JetStream API may time out for a moment during elections; both
    are waited out here, within `timeout`, rather than mistaken for a failure.
    """
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        try:
            await projector.wait_caught_up(max(1.0, left))
            await alerter.wait_caught_up(max(1.0, deadline - time.monotonic()))
            return
        except TimeoutError as exc:  # nats.errors.TimeoutError is one as well
            if time.monotonic() >= deadline:
                with contextlib.suppress(Exception):
                    exc.add_note(f"consumers: {await consumer_states(js)}")
                raise
            await asyncio.sleep(1.0)


async def ledger_grows(
    nats_url: str, ingesting: asyncio.Task[Any], more: int, timeout: float = 120.0
) -> None:
    """Wait until the ledger holds `more` further events than now (or the ingest is done):
    a fault strikes mid-ingest, and sites go on through it, whatever the machine's speed."""
    nc = await connect(nats_url, name="progress")
    try:
        js = nc.jetstream()
        target = await ledger_head(js) + more
        deadline = time.monotonic() + timeout
        while not ingesting.done() and await ledger_head(js) < target:
            assert time.monotonic() < deadline, f"the ledger did not grow by {more} in {timeout}s"
            await asyncio.sleep(0.05)
    finally:
        await nc.close()
    if ingesting.done():
        ingesting.result()  # an ingest that failed says so here
