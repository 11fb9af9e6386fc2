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
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from events.subjects import LEDGER_STREAM
from services.client.site import SiteClient
from services.config.settings import Settings
from services.ledger.connection import connect
from services.projector.app import create_app as create_projector
from services.runtime.cluster import EmbeddedCluster, create_streams_when_ready
from services.runtime.embedded import EmbeddedNats, EmbeddedPostgres
from services.security.seals import ensure_writer_key, load_private_key, public_key_b64
from services.writer.app import create_app as create_writer
from tests.integration.faults import (
    ACKNOWLEDGED,
    Answers,
    RecordingClient,
    assert_nothing_lost_or_repeated,
    assert_verifies_clean,
    ingest,
    mid_ingest,
    rides_on,
    serve,
    simulated,
    stop,
    stream_leader,
    wait_all_replicas_current,
    wait_read_models,
)
from tests.integration.helpers import event, parameters, unique_trial
from tests.integration.test_projections import assert_live_equals_replay

pytestmark = [pytest.mark.integration, pytest.mark.fault]


@pytest.fixture
def writer_key(tmp_path: Path) -> tuple[str, str]:
    """(private key path, public key) for a writer that signs and seals."""
    path = ensure_writer_key(tmp_path)
    return str(path), public_key_b64(load_private_key(str(path)))


# -- (a) a NATS node dies mid-ingest ---------------------------------------------------------


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[EmbeddedCluster]:
    nodes = EmbeddedCluster(tmp_path / "cluster", size=3).start()
    yield nodes
    nodes.stop()


async def ingest_through_a_leader_kill(
    cluster: EmbeddedCluster, settings: Settings, answers: Answers, *, readers: Any = ()
) -> str:
    """The simulated trial while the LEDGER's leader node is SIGKILLed and brought back; the
    writer (in-process, sealing) is stopped at the end so the ledger stops moving."""
    admin = await connect(cluster.url, name="admin")
    js = admin.jetstream()
    assert (await js.stream_info(LEDGER_STREAM)).config.num_replicas == 3
    writer = await create_writer(settings, seal_every_seconds=2.0)
    await writer.start()
    trial = simulated(patients=50, seed=21)
    total = len(trial.all_events())
    ingesting = asyncio.create_task(ingest(cluster.url, answers, trial))
    try:
        await mid_ingest(answers, ingesting, int(total * 0.3))
        killed = await stream_leader(js)
        number = int(killed.rsplit("-", 1)[1])
        cluster.kill(number)
        # The ingest rides through the lost node: sites are answered while it is down.
        await rides_on(answers, ingesting, more=50)
        cluster.restart(number)
        await wait_all_replicas_current(js)
        trial_id = await asyncio.wait_for(ingesting, 180)
    finally:
        ingesting.cancel()
        # Before any reader is judged: the sealer would append one more seal after it caught up.
        await asyncio.wait_for(writer.stop(), 30)
    print(f"killed {killed}: {answers.summary()}")
    # Bounded: a reader stuck on a consumer the failover broke must fail here, not hang.
    stored = await asyncio.wait_for(assert_nothing_lost_or_repeated(js, trial_id, answers), 60)
    assert stored == len(answers.with_status(ACKNOWLEDGED)) > 500
    await admin.close()
    await asyncio.wait_for(assert_verifies_clean(cluster.url, settings.writer_public_key or ""), 60)
    return trial_id


async def r3_streams(cluster: EmbeddedCluster) -> None:
    """As admin, before any service: a service's own create_app would make them R1."""
    admin = await connect(cluster.url, name="admin")
    await create_streams_when_ready(admin.jetstream(), replicas=3)
    await admin.close()


def cluster_settings(
    cluster: EmbeddedCluster, database_url: str | None, writer_key: tuple[str, str]
) -> Settings:
    key_path, public_key = writer_key
    return Settings(
        nats_url=cluster.url,
        database_url=database_url,
        writer_key=key_path,
        writer_public_key=public_key,
    )


@pytest.mark.slow
async def test_sigkill_of_the_ledgers_leader_node_mid_ingest_loses_and_repeats_nothing(
    cluster: EmbeddedCluster, writer_key: tuple[str, str]
) -> None:
    await r3_streams(cluster)
    await ingest_through_a_leader_kill(
        cluster, cluster_settings(cluster, None, writer_key), Answers()
    )


@pytest.mark.slow
@pytest.mark.timeout(150)
async def test_after_a_leader_node_kill_the_read_models_equal_a_replay_and_each_sae_alerts_once(
    cluster: EmbeddedCluster, own_postgres: EmbeddedPostgres, writer_key: tuple[str, str]
) -> None:
    from services.alerter.app import create_app as create_alerter
    from tests.integration.test_safety import assert_one_alert_per_serious_ae

    settings = cluster_settings(cluster, own_postgres.url, writer_key)
    await r3_streams(cluster)
    projector = await create_projector(settings)
    await projector.start()
    alerter = await create_alerter(settings)
    await alerter.start()
    try:
        trial_id = await ingest_through_a_leader_kill(cluster, settings, Answers())
        probe = await connect(cluster.url, name="probe")
        await wait_read_models(projector, alerter, probe.jetstream(), timeout=60)
        await probe.close()
    finally:
        await asyncio.wait_for(alerter.stop(), 30)
        await asyncio.wait_for(projector.stop(), 30)
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
        # Per distinct event_id: a request retried after a lost answer hears "duplicate" for
        # what the first try recorded; every event is acknowledged, none rejected.
        assert len(answers.replies) == 1 + 10_000, "every event got a verdict"
        assert answers.with_status(ACKNOWLEDGED) == set(answers.replies), answers.summary()
        assert answers.with_status({"rejected"}) == set(), answers.summary()
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
