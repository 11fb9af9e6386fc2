"""Faults on loopback, each bounded in time and count: a NATS node SIGKILLed mid-ingest in a
3-node R3 cluster, the writer SIGKILLed again and again, a burst far above the sustained rate.

After each: every event a site was told "accepted"/"duplicate" is in the ledger exactly once,
no event_id twice, nothing a site was told "rejected" is there, every patient's chain is intact
and `verify` is clean, and (where a projector runs) the read models equal a clean replay and
every serious AE raised exactly one alert.

Already covered elsewhere, not repeated here: SIGKILL of the projector and a PostgreSQL
restart (test_projections.py), of the alerter (test_safety.py), of a partitioned projector
(test_partitions.py), two writers × twenty clients (test_ledger_core.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
from nats.js import JetStreamContext

from events.subjects import LEDGER_STREAM
from services.client import SiteClient
from services.cluster import EmbeddedCluster, create_streams_when_ready
from services.nats_conn import connect
from services.projector.app import create_app as create_projector
from services.runtime import EmbeddedNats, EmbeddedPostgres
from services.security.seals import ensure_writer_key, load_private_key, public_key_b64
from services.security.verify import verify_ledger
from services.settings import Settings
from services.simulator import SimulatedTrial, generate_trial, submit_trial
from services.writer.app import create_app as create_writer
from tests.integration.helpers import chains_intact, event, ledger_of, parameters, unique_trial
from tests.integration.test_projections import assert_live_equals_replay

pytestmark = [pytest.mark.integration, pytest.mark.fault]

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
    return generate_trial(seed=seed, sites=sites, patients=patients, today=dt.date.today())


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


async def mid_ingest(answers: Answers, ingesting: asyncio.Task[str], at: int) -> None:
    """Wait until `at` events are answered; the fault then strikes while the rest are in flight."""
    while len(answers.replies) < at:
        assert not ingesting.done(), "the ingest ended before the fault"
        await asyncio.sleep(0.05)
    assert not ingesting.done(), "the fault should strike mid-ingest"


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
    assert answers.with_status({"rejected"}) & submitted.keys() == set()
    told = {
        (eid, r["seq"])
        for eid, got in answers.replies.items()
        for r in got
        if r["status"] in ACKNOWLEDGED
    }
    assert {(eid, seq) for eid, seq in told if submitted[eid] != seq} == set(), (
        "a verdict names the wrong seq"
    )
    assert chains_intact(entries) == []
    return len(submitted)


async def assert_verifies_clean(nats_url: str, public_key: str) -> None:
    nc = await connect(nats_url, name="verify")
    try:
        report = await verify_ledger(nc.jetstream(), (public_key,))
    finally:
        await nc.close()
    assert report.problems == []
    assert report.seals > 0 and report.signed_events == report.events


@pytest.fixture
def writer_key(tmp_path: Path) -> tuple[str, str]:
    """(private key path, public key) for a writer that signs and seals."""
    path = ensure_writer_key(tmp_path)
    return str(path), public_key_b64(load_private_key(str(path)))


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


# -- (a) a NATS node dies mid-ingest ---------------------------------------------------------


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[EmbeddedCluster]:
    nodes = EmbeddedCluster(tmp_path / "cluster", size=3).start()
    yield nodes
    nodes.stop()


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


@pytest.mark.slow
async def test_sigkill_of_the_ledgers_leader_node_mid_ingest_loses_and_repeats_nothing(
    cluster: EmbeddedCluster, own_postgres: EmbeddedPostgres, writer_key: tuple[str, str]
) -> None:
    from services.alerter.app import create_app as create_alerter
    from tests.integration.test_safety import assert_one_alert_per_serious_ae

    key_path, public_key = writer_key
    settings = Settings(
        nats_url=cluster.url,
        database_url=own_postgres.url,
        writer_key=key_path,
        writer_public_key=public_key,
    )
    admin = await connect(cluster.url, name="admin")
    js = admin.jetstream()
    await create_streams_when_ready(js, replicas=3)
    assert (await js.stream_info(LEDGER_STREAM)).config.num_replicas == 3
    writer = await create_writer(settings, seal_every_seconds=2.0)
    await writer.start()
    writing = True
    projector = await create_projector(settings)
    await projector.start()
    alerter = await create_alerter(settings)
    await alerter.start()
    answers = Answers()
    trial = simulated(patients=50, seed=21)
    total = len(trial.all_events())
    ingesting = asyncio.create_task(ingest(cluster.url, answers, trial))
    killed: list[str] = []
    try:
        for share in (0.15, 0.6):
            await mid_ingest(answers, ingesting, int(total * share))
            leader = await stream_leader(js)
            number = int(leader.rsplit("-", 1)[1])
            cluster.kill(number)
            killed.append(leader)
            await asyncio.sleep(3.0)
            cluster.restart(number)
            await wait_all_replicas_current(js)
        trial_id = await asyncio.wait_for(ingesting, 180)
        # The writer first: its sealer would append one more seal after the readers caught up.
        await writer.stop()
        writing = False
        await projector.wait_caught_up(120)
        await alerter.wait_caught_up(60)
    finally:
        ingesting.cancel()
        await alerter.stop()
        await projector.stop()
        if writing:
            await writer.stop()
    print(f"leader kills {killed}: {answers.summary()}")
    assert len(killed) == 2
    stored = await assert_nothing_lost_or_repeated(js, trial_id, answers)
    assert stored == len(answers.with_status(ACKNOWLEDGED)) > 500
    await admin.close()
    await assert_verifies_clean(cluster.url, public_key)
    await assert_live_equals_replay(settings)
    await assert_one_alert_per_serious_ae(settings, trial_id)


# -- (b) the writer dies again and again -----------------------------------------------------


@pytest.mark.slow
async def test_five_sigkills_of_the_writer_during_ingest_lose_and_repeat_nothing(
    own_nats: EmbeddedNats,
    own_postgres: EmbeddedPostgres,
    writer_key: tuple[str, str],
    tmp_path: Path,
) -> None:
    key_path, public_key = writer_key
    settings = Settings(nats_url=own_nats.url, database_url=own_postgres.url)
    nc = await connect(own_nats.url, name="admin")
    await create_streams_when_ready(nc.jetstream(), replicas=1)
    process = serve("writer", settings, tmp_path / "writer", key_path)
    projector = await create_projector(settings)
    await projector.start()
    answers = Answers()
    trial = simulated(patients=50, seed=22)
    total = len(trial.all_events())
    # A short request timeout: a site notices a dead writer quickly and retries the same ids.
    ingesting = asyncio.create_task(ingest(own_nats.url, answers, trial, timeout=3.0))
    rng = random.Random(8)
    kills = 0
    try:
        for share in (0.1, 0.25, 0.4, 0.55, 0.7):
            await mid_ingest(answers, ingesting, int(total * rng.uniform(share, share + 0.05)))
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            kills += 1
            process = serve("writer", settings, tmp_path / "writer", key_path)
        trial_id = await asyncio.wait_for(ingesting, 180)
        # The writer first: its sealer would append one more seal after the projector caught up.
        stop(process)
        await projector.wait_caught_up(120)
    finally:
        ingesting.cancel()
        stop(process)
        await projector.stop()
    print(f"writer kills {kills}: {answers.summary()}")
    assert kills == 5
    stored = await assert_nothing_lost_or_repeated(nc.jetstream(), trial_id, answers)
    assert stored > 500
    await nc.close()
    await assert_verifies_clean(own_nats.url, public_key)
    await assert_live_equals_replay(settings)


# -- (c) a burst far above the sustained rate ------------------------------------------------

BURST_PATIENTS = 200
INFUSIONS_PER_PATIENT = 49  # 200 × (1 enrolment + 49 infusions) = 10,000 events
BURST_BATCH_PATIENTS = 2  # 100 events per request, 100 requests at once


def burst_events(trial: str) -> list[list[dict[str, Any]]]:
    """10,000 valid events in batches of whole patients (enrolment first, then infusions)."""
    batches: list[list[dict[str, Any]]] = []
    for first in range(0, BURST_PATIENTS, BURST_BATCH_PATIENTS):
        batch: list[dict[str, Any]] = []
        for number in range(first, first + BURST_BATCH_PATIENTS):
            patient = f"P{number:04d}"
            batch.append(event("enrolled", trial, patient_id=patient))
            batch.extend(
                event("infusion_given", trial, patient_id=patient, data={"cycle": 1 + n % 9})
                for n in range(INFUSIONS_PER_PATIENT)
            )
        batches.append(batch)
    return batches


async def test_a_burst_of_ten_thousand_events_at_once_is_absorbed_with_bounded_memory(
    own_nats: EmbeddedNats, writer_key: tuple[str, str], tmp_path: Path
) -> None:
    """The simulated sites keep at most 6 requests of ≤50 events in flight; here 100 requests
    of 100 events arrive together, more than 10× that. The writer's 64 workers and the clients'
    retries are the back-pressure: slower answers, never a crash or a lost event."""
    key_path, public_key = writer_key
    settings = Settings(nats_url=own_nats.url)
    nc = await connect(own_nats.url, name="admin")
    await create_streams_when_ready(nc.jetstream(), replicas=1)
    process = serve("writer", settings, tmp_path / "writer", key_path)
    trial = unique_trial("BURST")
    answers = Answers()
    sponsor = RecordingClient(SiteClient(nc, trial, "_sponsor", attempts=30), answers)
    assert (await sponsor.submit_batch([parameters(trial)]))[0]["status"] == "accepted"
    writer_memory = psutil.Process(process.pid)
    before = writer_memory.memory_info().rss
    peak = before
    batches = burst_events(trial)
    assert sum(map(len, batches)) == 10_000
    conns = [await connect(own_nats.url, name=f"burst-{n}") for n in range(10)]

    async def send(number: int, batch: list[dict[str, Any]]) -> None:
        client = SiteClient(conns[number % len(conns)], trial, "site01", timeout=60.0, attempts=5)
        answers.add(batch, await client.submit_batch(batch))

    async def watch_memory() -> None:
        nonlocal peak
        while True:
            peak = max(peak, writer_memory.memory_info().rss)
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch_memory())
    started = time.monotonic()
    try:
        await asyncio.wait_for(asyncio.gather(*(send(n, b) for n, b in enumerate(batches))), 240)
        elapsed = time.monotonic() - started
        assert process.poll() is None, "the writer crashed under the burst"
        statuses = Counter(got[-1]["status"] for got in answers.replies.values())
        assert len(answers.replies) == 1 + 10_000, "every event got a verdict"
        assert statuses == {"accepted": 1 + 10_000}, statuses
        # Still serving: a fresh patient after the burst is accepted at once.
        late = RecordingClient(SiteClient(conns[0], trial, "site02"), answers)
        after = await late.submit_batch(
            [event("enrolled", trial, site_id="site02", patient_id="P9999")]
        )
        assert after[0]["status"] == "accepted"
    finally:
        watcher.cancel()
        stop(process)
        for conn in conns:
            await conn.close()
    print(
        f"burst: 10,000 events in {elapsed:.1f}s, writer RSS {before >> 20} → peak {peak >> 20} MiB"
    )
    assert peak < before + 300 * 2**20, (
        f"writer memory grew from {before >> 20} to {peak >> 20} MiB"
    )
    stored = await assert_nothing_lost_or_repeated(nc.jetstream(), trial, answers)
    assert stored == 1 + 10_000 + 1
    await nc.close()
    await assert_verifies_clean(own_nats.url, public_key)
