"""Projections partitioned by patient across projector instances: per-patient order kept,
an instance lost or added mid-ingest loses and repeats nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.config.settings import Settings
from services.db.migrate import make_engine, migrate
from services.ledger.connection import connect
from services.ledger.io import ledger_head
from services.projector.app import all_projections
from services.projector.runner import Partition
from tests.integration.faults import ledger_grows
from tests.integration.test_projections import assert_live_equals_replay, ingest, servers, writer  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.fault]
ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 4


def test_every_patient_belongs_to_exactly_one_partition() -> None:
    keys = [("T", f"site{s:02d}", f"P{p:04d}") for s in range(6) for p in range(200)]
    owners = [[i for i in range(PARTITIONS) if Partition(i, PARTITIONS).owns(key)] for key in keys]
    assert all(len(found) == 1 for found in owners)
    sizes = [sum(1 for found in owners if found == [i]) for i in range(PARTITIONS)]
    assert min(sizes) > 0.15 * len(keys)  # roughly even


def projector(settings: Settings, data_dir: Path, instance: int | None) -> subprocess.Popen[bytes]:
    """Instance `instance` of two partitioned projectors, or (None) one unpartitioned projector."""
    env = {
        **os.environ,
        "LEDGER_NATS_URL": settings.nats_url or "",
        "LEDGER_DATABASE_URL": settings.database_url or "",
        "LEDGER_DATA_DIR": str(data_dir),
    }
    log = open(data_dir / f"projector-{instance}.log", "ab")  # noqa: SIM115 - the child owns it
    partitioned = (
        []
        if instance is None
        else ["--partitions", str(PARTITIONS), "--instance", str(instance), "--instances", "2"]
    )
    return subprocess.Popen(
        [sys.executable, "-m", "services.cli", "serve", "projector", *partitioned],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )


async def claims_reach(data_dir: Path, claims: int, timeout: float = 120.0) -> None:
    """Wait until the projectors' logs show `claims` partition claims in all."""
    deadline = time.monotonic() + timeout
    while True:
        logs = "".join(p.read_text() for p in data_dir.glob("projector-*.log"))  # noqa: ASYNC240
        if logs.count("partition_claimed") >= claims:
            return
        assert time.monotonic() < deadline, f"{logs.count('partition_claimed')} of {claims} claims"
        await asyncio.sleep(0.1)


async def every_checkpoint_moved(engine: AsyncEngine, timeout: float = 120.0) -> None:
    """Wait until every projection's live checkpoint is past seq 0."""
    names = {p.name for p in all_projections()}
    deadline = time.monotonic() + timeout
    while True:
        async with engine.connect() as conn:
            found = dict(
                (
                    await conn.execute(
                        text("SELECT projection, last_seq FROM live.projection_checkpoint")
                    )
                ).all()
            )
        if names <= set(found) and min(found[name] for name in names) > 0:
            return
        assert time.monotonic() < deadline, f"checkpoints did not move: {found}"
        await asyncio.sleep(0.1)


async def caught_up(settings: Settings, timeout: float) -> None:
    nc = await connect(settings.nats_url or "")
    engine = make_engine(settings.database_url or "")
    expected = {f"{p.name}#{i}/{PARTITIONS}" for p in all_projections() for i in range(PARTITIONS)}
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        found: dict[str, int] = {}
        while loop.time() < deadline:
            head = await ledger_head(nc.jetstream())
            async with engine.connect() as conn:
                found = dict(
                    (
                        await conn.execute(
                            text("SELECT projection, last_seq FROM live.projection_checkpoint")
                        )
                    ).all()
                )
            if set(found) >= expected and all(found[name] == head for name in expected):
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"not caught up: {found}")
    finally:
        await engine.dispose()
        await nc.close()


async def test_partitioned_projectors_survive_losing_and_gaining_an_instance(
    servers: Settings, writer, tmp_path: Path
) -> None:
    engine = make_engine(servers.database_url or "")
    await migrate(engine)
    await migrate(engine, "live")
    await engine.dispose()
    first, second = projector(servers, tmp_path, 0), projector(servers, tmp_path, 1)
    third = None
    try:
        ingesting = asyncio.create_task(ingest(servers, patients=150, seed=12))
        await claims_reach(tmp_path, PARTITIONS)  # both instances hold their share
        await ledger_grows(servers.nats_url or "", ingesting, more=300)
        second.send_signal(signal.SIGKILL)  # its partitions move to the first instance
        second.wait(10)
        await claims_reach(tmp_path, PARTITIONS + 1)  # the first took over a lost partition
        third = projector(servers, tmp_path, 1)  # a new instance joins and takes its share back
        accepted = await ingesting
        await caught_up(servers, 240)
    finally:
        for proc in (first, second, third):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(30)
    live = await assert_live_equals_replay(servers)
    assert live["event_index"]["rows"] == accepted
    logs = "".join(p.read_text() for p in tmp_path.glob("projector-*.log"))  # noqa: ASYNC240 - test teardown
    assert logs.count("partition_claimed") > PARTITIONS  # some partition changed hands


async def test_a_build_moves_from_one_projector_to_partitioned_instances_mid_ingest(
    servers: Settings,
    writer,
    tmp_path: Path,
) -> None:
    engine = make_engine(servers.database_url or "")
    await migrate(engine)
    await migrate(engine, "live")
    single = projector(servers, tmp_path, None)
    pair: list[subprocess.Popen[bytes]] = []
    try:
        ingesting = asyncio.create_task(ingest(servers, patients=120, seed=31))
        await every_checkpoint_moved(engine)  # the unpartitioned projector applied something
        single.terminate()  # a clean stop: its checkpoints stand where it left off
        single.wait(30)
        async with engine.connect() as conn:
            before = dict(
                (
                    await conn.execute(
                        text("SELECT projection, last_seq FROM live.projection_checkpoint")
                    )
                ).all()
            )
        assert min(before.values()) > 0  # the unpartitioned projector had applied something
        pair = [projector(servers, tmp_path, 0), projector(servers, tmp_path, 1)]
        accepted = await ingesting
        await caught_up(servers, 240)
    finally:
        for proc in (single, *pair):
            if proc.poll() is None:
                proc.terminate()
                proc.wait(30)
    async with engine.connect() as conn:
        parked = (await conn.execute(text("SELECT count(*) FROM live.parked_event"))).scalar_one()
    await engine.dispose()
    assert parked == 0  # nothing applied twice (a repeat would collide in the event index)
    live = await assert_live_equals_replay(servers)
    assert live["event_index"]["rows"] == accepted
