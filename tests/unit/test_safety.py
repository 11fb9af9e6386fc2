"""AE episodes: given a patient's ledger entries, the episode the safety tables see.

The builders at the top are shared with test_incidence.py and test_sae_clocks.py. An event's
number is also its ledger seq, so the expected seqs read straight off the events.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from uuid import UUID

import pytest

from events import (
    AeReported,
    AeUpdated,
    Death,
    DoseModified,
    EventCorrected,
    InfusionGiven,
    LedgerEvent,
    ProtocolParameters,
    SaeAcknowledged,
    TreatmentDiscontinued,
)
from projections.fold.history import Effective, Recorded, effective_history
from projections.safety.episodes import (
    AeEpisode,
    TreatmentDates,
    ae_episodes,
    patient_safety,
    treatment_dates,
)

pytestmark = pytest.mark.unit

PARAMETERS = ProtocolParameters()
D = dt.date.fromisoformat


def event_id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def _envelope(n: int, on: str, patient: str, recorded_at: str | None) -> dict[str, Any]:
    return {
        "event_id": UUID(event_id(n)),
        "trial_id": "HAIC-PD1-LEN",
        "site_id": "site01",
        "patient_id": patient,
        "occurred_on": D(on),
        "recorded_by": "site01.investigator",
        "recorded_at": dt.datetime.fromisoformat(recorded_at) if recorded_at else None,
    }


def reported(
    n: int,
    on: str,
    term: str = "Hypertension",
    grade: int = 2,
    *,
    patient: str = "P0001",
    recorded_at: str | None = None,
    **data: Any,
) -> AeReported:
    return AeReported(
        **_envelope(n, on, patient, recorded_at), data={"term": term, "grade": grade, **data}
    )


def updated(
    n: int, on: str, ae: int, *, patient: str = "P0001", recorded_at: str | None = None, **data: Any
) -> AeUpdated:
    return AeUpdated(
        **_envelope(n, on, patient, recorded_at), data={"ae_event_id": event_id(ae), **data}
    )


def infusion(n: int, on: str, agent: str = "pd1", *, patient: str = "P0001") -> InfusionGiven:
    return InfusionGiven(**_envelope(n, on, patient, None), data={"agent": agent, "cycle": 1})


def lenvatinib(
    n: int, on: str, action: str, ae: int | None = None, *, patient: str = "P0001"
) -> DoseModified:
    return DoseModified(
        **_envelope(n, on, patient, None),
        data={
            "agent": "lenvatinib",
            "action": action,
            "dose_mg": 8,
            "ae_event_id": event_id(ae) if ae else None,
            "cause": "adverse_event" if ae else "protocol",
        },
    )


def death(
    n: int,
    on: str,
    ae: int | None = None,
    *,
    patient: str = "P0001",
    recorded_at: str | None = None,
) -> Death:
    return Death(
        **_envelope(n, on, patient, recorded_at),
        data={
            "cause": "adverse_event" if ae else "disease_progression",
            "ae_event_id": event_id(ae) if ae else None,
        },
    )


def discontinued(n: int, on: str, ae: int, *, patient: str = "P0001") -> TreatmentDiscontinued:
    return TreatmentDiscontinued(
        **_envelope(n, on, patient, None),
        data={"cause": "adverse_event", "ae_event_id": event_id(ae)},
    )


def acknowledged(
    n: int, alert_of: int, ae: int, recorded_at: str, report_on: str | None = None
) -> SaeAcknowledged:
    return SaeAcknowledged(
        **{
            **_envelope(n, recorded_at[:10], "P0001", recorded_at),
            "recorded_by": "sponsor.safety_officer",
        },
        data={
            "alert_id": f"sae-{event_id(alert_of)}",
            "ae_event_id": event_id(ae),
            "expedited_report_submitted_on": report_on,
        },
    )


def history(*events: LedgerEvent) -> tuple[Effective, ...]:
    """Each event stored at the seq its number gives."""
    return tuple(Effective(int(str(event.event_id)[-12:]), event) for event in events)


ON_PD1 = TreatmentDates(start_date=D("2025-01-06"), last_dose_on=D("2025-03-03"))


def only_episode(*events: LedgerEvent, dates: TreatmentDates = ON_PD1) -> AeEpisode:
    [episode] = ae_episodes(history(*events), PARAMETERS, dates)
    return episode


# Treatment-emergent window: STARTDT 2025-01-06, last dose 2025-03-03, + 30 days = 2025-04-02


def test_ae_with_onset_on_startdt_is_treatment_emergent() -> None:
    assert only_episode(reported(1, "2025-01-06")).treatment_emergent


def test_ae_the_day_before_startdt_is_not_treatment_emergent() -> None:
    assert not only_episode(reported(1, "2025-01-05")).treatment_emergent


def test_ae_30_days_after_the_last_dose_is_treatment_emergent() -> None:
    assert only_episode(reported(1, "2025-04-02")).treatment_emergent


def test_ae_31_days_after_the_last_dose_is_not_treatment_emergent() -> None:
    assert not only_episode(reported(1, "2025-04-03")).treatment_emergent


def test_teae_window_follows_the_protocol_parameter() -> None:
    events = history(reported(1, "2025-03-13"))
    [episode] = ae_episodes(events, ProtocolParameters(teae_window_days=10), ON_PD1)
    assert episode.treatment_emergent
    [episode] = ae_episodes(events, ProtocolParameters(teae_window_days=9), ON_PD1)
    assert not episode.treatment_emergent


def test_ae_of_a_patient_never_treated_is_not_treatment_emergent() -> None:
    untreated = TreatmentDates(None, None)
    assert not only_episode(reported(1, "2025-01-06"), dates=untreated).treatment_emergent


def test_pre_existing_ae_that_worsens_on_treatment_is_treatment_emergent() -> None:
    episode = only_episode(
        reported(1, "2024-12-20", grade=1, pre_existing=True),
        updated(2, "2025-02-01", ae=1, grade=2),
    )
    assert episode.treatment_emergent


def test_pre_existing_ae_that_does_not_worsen_is_not_treatment_emergent() -> None:
    episode = only_episode(
        reported(1, "2024-12-20", grade=2, pre_existing=True),
        updated(2, "2025-02-01", ae=1, grade=1),
        updated(3, "2025-02-15", ae=1, grade=2),
    )
    assert not episode.treatment_emergent


def test_pre_existing_ae_that_worsened_before_startdt_is_not_treatment_emergent() -> None:
    episode = only_episode(
        reported(1, "2024-12-20", grade=1, pre_existing=True),
        updated(2, "2025-01-02", ae=1, grade=2),
    )
    assert not episode.treatment_emergent


# Grades, seriousness, attribution


def test_worst_grade_is_the_highest_across_updates_and_current_is_the_latest() -> None:
    episode = only_episode(
        reported(1, "2025-02-01", grade=2),
        updated(2, "2025-02-05", ae=1, grade=3),
        updated(3, "2025-02-09", ae=1, outcome="recovering"),
        updated(4, "2025-02-12", ae=1, grade=1),
    )
    assert episode.worst_grade == 3
    assert episode.current_grade == 1
    assert [(g.seq, g.occurred_on, g.grade) for g in episode.grades] == [
        (1, D("2025-02-01"), 2),
        (2, D("2025-02-05"), 3),
        (4, D("2025-02-12"), 1),
    ]
    assert episode.outcome == "recovering"
    assert episode.seqs == (1, 2, 3, 4)


def test_episode_names_the_ctcae_term_and_its_soc() -> None:
    episode = only_episode(reported(1, "2025-02-01", term="alanine aminotransferase increased"))
    assert episode.term == "Alanine aminotransferase increased"
    assert episode.soc == "Investigations"


def test_grade_5_ae_is_serious_and_fatal() -> None:
    episode = only_episode(reported(1, "2025-02-01", term="Hepatic failure", grade=5))
    assert episode.serious
    assert episode.fatal
    assert episode.seriousness == ("death",)


def test_grade_4_ae_is_serious_as_life_threatening() -> None:
    episode = only_episode(reported(1, "2025-02-01", grade=4))
    assert episode.serious
    assert not episode.fatal
    assert episode.seriousness == ("life_threatening",)


def test_ae_linked_to_a_death_is_serious_and_fatal() -> None:
    episode = only_episode(reported(1, "2025-02-01", grade=3), death(2, "2025-02-10", ae=1))
    assert episode.serious
    assert episode.fatal
    assert episode.seqs == (1, 2)


def test_update_withdrawing_seriousness_clears_its_criteria() -> None:
    episode = only_episode(
        reported(1, "2025-02-01", serious=True, seriousness=["hospitalisation"]),
        updated(2, "2025-02-03", ae=1, serious=False),
    )
    assert not episode.serious
    assert episode.seriousness == ()


def test_possible_probable_and_definite_are_related_unlikely_is_not() -> None:
    episode = only_episode(
        reported(
            1,
            "2025-02-01",
            attribution={"haic": "definite", "pd1": "unlikely", "lenvatinib": "possible"},
        )
    )
    assert episode.related_agents == ("haic", "lenvatinib")


def test_attribution_update_replaces_the_earlier_attribution() -> None:
    episode = only_episode(
        reported(1, "2025-02-01", attribution={"pd1": "possible"}),
        updated(2, "2025-02-08", ae=1, attribution={"pd1": "unrelated", "lenvatinib": "probable"}),
    )
    assert episode.related_agents == ("lenvatinib",)


@pytest.mark.parametrize(
    ("serious", "expected", "causality", "susar"),
    [
        (True, False, "possible", True),
        (True, False, "probable", True),
        (True, False, "definite", True),
        (True, False, "unlikely", False),
        (True, False, "unrelated", False),
        (True, True, "definite", False),
        (False, False, "definite", False),
    ],
)
def test_susar_needs_serious_unexpected_and_suspected(
    serious: bool, expected: bool, causality: str, susar: bool
) -> None:
    seriousness = ["hospitalisation"] if serious else []
    episode = only_episode(
        reported(
            1,
            "2025-02-01",
            serious=serious,
            seriousness=seriousness,
            expected=expected,
            attribution={"haic": "unrelated", "pd1": causality, "lenvatinib": "unrelated"},
        )
    )
    assert episode.susar is susar


def test_grade_4_unexpected_related_ae_is_a_susar_without_a_serious_flag() -> None:
    episode = only_episode(
        reported(
            1,
            "2025-02-01",
            term="Pneumonitis",
            grade=4,
            expected=False,
            attribution={"pd1": "probable"},
        )
    )
    assert episode.susar
    assert episode.fatal_or_life_threatening


# Dose modification and discontinuation


def test_lenvatinib_reduction_linked_to_the_ae_is_a_dose_modification() -> None:
    episode = only_episode(
        reported(1, "2025-02-01"),
        lenvatinib(2, "2025-02-02", "reduce", ae=1),
        lenvatinib(3, "2025-02-20", "resume", ae=1),
    )
    assert episode.dose_modification_seqs == (2,)
    assert not episode.led_to_discontinuation
    assert episode.seqs == (1, 2, 3)


def test_action_taken_interrupted_on_the_ae_is_a_dose_modification() -> None:
    episode = only_episode(
        reported(1, "2025-02-01"), updated(2, "2025-02-03", ae=1, action_taken="interrupted")
    )
    assert episode.dose_modification_seqs == (2,)


def test_dose_change_of_another_ae_is_not_linked() -> None:
    [first, second] = ae_episodes(
        history(
            reported(1, "2025-02-01"),
            reported(2, "2025-02-01", term="Fatigue", grade=1),
            lenvatinib(3, "2025-02-02", "interrupt", ae=2),
        ),
        PARAMETERS,
        ON_PD1,
    )
    assert not first.led_to_dose_modification
    assert second.dose_modification_seqs == (3,)


def test_lenvatinib_discontinued_for_the_ae_leads_to_discontinuation() -> None:
    episode = only_episode(
        reported(1, "2025-02-01"), lenvatinib(2, "2025-02-02", "discontinue", ae=1)
    )
    assert episode.discontinuation_seqs == (2,)
    assert not episode.led_to_dose_modification


def test_treatment_discontinued_for_the_ae_leads_to_discontinuation() -> None:
    episode = only_episode(reported(1, "2025-02-01"), discontinued(2, "2025-02-04", ae=1))
    assert episode.discontinuation_seqs == (2,)


def test_drug_withdrawn_on_the_ae_leads_to_discontinuation() -> None:
    episode = only_episode(reported(1, "2025-02-01", action_taken="withdrawn"))
    assert episode.discontinuation_seqs == (1,)


# Corrections and the patient record


def test_corrected_grade_is_used_and_the_correction_seq_is_behind_the_episode() -> None:
    correction = EventCorrected(
        **_envelope(9, "2025-02-01", "P0001", None),
        reason="grade transcribed wrongly",
        data={"target_event_id": event_id(1), "data": {"term": "Hypertension", "grade": 3}},
    )
    recorded = [Recorded(1, reported(1, "2025-02-01", grade=2)), Recorded(9, correction)]
    [episode] = ae_episodes(effective_history(recorded).events, PARAMETERS, ON_PD1)
    assert episode.worst_grade == 3
    assert episode.seqs == (1, 9)


def test_last_pd1_infusion_is_the_last_dose() -> None:
    dates = treatment_dates(history(infusion(1, "2025-01-06"), infusion(2, "2025-01-27")))
    assert dates == TreatmentDates(D("2025-01-06"), D("2025-01-27"))


def test_lenvatinib_still_taken_leaves_the_teae_window_open() -> None:
    events = history(
        infusion(1, "2025-01-06"), lenvatinib(2, "2025-01-06", "start"), reported(3, "2025-12-01")
    )
    safety = patient_safety(events, PARAMETERS)
    assert safety.dates == TreatmentDates(D("2025-01-06"), None)
    assert safety.episodes[0].treatment_emergent


def test_lenvatinib_discontinuation_closes_the_teae_window() -> None:
    events = history(
        infusion(1, "2025-01-06"),
        lenvatinib(2, "2025-01-06", "start"),
        lenvatinib(3, "2025-03-01", "discontinue"),
        reported(4, "2025-04-01"),
    )
    safety = patient_safety(events, PARAMETERS)
    assert safety.dates == TreatmentDates(D("2025-01-06"), D("2025-03-01"))
    assert not safety.episodes[0].treatment_emergent


def test_patient_safety_keeps_the_death() -> None:
    safety = patient_safety(history(infusion(1, "2025-01-06"), death(2, "2025-05-01")), PARAMETERS)
    assert safety.treated
    assert safety.death is not None
    assert (safety.death.seq, safety.death.occurred_on) == (2, D("2025-05-01"))
    assert safety.patient_key == ("HAIC-PD1-LEN", "site01", "P0001")
