"""One valid example of every event type, as a site would submit it.

These are the seeds of the golden samples in `events/samples/` and of `trial-ledger schema`.
"""

from __future__ import annotations

from typing import Any

TRIAL = "HAIC-PD1-LEN"
SITE = "site01"
PATIENT = "P0001"


def _envelope(kind: str, n: int, occurred_on: str, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": f"00000000-0000-4000-8000-{n:012d}",
        "type": kind,
        "schema_version": 1,
        "trial_id": TRIAL,
        "site_id": SITE,
        "patient_id": PATIENT,
        "occurred_on": occurred_on,
        "recorded_by": "site01.coordinator",
        **extra,
    }


EXAMPLES: dict[str, dict[str, Any]] = {
    "protocol_parameters_set": {
        **_envelope("protocol_parameters_set", 1, "2025-01-01"),
        "site_id": "_sponsor",
        "patient_id": "_trial",
        "recorded_by": "sponsor.statistician",
        "data": {
            "version": 1,
            "title": "HAIC + PD-1 + lenvatinib, BCLC B/C HCC",
            "parameters": {"sites": ["site01", "site02"]},
        },
    },
    "enrolled": _envelope(
        "enrolled",
        2,
        "2025-02-03",
        data={
            "bclc_stage": "C",
            "child_pugh": "A6",
            "ecog": 1,
            "prior_systemic_therapy": ["sorafenib"],
            "baseline_pvtt": True,
            "baseline_pvtt_vp": "Vp3",
            "baseline_extrahepatic_spread": False,
            "body_weight_kg": 64.5,
            "age_years": 58,
            "sex": "M",
            "baseline_labs": {"alt_u_per_l": 42, "alt_uln": 40, "platelets_10e9_per_l": 151},
        },
    ),
    "scan_read": _envelope(
        "scan_read",
        3,
        "2025-01-28",
        data={
            "modality": "CT",
            "timepoint": "baseline",
            "reader": "rad07",
            "lesions": [
                {
                    "lesion_id": "T1",
                    "location": "intrahepatic",
                    "organ": "liver",
                    "role": "target",
                    "longest_diameter_mm": 52.0,
                    "viable_diameter_mm": 44.5,
                },
                {
                    "lesion_id": "T2",
                    "location": "extrahepatic",
                    "organ": "lung",
                    "role": "target",
                    "longest_diameter_mm": 14.0,
                    "viable_diameter_mm": 14.0,
                },
                {
                    "lesion_id": "N1",
                    "location": "intrahepatic",
                    "organ": "liver",
                    "role": "non_target",
                    "status": "present",
                    "enhancing": True,
                },
            ],
            "pvtt": {
                "present": True,
                "vp_grade": "Vp3",
                "thrombus_diameter_mm": 12.0,
                "enhancing": True,
                "branch": "right_portal",
            },
        },
    ),
    "infusion_given": _envelope(
        "infusion_given",
        4,
        "2025-02-05",
        data={
            "agent": "haic",
            "cycle": 1,
            "regimen": "FOLFOX",
        },
    ),
    "dose_modified": _envelope(
        "dose_modified",
        5,
        "2025-02-05",
        data={
            "agent": "lenvatinib",
            "action": "start",
            "dose_mg": 8,
        },
    ),
    "ae_reported": _envelope(
        "ae_reported",
        6,
        "2025-02-20",
        data={
            "term": "Hypertension",
            "grade": 3,
            "serious": True,
            "seriousness": ["hospitalisation"],
            "attribution": {"lenvatinib": "probable"},
            "expected": True,
            "action_taken": "interrupted",
            "site_aware_at": "2025-02-20T09:30:00Z",
        },
    ),
    "ae_updated": _envelope(
        "ae_updated",
        7,
        "2025-02-27",
        data={
            "ae_event_id": "00000000-0000-4000-8000-000000000006",
            "grade": 2,
            "outcome": "recovering",
        },
    ),
    "death": _envelope("death", 8, "2025-11-30", data={"cause": "disease_progression"}),
    "follow_up_contact": _envelope("follow_up_contact", 9, "2025-10-01", data={"method": "phone"}),
    "subsequent_therapy_started": _envelope(
        "subsequent_therapy_started",
        10,
        "2025-09-15",
        data={
            "therapy": "regorafenib",
            "kind": "systemic",
        },
    ),
    "treatment_discontinued": _envelope(
        "treatment_discontinued",
        11,
        "2025-09-01",
        data={
            "cause": "progression",
        },
    ),
    "withdrawn": _envelope("withdrawn", 12, "2025-10-10", data={"kind": "lost_to_follow_up"}),
    "event_corrected": _envelope(
        "event_corrected",
        13,
        "2025-02-05",
        reason="transcription error in cycle number",
        data={
            "target_event_id": "00000000-0000-4000-8000-000000000004",
            "data": {
                "agent": "haic",
                "cycle": 1,
                "regimen": "FOLFOX",
                "dose": 85,
                "dose_unit": "mg/m2",
            },
        },
    ),
    "event_retracted": _envelope(
        "event_retracted",
        14,
        "2025-09-15",
        reason="entered for the wrong patient",
        data={"target_event_id": "00000000-0000-4000-8000-000000000010"},
    ),
    "sae_acknowledged": _envelope(
        "sae_acknowledged",
        15,
        "2025-02-21",
        data={
            "alert_id": "sae-00000000-0000-4000-8000-000000000006",
            "ae_event_id": "00000000-0000-4000-8000-000000000006",
        },
        recorded_by="sponsor.safety_officer",
    ),
    "ledger_sealed": {
        **_envelope("ledger_sealed", 16, "2025-02-21"),
        "site_id": "_sponsor",
        "patient_id": "_trial",
        "recorded_by": "writer",
        "data": {
            "upto_seq": 15,
            "event_count": 15,
            "heads_digest": "0" * 64,
            "heads": {"HAIC-PD1-LEN.site01.P0001": "1" * 64},
            "public_key": "base64-ed25519-public-key",
            "signature": "base64-signature",
        },
    },
}
