"""Tables of the safety read model (SQLAlchemy Core, no schema: the build's search path or the
API's schema_translate_map places them), and the row ↔ value conversions both sides share.

Every row is a pure function of the ledger (DESIGN.md rule 1): no wall-clock column. Whether
an alert is open, acknowledged or overdue depends on "now" and is computed when asked.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, Boolean, Column, Date, Index, Integer, Table, Text
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP

from events import Attribution
from projections.common.calendar import as_utc
from projections.safety.clocks import SaeClock
from projections.safety.episodes import (
    AeEpisode,
    DeathRecord,
    GradeRecord,
    PatientSafety,
    SeriousOnset,
    TreatmentDates,
)
from projections.safety.sae_alerts import SaeAlert
from services.db.tables import metadata

safety_parameters = Table(
    "safety_parameters",
    metadata,
    Column("trial_id", Text, primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("version", Integer, nullable=False),
    Column("parameters", JSONB, nullable=False),
)

safety_patient = Table(
    "safety_patient",
    metadata,
    Column("trial_id", Text, primary_key=True),
    Column("site_id", Text, primary_key=True),
    Column("patient_id", Text, primary_key=True),
    Column("startdt", Date),
    Column("last_dose_on", Date),
    Column("death_seq", BigInteger),
    Column("death_on", Date),
    Column("death_cause", Text),
    Column("parameters_version", Integer),
    Column("last_seq", BigInteger, nullable=False),
)

ae_episode = Table(
    "ae_episode",
    metadata,
    Column("ae_event_id", Text, primary_key=True),
    Column("trial_id", Text, nullable=False),
    Column("site_id", Text, nullable=False),
    Column("patient_id", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("term", Text, nullable=False),
    Column("verbatim", Text),
    Column("soc", Text),
    Column("onset", Date, nullable=False),
    Column("grades", JSONB, nullable=False),
    Column("worst_grade", Integer, nullable=False),
    Column("current_grade", Integer, nullable=False),
    Column("serious", Boolean, nullable=False),
    Column("seriousness", JSONB, nullable=False),
    Column("serious_trigger", Text),
    Column("serious_trigger_event_id", Text),
    Column("serious_trigger_seq", BigInteger),
    Column("fatal", Boolean, nullable=False),
    Column("attribution", JSONB, nullable=False),
    Column("related_agents", JSONB, nullable=False),
    Column("expected", Boolean),  # None: not yet assessed
    Column("immune_related", Boolean, nullable=False),
    Column("susar", Boolean, nullable=False),
    Column("action_taken", Text, nullable=False),
    Column("outcome", Text, nullable=False),
    Column("resolved_on", Date),
    Column("pre_existing", Boolean, nullable=False),
    Column("treatment_emergent", Boolean, nullable=False),
    Column("dose_modification_seqs", JSONB, nullable=False),
    Column("discontinuation_seqs", JSONB, nullable=False),
    Column("seqs", JSONB, nullable=False),
    Column("parameters_version", Integer),
    Index("ix_ae_episode_patient", "trial_id", "site_id", "patient_id"),
)

sae_clock = Table(
    "sae_clock",
    metadata,
    Column("alert_id", Text, primary_key=True),
    Column("trial_id", Text, nullable=False),
    Column("site_id", Text, nullable=False),
    Column("patient_id", Text, nullable=False),
    Column("ae_event_id", Text, nullable=False),
    Column("ae_seq", BigInteger, nullable=False),
    Column("term", Text, nullable=False),
    Column("grade", Integer, nullable=False),
    Column("seriousness", JSONB, nullable=False),
    Column("trigger", Text, nullable=False),
    Column("trigger_event_id", Text, nullable=False),
    Column("trigger_seq", BigInteger, nullable=False),
    Column("awareness_at", TIMESTAMP(timezone=True)),
    Column("site_aware_at", TIMESTAMP(timezone=True)),
    Column("late_entry", Boolean),
    Column("susar", Boolean, nullable=False),
    Column("fatal_or_life_threatening", Boolean, nullable=False),
    Column("expedited_days", Integer),
    Column("acknowledgement_due", Date),
    Column("report_due", Date),
    Column("acknowledged_at", TIMESTAMP(timezone=True)),
    Column("acknowledgement_seqs", JSONB, nullable=False),
    Column("report_submitted_on", Date),
    Column("kind", Text, nullable=False, server_default="initial"),
    Column("follows", Text),
    Column("reasons", JSONB, nullable=False, server_default="[]"),
    Column("data_quality", JSONB, nullable=False, server_default="[]"),
    Column("not_yet_assessed", JSONB, nullable=False, server_default="[]"),
    Index("ix_sae_clock_patient", "trial_id", "site_id", "patient_id"),
)

SAFETY_TABLES = (safety_parameters, safety_patient, ae_episode, sae_clock)


def patient_row(
    safety: PatientSafety, last_seq: int, parameters_version: int | None
) -> dict[str, Any]:
    trial_id, site_id, patient_id = safety.patient_key
    death = safety.death
    return {
        "trial_id": trial_id,
        "site_id": site_id,
        "patient_id": patient_id,
        "startdt": safety.dates.start_date,
        "last_dose_on": safety.dates.last_dose_on,
        "death_seq": death.seq if death else None,
        "death_on": death.occurred_on if death else None,
        "death_cause": death.cause if death else None,
        "parameters_version": parameters_version,
        "last_seq": last_seq,
    }


def episode_row(
    key: tuple[str, str, str], episode: AeEpisode, parameters_version: int | None
) -> dict[str, Any]:
    onset = episode.serious_onset
    return {
        "ae_event_id": episode.ae_event_id,
        "trial_id": key[0],
        "site_id": key[1],
        "patient_id": key[2],
        "seq": episode.seq,
        "term": episode.term,
        "verbatim": episode.verbatim,
        "soc": episode.soc,
        "onset": episode.onset,
        "grades": [
            {"seq": g.seq, "occurred_on": g.occurred_on.isoformat(), "grade": g.grade}
            for g in episode.grades
        ],
        "worst_grade": episode.worst_grade,
        "current_grade": episode.current_grade,
        "serious": episode.serious,
        "seriousness": list(episode.seriousness),
        "serious_trigger": onset.trigger if onset else None,
        "serious_trigger_event_id": onset.event_id if onset else None,
        "serious_trigger_seq": onset.seq if onset else None,
        "fatal": episode.fatal,
        "attribution": episode.attribution.model_dump(mode="json"),
        "related_agents": list(episode.related_agents),
        "expected": episode.expected,
        "immune_related": episode.immune_related,
        "susar": episode.susar,
        "action_taken": episode.action_taken,
        "outcome": episode.outcome,
        "resolved_on": episode.resolved_on,
        "pre_existing": episode.pre_existing,
        "treatment_emergent": episode.treatment_emergent,
        "dose_modification_seqs": list(episode.dose_modification_seqs),
        "discontinuation_seqs": list(episode.discontinuation_seqs),
        "seqs": list(episode.seqs),
        "parameters_version": parameters_version,
    }


def clock_row(key: tuple[str, str, str], alert: SaeAlert, clock: SaeClock) -> dict[str, Any]:
    """One alert of the case's history (initial or follow-up) as it said when raised, with
    the acknowledgements recorded for it since."""
    return {
        "alert_id": clock.alert_id,
        "trial_id": key[0],
        "site_id": key[1],
        "patient_id": key[2],
        "ae_event_id": clock.ae_event_id,
        "ae_seq": clock.ae_seq,
        "term": alert.term,
        "grade": alert.grade,
        "seriousness": list(alert.seriousness),
        "trigger": clock.trigger,
        "trigger_event_id": clock.trigger_event_id,
        "trigger_seq": clock.trigger_seq,
        "awareness_at": clock.awareness_at,
        # the same instant in UTC (as PostgreSQL keeps it), held at the calendar's ends
        "site_aware_at": None if clock.site_aware_at is None else as_utc(clock.site_aware_at),
        "late_entry": clock.late_entry,
        "susar": clock.susar,
        "fatal_or_life_threatening": clock.fatal_or_life_threatening,
        "expedited_days": clock.expedited_days,
        "acknowledgement_due": clock.acknowledgement_due,
        "report_due": clock.report_due,
        "acknowledged_at": clock.acknowledged_at,
        "acknowledgement_seqs": list(clock.acknowledgement_seqs),
        "report_submitted_on": clock.report_submitted_on,
        "kind": clock.kind,
        "follows": clock.follows,
        "reasons": list(clock.reasons),
        "data_quality": list(clock.data_quality),
        "not_yet_assessed": list(clock.not_yet_assessed),
    }


def episode_from_row(row: Any) -> AeEpisode:
    """An episode back from its row: what the incidence tables and clocks read from it."""
    onset = None
    if row.serious_trigger_event_id is not None:
        onset = SeriousOnset(
            row.serious_trigger_event_id, row.serious_trigger_seq, row.serious_trigger, None, None
        )
    return AeEpisode(
        ae_event_id=row.ae_event_id,
        seq=row.seq,
        term=row.term,
        verbatim=row.verbatim,
        soc=row.soc,
        onset=row.onset,
        grades=tuple(
            GradeRecord(g["seq"], dt.date.fromisoformat(g["occurred_on"]), g["grade"])
            for g in row.grades
        ),
        worst_grade=row.worst_grade,
        serious=row.serious,
        seriousness=tuple(row.seriousness),
        serious_onset=onset,
        fatal=row.fatal,
        attribution=Attribution.model_validate(row.attribution),
        related_agents=tuple(row.related_agents),
        expected=row.expected,
        immune_related=row.immune_related,
        susar=row.susar,
        action_taken=row.action_taken,
        outcome=row.outcome,
        resolved_on=row.resolved_on,
        pre_existing=row.pre_existing,
        treatment_emergent=row.treatment_emergent,
        dose_modification_seqs=tuple(row.dose_modification_seqs),
        discontinuation_seqs=tuple(row.discontinuation_seqs),
        seqs=tuple(row.seqs),
    )


def patient_from_rows(row: Any, episodes: list[AeEpisode]) -> PatientSafety:
    death = None
    if row.death_seq is not None:
        death = DeathRecord(row.death_seq, row.death_on, row.death_cause)
    return PatientSafety(
        (row.trial_id, row.site_id, row.patient_id),
        TreatmentDates(row.startdt, row.last_dose_on),
        tuple(sorted(episodes, key=lambda episode: episode.seq)),
        death,
    )


def clock_from_row(row: Any) -> SaeClock:
    return SaeClock(
        alert_id=row.alert_id,
        ae_event_id=row.ae_event_id,
        ae_seq=row.ae_seq,
        trigger_event_id=row.trigger_event_id,
        trigger_seq=row.trigger_seq,
        trigger=row.trigger,
        awareness_at=row.awareness_at,
        site_aware_at=row.site_aware_at,
        late_entry=row.late_entry,
        susar=row.susar,
        fatal_or_life_threatening=row.fatal_or_life_threatening,
        expedited_days=row.expedited_days,
        acknowledgement_due=row.acknowledgement_due,
        report_due=row.report_due,
        acknowledgement_seqs=tuple(row.acknowledgement_seqs),
        acknowledged_at=row.acknowledged_at,
        report_submitted_on=row.report_submitted_on,
        kind=row.kind,
        follows=row.follows,
        reasons=tuple(row.reasons),
        data_quality=tuple(row.data_quality),
        not_yet_assessed=tuple(row.not_yet_assessed),
    )
