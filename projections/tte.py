"""Time-to-event endpoints: OS, the PFS family and duration of response, as ADTTE records.

DOMAIN.md "Time origin and units" and "Time-to-event endpoints". The general rule is admiral's
`derive_param_tte`: the earliest qualifying event wins; otherwise the latest censoring date;
an event beats a censoring on the same date; ADT ≥ STARTDT; AVAL = ADT − STARTDT + 1 days.
The inputs are small values (`PatientCourse`, `Assessment`) so this module does not depend on
how tumour responses are computed; `projections.tte_rules.course_from_history` reads a
`PatientCourse` from a patient's effective history.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Literal

from events import ProtocolParameters

DAYS_PER_MONTH = 30.4375

TteParamcd = Literal["OS", "PFS", "PFSRECIST", "PFSIH", "PFSEH", "PFSPVTT", "DOR"]
PfsParamcd = Literal["PFS", "PFSRECIST", "PFSIH", "PFSEH", "PFSPVTT"]

PARAM_LABELS: dict[TteParamcd, str] = {
    "OS": "Overall Survival",
    "PFS": "Progression-Free Survival per mRECIST",
    "PFSRECIST": "Progression-Free Survival per RECIST 1.1",
    "PFSIH": "Intrahepatic Progression-Free Survival per mRECIST",
    "PFSEH": "Extrahepatic Progression-Free Survival",
    "PFSPVTT": "Progression-Free Survival of PVTT",
    "DOR": "Duration of Response",
}

DEATH = "DEATH"
PROGRESSION = "DISEASE PROGRESSION"


class Cnsr(IntEnum):
    """ADTTE CNSR: 0 is an event; each positive code says why the record is censored.

    | code | reason                                                   | ADT (CNSDTDSC)               |
    |------|----------------------------------------------------------|------------------------------|
    | 0    | event: death (OS); first PD or death (PFS, DOR)           | event date                   |
    | 1    | no PD, alive                                             | last adequate assessment     |
    | 2    | no baseline / no adequate post-baseline assessment       | STARTDT                      |
    | 3    | subsequent anticancer therapy before PD                  | last adequate assessment on  |
    |      |                                                          | or before the therapy start  |
    | 4    | PD or death after ≥ `missed_visits_censor` missed scans  | last adequate assessment     |
    |      |                                                          | before the gap (or STARTDT)  |
    | 5    | the event (or the alive evidence) lies after the cut-off | cut-off (OS); last adequate  |
    |      |                                                          | assessment on/before (PFS)   |
    | 6    | alive (OS)                                               | last known alive date        |
    """

    EVENT = 0
    LAST_ADEQUATE_ASSESSMENT = 1
    NO_ASSESSMENT = 2
    SUBSEQUENT_THERAPY = 3
    MISSED_ASSESSMENTS = 4
    DATA_CUTOFF = 5
    LAST_KNOWN_ALIVE = 6


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
class PatientCourse:
    """The dates a patient's time-to-event endpoints are derived from, with their ledger seqs.

    `baseline_assessment_on` is the scan the PFS rules need; a caller whose criterion has its
    own baseline (PVTT, say) passes `dataclasses.replace(course, baseline_assessment_on=...)`.
    `last_known_alive_on` is the latest clinical date of any event of the living patient.
    """

    trial_id: str
    site_id: str
    patient_id: str
    startdt: dt.date | None
    startdt_seqs: tuple[int, ...] = ()
    baseline_assessment_on: dt.date | None = None
    death_on: dt.date | None = None
    death_seqs: tuple[int, ...] = ()
    last_known_alive_on: dt.date | None = None
    last_known_alive_seqs: tuple[int, ...] = ()
    subsequent_therapy_on: dt.date | None = None
    subsequent_therapy_seqs: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class TteRecord:
    """One ADTTE parameter of one patient. `startdt` is the endpoint's origin (for DOR the
    first response); `srcseqs` are the ledger seqs of the event or censoring source."""

    trial_id: str
    site_id: str
    patient_id: str
    paramcd: TteParamcd
    param: str
    startdt: dt.date
    adt: dt.date
    cnsr: Cnsr
    evntdesc: str
    cnsdtdsc: str | None
    srcseqs: tuple[int, ...]

    @property
    def aval(self) -> int:
        """Days, admiral convention: ADT − STARTDT + 1."""
        return study_day(self.startdt, self.adt)

    @property
    def is_event(self) -> bool:
        return self.cnsr is Cnsr.EVENT


def study_day(start: dt.date, on: dt.date) -> int:
    """Day number counting the start date as day 1 (CDISC --DY for dates on/after start)."""
    return (on - start).days + 1


def months(days: float) -> float:
    """Days as months for display: days / 30.4375 (DOMAIN.md "Time origin and units")."""
    return days / DAYS_PER_MONTH


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


def derive_os(course: PatientCourse, params: ProtocolParameters) -> TteRecord | None:
    """Overall survival (DOMAIN.md "Time-to-event endpoints", OS).

    Event = death of any cause. Otherwise censored at the last date known alive (CNSR 6),
    or at STARTDT when there was no contact after it. The data cut-off caps everything: a
    death or a sign of life after the cut-off shows the patient alive on it, so the record is
    censored at the cut-off (CNSR 5). A patient never treated (no STARTDT, or STARTDT after the
    cut-off) is not in the treated population: no record.
    """
    start = course.startdt
    cutoff = params.data_cutoff
    if start is None or (cutoff is not None and start > cutoff):
        return None
    record = _recorder(course, "OS", start)
    death = course.death_on
    if death is not None and (cutoff is None or death <= cutoff):
        return record(death, Cnsr.EVENT, DEATH, None, course.death_seqs)
    alive = course.last_known_alive_on
    if cutoff is not None and death is not None:
        return record(cutoff, Cnsr.DATA_CUTOFF, "DEATH AFTER DATA CUT-OFF", "DATA CUT-OFF",
                      course.death_seqs)
    if cutoff is not None and alive is not None and alive > cutoff:
        return record(cutoff, Cnsr.DATA_CUTOFF, "ALIVE AT DATA CUT-OFF", "DATA CUT-OFF",
                      course.last_known_alive_seqs)
    if alive is None or alive <= start:
        return record(start, Cnsr.LAST_KNOWN_ALIVE, "ALIVE", "STARTDT", course.startdt_seqs)
    return record(alive, Cnsr.LAST_KNOWN_ALIVE, "ALIVE", "LAST KNOWN ALIVE DATE",
                  course.last_known_alive_seqs)


def derive_pfs(
    course: PatientCourse,
    assessments: Iterable[Assessment],
    params: ProtocolParameters,
    paramcd: PfsParamcd = "PFS",
    *,
    eligible: bool = True,
) -> TteRecord | None:
    """Progression-free survival (DOMAIN.md "Time-to-event endpoints"; FDA 2018 guidance).

    One machine for PFS (mRECIST), PFSRECIST, PFSIH, PFSEH and PFSPVTT: the caller passes the
    timepoints of the matching criterion and `eligible=False` for a patient outside the
    endpoint's population (PFSPVTT: no baseline PVTT) — no record then, as for the untreated.
    Event = first PD or death; PD wins a tie with death on the same day. Censoring, in order:
    no baseline assessment → STARTDT (CNSR 2, even if the patient died: FDA table, first row);
    subsequent anticancer therapy before the event → last adequate assessment on or before the
    therapy start (CNSR 3); PD/death more than `missed_assessments_gap_days` after the last
    adequate assessment (or STARTDT) → that assessment (CNSR 4) — so death before the first
    post-baseline scan is an event when it falls inside the window of the first missed scans;
    no event → last adequate assessment (CNSR 1), STARTDT if none (CNSR 2), CNSR 5 when the
    only PD/death lies after the data cut-off. Timepoints on or before STARTDT are baseline.
    """
    start = course.startdt
    cutoff = params.data_cutoff
    if not eligible or start is None or (cutoff is not None and start > cutoff):
        return None
    if course.baseline_assessment_on is None:
        return _recorder(course, paramcd, start)(
            start, Cnsr.NO_ASSESSMENT, "NO BASELINE ASSESSMENT", "STARTDT", course.startdt_seqs)
    later = [a for a in assessments if a.on > start]
    origin = Assessment(start, progressed=False, adequate=False, seqs=course.startdt_seqs)
    return _progression_record(course, paramcd, origin, later, params)


def derive_dor(
    course: PatientCourse,
    assessments: Iterable[Assessment],
    params: ProtocolParameters,
) -> TteRecord | None:
    """Duration of response (DOMAIN.md, optional endpoint; admiralonco DOR).

    Responders only: origin = the first CR/PR timepoint (`responded`) after STARTDT, before the
    first PD and on or before any subsequent anticancer therapy, on or before the cut-off.
    From there the PFS rules apply unchanged (event = PD or death; therapy, missed-scan and
    cut-off censoring); the response itself is the first adequate assessment, so a responder
    with nothing after it is censored at the response date (AVAL 1).
    """
    start = course.startdt
    cutoff = params.data_cutoff
    if start is None or (cutoff is not None and start > cutoff):
        return None
    ordered = sorted((a for a in assessments if a.on > start), key=lambda a: a.on)
    therapy = course.subsequent_therapy_on
    first: Assessment | None = None
    for a in ordered:
        if a.progressed or (cutoff is not None and a.on > cutoff):
            break
        if therapy is not None and a.on > therapy:
            break
        if a.responded and a.adequate:
            first = a
            break
    if first is None:
        return None
    later = [a for a in ordered if a.on > first.on]
    return _progression_record(course, "DOR", first, later, params)


def _progression_record(
    course: PatientCourse,
    paramcd: TteParamcd,
    origin: Assessment,
    assessments: Sequence[Assessment],
    params: ProtocolParameters,
) -> TteRecord:
    """The shared PFS/DOR censoring rules from `origin` (STARTDT, or the first response).

    `origin.adequate` says whether the origin is itself an adequate assessment (DOR) or only
    the fallback censoring date (PFS: STARTDT).
    """
    cutoff = params.data_cutoff
    record = _recorder(course, paramcd, origin.on)
    seen = sorted(
        (a for a in assessments if cutoff is None or a.on <= cutoff), key=lambda a: a.on)
    adequate = [origin] if origin.adequate else []
    adequate += [a for a in seen if a.adequate and not a.progressed]
    events: list[tuple[dt.date, str, tuple[int, ...]]] = []
    first_pd = next((a for a in seen if a.progressed), None)
    if first_pd is not None:
        events.append((first_pd.on, PROGRESSION, first_pd.seqs))
    death = course.death_on
    if death is not None and (cutoff is None or death <= cutoff):
        events.append((max(death, origin.on), DEATH, course.death_seqs))
    # min() keeps the first of equal dates: PD, listed first, wins a same-day tie with death.
    event = min(events, key=lambda e: e[0]) if events else None

    def censor_at_last_adequate(upto: dt.date, inclusive: bool, cnsr: Cnsr, why: str) -> TteRecord:
        last = [a for a in adequate if a.on < upto or (inclusive and a.on == upto)]
        if last:
            return record(last[-1].on, cnsr, why, "LAST ADEQUATE ASSESSMENT", last[-1].seqs)
        return record(origin.on, cnsr, why, "STARTDT", origin.seqs)

    therapy = course.subsequent_therapy_on
    if therapy is not None and (cutoff is None or therapy <= cutoff) and (
        event is None or therapy < event[0]
    ):
        return censor_at_last_adequate(
            therapy, True, Cnsr.SUBSEQUENT_THERAPY, "SUBSEQUENT ANTICANCER THERAPY BEFORE PD")
    if event is not None:
        on, what, seqs = event
        before = [a.on for a in adequate if a.on < on]
        anchor = before[-1] if before else origin.on
        if (on - anchor).days > missed_assessments_gap_days(params):
            why = f"{what} AFTER {params.missed_visits_censor} OR MORE MISSED ASSESSMENTS"
            return censor_at_last_adequate(on, False, Cnsr.MISSED_ASSESSMENTS, why)
        return record(on, Cnsr.EVENT, what, None, seqs)
    late = _first_event_after_cutoff(course, assessments, cutoff)
    if late is not None:
        return censor_at_last_adequate(
            dt.date.max, True, Cnsr.DATA_CUTOFF, f"{late} AFTER DATA CUT-OFF")
    if adequate:
        return censor_at_last_adequate(
            dt.date.max, True, Cnsr.LAST_ADEQUATE_ASSESSMENT, "NO PROGRESSION, ALIVE")
    return record(origin.on, Cnsr.NO_ASSESSMENT, "NO ADEQUATE POST-BASELINE ASSESSMENT",
                  "STARTDT", origin.seqs)


def _first_event_after_cutoff(
    course: PatientCourse, assessments: Sequence[Assessment], cutoff: dt.date | None
) -> str | None:
    if cutoff is None:
        return None
    if any(a.progressed and a.on > cutoff for a in assessments):
        return PROGRESSION
    if course.death_on is not None and course.death_on > cutoff:
        return DEATH
    return None


class _Recorder:
    """Builds the patient's records for one parameter from one origin; ADT ≥ origin always."""

    def __init__(self, course: PatientCourse, paramcd: TteParamcd, origin: dt.date) -> None:
        self.course, self.paramcd, self.origin = course, paramcd, origin

    def __call__(
        self, adt: dt.date, cnsr: Cnsr, evntdesc: str, cnsdtdsc: str | None,
        srcseqs: tuple[int, ...],
    ) -> TteRecord:
        c = self.course
        return TteRecord(
            trial_id=c.trial_id, site_id=c.site_id, patient_id=c.patient_id,
            paramcd=self.paramcd, param=PARAM_LABELS[self.paramcd], startdt=self.origin,
            adt=max(adt, self.origin), cnsr=cnsr, evntdesc=evntdesc, cnsdtdsc=cnsdtdsc,
            srcseqs=srcseqs,
        )


_recorder = _Recorder
