"""The trial simulator: a seeded, realistic trial whose every submission the writer accepts."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import itertools
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from events import decode
from events.scans import ScanReadData
from projections.criteria.reader_calls import engine_calls
from projections.fold.history import Recorded
from projections.intake.rules import check_event, patient_facts
from projections.safety.ctcae import check_ae
from services.simulator.scans import WRONG_CALL
from services.simulator.trial import SimulatedTrial, SubmissionReport, generate_trial, submit_trial

pytestmark = pytest.mark.unit

Event = dict[str, Any]

CTCAE_CSV = Path(__file__).parents[2] / "projections" / "safety" / "data" / "ctcae_v5_terms.csv"
SCREENING_WINDOW_DAYS = 28
SITE_TYPES = {
    "protocol_parameters_set", "enrolled", "infusion_given", "dose_modified", "scan_read",
    "ae_reported", "ae_updated", "death", "follow_up_contact", "subsequent_therapy_started",
    "treatment_discontinued", "withdrawn", "event_corrected", "event_retracted",
}  # fmt: skip
TODAY = dt.date(2026, 11, 24)


@pytest.fixture(scope="module")
def trial() -> SimulatedTrial:
    return generate_trial(today=TODAY)


@pytest.fixture(scope="module", params=[7, 11, 2024])
def any_trial(request: pytest.FixtureRequest) -> SimulatedTrial:
    return generate_trial(seed=request.param, today=TODAY)


def by_patient(trial: SimulatedTrial) -> dict[str, list[Event]]:
    """Each patient's events in the order their site submits them."""
    patients: dict[str, list[Event]] = defaultdict(list)
    for events in trial.site_events.values():
        for event in events:
            patients[event["patient_id"]].append(event)
    return patients


def day(event: Event) -> dt.date:
    return dt.date.fromisoformat(event["occurred_on"])


def effective(events: list[Event]) -> list[Event]:
    """The patient's events with corrections applied and retracted ones left out."""
    current = {
        e["event_id"]: e for e in events if e["type"] not in ("event_corrected", "event_retracted")
    }
    for event in events:
        target = current.get(event["data"].get("target_event_id", ""))
        if event["type"] == "event_corrected" and target is not None:
            current[target["event_id"]] = {**target, "data": event["data"]["data"]}
        elif event["type"] == "event_retracted" and target is not None:
            del current[target["event_id"]]
    return list(current.values())


def ctcae_grades() -> dict[str, set[int]]:
    with CTCAE_CSV.open(newline="", encoding="utf-8") as handle:
        return {
            row["term"]: {g for g in range(1, 6) if row[f"grade_{g}"].strip() not in ("", "-")}
            for row in csv.DictReader(handle)
        }


# --- determinism and size ---------------------------------------------------------------


def test_the_same_seed_gives_identical_submissions() -> None:
    assert generate_trial(seed=5, today=TODAY) == generate_trial(seed=5, today=TODAY)


def test_different_seeds_give_different_trials() -> None:
    first, second = generate_trial(seed=5, today=TODAY), generate_trial(seed=6, today=TODAY)
    assert first.all_events() != second.all_events()
    assert first.parameters_event["event_id"] != second.parameters_event["event_id"]


def test_default_trial_has_six_sites_each_recruiting_and_72_patients(trial: SimulatedTrial) -> None:
    assert list(trial.site_events) == ["site01", "site02", "site03", "site04", "site05", "site06"]
    assert len(trial.patient_ids()) == 72
    for site_id, events in trial.site_events.items():
        assert events, site_id
        assert {e["site_id"] for e in events} == {site_id}
        assert all(e["patient_id"].startswith(f"S{site_id[-2:]}-P") for e in events)


def test_parameters_event_is_the_sponsors_and_lists_the_sites(trial: SimulatedTrial) -> None:
    event = trial.parameters_event
    assert (event["site_id"], event["patient_id"]) == ("_sponsor", "_trial")
    assert event["data"]["parameters"]["sites"] == list(trial.site_events)
    assert trial.all_events()[0] is event


def test_every_type_a_site_submits_appears(any_trial: SimulatedTrial) -> None:
    assert set(any_trial.counts_by_type()) == SITE_TYPES


def test_counts_by_type_add_up_to_all_events(trial: SimulatedTrial) -> None:
    counts = trial.counts_by_type()
    assert sum(counts.values()) == len(trial.all_events())
    assert counts["enrolled"] == 72
    assert counts["protocol_parameters_set"] == 1


def test_every_event_decodes_strictly(any_trial: SimulatedTrial) -> None:
    for event in any_trial.all_events():
        decode(event, mode="strict")


def test_event_ids_are_unique_version_4_uuids(any_trial: SimulatedTrial) -> None:
    ids = [event["event_id"] for event in any_trial.all_events()]
    assert len(ids) == len(set(ids))
    assert all(event_id[14] == "4" for event_id in ids)


# --- the writer's patient rules ----------------------------------------------------------


def test_each_patient_begins_with_their_only_enrollment(any_trial: SimulatedTrial) -> None:
    for patient_id, events in by_patient(any_trial).items():
        assert events[0]["type"] == "enrolled", patient_id
        assert [e["type"] for e in events].count("enrolled") == 1, patient_id


def test_no_clinical_date_lies_after_today(any_trial: SimulatedTrial) -> None:
    assert max(day(e) for e in any_trial.all_events()) <= any_trial.cutoff <= TODAY


def test_a_trial_stopped_mid_enrollment_has_nothing_after_that_day() -> None:
    today = dt.date(2024, 7, 1)
    stopped = generate_trial(seed=3, today=today)
    assert stopped.cutoff == today
    assert 0 < len(stopped.patient_ids()) < 72
    for event in stopped.all_events():
        assert day(event) <= today
        for key in ("resolved_on",):
            assert event["data"].get(key) is None or event["data"][key] <= today.isoformat()
        aware = event["data"].get("site_aware_at")
        assert aware is None or aware[:10] <= today.isoformat()


def test_default_cut_off_is_about_two_years_after_the_start() -> None:
    assert generate_trial(seed=1).cutoff == dt.date(2024, 1, 8) + dt.timedelta(days=730)


def test_only_the_baseline_scan_precedes_enrollment_within_the_screening_window(
    any_trial: SimulatedTrial,
) -> None:
    for patient_id, events in by_patient(any_trial).items():
        enrolled_on = day(events[0])
        for event in events:
            if day(event) >= enrolled_on:
                continue
            assert event["type"] == "scan_read", patient_id
            assert event["data"]["timepoint"] == "baseline", patient_id
            assert (enrolled_on - day(event)).days <= SCREENING_WINDOW_DAYS, patient_id


def test_nothing_is_dated_after_the_patients_death(any_trial: SimulatedTrial) -> None:
    for patient_id, events in by_patient(any_trial).items():
        deaths = [day(e) for e in events if e["type"] == "death"]
        assert len(deaths) <= 1, patient_id
        if deaths:
            assert max(day(e) for e in events) == deaths[0], patient_id


def test_nothing_happens_after_a_withdrawal(any_trial: SimulatedTrial) -> None:
    for patient_id, events in by_patient(any_trial).items():
        withdrawn = [day(e) for e in events if e["type"] == "withdrawn"]
        if withdrawn:
            assert max(day(e) for e in events) == withdrawn[0], patient_id
            assert not any(e["type"] == "death" for e in events), patient_id


def test_dosing_events_name_a_protocol_agent(any_trial: SimulatedTrial) -> None:
    for event in any_trial.all_events():
        if event["type"] in ("infusion_given", "dose_modified"):
            assert event["data"]["agent"] in ("haic", "pd1", "lenvatinib")


def test_follow_up_scans_keep_the_baseline_lesion_ids_and_new_lesions_get_new_ones(
    any_trial: SimulatedTrial,
) -> None:
    for patient_id, events in by_patient(any_trial).items():
        scans = [e for e in effective(events) if e["type"] == "scan_read"]
        baseline = [s for s in scans if s["data"]["timepoint"] == "baseline"]
        assert len(baseline) == 1, patient_id
        roles = {les["lesion_id"]: les["role"] for les in baseline[0]["data"]["lesions"]}
        for scan in scans[1:]:
            lesions = scan["data"]["lesions"]
            known = {les["lesion_id"]: les["role"] for les in lesions if les["role"] != "new"}
            assert known == roles, patient_id
            new_ids = {les["lesion_id"] for les in lesions if les["role"] == "new"}
            assert not new_ids & set(roles), patient_id


def test_ae_terms_and_grades_exist_in_ctcae_v5(any_trial: SimulatedTrial) -> None:
    allowed = ctcae_grades()
    reported: dict[str, str] = {}
    for event in any_trial.all_events():
        data = event["data"]
        if event["type"] in ("ae_reported", "event_corrected") and "term" in data.get("data", data):
            ae = data.get("data", data)
            assert ae["grade"] in allowed[ae["term"]], ae
            reported[data.get("target_event_id", event["event_id"])] = ae["term"]
        elif event["type"] == "ae_updated" and data.get("grade") is not None:
            assert data["grade"] in allowed[reported[data["ae_event_id"]]]


def test_a_fatal_ae_reaches_grade_5_only_after_the_death_that_names_it(
    any_trial: SimulatedTrial,
) -> None:
    fatal = 0
    for patient_id, events in by_patient(any_trial).items():
        deaths = [e for e in events if e["type"] == "death"]
        for index, update in enumerate(events):
            if update["type"] != "ae_updated" or update["data"].get("grade") != 5:
                continue
            ae_id = update["data"]["ae_event_id"]
            assert [d["data"].get("ae_event_id") for d in deaths] == [ae_id], patient_id
            assert deaths[0] in events[:index], patient_id
            assert deaths[0]["occurred_on"] == update["occurred_on"], patient_id
            assert deaths[0]["data"]["cause"] == "adverse_event"
            assert update["data"]["outcome"] == "fatal" and "death" in update["data"]["seriousness"]
            fatal += 1
        assert all(e["data"]["grade"] < 5 for e in events if e["type"] == "ae_reported")
    assert fatal >= 2


def test_corrections_and_retractions_come_after_their_target_in_the_same_patient(
    any_trial: SimulatedTrial,
) -> None:
    for patient_id, events in by_patient(any_trial).items():
        seen: dict[str, Event] = {}
        for event in events:
            if event["type"] in ("event_corrected", "event_retracted"):
                target = seen[event["data"]["target_event_id"]]
                assert target["type"] not in ("event_corrected", "event_retracted")
                assert event["reason"], patient_id
                assert event["occurred_on"] == target["occurred_on"]
            if event["type"] == "event_corrected":
                decode({**target, "data": event["data"]["data"]}, mode="strict")
                assert event["data"]["data"] != target["data"]
            seen[event["event_id"]] = event


def test_references_to_an_ae_point_back_to_that_patients_report(
    any_trial: SimulatedTrial,
) -> None:
    for patient_id, events in by_patient(any_trial).items():
        reported: set[str] = set()
        for event in events:
            if event["type"] == "ae_reported":
                reported.add(event["event_id"])
            reference = event["data"].get("ae_event_id")
            if reference is not None:
                assert reference in reported, (patient_id, event["type"])


def test_serious_aes_name_their_criteria_and_some_are_susars(any_trial: SimulatedTrial) -> None:
    reports = [e["data"] for e in any_trial.all_events() if e["type"] == "ae_reported"]
    serious = [ae for ae in reports if ae["serious"]]
    assert all(ae["seriousness"] for ae in serious)
    suspected = ("possible", "probable", "definite")
    susars = [ae for ae in serious if not ae["expected"]
              and any(c in suspected for c in ae["attribution"].values())]  # fmt: skip
    assert susars
    assert all(ae["site_aware_at"].endswith("Z") for ae in reports)


# --- realism -----------------------------------------------------------------------------


def test_treatment_starts_within_a_week_of_enrollment(trial: SimulatedTrial) -> None:
    for patient_id, events in by_patient(trial).items():
        dosing = [day(e) for e in events if e["type"] in ("infusion_given", "dose_modified")]
        assert 1 <= (min(dosing) - day(events[0])).days <= 7, patient_id


def test_lenvatinib_starts_at_8_mg_under_60_kg_else_12_and_steps_down(
    any_trial: SimulatedTrial,
) -> None:
    for patient_id, events in by_patient(any_trial).items():
        weight = effective(events)[0]["data"]["body_weight_kg"]
        in_clinical_order = sorted(effective(events), key=day)
        doses = [e["data"] for e in in_clinical_order if e["type"] == "dose_modified"
                 and e["data"]["agent"] == "lenvatinib"]  # fmt: skip
        assert doses[0] == {"agent": "lenvatinib", "action": "start", "cause": "protocol",
                            "dose_mg": 8 if weight < 60 else 12}, patient_id  # fmt: skip
        stepped = [d["dose_mg"] for d in doses if d["action"] in ("start", "reduce", "resume")]
        assert all(b < a for a, b in itertools.pairwise(stepped)), patient_id
        assert set(stepped) <= {12, 8, 4}
        for change in doses[1:]:
            if change["action"] in ("reduce", "interrupt"):
                assert change["cause"] == "adverse_event" and change["ae_event_id"]


def test_haic_runs_at_most_eight_cycles_three_weeks_apart(trial: SimulatedTrial) -> None:
    for patient_id, events in by_patient(trial).items():
        haic = sorted(day(e) for e in effective(events) if e["type"] == "infusion_given"
                      and e["data"]["agent"] == "haic")  # fmt: skip
        assert len(haic) <= 8, patient_id
        assert all(21 <= (b - a).days <= 28 for a, b in itertools.pairwise(haic))


def test_scans_fall_every_six_weeks_within_a_week_of_schedule(trial: SimulatedTrial) -> None:
    for patient_id, events in by_patient(trial).items():
        start = min(day(e) for e in events if e["type"] == "infusion_given")
        for scan in (e for e in events if e["type"] == "scan_read"):
            if scan["data"]["timepoint"] == "follow_up":
                offset = (day(scan) - start).days
                assert abs(offset - 42 * round(offset / 42)) <= 7, patient_id


def test_baseline_scans_have_one_to_four_targets_at_most_two_per_organ(
    any_trial: SimulatedTrial,
) -> None:
    for event in any_trial.all_events():
        if event["type"] == "scan_read" and event["data"]["timepoint"] == "baseline":
            targets = [les for les in event["data"]["lesions"] if les["role"] == "target"]
            assert 1 <= len(targets) <= 4
            assert max(Counter(les["organ"] for les in targets).values()) <= 2
            for les in targets:
                if les["location"] == "intrahepatic":
                    assert les["viable_diameter_mm"] <= les["longest_diameter_mm"]


def test_the_mix_resembles_a_phase_2_hcc_trial(trial: SimulatedTrial) -> None:
    counts = trial.counts_by_type()
    patients = by_patient(trial)
    enrollments = [e["data"] for e in trial.all_events() if e["type"] == "enrolled"]
    reports = [e["data"] for e in trial.all_events() if e["type"] == "ae_reported"]
    assert 0.25 <= counts["death"] / len(patients) <= 0.6
    assert 0.2 <= sum(d["baseline_pvtt"] for d in enrollments) / len(enrollments) <= 0.5
    assert 3 <= counts["ae_reported"] / len(patients) <= 6
    assert 0.08 <= sum(ae["serious"] for ae in reports) / len(reports) <= 0.25
    assert 0.015 <= counts["event_corrected"] / len(trial.all_events()) <= 0.05
    assert 1 <= counts["withdrawn"] <= 6
    enrolled_on = sorted(day(events[0]) for events in patients.values())
    assert (enrolled_on[-1] - enrolled_on[0]).days >= 300


def test_progressions_include_pvtt_growth_and_new_extrahepatic_lesions(
    any_trial: SimulatedTrial,
) -> None:
    scans = [e["data"] for e in any_trial.all_events() if e["type"] == "scan_read"]
    assert any(s.get("pvtt", {}).get("present") for s in scans)
    new_extrahepatic = [s for s in scans if any(
        les["role"] == "new" and les["location"] == "extrahepatic" for les in s["lesions"])]  # fmt: skip
    assert new_extrahepatic
    called_pd = [s for s in new_extrahepatic if s["reader_calls"]["recist"] == "PD"]
    assert len(called_pd) >= 0.5 * len(new_extrahepatic)  # a few wrong calls on purpose


def test_progression_ends_treatment_and_is_followed_up(trial: SimulatedTrial) -> None:
    stopped = [e for e in trial.all_events() if e["type"] == "treatment_discontinued"]
    assert Counter(e["data"]["cause"] for e in stopped).most_common(1)[0][0] == "progression"
    assert trial.counts_by_type()["follow_up_contact"] > 0
    assert trial.counts_by_type()["subsequent_therapy_started"] > 0


# --- the simulated reader's calls: the response engine's, wrong only on purpose --------------


def read(on: str, *lesions: tuple[str, float, float], pvtt: tuple[str, float] | None = None) -> Any:
    data: dict[str, Any] = {
        "modality": "CT",
        "timepoint": "baseline" if not lesions or on == "2025-01-01" else "follow_up",
        "reader": "rad01",
        "lesions": [
            {"lesion_id": lesion_id, "location": "intrahepatic", "organ": "liver",
             "role": "target", "longest_diameter_mm": ld, "viable_diameter_mm": viable}
            for lesion_id, ld, viable in lesions
        ],
    }  # fmt: skip
    if pvtt is not None:
        grade, size = pvtt
        data["pvtt"] = {"present": True, "vp_grade": grade, "thrombus_diameter_mm": size,
                        "enhancing": True, "branch": "right_portal"}  # fmt: skip
    return dt.date.fromisoformat(on), ScanReadData.model_validate(data)


def test_target_sum_up_exactly_20_percent_and_5_mm_over_the_nadir_is_progression() -> None:
    # nadir 60.0 mm, then 72.0 mm: +12.0 mm = 20 % of 60.0 and ≥ 5 mm
    base, nadir = read("2025-01-01", ("T1", 100.0, 100.0)), read("2025-03-01", ("T1", 60.0, 60.0))
    up = engine_calls([base, nadir, read("2025-05-01", ("T1", 72.0, 72.0))])
    just_under = engine_calls([base, nadir, read("2025-05-01", ("T1", 71.9, 71.9))])
    assert (up[1]["recist"], just_under[1]["recist"]) == ("PD", "SD")


def test_recist_needs_5_mm_but_mrecist_does_not() -> None:
    # nadir 10.0 mm, then 14.0 mm: +40 % but only 4.0 mm
    base = read("2025-01-01", ("T1", 30.0, 30.0))
    calls = engine_calls([base, read("2025-03-01", ("T1", 10.0, 10.0)), read("2025-05-01", ("T1", 14.0, 14.0))])  # fmt: skip
    assert (calls[1]["recist"], calls[1]["mrecist"]) == ("PR", "PD")


def test_pvtt_is_called_only_when_the_baseline_shows_a_thrombus_and_progresses_on_a_higher_grade() -> None:  # fmt: skip
    base = read("2025-01-01", ("T1", 50.0, 50.0), pvtt=("Vp2", 15.0))
    calls = engine_calls([base, read("2025-03-01", ("T1", 50.0, 50.0), pvtt=("Vp3", 9.0))])
    assert calls[0]["pvtt"] == "PD"
    plain = engine_calls([read("2025-01-01", ("T1", 50.0, 50.0)), read("2025-03-01", ("T1", 50.0, 50.0))])  # fmt: skip
    assert "pvtt" not in plain[0]


def test_the_simulated_reader_disagrees_with_the_engine_only_where_it_errs_on_purpose(
    any_trial: SimulatedTrial,
) -> None:
    disagreements = 0
    for events in by_patient(any_trial).values():
        scans = [e for e in events if e["type"] == "scan_read"]
        if len(scans) < 2 or any(
            e["type"] in ("event_corrected", "event_retracted") for e in events
        ):
            continue  # a mistyped read, corrected later, was called on the true measurements
        dated = [
            (dt.date.fromisoformat(e["occurred_on"]), ScanReadData.model_validate(
                {k: v for k, v in e["data"].items() if k != "reader_calls"}))
            for e in scans
        ]  # fmt: skip
        for scan, engine in zip(scans[1:], engine_calls(dated), strict=True):
            reader = scan["data"]["reader_calls"]
            assert reader.keys() == engine.keys()
            wrong = [c for c in engine if reader[c] != engine[c]]
            assert all(reader[c] == WRONG_CALL[engine[c]] for c in wrong)
            disagreements += len(wrong)
    assert disagreements > 0  # the engine has something to flag


# --- submission through the intake ------------------------------------------------------


class FakeIntake:
    """An in-memory writer: dedup by event_id, enrollment first, site order recorded."""

    def __init__(self, reject_types: frozenset[str] = frozenset()) -> None:
        self.reject_types = reject_types
        self.seqs: dict[str, int] = {}
        self.order: list[Event] = []
        self.enrolled: set[str] = set()
        self.in_flight = 0
        self.most_in_flight = 0

    def client(self, site_id: str) -> FakeSiteClient:
        return FakeSiteClient(self, site_id)

    def judge(self, site_id: str, event: Event) -> dict[str, Any]:
        event_id = event["event_id"]
        if event_id in self.seqs:
            return {"event_id": event_id, "status": "duplicate", "seq": self.seqs[event_id]}
        patient = event["patient_id"]
        errors = []
        if event["site_id"] != site_id:
            errors.append({"field": "site_id", "message": "not this site's patient"})
        if event["type"] in self.reject_types:
            errors.append({"field": "type", "message": "refused by this fake"})
        if (
            event["type"] not in ("enrolled", "protocol_parameters_set")
            and patient not in self.enrolled
        ):
            errors.append({"field": "patient_id", "message": "patient not enrolled"})
        if errors:
            return {"event_id": event_id, "status": "rejected", "errors": errors}
        self.enrolled.add(patient)
        self.order.append(event)
        self.seqs[event_id] = len(self.order)
        return {"event_id": event_id, "status": "accepted", "seq": len(self.order)}


class FakeSiteClient:
    def __init__(self, intake: FakeIntake, site_id: str) -> None:
        self.intake, self.site_id = intake, site_id

    async def submit_batch(self, events: list[Event]) -> list[Event]:
        self.intake.in_flight += 1
        self.intake.most_in_flight = max(self.intake.most_in_flight, self.intake.in_flight)
        await asyncio.sleep(0)
        self.intake.in_flight -= 1
        return [self.intake.judge(self.site_id, event) for event in events]


@pytest.fixture(scope="module")
def small_trial() -> SimulatedTrial:
    return generate_trial(seed=3, sites=5, patients=60, today=TODAY)


async def test_parameters_go_first_then_every_site_in_its_own_order(
    small_trial: SimulatedTrial,
) -> None:
    intake = FakeIntake()
    report = await submit_trial(small_trial, intake.client, batch_size=7, concurrency=3)
    assert report.rejected == 0 and report.duplicate == 0
    assert report.accepted == len(small_trial.all_events())
    assert intake.order[0] is small_trial.parameters_event
    for site_id, events in small_trial.site_events.items():
        assert [e for e in intake.order if e["site_id"] == site_id] == events


async def test_sites_submit_concurrently_but_within_the_limit(small_trial: SimulatedTrial) -> None:
    intake = FakeIntake()
    await submit_trial(small_trial, intake.client, batch_size=5, concurrency=3)
    assert intake.most_in_flight == 3


async def test_progress_counts_every_submitted_event(small_trial: SimulatedTrial) -> None:
    seen: list[int] = []
    await submit_trial(small_trial, FakeIntake().client, batch_size=20, progress=seen.append)
    assert sum(seen) == len(small_trial.all_events())
    assert max(seen) == 20


async def test_submitting_the_trial_twice_answers_duplicates(small_trial: SimulatedTrial) -> None:
    intake = FakeIntake()
    await submit_trial(small_trial, intake.client)
    again = await submit_trial(small_trial, intake.client)
    assert again == SubmissionReport(duplicate=len(small_trial.all_events()))


async def test_rejections_are_counted_and_the_first_twenty_kept(
    small_trial: SimulatedTrial,
) -> None:
    intake = FakeIntake(reject_types=frozenset({"follow_up_contact"}))
    report = await submit_trial(small_trial, intake.client)
    refused = small_trial.counts_by_type()["follow_up_contact"]
    assert refused > 20
    assert report.rejected == refused
    assert report.accepted == len(small_trial.all_events()) - refused
    assert len(report.rejected_replies) == 20
    assert all(reply["status"] == "rejected" for reply in report.rejected_replies)


# --- the writer's own rules accept the whole trial ---------------------------------------


def test_the_writers_patient_rules_accept_every_simulated_event(any_trial: SimulatedTrial) -> None:
    params = decode(any_trial.parameters_event).data.parameters  # type: ignore[union-attr]
    recorded: dict[str, list[Recorded]] = defaultdict(list)
    seq = 1
    for site_id, events in any_trial.site_events.items():
        assert site_id in params.sites
        for raw in events:
            event = decode(raw, mode="strict")
            history = recorded[raw["patient_id"]]
            errors = check_event(patient_facts(history), event, params, TODAY, check_ae)
            assert errors == [], (raw["patient_id"], raw["type"], errors)
            seq += 1
            history.append(Recorded(seq, event))
