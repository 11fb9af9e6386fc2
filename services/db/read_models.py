"""Do the read models exist, at the newest revision? Checked by readers (the API), which never
create or change tables themselves: `python -m services.db.migrate` (or `trial-ledger up`, whose
projector migrates) does that, before they start."""

from __future__ import annotations

from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.config.settings import Settings
from services.db.migrate import MIGRATIONS
from services.db.tables import META_SCHEMA

MIGRATE_HINT = (
    "run `python -m services.db.migrate` (or start the system with `trial-ledger up`) first"
)


class ReadModelsMissing(RuntimeError):
    """The read models are absent or behind the code's newest revision (one line, with the
    command that fixes it)."""


def head_revisions() -> set[str]:
    """The newest revision of each branch of the read-model migrations."""
    return set(ScriptDirectory(str(MIGRATIONS)).get_heads())


async def check_read_models(engine: AsyncEngine) -> str:
    """The active build's schema, when it holds every read model at the newest revision; else
    ReadModelsMissing. Reads only: not a table is created."""
    async with engine.connect() as conn:
        pointer = (
            await conn.execute(text("SELECT to_regclass(:t)"), {"t": f"{META_SCHEMA}.active_build"})
        ).scalar()
        if pointer is None:
            raise ReadModelsMissing(
                f"the read models do not exist in this database: {MIGRATE_HINT}"
            )
        schema = (
            await conn.execute(text(f"SELECT schema_name FROM {META_SCHEMA}.active_build"))
        ).scalar()
        if not schema:
            raise ReadModelsMissing(f"no active read-model build is named: {MIGRATE_HINT}")
        versions = (
            await conn.execute(text("SELECT to_regclass(:t)"), {"t": f'"{schema}".alembic_version'})
        ).scalar()
        found: set[str] = set()
        if versions is not None:
            found = set(
                (
                    await conn.execute(text(f'SELECT version_num FROM "{schema}".alembic_version'))
                ).scalars()
            )
    wanted = head_revisions()
    if found != wanted:
        have = ", ".join(sorted(found)) or "none"
        raise ReadModelsMissing(
            f"the read models in {schema!r} are at revision {have}, not {', '.join(sorted(wanted))}: "
            + MIGRATE_HINT
        )
    return str(schema)


def refuse_unless_migrated(settings: Settings) -> None:
    """`serve api`'s check before it starts: CommandFailed (exit code 6, one line) when the
    read models are missing or old."""
    import asyncio

    from services.config.exit_codes import NOT_MIGRATED, CommandFailed
    from services.db.migrate import make_engine

    assert settings.database_url

    async def check() -> None:
        engine = make_engine(settings.database_url or "", pool_size=1)
        try:
            await check_read_models(engine)
        finally:
            await engine.dispose()

    try:
        asyncio.run(check())
    except ReadModelsMissing as exc:
        raise CommandFailed(f"the API cannot start: {exc}", NOT_MIGRATED) from None
