"""`trial-ledger alerts …`: the safety officer's commands."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from services.cli.app import (
    DataDir,
    alerts_app,
    console,
    run,
    running_settings,
)
from services.cli.errors import USAGE, CommandFailed
from services.config.logs import configure_logging


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
    settings = running_settings(data_dir, nats=True)
    from services.client.follow import run_follow

    sys.exit(
        run(
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
    settings = running_settings(data_dir, db=True)
    from services.client.officer import run_list

    sys.exit(
        run(
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
    from services.client.officer import run_ack

    try:
        day = dt.date.fromisoformat(reported_on) if reported_on else None
    except ValueError:
        raise CommandFailed(
            f"alerts ack: --reported-on {reported_on!r} is not a date (YYYY-MM-DD)", USAGE
        ) from None
    settings = running_settings(data_dir, nats=True, db=True)
    sys.exit(
        run(
            run_ack(
                settings, alert_id, officer=officer, note=note, reported_on=day, console=console
            )
        )
    )
