"""`trial-ledger replay`: rebuild aside, digest, compare with live, optionally switch."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from rich.console import Console
from rich.table import Table

from projections.common.calendar import parse_instant
from services.config.settings import Settings
from services.db.migrate import active_build, make_engine, switch_build
from services.ledger.connection import connect
from services.projector.app import all_projections
from services.projector.rebuild import Helpers, compare, default_workers, digests, rebuild


async def run_replay(
    settings: Settings,
    *,
    as_of: str | None,
    schema: str | None,
    as_json: bool,
    compare_live: bool,
    switch: bool,
    console: Console,
    workers: int | None = None,
) -> int:
    assert settings.nats_url and settings.database_url, "no running system found and no URLs set"
    instant = parse_instant(as_of) if as_of else None
    name = schema or "replay_" + dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")
    creds = settings.creds_for("auditor") or settings.creds_for("projector")
    nc = await connect(settings.nats_url, creds, name="replay")
    engine = make_engine(settings.database_url)
    workers = workers or default_workers()
    helpers = Helpers(workers, settings.nats_url, settings.database_url, creds)
    try:
        with console.status("rebuilding read models from the ledger…"):
            report = await rebuild(
                nc.jetstream(), engine, name, all_projections(), as_of=instant, helpers=helpers
            )
        live = await active_build(engine)
        out: dict[str, Any] = {
            "schema": name,
            "as_of": report.as_of,
            "events": report.events,
            "last_seq": report.last_seq,
            "seconds": round(report.seconds, 3),
            "events_per_s": round(report.events_per_s, 1),
            "workers": workers,
            "digests": report.digests,
        }
        differences: dict[str, list[dict[str, Any]]] = {}
        if compare_live:
            out["live_digests"] = await digests(engine, live)
            differences = await compare(engine, live, name)
            out["differences"] = differences
        if switch and instant is None:
            await switch_build(engine, name)
            out["switched_to"] = name
        if as_json:
            console.print_json(json.dumps(out, default=str))
        else:
            _print(console, out)
        return 1 if any(differences.values()) else 0
    finally:
        await engine.dispose()
        await nc.close()


def _print(console: Console, out: dict[str, Any]) -> None:
    title = f"Replay into {out['schema']}: {out['events']} events up to seq {out['last_seq']}"
    if out["as_of"]:
        title += f", as of {out['as_of']}"
    table = Table(title=title)
    for column in ("table", "rows", "digest", "live"):
        table.add_column(column)
    live = out.get("live_digests", {})
    for name, value in out["digests"].items():
        mark = ""
        if name in live:
            mark = "[green]same[/green]" if live[name] == value else "[red]differs[/red]"
        table.add_row(name, str(value["rows"]), value["digest"], mark)
    console.print(table)
    console.print(f"{out['events_per_s']} events/s")
    for name, rows in out.get("differences", {}).items():
        for row in rows[:20]:
            console.print(f"[red]{name}[/red] {row['side']}: {row['row']}")
    if "switched_to" in out:
        console.print(f"live read models now served from {out['switched_to']}")
