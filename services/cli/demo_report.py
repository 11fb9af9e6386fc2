"""The demo's last section: the self-contained HTML report, written under the data dir."""

from __future__ import annotations

from typing import Any

import httpx
from rich.console import Console

from services.api.report import run_report


async def print_summary(
    http: httpx.AsyncClient, trial_id: str, console: Console, system: Any
) -> None:
    """Write <data dir>/report.html for `trial_id` and print its path."""
    out = system.data_dir / "report.html"
    code = await run_report(system.settings, trial=trial_id, as_of=None, out=out, console=console)
    if code == 0:
        console.print(f"[bold]Report:[/bold] {out.resolve()}")
