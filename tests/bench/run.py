"""`make bench`: every figure measured in one run, on embedded servers with the production
settings (JetStream file storage, `sync_interval: always`; PostgreSQL fsync on).

Writes bench/results/latest.json and bench/results/latest.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import heapq
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psutil

from events.subjects import intake_subject
from services.client.site import SiteClient
from services.config.logs import configure_logging
from services.config.service_gc import tune_gc_for_service
from services.config.settings import Settings
from services.db.migrate import make_engine
from services.db.tables import event_index
from services.ledger.connection import connect
from services.ledger.io import ensure_streams, ledger_config, ledger_head, read_ordered, read_stream
from services.projector.app import all_projections
from services.projector.patient_view import copy_rows, index_row
from services.projector.rebuild import Helpers, default_workers, rebuild
from services.projector.runner import Message, decode_message
from services.runtime.embedded import EmbeddedNats, EmbeddedPostgres
from tests.bench.alerts import bench_alert_latency
from tests.bench.cpu import CpuMeter, budget_us_per_event
from tests.bench.peer import run_peer
from tests.integration.helpers import event, parameters

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"


class ServiceProcess:
    """A service in its own process, as deployed (`trial-ledger serve <role>`)."""

    def __init__(self, role: str, settings: Settings, log_dir: Path, *args: str) -> None:
        env = {
            **os.environ,
            "LEDGER_NATS_URL": settings.nats_url or "",
            "LEDGER_DATABASE_URL": settings.database_url or "",
            "LEDGER_DATA_DIR": str(log_dir),
        }
        self.log = open(log_dir / f"{role}{'-'.join(('', *args[1::2]))}.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "serve", role, *args],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )

    def rss_mb(self) -> float:
        import psutil

        return psutil.Process(self.proc.pid).memory_info().rss / 2**20

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


# How the bench deploys the projectors: "per-projection" = one process per projection (each
# reads and decodes the whole ledger); "partitions" = two instances, each running every
# projection for half of the patients on one shared consumer (`--partitions 2`).
PROJECTOR_LAYOUT = os.environ.get("LEDGER_BENCH_PROJECTORS", "partitions")
PARTITIONS = 2


def expected_positions() -> list[str]:
    """The checkpoint rows the projectors of this layout keep."""
    names = sorted(p.name for p in all_projections())
    if PROJECTOR_LAYOUT == "per-projection":
        return names
    return [f"{name}#{i}/{PARTITIONS}" for name in names for i in range(PARTITIONS)]


def start_projectors(settings: Settings, log_dir: Path) -> dict[str, ServiceProcess]:
    if PROJECTOR_LAYOUT == "per-projection":
        return {
            name: ServiceProcess("projector", settings, log_dir, "--projection", name)
            for name in sorted(p.name for p in all_projections())
        }
    return {
        f"instance{i}": ServiceProcess(
            "projector",
            settings,
            log_dir,
            "--partitions",
            str(PARTITIONS),
            "--instances",
            str(PARTITIONS),
            "--instance",
            str(i),
        )
        for i in range(PARTITIONS)
    }


async def wait_for_writer(nc: Any, trial: str) -> None:
    for _ in range(400):
        try:
            await nc.request(intake_subject(trial, "site01"), b"{}", timeout=0.5)
            return
        except Exception:
            await asyncio.sleep(0.05)
    raise TimeoutError("the writer did not come up")


async def checkpoints(engine: Any) -> dict[str, int]:
    from sqlalchemy import text

    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT projection, last_seq FROM live.projection_checkpoint")
            )
            return {name: int(seq) for name, seq in rows}
    except Exception:
        return {}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def patient_events(trial: str, patient: str, infusions: int) -> list[dict[str, Any]]:
    events = [event("enrolled", trial, patient_id=patient)]
    events += [
        event(
            "infusion_given",
            trial,
            patient_id=patient,
            occurred_on="2025-02-05",
            data={"cycle": 1 + n % 8, "agent": "haic" if n % 2 else "pd1"},
        )
        for n in range(infusions)
    ]
    return events


async def bench_raw_publish(nc: Any, count: int, payload_size: int) -> dict[str, Any]:
    """JetStream async publish to a stream configured like LEDGER (same server, same fsync)."""
    js = nc.jetstream()
    config = ledger_config()
    config.name, config.subjects = "BENCHRAW", ["benchraw.>"]
    await js.add_stream(config)
    body = b"x" * payload_size
    began = time.perf_counter()
    window = 2000
    for start in range(0, count, window):
        futures = [
            await js.publish_async(
                f"benchraw.p{n % 500}", body, headers={"Nats-Msg-Id": str(uuid.uuid4())}
            )
            for n in range(start, min(count, start + window))
        ]
        await asyncio.gather(*futures)
    seconds = time.perf_counter() - began
    return {
        "raw_publish_per_s": count / seconds,
        "messages": count,
        "payload_bytes": payload_size,
        "in_flight_window": window,
    }


async def bench_intake(
    nc: Any, trial: str, *, patients: int, per_patient: int, batch: int, concurrency: int
) -> dict[str, Any]:
    """Accepted events/s through the intake: validation, per-patient concurrency, fsync'd append."""
    plans = [patient_events(trial, f"B{batch}-{p:05d}", per_patient) for p in range(patients)]
    client = SiteClient(nc, trial, "site01", timeout=60)
    # enrollments first (not timed): the timed part is the steady state of a running trial
    for start in range(0, patients, 100):
        await client.submit_batch([plan[0] for plan in plans[start : start + 100]])
    work = [e for n in range(per_patient) for plan in plans for e in [plan[1 + n]]]
    accepted = 0
    began = time.perf_counter()
    queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
    for start in range(0, len(work), batch):
        queue.put_nowait(work[start : start + batch])

    async def sender() -> None:
        nonlocal accepted
        while not queue.empty():
            chunk = queue.get_nowait()
            if batch == 1:
                results = [await client.submit(chunk[0])]
            else:
                results = await client.submit_batch(chunk)
            accepted += sum(r["status"] == "accepted" for r in results)

    await asyncio.gather(*(sender() for _ in range(concurrency)))
    seconds = time.perf_counter() - began
    return {
        "per_s": accepted / seconds,
        "accepted": accepted,
        "submitted": len(work),
        "batch": batch,
        "concurrent_requests": concurrency,
        "patients": patients,
    }


async def bench_raw_read(nc: Any, meter: CpuMeter, runs: int = 3) -> dict[str, Any]:
    """The whole LEDGER read in order, nothing done with it: through the batched direct-get
    reader a rebuild uses (services/ledger/direct.py, no consumer; issue 14 item 13), the
    fastest of `runs` reads so that a server still busy with earlier work does not lower the
    reference; and, for comparison, through `read_stream`, the same reader one message at a
    time, as the services use it for short reads."""
    js = nc.jetstream()
    spans = []
    for _ in range(runs):
        with meter.span() as span:
            async for batch in read_ordered(js):
                span.events += len(batch)
        spans.append(span)
    fastest = max(spans, key=lambda span: span.events / span.seconds)
    began = time.perf_counter()
    pulled = 0
    async for _ in read_stream(js, batch=4096):
        pulled += 1
    pull_seconds = time.perf_counter() - began
    return {
        "raw_read_per_s": fastest.events / fastest.seconds,
        "raw_read_runs_per_s": [span.events / span.seconds for span in spans],
        "messages": fastest.events,
        "pull_read_per_s": pulled / pull_seconds,
        "cpu": fastest.as_dict(),
    }


class IndexOnly:
    """A floor for the rebuild: the least any build of the read models must do with every
    event (decode it and write its event-index row), and nothing else."""

    name = "core"

    async def apply(self, conn: Any, batch: list[Any], histories: Any) -> None:
        await copy_rows(conn, event_index, [index_row(item) for item in batch])


@contextlib.contextmanager
def service_gc() -> Iterator[None]:
    """The garbage-collector thresholds `trial-ledger replay` and the services run with."""
    previous = gc.get_threshold()
    tune_gc_for_service()
    try:
        yield
    finally:
        gc.set_threshold(*previous)


async def bench_rebuild(nc: Any, settings: Settings, meter: CpuMeter) -> dict[str, Any]:
    """The full rebuild as `trial-ledger replay` runs it (one process per core, each for a
    share of the patients) and in one process, and two floors beneath it, each with the CPU
    every process spent on it (with the GC settings of `trial-ledger replay`)."""
    js = nc.jetstream()
    engine = make_engine(settings.database_url or "")
    workers = default_workers()
    helpers = Helpers(workers, settings.nats_url or "", settings.database_url or "")
    try:
        with service_gc():
            with meter.span() as decode_span:
                async for batch in read_ordered(js):
                    for msg in batch:
                        decode_message(Message(msg.seq, msg.subject, msg.body))
                        decode_span.events += 1
            index_only = await rebuild(
                js, engine, "bench_floor", [IndexOnly()], timed=meter.recorder("index")
            )
            single = await rebuild(
                js, engine, "bench_rebuild_one", all_projections(), timed=meter.recorder("one")
            )
            report = await rebuild(
                js,
                engine,
                "bench_rebuild",
                all_projections(),
                timed=meter.recorder("full"),
                helpers=helpers,
            )
    finally:
        await engine.dispose()
    if report.digests != single.digests:
        raise AssertionError("the rebuild with helpers differs from the one in one process")
    spans = meter.recorded
    spans["index"].events = index_only.events
    spans["one"].events = single.events
    spans["full"].events = report.events
    return {
        "rebuild_per_s": report.events_per_s,
        "events": report.events,
        "workers": workers,
        "rebuild_one_process_per_s": single.events_per_s,
        "projections": [p.name for p in all_projections()],
        "floor_read_decode_per_s": decode_span.events / decode_span.seconds,
        "floor_read_decode_index_per_s": index_only.events_per_s,
        "cpu": {
            "floor_read_decode": decode_span.as_dict(),
            "floor_read_decode_index": spans["index"].as_dict(),
            "full_rebuild_one_process": spans["one"].as_dict(),
            "full_rebuild": spans["full"].as_dict(),
        },
    }


async def bench_projection_lag(
    nc: Any, settings: Settings, trial: str, *, rate: int, seconds: int, log_dir: Path
) -> dict[str, Any]:
    """Sustained ingest at `rate` events/s; lag = accepted → every projection's checkpoint covers it."""
    engine = make_engine(settings.database_url or "")
    projectors = start_projectors(settings, log_dir)
    names = set(expected_positions())
    try:

        async def caught_up(limit: float) -> None:
            deadline = time.perf_counter() + limit
            while time.perf_counter() < deadline:
                found = {k: v for k, v in (await checkpoints(engine)).items() if k in names}
                if set(found) >= names and min(found.values()) >= await ledger_head(nc.jetstream()):
                    return
                await asyncio.sleep(0.1)
            raise TimeoutError("projections did not catch up")

        await caught_up(600)
        patients = 200
        plans = [
            patient_events(trial, f"L{p:04d}", rate * seconds // patients + 1)
            for p in range(patients)
        ]
        client = SiteClient(nc, trial, "site01", timeout=60)
        for start in range(0, patients, 100):
            await client.submit_batch([plan[0] for plan in plans[start : start + 100]])
        await caught_up(120)
        work = [e for n in range(1, len(plans[0])) for plan in plans for e in [plan[n]]][
            : rate * seconds
        ]
        accepted: list[tuple[int, float]] = []
        lags: list[float] = []
        done = asyncio.Event()

        async def watch() -> None:
            """Runs through the load: each accepted event's lag is the time from its
            acceptance until every projection's checkpoint covers its seq."""
            waiting: list[tuple[int, float]] = []  # a heap by seq
            taken = 0
            while not (done.is_set() and taken == len(accepted) and not waiting):
                for item in accepted[taken:]:
                    heapq.heappush(waiting, item)
                taken = len(accepted)
                found = {k: v for k, v in (await checkpoints(engine)).items() if k in names}
                checkpoint = min(found.values()) if set(found) >= names else 0
                now = time.perf_counter()
                while waiting and waiting[0][0] <= checkpoint:
                    lags.append(now - heapq.heappop(waiting)[1])
                await asyncio.sleep(0.01)

        watcher = asyncio.create_task(watch())
        tick = 0.05
        per_tick = max(1, int(rate * tick))
        began = time.perf_counter()
        sends = []

        async def send(chunk: list[dict[str, Any]]) -> None:
            for result in await client.submit_batch(chunk):
                if result["status"] == "accepted":
                    accepted.append((result["seq"], time.perf_counter()))

        for start in range(0, len(work), per_tick):
            target = began + (start // per_tick) * tick
            await asyncio.sleep(max(0.0, target - time.perf_counter()))
            sends.append(asyncio.create_task(send(work[start : start + per_tick])))
        await asyncio.gather(*sends)
        achieved = len(work) / (time.perf_counter() - began)
        done.set()
        await asyncio.wait_for(watcher, 300)
        return {
            "rate_target_per_s": rate,
            "rate_achieved_per_s": achieved,
            "events": len(work),
            "lag_ms": {
                "p50": 1000 * percentile(lags, 50),
                "p99": 1000 * percentile(lags, 99),
                "max": 1000 * max(lags),
            },
            "projector_processes": len(projectors),
            "projector_layout": PROJECTOR_LAYOUT,
            "projector_rss_mb": {name: p.rss_mb() for name, p in projectors.items()},
        }
    finally:
        for projector in projectors.values():
            projector.stop()
        await engine.dispose()


@contextlib.asynccontextmanager
async def bench_system(
    prefix: str, trials: tuple[str, ...]
) -> AsyncIterator[tuple[Path, Settings, Any, ServiceProcess]]:
    """Embedded NATS and PostgreSQL with production durability, the streams and read-model
    schema, a writer in its own process and `trials` set up; everything stopped afterwards."""
    configure_logging("WARNING")
    base = Path(tempfile.mkdtemp(prefix=prefix))
    nats = EmbeddedNats(base / "nats").start()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        postgres = EmbeddedPostgres(base / "pg").start()
    settings = Settings(nats_url=nats.url, database_url=postgres.url, data_dir=base)
    SERVER_PIDS.update({"nats-server": nats.proc.pid, "postgres": postgres.proc.pid})
    nc = await connect(nats.url)
    writer = None
    try:
        await ensure_streams(nc.jetstream())
        await migrate_all(settings)
        writer = ServiceProcess("writer", settings, base)
        WRITER_PROCESS[:] = [writer]
        await wait_for_writer(nc, trials[0])
        for trial in trials:
            await SiteClient(nc, trial, "_sponsor").submit(parameters(trial, sites=("site01",)))
        yield base, settings, nc, writer
    finally:
        if writer is not None:
            writer.stop()
        await nc.close()
        postgres.stop()
        nats.stop()


async def memory_only(memory_events: int) -> dict[str, Any]:
    """Just the memory run (writer + projectors), to repeat that part on its own."""
    async with bench_system("ledger-bench-memory-", ("BENCHMEM",)) as (base, settings, nc, _):
        memory = await bench_memory(nc, settings, total=memory_events, log_dir=base)
        return {"started_at": dt.datetime.now(dt.UTC).isoformat(), "memory": memory}


async def main(quick: bool, memory_events: int) -> dict[str, Any]:
    scale = 0.25 if quick else 1.0
    results: dict[str, Any] = {
        "started_at": dt.datetime.now(dt.UTC).isoformat(),
        "machine": platform.platform(),
        "settings": {
            "jetstream": "file storage, sync_interval: always (fsync per write)",
            "postgres": "fsync=on, synchronous_commit=on",
            "quick": quick,
        },
    }
    trial = "BENCH"
    async with bench_system("ledger-bench-", (trial, "BENCHMEM")) as (base, settings, nc, writer):
        # Alert latency first, on a fresh server and under its own 1,000 events/s, not in the
        # wake of the other runs (a million-event ingest leaves PostgreSQL and JetStream busy
        # writing back for minutes). The service writer and an alerter process, as deployed;
        # 1,000 samples each, so that p99 is not just the third-worst of a few hundred.
        alerter = ServiceProcess("alerter", settings, base)
        try:
            results["alert_latency"] = await bench_alert_latency(
                settings.nats_url or "",
                background_rate=1000,
                samples=int(1000 * scale),
                in_process=False,
            )
            results["alert_latency"]["alerter_rss_mb"] = alerter.rss_mb()
        finally:
            alerter.stop()
        raw = await bench_raw_publish(nc, int(20_000 * scale), 600)
        single = await bench_intake(
            nc, trial, patients=int(400 * scale), per_patient=5, batch=1, concurrency=32
        )
        batch = await bench_intake(
            nc, trial, patients=int(2000 * scale), per_patient=10, batch=100, concurrency=8
        )
        results["intake"] = {"single": single, "batch": batch, "raw": raw}
        results["intake_single_per_s"] = single["per_s"]
        results["intake_batch_per_s"] = batch["per_s"]
        results["raw_publish_per_s"] = raw["raw_publish_per_s"]
        results["intake_batch_vs_raw"] = batch["per_s"] / raw["raw_publish_per_s"]
        peer = await asyncio.to_thread(
            run_peer,
            settings.database_url or "",
            patients=batch["patients"],
            per_patient=10,
            workers=8,
        )
        results["peer"] = peer
        results["peer_per_s"] = peer["peer_per_s"]
        results["intake_batch_vs_peer"] = batch["per_s"] / peer["peer_per_s"]
        meter = CpuMeter(SERVER_PIDS)
        read = await bench_raw_read(nc, meter)
        rebuilt = await bench_rebuild(nc, settings, meter)
        results["raw_read_per_s"] = read["raw_read_per_s"]
        results["rebuild_per_s"] = rebuilt["rebuild_per_s"]
        results["rebuild_vs_raw_read"] = rebuilt["rebuild_per_s"] / read["raw_read_per_s"]
        results["rebuild"] = {
            **rebuilt,
            "raw_read_messages": read["messages"],
            "raw_read_runs_per_s": read["raw_read_runs_per_s"],
            "pull_read_per_s": read["pull_read_per_s"],
        }
        for floor in ("floor_read_decode", "floor_read_decode_index"):
            results["rebuild"][f"{floor}_vs_raw_read"] = (
                rebuilt[f"{floor}_per_s"] / read["raw_read_per_s"]
            )
        results["rebuild"]["cpu"]["raw_read"] = read["cpu"]
        results["rebuild"]["cores"] = psutil.cpu_count()
        # what each event may cost, in CPU across every process, if the rebuild is to run at
        # 60 % of the raw read on this machine's cores
        results["rebuild"]["cpu_budget_us_per_event_at_goal"] = budget_us_per_event(
            0.6 * read["raw_read_per_s"]
        )
        lag = await bench_projection_lag(
            nc, settings, trial, rate=1000, seconds=max(5, int(20 * scale)), log_dir=base
        )
        results["projection_lag"] = lag
        if memory_events:
            results["memory"] = await bench_memory(nc, settings, total=memory_events, log_dir=base)
        results["writer_rss_mb"] = writer.rss_mb()
        under = results["alert_latency"].get("under_load", {})
        results["alert_latency_ms"] = {"p50": under.get("p50"), "p99": under.get("p99")}
    return results


async def bench_memory(
    nc: Any, settings: Settings, trial: str = "BENCHMEM", *, total: int, log_dir: Path
) -> dict[str, Any]:
    """RSS of each service process after a tenth of `total` and after `total` events of sustained
    batch ingest, the projections keeping up (in the bench's PROJECTOR_LAYOUT).

    The workload is a trial's: cohorts of patients enroll, receive their ~40 events, and make
    way for the next cohort, so the ledger grows while the set of active patients does not.
    """
    first_mark = total // 10
    projectors = start_projectors(settings, log_dir)
    names = set(expected_positions())
    engine = make_engine(settings.database_url or "")
    client = SiteClient(nc, trial, "site01", timeout=120)
    cohort, per_patient = 500, 40
    samples: dict[str, dict[str, float]] = {}
    sent = 0

    async def sample(mark: int) -> None:
        while True:
            found = {k: v for k, v in (await checkpoints(engine)).items() if k in names}
            if set(found) >= names and min(found.values()) >= await ledger_head(nc.jetstream()):
                break
            await asyncio.sleep(0.5)
        samples[str(mark)] = {
            "writer": WRITER_PROCESS[0].rss_mb(),
            **{f"projector:{n}": p.rss_mb() for n, p in projectors.items()},
        }

    try:
        number = 0
        while sent < total:
            ids = [f"C{number:04d}-{p:03d}" for p in range(cohort)]
            number += 1
            for start in range(0, cohort, 100):
                await client.submit_batch(
                    [event("enrolled", trial, patient_id=pid) for pid in ids[start : start + 100]]
                )
            sent += cohort
            for round_no in range(per_patient - 1):
                batches = [
                    [
                        event(
                            "infusion_given",
                            trial,
                            patient_id=pid,
                            occurred_on="2025-02-05",
                            data={"cycle": 1 + round_no % 8},
                        )
                        for pid in ids[i : i + 100]
                    ]
                    for i in range(0, cohort, 100)
                ]
                await asyncio.gather(*(client.submit_batch(b) for b in batches))
                sent += cohort
                for mark in sorted({first_mark, total // 4, total // 2, total}):
                    if sent >= mark and str(mark) not in samples:
                        await sample(mark)
                        print(
                            json.dumps({"memory_mark": mark, "rss_mb": samples[str(mark)]}),
                            flush=True,
                        )
                if sent >= total:
                    break
    finally:
        for proc in projectors.values():
            proc.stop()
        await engine.dispose()
    first, last = samples[str(first_mark)], samples[str(total)]
    growth = {name: (last[name] - first[name]) / first[name] for name in first}
    return {
        "events": sent,
        "first_mark": first_mark,
        "workload": f"cohorts of {cohort} patients × {per_patient} events",
        "rss_mb": samples,
        "growth": growth,
        "max_growth": max(growth.values()),
    }


WRITER_PROCESS: list[ServiceProcess] = []
SERVER_PIDS: dict[str, int] = {}


async def migrate_all(settings: Settings) -> None:
    from services.db.migrate import migrate

    engine = make_engine(settings.database_url or "")
    await migrate(engine)
    await migrate(engine, "live")
    await engine.dispose()


def table(results: dict[str, Any]) -> str:
    rows = [
        ("intake, one event per request", f"{results['intake_single_per_s']:.0f} events/s", ""),
        (
            "intake, batches of 100",
            f"{results['intake_batch_per_s']:.0f} events/s",
            f"{100 * results['intake_batch_vs_raw']:.0f} % of raw publish (goal ≥ 50 %)",
        ),
        (
            "raw JetStream async publish",
            f"{results['raw_publish_per_s']:.0f} msgs/s",
            "same server, same fsync",
        ),
        (
            "same workload, `eventsourcing` on PostgreSQL",
            f"{results['peer_per_s']:.0f} events/s",
            f"ledger batch intake = {results['intake_batch_vs_peer']:.1f}× the peer (goal ≥ 5×)",
        ),
        (
            "raw direct-get read of LEDGER",
            f"{results['raw_read_per_s']:.0f} msgs/s",
            f"read_stream: {results['rebuild']['pull_read_per_s']:.0f} msgs/s",
        ),
        (
            f"full rebuild (all projections), `trial-ledger replay`: "
            f"{results['rebuild'].get('workers', 1)} processes",
            f"{results['rebuild_per_s']:.0f} events/s",
            f"{100 * results['rebuild_vs_raw_read']:.0f} % of raw read (goal ≥ 60 %)",
        ),
    ]
    rebuilt = results["rebuild"]
    if "rebuild_one_process_per_s" in rebuilt:
        rows.append(
            (
                "full rebuild in one process (`--workers 1`)",
                f"{rebuilt['rebuild_one_process_per_s']:.0f} events/s",
                f"{100 * rebuilt['rebuild_one_process_per_s'] / results['raw_read_per_s']:.0f} "
                "% of raw read",
            )
        )
    if "floor_read_decode_per_s" in rebuilt:
        rows += [
            (
                "floor: read + decode, no read model",
                f"{rebuilt['floor_read_decode_per_s']:.0f} events/s",
                f"{100 * rebuilt['floor_read_decode_vs_raw_read']:.0f} % of raw read",
            ),
            (
                "floor: read + decode + event index only",
                f"{rebuilt['floor_read_decode_index_per_s']:.0f} events/s",
                f"{100 * rebuilt['floor_read_decode_index_vs_raw_read']:.0f} % of raw read",
            ),
        ]
    rows += cpu_rows(rebuilt)
    lag = results["projection_lag"]
    rows.append(
        (
            f"projection lag at {lag['rate_achieved_per_s']:.0f} events/s",
            f"p50 {lag['lag_ms']['p50']:.0f} ms, p99 {lag['lag_ms']['p99']:.0f} ms",
            "goal p99 < 1000 ms",
        )
    )
    if "alert_latency" in results:
        alert = results["alert_latency"]
        for name in ("idle", "under_load"):
            if name in alert:
                rows.append(
                    (
                        f"SAE alert latency ({name.replace('_', ' ')})",
                        f"p50 {alert[name]['p50']:.1f} ms, p99 {alert[name]['p99']:.1f} ms",
                        "goal p99 < 50 ms under load",
                    )
                )
    if "memory" in results:
        memory = results["memory"]
        for name, growth in memory["growth"].items():
            marks = sorted(memory["rss_mb"], key=int)
            rows.append(
                (
                    f"RSS {name}, {int(marks[0]):,} → {int(marks[-1]):,} events",
                    f"{memory['rss_mb'][marks[0]][name]:.0f} → {memory['rss_mb'][marks[-1]][name]:.0f} MB",
                    f"{100 * growth:+.0f} % (goal within ±10 %)",
                )
            )
    lines = ["| measure | result | note |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines) + "\n"


def cpu_rows(rebuilt: dict[str, Any]) -> list[tuple[str, str, str]]:
    """CPU per event by process for the reads and builds, beside the budget at the goal."""
    if "cpu_budget_us_per_event_at_goal" not in rebuilt:
        return []
    names = {
        "raw_read": "raw ordered read",
        "floor_read_decode": "floor: read + decode",
        "floor_read_decode_index": "floor: + event index",
        "full_rebuild_one_process": "full rebuild, one process",
        "full_rebuild": f"full rebuild, {rebuilt.get('workers', 1)} processes",
    }
    budget = rebuilt["cpu_budget_us_per_event_at_goal"]
    rows = []
    for key, label in names.items():
        if key not in rebuilt["cpu"]:
            continue
        split = rebuilt["cpu"][key]["cpu_us_per_event"]
        rows.append(
            (
                f"CPU per event, {label}",
                f"{split['total']:.0f} µs",
                f"client {split['client']:.0f}, PostgreSQL {split['postgres']:.0f}, "
                f"nats-server {split['nats-server']:.0f} µs"
                + (f"; {split['total'] / budget:.1f}× the budget" if key != "raw_read" else ""),
            )
        )
    rows.append(
        (
            f"CPU budget per event at 60 % of raw read ({rebuilt['cores']} cores)",
            f"{budget:.0f} µs",
            "all processes together",
        )
    )
    return rows


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="a quarter of the work, for a smoke run"
    )
    parser.add_argument(
        "--memory-events",
        type=int,
        default=1_000_000,
        help="events of the memory run (RSS sampled at a tenth and at the end; 0 = skip)",
    )
    parser.add_argument(
        "--memory-only", action="store_true", help="only the memory run (merged into latest.json)"
    )
    args = parser.parse_args()
    if args.memory_only:
        memory = asyncio.run(memory_only(args.memory_events))
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / "latest.json"
        merged = json.loads(path.read_text()) if path.exists() else {}
        merged["memory"] = {
            **memory["memory"],
            "run_started_at": memory["started_at"],
            "separate_run": True,
        }
        path.write_text(json.dumps(merged, indent=2, default=str) + "\n")
        print(json.dumps(merged["memory"], indent=2))
        return
    results = asyncio.run(main(args.quick, args.memory_events))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    markdown = f"# trial-ledger bench ({results['started_at']})\n\n" + table(results)
    (RESULTS / "latest.md").write_text(markdown)
    print(markdown)


if __name__ == "__main__":
    cli()
