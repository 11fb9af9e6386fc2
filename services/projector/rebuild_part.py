"""One partition of a rebuild with helper processes (`replay.Helpers`), in its own process.

Started by the rebuilding process, never by hand. It starts reading at once, writes nothing
until told on stdin that the schema is migrated ("go"), and stops at the ledger seq it is
given; the connection settings come from the environment (`LEDGER_NATS_URL`,
`LEDGER_DATABASE_URL`, `LEDGER_REBUILD_CREDS`). It prints one JSON line,
`{"events": n, "last_seq": s}`; any failure exits non-zero, and the rebuild fails with it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

from projections.common.calendar import parse_instant
from services.config.logs import configure_logging
from services.config.service_gc import tune_gc_for_service
from services.db.migrate import make_engine
from services.ledger.connection import connect
from services.projector.app import all_projections
from services.projector.rebuild import fill
from services.projector.runner import Partition


def parse_partition(value: str) -> Partition:
    index, _, count = value.partition("/")
    partition = Partition(int(index), int(count))
    if not 0 <= partition.index < partition.count:
        raise ValueError(f"not a partition: {value!r} (index/count, index < count)")
    return partition


async def schema_ready() -> None:
    """Wait for the rebuilding process to say the schema is migrated ("go" on stdin)."""
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    if line.strip() != "go":
        raise SystemExit("the rebuilding process went away before the schema was ready")


async def build_partition(args: argparse.Namespace) -> dict[str, int]:
    nc = await connect(
        os.environ["LEDGER_NATS_URL"],
        os.environ.get("LEDGER_REBUILD_CREDS") or None,
        name=f"replay-part-{args.partition}",
    )
    engine = make_engine(os.environ["LEDGER_DATABASE_URL"], pool_size=4)
    try:
        report = await fill(
            nc.jetstream(),
            engine,
            args.schema,
            all_projections(),
            as_of=parse_instant(args.as_of) if args.as_of else None,
            batch=args.batch,
            stop_seq=args.stop_seq,
            partition=parse_partition(args.partition),
            ready=schema_ready,
        )
        return {"events": report.events, "last_seq": report.last_seq}
    finally:
        await engine.dispose()
        await nc.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--schema", required=True)
    parser.add_argument("--partition", required=True, help="index/count, e.g. 1/2")
    parser.add_argument("--stop-seq", type=int, required=True)
    parser.add_argument("--batch", type=int, default=50_000)
    parser.add_argument("--as-of")
    args = parser.parse_args()
    configure_logging("WARNING")  # to stderr, which the rebuilding process passes on
    tune_gc_for_service()
    print(json.dumps(asyncio.run(build_partition(args))), flush=True)


if __name__ == "__main__":
    main()
