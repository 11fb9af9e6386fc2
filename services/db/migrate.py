"""Apply the Alembic migrations to one read-model schema ("build") and manage the pointer."""

from __future__ import annotations

import re
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.db.tables import DEFAULT_BUILD, META_SCHEMA

MIGRATIONS = Path(__file__).parent / "migrations"
SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def check_schema_name(name: str) -> str:
    if not SCHEMA_RE.match(name):
        raise ValueError(f"not a valid schema name: {name!r} (lower-case letters, digits, _)")
    return name


def _upgrade(connection: Connection, schema: str) -> None:
    connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    connection.execute(text(f'SET LOCAL search_path TO "{schema}"'))
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    config.attributes["schema"] = schema
    # "heads": revisions made side by side on branches (each off the same parent) all apply
    command.upgrade(config, "heads")


def make_engine(database_url: str, pool_size: int = 10) -> AsyncEngine:
    return create_async_engine(
        database_url, pool_size=pool_size, max_overflow=10, pool_pre_ping=True
    )


async def migrate(engine: AsyncEngine, schema: str = DEFAULT_BUILD) -> None:
    """Bring `schema` to the newest read-model revision (idempotent, serialised by a lock)."""
    check_schema_name(schema)
    async with engine.begin() as conn:
        await conn.execute(text("SELECT pg_advisory_xact_lock(715517)"))
        await conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {META_SCHEMA}"))
        await conn.execute(
            text(
                f"CREATE TABLE IF NOT EXISTS {META_SCHEMA}.active_build "
                "(id int PRIMARY KEY DEFAULT 1 CHECK (id = 1), schema_name text NOT NULL)"
            )
        )
        await conn.execute(
            text(
                f"INSERT INTO {META_SCHEMA}.active_build (id, schema_name) VALUES (1, :s) ON CONFLICT DO NOTHING"
            ),
            {"s": DEFAULT_BUILD},
        )
        await conn.run_sync(_upgrade, schema)


async def active_build(engine: AsyncEngine) -> str:
    async with engine.connect() as conn:
        value = (
            await conn.execute(text(f"SELECT schema_name FROM {META_SCHEMA}.active_build"))
        ).scalar()
    return str(value or DEFAULT_BUILD)


async def switch_build(engine: AsyncEngine, schema: str) -> None:
    check_schema_name(schema)
    async with engine.begin() as conn:
        await conn.execute(
            text(f"UPDATE {META_SCHEMA}.active_build SET schema_name = :s"), {"s": schema}
        )


async def migrate_all(database_url: str) -> str:
    """What `python -m services.db.migrate` does: the default build and the active one, at the
    newest revision. Returns the active build's name."""
    engine = make_engine(database_url, pool_size=1)
    try:
        await migrate(engine)
        build = await active_build(engine)
        await migrate(engine, build)
        return build
    finally:
        await engine.dispose()


def main() -> None:
    """`python -m services.db.migrate`: create or upgrade the read models (LEDGER_DATABASE_URL,
    else the running system's runtime.json in LEDGER_DATA_DIR), before any reader starts."""
    import asyncio
    import sys

    from services.config.exit_codes import UNREACHABLE, USAGE
    from services.config.settings import Settings, SettingsError

    try:
        settings = Settings.from_env().require("migrate", "database_url")
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(USAGE) from None
    assert settings.database_url  # for the type checker: require() checked it
    try:
        build = asyncio.run(migrate_all(settings.database_url))
    except OSError as exc:  # PostgreSQL not running or not answering
        print(f"error: the database does not answer: {exc}", file=sys.stderr)
        raise SystemExit(UNREACHABLE) from None
    print(f"read models up to date (active build {build!r})", flush=True)


if __name__ == "__main__":
    main()
