"""Read throughput of the ledger readers: batched direct gets (now) against the consumers they
replaced (issue 14, item 13). A script, not a test:

    .venv/bin/python -m tests.bench.direct_read [--events 50000] [--rounds 3] [--old-rev REV]

Starts its own nats-server on loopback (JetStream in a temp dir, no auth), appends `--events`
ledger-shaped messages (~600-byte JSON bodies, a `Nats-Msg-Id` header, 200 patients), then
reads the whole stream `--rounds` times with each reader and prints the median msgs/s. The old
readers are the `services/ledger_io.py` of `--old-rev` (git show), imported as a module.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import nats

from events.subjects import ledger_subject
from services.ledger.io import ledger_config, read_ordered, read_stream
from services.runtime.embedded import nats_server_binary

PORT = 14872


def old_module(rev: str) -> ModuleType:
    source = subprocess.run(
        ["git", "show", f"{rev}:services/ledger_io.py"], check=True, capture_output=True, text=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "ledger_io_old.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("ledger_io_old", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


async def fill(js: Any, events: int) -> None:
    body = json.dumps({"event_type": "infusion_given", "data": {"note": "x" * 480}}).encode()
    pending = []
    for n in range(events):
        subject = ledger_subject("T-BENCH", "site01", f"P{n % 200:04d}", "infusion_given")
        headers = {"Nats-Msg-Id": str(uuid.uuid4())}
        pending.append(js.publish(subject, body, headers=headers))
        if len(pending) == 500:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)


async def count_flat(gen: AsyncIterator[Any]) -> int:
    return sum([1 async for _ in gen])


async def count_batched(gen: AsyncIterator[list[Any]]) -> int:
    return sum([len(batch) async for batch in gen])


async def measure(name: str, read: Callable[[], Any], events: int, rounds: int) -> None:
    rates = []
    for _ in range(rounds):
        started = time.perf_counter()
        got = await read()
        elapsed = time.perf_counter() - started
        assert got == events, f"{name}: read {got} of {events}"
        rates.append(events / elapsed)
    print(f"{name:48s} median {statistics.median(rates):9.0f} msgs/s  ({rounds} rounds)")


async def read_all(events: int, rounds: int, rev: str) -> None:
    old = old_module(rev)
    nc = None
    for _ in range(100):
        try:
            nc = await nats.connect(f"nats://127.0.0.1:{PORT}", connect_timeout=1)
            break
        except Exception:
            await asyncio.sleep(0.1)
    assert nc is not None, "nats-server did not start"
    js = nc.jetstream()
    await js.add_stream(ledger_config())
    await fill(js, events)
    print(f"nats-server {nc.connected_server_version}, {events} events on LEDGER")
    await measure(
        "read_stream  (direct get, batch 1024)", lambda: count_flat(read_stream(js)), events, rounds
    )
    await measure(
        "read_stream  (direct get, batch 4096)",
        lambda: count_flat(read_stream(js, batch=4096)),
        events,
        rounds,
    )
    await measure(
        "read_ordered (direct get, batch 1024)",
        lambda: count_batched(read_ordered(js)),
        events,
        rounds,
    )
    await measure(
        f"read_stream  (ephemeral pull consumer, {rev})",
        lambda: count_flat(old.read_stream(js)),
        events,
        rounds,
    )
    await measure(
        f"read_ordered (ordered push consumer, {rev})",
        lambda: count_batched(old.read_ordered(js)),
        events,
        rounds,
    )
    await nc.close()


def main(events: int, rounds: int, rev: str) -> None:
    with tempfile.TemporaryDirectory() as store:
        server = subprocess.Popen(
            [nats_server_binary(), "-js", "-a", "127.0.0.1", "-p", str(PORT), "-sd", store],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            asyncio.run(read_all(events, rounds, rev))
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--old-rev", default="4e481d8")
    args = parser.parse_args()
    main(args.events, args.rounds, args.old_rev)
    sys.exit(0)
