"""`trial-ledger`: the one command-line entry point (DESIGN.md, "CLI")."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from services.cli_exit import (
    EXIT_CODES_HELP,
    REFUSED,
    USAGE,
    CommandFailed,
    require_servers,
    run_cli,
)
from services.logs import configure_logging
from services.settings import Settings, default_data_dir

app = typer.Typer(
    help="Event-sourced ledger for oncology clinical trials.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
)
serve_app = typer.Typer(
    help="Run one service against the running system's servers.", no_args_is_help=True
)
alerts_app = typer.Typer(help="Serious-AE alerts for safety officers.", no_args_is_help=True)
app.add_typer(serve_app, name="serve")
app.add_typer(alerts_app, name="alerts")
console = Console()

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data directory (default $LEDGER_DATA_DIR or ./.ledger)."),
]


def _data_dir(value: Path | None) -> Path:
    return (value or default_data_dir()).resolve()


def _settings(data_dir: Path | None, *, nats: bool = False, db: bool = False) -> Settings:
    """The running system's settings, once the servers the command needs answer (else one
    line and exit 4 at once, instead of reconnecting for ever)."""
    settings = Settings.from_env(_data_dir(data_dir))
    require_servers(settings, nats=nats, db=db)
    return settings


def _external_servers_answer(data_dir: Path | None) -> None:
    """`up`/`demo` start embedded servers, except where LEDGER_*_URL names running ones."""
    import os

    require_servers(
        Settings.from_env(_data_dir(data_dir)),
        nats=bool(os.environ.get("LEDGER_NATS_URL")),
        db=bool(os.environ.get("LEDGER_DATABASE_URL")),
    )


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def _run_service(coro: Any) -> Any:
    """`_run` for what holds many decoded entries for long: services, `up`, the demo's system
    and `replay` (a rebuild keeps 50,000-event batches; measured 20-30 % faster with these
    thresholds than with CPython's defaults)."""
    from services.runtime import tune_gc_for_service
    from services.security.ledger_backwards import LedgerWentBackwards

    tune_gc_for_service()
    try:
        return asyncio.run(coro)
    except LedgerWentBackwards as exc:  # a clear refusal, not a traceback
        console.print(f"[red bold]{exc}[/red bold]")
        sys.exit(3)


async def _wait_for_stop() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


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
    from services.system import System, public_runtime

    _external_servers_answer(data_dir)

    async def main() -> None:
        system = await System(_data_dir(data_dir), cluster=cluster).start(api_port=api_port or None)
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
            await _wait_for_stop()
        finally:
            await system.stop()

    _run_service(main())


@app.command()
def demo(
    data_dir: DataDir = None,
    sites: int = 6,
    patients: int = 72,
    seed: int = 7,
) -> None:
    """Up + a simulated multi-site trial + a summary, then stop."""
    configure_logging("WARNING")
    from services.demo import run_demo

    _external_servers_answer(data_dir)
    _run_service(
        run_demo(_data_dir(data_dir), sites=sites, patients=patients, seed=seed, console=console)
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
    settings = _settings(data_dir, nats=True)
    from services.demo import TrialHoldsRealData, simulate_into

    try:
        report = _run(
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
    settings = _settings(data_dir, nats=True)
    from services.client import SiteClient
    from services.nats_conn import connect
    from services.submit_file import read_lines, summary, verdict

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

    statuses = _run(main())
    console.print(summary(statuses), markup=False, highlight=False, soft_wrap=True)
    sys.exit(1 if "rejected" in statuses else 0)


@app.command()
def schema(
    out: Annotated[Path, typer.Option("--out", help="Directory to write into.")] = Path("schema"),
) -> None:
    """Write <type>.schema.json and a valid <type>.example.json for every event type."""
    from services.schema_export import write_schemas

    written = write_schemas(out)
    console.print(f"wrote {len(written)} files to {out}")


def _serve(create: Callable[[], Awaitable[Any]]) -> None:
    """Run one service until SIGINT/SIGTERM, then stop it cleanly."""

    async def main() -> None:
        service = await create()
        await service.start()
        try:
            await _wait_for_stop()
        finally:
            await service.stop()

    _run_service(main())


@serve_app.command("writer")
def serve_writer(data_dir: DataDir = None) -> None:
    """The validating writer (answers intake.<trial>.<site>; run several for a queue group)."""
    configure_logging()
    settings = _settings(data_dir, nats=True)
    from services.writer.app import create_app

    _serve(lambda: create_app(settings))


@serve_app.command("projector")
def serve_projector(
    data_dir: DataDir = None,
    schema: Annotated[
        str | None, typer.Option(help="Read-model build (default: the active one).")
    ] = None,
    partitions: Annotated[
        int, typer.Option(help="Patient partitions shared by all instances (1 = no partitioning).")
    ] = 1,
    instance: Annotated[int, typer.Option(help="This instance's number (0-based).")] = 0,
    instances: Annotated[int, typer.Option(help="How many instances are meant to run.")] = 1,
    projection: Annotated[
        list[str] | None,
        typer.Option("--projection", help="Run only this projection (repeatable)."),
    ] = None,
) -> None:
    """The projector: one durable consumer per projection, exactly-once into PostgreSQL."""
    configure_logging()
    settings = _settings(data_dir, nats=True, db=True)
    from services.projector.app import create_app

    _serve(
        lambda: create_app(
            settings,
            schema=schema,
            partitions=partitions,
            instance=instance,
            instances=instances,
            only=projection,
        )
    )


@serve_app.command("api")
def serve_api(
    data_dir: DataDir = None,
    port: Annotated[int, typer.Option(help="HTTP port.")] = 8000,
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
) -> None:
    """The HTTP API and pages."""
    configure_logging()
    import uvicorn

    from services.api.app import create_app
    from services.read_models import refuse_unless_migrated

    settings = _settings(data_dir, nats=True, db=True)
    refuse_unless_migrated(settings)  # one line and exit code 6, before uvicorn starts
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level="warning",
    )


@app.command()
def replay(
    data_dir: DataDir = None,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="ISO 8601 instant: only events recorded at or before it."),
    ] = None,
    schema: Annotated[
        str | None, typer.Option(help="Schema to rebuild into (default replay_<time>).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    compare_live: Annotated[
        bool, typer.Option("--compare", help="List every difference from the live read models.")
    ] = False,
    switch: Annotated[
        bool, typer.Option("--switch", help="Make the rebuilt schema the live one (no downtime).")
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Processes that build the read models, each for a share of the patients "
            "(default: one per CPU core, at most 4).",
        ),
    ] = None,
) -> None:
    """Rebuild every read model from the ledger into a fresh schema and print per-table digests."""
    configure_logging("WARNING")
    from projections.calendar import parse_instant
    from services.projector.rebuild_cli import run_replay

    if as_of is not None:  # a bad value is a usage error, whether or not the system runs
        try:
            parse_instant(as_of)
        except ValueError as exc:
            raise CommandFailed(f"replay: --as-of {as_of!r}: {exc}", USAGE) from None
    settings = _settings(data_dir, nats=True, db=True)

    code = _run_service(
        run_replay(
            settings,
            as_of=as_of,
            schema=schema,
            as_json=as_json,
            compare_live=compare_live,
            switch=switch,
            console=console,
            workers=workers,
        )
    )
    sys.exit(code)


@app.command()
def export(
    dataset: Annotated[str, typer.Argument(help="adsl, adtte, adrs or adae.")],
    data_dir: DataDir = None,
    trial: Annotated[str, typer.Option("--trial", help="Trial id.")] = "HAIC-PD1-LEN",
    out: Annotated[
        Path | None, typer.Option("-o", "--out", help="CSV file (default: standard output).")
    ] = None,
) -> None:
    """Write an ADaM-style dataset as CSV from the live read models."""
    configure_logging("WARNING")
    settings = _settings(data_dir, db=True)
    from services.exports_cli import run_export

    # The CSV may go to standard output: every message goes to standard error.
    messages = Console(stderr=True)
    sys.exit(_run(run_export(settings, dataset, trial=trial, out=out, console=messages)))


@alerts_app.command("follow")
def alerts_follow(
    data_dir: DataDir = None,
    durable: Annotated[
        str, typer.Option("--durable", help="Your durable subscription name.")
    ] = "safety-officer",
    ack: Annotated[
        bool, typer.Option("--ack/--no-ack", help="Acknowledge each alert with sae_acknowledged.")
    ] = False,
    officer: Annotated[
        str, typer.Option("--officer", help="Your user id (recorded_by of acknowledgements).")
    ] = "safety.officer",
    once: Annotated[bool, typer.Option("--once", help="Print what is pending and exit.")] = False,
) -> None:
    """Print every serious-AE alert once; catches up after being offline."""
    configure_logging("WARNING")
    settings = _settings(data_dir, nats=True)
    from services.alerter.follow import run_follow

    sys.exit(
        _run(
            run_follow(
                settings, durable=durable, ack=ack, officer=officer, once=once, console=console
            )
        )
    )


@alerts_app.command("list")
def alerts_list(
    data_dir: DataDir = None,
    trial: Annotated[
        str | None, typer.Option("--trial", help="Trial id (default: every trial).")
    ] = None,
    only_open: Annotated[
        bool, typer.Option("--open", help="Only alerts not acknowledged yet.")
    ] = False,
    only_overdue: Annotated[
        bool, typer.Option("--overdue", help="Only alerts past a deadline.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the alerts as JSON.")] = False,
) -> None:
    """Every SAE alert (initial and follow-up) with its deadlines and status now."""
    configure_logging("WARNING")
    settings = _settings(data_dir, db=True)
    from services.alerter.officer import run_list

    sys.exit(
        _run(
            run_list(
                settings,
                trial=trial,
                only_open=only_open,
                only_overdue=only_overdue,
                as_json=as_json,
                console=console,
            )
        )
    )


@alerts_app.command("ack")
def alerts_ack(
    alert_id: Annotated[str, typer.Argument(help="The alert to acknowledge (sae-...).")],
    data_dir: DataDir = None,
    note: Annotated[str | None, typer.Option("--note", help="A note with it.")] = None,
    reported_on: Annotated[
        str | None,
        typer.Option("--reported-on", help="Date (YYYY-MM-DD) the expedited report was submitted."),
    ] = None,
    officer: Annotated[
        str, typer.Option("--officer", help="Your user id (recorded_by of the acknowledgement).")
    ] = "safety.officer",
) -> None:
    """Acknowledge one alert; with --reported-on, record its expedited report's submission."""
    import datetime as dt

    configure_logging("WARNING")
    from services.alerter.officer import run_ack

    try:
        day = dt.date.fromisoformat(reported_on) if reported_on else None
    except ValueError:
        raise CommandFailed(
            f"alerts ack: --reported-on {reported_on!r} is not a date (YYYY-MM-DD)", USAGE
        ) from None
    settings = _settings(data_dir, nats=True, db=True)
    sys.exit(
        _run(
            run_ack(
                settings, alert_id, officer=officer, note=note, reported_on=day, console=console
            )
        )
    )


@app.command()
def verify(
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    public_key: Annotated[
        Path | None,
        typer.Option(
            "--public-key",
            help="The writer's public key you pinned (seal-public-key.pem): trust only it.",
        ),
    ] = None,
    unsealed_grace: Annotated[
        float,
        typer.Option(
            "--unsealed-grace",
            min=0,
            help="Seconds an event may stay without a seal (0: the whole ledger must be sealed).",
        ),
    ] = 60.0,
) -> None:
    """Replay the ledger and check every hash, chain link, seal signature, seq and event_id,
    and that nothing is missing from its end (writer's high-water mark, seals, checkpoints)."""
    configure_logging("WARNING")
    settings = _settings(data_dir, nats=True)
    from services.security.verify import run_verify

    sys.exit(
        _run(
            run_verify(
                settings,
                as_json=as_json,
                console=console,
                public_key=public_key,
                unsealed_grace=unsealed_grace,
            )
        )
    )


@serve_app.command("alerter")
def serve_alerter(data_dir: DataDir = None) -> None:
    """The serious-AE alerter: ledger → ALERTS, exactly one alert per AE that becomes serious."""
    configure_logging()
    settings = _settings(data_dir, nats=True, db=True)
    from services.alerter.app import create_app

    _serve(lambda: create_app(settings))


@app.command()
def report(
    data_dir: DataDir = None,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="ISO 8601 instant: the report as the ledger stood then."),
    ] = None,
    out: Annotated[Path, typer.Option("-o", "--out", help="The HTML file to write.")] = Path(
        "report.html"
    ),
    trial: Annotated[str, typer.Option("--trial", help="Trial id.")] = "HAIC-PD1-LEN",
) -> None:
    """One self-contained HTML report: endpoints, responses, safety, stamped with the ledger position."""
    configure_logging("WARNING")
    from fastapi import HTTPException

    from services.report import normalized_as_of, run_report

    try:  # a bad value is a usage error, whether or not the system runs
        normalized_as_of(as_of)
    except HTTPException as exc:
        raise CommandFailed(f"report: --as-of {as_of!r}: {exc.detail}", USAGE) from None
    settings = _settings(data_dir, nats=True, db=True)

    sys.exit(_run(run_report(settings, trial=trial, as_of=as_of, out=out, console=console)))


def main() -> None:
    sys.exit(run_cli(app))


if __name__ == "__main__":
    main()
