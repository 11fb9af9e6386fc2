"""The censoring rules of the time-to-event endpoints: which date, event or censored, and why.

DOMAIN.md "Time-to-event endpoints"; admiral `derive_param_tte` (the earliest qualifying event
wins; otherwise the latest censoring date; an event beats a censoring on the same date); FDA
guidance "Clinical Trial Endpoints for the Approval of Cancer Drugs and Biologics" (2018),
appendix tables for PFS. `projections.endpoints.tte` turns an `Outcome` into an ADTTE record.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from events import ProtocolParameters

DEATH = "DEATH"
PROGRESSION = "DISEASE PROGRESSION"
LAST_ADEQUATE = "LAST ADEQUATE ASSESSMENT"
CUTOFF = "DATA CUT-OFF"


class Cnsr(IntEnum):
    """ADTTE CNSR: 0 is an event; each positive code says why the record is censored.

    | code | reason                                                   | ADT (CNSDTDSC)               |
    |------|----------------------------------------------------------|------------------------------|
    | 0    | event: death (OS); first PD or death (PFS, DOR)          | event date                   |
    | 1    | no PD, alive                                             | last adequate assessment     |
    | 2    | no baseline / no adequate post-baseline assessment       | STARTDT                      |
    | 3    | subsequent anticancer therapy before PD                  | last adequate assessment on  |
    |      |                                                          | or before the therapy start  |
    | 4    | PD or death after ≥ `missed_visits_censor` missed scans  | last adequate assessment     |
    |      |                                                          | before the gap (or STARTDT)  |
    | 5    | the event (or the alive evidence) lies after the cut-off | cut-off (OS); last adequate  |
    |      |                                                          | assessment on/before (PFS)   |
    | 6    | alive (OS)                                               | last known alive date        |

    Codes 3–5 fall back to STARTDT (CNSDTDSC "STARTDT") when no adequate assessment precedes.
    """

    EVENT = 0
    LAST_ADEQUATE_ASSESSMENT = 1
    NO_ASSESSMENT = 2
    SUBSEQUENT_THERAPY = 3
    MISSED_ASSESSMENTS = 4
    DATA_CUTOFF = 5
    LAST_KNOWN_ALIVE = 6


@dataclass(frozen=True, slots=True)
class Dated:
    """A clinical date and the ledger seqs (original and corrections) it comes from."""

    on: dt.date
    seqs: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Assessment:
    """One post-baseline response timepoint under the endpoint's criterion.

    `progressed`: the overall response is PD (an event even if some lesions were not assessed:
    RECIST 1.1 lets PD be declared with targets missing). `adequate`: an evaluable response
    (not NE). `responded`: CR or PR (only duration of response reads it).
    """

    on: dt.date
    progressed: bool
    adequate: bool = True
    responded: bool = False
    seqs: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Outcome:
    """The analysis date of one endpoint and why it was chosen."""

    adt: dt.date
    cnsr: Cnsr
    evntdesc: str
    cnsdtdsc: str | None
    srcseqs: tuple[int, ...]


def missed_assessments_gap_days(params: ProtocolParameters) -> int:
    """Longest gap (days) between the last adequate assessment and PD/death that still counts
    the event: `missed_visits_censor × scan_interval_days + scan_window_days` (2 × 42 + 7 = 91).

    FDA 2018 guidance, appendix tables: death or progression after more than one missed visit
    is censored at the last adequate assessment. The k-th scheduled scan after an assessment
    on day d is due on d + k × interval and is missed once its window (+ window days) has passed
    without a scan, so an event later than d + N × interval + window follows N missed scans.
    NE timepoints are not adequate and so do not restart the count.
    """
    return params.missed_visits_censor * params.scan_interval_days + params.scan_window_days


def os_outcome(
    start: Dated, death: Dated | None, last_alive: Dated | None, cutoff: dt.date | None
) -> Outcome:
    """Overall survival (DOMAIN.md, OS): event = death of any cause; otherwise censored at the
    last date known alive, or at STARTDT when there was no contact after it (CNSR 6).

    The data cut-off caps everything: a death or a sign of life after the cut-off shows the
    patient alive on it, so the record is censored at the cut-off (CNSR 5).
    """
    if death is not None and (cutoff is None or death.on <= cutoff):
        return Outcome(death.on, Cnsr.EVENT, DEATH, None, death.seqs)
    if cutoff is not None and death is not None:  # died after the cut-off: alive on it
        return Outcome(cutoff, Cnsr.DATA_CUTOFF, "DEATH AFTER DATA CUT-OFF", CUTOFF, death.seqs)
    if cutoff is not None and last_alive is not None and last_alive.on > cutoff:
        return Outcome(cutoff, Cnsr.DATA_CUTOFF, "ALIVE AT DATA CUT-OFF", CUTOFF, last_alive.seqs)
    if last_alive is None or last_alive.on < start.on:
        return Outcome(start.on, Cnsr.LAST_KNOWN_ALIVE, "ALIVE", "STARTDT", start.seqs)
    return Outcome(
        last_alive.on, Cnsr.LAST_KNOWN_ALIVE, "ALIVE", "LAST KNOWN ALIVE DATE", last_alive.seqs
    )


def progression_outcome(
    origin: Assessment,
    assessments: Sequence[Assessment],
    death: Dated | None,
    therapy: Dated | None,
    params: ProtocolParameters,
) -> Outcome:
    """PFS / DOR from `origin` (STARTDT, or the first response): event = first PD or death.

    Rules, in order (DOMAIN.md "Time-to-event endpoints", FDA 2018 appendix tables):
    1. data after `params.data_cutoff` do not exist;
    2. subsequent anticancer therapy strictly before the event (or with no event) → censored
       at the last adequate assessment on or before the therapy start (CNSR 3);
    3. PD or death more than `missed_assessments_gap_days` after the last adequate assessment
       before it (or after the origin) → censored at that assessment (CNSR 4); so death before
       the first post-baseline scan is an event inside the window of the first missed scans;
    4. otherwise the event (PD wins a same-day tie with death; CNSR 0);
    5. no event → the last adequate assessment (CNSR 1, or 5 when the only PD/death lies after
       the cut-off), or the origin when there is none (CNSR 2).
    `origin.adequate` says whether the origin is itself an adequate assessment (a response,
    for DOR) or only the fallback date (STARTDT, for PFS). `assessments` lie after the origin.
    """
    cutoff = params.data_cutoff
    seen = sorted((a for a in assessments if cutoff is None or a.on <= cutoff), key=_on)
    adequate = [origin] if origin.adequate else []
    adequate += [a for a in seen if a.adequate and not a.progressed]
    events: list[tuple[dt.date, str, tuple[int, ...]]] = []
    first_pd = next((a for a in seen if a.progressed), None)
    if first_pd is not None:
        events.append((first_pd.on, PROGRESSION, first_pd.seqs))
    if death is not None and (cutoff is None or death.on <= cutoff):
        events.append((max(death.on, origin.on), DEATH, death.seqs))
    # min() keeps the first of equal dates: PD, listed first, wins a same-day tie with death.
    event = min(events, key=lambda e: e[0]) if events else None

    def censored(upto: dt.date, *, on_too: bool, cnsr: Cnsr, why: str) -> Outcome:
        last = [a for a in adequate if a.on < upto or (on_too and a.on == upto)]
        if last:
            return Outcome(last[-1].on, cnsr, why, LAST_ADEQUATE, last[-1].seqs)
        return Outcome(origin.on, cnsr, why, "STARTDT", origin.seqs)

    if (
        therapy is not None
        and (cutoff is None or therapy.on <= cutoff)
        and (event is None or therapy.on < event[0])
    ):
        return censored(
            therapy.on,
            on_too=True,
            cnsr=Cnsr.SUBSEQUENT_THERAPY,
            why="SUBSEQUENT ANTICANCER THERAPY BEFORE PD",
        )
    if event is not None:
        on, what, seqs = event
        before = [a.on for a in adequate if a.on < on]
        anchor = before[-1] if before else origin.on
        if (on - anchor).days > missed_assessments_gap_days(params):
            why = f"{what} AFTER {params.missed_visits_censor} OR MORE MISSED ASSESSMENTS"
            return censored(on, on_too=False, cnsr=Cnsr.MISSED_ASSESSMENTS, why=why)
        return Outcome(on, Cnsr.EVENT, what, None, seqs)
    late = _event_after_cutoff(assessments, death, cutoff)
    if late is not None:
        return censored(
            dt.date.max, on_too=True, cnsr=Cnsr.DATA_CUTOFF, why=f"{late} AFTER DATA CUT-OFF"
        )
    if adequate:
        return censored(
            dt.date.max,
            on_too=True,
            cnsr=Cnsr.LAST_ADEQUATE_ASSESSMENT,
            why="NO PROGRESSION, ALIVE",
        )
    return Outcome(
        origin.on,
        Cnsr.NO_ASSESSMENT,
        "NO ADEQUATE POST-BASELINE ASSESSMENT",
        "STARTDT",
        origin.seqs,
    )


def first_response(
    assessments: Sequence[Assessment], therapy: Dated | None, cutoff: dt.date | None
) -> Assessment | None:
    """The first CR/PR timepoint that opens a duration of response: evaluable, before the first
    PD, on or before any subsequent anticancer therapy and the data cut-off (the BOR window,
    DOMAIN.md "Best overall response and ORR")."""
    for a in sorted(assessments, key=_on):
        if a.progressed or (cutoff is not None and a.on > cutoff):
            return None
        if therapy is not None and a.on > therapy.on:
            return None
        if a.responded and a.adequate:
            return a
    return None


def _event_after_cutoff(
    assessments: Sequence[Assessment], death: Dated | None, cutoff: dt.date | None
) -> str | None:
    if cutoff is None:
        return None
    if any(a.progressed and a.on > cutoff for a in assessments):
        return PROGRESSION
    if death is not None and death.on > cutoff:
        return DEATH
    return None


def _on(assessment: Assessment) -> dt.date:
    return assessment.on
