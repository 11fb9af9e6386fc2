"""What a replay alone cannot see: seqs missing from the ledger's end, seals missing from it.

- `missing_beyond`: the ledger must reach every outside mark (services.security.evidence)
  and hold the event each one names;
- `unsealed_tails`: under a trusted key, every trial's events are covered by a seal of that
  key but for a tail younger than the grace and shorter than MAX_UNSEALED_EVENTS: a writer
  seals every SEAL_EVERY_EVENTS events or SEAL_EVERY_SECONDS, and whoever rewrites the
  stream without the key cannot.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

from projections.common.calendar import parse_instant
from services.security.evidence import Mark
from services.security.seals import SEAL_EVERY_EVENTS, SEAL_EVERY_SECONDS
from services.security.verify_report import Problem, Report

# A longer unsealed tail means seals were removed (or the writer is down and not caught up).
MAX_UNSEALED_EVENTS = 2 * SEAL_EVERY_EVENTS
UNSEALED_GRACE_SECONDS = 6 * SEAL_EVERY_SECONDS


def missing_beyond(
    marks: Iterable[Mark], stored_hashes: Mapping[int, str | None], head_seq: int, report: Report
) -> list[Problem]:
    """A problem per mark the ledger falls short of (its range noted in `report.missing`),
    or whose seq holds another event than the mark names."""
    problems: list[Problem] = []
    for mark in sorted(marks, key=lambda m: m.seq):
        if mark.seq > head_seq:
            report.missing.append((head_seq + 1, mark.seq, mark.source))
            problems.append(
                Problem(
                    head_seq + 1,
                    "truncated",
                    f"seqs {head_seq + 1}..{mark.seq} are missing: the ledger ends at seq "
                    f"{head_seq} but {mark.source} reached seq {mark.seq}",
                )
            )
        elif mark.hash and stored_hashes.get(mark.seq) not in (None, mark.hash):
            problems.append(
                Problem(mark.seq, "rewritten", f"{mark.source} names another event at this seq")
            )
    return problems


def unsealed_tails(
    unsealed: Mapping[str, list[tuple[int, str]]], now: dt.datetime, grace: float
) -> list[Problem]:
    """`unsealed`: per trial, (seq, recorded_at) of its events after its last trusted seal."""
    problems: list[Problem] = []
    for trial, pending in sorted(unsealed.items()):
        if not pending:
            continue
        (first, oldest), (last, _) = pending[0], pending[-1]
        age = _age_seconds(oldest, now)
        if len(pending) < MAX_UNSEALED_EVENTS and age is not None and age <= grace:
            continue
        problems.append(
            Problem(
                last + 1,  # where the seal that covers them should have been
                "unsealed",
                f"seqs {first}..{last} of trial {trial} ({len(pending)} events, the first "
                f"recorded {age if age is None else round(age)} s ago) are covered by no seal of "
                f"the trusted key; the writer seals every {SEAL_EVERY_EVENTS} events or "
                f"{SEAL_EVERY_SECONDS:g} s",
            )
        )
    return problems


def _age_seconds(recorded_at: str, now: dt.datetime) -> float | None:
    try:
        moment = parse_instant(recorded_at)
    except ValueError:
        return None
    return (now - moment).total_seconds()
