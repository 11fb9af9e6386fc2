"""Time-to-event endpoints as worked patient histories: given these dates → this ADTTE record.

Every expected date and AVAL below is counted by hand from the calendar (2024 is a leap year):
STARTDT is 10 Jan 2024, so 31 Jan is day 22, 29 Feb day 51, 31 Mar day 82, 30 Apr day 112.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import pytest

from events import EVENT_ADAPTER, LedgerEvent, ProtocolParameters
from projections.endpoints.tte import (
    Assessment,
    Cnsr,
    PatientCourse,
    course_from_history,
    derive_dor,
    derive_os,
    derive_pfs,
    missed_assessments_gap_days,
    months,
    study_day,
)
from projections.fold.history import Recorded, effective_history

pytestmark = pytest.mark.unit

DEFAULTS = ProtocolParameters()
START = dt.date(2024, 1, 10)


def day(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def cut_off(text: str) -> ProtocolParameters:
    return DEFAULTS.model_copy(update={"data_cutoff": day(text)})


def patient(**changes: Any) -> PatientCourse:
    treated = PatientCourse(
        trial_id="HAIC-PD1-LEN",
        site_id="site01",
        patient_id="P0001",
        startdt=START,
        startdt_seqs=(3,),
        baseline_assessment_on=day("2024-01-03"),
    )
    return replace(treated, **changes)


def scan(on: str, response: str, seq: int) -> Assessment:
    """One timepoint read as CR, PR, SD, PD or NE."""
    return Assessment(
        on=day(on),
        progressed=response == "PD",
        adequate=response != "NE",
        responded=response in {"CR", "PR"},
        seqs=(seq,),
    )


# --- time origin and units ---------------------------------------------------------------


def test_aval_counts_the_start_date_as_day_one() -> None:
    record = derive_os(patient(death_on=day("2024-03-01"), death_seqs=(40,)), DEFAULTS)
    assert record is not None
    assert (record.startdt, record.adt) == (START, day("2024-03-01"))
    assert record.aval == 52


def test_study_day_and_display_months() -> None:
    assert study_day(START, START) == 1
    assert study_day(START, day("2024-04-30")) == 112
    assert months(30.4375) == 1.0
    assert months(365.25) == 12.0


def test_two_missed_scans_allow_a_gap_of_ninety_one_days_by_default() -> None:
    assert missed_assessments_gap_days(DEFAULTS) == 2 * 42 + 7


def test_never_treated_patient_has_no_time_to_event_records() -> None:
    untreated = patient(startdt=None, startdt_seqs=(), death_on=day("2024-02-01"))
    assert derive_os(untreated, DEFAULTS) is None
    assert derive_pfs(untreated, [scan("2024-02-21", "PD", 9)], DEFAULTS) is None
    assert derive_dor(untreated, [scan("2024-02-21", "PR", 9)], DEFAULTS) is None


def test_patient_first_treated_after_the_cut_off_is_not_yet_in_the_analysis() -> None:
    assert derive_os(patient(), cut_off("2024-01-09")) is None


# --- overall survival --------------------------------------------------------------------


def test_death_is_an_os_event() -> None:
    record = derive_os(patient(death_on=day("2024-06-30"), death_seqs=(80, 85)), DEFAULTS)
    assert record is not None
    assert (record.paramcd, record.cnsr, record.evntdesc) == ("OS", Cnsr.EVENT, "DEATH")
    assert record.cnsdtdsc is None
    assert record.srcseqs == (80, 85)
    assert record.aval == 173


def test_living_patient_is_censored_at_last_known_alive_date() -> None:
    alive = patient(last_known_alive_on=day("2024-04-30"), last_known_alive_seqs=(55,))
    record = derive_os(alive, DEFAULTS)
    assert record is not None
    assert (record.adt, record.aval, record.cnsr) == (day("2024-04-30"), 112, 6)
    assert (record.evntdesc, record.cnsdtdsc) == ("ALIVE", "LAST KNOWN ALIVE DATE")
    assert record.srcseqs == (55,)


def test_death_on_the_day_of_the_last_contact_is_an_event() -> None:
    course = patient(death_on=day("2024-04-30"), last_known_alive_on=day("2024-04-30"))
    record = derive_os(course, DEFAULTS)
    assert record is not None
    assert (record.adt, record.cnsr) == (day("2024-04-30"), Cnsr.EVENT)


def test_no_contact_after_start_is_censored_at_startdt() -> None:
    record = derive_os(patient(last_known_alive_on=None), DEFAULTS)
    assert record is not None
    assert (record.adt, record.aval, record.cnsr, record.cnsdtdsc) == (START, 1, 6, "STARTDT")
    assert record.srcseqs == (3,)


def test_death_after_the_cut_off_is_censored_at_the_cut_off() -> None:
    course = patient(
        death_on=day("2024-05-10"), death_seqs=(70,), last_known_alive_on=day("2024-03-01")
    )
    record = derive_os(course, cut_off("2024-04-30"))
    assert record is not None
    assert (record.adt, record.aval, record.cnsr) == (day("2024-04-30"), 112, 5)
    assert record.cnsdtdsc == "DATA CUT-OFF"


def test_contact_after_the_cut_off_caps_os_at_the_cut_off() -> None:
    course = patient(last_known_alive_on=day("2024-06-01"), last_known_alive_seqs=(60,))
    record = derive_os(course, cut_off("2024-04-30"))
    assert record is not None
    assert (record.adt, record.cnsr, record.evntdesc) == (
        day("2024-04-30"),
        Cnsr.DATA_CUTOFF,
        "ALIVE AT DATA CUT-OFF",
    )


def test_death_on_the_cut_off_date_is_still_an_event() -> None:
    record = derive_os(patient(death_on=day("2024-04-30")), cut_off("2024-04-30"))
    assert record is not None
    assert (record.adt, record.cnsr) == (day("2024-04-30"), Cnsr.EVENT)


# --- progression-free survival ----------------------------------------------------------


def test_first_pd_is_the_pfs_event() -> None:
    scans = [
        scan("2024-02-21", "SD", 10),
        scan("2024-04-03", "PD", 20),
        scan("2024-05-15", "PD", 30),
    ]
    record = derive_pfs(patient(), scans, DEFAULTS)
    assert record is not None
    assert (record.paramcd, record.param) == ("PFS", "Progression-Free Survival per mRECIST")
    assert (record.adt, record.aval, record.cnsr) == (day("2024-04-03"), 85, Cnsr.EVENT)
    assert (record.evntdesc, record.srcseqs) == ("DISEASE PROGRESSION", (20,))


def test_death_before_first_scan_is_a_pfs_event() -> None:
    course = patient(death_on=day("2024-02-15"), death_seqs=(12,))
    record = derive_pfs(course, [], DEFAULTS)
    assert record is not None
    assert (record.adt, record.aval, record.cnsr, record.evntdesc) == (
        day("2024-02-15"),
        37,
        Cnsr.EVENT,
        "DEATH",
    )


def test_death_without_any_scan_after_two_missed_scans_is_censored_at_startdt() -> None:
    # 1 May is 112 days after STARTDT: scans due on days 42 and 84 (+7) were both missed.
    course = patient(death_on=day("2024-05-01"), death_seqs=(12,))
    record = derive_pfs(course, [], DEFAULTS)
    assert record is not None
    assert (record.adt, record.aval, record.cnsr) == (START, 1, Cnsr.MISSED_ASSESSMENTS)
    assert (record.evntdesc, record.cnsdtdsc) == (
        "DEATH AFTER 2 OR MORE MISSED ASSESSMENTS",
        "STARTDT",
    )


def test_new_therapy_before_pd_is_censored_at_last_adequate_assessment_before_it() -> None:
    scans = [
        scan("2024-02-21", "SD", 10),
        scan("2024-04-03", "SD", 20),
        scan("2024-05-15", "PD", 30),
    ]
    course = patient(subsequent_therapy_on=day("2024-04-20"), subsequent_therapy_seqs=(25,))
    record = derive_pfs(course, scans, DEFAULTS)
    assert record is not None
    assert (record.adt, record.aval, record.cnsr) == (
        day("2024-04-03"),
        85,
        Cnsr.SUBSEQUENT_THERAPY,
    )
    assert (record.cnsdtdsc, record.srcseqs) == ("LAST ADEQUATE ASSESSMENT", (20,))


def test_scan_on_the_day_new_therapy_starts_is_the_censoring_date() -> None:
    scans = [scan("2024-02-21", "SD", 10), scan("2024-04-03", "SD", 20)]
    course = patient(subsequent_therapy_on=day("2024-04-03"))
    record = derive_pfs(course, scans, DEFAULTS)
    assert record is not None
    assert (record.adt, record.cnsr) == (day("2024-04-03"), Cnsr.SUBSEQUENT_THERAPY)


def test_new_therapy_before_any_post_baseline_scan_is_censored_at_startdt() -> None:
    course = patient(subsequent_therapy_on=day("2024-02-01"), death_on=day("2024-03-01"))
    record = derive_pfs(course, [], DEFAULTS)
    assert record is not None
    assert (record.adt, record.cnsr, record.cnsdtdsc) == (START, 3, "STARTDT")


def test_pd_on_the_day_new_therapy_starts_is_an_event() -> None:
    scans = [scan("2024-02-21", "SD", 10), scan("2024-04-03", "PD", 20)]
    course = patient(subsequent_therapy_on=day("2024-04-03"))
    record = derive_pfs(course, scans, DEFAULTS)
    assert record is not None
    assert (record.adt, record.cnsr) == (day("2024-04-03"), Cnsr.EVENT)


def test_pd_after_two_missed_scans_is_censored() -> None:
    # 21 Feb → 23 May is 92 days: more than 2 × 42 + 7.
    scans = [scan("2024-02-21", "SD", 10), scan("2024-05-23", "PD", 30)]
    record = derive_pfs(patient(), scans, DEFAULTS)
    assert record is not None
    assert (record.adt, record.aval, record.cnsr) == (
        day("2024-02-21"),
        43,
        Cnsr.MISSED_ASSESSMENTS,
    )
    assert (record.evntdesc, record.srcseqs) == (
        "DISEASE PROGRESSION AFTER 2 OR MORE MISSED ASSESSMENTS",
        (10,),
    )


def test_pd_at_the_end_of_the_second_scan_window_is_an_event() -> None:
    # 21 Feb → 22 May is exactly 91 days: the second scan is late, not yet missed.
    scans = [scan("2024-02-21", "SD", 10), scan("2024-05-22", "PD", 30)]
    record = derive_pfs(patient(), scans, DEFAULTS)
    assert record is not None
    assert (record.adt, record.cnsr) == (day("2024-05-22"), Cnsr.EVENT)


def test_pd_after_one_missed_scan_is_an_event() -> None:
    # The scan due on 3 Apr was missed; PD on 20 Apr is 59 days after the last scan.
    scans = [scan("2024-02-21", "SD", 10), scan("2024-04-20", "PD", 30)]
    record = derive_pfs(patient(), scans, DEFAULTS)
    assert record is not None
    assert (record.adt, record.aval, record.cnsr) == (day("2024-04-20"), 102, Cnsr.EVENT)


def test_not_evaluable_scan_does_not_restart_the_missed_scan_count() -> None:
    scans = [
        scan("2024-02-21", "SD", 10),
        scan("2024-04-03", "NE", 20),
        scan("2024-05-23", "PD", 30),
    ]
    record = derive_pfs(patient(), scans, DEFAULTS)
    assert record is not None
    assert (record.adt, record.cnsr) == (day("2024-02-21"), Cnsr.MISSED_ASSESSMENTS)


def test_missed_scan_count_is_a_protocol_parameter() -> None:
    three_missed = DEFAULTS.model_copy(update={"missed_visits_censor": 3})
    scans = [scan("2024-02-21", "SD", 10), scan("2024-05-23", "PD", 30)]
    record = derive_pfs(patient(), scans, three_missed)
    assert record is not None
    assert record.cnsr == Cnsr.EVENT


def test_no_baseline_scan_is_censored_at_startdt() -> None:
    course = patient(baseline_assessment_on=None, death_on=day("2024-03-01"))
    record = derive_pfs(course, [scan("2024-02-21", "PD", 10)], DEFAULTS)
    assert record is not None
    assert (record.adt, record.aval, record.cnsr) == (START, 1, Cnsr.NO_ASSESSMENT)
    assert (record.evntdesc, record.cnsdtdsc, record.srcseqs) == (
        "NO BASELINE ASSESSMENT",
        "STARTDT",
        (3,),
    )


def test_alive_without_post_baseline_scan_is_censored_at_startdt() -> None:
    record = derive_pfs(patient(), [scan("2024-02-21", "NE", 10)], DEFAULTS)
    assert record is not None
    assert (record.adt, record.cnsr, record.evntdesc) == (
        START,
        Cnsr.NO_ASSESSMENT,
        "NO ADEQUATE POST-BASELINE ASSESSMENT",
    )


def test_alive_without_progression_is_censored_at_last_adequate_assessment() -> None:
    scans = [
        scan("2024-02-21", "PR", 10),
        scan("2024-04-03", "SD", 20),
        scan("2024-05-15", "NE", 30),
    ]
    record = derive_pfs(patient(last_known_alive_on=day("2024-06-01")), scans, DEFAULTS)
    assert record is not None
    assert (record.adt, record.aval, record.cnsr) == (
        day("2024-04-03"),
        85,
        Cnsr.LAST_ADEQUATE_ASSESSMENT,
    )


def test_death_and_pd_on_the_same_day_is_one_event_dated_that_day() -> None:
    scans = [scan("2024-02-21", "SD", 10), scan("2024-04-03", "PD", 20)]
    course = patient(death_on=day("2024-04-03"), death_seqs=(21,))
    record = derive_pfs(course, scans, DEFAULTS)
    assert record is not None
    assert (record.adt, record.cnsr, record.evntdesc) == (
        day("2024-04-03"),
        Cnsr.EVENT,
        "DISEASE PROGRESSION",
    )


def test_death_on_the_day_of_the_last_adequate_scan_is_an_event() -> None:
    scans = [scan("2024-02-21", "SD", 10), scan("2024-04-03", "SD", 20)]
    course = patient(death_on=day("2024-04-03"), death_seqs=(21,))
    record = derive_pfs(course, scans, DEFAULTS)
    assert record is not None
    assert (record.adt, record.cnsr, record.srcseqs) == (day("2024-04-03"), Cnsr.EVENT, (21,))


def test_pd_after_the_cut_off_is_censored_at_last_adequate_scan_before_it() -> None:
    scans = [
        scan("2024-02-21", "SD", 10),
        scan("2024-04-03", "SD", 20),
        scan("2024-05-15", "PD", 30),
    ]
    record = derive_pfs(patient(), scans, cut_off("2024-04-30"))
    assert record is not None
    assert (record.adt, record.cnsr, record.evntdesc) == (
        day("2024-04-03"),
        Cnsr.DATA_CUTOFF,
        "DISEASE PROGRESSION AFTER DATA CUT-OFF",
    )


def test_scans_after_the_cut_off_do_not_count() -> None:
    scans = [scan("2024-02-21", "SD", 10), scan("2024-05-15", "SD", 30)]
    record = derive_pfs(patient(), scans, cut_off("2024-04-30"))
    assert record is not None
    assert (record.adt, record.cnsr) == (day("2024-02-21"), Cnsr.LAST_ADEQUATE_ASSESSMENT)


def test_baseline_scans_on_or_before_startdt_are_not_follow_up() -> None:
    scans = [scan("2024-01-10", "SD", 5), scan("2024-02-21", "SD", 10)]
    record = derive_pfs(patient(), scans, DEFAULTS)
    assert record is not None
    assert record.srcseqs == (10,)


def test_pvtt_pfs_is_only_for_patients_with_baseline_pvtt() -> None:
    scans = [scan("2024-02-21", "PD", 10)]
    assert derive_pfs(patient(), scans, DEFAULTS, "PFSPVTT", eligible=False) is None
    record = derive_pfs(patient(), scans, DEFAULTS, "PFSPVTT")
    assert record is not None
    assert (record.paramcd, record.param) == ("PFSPVTT", "Progression-Free Survival of PVTT")


# --- duration of response --------------------------------------------------------------


def test_duration_of_response_runs_from_first_response_to_pd() -> None:
    scans = [
        scan("2024-02-21", "PR", 10),
        scan("2024-04-03", "PR", 20),
        scan("2024-05-15", "PD", 30),
    ]
    record = derive_dor(patient(), scans, DEFAULTS)
    assert record is not None
    assert (record.paramcd, record.startdt, record.adt) == (
        "DOR",
        day("2024-02-21"),
        day("2024-05-15"),
    )
    assert (record.aval, record.cnsr) == (85, Cnsr.EVENT)


def test_patient_without_response_has_no_duration_of_response() -> None:
    scans = [scan("2024-02-21", "SD", 10), scan("2024-04-03", "PD", 20)]
    assert derive_dor(patient(), scans, DEFAULTS) is None


def test_response_after_progression_opens_no_duration_of_response() -> None:
    scans = [scan("2024-02-21", "PD", 10), scan("2024-04-03", "PR", 20)]
    assert derive_dor(patient(), scans, DEFAULTS) is None


def test_responder_with_no_later_scan_is_censored_at_the_response() -> None:
    record = derive_dor(patient(), [scan("2024-02-21", "CR", 10)], DEFAULTS)
    assert record is not None
    assert (record.adt, record.aval, record.cnsr, record.srcseqs) == (
        day("2024-02-21"),
        1,
        Cnsr.LAST_ADEQUATE_ASSESSMENT,
        (10,),
    )


# --- the course read from the ledger ----------------------------------------------------


def _event(n: int, kind: str, on: str, data: dict[str, Any]) -> LedgerEvent:
    return EVENT_ADAPTER.validate_python(
        {
            "event_id": f"00000000-0000-4000-8000-{n:012d}",
            "type": kind,
            "trial_id": "HAIC-PD1-LEN",
            "site_id": "site01",
            "patient_id": "P0001",
            "occurred_on": on,
            "recorded_by": "site01.coordinator",
            "reason": "typo" if kind in {"event_corrected", "event_retracted"} else None,
            "data": data,
        }
    )


ENROLLED = {
    "bclc_stage": "C",
    "child_pugh": "A6",
    "ecog": 1,
    "prior_systemic_therapy": ["sorafenib"],
    "baseline_pvtt": False,
    "baseline_extrahepatic_spread": False,
    "body_weight_kg": 64.5,
    "age_years": 58,
    "sex": "M",
}


def _course(*events: LedgerEvent) -> PatientCourse:
    history = effective_history(Recorded(seq, e) for seq, e in enumerate(events, start=1))
    course = course_from_history(history.events, DEFAULTS)
    assert course is not None
    return course


def test_startdt_is_the_first_dose_of_any_study_agent() -> None:
    course = _course(
        _event(1, "enrolled", "2024-01-05", ENROLLED),
        _event(2, "scan_read", "2024-01-03", {"timepoint": "baseline"}),
        _event(3, "infusion_given", "2024-01-12", {"agent": "haic", "cycle": 1}),
        _event(4, "dose_modified", "2024-01-10", {"agent": "lenvatinib", "action": "start"}),
        _event(5, "infusion_given", "2024-01-11", {"agent": "pd1", "cycle": 1}),
    )
    assert (course.startdt, course.startdt_seqs) == (START, (4,))
    assert course.baseline_assessment_on == day("2024-01-03")


def test_scan_older_than_the_screening_window_is_no_baseline() -> None:
    course = _course(
        _event(1, "scan_read", "2023-12-12", {"timepoint": "baseline"}),
        _event(2, "dose_modified", "2024-01-10", {"agent": "lenvatinib", "action": "start"}),
    )
    assert course.baseline_assessment_on is None


def test_patient_enrolled_but_never_dosed_has_no_startdt() -> None:
    course = _course(
        _event(1, "enrolled", "2024-01-05", ENROLLED),
        _event(
            2,
            "dose_modified",
            "2024-01-10",
            {"agent": "lenvatinib", "action": "reduce", "dose_mg": 8},
        ),
    )
    assert course.startdt is None
    assert derive_os(course, DEFAULTS) is None


def test_os_with_only_follow_up_contacts_is_censored_at_the_last_contact() -> None:
    course = _course(
        _event(1, "infusion_given", "2024-01-10", {"agent": "haic", "cycle": 1}),
        _event(2, "treatment_discontinued", "2024-02-01", {"cause": "patient_decision"}),
        _event(3, "follow_up_contact", "2024-04-30", {"method": "phone"}),
        _event(4, "follow_up_contact", "2024-03-15", {"method": "visit"}),
        _event(5, "withdrawn", "2024-07-01", {"kind": "lost_to_follow_up"}),
    )
    record = derive_os(course, DEFAULTS)
    assert record is not None
    assert (record.adt, record.aval, record.cnsr, record.srcseqs) == (
        day("2024-04-30"),
        112,
        Cnsr.LAST_KNOWN_ALIVE,
        (3,),
    )


def test_corrected_death_date_is_used_with_both_seqs() -> None:
    death = _event(2, "death", "2024-03-01", {"cause": "disease_progression"})
    course = _course(
        _event(1, "infusion_given", "2024-01-10", {"agent": "pd1", "cycle": 1}),
        death,
        _event(
            3,
            "event_corrected",
            "2024-03-05",
            {
                "target_event_id": str(death.event_id),
                "occurred_on": "2024-02-29",
                "data": {"cause": "disease_progression"},
            },
        ),
    )
    record = derive_os(course, DEFAULTS)
    assert record is not None
    assert (record.adt, record.aval, record.srcseqs) == (day("2024-02-29"), 51, (2, 3))


def test_only_anticancer_subsequent_therapy_censors_pfs() -> None:
    course = _course(
        _event(1, "infusion_given", "2024-01-10", {"agent": "haic", "cycle": 1}),
        _event(
            2,
            "subsequent_therapy_started",
            "2024-03-01",
            {"therapy": "paracentesis", "kind": "other", "anticancer": False},
        ),
        _event(
            3,
            "subsequent_therapy_started",
            "2024-03-20",
            {"therapy": "regorafenib", "kind": "systemic"},
        ),
    )
    assert (course.subsequent_therapy_on, course.subsequent_therapy_seqs) == (
        day("2024-03-20"),
        (3,),
    )
