"""SAE alert latency: intake acceptance (the site's reply) → a safety officer's receipt.

The writer and the alerter are either the caller's service processes, as deployed (`make
bench`), or run here in this process (`python -m tests.bench.alerts`, a quick look on a
bare nats-server); the officer is a JetStream subscription on ALERTS. Samples are taken one
at a time, idle and under background ingest at `background_rate` events/s (follow-up
contacts and non-serious AEs over 1,000 patients, so the alerter works through its share of
the load too). Goal: p99 < 50 ms under load.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from nats.js import api as js_api
from nats.js.errors import NotFoundError

from events.subjects import ALERTS_STREAM, LEDGER_STREAM, alerts_wildcard
from services.alerter.app import DURABLE as SERVICE_DURABLE
from services.alerter.app import consumer_config as alerter_consumer
from services.alerter.app import create_app as create_alerter
from services.client.site import SiteClient
from services.config.settings import Settings
from services.ledger.connection import connect
from services.ledger.io import ensure_streams, ledger_head
from services.writer.app import create_app as create_writer
from tests.integration.helpers import event, parameters

SITES = ("site01", "site02", "site03", "site04")
BACKGROUND_PATIENTS = 1000
TICK_S = 0.05
# At most this many background ticks in flight: a writer that cannot keep up slows the load
# down (the achieved rate is reported) instead of queueing requests without bound.
MAX_TICKS_IN_FLIGHT = 4


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def summary(latencies: list[float]) -> dict[str, Any]:
    if not latencies:
        return {"p50": None, "p99": None, "max": None, "samples": 0}
    return {
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "max": max(latencies),
        "mean": sum(latencies) / len(latencies),
        "samples": len(latencies),
    }


def serious_ae(trial: str, site: str, patient: str) -> dict[str, Any]:
    return event(
        "ae_reported",
        trial,
        site_id=site,
        patient_id=patient,
        data={
            "term": "Hypertension",
            "grade": 3,
            "serious": True,
            "seriousness": ["hospitalisation"],
            "attribution": {"lenvatinib": "probable"},
            "expected": False,
            "site_aware_at": "2025-02-20T09:30:00Z",
        },
    )


def background_event(trial: str, n: int) -> dict[str, Any]:
    site = SITES[n % len(SITES)]
    patient = f"B{n % BACKGROUND_PATIENTS:04d}"
    if n % 10 == 0:
        return event(
            "ae_reported",
            trial,
            site_id=site,
            patient_id=patient,
            data={
                "term": "Fatigue",
                "grade": 1,
                "serious": False,
                "seriousness": [],
                "attribution": {},
                "action_taken": "none",
                "site_aware_at": None,
            },
        )
    return event("follow_up_contact", trial, site_id=site, patient_id=patient)


class Background:
    """Submits `rate` events/s in batches every TICK_S, a few ticks in flight at most."""

    def __init__(self, clients: dict[str, SiteClient], trial: str, rate: int) -> None:
        self.clients = clients
        self.trial = trial
        self.rate = rate
        self.accepted = 0
        self.submitted = 0
        self.count = 0
        self.stop = asyncio.Event()
        self.began = 0.0
        self.ended = 0.0
        self.slots = asyncio.Semaphore(MAX_TICKS_IN_FLIGHT)

    async def _tick(self, events: list[dict[str, Any]]) -> None:
        try:
            await self._submit(events)
        finally:
            self.slots.release()

    async def _submit(self, events: list[dict[str, Any]]) -> None:
        by_site: dict[str, list[dict[str, Any]]] = {}
        for item in events:
            by_site.setdefault(item["site_id"], []).append(item)
        replies = await asyncio.gather(
            *(self.clients[site].submit_batch(batch) for site, batch in by_site.items())
        )
        self.accepted += sum(r.get("status") == "accepted" for batch in replies for r in batch)

    async def run(self) -> None:
        per_tick = max(1, round(self.rate * TICK_S))
        pending: set[asyncio.Task[None]] = set()
        self.began = time.perf_counter()
        next_at = self.began
        while not self.stop.is_set():
            await self.slots.acquire()
            events = [background_event(self.trial, self.count + i) for i in range(per_tick)]
            self.count += per_tick
            self.submitted += per_tick
            task = asyncio.create_task(self._tick(events))
            pending.add(task)
            task.add_done_callback(pending.discard)
            # Behind schedule (slots were full): carry on at the rate, no catch-up burst.
            next_at = max(next_at + TICK_S, time.perf_counter() - TICK_S)
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        self.ended = time.perf_counter()

    @property
    def achieved_per_s(self) -> float:
        seconds = (self.ended or time.perf_counter()) - self.began
        return self.accepted / seconds if seconds > 0 else 0.0


async def _enroll(
    clients: dict[str, SiteClient], trial: str, patients: list[tuple[str, str]]
) -> None:
    by_site: dict[str, list[dict[str, Any]]] = {}
    for site, patient in patients:
        by_site.setdefault(site, []).append(
            event("enrolled", trial, site_id=site, patient_id=patient)
        )
    for site, events in by_site.items():
        for start in range(0, len(events), 200):
            replies = await clients[site].submit_batch(events[start : start + 200])
            bad = [r for r in replies if r.get("status") != "accepted"]
            if bad:
                raise RuntimeError(f"enrollment refused: {bad[0]}")


async def _measure(
    clients: dict[str, SiteClient],
    trial: str,
    patients: list[tuple[str, str]],
    arrivals: dict[str, asyncio.Future[float]],
) -> list[float]:
    latencies: list[float] = []
    loop = asyncio.get_running_loop()
    for site, patient in patients:
        sae = serious_ae(trial, site, patient)
        alert_id = f"sae-{sae['event_id']}"
        arrivals[alert_id] = loop.create_future()
        reply = await clients[site].submit(sae)
        accepted_at = time.perf_counter()
        # "duplicate": a retried request whose first attempt landed — accepted all the same.
        if reply.get("status") not in ("accepted", "duplicate"):
            raise RuntimeError(f"SAE refused: {reply}")
        received_at = await asyncio.wait_for(arrivals[alert_id], 10)
        # The alert can beat the reply to the site; that counts as zero, not negative.
        latencies.append(max(0.0, received_at - accepted_at) * 1000)
    return latencies


async def _caught_up(js: Any, durable: str, limit: float) -> None:
    """Wait until the alerter's durable consumer has nothing pending or unacked."""
    deadline = time.perf_counter() + limit
    while time.perf_counter() < deadline:
        with contextlib.suppress(NotFoundError):  # an alerter process still starting
            info = await js.consumer_info(LEDGER_STREAM, durable)
            if info.num_pending == 0 and info.num_ack_pending == 0:
                return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"the alerter ({durable}) did not catch up in {limit} s")


async def bench_alert_latency(
    nats_url: str, *, background_rate: int = 1000, samples: int = 200, in_process: bool = True
) -> dict[str, Any]:
    """Alert latency in ms (p50, p99) idle and under ~`background_rate` events/s of ingest.

    `in_process=False`: the caller runs the writer and the alerter (`trial-ledger serve`) as
    their own processes; this function only submits, and listens as the officer would.
    """
    # its own data dir: the writer's key and high-water mark belong to this throwaway ledger
    settings = Settings(nats_url=nats_url, data_dir=Path(tempfile.mkdtemp(prefix="bench-alerts-")))
    nc = await connect(nats_url, name="bench-alerts")
    js = nc.jetstream()
    await ensure_streams(js)
    trial = f"BENCH-ALERTS-{uuid.uuid4().hex[:8]}"
    writer = alerter = None
    durable = SERVICE_DURABLE
    if in_process:
        durable = f"bench_alerter_{uuid.uuid4().hex[:8]}"
        # Start the bench alerter at the ledger head: earlier benches' entries are not its work.
        await js.add_consumer(
            LEDGER_STREAM, alerter_consumer(durable, start=await ledger_head(js) + 1)
        )
        writer = await create_writer(settings)
        await writer.start()
        alerter = await create_alerter(settings, durable=durable)
        await alerter.start()
    arrivals: dict[str, asyncio.Future[float]] = {}

    async def received(msg: Any) -> None:
        at = time.perf_counter()
        alert_id = (msg.headers or {}).get("Nats-Msg-Id", "")
        future = arrivals.get(alert_id)
        if future is not None and not future.done():
            future.set_result(at)

    officer = await js.subscribe(
        alerts_wildcard(trial),
        cb=received,
        ordered_consumer=True,
        deliver_policy=js_api.DeliverPolicy.NEW,
    )
    clients = {site: SiteClient(nc, trial, site) for site in ("_sponsor", *SITES)}
    background: Background | None = None
    try:
        await clients["_sponsor"].submit(parameters(trial, sites=SITES))
        idle_patients = [(SITES[n % len(SITES)], f"I{n:04d}") for n in range(samples)]
        load_patients = [(SITES[n % len(SITES)], f"L{n:04d}") for n in range(samples)]
        background_patients = [
            (SITES[n % len(SITES)], f"B{n:04d}") for n in range(BACKGROUND_PATIENTS)
        ]
        await _enroll(clients, trial, idle_patients + load_patients + background_patients)
        await _caught_up(js, durable, 120)
        idle = await _measure(clients, trial, idle_patients, arrivals)
        background = Background(clients, trial, background_rate)
        loading = asyncio.create_task(background.run())
        await asyncio.sleep(2.0)  # let the writer and alerter settle into the load
        loaded = await _measure(clients, trial, load_patients, arrivals)
        background.stop.set()
        await loading
    finally:
        with contextlib.suppress(Exception):
            await officer.unsubscribe()
        if alerter is not None and writer is not None:
            await alerter.stop()
            await writer.stop()
            with contextlib.suppress(NotFoundError):
                await js.delete_consumer(LEDGER_STREAM, durable)
        await nc.close()
    return {
        "idle": summary(idle),
        "under_load": {
            **summary(loaded),
            "background_rate_target_per_s": background_rate,
            "background_rate_achieved_per_s": background.achieved_per_s if background else 0.0,
        },
        "settings": {
            "samples": samples,
            "background_patients": BACKGROUND_PATIENTS,
            "background_mix": "90 % follow_up_contact, 10 % non-serious ae_reported",
            "measured": "site reply received → ALERTS message received by a JetStream subscriber",
            "alerts_stream": ALERTS_STREAM,
            "writer_and_alerter": "in this process" if in_process else "own processes",
        },
    }


if __name__ == "__main__":
    import json
    import tempfile
    from pathlib import Path

    from services.config.logs import configure_logging
    from services.runtime.embedded import EmbeddedNats

    async def _main() -> None:
        configure_logging("WARNING")
        with tempfile.TemporaryDirectory() as tmp:
            server = EmbeddedNats(Path(tmp) / "nats").start()
            try:
                print(json.dumps(await bench_alert_latency(server.url), indent=2))
            finally:
                server.stop()

    asyncio.run(_main())
