"""One patient's state: a pure fold of the effective history (DESIGN.md rules 1, 2, 5).

Late entry is normal (DOMAIN.md "Time origin and units"): a scan dated before a death may be
entered after it, an infusion dated before STARTDT may arrive weeks later. So the fold keeps
commutative aggregates (min, max, counts, sets keyed by event id or seq) and derives every
date-ordered field in properties: folding the same effective events in any entry order gives
an equal state.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Literal, Protocol

from events import (
    AeReported,
    AeUpdated,
    Death,
    DoseModified,
    Enrolled,
    EnrolledData,
    InfusionGiven,
    LedgerSealed,
    ProtocolParametersSet,
    SaeAcknowledged,
    ScanRead,
    SubsequentTherapyStarted,
    TreatmentDiscontinued,
    Withdrawn,
)
from events.clinical import Agent, ChildPugh, VpGrade
from projections.common.memo import PrefixMemo
from projections.fold.history import Effective, EffectiveHistory, Recorded, effective_history

Status = Literal[
    "enrolled",
    "on_treatment",
    "off_treatment",
    "follow_up",
    "dead",
    "withdrawn",
    "lost",
]
AgentStatus = Literal["not_started", "ongoing", "discontinued"]
LenvatinibStatus = Literal["not_started", "ongoing", "interrupted", "discontinued"]
DoseAction = Literal["start", "reduce", "interrupt", "resume", "discontinue"]


@dataclass(frozen=True, slots=True)
class Infusions:
    """HAIC cycles or PD-1 infusions: how many, first and last clinical date."""

    count: int = 0
    first_on: dt.date | None = None
    last_on: dt.date | None = None

    def add(self, on: dt.date) -> Infusions:
        first = on if self.first_on is None else min(self.first_on, on)
        last = on if self.last_on is None else max(self.last_on, on)
        return Infusions(self.count + 1, first, last)


@dataclass(frozen=True, slots=True)
class DoseChange:
    """One `dose_modified` entry, kept so the dose course can be replayed in date order."""

    on: dt.date
    agent: Agent
    action: DoseAction
    dose_mg: float | None


@dataclass(frozen=True, slots=True)
class Withdrawal:
    on: dt.date
    seq: int
    kind: Literal["consent_withdrawn", "lost_to_follow_up"]


class PatientFacts(Protocol):
    """What the writer's per-patient rules read (DOMAIN.md "Time origin and units", "Adverse
    events"): `PatientState` provides it; the rules depend on this narrower view only."""

    @property
    def enrolled_on(self) -> dt.date | None: ...
    @property
    def enrollment_count(self) -> int: ...
    @property
    def death_on(self) -> dt.date | None: ...
    @property
    def latest_clinical_on(self) -> dt.date | None: ...
    @property
    def baseline_lesion_ids(self) -> frozenset[str]: ...
    @property
    def known_events(self) -> Mapping[str, str]: ...
    @property
    def ae_event_ids(self) -> frozenset[str]: ...
    @property
    def grade5_ae_ids(self) -> frozenset[str]: ...


def _empty() -> Mapping[Any, Any]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class PatientState:
    """The patient as the effective ledger shows it. Stored fields are order-free aggregates;
    properties derive the clinical fields from them.

    `last_seq` is the latest ledger entry the state reflects and `last_hash` that entry's
    hash — `None` when the entry is a correction or retraction known only by its seq (fold
    the raw ledger with `fold_ledger` to get the chain head the writer links to).
    """

    trial_id: str | None = None
    site_id: str | None = None
    patient_id: str | None = None
    enrollment: Enrolled | None = None
    enrollment_seq: int | None = None
    enrollment_count: int = 0
    haic: Infusions = Infusions()
    pd1: Infusions = Infusions()
    dose_changes: Mapping[int, DoseChange] = field(default_factory=_empty)
    scans: int = 0
    last_scan_on: dt.date | None = None
    baseline_lesion_ids: frozenset[str] = frozenset()
    new_lesion_ids: frozenset[str] = frozenset()
    ae_grades: Mapping[str, int] = field(default_factory=_empty)
    ae_update_grades: Mapping[str, int] = field(default_factory=_empty)
    death_on: dt.date | None = None
    withdrawal: Withdrawal | None = None
    discontinued_on: dt.date | None = None
    subsequent_therapy_on: dt.date | None = None
    latest_clinical_on: dt.date | None = None
    latest_alive_evidence_on: dt.date | None = None
    known_events: Mapping[str, str] = field(default_factory=_empty)
    event_count: int = 0
    last_seq: int | None = None
    last_hash: str | None = None

    @property
    def enrolled_on(self) -> dt.date | None:
        return None if self.enrollment is None else self.enrollment.occurred_on

    @property
    def baseline(self) -> EnrolledData | None:
        """Enrollment data: BCLC stage, Child–Pugh, ECOG, PVTT (+ Vp), extrahepatic spread."""
        return None if self.enrollment is None else self.enrollment.data

    @property
    def bclc_stage(self) -> Literal["B", "C"] | None:
        return None if self.baseline is None else self.baseline.bclc_stage

    @property
    def child_pugh(self) -> ChildPugh | None:
        return None if self.baseline is None else self.baseline.child_pugh

    @property
    def ecog(self) -> int | None:
        return None if self.baseline is None else self.baseline.ecog

    @property
    def baseline_pvtt(self) -> bool | None:
        return None if self.baseline is None else self.baseline.baseline_pvtt

    @property
    def baseline_pvtt_vp(self) -> VpGrade | None:
        return None if self.baseline is None else self.baseline.baseline_pvtt_vp

    @property
    def baseline_extrahepatic_spread(self) -> bool | None:
        return None if self.baseline is None else self.baseline.baseline_extrahepatic_spread

    @property
    def haic_cycles(self) -> int:
        return self.haic.count

    @property
    def pd1_infusions(self) -> int:
        return self.pd1.count

    @property
    def startdt(self) -> dt.date | None:
        """STARTDT = earliest of first HAIC infusion, first PD-1 infusion, lenvatinib start, by
        clinical date (DOMAIN.md "Time origin and units"); `None` = never treated."""
        starts = [c.on for c in self._changes("lenvatinib") if c.action == "start"]
        return _earliest(self.haic.first_on, self.pd1.first_on, *starts)

    @property
    def last_dose_on(self) -> dt.date | None:
        """Latest dosing date of any agent (the TEAE window counts from it, DOMAIN.md "Adverse
        events"). For oral lenvatinib, once started, the latest `dose_modified` date stands in:
        an interruption or discontinuation date is the last day taken; while it is ongoing the
        true last dose lies beyond the ledger and consumers treat it as the cut-off."""
        lenvatinib = self._changes("lenvatinib")
        taken = [c.on for c in lenvatinib] if any(c.action == "start" for c in lenvatinib) else []
        return _latest(self.haic.last_on, self.pd1.last_on, *taken)

    @property
    def haic_status(self) -> AgentStatus:
        return self._infused_status("haic", self.haic)

    @property
    def pd1_status(self) -> AgentStatus:
        return self._infused_status("pd1", self.pd1)

    @property
    def lenvatinib_status(self) -> LenvatinibStatus:
        return self._lenvatinib()[0]

    @property
    def lenvatinib_dose_mg(self) -> float | None:
        """The current daily dose; `None` before start, while interrupted, after discontinuation."""
        status, dose = self._lenvatinib()
        return dose if status == "ongoing" else None

    @property
    def withdrawn_on(self) -> dt.date | None:
        return None if self.withdrawal is None else self.withdrawal.on

    @property
    def status(self) -> Status | None:
        """Where the patient stands; `None` before an enrollment is on the ledger.

        Precedence: dead (terminal: nothing dated before the death changes it) > withdrawn /
        lost > follow_up (after `treatment_discontinued`) > off_treatment (every started agent
        discontinued) > on_treatment (after the first HAIC / PD-1 infusion or lenvatinib start)
        > enrolled.
        """
        if self.enrollment is None:
            return None
        if self.death_on is not None:
            return "dead"
        if self.withdrawal is not None:
            return "withdrawn" if self.withdrawal.kind == "consent_withdrawn" else "lost"
        if self.discontinued_on is not None:
            return "follow_up"
        agents = (self.haic_status, self.pd1_status, self.lenvatinib_status)
        started = [status for status in agents if status != "not_started"]
        if not started:
            return "enrolled"
        return "off_treatment" if all(s == "discontinued" for s in started) else "on_treatment"

    @property
    def last_known_alive_on(self) -> dt.date | None:
        """The death date if dead; else the latest clinical date of any event that shows the
        patient alive (OS censoring, DOMAIN.md "Time-to-event endpoints"). A sponsor's
        `sae_acknowledged` and a `lost_to_follow_up` declaration are not contacts."""
        return self.death_on if self.death_on is not None else self.latest_alive_evidence_on

    @property
    def ae_event_ids(self) -> frozenset[str]:
        return frozenset(self.ae_grades)

    @property
    def worst_ae_grade(self) -> int | None:
        """Worst CTCAE grade over effective AEs, reported or updated (updates of an AE that is
        not effective are ignored)."""
        return max(self._ae_worst().values(), default=None)

    @property
    def grade5_ae_ids(self) -> frozenset[str]:
        """AEs that reached grade 5, which a `death` must agree with (DOMAIN.md "Adverse events")."""
        return frozenset(ae_id for ae_id, grade in self._ae_worst().items() if grade == 5)

    def _ae_worst(self) -> dict[str, int]:
        return {
            ae_id: max(grade, self.ae_update_grades.get(ae_id, grade))
            for ae_id, grade in self.ae_grades.items()
        }

    def _changes(self, agent: Agent) -> list[DoseChange]:
        ordered = sorted(self.dose_changes.items(), key=lambda item: (item[1].on, item[0]))
        return [change for _, change in ordered if change.agent == agent]

    def _infused_status(self, agent: Agent, infusions: Infusions) -> AgentStatus:
        if infusions.last_on is None:
            return "not_started"
        stops = [c.on for c in self._changes(agent) if c.action == "discontinue"]
        # A stop dated on the day of the last infusion ends the agent: that day's dose was given.
        return "discontinued" if stops and max(stops) >= infusions.last_on else "ongoing"

    def _lenvatinib(self) -> tuple[LenvatinibStatus, float | None]:
        status: LenvatinibStatus = "not_started"
        dose: float | None = None
        # Replayed in clinical date order (ties by seq); an action that does not fit the
        # current status changes nothing — the writer rejects those, the fold stays total.
        for change in self._changes("lenvatinib"):
            match change.action, status:
                case "start", _:
                    status, dose = "ongoing", _given(change.dose_mg, dose)
                case "reduce", "ongoing" | "interrupted":
                    dose = _given(change.dose_mg, dose)
                case "interrupt", "ongoing":
                    status = "interrupted"
                case "resume", "interrupted":
                    status, dose = "ongoing", _given(change.dose_mg, dose)
                case "discontinue", "ongoing" | "interrupted":
                    status = "discontinued"
                case _:
                    pass
        return status, dose


@dataclass(slots=True)
class _Tally:
    """The fold's private working copy: mutated in place so folding n events is O(n)."""

    state: PatientState
    dose_changes: dict[int, DoseChange]
    ae_grades: dict[str, int]
    ae_update_grades: dict[str, int]
    known_events: dict[str, str]
    baseline_lesion_ids: set[str]
    new_lesion_ids: set[str]
    scalars: dict[str, Any]

    @classmethod
    def of(cls, state: PatientState) -> _Tally:
        return cls(
            state,
            dict(state.dose_changes),
            dict(state.ae_grades),
            dict(state.ae_update_grades),
            dict(state.known_events),
            set(state.baseline_lesion_ids),
            set(state.new_lesion_ids),
            {},
        )

    def get(self, name: str) -> Any:
        return self.scalars[name] if name in self.scalars else getattr(self.state, name)

    def earliest(self, name: str, on: dt.date) -> None:
        self.scalars[name] = _earliest(self.get(name), on)

    def latest(self, name: str, on: dt.date) -> None:
        self.scalars[name] = _latest(self.get(name), on)

    def frozen(self) -> PatientState:
        return replace(
            self.state,
            dose_changes=MappingProxyType(self.dose_changes),
            ae_grades=MappingProxyType(self.ae_grades),
            ae_update_grades=MappingProxyType(self.ae_update_grades),
            known_events=MappingProxyType(self.known_events),
            baseline_lesion_ids=frozenset(self.baseline_lesion_ids),
            new_lesion_ids=frozenset(self.new_lesion_ids),
            **self.scalars,
        )


def evolve(state: PatientState, effective: Effective) -> PatientState:
    """The state after one more effective event (total: events that carry no patient fact
    only move the ledger position). Copies the state's maps, so it is O(state); to fold a
    history use `fold`, which is O(1) amortised per event."""
    tally = _Tally.of(state)
    _absorb(tally, effective)
    return tally.frozen()


def fold(history: EffectiveHistory | Iterable[Effective]) -> PatientState:
    """Fold one patient's effective events (any entry order) into its state.

    Given an `EffectiveHistory`, retractions and corrections count for the ledger position.
    A history that only grew since the patient's last fold resumes from it (`PrefixMemo`).
    """
    events = history.events if isinstance(history, EffectiveHistory) else tuple(history)
    state = _FOLDS.fold(events, _fold_new, _fold_more)
    if isinstance(history, EffectiveHistory) and history.changes:
        tally = _Tally.of(state)
        for change in history.changes:
            _note_position(tally, change.seq, None)
        state = tally.frozen()
    return state


_FOLDS: PrefixMemo[PatientState] = PrefixMemo()


def _fold_new(events: Sequence[Effective]) -> PatientState:
    return _fold_more(PatientState(), events)


def _fold_more(state: PatientState, events: Sequence[Effective]) -> PatientState:
    tally = _Tally.of(state)
    for effective in events:
        _absorb(tally, effective)
    return tally.frozen()


def fold_ledger(recorded: Iterable[Recorded]) -> PatientState:
    """Fold a patient's raw ledger entries (seq order): corrections and retractions applied
    (DESIGN.md rule 5), and `last_seq` / `last_hash` the chain head the next entry links to."""
    entries = list(recorded)
    state = fold(effective_history(entries))
    if not entries:
        return state
    head = max(entries, key=operator.attrgetter("seq"))
    return replace(state, last_seq=head.seq, last_hash=head.event.hash)


def _absorb(tally: _Tally, effective: Effective) -> None:
    event = effective.event
    tally.scalars["event_count"] = tally.get("event_count") + 1
    _note_position(tally, effective.seq, event.hash)
    for seq in effective.correction_seqs:
        _note_position(tally, seq, None)
    if isinstance(event, ProtocolParametersSet | LedgerSealed):
        return
    tally.known_events[str(event.event_id)] = event.event_type
    if tally.get("patient_id") is None:
        tally.scalars.update(
            trial_id=event.trial_id, site_id=event.site_id, patient_id=event.patient_id
        )
    on = event.occurred_on
    if not isinstance(event, SaeAcknowledged):
        tally.latest("latest_clinical_on", on)
    if not isinstance(event, SaeAcknowledged | Death) and not (
        isinstance(event, Withdrawn) and event.data.kind == "lost_to_follow_up"
    ):
        tally.latest("latest_alive_evidence_on", on)
    match event:
        case Enrolled():
            tally.scalars["enrollment_count"] = tally.get("enrollment_count") + 1
            chosen_seq = tally.get("enrollment_seq")
            chosen: Enrolled | None = tally.get("enrollment")
            if chosen is None or (on, effective.seq) < (chosen.occurred_on, chosen_seq):
                tally.scalars.update(enrollment=event, enrollment_seq=effective.seq)
        case InfusionGiven(data=infusion):
            tally.scalars[infusion.agent] = tally.get(infusion.agent).add(on)
        case DoseModified(data=change):
            tally.dose_changes[effective.seq] = DoseChange(
                on, change.agent, change.action, change.dose_mg
            )
        case ScanRead(data=scan):
            tally.scalars["scans"] = tally.get("scans") + 1
            tally.latest("last_scan_on", on)
            if scan.timepoint == "baseline":
                tally.baseline_lesion_ids.update(
                    lesion.lesion_id for lesion in scan.lesions if lesion.role != "new"
                )
            else:
                tally.new_lesion_ids.update(
                    lesion.lesion_id for lesion in scan.lesions if lesion.role == "new"
                )
        case AeReported(data=ae):
            tally.ae_grades[str(event.event_id)] = ae.grade
        case AeUpdated(data=update) if update.grade is not None:
            target = update.ae_event_id
            tally.ae_update_grades[target] = max(
                update.grade, tally.ae_update_grades.get(target, update.grade)
            )
        case Death():
            tally.earliest("death_on", on)
        case Withdrawn(data=withdrawn):
            current: Withdrawal | None = tally.get("withdrawal")
            if current is None or (on, effective.seq) < (current.on, current.seq):
                tally.scalars["withdrawal"] = Withdrawal(on, effective.seq, withdrawn.kind)
        case TreatmentDiscontinued():
            tally.earliest("discontinued_on", on)
        case SubsequentTherapyStarted(data=therapy) if therapy.anticancer:
            tally.earliest("subsequent_therapy_on", on)
        case _:
            pass


def _note_position(tally: _Tally, seq: int, hash_: str | None) -> None:
    last = tally.get("last_seq")
    if last is None or seq > last:
        tally.scalars.update(last_seq=seq, last_hash=hash_)


def _given(dose_mg: float | None, previous: float | None) -> float | None:
    return previous if dose_mg is None else dose_mg


def _earliest(*dates: dt.date | None) -> dt.date | None:
    return min((d for d in dates if d is not None), default=None)


def _latest(*dates: dt.date | None) -> dt.date | None:
    return max((d for d in dates if d is not None), default=None)
