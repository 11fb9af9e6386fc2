"""How long the API's event loop stalls while an as-of view is built (issue 15 item 7).

`python -m tests.bench.asof_stall --trials 12 --patients 20` (about 10,000 ledger events) starts its own
nats-server and PostgreSQL (loopback, in a temporary directory), records simulated trials
through a writer, then builds the view as of now twice while a probe measures the loop's
stalls (how late a 5 ms sleep wakes up):

- in the API's process, as the API did before (the rebuild awaited inside the request);
- through `services.api.asof.AsOfBuilds` (the build in a process of its own, polled).

It prints one JSON line: events, and per way the build's seconds and the loop's worst and
99th-percentile stall in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

TICK_S = 0.005


@contextlib.asynccontextmanager
async def probe() -> AsyncIterator[list[float]]:
    """The loop's stalls while the block runs: how late each 5 ms sleep woke, in seconds."""
    lags: list[float] = []
    stop = asyncio.Event()

    async def tick() -> None:
        while not stop.is_set():
            began = time.perf_counter()
            await asyncio.sleep(TICK_S)
            lags.append(time.perf_counter() - began - TICK_S)

    task = asyncio.create_task(tick())
    try:
        yield lags
    finally:
        stop.set()
        await task


def summary(lags: list[float], seconds: float) -> dict[str, Any]:
    ordered = sorted(lags) or [0.0]
    return {
        "build_s": round(seconds, 2),
        "max_stall_ms": round(1000 * ordered[-1], 1),
        "p99_stall_ms": round(1000 * ordered[int(0.99 * (len(ordered) - 1))], 1),
        "median_stall_ms": round(1000 * statistics.median(ordered), 2),
        "ticks": len(lags),
    }


async def measured(build: Callable[[], Awaitable[None]]) -> dict[str, Any]:
    async with probe() as lags:
        began = time.perf_counter()
        await build()
        seconds = time.perf_counter() - began
    return summary(lags, seconds)


async def ingest_trial(settings: Any, trial_id: str, patients: int, seed: int) -> None:
    from services.client.site import SiteClient
    from services.ledger.connection import connect
    from services.simulator.trial import generate_trial, submit_trial
    from tests.integration.helpers import SIMULATED_TODAY

    trial = generate_trial(
        seed=seed, sites=6, patients=patients, today=SIMULATED_TODAY, trial_id=trial_id
    )
    conns = {site: await connect(settings.nats_url) for site in ["_sponsor", *trial.site_events]}
    try:
        await submit_trial(
            trial, lambda site: SiteClient(conns[site], trial_id, site), batch_size=50
        )
    finally:
        for nc in conns.values():
            await nc.close()


async def main(trials: int, patients: int) -> dict[str, Any]:
    from services.api.asof import AsOfBuilds, AsOfPending
    from services.config.settings import Settings
    from services.db.migrate import make_engine
    from services.ledger.connection import connect
    from services.ledger.io import ledger_head
    from services.projector.app import all_projections
    from services.projector.app import create_app as create_projector
    from services.projector.rebuild import rebuild
    from services.runtime.embedded import EmbeddedNats, EmbeddedPostgres
    from services.writer.app import create_app as create_writer

    with tempfile.TemporaryDirectory() as tmp:
        # the writer's high-water mark and key in a data dir of this run, not ./.ledger
        os.environ["LEDGER_DATA_DIR"] = str(Path(tmp) / "data")
        nats = EmbeddedNats(Path(tmp) / "nats").start()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            postgres = EmbeddedPostgres(Path(tmp) / "pg").start()
        try:
            settings = Settings(nats_url=nats.url, database_url=postgres.url)
            writer = await create_writer(settings, seal_every_events=10**9)
            await writer.start()
            projector = await create_projector(settings)  # migrates the read models
            await projector.start()
            # several small trials (their own seeds, so their own event ids): the simulator's submissions of one large trial stalled here
            # on a loaded machine (see the report of issue 15 item 7)
            for number in range(trials):
                try:
                    await asyncio.wait_for(
                        ingest_trial(settings, f"BENCH-{number}", patients, seed=100 + number),
                        120,
                    )
                except TimeoutError:  # measured on what the ledger holds by then
                    print(f"ingest stalled in trial {number}", file=sys.stderr, flush=True)
                    break
            await projector.wait_caught_up(120)
            await projector.stop()
            await writer.stop()
            as_of = dt.datetime.now(dt.UTC)
            nc = await connect(nats.url)
            engine = make_engine(postgres.url)
            try:
                events = await ledger_head(nc.jetstream())

                async def in_process() -> None:  # what the request did before
                    await rebuild(
                        nc.jetstream(), engine, "asof_inline", all_projections(), as_of=as_of
                    )

                builds = AsOfBuilds(
                    {"LEDGER_NATS_URL": nats.url, "LEDGER_DATABASE_URL": postgres.url}
                )

                async def aside() -> None:  # what the request does now: ask, answer 202, poll
                    deadline = time.monotonic() + 600
                    while time.monotonic() < deadline:
                        try:
                            await builds.schema_for(as_of)
                            return
                        except AsOfPending as pending:
                            if pending.status_code != 202:
                                raise RuntimeError(pending.body) from None
                        await asyncio.sleep(0.1)
                    raise TimeoutError("the view was not built in 600 s")

                before = await measured(in_process)
                after = await measured(aside)
                await builds.close()
            finally:
                await engine.dispose()
                await nc.close()
            return {"events": events, "in_request": before, "in_own_process": after}
        finally:
            postgres.stop()
            nats.stop()


if __name__ == "__main__":
    from services.config.logs import configure_logging

    configure_logging("WARNING")
    import faulthandler
    import signal

    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 <pid>`: where it is, on stderr
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--patients", type=int, default=20, help="per trial")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.trials, args.patients))))
