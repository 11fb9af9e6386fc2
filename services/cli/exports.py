"""`trial-ledger export {adsl,adtte,adrs,adae}`: an ADaM dataset as CSV from the live read models.

Reads the active build directly (the same query as the API's `/export/{dataset}.csv`).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from rich.console import Console

from services.config.settings import Settings
from services.db.clinical_queries import DATASETS, NotFound, export_csv, trial_stamp
from services.db.migrate import active_build, make_engine


async def run_export(
    settings: Settings, dataset: str, *, trial: str, out: Path | None, console: Console
) -> int:
    """Write `dataset` of `trial` to `out` (standard output when None); the exit code."""
    name = dataset.lower()
    if name not in DATASETS:
        console.print(
            f"[red]unknown dataset {dataset!r}[/red]; choose one of {', '.join(DATASETS)}"
        )
        return 2
    if not settings.database_url:
        console.print(
            "[red]no database found[/red]: start `trial-ledger up` or set LEDGER_DATABASE_URL"
        )
        return 2
    engine = make_engine(settings.database_url, pool_size=1)
    try:
        build = await active_build(engine)
        async with engine.connect() as raw:
            conn = await raw.execution_options(schema_translate_map={None: build})
            await trial_stamp(conn, trial)  # an unknown trial is an error, not an empty file
            body = await export_csv(conn, trial, name)
    except NotFound as exc:
        console.print(f"[red]{exc}[/red]")
        return 1
    finally:
        await engine.dispose()
    if out is None:
        sys.stdout.write(body)
        sys.stdout.flush()
    else:
        await asyncio.to_thread(out.write_text, body, newline="")
        rows = max(body.count("\r\n") - 1, 0)
        console.print(f"wrote {rows} {name.upper()} rows of {trial} to {out}")
    return 0
