"""`trial-ledger submit` as a site coordinator runs it: the same file run twice records
everything once, each line gets its verdict by number, a rejected line fails the run
(issue 14, item 7)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from services.client.site import SiteClient
from services.config.settings import Settings
from services.ledger.connection import connect
from services.writer.app import WriterApp, create_app
from tests.integration.helpers import event, parameters, submitted_of, unique_trial

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def writer(nats_url: str) -> AsyncIterator[WriterApp]:
    app = await create_app(Settings(nats_url=nats_url))
    await app.start()
    yield app
    await app.stop()


async def submit(
    nats_url: str, file: Path, trial: str, site: str, data_dir: Path
) -> tuple[int, str]:
    """The real CLI in its own process (the writer answers from this test's event loop)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["LEDGER_NATS_URL"] = nats_url
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli", "submit", str(file), "--trial", trial,
        "--site", site, "--data-dir", str(data_dir), "--batch", "3",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode()


def _without_id(raw: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in raw.items() if key != "event_id"}


async def test_running_the_same_file_twice_records_every_line_once(
    writer: WriterApp, nats_url: str, tmp_path: Path
) -> None:
    trial = unique_trial()
    conn = await connect(nats_url)
    assert (await SiteClient(conn, trial, "_sponsor").submit(parameters(trial)))["status"] == (
        "accepted"
    )
    lines = [
        json.dumps(_without_id(event("enrolled", trial))),
        json.dumps(_without_id(event("infusion_given", trial, data={"cycle": 1}))),
        "",
        json.dumps(_without_id(event("infusion_given", trial, data={"cycle": 2})), indent=None),
        json.dumps(event("follow_up_contact", trial)),  # a line with its own id keeps it
        json.dumps(_without_id(event("infusion_given", trial, data={"cycle": 3}))),
    ]
    file = tmp_path / "site01.jsonl"
    file.write_text("\n".join(lines) + "\n")
    first = await submit(nats_url, file, trial, "site01", tmp_path)
    second = await submit(nats_url, file, trial, "site01", tmp_path)
    entries = await submitted_of(conn.jetstream(), trial)
    await conn.close()
    assert first[0] == 0, first[1]
    assert second[0] == 0, second[1]
    for number in (1, 2, 4, 5, 6):
        assert re.search(rf"^line {number}: accepted as seq \d+", first[1], re.M), first[1]
        assert re.search(rf"^line {number}: duplicate", second[1], re.M), second[1]
    assert "5 lines: 5 accepted, 0 duplicate, 0 rejected" in first[1]
    assert "5 lines: 0 accepted, 5 duplicate, 0 rejected" in second[1]
    assert len(entries) == 1 + 5
    assert all(count == 1 for count in Counter(s["event_id"] for _, s in entries).values())


async def test_a_rejected_line_is_named_by_its_number_and_fails_the_run(
    writer: WriterApp, nats_url: str, tmp_path: Path
) -> None:
    trial = unique_trial()
    conn = await connect(nats_url)
    assert (await SiteClient(conn, trial, "_sponsor").submit(parameters(trial)))["status"] == (
        "accepted"
    )
    await conn.close()
    file = tmp_path / "site01.jsonl"
    file.write_text(
        "\n".join(
            [
                json.dumps(_without_id(event("enrolled", trial))),
                json.dumps(_without_id(event("infusion_given", trial, patient_id="P0404"))),
                "not json",
                "[1, 2]",
                json.dumps(_without_id(event("infusion_given", trial))),
            ]
        )
    )
    code, out = await submit(nats_url, file, trial, "site01", tmp_path)
    assert code == 1, out
    assert re.search(r"^line 1: accepted", out, re.M), out
    assert re.search(r"^line 2: rejected \([0-9a-f-]{36}\): \S+: ", out, re.M), out
    assert re.search(r"^line 3: rejected: not valid JSON", out, re.M), out
    assert re.search(r"^line 4: rejected: a line holds one event", out, re.M), out
    assert re.search(r"^line 5: accepted", out, re.M), out
    assert "5 lines: 2 accepted, 0 duplicate, 3 rejected" in out
