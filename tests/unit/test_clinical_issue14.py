"""Hand-worked clinical cases for issue 14 "Clinical derivations" (items 21-24).

Calendar of tests/unit/test_endpoints.py (2024, a leap year): baseline scan 3 Jan, STARTDT =
first HAIC infusion 10 Jan (day 1); scans every 6 weeks on 21 Feb (day 43), 3 Apr (day 85),
15 May (day 127).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from events import ProtocolParameters
from projections.criteria.baseline import describe, screening_window_opens
from projections.criteria.recist import PD, PR, SD
from projections.criteria.response import MRECIST, RECIST
from projections.endpoints.patient_endpoints import TrialParameters
from projections.endpoints.summary import ResponseOutcome, response_rates
from projections.intake.rules import check_event, patient_facts
from projections.intake.warnings import baseline_warnings
from projections.safety.ctcae import check_ae
from projections.statistics.incidence import incidence_tables
from tests.unit.test_endpoints import (
    BASELINE,
    START,
    W6,
    W12,
    Ledger,
    best,
    derive,
    outcome,
    scan_data,
)
from tests.unit.test_incidence import TABLES, p, trial_patients
from tests.unit.test_incidence import treated as treated_patient
from tests.unit.test_intake_rules import ENROLLED, TODAY, ev, history
from tests.unit.test_intake_rules import errors as intake_errors
from tests.unit.test_mrecist import responses
from tests.unit.test_recist import WEEK_6, WEEK_12, baseline, scan, target
from tests.unit.test_safety import reported, updated

pytestmark = pytest.mark.unit

LUNG = {"organ": "lung", "location": "extrahepatic"}


def lung(ld: float, lesion_id: str = "L1") -> dict[str, Any]:
    return {"lesion_id": lesion_id, "role": "target", "longest_diameter_mm": ld, **LUNG}


def liver_target(ld: float, viable: float) -> dict[str, Any]:
    return {
        "lesion_id": "T1",
        "role": "target",
        "location": "intrahepatic",
        "organ": "liver",
        "longest_diameter_mm": ld,
        "viable_diameter_mm": viable,
    }


# --- 23. PFS extra-hepatic: RECIST 1.1 on the extra-hepatic targets, as intra-hepatic -----------


def test_growing_lung_target_is_extrahepatic_progression_while_the_liver_responds() -> None:
    # Liver viable 40 → 20 mm, lung 20 → 26 mm. Whole mRECIST sum 60 → 46 (−23 %): SD.
    # Extra-hepatic sum 20 → 26: +30 % and +6 mm over its nadir (20) — RECIST 1.1 PD.
    tp = responses(
        baseline(target("T1", 40.0, viable_diameter_mm=40.0), target("L1", 20.0, **LUNG)),
        scan(2, WEEK_6, target("T1", 40.0, viable_diameter_mm=20.0), target("L1", 26.0, **LUNG)),
        criterion=MRECIST,
    )[0]
    assert (tp.overall, tp.extrahepatic_pd, tp.intrahepatic_pd) == (SD, True, False)


def test_extrahepatic_growth_of_4_mm_is_not_progression_by_the_recist_5_mm_clause() -> None:
    # Lung 20 → 24 mm: +20 % but only +4 mm: RECIST 1.1 §4.3.1 needs 5 mm.
    tp = responses(
        baseline(target("T1", 40.0, viable_diameter_mm=40.0), target("L1", 20.0, **LUNG)),
        scan(2, WEEK_6, target("T1", 40.0, viable_diameter_mm=40.0), target("L1", 24.0, **LUNG)),
        criterion=MRECIST,
    )[0]
    assert not tp.extrahepatic_pd


def test_extrahepatic_progression_is_measured_against_the_extrahepatic_nadir() -> None:
    # Lung 30 → 15 (nadir) → 21 mm: +40 %, +6 mm over the nadir, still below baseline.
    tps = responses(
        baseline(target("T1", 40.0, viable_diameter_mm=40.0), target("L1", 30.0, **LUNG)),
        scan(2, WEEK_6, target("T1", 40.0, viable_diameter_mm=40.0), target("L1", 15.0, **LUNG)),
        scan(3, WEEK_12, target("T1", 40.0, viable_diameter_mm=40.0), target("L1", 21.0, **LUNG)),
        criterion=MRECIST,
    )
    assert [tp.extrahepatic_pd for tp in tps] == [False, True]


def test_extrahepatic_target_growth_is_no_event_when_the_parameter_excludes_baseline_disease() -> (
    None
):
    off = ProtocolParameters(extrahepatic_pd_includes_baseline_progression=False)
    tp = responses(
        baseline(target("T1", 40.0, viable_diameter_mm=40.0), target("L1", 20.0, **LUNG)),
        scan(2, WEEK_6, target("T1", 40.0, viable_diameter_mm=20.0), target("L1", 26.0, **LUNG)),
        criterion=MRECIST,
        params=off,
    )[0]
    assert not tp.extrahepatic_pd


def test_lung_target_growth_ends_extrahepatic_pfs_but_not_overall_pfs() -> None:
    ledger = Ledger()
    ledger.add(
        "scan_read", BASELINE, scan_data(liver_target(40.0, 40.0), lung(20.0), timepoint="baseline")
    )
    ledger.add("infusion_given", START, {"agent": "haic", "cycle": 1})
    ledger.add("scan_read", W6, scan_data(liver_target(40.0, 20.0), lung(26.0)))
    ledger.add("scan_read", W12, scan_data(liver_target(40.0, 20.0), lung(26.0)))
    result = derive(ledger)
    assert outcome(result, "PFSEH") == (W6, 43, 0)
    assert outcome(result, "PFS") == (W12, 85, 1)  # mRECIST SD throughout: censored


# --- 22. ADSL TRTEDT: the last date of exposure, also for daily lenvatinib still taken ---------


def on_lenvatinib(ledger: Ledger) -> None:
    """Lenvatinib 8 mg daily from 10 Jan 2024 (STARTDT), reduced to 4 mg on 1 Mar 2024."""
    ledger.add("scan_read", BASELINE, scan_data(liver_target(40.0, 40.0), timepoint="baseline"))
    ledger.add("dose_modified", START, {"agent": "lenvatinib", "action": "start", "dose_mg": 8})
    ledger.add(
        "dose_modified", "2024-03-01", {"agent": "lenvatinib", "action": "reduce", "dose_mg": 4}
    )


def contact(ledger: Ledger, on: str) -> None:
    ledger.add("follow_up_contact", on, {"method": "visit"})


def trtedt(ledger: Ledger, **knobs: Any) -> str | None:
    parameters = TrialParameters(1, 1, ProtocolParameters(**knobs))
    found = derive(ledger, parameters).adsl.trtedt
    return None if found is None else found.isoformat()


def test_ongoing_lenvatinib_is_taken_up_to_the_last_contact_not_the_last_dose_change() -> None:
    ledger = Ledger()
    on_lenvatinib(ledger)
    contact(ledger, "2024-05-15")
    assert trtedt(ledger) == "2024-05-15"


def test_ongoing_lenvatinib_exposure_ends_at_the_data_cutoff() -> None:
    ledger = Ledger()
    on_lenvatinib(ledger)
    contact(ledger, "2024-05-15")
    assert trtedt(ledger, data_cutoff="2024-04-30") == "2024-04-30"


def test_ongoing_lenvatinib_exposure_ends_at_death() -> None:
    ledger = Ledger()
    on_lenvatinib(ledger)
    ledger.add("death", "2024-04-20", {"cause": "disease_progression"})
    assert trtedt(ledger) == "2024-04-20"


def test_interrupted_lenvatinib_ends_exposure_on_the_interruption_date() -> None:
    ledger = Ledger()
    on_lenvatinib(ledger)
    ledger.add("dose_modified", "2024-04-01", {"agent": "lenvatinib", "action": "interrupt"})
    contact(ledger, "2024-05-15")
    assert trtedt(ledger) == "2024-04-01"


def test_lenvatinib_stopped_after_the_cutoff_was_ongoing_at_the_cutoff() -> None:
    # HAIC on 10 Jan and 31 Jan; lenvatinib stopped on 10 May, after the 30 Apr cut-off.
    ledger = Ledger()
    on_lenvatinib(ledger)
    ledger.add("infusion_given", START, {"agent": "haic", "cycle": 1})
    ledger.add("infusion_given", "2024-01-31", {"agent": "haic", "cycle": 2})
    ledger.add("dose_modified", "2024-05-10", {"agent": "lenvatinib", "action": "discontinue"})
    assert trtedt(ledger) == "2024-05-10"
    assert trtedt(ledger, data_cutoff="2024-04-30") == "2024-04-30"


def test_last_infusion_before_the_cutoff_ends_exposure_to_infused_agents() -> None:
    ledger = Ledger()
    ledger.add("scan_read", BASELINE, scan_data(liver_target(40.0, 40.0), timepoint="baseline"))
    for cycle, on in enumerate(("2024-01-10", "2024-01-31", "2024-02-21", "2024-03-13"), 1):
        ledger.add("infusion_given", on, {"agent": "haic", "cycle": cycle})
    assert trtedt(ledger) == "2024-03-13"
    assert trtedt(ledger, data_cutoff="2024-03-01") == "2024-02-21"


# --- 21. The data cut-off censors everything after it ------------------------------------------


def responder(ledger: Ledger) -> None:
    """Liver target 40 mm at baseline, 26 mm (−35 %, PR) on 21 Feb and on 3 Apr (confirmed)."""
    ledger.add("scan_read", BASELINE, scan_data(liver_target(40.0, 40.0), timepoint="baseline"))
    ledger.add("infusion_given", START, {"agent": "haic", "cycle": 1})
    ledger.add("scan_read", W6, scan_data(liver_target(26.0, 26.0)))
    ledger.add("scan_read", W12, scan_data(liver_target(26.0, 26.0)))


def with_cutoff(cutoff: str) -> TrialParameters:
    return TrialParameters(1, 1, ProtocolParameters(data_cutoff=cutoff))


def test_partial_response_confirmed_only_after_the_cutoff_is_stable_disease() -> None:
    # Without a cut-off: PR on 21 Feb confirmed by PR on 3 Apr (≥ 28 days): CBOR PR.
    # Cut-off 1 Mar: the 3 Apr read does not exist; the PR of day 43 (≥ STARTDT + 42) is
    # unconfirmed and counts as SD (admiralonco confirmed BOR).
    ledger = Ledger()
    responder(ledger)
    assert best(derive(ledger), MRECIST) == (PR, PR)
    assert best(derive(ledger, with_cutoff("2024-03-01")), MRECIST) == (PR, SD)
    assert best(derive(ledger, with_cutoff("2024-03-01")), RECIST) == (PR, SD)


def test_progression_after_the_cutoff_leaves_best_response_missing() -> None:
    ledger = Ledger()
    ledger.add("scan_read", BASELINE, scan_data(liver_target(40.0, 40.0), timepoint="baseline"))
    ledger.add("infusion_given", START, {"agent": "haic", "cycle": 1})
    ledger.add("scan_read", W6, scan_data(liver_target(60.0, 60.0)))
    assert best(derive(ledger), MRECIST) == (PD, PD)
    assert best(derive(ledger, with_cutoff("2024-02-01")), MRECIST) == ("MISSING", "MISSING")


def test_patient_treated_after_the_cutoff_has_no_best_response() -> None:
    ledger = Ledger()
    responder(ledger)
    result = derive(ledger, with_cutoff("2024-01-09"))
    assert not result.treated
    assert best(result, MRECIST) == ("MISSING", "MISSING")


def test_orr_counts_the_confirmed_response_as_of_the_cutoff() -> None:
    ledger = Ledger()
    responder(ledger)
    item = next(b for b in derive(ledger, with_cutoff("2024-03-01")).best if b.criterion == MRECIST)
    outcome_ = ResponseOutcome(True, item.measurable, item.bor.response, item.cbor.response)
    orr = {
        rate.confirmed: rate
        for rate in response_rates(MRECIST, [outcome_], at_seq=4, parameters_version=1)
        if rate.measure == "ORR"
    }
    assert (orr[True].responders, orr[False].responders) == (0, 1)


def adrs_ovr(result: Any, criterion: str = MRECIST) -> list[tuple[str, str, str | None]]:
    return [
        (row.adt.isoformat(), row.anl01fl, row.anl01rsn)
        for row in result.adrs
        if row.paramcd == "OVR" and row.parcat3 == criterion
    ]


def test_adrs_flags_the_timepoints_after_the_cutoff_as_not_analysed() -> None:
    ledger = Ledger()
    responder(ledger)
    assert adrs_ovr(derive(ledger, with_cutoff("2024-03-01"))) == [
        (W6, "Y", None),
        (W12, "N", "after_data_cutoff"),
    ]
    assert all(row.anl01fl == "Y" for row in derive(ledger).adrs)


def test_adrs_flags_the_timepoints_after_subsequent_therapy_as_not_analysed() -> None:
    ledger = Ledger()
    responder(ledger)
    ledger.add(
        "subsequent_therapy_started", "2024-03-20", {"therapy": "TACE", "kind": "locoregional"}
    )
    assert adrs_ovr(derive(ledger)) == [(W6, "Y", None), (W12, "N", "after_subsequent_therapy")]


def test_ae_with_onset_after_the_cutoff_is_not_in_adae() -> None:
    ledger = Ledger()
    responder(ledger)
    ledger.add("ae_reported", "2024-02-10", {"term": "Fatigue", "grade": 1})
    ledger.add("ae_reported", "2024-03-10", {"term": "Diarrhea", "grade": 2})
    terms = [row.aedecod for row in derive(ledger, with_cutoff("2024-03-01")).adae]
    assert terms == ["Fatigue"]


def test_worsening_after_the_cutoff_does_not_raise_the_adae_grade() -> None:
    ledger = Ledger()
    responder(ledger)
    report = ledger.add("ae_reported", "2024-02-10", {"term": "Hypertension", "grade": 1})
    ledger.add("ae_updated", "2024-03-10", {"ae_event_id": str(report.event.event_id), "grade": 3})
    [row] = derive(ledger, with_cutoff("2024-03-01")).adae
    assert row.atoxgr == 1


# The hand-built trial of tests/unit/test_incidence.py (STARTDT 6 Jan 2025, TEAE window to
# 5 Feb): with a cut-off on 31 Jan 2025, P05's pneumonitis (1 Feb), P06's hepatic failure
# (3 Feb) and both deaths (P06 5 Feb, P10 1 Jun) lie after it.


def tables_at(cutoff: str) -> Any:
    return incidence_tables(trial_patients(), ProtocolParameters(data_cutoff=cutoff))


def test_teaes_after_the_cutoff_are_not_counted() -> None:
    tables = tables_at("2025-01-31")
    assert tables.n_treated == 10
    assert tables.overall.any_grade.patient_keys == tuple(p(n) for n in (1, 2, 3, 4, 9, 10))
    assert tables.overall.grade(4).patients == 0
    assert tables.overall.grade(5).patients == 0


def test_deaths_after_the_cutoff_are_not_counted() -> None:
    assert TABLES.deaths.patients == 2
    assert tables_at("2025-01-31").deaths.patients == 0


def test_grade_raised_after_the_cutoff_is_not_the_worst_grade() -> None:
    # P02: Hypertension grade 1 on 15 Jan, grade 3 on 22 Jan; cut-off 21 Jan.
    tables = tables_at("2025-01-21")
    assert p(2) in tables.overall.grade(1).patient_keys
    assert p(2) not in tables.overall.grade_3_or_more.patient_keys


def test_patients_first_treated_after_the_cutoff_are_not_in_the_safety_population() -> None:
    assert tables_at("2025-01-05").n_treated == 0


# --- 24. One screening window for the intake and the engine; baseline flags shown -------------

ENROLLMENT = {
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


def late_first_dose(ledger: Ledger, *baseline_lesions: dict[str, Any]) -> None:
    """Baseline CT on 10 Dec 2023, enrolled 1 Jan 2024 (22 days later: inside the 28-day
    screening window the intake accepts), first HAIC on 20 Jan 2024 — 41 days after the scan.
    Follow-up on 2 Mar 2024 (day 43): liver target 40 → 26 mm (−35 %, PR)."""
    ledger.add("enrolled", "2024-01-01", ENROLLMENT)
    lesions = baseline_lesions or (liver_target(40.0, 40.0),)
    ledger.add("scan_read", "2023-12-10", scan_data(*lesions, timepoint="baseline"))
    ledger.add("infusion_given", "2024-01-20", {"agent": "haic", "cycle": 1})
    ledger.add("scan_read", "2024-03-02", scan_data(liver_target(26.0, 26.0)))


def criterion_best(result: Any, criterion: str) -> Any:
    return next(b for b in result.best if b.criterion == criterion)


def test_baseline_scan_the_intake_accepted_is_the_baseline_when_the_first_dose_comes_late() -> None:
    ledger = Ledger()
    late_first_dose(ledger)
    result = derive(ledger)
    assert criterion_best(result, MRECIST).measurable
    assert best(result, MRECIST) == (PR, SD)  # PR unconfirmed on day 43: SD when confirmed
    assert result.adsl.measmfl == "Y"
    # PFS censored at the last adequate assessment, not at STARTDT for want of a baseline.
    assert outcome(result, "PFS") == ("2024-03-02", 43, 1)


def test_baseline_scan_before_the_screening_window_leaves_the_patient_without_baseline() -> None:
    ledger = Ledger()
    ledger.add("enrolled", "2024-01-01", ENROLLMENT)
    ledger.add("scan_read", "2023-12-03", scan_data(liver_target(40.0, 40.0), timepoint="baseline"))
    ledger.add("infusion_given", "2024-01-02", {"agent": "haic", "cycle": 1})
    flags = criterion_best(derive(ledger), MRECIST).baseline_flags
    assert flags == ("no_baseline", "baseline_outside_screening_window:2023-12-03")


def test_baseline_scan_after_the_first_dose_is_flagged_as_unusable() -> None:
    ledger = Ledger()
    ledger.add("enrolled", "2024-01-01", ENROLLMENT)
    ledger.add("infusion_given", "2024-01-02", {"agent": "haic", "cycle": 1})
    ledger.add("scan_read", "2024-01-05", scan_data(liver_target(40.0, 40.0), timepoint="baseline"))
    result = derive(ledger)
    assert criterion_best(result, RECIST).baseline_flags == (
        "no_baseline",
        "baseline_after_startdt:2024-01-05",
    )
    assert outcome(result, "PFS") == ("2024-01-02", 1, 2)


def target_in(lesion_id: str, ld: float, organ: str = "liver") -> dict[str, Any]:
    location = "intrahepatic" if organ == "liver" else "extrahepatic"
    return {
        "lesion_id": lesion_id,
        "role": "target",
        "location": location,
        "organ": organ,
        "longest_diameter_mm": ld,
        "viable_diameter_mm": ld,
    }


def test_baseline_with_six_targets_three_in_the_liver_is_flagged_for_each_breach() -> None:
    ledger = Ledger()
    late_first_dose(
        ledger,
        target_in("T1", 40.0),
        target_in("T2", 30.0),
        target_in("T3", 20.0),
        target_in("L1", 15.0, "lung"),
        target_in("L2", 12.0, "lung"),
        target_in("A1", 11.0, "adrenal"),
    )
    flags = criterion_best(derive(ledger), RECIST).baseline_flags
    assert flags == ("more_than_5_targets", "more_than_2_targets_in:liver")


def test_baseline_with_only_a_non_measurable_target_is_flagged_and_outside_the_orr_denominator() -> (
    None
):
    ledger = Ledger()
    late_first_dose(ledger, target_in("T1", 8.0))
    item = criterion_best(derive(ledger), RECIST)
    assert not item.measurable
    assert item.baseline_flags == ("target_not_measurable:T1", "no_measurable_disease")


def test_adsl_shows_the_baseline_flags_per_criterion() -> None:
    ledger = Ledger()
    late_first_dose(ledger, target_in("T1", 8.0))
    adsl = derive(ledger).adsl
    assert adsl.blflgr == "target_not_measurable:T1;no_measurable_disease"
    assert adsl.blflgm == "target_not_measurable:T1;no_measurable_disease"


# The intake: the same window, and a warning for every baseline flag of an accepted event.


def warnings_for(recorded: list[Any], event: Any) -> list[tuple[str, str]]:
    facts = patient_facts(recorded)
    assert check_event(facts, event, ProtocolParameters(), TODAY, check_ae) == []
    return [(w.field, w.message) for w in baseline_warnings(facts, event, ProtocolParameters())]


def baseline_read(on: str, *lesions: dict[str, Any]) -> Any:
    return ev("scan_read", occurred_on=on, data={"lesions": list(lesions)})


def test_intake_and_engine_open_the_screening_window_on_the_same_day() -> None:
    # Enrolled 3 Feb 2025: the window opens on 6 Jan for both (28 days before enrollment).
    params = ProtocolParameters()
    opens = screening_window_opens(dt.date(2025, 2, 3), dt.date(2025, 2, 20), params)
    assert opens == dt.date(2025, 1, 6)
    assert intake_errors(history(ENROLLED), baseline_read("2025-01-06", target_in("T1", 40))) == []
    assert intake_errors(history(ENROLLED), baseline_read("2025-01-05", target_in("T1", 40)))


def test_clean_baseline_scan_is_accepted_without_warning() -> None:
    assert warnings_for(history(ENROLLED), baseline_read("2025-01-28", target_in("T1", 40))) == []


def test_baseline_with_only_an_8_mm_target_is_accepted_with_warnings() -> None:
    found = warnings_for(history(ENROLLED), baseline_read("2025-01-28", target_in("T1", 8)))
    assert found == [
        ("data.lesions", "RECIST 1.1 and mRECIST: " + describe("target_not_measurable:T1")),
        ("data.lesions", "RECIST 1.1 and mRECIST: " + describe("no_measurable_disease")),
    ]


def test_baseline_with_three_liver_targets_warns_of_the_two_per_organ_rule() -> None:
    lesions = [target_in(f"T{k}", 30) for k in (1, 2, 3)]
    found = warnings_for(history(ENROLLED), baseline_read("2025-01-28", *lesions))
    assert [message for _, message in found] == [
        "RECIST 1.1 and mRECIST: more than 2 target lesions in liver (RECIST 1.1 allows 2 per organ)"
    ]


def test_baseline_scan_dated_after_the_first_dose_is_accepted_with_a_warning() -> None:
    first_dose = ev("infusion_given", occurred_on="2025-02-05")
    found = warnings_for(
        history(ENROLLED, first_dose), baseline_read("2025-02-07", target_in("T1", 40))
    )
    assert found == [("occurred_on", describe("baseline_after_startdt:2025-02-07"))]


def test_first_dose_dated_before_the_recorded_baseline_scan_warns_that_it_is_lost() -> None:
    scan = baseline_read("2025-02-07", target_in("T1", 40))
    found = warnings_for(history(ENROLLED, scan), ev("infusion_given", occurred_on="2025-02-05"))
    assert found == [("occurred_on", describe("baseline_after_startdt:2025-02-07"))]


def test_ae_that_became_life_threatening_only_after_the_cutoff_is_not_serious_at_the_cutoff() -> (
    None
):
    # Pneumonitis grade 2 on 20 Jan 2025, grade 4 (life-threatening: serious) on 3 Feb.
    pneumonitis = treated_patient(
        1,
        reported(11, "2025-01-20", "Pneumonitis", 2, patient="P01", expected=False),
        updated(12, "2025-02-03", ae=11, grade=4, patient="P01"),
    )
    assert incidence_tables([pneumonitis]).serious.patients == 1
    at_cutoff = incidence_tables([pneumonitis], ProtocolParameters(data_cutoff="2025-01-31"))
    assert (at_cutoff.serious.patients, at_cutoff.overall.grade(2).patients) == (0, 1)


def test_ongoing_lenvatinib_of_a_patient_lost_to_follow_up_ends_at_the_last_contact() -> None:
    ledger = Ledger()
    on_lenvatinib(ledger)
    contact(ledger, "2024-04-10")
    ledger.add("withdrawn", "2024-06-30", {"kind": "lost_to_follow_up"})
    assert trtedt(ledger) == "2024-04-10"
