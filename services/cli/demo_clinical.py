"""The demo's clinical section: the endpoint table and the response rates, from the API."""

from __future__ import annotations

from typing import Any

import httpx
from rich.console import Console
from rich.table import Table


def _months(value: float | None) -> str:
    return "NE" if value is None else f"{value:.1f}"


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def endpoint_table(summary: dict[str, Any]) -> Table:
    """n, events, median [95 % CI] in months per PARAMCD (NE = not reached), and S(12 months)."""
    table = Table(
        title=f"Time-to-event endpoints (ledger seq {summary['at_seq']}, "
        f"parameters v{summary['parameters_version']}, CI {summary['conf_type']})"
    )
    table.add_column("endpoint")
    for column in ("n", "events", "median, months [95 % CI]", "12-month rate"):
        table.add_column(column, justify="right")
    for item in summary["endpoints"]:
        lower, upper = item["median_ci_months"]
        twelve = next((lm for lm in item["landmarks"] if lm["months"] == 12), None)
        table.add_row(
            item["paramcd"],
            str(item["n"]),
            str(item["events"]),
            f"{_months(item['median_months'])} [{_months(lower)}, {_months(upper)}]",
            "–"
            if twelve is None or twelve["survival"] is None
            else f"{100 * twelve['survival']:.1f} %",
        )
    return table


def rate_table(summary: dict[str, Any]) -> Table:
    """ORR and DCR per criterion, confirmed (primary) and unconfirmed, with exact 95 % CIs."""
    table = Table(title="Response rates (N = treated, measurable at baseline)")
    for column in ("measure", "criterion", "confirmed", "responders / N", "% [95 % CI]"):
        table.add_column(column)
    for item in [*summary["orr"], *summary["dcr"]]:
        lower, upper = item["ci"]
        table.add_row(
            item["measure"],
            item["criterion"],
            "yes" if item["confirmed"] else "no",
            f"{item['responders']} / {item['n']}",
            f"{_percent(item['rate'])} [{_percent(lower)}, {_percent(upper)}]",
        )
    return table


async def print_summary(
    http: httpx.AsyncClient, trial_id: str, console: Console, system: Any
) -> None:
    """Print the endpoint table and the ORR/DCR table of `trial_id`."""
    response = await http.get(f"/api/trials/{trial_id}/endpoints")
    if response.status_code == 404:
        console.print(f"no clinical endpoints for {trial_id} yet")
        return
    summary = response.raise_for_status().json()
    console.print(endpoint_table(summary))
    console.print(rate_table(summary))
