"""A patient's tumour response per timepoint and best overall response, per criterion.

Criteria: RECIST 1.1 (recist.py), mRECIST (mrecist.py) and PVTT (pvtt.py); DOMAIN.md "Tumour
response per timepoint" and "Best overall response and ORR". Best overall response follows
pharmaverse admiralonco `derive_param_bor` / `derive_param_confirmed_bor`: its unit tests are
the worked examples in tests/unit/test_bor.py; the rules live in `projections.criteria.best_response`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from events import ProtocolParameters, ScanRead
from projections.criteria.baseline import (
    NO_BASELINE,
    NO_MEASURABLE_DISEASE,
    unusable_baseline_flag,
    usable_as_baseline,
)
from projections.criteria.best_response import (
    MISSING as MISSING,  # re-exported: one import for callers
)
from projections.criteria.best_response import (
    BestResponse,
    analysis_exclusions,
    best_response,
    confirmed_best_response,
    evaluable_timepoints,
)
from projections.criteria.best_response import confirmed_responses as confirmed_responses
from projections.criteria.mrecist import MRecist
from projections.criteria.pvtt import assess_pvtt, has_pvtt
from projections.criteria.recist import (
    Assessment,
    Recist,
    assess_lesions,
    select_baseline,
    tenths,
)
from projections.fold.history import Effective

RECIST, MRECIST, PVTT = "RECIST 1.1", "mRECIST", "PVTT"
CRITERIA = (RECIST, MRECIST, PVTT)


@dataclass(frozen=True, slots=True)
class TimepointResponse:
    """One criterion's response at one follow-up scan, with the scan's ledger seq.

    `target_sum_mm` is the sum of target diameters (viable ones for mRECIST, the thrombus
    diameter for PVTT), None unless every target was measured. `pd_date` (PD only) is the
    date the progression is dated from: the first sighting of the new lesion behind it when
    that is earlier (an equivocal lesion confirmed later, or one already counted before).
    """

    criterion: str
    occurred_on: dt.date
    seq: int
    target_response: str | None
    non_target_response: str | None
    new_lesion: bool
    overall: str
    target_sum_mm: Decimal | None
    pct_change_from_baseline: float | None
    pct_change_from_nadir: float | None
    pd_date: dt.date | None
    intrahepatic_pd: bool
    extrahepatic_pd: bool
    reader_call: str | None
    disagrees: bool
    flags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CriterionBaseline:
    """What the baseline scan gives one criterion; `measurable` decides the ORR denominator."""

    criterion: str
    target_sum_mm: Decimal | None
    measurable: bool
    has_disease: bool
    flags: tuple[str, ...]


@dataclass(frozen=True)
class PatientResponses:
    """Everything the response engine derives for one patient."""

    startdt: dt.date | None
    subsequent_therapy_on: dt.date | None
    params: ProtocolParameters
    baseline_seq: int | None
    baseline_on: dt.date | None
    has_pvtt: bool
    baselines: Mapping[str, CriterionBaseline]
    timepoints: Mapping[str, tuple[TimepointResponse, ...]]

    def measurable(self, criterion: str) -> bool:
        return self.baselines[criterion].measurable

    def exclusions(self, criterion: str) -> dict[int, str | None]:
        """Per timepoint seq, why it is not analysed (None: it is); `analysis_exclusions`."""
        return analysis_exclusions(
            self.timepoints[criterion],
            self.startdt,
            self.subsequent_therapy_on,
            self.params.data_cutoff,
        )

    def best_response(self, criterion: str) -> BestResponse:
        return best_response(
            self.timepoints[criterion], self.startdt, self.params, self.subsequent_therapy_on
        )

    def confirmed_best_response(self, criterion: str) -> BestResponse:
        return confirmed_best_response(
            self.timepoints[criterion], self.startdt, self.params, self.subsequent_therapy_on
        )

    def best_pct_change(self, criterion: str) -> float | None:
        """The deepest change of the target sum from baseline (the waterfall bar)."""
        window = evaluable_timepoints(
            self.timepoints[criterion],
            self.startdt,
            self.subsequent_therapy_on,
            self.params.data_cutoff,
        )
        changes = [tp.pct_change_from_baseline for tp in window]
        present = [change for change in changes if change is not None]
        return min(present) if present else None


def assess_patient(
    scans: Sequence[Effective],
    startdt: dt.date | None,
    params: ProtocolParameters,
    subsequent_therapy_on: dt.date | None = None,
    enrolled_on: dt.date | None = None,
) -> PatientResponses:
    """Responses per criterion at every follow-up scan of one patient's effective history.

    Entries that are not scan reads are ignored. Scans are taken in clinical-date order
    (then seq), whatever order they were entered in. Every criterion's baseline carries its
    flags (`projections.criteria.baseline`): no usable baseline and why, RECIST 1.1 §3 selection
    breaches, no measurable disease.
    """
    reads = sorted(_scan_reads(scans), key=lambda read: (read[1].occurred_on, read[0]))
    base = baseline_scan(reads, startdt, params, enrolled_on)
    missing = () if base is not None else _no_baseline_flags(reads, startdt, params, enrolled_on)
    follow_ups = _follow_ups(reads, base, startdt)
    dated = [(scan.occurred_on, scan.data) for _, scan in follow_ups]
    baselines: dict[str, CriterionBaseline] = {}
    timepoints: dict[str, tuple[TimepointResponse, ...]] = {}
    rules: Recist
    for rules in (Recist.from_parameters(params), MRecist.from_parameters(params)):
        lesions = None if base is None else select_baseline(rules, base[1].data)
        measurable = lesions is not None and lesions.measurable
        baselines[rules.name] = CriterionBaseline(
            criterion=rules.name,
            target_sum_mm=_mm(None if lesions is None else lesions.target_sum),
            measurable=measurable,
            has_disease=lesions is not None and lesions.has_disease,
            flags=missing
            if lesions is None
            else (*lesions.flags, *(() if measurable else (NO_MEASURABLE_DISEASE,))),
        )
        assessed = assess_lesions(rules, lesions, dated, params)
        timepoints[rules.name] = _timepoints(rules.name, follow_ups, assessed)
    pvtt = base[1].data.pvtt if base is not None and has_pvtt(base[1].data) else None
    baselines[PVTT] = CriterionBaseline(
        criterion=PVTT,
        target_sum_mm=_mm(
            None
            if pvtt is None or pvtt.thrombus_diameter_mm is None
            else tenths(pvtt.thrombus_diameter_mm)
        ),
        measurable=pvtt is not None,
        has_disease=pvtt is not None,
        flags=() if pvtt is not None else (*missing, "no_baseline_pvtt"),
    )
    timepoints[PVTT] = (
        () if pvtt is None else _timepoints(PVTT, follow_ups, assess_pvtt(pvtt, dated, params))
    )
    return PatientResponses(
        startdt=startdt,
        subsequent_therapy_on=subsequent_therapy_on,
        params=params,
        baseline_seq=None if base is None else base[0],
        baseline_on=None if base is None else base[1].occurred_on,
        has_pvtt=pvtt is not None,
        baselines=baselines,
        timepoints=timepoints,
    )


def baseline_scan(
    reads: Sequence[tuple[int, ScanRead]],
    startdt: dt.date | None,
    params: ProtocolParameters,
    enrolled_on: dt.date | None = None,
) -> tuple[int, ScanRead] | None:
    """The baseline: the last scan on or before STARTDT inside the screening window, which
    opens `screening_window_days` before the earlier of enrollment and STARTDT — the window
    the intake accepts baseline scans in (`projections.criteria.baseline`; DOMAIN.md "Time origin");
    without a STARTDT, the first scan the site marked as baseline. `reads` are in (date,
    seq) order."""
    if startdt is None:
        marked = [read for read in reads if read[1].data.timepoint == "baseline"]
        return marked[0] if marked else None
    window = [
        read
        for read in reads
        if usable_as_baseline(read[1].occurred_on, enrolled_on, startdt, params)
    ]
    return window[-1] if window else None


def _no_baseline_flags(
    reads: Sequence[tuple[int, ScanRead]],
    startdt: dt.date | None,
    params: ProtocolParameters,
    enrolled_on: dt.date | None,
) -> tuple[str, ...]:
    """No usable baseline, and why each scan the site marked as baseline cannot serve."""
    marked = [scan for _, scan in reads if scan.data.timepoint == "baseline"]
    why = [unusable_baseline_flag(s.occurred_on, enrolled_on, startdt, params) for s in marked]
    return (NO_BASELINE, *(flag for flag in why if flag is not None))


def _scan_reads(entries: Sequence[Effective]) -> list[tuple[int, ScanRead]]:
    reads: list[tuple[int, ScanRead]] = []
    for entry in entries:
        match entry.event:
            case ScanRead() as scan:
                reads.append((entry.seq, scan))
            case _:
                pass
    return reads


def _follow_ups(
    reads: Sequence[tuple[int, ScanRead]],
    base: tuple[int, ScanRead] | None,
    startdt: dt.date | None,
) -> list[tuple[int, ScanRead]]:
    if base is not None:
        return [read for read in reads if read[1].occurred_on > base[1].occurred_on]
    if startdt is not None:
        return [read for read in reads if read[1].occurred_on > startdt]
    return [read for read in reads if read[1].data.timepoint != "baseline"]


def _timepoints(
    criterion: str,
    follow_ups: Sequence[tuple[int, ScanRead]],
    assessed: Sequence[Assessment],
) -> tuple[TimepointResponse, ...]:
    return tuple(
        _timepoint(criterion, seq, scan, assessment)
        for (seq, scan), assessment in zip(follow_ups, assessed, strict=True)
    )


def _timepoint(criterion: str, seq: int, scan: ScanRead, a: Assessment) -> TimepointResponse:
    calls = scan.data.reader_calls
    call = {RECIST: calls.recist, MRECIST: calls.mrecist, PVTT: calls.pvtt}[criterion]
    disagrees = call is not None and call != a.overall
    return TimepointResponse(
        criterion=criterion,
        occurred_on=scan.occurred_on,
        seq=seq,
        target_response=a.target_response,
        non_target_response=a.non_target_response,
        new_lesion=a.new_lesion,
        overall=a.overall,
        target_sum_mm=_mm(a.target_sum),
        pct_change_from_baseline=_percent(a.pct_from_baseline),
        pct_change_from_nadir=_percent(a.pct_from_nadir),
        pd_date=a.pd_date,
        intrahepatic_pd=a.intrahepatic_pd,
        extrahepatic_pd=a.extrahepatic_pd,
        reader_call=call,
        disagrees=disagrees,
        flags=(*a.flags, "reader_disagrees") if disagrees else a.flags,
    )


def _mm(value_tenths: int | None) -> Decimal | None:
    return None if value_tenths is None else Decimal(value_tenths).scaleb(-1)


def _percent(value: Fraction | None) -> float | None:
    return None if value is None else float(value)
