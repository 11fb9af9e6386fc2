"""Clinical endpoints wired from ledger entries (projections.endpoints.patient_endpoints, endpoints_summary).

Given a patient's ledger entries → these ADTTE records, best responses and ADaM rows; given
ADTTE values → these trial summaries. Calendar (2024 is a leap year): STARTDT is the first
HAIC infusion on 10 Jan 2024; scans every 6 weeks fall on 21 Feb (day 43), 3 Apr (day 85)
and 15 May (day 127).
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events import EVENT_ADAPTER, ProtocolParameters
from projections.endpoints.patient_endpoints import (
    DEFAULT_PARAMETERS,
    PatientEndpoints,
    TrialParameters,
    derive_patient,
    newest_parameters,
    plan_batch,
    replay_trial,
)
from projections.endpoints.summary import (
    ResponseOutcome,
    months_to_days,
    response_rates,
    summarize_endpoint,
)
from projections.endpoints.tte import TteRecord
from projections.fold.history import Recorded

pytestmark = pytest.mark.unit

TRIAL = "HAIC-PD1-LEN"
BASELINE, START = "2024-01-03", "2024-01-10"
W6, W12, W18 = "2024-02-21", "2024-04-03", "2024-05-15"
V1 = TrialParameters(1, 1, ProtocolParameters())


class Ledger:
    """Ledger entries in seq order (seq 1, 2, …), for one trial."""

    def __init__(self) -> None:
        self.entries: list[Recorded] = []

    def add(
        self,
        kind: str,
        on: str,
        data: dict[str, Any],
        *,
        site: str = "site01",
        patient: str = "P0001",
        reason: str | None = None,
    ) -> Recorded:
        seq = len(self.entries) + 1
        event = EVENT_ADAPTER.validate_python(
            {
                "event_id": f"00000000-0000-4000-8000-{seq:012d}",
                "type": kind,
                "trial_id": TRIAL,
                "site_id": site,
                "patient_id": patient,
                "occurred_on": on,
                "recorded_by": f"{site}.coordinator",
                "reason": reason,
                "data": data,
            }
        )
        entry = Recorded(seq, event)
        self.entries.append(entry)
        return entry

    def parameters(self, version: int, **knobs: Any) -> Recorded:
        return self.add(
            "protocol_parameters_set",
            "2024-01-01",
            {"version": version, "parameters": knobs},
            site="_sponsor",
            patient="_trial",
        )

    def patient_entries(self, patient: str = "P0001") -> list[Recorded]:
        return [e for e in self.entries if e.event.patient_id == patient]


def liver(t1: float, viable: float | None = None) -> dict[str, Any]:
    return {
        "lesion_id": "T1",
        "location": "intrahepatic",
        "organ": "liver",
        "role": "target",
        "longest_diameter_mm": t1,
        "viable_diameter_mm": t1 if viable is None else viable,
    }


LUNG_NEW = {
    "lesion_id": "N1",
    "location": "extrahepatic",
    "organ": "lung",
    "role": "new",
    "longest_diameter_mm": 12.0,
}


def pvtt(diameter: float) -> dict[str, Any]:
    return {"present": True, "vp_grade": "Vp3", "thrombus_diameter_mm": diameter, "enhancing": True}


def scan_data(
    *lesions: dict[str, Any], timepoint: str = "follow_up", thrombus: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {"timepoint": timepoint, "lesions": list(lesions), "pvtt": thrombus}


def treated(
    ledger: Ledger,
    baseline_t1: float = 40.0,
    *,
    patient: str = "P0001",
    thrombus: dict[str, Any] | None = None,
) -> None:
    """Baseline scan a week before the first HAIC infusion (STARTDT 10 Jan 2024)."""
    ledger.add(
        "scan_read",
        BASELINE,
        scan_data(liver(baseline_t1), timepoint="baseline", thrombus=thrombus),
        patient=patient,
    )
    ledger.add("infusion_given", START, {"agent": "haic", "cycle": 1}, patient=patient)


def derive(ledger: Ledger, parameters: TrialParameters = V1) -> PatientEndpoints:
    result = derive_patient(ledger.patient_entries(), parameters)
    assert result is not None
    return result


def record(result: PatientEndpoints, paramcd: str) -> TteRecord | None:
    return next((r for r in result.records if r.paramcd == paramcd), None)


def outcome(result: PatientEndpoints, paramcd: str) -> tuple[str, int, int]:
    found = record(result, paramcd)
    assert found is not None, paramcd
    return found.adt.isoformat(), found.aval, int(found.cnsr)


def best(result: PatientEndpoints, criterion: str) -> tuple[str, str]:
    item = next(b for b in result.best if b.criterion == criterion)
    return item.bor.response, item.cbor.response


# --- which timepoints feed which endpoint ---------------------------------------------------


def test_new_lung_lesion_is_an_event_of_pfs_and_extrahepatic_pfs_but_not_intrahepatic_pfs() -> None:
    ledger = Ledger()
    treated(ledger)
    w6 = ledger.add("scan_read", W6, scan_data(liver(40.0), LUNG_NEW))
    w12 = ledger.add("scan_read", W12, scan_data(liver(50.0), LUNG_NEW))
    result = derive(ledger)
    assert outcome(result, "PFS") == (W6, 43, 0)
    assert outcome(result, "PFSRECIST") == (W6, 43, 0)
    assert outcome(result, "PFSEH") == (W6, 43, 0)
    # The liver target grows 40 → 50 mm (+25 %) only at week 12: intrahepatic PD then.
    assert outcome(result, "PFSIH") == (W12, 85, 0)
    assert record(result, "PFS").srcseqs == (w6.seq,)  # type: ignore[union-attr]
    assert record(result, "PFSIH").srcseqs == (w12.seq,)  # type: ignore[union-attr]


def test_alive_patient_is_censored_for_os_at_the_last_scan() -> None:
    ledger = Ledger()
    treated(ledger)
    ledger.add("scan_read", W6, scan_data(liver(40.0), LUNG_NEW))
    ledger.add("scan_read", W12, scan_data(liver(50.0), LUNG_NEW))
    assert outcome(derive(ledger), "OS") == (W12, 85, 6)


def test_death_is_the_os_event() -> None:
    ledger = Ledger()
    treated(ledger)
    ledger.add("scan_read", W6, scan_data(liver(40.0)))
    ledger.add("death", "2024-03-01", {"cause": "disease_progression"})
    result = derive(ledger)
    assert outcome(result, "OS") == ("2024-03-01", 52, 0)
    assert outcome(result, "PFS") == ("2024-03-01", 52, 0)


def test_twenty_percent_growth_of_4_mm_is_an_event_of_mrecist_pfs_but_not_recist_pfs() -> None:
    ledger = Ledger()
    treated(ledger, baseline_t1=20.0)
    ledger.add("scan_read", W6, scan_data(liver(24.0)))
    result = derive(ledger)
    assert outcome(result, "PFS") == (W6, 43, 0)
    assert outcome(result, "PFSRECIST") == (W6, 43, 1)  # SD: censored at the last adequate scan


def test_patient_without_baseline_pvtt_has_no_pvtt_pfs_record() -> None:
    ledger = Ledger()
    treated(ledger)
    ledger.add("scan_read", W6, scan_data(liver(40.0)))
    assert record(derive(ledger), "PFSPVTT") is None


def test_growing_thrombus_is_the_pvtt_pfs_event_of_a_baseline_pvtt_patient() -> None:
    ledger = Ledger()
    treated(ledger, thrombus=pvtt(12.0))
    ledger.add("scan_read", W6, scan_data(liver(40.0), thrombus=pvtt(15.0)))  # +25 % over nadir
    result = derive(ledger)
    assert outcome(result, "PFSPVTT") == (W6, 43, 0)
    assert outcome(result, "PFS") == (W6, 43, 1)  # the thrombus is a non-target: not PD itself
    assert best(result, "PVTT") == ("PD", "PD")


def test_confirmed_response_opens_the_duration_of_response_at_the_first_response() -> None:
    ledger = Ledger()
    treated(ledger)
    ledger.add("scan_read", W6, scan_data(liver(20.0)))  # −50 %: PR
    ledger.add("scan_read", W12, scan_data(liver(20.0)))  # PR again 42 days later: confirmed
    w18 = ledger.add("scan_read", W18, scan_data(liver(40.0)))  # doubled from the nadir: PD
    result = derive(ledger)
    assert best(result, "mRECIST") == ("PR", "PR")
    dor = record(result, "DOR")
    assert dor is not None
    # 21 Feb → 15 May 2024: 8 + 31 + 30 + 15 = 84 days later, so AVAL 85.
    assert (dor.startdt.isoformat(), dor.adt.isoformat(), dor.aval, int(dor.cnsr)) == (
        W6,
        W18,
        85,
        0,
    )
    assert dor.srcseqs == (w18.seq,)


def test_unconfirmed_response_opens_no_duration_of_response() -> None:
    ledger = Ledger()
    treated(ledger)
    ledger.add("scan_read", W6, scan_data(liver(28.0)))  # −30 %: PR
    ledger.add("scan_read", W12, scan_data(liver(30.0)))  # −25 %, +2 mm over the nadir: SD
    result = derive(ledger)
    assert best(result, "mRECIST") == ("PR", "SD")
    assert record(result, "DOR") is None


def test_corrected_scan_changes_pfs_and_names_both_seqs() -> None:
    ledger = Ledger()
    treated(ledger, baseline_t1=20.0)
    w6 = ledger.add("scan_read", W6, scan_data(liver(20.0)))
    assert outcome(derive(ledger), "PFS") == (W6, 43, 1)
    fix = ledger.add(
        "event_corrected",
        W6,
        {"target_event_id": str(w6.event.event_id), "data": scan_data(liver(24.0))},
        reason="viable diameter misread",
    )
    result = derive(ledger)
    assert outcome(result, "PFS") == (W6, 43, 0)
    assert record(result, "PFS").srcseqs == (w6.seq, fix.seq)  # type: ignore[union-attr]
    assert result.at_seq == fix.seq


def test_untreated_patient_has_no_time_to_event_records_and_is_outside_the_orr_population() -> None:
    ledger = Ledger()
    ledger.add("scan_read", BASELINE, scan_data(liver(40.0), timepoint="baseline"))
    result = derive(ledger)
    assert result.records == ()
    assert not result.treated
    assert result.adsl.saffl == "N"


def test_adrs_has_a_timepoint_row_per_scan_and_best_responses_per_criterion() -> None:
    ledger = Ledger()
    treated(ledger)
    ledger.add("scan_read", W6, scan_data(liver(28.0)))
    ledger.add("scan_read", W12, scan_data(liver(30.0)))
    rows = derive(ledger).adrs
    summary = [(row.parcat3, row.paramcd, row.avalc) for row in rows]
    assert summary == [
        ("RECIST 1.1", "OVR", "PR"),
        ("RECIST 1.1", "OVR", "SD"),
        ("RECIST 1.1", "BOR", "PR"),
        ("RECIST 1.1", "CBOR", "SD"),
        ("mRECIST", "OVR", "PR"),
        ("mRECIST", "OVR", "SD"),
        ("mRECIST", "BOR", "PR"),
        ("mRECIST", "CBOR", "SD"),
    ]  # no PVTT rows: no thrombus at baseline


def test_results_name_the_parameter_version_and_ledger_position() -> None:
    ledger = Ledger()
    params = ledger.parameters(1)
    treated(ledger)
    scan = ledger.add("scan_read", W6, scan_data(liver(40.0)))
    result = derive(ledger, TrialParameters(1, params.seq, ProtocolParameters()))
    assert (result.parameters_version, result.at_seq) == (1, scan.seq)


# --- protocol parameters ----------------------------------------------------------------------


def test_the_highest_parameter_version_recorded_so_far_applies() -> None:
    ledger = Ledger()
    ledger.parameters(2, sd_min_days=35)
    ledger.parameters(1, sd_min_days=49)
    ledger.parameters(2, sd_min_days=56)
    chosen = newest_parameters(DEFAULT_PARAMETERS, ledger.entries)
    assert (chosen.version, chosen.seq, chosen.parameters.sd_min_days) == (2, 1, 35)


def test_a_new_parameter_version_re_derives_patients_not_in_the_batch() -> None:
    ledger = Ledger()
    ledger.parameters(1)
    treated(ledger, baseline_t1=20.0)
    ledger.add("scan_read", W6, scan_data(liver(24.0)))
    raised = ledger.parameters(2, mrecist_pd_min_abs_mm=5)
    plan = plan_batch(V1, [raised])
    assert plan.parameters_changed and plan.touched == frozenset()
    first, later = ledger.entries[:-1], ledger.entries[-1:]
    result = replay_trial([first, later])[(TRIAL, "site01", "P0001")]
    # With a 5 mm minimum the 4 mm growth is no longer mRECIST progression.
    assert outcome(result, "PFS") == (W6, 43, 1)
    assert (result.parameters_version, result.at_seq) == (2, raised.seq)


# --- trial summaries --------------------------------------------------------------------------


def test_kaplan_meier_summary_of_four_events_a_hundred_days_apart() -> None:
    # S = 0.75, 0.5, 0.25, 0 after days 100, 200, 300, 400: S is exactly 0.5 on [200, 300),
    # so the median is the midpoint, 250 days (R's rule).
    summary = summarize_endpoint(
        "OS", [100, 200, 300, 400], [True] * 4, "log-log", at_seq=99, parameters_version=1
    )
    assert (summary.n, summary.events, summary.median_days) == (4, 4, 250.0)
    survival = [landmark.survival for landmark in summary.landmarks]
    assert survival == [0.75, 0.25, None]  # 182.6 and 365.25 days; 730.5 is beyond the data
    assert dict(summary.at_risk) == {0: 4, 3: 4, 6: 3, 9: 2, 12: 1, 15: 0, 18: 0, 21: 0, 24: 0}
    assert set(summary.median_ci_by_conf_type) == {"log-log", "log", "plain"}
    assert (summary.at_seq, summary.parameters_version) == (99, 1)


def test_landmarks_are_6_12_and_24_months_of_30_4375_days() -> None:
    assert [months_to_days(m) for m in (6, 12, 24)] == [182.625, 365.25, 730.5]


def test_endpoint_nobody_is_in_has_no_median() -> None:
    summary = summarize_endpoint("PFSPVTT", [], [], "log-log", at_seq=1, parameters_version=1)
    assert (summary.n, summary.events, summary.median_days, summary.median_ci_days) == (
        0,
        0,
        None,
        (None, None),
    )
    assert summary.to_dict()["median_months"] is None


def test_median_not_reached_is_reported_as_none() -> None:
    summary = summarize_endpoint(
        "OS", [100, 200, 300], [True, False, False], "log-log", at_seq=1, parameters_version=1
    )
    assert summary.median_days is None


def test_orr_counts_confirmed_cr_and_pr_over_treated_patients_measurable_at_baseline() -> None:
    measurable = [
        ResponseOutcome(True, True, bor, cbor)
        for bor, cbor in (
            ("CR", "CR"),
            ("PR", "PR"),
            ("PR", "PR"),
            ("PR", "SD"),
            ("SD", "SD"),
            ("NON-CR/NON-PD", "NON-CR/NON-PD"),
            ("PD", "PD"),
            ("NE", "NE"),
            ("MISSING", "MISSING"),
            ("SD", "SD"),
        )
    ]
    outside = [ResponseOutcome(True, False, "PR", "PR"), ResponseOutcome(False, True, "CR", "CR")]
    rates = {
        (r.measure, r.confirmed): r
        for r in response_rates("mRECIST", measurable + outside, at_seq=5, parameters_version=1)
    }
    orr = rates[("ORR", True)]
    assert (orr.responders, orr.n, orr.rate) == (3, 10, 0.3)
    # R: binom.test(3, 10)$conf.int = 0.06673951 0.65245285
    assert orr.ci[0] == pytest.approx(0.06673951, abs=1e-8)
    assert orr.ci[1] == pytest.approx(0.65245285, abs=1e-8)
    assert (rates[("ORR", False)].responders, rates[("DCR", True)].responders) == (4, 7)
    assert rates[("DCR", False)].responders == 7
    assert "measurable disease at baseline per mRECIST" in orr.denominator


# --- independence of batching and of other patients (property) -------------------------------

SIZES = st.sampled_from([0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0])


@st.composite
def patient_story(draw: st.DrawFn, patient: str) -> list[tuple[str, str, dict[str, Any]]]:
    """A treated patient: baseline, up to four scans 6 weeks apart (sizes, new lesions and a
    thrombus drawn), maybe a follow-up contact, a death and a correction of one scan."""
    has_pvtt = draw(st.booleans())
    thrombus = pvtt(12.0) if has_pvtt else None
    story: list[tuple[str, str, dict[str, Any]]] = [
        ("scan_read", BASELINE, scan_data(liver(40.0), timepoint="baseline", thrombus=thrombus)),
        ("infusion_given", START, {"agent": "haic", "cycle": 1}),
    ]
    on = dt.date.fromisoformat(START)
    for _ in range(draw(st.integers(0, 4))):
        on += dt.timedelta(days=42)
        lesions = [liver(draw(SIZES))] + ([LUNG_NEW] if draw(st.booleans()) else [])
        story.append(
            (
                "scan_read",
                on.isoformat(),
                scan_data(
                    *lesions,
                    thrombus=pvtt(draw(st.sampled_from([0.0, 6.0, 12.0, 16.0])))
                    if has_pvtt
                    else None,
                ),
            )
        )
    if draw(st.booleans()):
        story.append(
            ("follow_up_contact", (on + dt.timedelta(days=20)).isoformat(), {"method": "phone"})
        )
    if draw(st.booleans()):
        story.append(
            (
                "death",
                (on + dt.timedelta(days=draw(st.integers(1, 120)))).isoformat(),
                {"cause": "disease_progression"},
            )
        )
    scans = [
        index
        for index, (kind, _, data) in enumerate(story)
        if kind == "scan_read" and data["timepoint"] == "follow_up"
    ]
    if scans and draw(st.booleans()):
        story.append(("correct", str(draw(st.sampled_from(scans))), {"size": draw(SIZES)}))
    return story


@st.composite
def trial_ledger(draw: st.DrawFn) -> tuple[list[Recorded], list[int]]:
    """Three patients' stories interleaved at random (each in its own order), protocol
    parameters v1 first and maybe v2 somewhere later; and random batch boundaries."""
    stories = {f"P{n:04d}": draw(patient_story(f"P{n:04d}")) for n in (1, 2, 3)}
    queue = [patient for patient, story in stories.items() for _ in story]
    order = draw(st.permutations(queue))
    ledger = Ledger()
    ledger.parameters(1)
    position = dict.fromkeys(stories, 0)
    ids: dict[tuple[str, int], str] = {}
    upgrade_at = draw(st.one_of(st.none(), st.integers(0, len(order))))
    for step, patient in enumerate(order):
        if step == upgrade_at:
            ledger.parameters(2, confirm_days=35, mrecist_pd_min_abs_mm=5)
        index = position[patient]
        position[patient] += 1
        kind, on, data = stories[patient][index]
        if kind == "correct":
            target = int(on)
            _, scan_on, original = stories[patient][target]
            corrected = {**original, "lesions": [liver(data["size"]), *original["lesions"][1:]]}
            ledger.add(
                "event_corrected",
                scan_on,
                {"target_event_id": ids[(patient, target)], "data": corrected},
                patient=patient,
                reason="misread",
            )
            continue
        entry = ledger.add(kind, on, data, patient=patient)
        ids[(patient, index)] = str(entry.event.event_id)
    cuts = sorted(draw(st.sets(st.integers(1, len(ledger.entries) - 1), max_size=6)))
    return ledger.entries, cuts


def batches_of(entries: Sequence[Recorded], cuts: Sequence[int]) -> list[list[Recorded]]:
    bounds = [0, *cuts, len(entries)]
    return [list(entries[a:b]) for a, b in itertools.pairwise(bounds) if a < b]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trial_ledger())
def test_endpoints_do_not_depend_on_batch_boundaries(
    drawn: tuple[list[Recorded], list[int]],
) -> None:
    entries, cuts = drawn
    assert replay_trial(batches_of(entries, cuts)) == replay_trial([entries])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trial_ledger())
def test_a_patients_endpoints_do_not_depend_on_other_patients(
    drawn: tuple[list[Recorded], list[int]],
) -> None:
    entries, cuts = drawn
    together = replay_trial(batches_of(entries, cuts))
    for key, result in together.items():
        alone = [e for e in entries if e.event.site_id == "_sponsor" or e.event.patient_key == key]
        assert replay_trial([alone])[key] == result
