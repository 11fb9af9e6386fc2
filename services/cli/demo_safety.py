"""The demo's safety section: AE table N (%) by worst grade, and the SAE alerts raised."""

from __future__ import annotations

from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from events.subjects import ALERTS_STREAM, alerts_wildcard


def _cell(count: dict[str, Any], *, ci: bool = False) -> str:
    if not count["n"]:
        return "0"
    text = f"{count['patients']} ({count['percent']:.1f} %)"
    if ci and count.get("ci"):
        low, high = count["ci"]
        text += f"  [{100 * low:.1f}–{100 * high:.1f}]"
    return text


def ae_table(incidence: dict[str, Any]) -> Table:
    overall = incidence["overall"]
    table = Table(
        title=f"Treatment-emergent AEs, CTCAE v5.0 — treated N = {incidence['n_treated']} "
        f"(ledger seq {incidence['at_seq']}, parameters v{incidence['parameters_version']})"
    )
    table.add_column("patients with")
    table.add_column("N (%)  [exact 95 % CI]", justify="right")
    table.add_row("any TEAE", _cell(overall["any_grade"], ci=True))
    for grade in "12345":
        table.add_row(f"  worst grade {grade}", _cell(overall["by_worst_grade"][grade]))
    table.add_row("grade ≥ 3", _cell(overall["grade_3_or_more"], ci=True))
    table.add_row("serious", _cell(incidence["serious"], ci=True))
    table.add_row("SUSAR", _cell(incidence["susar"], ci=True))
    for agent, label in (
        ("any", "any agent"),
        ("haic", "HAIC"),
        ("pd1", "PD-1"),
        ("lenvatinib", "lenvatinib"),
    ):
        table.add_row(f"related to {label}", _cell(incidence["related"][agent], ci=True))
    table.add_row(
        "leading to dose modification", _cell(incidence["leading_to_dose_modification"], ci=True)
    )
    table.add_row(
        "leading to discontinuation", _cell(incidence["leading_to_discontinuation"], ci=True)
    )
    table.add_row("deaths (any cause)", _cell(incidence["deaths"], ci=True))
    return table


def term_table(incidence: dict[str, Any], limit: int = 10) -> Table:
    table = Table(title=f"Most frequent TEAE terms by worst grade (top {limit})")
    for column in ("SOC", "term", "any", "1", "2", "3", "4", "5"):
        table.add_column(column, justify="left" if column in ("SOC", "term") else "right")
    terms = [(soc["soc"], term) for soc in incidence["by_soc"] for term in soc["terms"]]
    terms.sort(key=lambda item: (-item[1]["any_grade"]["patients"], item[1]["term"]))
    for soc, term in terms[:limit]:
        grades = [str(term["by_worst_grade"][g]["patients"]) for g in "12345"]
        table.add_row(soc, term["term"], _cell(term["any_grade"]), *grades)
    return table


def alerts_table(alerts: list[dict[str, Any]], in_stream: int | None) -> Table:
    table = Table(title="Serious-AE alerts")
    table.add_column("")
    table.add_column("alerts", justify="right")
    table.add_row("raised (SAE clocks in the read model)", str(len(alerts)))
    if in_stream is not None:
        table.add_row("published to ALERTS", str(in_stream))
    table.add_row(
        "  follow-ups (escalations)", str(sum(a.get("kind") == "follow_up" for a in alerts))
    )
    table.add_row("SUSARs (expedited report)", str(sum(a["susar"] for a in alerts)))
    table.add_row("  due in 7 days", str(sum(a["expedited_days"] == 7 for a in alerts)))
    table.add_row("  due in 15 days", str(sum(a["expedited_days"] == 15 for a in alerts)))
    table.add_row(
        "late entries (> 24 h after site awareness)",
        str(sum(bool(a["late_entry"]) for a in alerts)),
    )
    table.add_row(
        "clock unknown (data quality)", str(sum(bool(a.get("clock_unknown")) for a in alerts))
    )
    table.add_row(
        "causality / expectedness not yet assessed",
        str(sum(bool(a.get("not_yet_assessed")) for a in alerts)),
    )
    for status in ("open", "acknowledged", "overdue"):
        table.add_row(status, str(sum(a["status"] == status for a in alerts)))
    return table


async def _alerts_in_stream(system: Any, trial_id: str) -> int | None:
    alerter = getattr(system, "services", {}).get("alerter")
    if alerter is None:
        return None
    await alerter.wait_caught_up(60)
    info = await alerter.js.stream_info(ALERTS_STREAM, subjects_filter=alerts_wildcard(trial_id))
    return int(sum((info.state.subjects or {}).values()))


async def print_summary(
    http: httpx.AsyncClient, trial_id: str, console: Console, system: Any
) -> None:
    """AE table (N (%) by worst grade over the treated population) and the alerts raised."""
    in_stream = await _alerts_in_stream(system, trial_id)
    incidence = (
        (await http.get(f"/api/trials/{trial_id}/safety/incidence")).raise_for_status().json()
    )
    alerts = (await http.get(f"/api/trials/{trial_id}/safety/alerts")).raise_for_status().json()
    console.print(ae_table(incidence))
    console.print(term_table(incidence))
    console.print(alerts_table(alerts, in_stream))
