"""Which SAE alerts a patient's ledger calls for, in the order they are raised
(DOMAIN.md "Serious AEs and clocks"; 21 CFR 312.32(c), (d)).

One definition shared by the alerter (what to publish), the writer (whether an
acknowledged alert was ever raised) and the safety view (each case's alert history):
walk the patient's AE-relevant entries in ledger order and, after each one, compare every
touched AE with what its alerts have said so far.
- The entry that first makes an AE serious raises the initial alert `sae-<that event_id>`,
  with the clock as the case stood then.
- Every later escalation — the case becomes life-threatening or fatal, becomes a SUSAR, or
  its expedited clock shortens from 15 to 7 days — raises one follow-up alert
  `sae-<ae_event_id>-fu-<seq of the escalating entry>`, day 0 = that entry's `recorded_at`
  (when the sponsor learnt of the escalation), to be acknowledged on its own.
- Escalation is measured against the most severe state already alerted (a high-water mark),
  so a case that wavers raises nothing twice.
Alert ids and escalations do not depend on protocol parameters (only the late-entry flag
does), so the writer may derive them with any parameters.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

from events import (
    AeReported,
    AeUpdated,
    Death,
    EventCorrected,
    EventCorrectedData,
    EventRetracted,
    LedgerEvent,
    ProtocolParameters,
    SaeAcknowledged,
)
from events.alert_message import ExpeditedDays, SaeAlertMessage
from projections.common.field_error import FieldError
from projections.fold.history import Effective, Recorded, effective_history
from projections.safety.clocks import SaeClock, alert_clock, expedited_days, sae_clock
from projections.safety.episodes import AeEpisode, CaseFacts, CaseFold, TreatmentDates, ae_episodes

BECAME_LIFE_THREATENING = "became_life_threatening"
BECAME_FATAL = "became_fatal"
BECAME_SUSAR = "became_susar"
CLOCK_SHORTENED = "clock_shortened_to_7_days"
ESCALATION = "escalation"
_NO_DATES = TreatmentDates(None, None)  # alerts do not depend on the treatment window

ParametersAt = Callable[[int], ProtocolParameters]


def ae_of(event: LedgerEvent) -> str | None:
    """The AE an entry belongs to (its own id for a report), lower-cased; None if none."""
    match event:
        case AeReported(event_id=event_id):
            return str(event_id).lower()
        case AeUpdated(data=data) | Death(data=data) if data.ae_event_id:
            return data.ae_event_id.lower()
        case _:
            return None


def touched_aes(event: LedgerEvent) -> frozenset[str] | None:
    """The AEs an entry can make serious or escalate; None when that takes the history to
    tell (a correction or retraction may reach any AE of the patient)."""
    match event:
        case EventCorrected() | EventRetracted():
            return None
        case _:
            ae_event_id = ae_of(event)
            return frozenset({ae_event_id} if ae_event_id else ())


def follow_up_id(ae_event_id: str, seq: int) -> str:
    """A follow-up alert's id, also its Nats-Msg-Id: one per (case, escalating entry)."""
    return f"sae-{ae_event_id.lower()}-fu-{seq}"


@dataclass(frozen=True, slots=True)
class SaeAlert:
    """One SAE alert as published to ALERTS (DESIGN.md "ALERTS messages"), as it said when
    raised: term, grade and seriousness of the case then, and its clock."""

    trial_id: str
    site_id: str
    patient_id: str
    term: str
    grade: int
    seriousness: tuple[str, ...]
    clock: SaeClock

    @property
    def alert_id(self) -> str:
        return self.clock.alert_id

    @property
    def ae_event_id(self) -> str:
        return self.clock.ae_event_id

    @property
    def kind(self) -> str:
        return self.clock.kind

    def message(self, raised_at: dt.datetime) -> dict[str, Any]:
        """The JSON body of the ALERTS message; `raised_at` is the alerter's own clock."""
        clock = self.clock
        return SaeAlertMessage(
            alert_id=clock.alert_id,
            kind=clock.kind,
            follows=clock.follows,
            reasons=list(clock.reasons),
            trial_id=self.trial_id,
            site_id=self.site_id,
            patient_id=self.patient_id,
            ae_event_id=clock.ae_event_id,
            seq=clock.ae_seq,
            term=self.term,
            grade=self.grade,
            seriousness=list(self.seriousness),
            susar=clock.susar,
            # checked by the model: the clock only ever says 7, 15 or None
            expedited_days=cast("ExpeditedDays | None", clock.expedited_days),
            report_due=clock.report_due,
            acknowledgement_due=clock.acknowledgement_due,
            awareness_at=clock.awareness_at,
            late_entry=clock.late_entry,
            clock_unknown=clock.clock_unknown,
            data_quality=list(clock.data_quality),
            not_yet_assessed=list(clock.not_yet_assessed),
            trigger=clock.trigger,
            trigger_seq=clock.trigger_seq,
            raised_at=raised_at,
        ).wire()


@dataclass(frozen=True, slots=True)
class _Case:
    """What a case's alerts have said so far: the most severe state alerted."""

    last_alert: str
    susar: bool
    severity: int  # 0 serious, 1 life-threatening, 2 fatal


def _severity(facts: CaseFacts) -> int:
    if facts.fatal:
        return 2
    return 1 if facts.life_threatening else 0


def facts_of(episode: AeEpisode) -> CaseFacts:
    """The alert-relevant facts of a whole episode (as `CaseFold` yields them entry by entry)."""
    return CaseFacts(
        episode.serious, episode.susar, episode.fatal, "life_threatening" in episode.seriousness
    )


def escalation_reasons(alerted: _Case, facts: CaseFacts) -> tuple[str, ...]:
    """How the case now goes beyond everything its alerts said (DOMAIN.md: becomes
    life-threatening or fatal, becomes a SUSAR, or its clock shortens from 15 to 7 days)."""
    if not facts.serious:
        return ()
    reasons: list[str] = []
    severity = _severity(facts)
    if severity > alerted.severity:
        reasons.append(BECAME_FATAL if severity == 2 else BECAME_LIFE_THREATENING)
    if facts.susar and not alerted.susar:
        reasons.append(BECAME_SUSAR)
    before = expedited_days(alerted.susar, alerted.severity >= 1)
    now = expedited_days(facts.susar, facts.fatal or facts.life_threatening)
    if before == 15 and now == 7:
        reasons.append(CLOCK_SHORTENED)
    return tuple(reasons)


def _is_input(entry: Recorded) -> bool:
    return isinstance(entry.event, AeReported | AeUpdated | Death | EventCorrected | EventRetracted)


_DEFAULT_PARAMETERS = ProtocolParameters()


def alert_log(
    recorded: Sequence[Recorded],
    parameters_at: ParametersAt = lambda _seq: _DEFAULT_PARAMETERS,
    only: frozenset[str] | None = None,
) -> tuple[SaeAlert, ...]:
    """Every alert one patient's ledger calls for, in the order the entries raise them.

    `parameters_at(seq)`: the protocol parameters in force at a ledger seq (the late-entry
    threshold). `only`: AE ids (lower-case) to decide; an AE's alerts depend on its own
    entries and on corrections of them alone. An AE no correction reaches is folded once,
    entry by entry (`CaseFold`); for one a correction reaches (it can reach back in time)
    each of its steps re-reads the effective history as of that entry.
    """
    ordered = tuple(sorted((entry for entry in recorded if _is_input(entry)), key=_seq))
    reach = _correction_reach(ordered)
    corrected = frozenset().union(*reach.values())
    grown: dict[str, list[Effective]] = {}
    folds: dict[str, CaseFold] = {}
    cases: dict[str, _Case] = {}
    alerts: list[SaeAlert] = []
    for position, entry in enumerate(ordered):
        touched = reach.get(entry.seq) or touched_aes(entry.event) or frozenset()
        if only is not None:
            touched &= only
        steps: list[tuple[str, CaseFacts, list[Effective]]] = []
        for ae in sorted(touched - corrected):  # never corrected: folded once, entry by entry
            effective_entry = Effective(entry.seq, entry.event)
            grown.setdefault(ae, []).append(effective_entry)
            steps.append((ae, folds.setdefault(ae, CaseFold()).add(effective_entry), grown[ae]))
        if touched & corrected:  # a correction reaches back: the history as of this entry
            effective = effective_history(ordered[: position + 1]).events
            steps += _steps_from_history(effective, touched & corrected)
        for ae, facts, entries in steps:
            alert = _next_alert(cases.get(ae), facts, entries, entry, parameters_at(entry.seq))
            if alert is not None:
                alerts.append(alert)
                before = cases.get(ae)
                cases[ae] = _Case(
                    alert.alert_id,
                    facts.susar or (before is not None and before.susar),
                    max(_severity(facts), before.severity if before else 0),
                )
    return tuple(alerts)


def _correction_reach(ordered: tuple[Recorded, ...]) -> dict[int, frozenset[str]]:
    """The AEs each correction or retraction can change (by seq): the AE of its target, and
    the AE a corrected link now names. Corrections of other events change no alert."""
    ae_by_id: dict[str, str] = {}
    reach: dict[int, frozenset[str]] = {}
    for entry in ordered:
        match entry.event:
            case EventCorrected(data=data) | EventRetracted(data=data):
                aes = {ae_by_id.get(data.target_event_id.lower())}
                named = (
                    data.data.get("ae_event_id") if isinstance(data, EventCorrectedData) else None
                )
                if isinstance(named, str):
                    aes.add(named.lower())
                reach[entry.seq] = frozenset(ae for ae in aes if ae)
            case _:
                ae = ae_of(entry.event)
                if ae is not None:
                    ae_by_id[str(entry.event.event_id).lower()] = ae
    return reach


def _seq(entry: Recorded) -> int:
    return entry.seq


def _steps_from_history(
    effective: tuple[Effective, ...], wanted: frozenset[str]
) -> list[tuple[str, CaseFacts, list[Effective]]]:
    grouped: dict[str, list[Effective]] = {}
    for item in effective:
        ae = ae_of(item.event)
        if ae is not None and ae in wanted:
            grouped.setdefault(ae, []).append(item)
    steps = []
    for ae, entries in grouped.items():
        episodes = ae_episodes(entries, _DEFAULT_PARAMETERS, _NO_DATES)
        if episodes:  # none when its report is retracted
            steps.append((ae, facts_of(episodes[0]), entries))
    return steps


def _next_alert(
    alerted: _Case | None,
    facts: CaseFacts,
    entries: list[Effective],
    entry: Recorded,
    parameters: ProtocolParameters,
) -> SaeAlert | None:
    if not facts.serious:
        return None
    reasons = () if alerted is None else escalation_reasons(alerted, facts)
    if alerted is not None and not reasons:
        return None
    [episode] = ae_episodes(entries, parameters, _NO_DATES)  # only when an alert is raised
    if alerted is None:
        clock = sae_clock(episode, (), parameters)
    else:
        event = entry.event
        site_aware_at = event.data.site_aware_at if isinstance(event, AeUpdated) else None
        clock = replace(
            alert_clock(
                episode,
                alert=follow_up_id(episode.ae_event_id, entry.seq),
                trigger_event_id=str(event.event_id),
                trigger_seq=entry.seq,
                trigger=ESCALATION,
                recorded_at=event.recorded_at,
                site_aware_at=site_aware_at,
                parameters=parameters,
            ),
            kind="follow_up",
            follows=alerted.last_alert,
            reasons=reasons,
        )
    if clock is None:
        return None
    trial_id, site_id, patient_id = entry.event.patient_key
    return SaeAlert(
        trial_id,
        site_id,
        patient_id,
        episode.term,
        episode.worst_grade,
        tuple(episode.seriousness),
        clock,
    )


def acknowledgement_errors(
    recorded: Sequence[Recorded], acknowledgement: SaeAcknowledged, today: dt.date
) -> list[FieldError]:
    """The writer's rule for `sae_acknowledged`: only an alert the patient's ledger called
    for (`alert_log`) can be acknowledged, under its own AE; an expedited report cannot be
    submitted in the future nor before the sponsor knew of the case."""
    data = acknowledgement.data
    wanted = data.alert_id.lower()
    raised = [alert for alert in alert_log(recorded) if alert.alert_id.lower() == wanted]
    if not raised:
        return [FieldError("data.alert_id", "no such alert was raised for this patient")]
    clock = raised[0].clock
    errors: list[FieldError] = []
    if clock.ae_event_id.lower() != data.ae_event_id.lower():
        errors.append(
            FieldError("data.ae_event_id", f"alert {data.alert_id} is about another adverse event")
        )
    submitted = data.expedited_report_submitted_on
    if submitted is not None and submitted > today:
        errors.append(
            FieldError("data.expedited_report_submitted_on", f"{submitted} is in the future")
        )
    elif submitted is not None and clock.awareness_on and submitted < clock.awareness_on:
        errors.append(
            FieldError(
                "data.expedited_report_submitted_on",
                f"{submitted} is before the sponsor knew of the case ({clock.awareness_on})",
            )
        )
    return errors
