"""`trial-ledger report`: one self-contained HTML file with the pages' tables and plots.

The report reads the read models through the API's own routes, in process (no server needed,
only the database and the ledger), and renders the same templates as the pages with the
stylesheet inlined: no link, script or font leaves the file. It is stamped with the ledger seq
and head hash it reflects and the protocol parameter version in force.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import httpx
from fastapi import HTTPException
from rich.console import Console

from services.api import page_data
from services.api.asof import parse_as_of
from services.api.auth import new_token
from services.api.render import inline_css, render
from services.config.settings import Settings


def normalized_as_of(as_of: str | None) -> str | None:
    """The as-of instant in UTC ISO form, or None for the live read models."""
    if not as_of:
        return None
    return parse_as_of(as_of).isoformat().replace("+00:00", "Z")


async def gather(api: page_data.Api, trial: str) -> dict[str, Any]:
    """Everything the report shows, read through the API routes the pages use."""
    try:
        endpoints: dict[str, Any] | None = await page_data.endpoints(api, trial)
    except page_data.PageNotFound:
        endpoints = None
    return {
        "stamp": await page_data.stamp(api, trial),
        **await page_data.overview(api, trial),
        "endpoints": endpoints,
        **await page_data.safety(api, trial),
    }


def render_report(
    trial: str, as_of: str | None, data: dict[str, Any], generated_at: dt.datetime
) -> str:
    return render(
        "report.html",
        trial=trial,
        as_of=as_of,
        report=True,
        live=False,
        css=inline_css(),
        href=lambda path, **_: path,
        path="",
        generated_at=generated_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
        **data,
    )


def _write(out: Path, html: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")


async def run_report(
    settings: Settings, *, trial: str, as_of: str | None, out: Path, console: Console
) -> int:
    """Write the report of `trial` (as of `as_of` if given) to `out`; exit code 0 on success."""
    from services.api.app import create_app

    try:
        instant = normalized_as_of(as_of)
    except HTTPException as exc:
        console.print(f"[red]{exc.detail}[/red]")
        return 2
    # the report reads in-process, as an admin known only to this call
    token = new_token()
    app = create_app(settings, tokens={"admin": token})
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://report",
            headers={"Authorization": f"Bearer {token}"},
            timeout=300,
        ) as client,
    ):
        try:
            data = await gather(page_data.Api(client, instant), trial)
        except page_data.PageNotFound as exc:
            console.print(f"[red]no report: {exc}[/red]")
            return 1
    html = render_report(trial, instant, data, dt.datetime.now(dt.UTC))
    await asyncio.to_thread(_write, out, html)
    stamp = data["stamp"]
    console.print(
        f"report written: {out} (ledger seq {stamp['ledger_seq']}, head hash "
        f"{stamp['ledger_hash'][:16]}…, parameters v{stamp['parameters_version']})"
    )
    return 0
