"""Each safety read-model row is written and read through one description per table: a value
object made into its row and read back is the same object, and a description that does not
cover its table's columns is refused when built."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, Text

from events import Attribution
from projections.safety.clocks import SaeClock
from projections.safety.episodes import (
    AeEpisode,
    DeathRecord,
    GradeRecord,
    PatientSafety,
    SeriousOnset,
    TreatmentDates,
)
from services.db.row_mapping import Col, Given, RowMapping
from services.db.safety_tables import (
    CLOCK,
    EPISODE,
    PATIENT,
    clock_from_row,
    clock_row,
    episode_from_row,
    episode_row,
    patient_from_rows,
    patient_row,
)

pytestmark = pytest.mark.unit

KEY = ("T1", "site01", "P0001")
DAY = dt.date(2025, 3, 4)


def _json_kept(row: dict[str, object]) -> dict[str, object]:
    """The row as PostgreSQL gives it back: JSON columns through JSON text."""
    return {
        name: json.loads(json.dumps(value)) if isinstance(value, list | dict) else value
        for name, value in row.items()
    }


def _episode(serious: bool) -> AeEpisode:
    onset = SeriousOnset("ae-2", 12, "reported", None, None) if serious else None
    return AeEpisode(
        ae_event_id="ae-1",
        seq=11,
        term="Hepatic failure",
        verbatim="liver failure",
        soc=None,
        onset=DAY,
        grades=(GradeRecord(11, DAY, 2), GradeRecord(12, DAY + dt.timedelta(days=2), 4)),
        worst_grade=4,
        serious=serious,
        seriousness=("hospitalisation",) if serious else (),  # type: ignore[arg-type]
        serious_onset=onset,
        fatal=False,
        attribution=Attribution(haic="possible", pd1=None, lenvatinib="unrelated"),
        related_agents=("haic",),  # type: ignore[arg-type]
        expected=None,
        immune_related=False,
        susar=serious,
        action_taken="dose_reduced",
        outcome="recovering",
        resolved_on=None,
        pre_existing=False,
        treatment_emergent=True,
        dose_modification_seqs=(13,),
        discontinuation_seqs=(),
        seqs=(11, 12),
    )


@pytest.mark.parametrize("serious", [True, False])
def test_an_episode_comes_back_from_its_row(serious: bool) -> None:
    episode = _episode(serious)
    row = episode_row(KEY, episode, 3)
    assert row["current_grade"] == 4 and row["parameters_version"] == 3
    assert (row["trial_id"], row["site_id"], row["patient_id"]) == KEY
    assert row["grades"][1] == {"seq": 12, "occurred_on": "2025-03-06", "grade": 4}
    assert row["serious_trigger_seq"] == (12 if serious else None)
    assert episode_from_row(_json_kept(row)) == episode


def _clock(site_aware_at: dt.datetime | None) -> SaeClock:
    return SaeClock(
        alert_id="alert-1",
        ae_event_id="ae-1",
        ae_seq=11,
        trigger_event_id="ae-2",
        trigger_seq=12,
        trigger="reported",
        awareness_at=dt.datetime(2025, 3, 6, 9, tzinfo=dt.UTC),
        site_aware_at=site_aware_at,
        late_entry=False,
        susar=True,
        fatal_or_life_threatening=False,
        expedited_days=15,
        acknowledgement_due=DAY + dt.timedelta(days=3),
        report_due=DAY + dt.timedelta(days=17),
        acknowledgement_seqs=(20, 21),
        acknowledged_at=dt.datetime(2025, 3, 7, 10, tzinfo=dt.UTC),
        report_submitted_on=None,
        kind="follow_up",
        follows="alert-0",
        reasons=("grade 4",),
        data_quality=(),
        not_yet_assessed=("causality",),
    )


class _Alert:
    term = "Hepatic failure"
    grade = 4
    seriousness = ("hospitalisation",)


def test_a_clock_comes_back_from_its_row_with_its_awareness_in_utc() -> None:
    in_utc = _clock(dt.datetime(2025, 3, 6, 8, tzinfo=dt.UTC))
    elsewhere = _clock(dt.datetime(2025, 3, 6, 10, tzinfo=dt.timezone(dt.timedelta(hours=2))))
    row = clock_row(KEY, _Alert(), elsewhere)  # type: ignore[arg-type]
    assert row["site_aware_at"].utcoffset() == dt.timedelta(0)
    assert (row["term"], row["grade"], row["seriousness"]) == (
        "Hepatic failure",
        4,
        ["hospitalisation"],
    )
    assert clock_from_row(_json_kept(row)) == in_utc
    unaware = _clock(None)
    assert clock_from_row(_json_kept(clock_row(KEY, _Alert(), unaware))) == unaware  # type: ignore[arg-type]


@pytest.mark.parametrize("died", [True, False])
def test_a_patient_comes_back_from_its_row_and_episodes(died: bool) -> None:
    episodes = (_episode(False),)
    safety = PatientSafety(
        KEY,
        TreatmentDates(DAY, None),
        episodes,
        DeathRecord(40, DAY + dt.timedelta(days=90), "disease") if died else None,
    )
    row = patient_row(safety, 41, None)
    assert row["last_seq"] == 41 and row["death_seq"] == (40 if died else None)
    assert patient_from_rows(_json_kept(row), list(episodes)) == safety


def test_the_rows_have_their_tables_columns_in_order() -> None:
    for mapping in (PATIENT, EPISODE, CLOCK):
        assert mapping.fields  # described
    assert list(episode_row(KEY, _episode(True), 1)) == [c.name for c in EPISODE.table.columns]


def test_a_description_that_leaves_out_or_invents_a_column_is_refused() -> None:
    table = Table("t", MetaData(), Column("a", Text), Column("b", Integer))
    RowMapping(table, dict, [Col("a"), Given("b")])
    with pytest.raises(ValueError, match=r"unmapped columns \['b'\]"):
        RowMapping(table, dict, [Col("a")])
    with pytest.raises(ValueError, match="unknown or repeated"):
        RowMapping(table, dict, [Col("a"), Given("b"), Col("c")])
    with pytest.raises(ValueError, match="unknown or repeated"):
        RowMapping(table, dict, [Col("a"), Given("b"), Given("a")])
