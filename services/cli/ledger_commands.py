"""Commands that read the ledger and the read models: replay, export, verify, report."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from services.cli.app import (
    DataDir,
    app,
    console,
    run,
    run_service,
    running_settings,
)
from services.cli.errors import USAGE, CommandFailed
from services.config.logs import configure_logging


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
    from projections.common.calendar import parse_instant
    from services.cli.replay import run_replay

    if as_of is not None:  # a bad value is a usage error, whether or not the system runs
        try:
            parse_instant(as_of)
        except ValueError as exc:
            raise CommandFailed(f"replay: --as-of {as_of!r}: {exc}", USAGE) from None
    settings = running_settings(data_dir, nats=True, db=True)

    code = run_service(
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
    settings = running_settings(data_dir, db=True)
    from services.cli.exports import run_export

    # The CSV may go to standard output: every message goes to standard error.
    messages = Console(stderr=True)
    sys.exit(run(run_export(settings, dataset, trial=trial, out=out, console=messages)))


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
    settings = running_settings(data_dir, nats=True)
    from services.security.verify import run_verify

    sys.exit(
        run(
            run_verify(
                settings,
                as_json=as_json,
                console=console,
                public_key=public_key,
                unsealed_grace=unsealed_grace,
            )
        )
    )


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

    from services.api.report import normalized_as_of, run_report

    try:  # a bad value is a usage error, whether or not the system runs
        normalized_as_of(as_of)
    except HTTPException as exc:
        raise CommandFailed(f"report: --as-of {as_of!r}: {exc.detail}", USAGE) from None
    settings = running_settings(data_dir, nats=True, db=True)

    sys.exit(run(run_report(settings, trial=trial, as_of=as_of, out=out, console=console)))
