"""`trial-ledger demo` and `simulate`: a simulated multi-site trial through the real intake."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from nats.js import JetStreamContext
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from events.catalogue import WRITER_ONLY_TYPES
from events.subjects import trial_wildcard
from services.client.site import SiteClient
from services.config.settings import Settings, redacted_url
from services.ledger.connection import connect
from services.ledger.io import read_stream
from services.simulator.trial import SimulatedTrial, SubmissionReport, generate_trial, submit_trial

Section = Callable[[httpx.AsyncClient, str, Console], Awaitable[None]]


class TrialHoldsRealData(Exception):
    """`simulate` would mix simulated patients into a trial's real (non-simulated) data."""


async def events_not_simulated(js: JetStreamContext, trial: SimulatedTrial) -> int:
    """How many of the trial's ledger events this simulation does not produce itself: its
    own events (a re-run of the same simulation) are only duplicates; any other is data
    someone recorded (or another simulation's), which a simulation must not mix with."""
    ours = {event["event_id"] for event in trial.all_events()}
    foreign = 0
    async for stored in read_stream(js, trial_wildcard(trial.trial_id)):
        recorded = stored.json()
        if recorded.get("type") in WRITER_ONLY_TYPES:  # the writer's seals, not data
            continue
        foreign += recorded.get("event_id") not in ours
    return foreign


async def simulate_into(
    settings: Settings,
    *,
    sites: int,
    patients: int,
    seed: int,
    console: Console,
    today: dt.date | None = None,
    refuse_real_data: bool = False,
) -> SubmissionReport:
    """Generate the trial (deterministic per seed) and submit it like the sites would;
    with `refuse_real_data`, only into a trial that holds nothing but this simulation."""
    assert settings.nats_url, (
        "no running system found: start `trial-ledger up` or set LEDGER_NATS_URL"
    )
    trial = generate_trial(
        seed=seed, sites=sites, patients=patients, today=today or dt.date.today()
    )
    connections: dict[str, Any] = {}

    async def open_all() -> None:
        for site in ["_sponsor", *trial.site_events]:
            role = "admin" if site == "_sponsor" else f"site:{site}"
            connections[site] = await connect(
                settings.nats_url or "", settings.creds_for(role), name=f"sim-{site}"
            )

    try:
        await open_all()
        if refuse_real_data:
            foreign = await events_not_simulated(connections["_sponsor"].jetstream(), trial)
            if foreign:
                raise TrialHoldsRealData(
                    f"trial {trial.trial_id} already holds {foreign} events this simulation "
                    "does not produce (real data?): simulate into a system of its own "
                    "(e.g. `trial-ledger up --data-dir /tmp/sim`)"
                )
        total = len(trial.all_events())
        with Progress(
            TextColumn("submitting"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as bar:
            task = bar.add_task("submit", total=total)
            report = await submit_trial(
                trial,
                lambda site: SiteClient(connections[site], trial.trial_id, site),
                progress=lambda n: bar.update(task, advance=n),
            )
    finally:
        for nc in connections.values():
            await nc.close()
    _print_submission(console, trial, report)
    return report


def _print_submission(console: Console, trial: SimulatedTrial, report: SubmissionReport) -> None:
    table = Table(title=f"Simulated trial {trial.trial_id} (seed {trial.seed})")
    for column in ("sites", "patients", "events", "accepted", "duplicate", "rejected"):
        table.add_column(column, justify="right")
    table.add_row(
        str(len(trial.site_events)),
        str(len(trial.patient_ids())),
        str(report.submitted),
        str(report.accepted),
        str(report.duplicate),
        str(report.rejected),
    )
    console.print(table)
    for reply in report.rejected_replies[:5]:
        console.print(f"[red]rejected[/red] {json.dumps(reply)}")


async def run_demo(
    data_dir: Path, *, sites: int, patients: int, seed: int, console: Console
) -> None:
    from services.runtime.system import System

    sections = summary_sections()  # before anything starts: a missing one stops the demo
    site_ids = tuple(f"site{n:02d}" for n in range(1, sites + 1))  # the simulator's site ids
    system = await System(data_dir, sites=site_ids).start()
    try:
        console.print(
            f"[bold]trial-ledger[/bold] up: NATS {system.runtime['nats_url']}, "
            f"PostgreSQL {redacted_url(system.runtime['database_url'])}, API {system.runtime['api_url']}"
        )
        console.print(f"ledger seals signed by {system.runtime['seal_public_key_fingerprint']}")
        report = await simulate_into(
            system.settings, sites=sites, patients=patients, seed=seed, console=console
        )
        projector = system.services["projector"]
        await projector.wait_caught_up(120)
        token = system.runtime["api_tokens"]["admin"]
        async with httpx.AsyncClient(
            base_url=system.runtime["api_url"],
            timeout=60,
            headers={"Authorization": f"Bearer {token}"},
        ) as http:
            await _print_core_summary(http, "HAIC-PD1-LEN", console)
            for section in sections:
                await section.print_summary(http, "HAIC-PD1-LEN", console, system)
        console.print(f"runtime: {system.data_dir / 'runtime.json'}")
        if report.rejected:
            raise SystemExit(f"{report.rejected} simulated events were rejected")
    finally:
        await system.stop()


def summary_sections() -> list[Any]:
    """The demo's summary sections, each a module with `async def print_summary(http, trial_id,
    console, system)`, printed in this order. Imported by name: one that fails to import stops
    the demo (never a demo that silently leaves its safety section out)."""
    from services.cli import demo_clinical, demo_report, demo_safety

    return [demo_clinical, demo_safety, demo_report]


async def _print_core_summary(http: httpx.AsyncClient, trial: str, console: Console) -> None:
    patients = (await http.get(f"/api/trials/{trial}/patients")).raise_for_status().json()
    status = (await http.get(f"/api/trials/{trial}/projections")).raise_for_status().json()
    counts: dict[str, int] = {}
    for row in patients:
        counts[row["status"] or "-"] = counts.get(row["status"] or "-", 0) + 1
    table = Table(title="Patient status (read models)")
    table.add_column("status")
    table.add_column("patients", justify="right")
    for name, count in sorted(counts.items()):
        table.add_row(name, str(count))
    table.add_row("[bold]total[/bold]", str(len(patients)))
    console.print(table)
    lag = Table(title=f"Projections (ledger head seq {status['ledger_head']})")
    for column in ("projection", "checkpoint seq", "lag", "parked"):
        lag.add_column(column)
    for row in status["projections"]:
        lag.add_row(
            row["projection"], str(row["checkpoint_seq"]), str(row["lag"]), str(row["parked"])
        )
    console.print(lag)
