"""Tables of the safety read model (SQLAlchemy Core, no schema: the build's search path or the
API's schema_translate_map places them), and the row ↔ value conversions both sides share.

Every row is a pure function of the ledger (DESIGN.md rule 1): no wall-clock column. Whether
an alert is open, acknowledged or overdue depends on "now" and is computed when asked.
"""

from __future__ import annotations

import datetime as dt
import functools
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
from services.db.row_mapping import AS_LIST, Codec, Col, Given, Part, RowMapping
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


def _grades_to_json(grades: tuple[GradeRecord, ...]) -> list[dict[str, Any]]:
    return [
        {"seq": g.seq, "occurred_on": g.occurred_on.isoformat(), "grade": g.grade} for g in grades
    ]


def _grades_from_json(rows: list[dict[str, Any]]) -> tuple[GradeRecord, ...]:
    return tuple(
        GradeRecord(g["seq"], dt.date.fromisoformat(g["occurred_on"]), g["grade"]) for g in rows
    )


GRADES = Codec(_grades_to_json, _grades_from_json)
ATTRIBUTION = Codec(lambda a: a.model_dump(mode="json"), Attribution.model_validate)
# the same instant in UTC (as PostgreSQL keeps it), held at the calendar's ends
IN_UTC = Codec(as_utc)
KEY_COLUMNS = (Given("trial_id"), Given("site_id"), Given("patient_id"))


def _key_given(key: tuple[str, str, str]) -> dict[str, str]:
    return {"trial_id": key[0], "site_id": key[1], "patient_id": key[2]}


PATIENT = RowMapping(
    safety_patient,
    PatientSafety,
    [
        Part(
            "patient_key",
            lambda *key: tuple(key),
            (Col("trial_id", 0), Col("site_id", 1), Col("patient_id", 2)),
        ),
        Part("dates", TreatmentDates, (Col("startdt", "start_date"), Col("last_dose_on"))),
        Part(
            "death",
            DeathRecord,
            (Col("death_seq", "seq"), Col("death_on", "occurred_on"), Col("death_cause", "cause")),
            present="death_seq",
        ),
        Given("parameters_version"),
        Given("last_seq"),
    ],
)

EPISODE = RowMapping(
    ae_episode,
    AeEpisode,
    [
        Col("ae_event_id"),
        *KEY_COLUMNS,
        Col("seq"),
        Col("term"),
        Col("verbatim"),
        Col("soc"),
        Col("onset"),
        Col("grades", codec=GRADES),
        Col("worst_grade"),
        Col("current_grade", derived=True),
        Col("serious"),
        Col("seriousness", codec=AS_LIST),
        # the onset's instants are not kept: what reads an episode back needs only these
        Part(
            "serious_onset",
            functools.partial(SeriousOnset, recorded_at=None, site_aware_at=None),
            (
                Col("serious_trigger", "trigger"),
                Col("serious_trigger_event_id", "event_id"),
                Col("serious_trigger_seq", "seq"),
            ),
            present="serious_trigger_event_id",
        ),
        Col("fatal"),
        Col("attribution", codec=ATTRIBUTION),
        Col("related_agents", codec=AS_LIST),
        Col("expected"),
        Col("immune_related"),
        Col("susar"),
        Col("action_taken"),
        Col("outcome"),
        Col("resolved_on"),
        Col("pre_existing"),
        Col("treatment_emergent"),
        Col("dose_modification_seqs", codec=AS_LIST),
        Col("discontinuation_seqs", codec=AS_LIST),
        Col("seqs", codec=AS_LIST),
        Given("parameters_version"),
    ],
)

# One alert of the case's history (initial or follow-up) as it said when raised, with the
# acknowledgements recorded for it since; what the alert said of the AE is given alongside.
CLOCK = RowMapping(
    sae_clock,
    SaeClock,
    [
        Col("alert_id"),
        *KEY_COLUMNS,
        Col("ae_event_id"),
        Col("ae_seq"),
        Given("term"),
        Given("grade"),
        Given("seriousness", codec=AS_LIST),
        Col("trigger"),
        Col("trigger_event_id"),
        Col("trigger_seq"),
        Col("awareness_at"),
        Col("site_aware_at", codec=IN_UTC),
        Col("late_entry"),
        Col("susar"),
        Col("fatal_or_life_threatening"),
        Col("expedited_days"),
        Col("acknowledgement_due"),
        Col("report_due"),
        Col("acknowledged_at"),
        Col("acknowledgement_seqs", codec=AS_LIST),
        Col("report_submitted_on"),
        Col("kind"),
        Col("follows"),
        Col("reasons", codec=AS_LIST),
        Col("data_quality", codec=AS_LIST),
        Col("not_yet_assessed", codec=AS_LIST),
    ],
)


def patient_row(
    safety: PatientSafety, last_seq: int, parameters_version: int | None
) -> dict[str, Any]:
    return PATIENT.to_row(safety, last_seq=last_seq, parameters_version=parameters_version)


def episode_row(
    key: tuple[str, str, str], episode: AeEpisode, parameters_version: int | None
) -> dict[str, Any]:
    return EPISODE.to_row(episode, **_key_given(key), parameters_version=parameters_version)


def clock_row(key: tuple[str, str, str], alert: SaeAlert, clock: SaeClock) -> dict[str, Any]:
    """One alert of the case's history as it said when raised (see CLOCK)."""
    return CLOCK.to_row(
        clock, **_key_given(key), term=alert.term, grade=alert.grade, seriousness=alert.seriousness
    )


def episode_from_row(row: Any) -> AeEpisode:
    """An episode back from its row: what the incidence tables and clocks read from it."""
    return EPISODE.from_row(row)


def patient_from_rows(row: Any, episodes: list[AeEpisode]) -> PatientSafety:
    return PATIENT.from_row(row, episodes=tuple(sorted(episodes, key=lambda episode: episode.seq)))


def clock_from_row(row: Any) -> SaeClock:
    return CLOCK.from_row(row)
