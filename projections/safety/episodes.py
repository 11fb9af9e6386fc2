"""A patient's adverse-event episodes (DOMAIN.md "Adverse events", "Serious AEs and clocks").

An episode is one `ae_reported` event folded with its `ae_updated` events and the events
linked to it by `ae_event_id` (dose modifications, treatment discontinuation, death), all read
from the effective history (corrections and retractions already applied).
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

from events import (
    AeReported,
    AeReportedData,
    AeUpdated,
    Attribution,
    Death,
    DoseModified,
    ProtocolParameters,
    TreatmentDiscontinued,
)
from events.clinical import Agent
from events.safety import Seriousness
from projections.common.calendar import add_days
from projections.common.memo import ExactMemo
from projections.fold import patient
from projections.fold.history import Effective
from projections.safety.ctcae import ctcae_table

AGENTS: tuple[Agent, ...] = ("haic", "pd1", "lenvatinib")
RELATED = frozenset({"possible", "probable", "definite"})
SeriousTrigger = Literal["reported_serious", "seriousness_added", "grade_4_or_5", "death"]


@dataclass(frozen=True, slots=True)
class TreatmentDates:
    """STARTDT and the last dose date (None while an oral agent is still being taken)."""

    start_date: dt.date | None
    last_dose_on: dt.date | None


@dataclass(frozen=True, slots=True)
class GradeRecord:
    seq: int
    occurred_on: dt.date
    grade: int


@dataclass(frozen=True, slots=True)
class SeriousOnset:
    """The ledger entry that first made an AE serious: the start of its SAE clock."""

    event_id: str
    seq: int
    trigger: SeriousTrigger
    recorded_at: dt.datetime | None
    site_aware_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class AeEpisode:
    ae_event_id: str
    seq: int
    term: str
    verbatim: str | None
    soc: str | None
    onset: dt.date
    grades: tuple[GradeRecord, ...]
    worst_grade: int
    serious: bool
    seriousness: tuple[Seriousness, ...]
    serious_onset: SeriousOnset | None
    fatal: bool
    attribution: Attribution
    related_agents: tuple[Agent, ...]
    expected: bool | None
    immune_related: bool
    susar: bool
    action_taken: str
    outcome: str
    resolved_on: dt.date | None
    pre_existing: bool
    treatment_emergent: bool
    dose_modification_seqs: tuple[int, ...]
    discontinuation_seqs: tuple[int, ...]
    seqs: tuple[int, ...]

    @property
    def current_grade(self) -> int:
        return self.grades[-1].grade

    @property
    def led_to_dose_modification(self) -> bool:
        return bool(self.dose_modification_seqs)

    @property
    def led_to_discontinuation(self) -> bool:
        return bool(self.discontinuation_seqs)

    @property
    def fatal_or_life_threatening(self) -> bool:
        return self.fatal or "life_threatening" in self.seriousness

    @property
    def not_yet_assessed(self) -> tuple[str, ...]:
        """ "causality" / "expectedness" when the site has still to assess them."""
        return missing_assessments(self.attribution, self.expected)


@dataclass(frozen=True, slots=True)
class DeathRecord:
    seq: int
    occurred_on: dt.date
    cause: str


@dataclass(frozen=True, slots=True)
class PatientSafety:
    """Everything the safety tables and clocks need about one patient."""

    patient_key: tuple[str, str, str]
    dates: TreatmentDates
    episodes: tuple[AeEpisode, ...]
    death: DeathRecord | None

    @property
    def treated(self) -> bool:
        return self.dates.start_date is not None


def is_related(causality: str | None) -> bool:
    """Related = possible, probable or definite (DOMAIN.md "Serious AEs and clocks")."""
    return causality in RELATED


def is_suspected(attribution: Attribution) -> bool:
    """Suspected for the SUSAR rule: related to any agent, or any agent's causality not yet
    assessed — until the investigator assesses it, it counts as suspected (DOMAIN.md,
    conservative as safety databases are)."""
    return any(
        causality is None or is_related(causality)
        for causality in (attribution.haic, attribution.pd1, attribution.lenvatinib)
    )


def missing_assessments(attribution: Attribution, expected: bool | None) -> tuple[str, ...]:
    """What the site still has to assess: "causality" (any agent) and/or "expectedness"."""
    missing = []
    if None in (attribution.haic, attribution.pd1, attribution.lenvatinib):
        missing.append("causality")
    if expected is None:
        missing.append("expectedness")
    return tuple(missing)


def treatment_dates(events: Iterable[Effective]) -> TreatmentDates:
    """STARTDT and last dose as the patient fold derives them (`projections.fold.patient`).

    While lenvatinib (oral, daily) is still being taken and treatment has not been stopped,
    the last dose lies beyond the ledger: the treatment-emergent window stays open (None).
    """
    state = patient.fold(events)
    if state.startdt is None:
        return TreatmentDates(None, None)
    if state.lenvatinib_status == "ongoing":
        if state.discontinued_on is None:
            return TreatmentDates(state.startdt, None)
        return TreatmentDates(state.startdt, state.discontinued_on)
    return TreatmentDates(state.startdt, state.last_dose_on)


def _in_window(day: dt.date, dates: TreatmentDates, window_days: int) -> bool:
    if dates.start_date is None or day < dates.start_date:
        return False
    return dates.last_dose_on is None or day <= add_days(dates.last_dose_on, window_days)


@dataclass(frozen=True, slots=True)
class _Fold:
    record: AeReportedData | None = None
    onset: dt.date | None = None
    grades: tuple[GradeRecord, ...] = ()
    died: bool = False
    onset_serious: SeriousOnset | None = None
    action_seqs: tuple[int, ...] = ()
    withdrawn_seqs: tuple[int, ...] = ()


def _serious_now(fold: _Fold) -> bool:
    if fold.record is None:
        return False
    worst = max(record.grade for record in fold.grades)
    return fold.record.serious or worst >= 4 or fold.record.outcome == "fatal" or fold.died


def _fatal(fold: _Fold, record: AeReportedData) -> bool:
    worst = max(grade.grade for grade in fold.grades)
    return worst == 5 or record.outcome == "fatal" or fold.died


def _life_threatening(fold: _Fold, record: AeReportedData) -> bool:
    # grade 4 once reached implies life-threatening (CTCAE v5.0 / ICH E2A)
    return "life_threatening" in record.seriousness or any(g.grade == 4 for g in fold.grades)


def _susar(record: AeReportedData, serious: bool) -> bool:
    return serious and record.expected is not True and is_suspected(record.attribution)


@dataclass(frozen=True, slots=True)
class CaseFacts:
    """What an AE's SAE alerts depend on, after some of its entries (DOMAIN.md)."""

    serious: bool
    susar: bool
    fatal: bool
    life_threatening: bool


class CaseFold:
    """An AE's facts entry by entry, folded once (`projections.safety.sae_alerts` asks after each
    entry whether the case escalated): the same fold and rules as `ae_episodes`."""

    __slots__ = ("_fold",)

    def __init__(self) -> None:
        self._fold = _Fold()

    def add(self, entry: Effective) -> CaseFacts:
        """Apply one more of the AE's entries (ledger order); the case's facts after it."""
        fold = self._fold = _evolve(self._fold, entry)
        record = fold.record
        if record is None:
            return CaseFacts(False, False, False, False)
        serious = _serious_now(fold)
        return CaseFacts(
            serious, _susar(record, serious), _fatal(fold, record), _life_threatening(fold, record)
        )


def _apply_update(record: AeReportedData, update: AeUpdated) -> AeReportedData:
    given = {
        name: getattr(update.data, name)
        for name in update.data.model_fields_set - {"ae_event_id"}
        if getattr(update.data, name) is not None
    }
    if given.get("serious") is False:
        given["seriousness"] = ()
    if "attribution" in given:  # per agent: an agent the update leaves out keeps its value
        assessed = given["attribution"].model_dump(exclude_none=True)
        given["attribution"] = record.attribution.model_copy(update=assessed)
    return record.model_copy(update=given)


def _evolve(fold: _Fold, entry: Effective) -> _Fold:
    """One AE-related event applied to the episode (events arrive in ledger order)."""
    was_serious = _serious_now(fold)
    trigger: SeriousTrigger = "reported_serious"
    site_aware_at: dt.datetime | None = None
    match entry.event:
        case AeReported(data=data, occurred_on=day):
            fold = replace(
                fold, record=data, onset=day, grades=(GradeRecord(entry.seq, day, data.grade),)
            )
            site_aware_at = data.site_aware_at
        case AeUpdated(data=data, occurred_on=day) if fold.record is not None:
            fold = replace(fold, record=_apply_update(fold.record, entry.event))
            if data.grade is not None:
                fold = replace(fold, grades=(*fold.grades, GradeRecord(entry.seq, day, data.grade)))
            raised = data.grade is not None and data.grade >= 4
            trigger = "grade_4_or_5" if raised else "seriousness_added"
            site_aware_at = data.site_aware_at
        case Death():
            fold = replace(fold, died=True)
            trigger = "death"
        case _:
            return fold
    action = getattr(entry.event.data, "action_taken", None)
    if action in {"dose_reduced", "interrupted"}:
        fold = replace(fold, action_seqs=(*fold.action_seqs, entry.seq))
    if action == "withdrawn":
        fold = replace(fold, withdrawn_seqs=(*fold.withdrawn_seqs, entry.seq))
    if not was_serious and _serious_now(fold) and fold.onset_serious is None:
        onset = SeriousOnset(
            str(entry.event.event_id), entry.seq, trigger, entry.event.recorded_at, site_aware_at
        )
        fold = replace(fold, onset_serious=onset)
    return fold


def _links(events: tuple[Effective, ...]) -> dict[str, tuple[Effective, ...]]:
    """Each AE's report and the events that name it (updates, dose changes, a death, a
    discontinuation), by AE event id (case-insensitive), in seq order: one pass for all AEs."""
    linked: dict[str, list[Effective]] = {}
    for entry in events:
        match entry.event:
            case (
                AeUpdated(data=data)
                | DoseModified(data=data)
                | Death(data=data)
                | (TreatmentDiscontinued(data=data))
            ) if data.ae_event_id is not None:
                linked.setdefault(str(data.ae_event_id).lower(), []).append(entry)
            case AeReported(event_id=event_id):
                linked.setdefault(str(event_id).lower(), []).append(entry)
    return {key: tuple(sorted(entries, key=_SEQ)) for key, entries in linked.items()}


_SEQ = operator.attrgetter("seq")
_SAFETY: ExactMemo[PatientSafety] = ExactMemo()


def _episode(
    report: Effective, linked: tuple[Effective, ...], dates: TreatmentDates, window_days: int
) -> AeEpisode:
    fold = _Fold()
    for entry in linked:
        fold = _evolve(fold, entry)
    record, onset = fold.record, fold.onset
    if record is None or onset is None:  # unreachable: the report is among its own links
        raise ValueError(f"AE {report.event.event_id} has no report")
    worst = max(grade.grade for grade in fold.grades)
    fatal = _fatal(fold, record)
    implied: list[Seriousness] = []
    if _life_threatening(fold, record):
        implied.append("life_threatening")
    if fatal:
        implied.append("death")
    seriousness = tuple(dict.fromkeys((*record.seriousness, *implied)))
    related = tuple(agent for agent in AGENTS if is_related(getattr(record.attribution, agent)))
    worsened_on_treatment = record.pre_existing and any(
        later.grade > fold.grades[0].grade and _in_window(later.occurred_on, dates, window_days)
        for later in fold.grades[1:]
    )
    modifications = [
        e.seq
        for e in linked
        if isinstance(e.event, DoseModified) and e.event.data.action in {"reduce", "interrupt"}
    ]
    stops = [
        e.seq
        for e in linked
        if isinstance(e.event, TreatmentDiscontinued)
        or (isinstance(e.event, DoseModified) and e.event.data.action == "discontinue")
    ]
    entry_term = ctcae_table().lookup(record.term)
    serious = _serious_now(fold)
    return AeEpisode(
        ae_event_id=str(report.event.event_id),
        seq=report.seq,
        term=entry_term.term if entry_term else record.term,
        verbatim=record.verbatim,
        soc=entry_term.soc if entry_term else None,
        onset=onset,
        grades=fold.grades,
        worst_grade=worst,
        serious=serious,
        seriousness=seriousness if serious else (),
        serious_onset=fold.onset_serious,
        fatal=fatal,
        attribution=record.attribution,
        related_agents=related,
        expected=record.expected,
        immune_related=record.immune_related,
        susar=_susar(record, serious),
        action_taken=record.action_taken,
        outcome=record.outcome,
        resolved_on=record.resolved_on,
        pre_existing=record.pre_existing,
        treatment_emergent=_in_window(onset, dates, window_days) or worsened_on_treatment,
        dose_modification_seqs=tuple(sorted({*modifications, *fold.action_seqs})),
        discontinuation_seqs=tuple(sorted({*stops, *fold.withdrawn_seqs})),
        seqs=tuple(sorted({seq for entry in linked for seq in entry.seqs})),
    )


def ae_episodes(
    events: Iterable[Effective], parameters: ProtocolParameters, dates: TreatmentDates
) -> tuple[AeEpisode, ...]:
    """One episode per `ae_reported`, in ledger order.

    Treatment-emergent (DOMAIN.md): onset ≥ STARTDT and ≤ last dose + `teae_window_days`, or
    a pre-existing AE whose grade an update raised within that window. Onset is the report's
    `occurred_on`, which the schema requires, so "missing onset" cannot occur. Serious = the
    site says so, or grade 4/5 (life-threatening / death), or a fatal outcome, or a death
    linked to the AE. SUSAR = serious + unexpected + possibly/probably/definitely related to
    any agent (ICH E2A), where causality and expectedness not yet assessed count as suspected
    and unexpected (DOMAIN.md).
    """
    ordered = tuple(sorted(events, key=_SEQ))
    if not any(type(entry.event) is AeReported for entry in ordered):
        return ()  # most patients, most of the time: nothing to link
    links = _links(ordered)
    return tuple(
        _episode(
            entry, links[str(entry.event.event_id).lower()], dates, parameters.teae_window_days
        )
        for entry in ordered
        if isinstance(entry.event, AeReported)
    )


def patient_safety(events: Iterable[Effective], parameters: ProtocolParameters) -> PatientSafety:
    """One patient's AE episodes and death, with STARTDT / last dose.

    The clinical and the safety projection both need this for the same entries; when memos
    are on (`projections.common.memo`), the second gets the first one's result."""
    ordered = tuple(sorted(events, key=_SEQ))
    if not ordered:
        raise ValueError("a patient's safety record needs at least one event")
    return _SAFETY.get(ordered, parameters, lambda: _patient_safety(ordered, parameters))


def _patient_safety(
    ordered: tuple[Effective, ...], parameters: ProtocolParameters
) -> PatientSafety:
    dates = treatment_dates(ordered)
    deaths = [
        DeathRecord(entry.seq, entry.event.occurred_on, entry.event.data.cause)
        for entry in ordered
        if isinstance(entry.event, Death)
    ]
    return PatientSafety(
        patient_key=ordered[0].event.patient_key,
        dates=dates,
        episodes=ae_episodes(ordered, parameters, dates),
        death=min(deaths, key=lambda record: (record.occurred_on, record.seq), default=None),
    )
