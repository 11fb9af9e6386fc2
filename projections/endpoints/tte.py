"""Time-to-event endpoints: OS, the PFS family and duration of response, as ADTTE records.

DOMAIN.md "Time origin and units" and "Time-to-event endpoints": STARTDT is the first dose of
any study agent; AVAL = ADT − STARTDT + 1 days (admiral); ADT ≥ STARTDT. The censoring rules
themselves live in `projections.endpoints.tte_rules`. The inputs are small values (`PatientCourse`,
`Assessment`), so this module does not depend on how tumour responses are computed;
`course_from_history` reads a `PatientCourse` from a patient's effective history.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from events import (
    Death,
    DoseModified,
    Enrolled,
    EventCorrected,
    EventRetracted,
    InfusionGiven,
    LedgerEvent,
    LedgerSealed,
    ProtocolParameters,
    ProtocolParametersSet,
    SaeAcknowledged,
    ScanRead,
    SubsequentTherapyStarted,
    Withdrawn,
)
from projections.common.memo import PrefixMemo
from projections.criteria.baseline import usable_as_baseline
from projections.endpoints.tte_rules import (
    Assessment,
    Cnsr,
    Dated,
    Outcome,
    first_response,
    missed_assessments_gap_days,
    os_outcome,
    progression_outcome,
)
from projections.fold.history import Effective

__all__ = [
    "DAYS_PER_MONTH",
    "PARAM_LABELS",
    "Assessment",
    "Cnsr",
    "PatientCourse",
    "PfsParamcd",
    "TteParamcd",
    "TteRecord",
    "course_from_history",
    "derive_dor",
    "derive_os",
    "derive_pfs",
    "missed_assessments_gap_days",
    "months",
    "study_day",
]

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


def derive_os(course: PatientCourse, params: ProtocolParameters) -> TteRecord | None:
    """Overall survival (DOMAIN.md "Time-to-event endpoints", OS).

    Event = death of any cause. Otherwise censored at the last date known alive (CNSR 6),
    or at STARTDT when there was no contact after it; a death or a sign of life after the data
    cut-off censors at the cut-off (CNSR 5). A patient never treated (no STARTDT, or STARTDT
    after the cut-off) is not in the treated population: no record.
    """
    start = _treated_start(course, params)
    if start is None:
        return None
    outcome = os_outcome(
        Dated(start, course.startdt_seqs),
        _dated(course.death_on, course.death_seqs),
        _dated(course.last_known_alive_on, course.last_known_alive_seqs),
        params.data_cutoff,
    )
    return _record(course, "OS", start, outcome)


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
    No baseline assessment → censored at STARTDT (CNSR 2), even if the patient died: the FDA
    table's first row. Otherwise `tte_rules.progression_outcome` from STARTDT (event = first PD
    or death; censoring for subsequent therapy, missed scans, cut-off). Timepoints on or before
    STARTDT are baseline and ignored.
    """
    start = _treated_start(course, params)
    if not eligible or start is None:
        return None
    if course.baseline_assessment_on is None:
        no_baseline = Outcome(
            start, Cnsr.NO_ASSESSMENT, "NO BASELINE ASSESSMENT", "STARTDT", course.startdt_seqs
        )
        return _record(course, paramcd, start, no_baseline)
    origin = Assessment(start, progressed=False, adequate=False, seqs=course.startdt_seqs)
    outcome = progression_outcome(
        origin,
        [a for a in assessments if a.on > start],
        _dated(course.death_on, course.death_seqs),
        _dated(course.subsequent_therapy_on, course.subsequent_therapy_seqs),
        params,
    )
    return _record(course, paramcd, start, outcome)


def derive_dor(
    course: PatientCourse,
    assessments: Iterable[Assessment],
    params: ProtocolParameters,
) -> TteRecord | None:
    """Duration of response (DOMAIN.md, optional endpoint; admiralonco DOR): responders only.

    Origin = the first CR/PR timepoint after STARTDT within the BOR window
    (`tte_rules.first_response`); from there the PFS rules apply unchanged. The response is
    itself an adequate assessment, so a responder with nothing after it is censored at the
    response date (AVAL 1). For confirmed-response DOR, mark `responded` only on confirmed
    timepoints.
    """
    start = _treated_start(course, params)
    if start is None:
        return None
    therapy = _dated(course.subsequent_therapy_on, course.subsequent_therapy_seqs)
    after_start = [a for a in assessments if a.on > start]
    response = first_response(after_start, therapy, params.data_cutoff)
    if response is None:
        return None
    outcome = progression_outcome(
        response,
        [a for a in after_start if a.on > response.on],
        _dated(course.death_on, course.death_seqs),
        therapy,
        params,
    )
    return _record(course, "DOR", response.on, outcome)


def course_from_history(
    events: Iterable[Effective], params: ProtocolParameters
) -> PatientCourse | None:
    """A patient's course from the effective history (DOMAIN.md "Time origin and units").

    STARTDT = earliest HAIC or PD-1 infusion or lenvatinib start. Baseline scan = the last
    `scan_read` on or before STARTDT inside the screening window (`projections.criteria.baseline`:
    from `screening_window_days` before the earlier of enrollment and STARTDT). Last known
    alive = latest clinical date of any patient event except the death itself, a declaration of
    loss to follow-up (not a contact) and sponsor-side records. Subsequent therapy = the
    earliest anticancer `subsequent_therapy_started`. None for an empty history.
    """
    entries = tuple(events)
    if not entries:
        return None
    first = entries[0].event
    seen = _COURSES.fold(entries, _course_new, _course_more)
    start = seen.start
    enrolled_on = seen.enrolled.on if seen.enrolled else None
    baseline = (
        None
        if start is None
        else _latest(
            [s for s in seen.scans if usable_as_baseline(s.on, enrolled_on, start.on, params)]
        )
    )
    death, last_alive, therapy = seen.death, seen.alive, seen.therapy
    return PatientCourse(
        trial_id=first.trial_id,
        site_id=first.site_id,
        patient_id=first.patient_id,
        startdt=start.on if start else None,
        startdt_seqs=start.seqs if start else (),
        baseline_assessment_on=baseline.on if baseline else None,
        death_on=death.on if death else None,
        death_seqs=death.seqs if death else (),
        last_known_alive_on=last_alive.on if last_alive else None,
        last_known_alive_seqs=last_alive.seqs if last_alive else (),
        subsequent_therapy_on=therapy.on if therapy else None,
        subsequent_therapy_seqs=therapy.seqs if therapy else (),
    )


@dataclass(frozen=True, slots=True)
class _Seen:
    """The dates a course is made of, after some effective events. Of equal dates the
    earlier entry is kept, so the first ledger entry names the source."""

    start: Dated | None = None
    scans: tuple[Dated, ...] = ()
    death: Dated | None = None
    alive: Dated | None = None
    therapy: Dated | None = None
    enrolled: Dated | None = None


def _course_new(events: Sequence[Effective]) -> _Seen:
    return _course_more(_Seen(), events)


def _course_more(seen: _Seen, events: Sequence[Effective]) -> _Seen:
    start, death, alive, therapy = seen.start, seen.death, seen.alive, seen.therapy
    enrolled = seen.enrolled
    scans = list(seen.scans)
    for entry in events:
        event = entry.event
        dated = Dated(event.occurred_on, entry.seqs)
        if _shows_alive(event) and (alive is None or dated.on > alive.on):
            alive = dated
        match event:
            case Death():
                death = dated if death is None or dated.on < death.on else death
            case Enrolled():
                enrolled = dated if enrolled is None or dated.on < enrolled.on else enrolled
            case InfusionGiven():
                start = dated if start is None or dated.on < start.on else start
            case DoseModified(data=d) if d.agent == "lenvatinib" and d.action == "start":
                start = dated if start is None or dated.on < start.on else start
            case ScanRead():
                scans.append(dated)
            case SubsequentTherapyStarted(data=t) if t.anticancer:
                therapy = dated if therapy is None or dated.on < therapy.on else therapy
            case _:
                pass
    return _Seen(start, tuple(scans), death, alive, therapy, enrolled)


_COURSES: PrefixMemo[_Seen] = PrefixMemo()


def _shows_alive(event: LedgerEvent) -> bool:
    match event:
        case Death():
            return False
        case Withdrawn(data=w) if w.kind == "lost_to_follow_up":
            return False  # the site's declaration that contact was lost, not a contact
        case SaeAcknowledged() | ProtocolParametersSet() | LedgerSealed():
            return False  # sponsor-side records: the patient was not seen
        case EventCorrected() | EventRetracted():
            return False
        case _:
            return True


def _treated_start(course: PatientCourse, params: ProtocolParameters) -> dt.date | None:
    # Treated after the cut-off means not yet treated as of the analysis.
    cutoff = params.data_cutoff
    if course.startdt is None or (cutoff is not None and course.startdt > cutoff):
        return None
    return course.startdt


def _dated(on: dt.date | None, seqs: tuple[int, ...]) -> Dated | None:
    return None if on is None else Dated(on, seqs)


def _latest(dates: list[Dated]) -> Dated | None:
    # max keeps the first of equal dates: the earlier ledger entry names the source.
    return max(dates, key=lambda d: d.on) if dates else None


def _record(
    course: PatientCourse, paramcd: TteParamcd, origin: dt.date, outcome: Outcome
) -> TteRecord:
    return TteRecord(
        trial_id=course.trial_id,
        site_id=course.site_id,
        patient_id=course.patient_id,
        paramcd=paramcd,
        param=PARAM_LABELS[paramcd],
        startdt=origin,
        adt=max(outcome.adt, origin),
        cnsr=outcome.cnsr,
        evntdesc=outcome.evntdesc,
        cnsdtdsc=outcome.cnsdtdsc,
        srcseqs=outcome.srcseqs,
    )
