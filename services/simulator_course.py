"""One simulated patient's clinical course, as the events a site would submit.

Pure and seeded: a `random.Random` in, event dicts out, no IO and no clock. The course follows
the trial's schedule (DOMAIN.md "Trial facts"): HAIC FOLFOX and a PD-1 antibody every 3 weeks,
lenvatinib daily by weight, scans every 42 ± 7 days until progression, CTCAE v5.0 AEs that
drive lenvatinib reductions and interruptions, then follow-up until death, withdrawal or the
cut-off. `services.simulator` assembles the trial from these courses.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from services.simulator_scans import ScanPlan, scan_reads

Event = dict[str, Any]

CYCLE_DAYS = 21
SCAN_INTERVAL_DAYS = 42
SCAN_WINDOW_DAYS = 7
TEAE_WINDOW_DAYS = 30
LENVATINIB_STEPS = (12, 8, 4)

# term (CTCAE v5.0 spelling), highest non-fatal grade the table allows, usual attribution,
# immune-related, relative frequency under this regimen.
AE_TERMS: tuple[tuple[str, int, dict[str, str], bool, int], ...] = (
    ("Hypertension", 4, {"lenvatinib": "probable"}, False, 14),
    ("Palmar-plantar erythrodysesthesia syndrome", 3, {"lenvatinib": "probable"}, False, 10),
    ("Proteinuria", 3, {"lenvatinib": "probable"}, False, 8),
    ("Alanine aminotransferase increased", 4, {"haic": "possible", "pd1": "possible"}, False, 9),
    ("Aspartate aminotransferase increased", 4, {"haic": "possible", "pd1": "possible"}, False, 10),
    ("Blood bilirubin increased", 4, {"haic": "possible"}, False, 6),
    ("Platelet count decreased", 4, {"haic": "probable", "lenvatinib": "possible"}, False, 8),
    ("Neutrophil count decreased", 4, {"haic": "probable"}, False, 5),
    ("Diarrhea", 4, {"lenvatinib": "probable"}, False, 7),
    ("Fatigue", 3, {"lenvatinib": "possible", "pd1": "possible"}, False, 9),
    ("Hypothyroidism", 4, {"pd1": "probable", "lenvatinib": "possible"}, True, 6),
    ("Abdominal pain", 3, {"haic": "definite"}, False, 8),
    ("Nausea", 3, {"haic": "probable"}, False, 6),
    ("Anorexia", 4, {"lenvatinib": "possible"}, False, 6),
    ("Fever", 4, {"haic": "possible"}, False, 4),
    ("Pneumonitis", 4, {"pd1": "probable"}, True, 1),
    ("Colitis", 4, {"pd1": "probable"}, True, 1),
)
# Fatal events of this population and regimen (all allow grade 5 in CTCAE v5.0).
FATAL_TERMS: tuple[tuple[str, dict[str, str]], ...] = (
    ("Hepatic failure", {"haic": "possible", "lenvatinib": "possible"}),
    ("Upper gastrointestinal hemorrhage", {"lenvatinib": "possible"}),
    ("Esophageal varices hemorrhage", {"lenvatinib": "possible"}),
)
LENVATINIB_TOXICITIES = frozenset(
    {
        "Hypertension",
        "Palmar-plantar erythrodysesthesia syndrome",
        "Proteinuria",
        "Diarrhea",
        "Fatigue",
        "Anorexia",
        "Platelet count decreased",
    }
)
PRIOR_THERAPIES = (
    ("atezolizumab + bevacizumab",),
    ("sorafenib",),
    ("lenvatinib",),
    ("durvalumab + tremelimumab",),
    ("atezolizumab + bevacizumab", "sorafenib"),
)
PD1_AGENTS = (("sintilimab", 200.0), ("tislelizumab", 200.0), ("camrelizumab", 200.0))
LATER_THERAPIES = (
    ("regorafenib", "systemic"),
    ("cabozantinib", "systemic"),
    ("ramucirumab", "systemic"),
    ("TACE", "locoregional"),
    ("SBRT to PVTT", "radiotherapy"),
    ("apatinib", "systemic"),
)


@dataclass(frozen=True)
class Fate:
    """Rare outcomes the trial assigns on purpose, so every run shows them."""

    consent_withdrawal: bool = False
    lost_to_follow_up: bool = False
    fatal_ae: bool = False


@dataclass
class Entry:
    """An event with the day the site types it in, which sets the submission order."""

    entered: date
    n: int
    event: Event


@dataclass
class PlannedAe:
    onset: date
    term: str
    grade: int
    max_grade: int
    attribution: dict[str, str]
    immune: bool
    serious: bool
    action: str = "none"
    event: Event | None = None


def days(n: int) -> timedelta:
    return timedelta(days=n)


class Course:
    """Builds one patient's events; `emit` drops anything after the patient's last day."""

    def __init__(
        self,
        rng: random.Random,
        *,
        trial_id: str,
        site_id: str,
        patient_id: str,
        enrolled_on: date,
        cutoff: date,
        fate: Fate,
    ) -> None:
        self.rng = rng
        self.trial_id, self.site_id, self.patient_id = trial_id, site_id, patient_id
        self.enrolled_on, self.cutoff, self.fate = enrolled_on, cutoff, fate
        self.last_day = cutoff
        self.entries: list[Entry] = []
        self._entered: dict[str, date] = {}

    def emit(
        self,
        kind: str,
        on: date,
        data: dict[str, Any],
        *,
        after: Event | None = None,
        lag: int | None = None,
        reason: str | None = None,
        user: str | None = None,
    ) -> Event | None:
        """Record one submission; None when the clinical date lies beyond the patient's course."""
        if on > self.last_day:
            return None
        r = self.rng
        event: Event = {
            "event_id": str(uuid.UUID(int=r.getrandbits(128), version=4)),
            "type": kind,
            "schema_version": 1,
            "trial_id": self.trial_id,
            "site_id": self.site_id,
            "patient_id": self.patient_id,
            "occurred_on": on.isoformat(),
            "recorded_by": user or f"{self.site_id}.crc{r.randint(1, 2)}",
        }
        if reason is not None:
            event["reason"] = reason
        event["data"] = data
        # Sites type most entries within a week; enrollment comes first, dependants after.
        entered = on + days(r.choice((0, 0, 1, 1, 2, 3, 5, 8)) if lag is None else lag)
        floors = [entered, self._entered.get("enrolled", entered)]
        if after is not None:
            floors.append(self._entered[after["event_id"]])
        entered = max(floors)
        self._entered.setdefault("enrolled", entered)
        self._entered[event["event_id"]] = entered
        self.entries.append(Entry(entered, len(self.entries), event))
        return event

    def entered_on(self, event: Event) -> date:
        return self._entered[event["event_id"]]

    def build(self) -> None:
        r = self.rng
        pvtt = r.random() < 0.35
        extrahepatic = r.random() < 0.3
        weight = round(r.uniform(42.0, 88.0), 1)
        vp = r.choice(("Vp1", "Vp2", "Vp3", "Vp3", "Vp4")) if pvtt else None
        self.emit(
            "enrolled",
            self.enrolled_on,
            {
                "bclc_stage": "C" if pvtt or extrahepatic or r.random() < 0.2 else "B",
                "child_pugh": r.choices(("A5", "A6", "B7"), (55, 35, 10))[0],
                "ecog": r.choices((0, 1), (55, 45))[0],
                "prior_systemic_therapy": list(r.choice(PRIOR_THERAPIES)),
                "baseline_pvtt": pvtt,
                "baseline_pvtt_vp": vp,
                "baseline_extrahepatic_spread": extrahepatic,
                "body_weight_kg": weight,
                "age_years": r.randint(34, 79),
                "sex": r.choices(("M", "F"), (82, 18))[0],
                "baseline_labs": self._baseline_labs(),
            },
            lag=0,
        )
        self.start = self.enrolled_on + days(r.randint(1, 7))
        plan = ScanPlan.draw(r, pvtt_vp=vp, extrahepatic=extrahepatic)
        scan_days = self._scan_days(plan)
        pd_on = (
            scan_days[plan.pd_scan - 1] if plan.pd_scan and plan.pd_scan <= len(scan_days) else None
        )
        death_on, death_cause, fatal_ae = self._plan_death(pd_on)
        withdrawal = self._plan_withdrawal(pd_on)
        self.last_day = min(d for d in (self.cutoff, death_on, withdrawal and withdrawal[1]) if d)
        eot, eot_cause = self._plan_end_of_treatment(pd_on, withdrawal)
        aes = self._plan_aes(eot)
        if (r.random() < 0.1 and eot_cause == "progression") or r.random() < 0.06:
            severe = [ae for ae in aes if ae.grade >= 3 and ae.onset < eot - days(7)]
            if severe:
                eot, eot_cause = severe[0].onset + days(r.randint(1, 7)), "adverse_event"
                aes = [ae for ae in aes if ae.onset <= eot + days(TEAE_WINDOW_DAYS)]
        if fatal_ae is not None and fatal_ae.onset <= self.cutoff:
            aes.append(fatal_ae)
        self._treat(weight, aes, eot, eot_cause, severe_ae=aes[0] if aes else None)
        baseline_on = self.enrolled_on - days(r.randint(1, 21))
        for on, data in scan_reads(r, plan, baseline_on, scan_days):
            self.emit("scan_read", on, data, user=f"{self.site_id}.radiology", lag=r.randint(1, 6))
        self._after_treatment(eot, eot_cause, pd_on, withdrawal)
        if death_on is not None and death_on <= self.cutoff:
            ae_event = fatal_ae.event if fatal_ae is not None else None
            self.emit(
                "death",
                death_on,
                {
                    "cause": death_cause,
                    "ae_event_id": ae_event and ae_event["event_id"],
                    "autopsy": r.random() < 0.1,
                },
                after=ae_event,
                lag=r.randint(1, 30),
                user=f"{self.site_id}.investigator",
            )

    def _baseline_labs(self) -> dict[str, float]:
        r = self.rng
        return {
            "alt_u_per_l": float(r.randint(15, 85)),
            "alt_uln": 40.0,
            "ast_u_per_l": float(r.randint(20, 110)),
            "ast_uln": 40.0,
            "bilirubin_umol_per_l": float(r.randint(6, 32)),
            "bilirubin_uln": 21.0,
            "albumin_g_per_l": float(r.randint(30, 46)),
            "platelets_10e9_per_l": float(r.randint(75, 320)),
            "neutrophils_10e9_per_l": round(r.uniform(1.6, 6.0), 1),
            "afp_ng_per_ml": round(r.lognormvariate(5.0, 2.0), 1),
        }

    def _scan_days(self, plan: ScanPlan) -> list[date]:
        """Scheduled assessments every 42 days from STARTDT, each within its ±7-day window."""
        jitter = self.rng.randint
        scans, k = [], 1
        while (
            on := self.start + days(SCAN_INTERVAL_DAYS * k + jitter(-5, SCAN_WINDOW_DAYS))
        ) <= self.cutoff:
            scans.append(on)
            k += 1
        return scans

    def _plan_death(self, pd_on: date | None) -> tuple[date | None, str, PlannedAe | None]:
        r = self.rng
        if self.fate.fatal_ae:
            on = self.start + days(r.randint(20, 200))
            if pd_on is None or on < pd_on:
                term, attribution = r.choice(FATAL_TERMS)
                ae = PlannedAe(on, term, 5, 5, attribution, False, True)
                return on, "adverse_event", ae
        if pd_on is not None:
            return pd_on + days(int(r.expovariate(1 / 280)) + 5), "disease_progression", None
        if r.random() < 0.06:
            return self.start + days(r.randint(40, 500)), r.choice(("other", "unknown")), None
        return None, "unknown", None

    def _plan_withdrawal(self, pd_on: date | None) -> tuple[str, date] | None:
        r = self.rng
        if self.fate.consent_withdrawal:
            on = self.start + days(r.randint(30, 150))
            return ("consent_withdrawn", on) if pd_on is None or on < pd_on else None
        if self.fate.lost_to_follow_up:
            return "lost_to_follow_up", (pd_on or self.start) + days(r.randint(60, 200))
        return None

    def _plan_end_of_treatment(
        self,
        pd_on: date | None,
        withdrawal: tuple[str, date] | None,
    ) -> tuple[date, str]:
        candidates = [(self.last_day + days(1), "ongoing")]
        if pd_on is not None:
            candidates.append((pd_on + days(self.rng.randint(0, 7)), "progression"))
        if withdrawal is not None:
            kind, on = withdrawal
            candidates.append((on, "patient_decision" if kind == "consent_withdrawn" else "other"))
        return min(candidates)

    def _plan_aes(self, eot: date) -> list[PlannedAe]:
        r = self.rng
        window = (min(eot + days(TEAE_WINDOW_DAYS), self.last_day) - self.start).days
        aes = []
        for _ in range(r.randint(3, 6) if window > 3 else 0):
            term, max_grade, attribution, immune, _ = r.choices(AE_TERMS, [t[4] for t in AE_TERMS])[
                0
            ]
            grade = min(max_grade, r.choices((1, 2, 3, 4), (45, 35, 16, 4))[0])
            serious = r.random() < (0.45 if grade >= 3 else 0.05)
            onset = self.start + days(r.randint(3, window))
            aes.append(PlannedAe(onset, term, grade, max_grade, attribution, immune, serious))
        return sorted(aes, key=lambda ae: ae.onset)

    def _treat(
        self,
        weight: float,
        aes: list[PlannedAe],
        eot: date,
        eot_cause: str,
        severe_ae: PlannedAe | None,
    ) -> None:
        """HAIC and PD-1 every 21 days, lenvatinib daily; AEs reduce, interrupt or hold."""
        r = self.rng
        lenvatinib = 8 if weight < 60 else 12
        self.emit(
            "dose_modified",
            self.start,
            {"agent": "lenvatinib", "action": "start", "dose_mg": lenvatinib, "cause": "protocol"},
        )
        pd1_held: list[tuple[date, date]] = []
        lenvatinib_off_until = self.start
        for ae in aes:
            ae.event = self._report_ae(ae)
            if ae.event is None or ae.onset >= eot or ae.grade == 5:
                continue
            if ae.immune and ae.grade >= 3:
                back = ae.onset + days(r.randint(21, 42))
                self._modify("pd1", "interrupt", ae.onset, None, ae)
                pd1_held.append((ae.onset, back))
                if back < eot:
                    self._modify("pd1", "resume", back, None, ae)
            if (
                ae.term not in LENVATINIB_TOXICITIES
                or lenvatinib == 0
                or ae.onset < lenvatinib_off_until
            ):
                continue
            lower = next((d for d in LENVATINIB_STEPS if d < lenvatinib), 0)
            if ae.grade >= 3 and lower == 0:
                self._modify("lenvatinib", "discontinue", ae.onset, None, ae)
                lenvatinib = 0
            elif ae.grade >= 3:
                lenvatinib_off_until = ae.onset + days(r.randint(7, 14))
                self._modify("lenvatinib", "interrupt", ae.onset, None, ae)
                if lenvatinib_off_until < eot:
                    self._modify("lenvatinib", "resume", lenvatinib_off_until, lower, ae)
                lenvatinib = lower
            elif ae.grade == 2 and lower and r.random() < 0.5:
                self._modify("lenvatinib", "reduce", ae.onset + days(r.randint(0, 3)), lower, ae)
                lenvatinib = lower
        agent, pd1_dose = r.choice(PD1_AGENTS)
        haic_cycles, given_haic, given_pd1, day = r.randint(6, 8), 0, 0, self.start
        while day < eot:
            if given_haic < haic_cycles:
                given_haic += 1
                self.emit(
                    "infusion_given",
                    day,
                    {
                        "agent": "haic",
                        "cycle": given_haic,
                        "regimen": "FOLFOX",
                        "dose": 85.0,
                        "dose_unit": "mg/m2",
                    },
                )
            if not any(held <= day < back for held, back in pd1_held):
                given_pd1 += 1
                self.emit(
                    "infusion_given",
                    day,
                    {
                        "agent": "pd1",
                        "cycle": given_pd1,
                        "regimen": agent,
                        "dose": pd1_dose,
                        "dose_unit": "mg",
                    },
                )
            day += days(CYCLE_DAYS + r.choice((0, 0, 0, 1, 2, 3, 7)))
        if eot_cause == "ongoing" or eot > self.last_day:
            return
        cause = {"progression": "progression", "adverse_event": "adverse_event"}.get(eot_cause)
        ae_event = severe_ae.event if eot_cause == "adverse_event" and severe_ae else None
        if lenvatinib:
            self._modify(
                "lenvatinib", "discontinue", eot, None, None, cause=cause or "patient_decision"
            )
        self.emit(
            "treatment_discontinued",
            eot,
            {
                "cause": eot_cause,
                "ae_event_id": ae_event and ae_event["event_id"],
            },
            after=ae_event,
            user=f"{self.site_id}.investigator",
        )

    def _modify(
        self,
        agent: str,
        action: str,
        on: date,
        dose: int | None,
        ae: PlannedAe | None,
        *,
        cause: str = "adverse_event",
    ) -> None:
        if ae is not None and ae.action == "none":
            ae.action = (
                "withdrawn"
                if action == "discontinue"
                else ("dose_reduced" if action == "reduce" else "interrupted")
            )
        ae_event = ae.event if ae is not None else None
        self.emit(
            "dose_modified",
            on,
            {
                "agent": agent,
                "action": action,
                "dose_mg": dose,
                "ae_event_id": ae_event and ae_event["event_id"],
                "cause": cause,
            },
            after=ae_event,
        )

    def _report_ae(self, ae: PlannedAe) -> Event | None:
        """CTCAE v5.0 term and grade, ICH E2A seriousness, site awareness, then grade changes."""
        r = self.rng
        late = r.random() < 0.06
        lag = r.randint(2, 9) if late else r.choice((0, 0, 1))
        aware_hour = r.randint(7, 19)
        aware_on = ae.onset + days(max(0, lag - (0 if late else 1)) if not late else 0)
        suspected = {agent: c for agent, c in ae.attribution.items()}
        seriousness = (
            ["death"]
            if ae.grade == 5
            else (
                [
                    r.choices(
                        ("hospitalisation", "important_medical_event", "life_threatening"),
                        (70, 20, 10),
                    )[0]
                ]
                if ae.serious
                else []
            )
        )
        if ae.grade == 4 and ae.serious:
            seriousness = ["life_threatening", "hospitalisation"]
        expected = not (ae.serious and r.random() < 0.3)
        data: dict[str, Any] = {
            "term": ae.term,
            "grade": ae.grade,
            "serious": ae.serious,
            "seriousness": seriousness,
            "attribution": suspected,
            "expected": expected,
            "immune_related": ae.immune,
            "action_taken": ae.action,
            "outcome": "fatal" if ae.grade == 5 else "not_recovered",
            "site_aware_at": f"{aware_on.isoformat()}T{aware_hour:02d}:{r.randint(0, 59):02d}:00Z",
        }
        event = self.emit(
            "ae_reported", ae.onset, data, lag=lag, user=f"{self.site_id}.investigator"
        )
        if event is None or ae.grade == 5:
            return event
        grade, on = ae.grade, ae.onset
        if r.random() < 0.5:
            on += days(r.randint(5, 21))
            grade = max(1, min(ae.max_grade, grade + r.choice((-1, 1, 1))))
            change: dict[str, Any] = {
                "ae_event_id": event["event_id"],
                "grade": grade,
                "outcome": "not_recovered",
            }
            if grade >= 3 and not ae.serious and r.random() < 0.4:
                change.update(serious=True, seriousness=["hospitalisation"])
            if grade != ae.grade:
                self.emit("ae_updated", on, change, after=event)
        if r.random() < 0.65:
            on += days(r.randint(7, 45))
            self.emit(
                "ae_updated",
                on,
                {
                    "ae_event_id": event["event_id"],
                    "outcome": "recovered",
                    "resolved_on": on.isoformat(),
                },
                after=event,
            )
        return event

    def _after_treatment(
        self,
        eot: date,
        eot_cause: str,
        pd_on: date | None,
        withdrawal: tuple[str, date] | None,
    ) -> None:
        """Subsequent therapy after progression, contacts every 2-3 months, withdrawals."""
        r = self.rng
        if eot_cause == "ongoing":
            return
        if pd_on is not None and r.random() < 0.55:
            therapy, kind = r.choice(LATER_THERAPIES)
            self.emit(
                "subsequent_therapy_started",
                max(eot, pd_on) + days(r.randint(14, 60)),
                {"therapy": therapy, "kind": kind, "anticancer": True},
            )
        on = eot
        while (on := on + days(r.randint(60, 90))) < self.last_day:
            self.emit("follow_up_contact", on, {"method": r.choice(("visit", "phone", "phone"))})
        if withdrawal is not None and withdrawal[1] == self.last_day:
            kind, on = withdrawal
            self.emit(
                "withdrawn",
                on,
                {"kind": kind},
                lag=r.randint(1, 90) if kind == "lost_to_follow_up" else 0,
                user=f"{self.site_id}.investigator",
            )
