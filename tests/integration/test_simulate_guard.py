"""`trial-ledger simulate` never mixes simulated patients into a trial that holds real data;
re-running the same simulation is harmless (its events are duplicates)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest

from events.catalogue import WRITER_ONLY_TYPES
from events.subjects import trial_wildcard
from services.cli.errors import OK, REFUSED
from services.client.site import SiteClient
from services.ledger.connection import connect
from services.ledger.io import read_stream
from services.runtime.system import System
from tests.integration.helpers import event
from tests.integration.test_cli_fails_fast import clean_env, cli

pytestmark = pytest.mark.integration

TRIAL = "HAIC-PD1-LEN"  # the simulator's trial id
SIMULATE = ["simulate", "--sites", "1", "--patients", "2", "--seed", "3"]


@pytest.fixture(scope="module")
async def system(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[System]:
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("LEDGER_")}
    running = System(tmp_path_factory.mktemp("sim-guard"), sites=("site01",))
    try:
        await running.start()
        yield running
    finally:
        await running.stop()
        os.environ.update(saved)


async def trial_event_ids(system: System) -> set[str]:
    """The trial's recorded events (without the writer's seals, which follow in their time)."""
    settings = system.settings
    nc = await connect(settings.nats_url or "", settings.creds_for("admin"))
    try:
        recorded = [m.json() async for m in read_stream(nc.jetstream(), trial_wildcard(TRIAL))]
        return {e["event_id"] for e in recorded if e["type"] not in WRITER_ONLY_TYPES}
    finally:
        await nc.close()


async def simulate(system: System) -> tuple[int, str, str]:
    env = clean_env(system.data_dir)
    return await asyncio.to_thread(cli, [*SIMULATE, "--data-dir", str(system.data_dir)], env)


async def test_the_same_simulation_twice_is_accepted_then_only_duplicates(system: System) -> None:
    code, out, err = await simulate(system)
    assert code == OK, (out[-2000:], err[-2000:])
    first = await trial_event_ids(system)
    assert first
    code, out, err = await simulate(system)
    assert code == OK, (out[-2000:], err[-2000:])
    assert await trial_event_ids(system) == first


async def test_simulate_refuses_a_trial_that_holds_real_data(system: System) -> None:
    settings = system.settings
    site = await connect(settings.nats_url or "", settings.creds_for("site:site01"))
    try:
        real = event("enrolled", TRIAL, patient_id="P9001")
        reply = await SiteClient(site, TRIAL, "site01").submit(real)
        assert reply["status"] in ("accepted", "rejected"), reply
    finally:
        await site.close()
    before = await trial_event_ids(system)
    if real["event_id"] not in before:  # the writer's rules refused it: record a real event
        pytest.fail(f"the real event was not recorded: {reply}")
    code, out, err = await simulate(system)
    assert code == REFUSED, (code, out[-2000:], err[-2000:])
    assert "real data" in err and len(err.strip().splitlines()) == 1, err
    assert await trial_event_ids(system) == before  # nothing was written
