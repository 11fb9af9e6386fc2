"""One as-of view, built in its own process for the API (`services.api.asof`), never by hand.

`python -m services.projector.asof_view --schema S --as-of T` rebuilds every read model as
the ledger stood at T into schema S; `--drop S` drops an evicted view. The API only reads:
the tables of a view are made here, and the API's event loop never runs a projection. The
connection settings come from the environment (`LEDGER_NATS_URL`, `LEDGER_DATABASE_URL`,
`LEDGER_REBUILD_CREDS`). It prints JSON lines on stdout: `{"total": head}` first (the
ledger's events), `{"done": n}` as batches are applied, `{"ready": true, "events": n}` at the
end; a failure exits non-zero with one line on stderr saying why.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

from projections.common.calendar import parse_instant
from services.db.migrate import check_schema_name, make_engine

# Smaller than a replay's batches: progress is reported after each, and the view of a large
# ledger still holds few entries in memory at once.
BATCH = 5_000


def say(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


async def build(schema: str, as_of: str, batch: int) -> int:
    from services.ledger.connection import connect
    from services.ledger.io import ledger_head
    from services.projector.app import all_projections
    from services.projector.rebuild import rebuild

    instant = parse_instant(as_of)
    nc = await connect(
        os.environ["LEDGER_NATS_URL"],
        os.environ.get("LEDGER_REBUILD_CREDS") or None,
        name="asof-view",
    )
    engine = make_engine(os.environ["LEDGER_DATABASE_URL"], pool_size=4)
    try:
        js = nc.jetstream()
        head = await ledger_head(js)
        say(total=head)
        report = await rebuild(
            js,
            engine,
            schema,
            all_projections(),
            as_of=instant,
            batch=batch,
            stop_seq=head,
            progress=lambda done: say(done=done),
        )
        return report.events
    finally:
        await engine.dispose()
        await nc.close()


async def drop(schema: str) -> None:
    from services.projector.rebuild import drop_schema

    engine = make_engine(os.environ["LEDGER_DATABASE_URL"], pool_size=1)
    try:
        await drop_schema(engine, schema)
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--schema")
    parser.add_argument("--as-of")
    parser.add_argument("--drop", help="drop this view's schema instead")
    parser.add_argument("--batch", type=int, default=BATCH)
    args = parser.parse_args()
    from services.config.logs import configure_logging
    from services.config.service_gc import tune_gc_for_service

    configure_logging("WARNING")  # to stderr, which the API keeps the end of
    try:
        if args.drop:
            asyncio.run(drop(check_schema_name(args.drop)))
            say(dropped=args.drop)
            return
        if not (args.schema and args.as_of):
            parser.error("--schema and --as-of are needed (or --drop)")
        tune_gc_for_service()
        events = asyncio.run(build(check_schema_name(args.schema), args.as_of, args.batch))
    except Exception as exc:  # one line for the API to show, not a traceback
        print(f"{type(exc).__name__}: {exc}"[:500].replace("\n", " "), file=sys.stderr)
        raise SystemExit(1) from None
    say(ready=True, events=events)


if __name__ == "__main__":
    main()
