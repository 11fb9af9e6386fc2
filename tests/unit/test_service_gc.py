"""Service processes run with the garbage-collector thresholds chosen for them."""

from __future__ import annotations

import gc

from services.cli import app as cli
from services.config.service_gc import SERVICE_GC_THRESHOLDS


async def _thresholds() -> tuple[int, int, int]:
    return gc.get_threshold()


def test_a_service_runs_with_the_service_gc_thresholds() -> None:
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        assert cli.run_service(_thresholds()) == SERVICE_GC_THRESHOLDS
        # young collections far rarer than CPython's default, so entries are not promoted
        assert SERVICE_GC_THRESHOLDS[0] >= 10_000
    finally:
        gc.set_threshold(*before)
