"""The data cut-off and the last date of exposure (DOMAIN.md "Time origin and units").

"Data cut-off date (parameter) censors everything after it": an analysis as of the cut-off
reads only what happened on or before it — events dated later do not exist for it. The
time-to-event rules (`projections.endpoints.tte_rules`) keep their own censoring codes for an event after
the cut-off; the other derivations (best responses, AE tables, ADSL / ADAE) read the history
through `as_of_cutoff`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from projections.fold.history import Effective
from projections.fold.patient import PatientState


def before_cutoff(on: dt.date | None, cutoff: dt.date | None) -> bool:
    """Whether a clinical date lies inside the analysis (on or before the cut-off)."""
    return cutoff is None or on is None or on <= cutoff


def as_of_cutoff(events: Iterable[Effective], cutoff: dt.date | None) -> tuple[Effective, ...]:
    """The effective events dated on or before the cut-off (all of them without one)."""
    entries = tuple(events)
    if cutoff is None:
        return entries
    return tuple(entry for entry in entries if entry.event.occurred_on <= cutoff)


def last_exposure_on(
    dosing: PatientState, course: PatientState, cutoff: dt.date | None
) -> dt.date | None:
    """ADSL TRTEDT: the last date of exposure to any study agent (None if never treated).

    `dosing` is the patient folded from the history as of the cut-off (`as_of_cutoff`),
    `course` from the whole history. Per agent (DOMAIN.md "Trial facts"):
    - HAIC and PD-1: the last infusion date.
    - lenvatinib (oral, daily): the date it was discontinued or interrupted — the last day
      taken; while it is still being taken (its last dose change is a start, a reduction or a
      resumption), the patient takes it every day up to the end of observed exposure, which is
      the earliest of the data cut-off, the death, the discontinuation of all study treatment,
      the withdrawal of consent, and the last date the patient was known alive (a contact of
      any kind; a declared loss to follow-up is not one).
      The date of the last dose change is never the end of an ongoing treatment.
    TRTEDT is the latest of the agents' dates, never before STARTDT nor after the cut-off.
    """
    start = dosing.startdt
    if start is None:
        return None
    last = dosing.last_dose_on
    if dosing.lenvatinib_status == "ongoing":
        withdrawal = course.withdrawal
        consent = withdrawal.on if withdrawal and withdrawal.kind == "consent_withdrawn" else None
        stops = (cutoff, course.death_on, course.discontinued_on, consent)
        # a loss to follow-up is declared later: the last contact ends what was observed
        ends = [on for on in (*stops, course.last_known_alive_on) if on is not None]
        if ends:
            last = min(ends) if last is None else max(last, min(ends))
    if last is None:
        return start
    if cutoff is not None:
        last = min(last, cutoff)
    return max(last, start)
