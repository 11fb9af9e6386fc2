"""The read-model schema is written once: the SQLAlchemy tables are the source, and the
migrations build exactly them. Alembic's autogenerate comparison, run against a schema the
migrations built on a real PostgreSQL, proposes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, text

from services.db.migrate import make_engine, migrate
from services.db.tables import read_model_metadata
from services.runtime.embedded import EmbeddedPostgres

pytestmark = pytest.mark.integration


def _drift(connection: Connection, schema: str) -> list[Any]:
    connection.execute(text(f'SET search_path TO "{schema}"'))
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": True}
    )
    return list(compare_metadata(context, read_model_metadata()))


async def test_migrations_build_exactly_the_tables_the_code_declares(
    own_postgres: EmbeddedPostgres,
) -> None:
    engine = make_engine(own_postgres.url)
    try:
        await migrate(engine, "drift_check")
        async with engine.connect() as conn:
            drift = await conn.run_sync(_drift, "drift_check")
    finally:
        await engine.dispose()
    assert drift == [], "migrations and tables disagree:\n" + "\n".join(map(str, drift))
