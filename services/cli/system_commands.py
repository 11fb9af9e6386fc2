"""Commands that start or feed the whole system: up, demo, simulate, submit, schema."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from services.cli.app import (
    DataDir,
    app,
    console,
    external_servers_answer,
    resolve_data_dir,
    run,
    run_service,
    running_settings,
    wait_for_stop,
)
from services.cli.errors import REFUSED, CommandFailed
from services.config.logs import configure_logging


@app.command()
def up(
    data_dir: DataDir = None,
    api_port: Annotated[int, typer.Option(help="HTTP port (0 = free port).")] = 0,
    cluster: Annotated[
        int,
        typer.Option(
            "--cluster",
            min=1,
            help="Embedded nats-servers: 3 = a routed JetStream cluster with R3 streams (for local fault tests).",
        ),
    ] = 1,
) -> None:
    """Start everything: embedded NATS + PostgreSQL (unless URLs are set) and every service."""
    configure_logging()
    from services.runtime.system import System, public_runtime

    external_servers_answer(data_dir)

    async def main() -> None:
        system = await System(resolve_data_dir(data_dir), cluster=cluster).start(
            api_port=api_port or None
        )
        console.print(
            f"[green]trial-ledger is up[/green]; runtime: {system.data_dir / 'runtime.json'}"
        )
        # Only addresses: tokens, credentials and passwords stay in runtime.json (0600).
        console.print_json(json.dumps(public_runtime(system.runtime)))
        console.print(
            f"ledger seals signed by {system.runtime['seal_public_key_fingerprint']}; "
            f"auditors pin {system.runtime['seal_public_key']} (verify --public-key)"
        )
        try:
            await wait_for_stop()
        finally:
            await system.stop()

    run_service(main())


@app.command()
def demo(
    data_dir: DataDir = None,
    sites: int = 6,
    patients: int = 72,
    seed: int = 7,
) -> None:
    """Up + a simulated multi-site trial + a summary, then stop."""
    configure_logging("WARNING")
    from services.cli.demo import run_demo

    external_servers_answer(data_dir)
    run_service(
        run_demo(
            resolve_data_dir(data_dir), sites=sites, patients=patients, seed=seed, console=console
        )
    )


@app.command()
def simulate(
    data_dir: DataDir = None,
    sites: int = 6,
    patients: int = 72,
    seed: int = 7,
) -> None:
    """Submit a simulated trial to the running system, like real sites would."""
    configure_logging("WARNING")
    settings = running_settings(data_dir, nats=True)
    from services.cli.demo import TrialHoldsRealData, simulate_into

    try:
        report = run(
            simulate_into(
                settings,
                sites=sites,
                patients=patients,
                seed=seed,
                console=console,
                refuse_real_data=True,
            )
        )
    except TrialHoldsRealData as exc:
        raise CommandFailed(str(exc), REFUSED) from None
    sys.exit(0 if report.rejected == 0 else 1)


@app.command()
def submit(
    file: Annotated[Path, typer.Argument(help="JSON Lines: one event per line.")],
    trial: Annotated[str, typer.Option("--trial", help="Trial id.")],
    site: Annotated[str, typer.Option("--site", help="Your site id.")],
    data_dir: DataDir = None,
    batch: Annotated[int, typer.Option(help="Events per request.")] = 50,
) -> None:
    """Submit events from a JSON Lines file and print each line's verdict.

    Safe to run again: a line without an event_id gets one derived from its content (never a
    random one), so everything already recorded is answered "duplicate". Exits 1 when any
    line was rejected.
    """
    configure_logging("WARNING")
    settings = running_settings(data_dir, nats=True)
    from services.cli.submit import read_lines, summary, verdict
    from services.client.site import SiteClient
    from services.ledger.connection import connect

    lines = read_lines(file.read_text(), trial, site)

    async def main() -> list[str]:
        assert settings.nats_url, "no running system found (runtime.json) and LEDGER_NATS_URL unset"
        nc = await connect(
            settings.nats_url, settings.creds_for(f"site:{site}"), name=f"site-{site}"
        )
        client = SiteClient(nc, trial, site)
        statuses: list[str] = []
        try:
            for start in range(0, len(lines), batch):
                chunk = lines[start : start + batch]
                events = [line.event for line in chunk if line.event is not None]
                results = iter(await client.submit_batch(events) if events else [])
                for line in chunk:
                    status, text = verdict(line, next(results) if line.event is not None else None)
                    statuses.append(status)
                    console.print(text, markup=False, highlight=False, soft_wrap=True)
        finally:
            await nc.close()
        return statuses

    statuses = run(main())
    console.print(summary(statuses), markup=False, highlight=False, soft_wrap=True)
    sys.exit(1 if "rejected" in statuses else 0)


@app.command()
def schema(
    out: Annotated[Path, typer.Option("--out", help="Directory to write into.")] = Path("schema"),
) -> None:
    """Write <type>.schema.json and a valid <type>.example.json for every event type."""
    from services.cli.schema import write_schemas

    written = write_schemas(out)
    console.print(f"wrote {len(written)} files to {out}")
