"""How a long-running service process tunes its garbage collector."""

from __future__ import annotations

import gc

# A service process keeps tens of thousands of decoded ledger entries (histories, folds,
# the writer's patient logs) that live for minutes. With CPython's default thresholds (700
# allocations) the young collections run hundreds of times a second and keep promoting
# them, so full collections over the whole heap followed every few seconds, each stalling
# the event loop for 100-300 ms (measured in a projector under 1,000 events/s). Nearly all of
# a service's garbage is freed by reference counting; collecting less often lets the young
# generation empty itself before anything is promoted.
SERVICE_GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc_for_service() -> None:
    """Garbage-collector thresholds for a long-running service process."""
    gc.set_threshold(*SERVICE_GC_THRESHOLDS)
