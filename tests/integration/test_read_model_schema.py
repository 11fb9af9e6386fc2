"""The read-model schema is written once: the SQLAlchemy tables are the source, and the
migrations build exactly them. Alembic's autogenerate comparison, run against a schema the
migrations built on a real PostgreSQL, proposes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import BigInteger, Column, Connection, MetaData, Text, text

from services.db.migrate import make_engine, migrate
from services.db.tables import read_model_metadata
from services.runtime.embedded import EmbeddedPostgres

pytestmark = pytest.mark.integration


def _drift(connection: Connection, schema: str, declared: MetaData | None = None) -> list[Any]:
    connection.execute(text(f'SET search_path TO "{schema}"'))
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": True}
    )
    return list(compare_metadata(context, declared or read_model_metadata()))


def _drifted() -> MetaData:
    """The declared tables with one column more, one index fewer, one type changed."""
    copy = MetaData()
    for table in read_model_metadata().sorted_tables:
        table.to_metadata(copy)
    copy.tables["ae_episode"].append_column(Column("drifted", Text))
    indexed = copy.tables["event_index"]
    indexed.indexes.discard(next(i for i in indexed.indexes if i.name == "ix_event_index_patient"))
    copy.tables["adam_record"].c.line.type = BigInteger()
    return copy


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


async def test_the_comparison_sees_a_column_an_index_and_a_type_the_migrations_lack(
    own_postgres: EmbeddedPostgres,
) -> None:
    engine = make_engine(own_postgres.url)
    try:
        await migrate(engine, "drift_seen")
        async with engine.connect() as conn:
            drift = await conn.run_sync(_drift, "drift_seen", _drifted())
    finally:
        await engine.dispose()
    seen = {str(item) for item in drift}
    assert len(drift) == 3, drift
    assert any("add_column" in s and "ae_episode" in s and "drifted" in s for s in seen), seen
    assert any("remove_index" in s and "ix_event_index_patient" in s for s in seen), seen
    assert any("modify_type" in s and "adam_record" in s for s in seen), seen
