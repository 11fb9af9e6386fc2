"""Best overall response, unconfirmed and confirmed, and the assessments it is chosen from.

DOMAIN.md "Best overall response and ORR": pharmaverse admiralonco `derive_param_bor` /
`derive_param_confirmed_bor` (their unit tests are the worked examples in
tests/unit/test_bor.py), over the analysis window — on or after STARTDT, on or before the
data cut-off, before subsequent anticancer therapy, up to the first PD, the worst read of a
date (`analysis_exclusions`, which also says why a timepoint is left out: ADRS ANL01FL).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from events import ProtocolParameters
from projections.common.calendar import add_days
from projections.criteria.recist import CR, NE, NON_CR_NON_PD, PD, PR, SD

if TYPE_CHECKING:
    from projections.criteria.response import TimepointResponse

MISSING = "MISSING"

# Why a timepoint is left out of the best-response window (`analysis_exclusions`).
NOT_TREATED = "not_treated"
BEFORE_STARTDT = "before_startdt"
AFTER_DATA_CUTOFF = "after_data_cutoff"
AFTER_SUBSEQUENT_THERAPY = "after_subsequent_therapy"
NOT_WORST_ON_DATE = "not_worst_on_date"
AFTER_FIRST_PD = "after_first_pd"

# admiralonco ADRS template `worst_resp()`: several reads on one date keep the worst, and
# any real response outranks NE.
_WORST_ON_A_DATE = {NE: 1, CR: 2, PR: 3, SD: 4, NON_CR_NON_PD: 5, PD: 6}
# admiralonco `aval_resp()`: best first.
_BEST = {CR: 1, PR: 2, SD: 3, NON_CR_NON_PD: 4, PD: 5, NE: 6}


@dataclass(frozen=True, slots=True)
class BestResponse:
    """A best overall response and the assessment it comes from (none for MISSING)."""

    response: str
    occurred_on: dt.date | None = None
    seq: int | None = None


def analysis_exclusions(
    timepoints: Sequence[TimepointResponse],
    startdt: dt.date | None,
    subsequent_therapy_on: dt.date | None = None,
    data_cutoff: dt.date | None = None,
) -> dict[int, str | None]:
    """Per timepoint seq, why it is not among the assessments a best response is chosen from
    — None when it is (ADRS ANL01FL = "Y"). DOMAIN.md "Best overall response", "Time origin".

    In order: `not_treated` (no STARTDT on or before the cut-off), `before_startdt`,
    `after_data_cutoff` (the cut-off censors everything after it), `after_subsequent_therapy`
    (on or after the first subsequent anticancer therapy), `not_worst_on_date` (several reads
    on one date keep the worst, admiralonco `worst_resp`), `after_first_pd`.
    """
    treated = startdt is not None and (data_cutoff is None or startdt <= data_cutoff)
    reasons: dict[int, str | None] = {}
    by_date: dict[dt.date, TimepointResponse] = {}
    for tp in timepoints:
        if not treated or startdt is None:
            reasons[tp.seq] = NOT_TREATED
        elif tp.occurred_on < startdt:
            reasons[tp.seq] = BEFORE_STARTDT
        elif data_cutoff is not None and tp.occurred_on > data_cutoff:
            reasons[tp.seq] = AFTER_DATA_CUTOFF
        elif subsequent_therapy_on is not None and tp.occurred_on >= subsequent_therapy_on:
            reasons[tp.seq] = AFTER_SUBSEQUENT_THERAPY
        else:
            kept = by_date.get(tp.occurred_on)
            if kept is None or _WORST_ON_A_DATE[tp.overall] > _WORST_ON_A_DATE[kept.overall]:
                if kept is not None:
                    reasons[kept.seq] = NOT_WORST_ON_DATE
                by_date[tp.occurred_on] = tp
                reasons[tp.seq] = None
            else:
                reasons[tp.seq] = NOT_WORST_ON_DATE
    progressed = False
    for day in sorted(by_date):
        if progressed:
            reasons[by_date[day].seq] = AFTER_FIRST_PD
        progressed = progressed or by_date[day].overall == PD
    return reasons


def evaluable_timepoints(
    timepoints: Sequence[TimepointResponse],
    startdt: dt.date | None,
    subsequent_therapy_on: dt.date | None = None,
    data_cutoff: dt.date | None = None,
) -> tuple[TimepointResponse, ...]:
    """The assessments a best response is chosen from (DOMAIN.md "Best overall response"),
    in date order: those `analysis_exclusions` does not exclude.

    On or after STARTDT, on or before the data cut-off, strictly before the first subsequent
    anticancer therapy, up to and including the first PD; of several reads on one date the
    worst is kept. A patient without STARTDT (or treated after the cut-off) has none.
    """
    reasons = analysis_exclusions(timepoints, startdt, subsequent_therapy_on, data_cutoff)
    kept = [tp for tp in timepoints if reasons[tp.seq] is None]
    return tuple(sorted(kept, key=lambda tp: tp.occurred_on))


def best_response(
    timepoints: Sequence[TimepointResponse],
    startdt: dt.date | None,
    params: ProtocolParameters,
    subsequent_therapy_on: dt.date | None = None,
) -> BestResponse:
    """Unconfirmed best overall response (admiralonco `derive_param_bor`).

    Order CR, PR, SD, NON-CR/NON-PD, PD, NE, MISSING; SD and NON-CR/NON-PD count only on or
    after STARTDT + `sd_min_days`, earlier they are NE. Ties go to the earliest assessment.
    """
    window = evaluable_timepoints(timepoints, startdt, subsequent_therapy_on, params.data_cutoff)
    if startdt is None or not window:
        return BestResponse(MISSING)
    sd_from = add_days(startdt, params.sd_min_days)

    def rank(tp: TimepointResponse) -> tuple[int, dt.date]:
        early = tp.overall in (SD, NON_CR_NON_PD) and tp.occurred_on < sd_from
        return (_BEST[NE] if early else _BEST[tp.overall], tp.occurred_on)

    best = min(window, key=rank)
    response = NE if rank(best)[0] == _BEST[NE] else best.overall
    return BestResponse(response, best.occurred_on, best.seq)


def confirmed_best_response(
    timepoints: Sequence[TimepointResponse],
    startdt: dt.date | None,
    params: ProtocolParameters,
    subsequent_therapy_on: dt.date | None = None,
) -> BestResponse:
    """Confirmed best overall response (admiralonco `derive_param_confirmed_bor`).

    CR: a later CR ≥ `confirm_days` after it, only CR/NE in between, ≤ `max_ne_between` NE.
    PR: a later CR/PR ≥ `confirm_days` after it, only CR/PR/NE in between (the confirming
    read included), ≤ `max_ne_between` NE and no PR after a CR. Otherwise the SD rules
    apply: an unconfirmed CR/PR on or after STARTDT + `sd_min_days` counts as SD, before it
    as NE. Ties go to the earliest assessment.
    """
    window = evaluable_timepoints(timepoints, startdt, subsequent_therapy_on, params.data_cutoff)
    if startdt is None or not window:
        return BestResponse(MISSING)
    sd_from = add_days(startdt, params.sd_min_days)
    candidates: list[tuple[int, dt.date, str, int]] = []
    for index, tp in enumerate(window):
        late = tp.occurred_on >= sd_from
        if tp.overall == CR and _confirmed(window, index, {CR}, {CR, NE}, params):
            response = CR
        elif tp.overall == PR and _confirmed(window, index, {CR, PR}, {CR, PR, NE}, params):
            response = PR
        elif tp.overall in (CR, PR, SD):
            response = SD if late else NE
        elif tp.overall == NON_CR_NON_PD:
            response = NON_CR_NON_PD if late else NE
        else:
            response = tp.overall
        candidates.append((_BEST[response], tp.occurred_on, response, tp.seq))
    _, day, response, seq = min(candidates)
    return BestResponse(response, day, seq)


def confirmed_responses(
    timepoints: Sequence[TimepointResponse],
    startdt: dt.date | None,
    params: ProtocolParameters,
    subsequent_therapy_on: dt.date | None = None,
) -> tuple[TimepointResponse, ...]:
    """The CR and PR timepoints of the BOR window that a later read confirms, by the rules of
    `confirmed_best_response`; the first opens the confirmed duration of response
    (admiralonco `derive_param_confirmed_resp`)."""
    window = evaluable_timepoints(timepoints, startdt, subsequent_therapy_on, params.data_cutoff)
    return tuple(
        tp
        for index, tp in enumerate(window)
        if (tp.overall == CR and _confirmed(window, index, {CR}, {CR, NE}, params))
        or (tp.overall == PR and _confirmed(window, index, {CR, PR}, {CR, PR, NE}, params))
    )


def _confirmed(
    window: Sequence[TimepointResponse],
    index: int,
    confirming: set[str],
    allowed: set[str],
    params: ProtocolParameters,
) -> bool:
    due = add_days(window[index].occurred_on, params.confirm_days)
    for end in range(index + 1, len(window)):
        if window[end].overall in confirming and window[end].occurred_on >= due:
            joined = window[index + 1 : end + 1]
            break
    else:
        return False
    calls = [tp.overall for tp in joined]
    if any(call not in allowed for call in calls) or calls.count(NE) > params.max_ne_between:
        return False
    cr_dates = [tp.occurred_on for tp in joined if tp.overall == CR]
    pr_dates = [tp.occurred_on for tp in joined if tp.overall == PR]
    return not (cr_dates and pr_dates and min(cr_dates) < max(pr_dates))
