"""`trial-ledger serve …`: one service at a time against the running system's servers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import typer

from services.cli.app import (
    DataDir,
    run_service,
    running_settings,
    serve_app,
    wait_for_stop,
)
from services.config.logs import configure_logging


def serve(create: Callable[[], Awaitable[Any]]) -> None:
    """Run one service until SIGINT/SIGTERM, then stop it cleanly."""

    async def main() -> None:
        service = await create()
        await service.start()
        try:
            await wait_for_stop()
        finally:
            await service.stop()

    run_service(main())


@serve_app.command("writer")
def serve_writer(data_dir: DataDir = None) -> None:
    """The validating writer (answers intake.<trial>.<site>; run several for a queue group)."""
    configure_logging()
    settings = running_settings(data_dir, nats=True)
    from services.writer.app import create_app

    serve(lambda: create_app(settings))


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
    settings = running_settings(data_dir, nats=True, db=True)
    from services.projector.app import create_app

    serve(
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
    from services.db.read_models import refuse_unless_migrated

    settings = running_settings(data_dir, nats=True, db=True)
    refuse_unless_migrated(settings)  # one line and exit code 6, before uvicorn starts
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level="warning",
    )


@serve_app.command("alerter")
def serve_alerter(data_dir: DataDir = None) -> None:
    """The serious-AE alerter: ledger → ALERTS, exactly one alert per AE that becomes serious."""
    configure_logging()
    settings = running_settings(data_dir, nats=True, db=True)
    from services.alerter.app import create_app

    serve(lambda: create_app(settings))
