"""One simulated patient's clinical course, as the events a site would submit.

Pure and seeded: a `random.Random` in, event dicts out, no IO and no clock. The course follows
the trial's schedule (DOMAIN.md "Trial facts"): HAIC FOLFOX and a PD-1 antibody every 3 weeks,
lenvatinib daily by weight, scans every 42 ± 7 days until progression, CTCAE v5.0 AEs that
drive lenvatinib reductions and interruptions, then follow-up until death, withdrawal or the
cut-off. `services.simulator.trial` assembles the trial from these courses.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from services.simulator.scans import ScanPlan, scan_reads

Event = dict[str, Any]

CYCLE_DAYS = 21
SCAN_INTERVAL_DAYS = 42
TEAE_WINDOW_DAYS = 30
LENVATINIB_STEPS = (12, 8, 4)

ASSESSED_UNRELATED = {"haic": "unrelated", "pd1": "unrelated", "lenvatinib": "unrelated"}
# CTCAE v5.0 term, highest non-fatal grade the table allows, usual attribution,
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
# Fatal events of this population and regimen; each allows grades 4 and 5 in CTCAE v5.0.
FATAL_TERMS: tuple[tuple[str, dict[str, str]], ...] = (
    ("Hepatic failure", {"haic": "possible", "lenvatinib": "possible"}),
    ("Upper gastrointestinal hemorrhage", {"lenvatinib": "possible"}),
    ("Esophageal varices hemorrhage", {"lenvatinib": "possible"}),
)
LENVATINIB_TOXICITIES = frozenset(
    {
        "Hypertension", "Palmar-plantar erythrodysesthesia syndrome", "Proteinuria",
        "Diarrhea", "Fatigue", "Anorexia", "Platelet count decreased",
    }
)  # fmt: skip
PRIOR_THERAPIES = (
    ("atezolizumab + bevacizumab",), ("sorafenib",), ("lenvatinib",),
    ("durvalumab + tremelimumab",), ("atezolizumab + bevacizumab", "sorafenib"),
)  # fmt: skip
PD1_AGENTS = ("sintilimab", "tislelizumab", "camrelizumab")
LATER_THERAPIES = (
    ("regorafenib", "systemic"), ("cabozantinib", "systemic"), ("ramucirumab", "systemic"),
    ("TACE", "locoregional"), ("SBRT to PVTT", "radiotherapy"), ("apatinib", "systemic"),
)  # fmt: skip
SERIOUSNESS = ("hospitalisation", "important_medical_event", "life_threatening")


@dataclass(frozen=True)
class Fate:
    """Rare outcomes the trial hands out on purpose, so that every run shows them."""

    consent_withdrawal: bool = False
    lost_to_follow_up: bool = False
    fatal_ae: bool = False


@dataclass
class Entry:
    """An event and the day the site types it in, which sets the submission order."""

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
    fatal: bool = False
    event: Event | None = None


def days(n: int) -> timedelta:
    return timedelta(days=n)


class Course:
    """Builds one patient's events; `emit` drops anything after the patient's last day
    (death, withdrawal or the cut-off), so no clinical date lies in the future."""

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
        self.start = enrolled_on
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
            "type": kind, "schema_version": 1, "trial_id": self.trial_id,
            "site_id": self.site_id, "patient_id": self.patient_id,
            "occurred_on": on.isoformat(),
            "recorded_by": user or f"{self.site_id}.crc{r.randint(1, 2)}",
        }  # fmt: skip
        if reason is not None:
            event["reason"] = reason
        event["data"] = data
        # Most entries are typed within a week; none before the enrollment or the event it
        # refers to, so the site's order keeps every reference pointing backwards.
        entered = on + days(r.choice((0, 0, 1, 1, 2, 3, 5, 8)) if lag is None else lag)
        floors = [entered, *(entry.entered for entry in self.entries[:1])]
        if after is not None:
            floors.append(self._entered[after["event_id"]])
        self._entered[event["event_id"]] = max(floors)
        self.entries.append(Entry(max(floors), len(self.entries), event))
        return event

    def build(self) -> None:
        """Enrollment, plan, treatment with its AEs, scans, follow-up and death."""
        r = self.rng
        pvtt, extrahepatic = r.random() < 0.35, r.random() < 0.3
        weight = round(r.uniform(42.0, 88.0), 1)
        vp = r.choice(("Vp1", "Vp2", "Vp3", "Vp3", "Vp4")) if pvtt else None
        self.emit("enrolled", self.enrolled_on, self._enrollment(pvtt, vp, extrahepatic, weight))
        self.start = self.enrolled_on + days(r.randint(1, 7))
        plan = ScanPlan.draw(r, pvtt_vp=vp, extrahepatic=extrahepatic)
        scan_days = self._scan_days()
        pd_on = None
        if plan.pd_scan is not None and plan.pd_scan <= len(scan_days):
            pd_on = scan_days[plan.pd_scan - 1]
        death_on, death_cause, fatal_ae = self._plan_death(pd_on)
        withdrawal = self._plan_withdrawal(pd_on)
        for end in (death_on, withdrawal[1] if withdrawal else None):
            self.last_day = min(self.last_day, end or self.last_day)
        eot, eot_cause = self._plan_end_of_treatment(pd_on, withdrawal)
        aes = self._plan_aes(eot)
        stopping_ae = None
        severe = [ae for ae in aes if ae.grade >= 3 and ae.onset < eot - days(7)]
        if severe and r.random() < 0.15:
            stopping_ae = severe[0]
            eot, eot_cause = stopping_ae.onset + days(r.randint(1, 7)), "adverse_event"
            aes = [ae for ae in aes if ae.onset <= eot + days(TEAE_WINDOW_DAYS)]
        if fatal_ae is not None:
            aes.append(fatal_ae)
        self._treat(weight, aes, eot, eot_cause, stopping_ae)
        baseline_on = self.enrolled_on - days(r.randint(1, 21))
        for on, data in scan_reads(r, plan, baseline_on, scan_days):
            self.emit("scan_read", on, data, user=f"{self.site_id}.radiology", lag=r.randint(1, 6))
        self._after_treatment(eot, eot_cause, pd_on, withdrawal)
        if death_on is not None:
            ae_event = fatal_ae.event if fatal_ae is not None else None
            data = {"cause": death_cause, "autopsy": r.random() < 0.1}
            if ae_event is not None:
                data["ae_event_id"] = ae_event["event_id"]
            lag, user = r.randint(1, 30), f"{self.site_id}.pi"
            death = self.emit("death", death_on, data, after=ae_event, lag=lag, user=user)
            if ae_event is not None:
                # The writer takes grade 5 only once the death is recorded, and the death's
                # link only to a recorded AE: report grade 4, record the death, then update.
                fatal = {"ae_event_id": ae_event["event_id"], "grade": 5, "serious": True,
                         "seriousness": ["death", "life_threatening"], "outcome": "fatal"}  # fmt: skip
                self.emit("ae_updated", death_on, fatal, after=death, user=user)

    def _enrollment(
        self, pvtt: bool, vp: str | None, extrahepatic: bool, weight: float
    ) -> dict[str, Any]:
        r = self.rng
        labs = {
            "alt_u_per_l": float(r.randint(15, 85)), "alt_uln": 40.0,
            "ast_u_per_l": float(r.randint(20, 110)), "ast_uln": 40.0,
            "bilirubin_umol_per_l": float(r.randint(6, 32)), "bilirubin_uln": 21.0,
            "albumin_g_per_l": float(r.randint(30, 46)),
            "platelets_10e9_per_l": float(r.randint(75, 320)),
            "neutrophils_10e9_per_l": round(r.uniform(1.6, 6.0), 1),
            "afp_ng_per_ml": round(r.lognormvariate(5.0, 2.0), 1),
        }  # fmt: skip
        return {
            "bclc_stage": "C" if pvtt or extrahepatic or r.random() < 0.2 else "B",
            "child_pugh": r.choices(("A5", "A6", "B7"), (55, 35, 10))[0],
            "ecog": r.choices((0, 1), (55, 45))[0],
            "prior_systemic_therapy": list(r.choice(PRIOR_THERAPIES)),
            "baseline_pvtt": pvtt, "baseline_pvtt_vp": vp,
            "baseline_extrahepatic_spread": extrahepatic, "body_weight_kg": weight,
            "age_years": r.randint(34, 79), "sex": r.choices(("M", "F"), (82, 18))[0],
            "baseline_labs": labs,
        }  # fmt: skip

    def _scan_days(self) -> list[date]:
        """Scheduled assessments every 42 days from STARTDT, each inside its ±7-day window."""
        scans: list[date] = []
        while True:
            on = self.start + days(SCAN_INTERVAL_DAYS * (len(scans) + 1) + self.rng.randint(-5, 7))
            if on > self.cutoff:
                return scans
            scans.append(on)

    def _plan_death(self, pd_on: date | None) -> tuple[date | None, str, PlannedAe | None]:
        r = self.rng
        if self.fate.lost_to_follow_up:
            return None, "unknown", None  # whatever happens, the site never learns of it
        if self.fate.fatal_ae:
            on = self.start + days(r.randint(20, self._days_before(pd_on, 200)))
            if on <= self.cutoff:
                term, attribution = r.choice(FATAL_TERMS)
                onset = on - days(r.randint(0, 6))
                ae = PlannedAe(onset, term, 4, 4, attribution, False, True, fatal=True)
                return on, "adverse_event", ae
        if pd_on is not None:
            on = pd_on + days(int(r.expovariate(1 / 360)) + 5)
            return (on if on <= self.cutoff else None), "disease_progression", None
        if r.random() < 0.06:
            on = self.start + days(r.randint(40, 500))
            return (on if on <= self.cutoff else None), r.choice(("other", "unknown")), None
        return None, "unknown", None

    def _plan_withdrawal(self, pd_on: date | None) -> tuple[str, date] | None:
        r = self.rng
        if self.fate.consent_withdrawal:
            return "consent_withdrawn", self.start + days(
                r.randint(30, self._days_before(pd_on, 150))
            )
        if self.fate.lost_to_follow_up:
            return "lost_to_follow_up", (pd_on or self.start) + days(r.randint(30, 150))
        return None

    def _days_before(self, pd_on: date | None, latest: int) -> int:
        """Days from STARTDT to the day before progression, at most `latest`."""
        return latest if pd_on is None else min(latest, (pd_on - self.start).days - 1)

    def _plan_end_of_treatment(
        self, pd_on: date | None, withdrawal: tuple[str, date] | None
    ) -> tuple[date, str]:
        """Treatment runs until progression or withdrawal; death or the cut-off just stop it."""
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
            choice = r.choices(AE_TERMS, [term[4] for term in AE_TERMS])[0]
            term, max_grade, attribution, immune, _ = choice
            grade = min(max_grade, r.choices((1, 2, 3, 4), (45, 35, 16, 4))[0])
            serious = r.random() < (0.5 if grade >= 3 else 0.07)
            onset = self.start + days(r.randint(3, window))
            aes.append(PlannedAe(onset, term, grade, max_grade, attribution, immune, serious))
        return sorted(aes, key=lambda ae: ae.onset)

    def _treat(
        self,
        weight: float,
        aes: list[PlannedAe],
        eot: date,
        eot_cause: str,
        stopping_ae: PlannedAe | None,
    ) -> None:
        """Lenvatinib 8 mg (< 60 kg) or 12 mg daily, reduced 12 → 8 → 4 mg or interrupted for
        its toxicities; PD-1 held for grade ≥ 3 immune AEs; HAIC and PD-1 every 21 days."""
        r = self.rng
        lenvatinib = 8 if weight < 60 else 12
        start = {"agent": "lenvatinib", "action": "start", "dose_mg": lenvatinib}
        self.emit("dose_modified", self.start, {**start, "cause": "protocol"}, lag=0)
        pd1_held: list[tuple[date, date]] = []
        lenvatinib_off_until = self.start
        for ae in aes:
            ae.event = self._report_ae(ae)
            if ae.event is None or ae.onset >= eot or ae.fatal:
                continue
            if ae.immune and ae.grade >= 3:
                back = ae.onset + days(r.randint(21, 42))
                self._modify("pd1", "interrupt", ae.onset, None, ae)
                pd1_held.append((ae.onset, back))
                if back < eot:
                    self._modify("pd1", "resume", back, None, ae)
            held = ae.onset <= lenvatinib_off_until
            if ae.term not in LENVATINIB_TOXICITIES or lenvatinib == 0 or held:
                continue
            lower = next((dose for dose in LENVATINIB_STEPS if dose < lenvatinib), 0)
            if ae.grade >= 3 and lower == 0:
                self._modify("lenvatinib", "discontinue", ae.onset, None, ae)
            elif ae.grade >= 3:
                lenvatinib_off_until = ae.onset + days(r.randint(7, 14))
                self._modify("lenvatinib", "interrupt", ae.onset, None, ae)
                if lenvatinib_off_until < eot:
                    self._modify("lenvatinib", "resume", lenvatinib_off_until, lower, ae)
            elif ae.grade == 2 and lower and r.random() < 0.5:
                self._modify("lenvatinib", "reduce", ae.onset, lower, ae)
            else:
                continue
            lenvatinib = lower
        self._infusions(eot, pd1_held)
        if eot_cause == "ongoing" or eot > self.last_day:
            return
        if lenvatinib:
            self._modify("lenvatinib", "discontinue", eot, None, stopping_ae, cause=eot_cause)
        ae_event = stopping_ae.event if stopping_ae is not None else None
        data = {"cause": eot_cause}
        if ae_event is not None:
            data["ae_event_id"] = ae_event["event_id"]
        self.emit("treatment_discontinued", eot, data, after=ae_event)

    def _infusions(self, eot: date, pd1_held: list[tuple[date, date]]) -> None:
        """HAIC FOLFOX for 6-8 cycles and the PD-1 antibody every 21 days (a few days' delay
        now and then) until the end of treatment; held PD-1 doses are skipped."""
        r = self.rng
        agent = r.choice(PD1_AGENTS)
        haic_cycles, given_haic, given_pd1, day = r.randint(6, 8), 0, 0, self.start
        while day < eot:
            if given_haic < haic_cycles:
                given_haic += 1
                haic = {"agent": "haic", "cycle": given_haic, "regimen": "FOLFOX"}
                self.emit("infusion_given", day, {**haic, "dose": 85.0, "dose_unit": "mg/m2"})
            if not any(held <= day < back for held, back in pd1_held):
                given_pd1 += 1
                pd1 = {"agent": "pd1", "cycle": given_pd1, "regimen": agent}
                self.emit("infusion_given", day, {**pd1, "dose": 200.0, "dose_unit": "mg"})
            day += days(CYCLE_DAYS + r.choice((0, 0, 0, 1, 2, 3, 7)))

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
        ae_event = ae.event if ae is not None else None
        data: dict[str, Any] = {"agent": agent, "action": action, "dose_mg": dose, "cause": cause}
        if ae_event is not None:
            data["ae_event_id"] = ae_event["event_id"]
            if ae_event["data"]["action_taken"] == "none":
                # Not yet submitted: the report states the action the AE led to.
                taken = {"discontinue": "withdrawn", "reduce": "dose_reduced"}
                ae_event["data"]["action_taken"] = taken.get(action, "interrupted")
        self.emit("dose_modified", on, data, after=ae_event)

    def _report_ae(self, ae: PlannedAe) -> Event | None:
        """CTCAE v5.0 term and grade, ICH E2A seriousness, site awareness, grade changes."""
        r = self.rng
        late = r.random() < 0.06
        lag = r.randint(2, 9) if late else r.choice((0, 0, 1))
        # Aware on the day of entry, or days before it when the entry is late; never after
        # the cut-off, whose hours may not have passed yet.
        aware_on = min(ae.onset if late else ae.onset + days(lag), self.cutoff)
        clock = f"{r.randint(7, 19):02d}:{r.randint(0, 59):02d}"
        seriousness = [r.choices(SERIOUSNESS, (70, 20, 10))[0]] if ae.serious else []
        if ae.serious and ae.grade == 4:
            seriousness = ["life_threatening", "hospitalisation"]
        data: dict[str, Any] = {
            "term": ae.term, "grade": ae.grade, "serious": ae.serious,
            # the investigator assesses every agent (unnamed ones as unrelated): not left open
            "seriousness": seriousness, "attribution": {**ASSESSED_UNRELATED, **ae.attribution},
            "expected": not (ae.serious and r.random() < 0.3), "immune_related": ae.immune,
            "action_taken": "none", "outcome": "not_recovered",
            "site_aware_at": f"{aware_on.isoformat()}T{'00:05' if aware_on == self.cutoff else clock}:00Z",
        }  # fmt: skip
        event = self.emit("ae_reported", ae.onset, data, lag=lag, user=f"{self.site_id}.pi")
        if event is None or ae.fatal:
            return event
        grade, on = ae.grade, ae.onset
        if r.random() < 0.5:
            on += days(r.randint(5, 21))
            grade = max(1, min(ae.max_grade, grade + r.choice((-1, 1, 1))))
            change: dict[str, Any] = {"ae_event_id": event["event_id"], "grade": grade}
            if grade >= 3 and not ae.serious and r.random() < 0.4:
                change.update(serious=True, seriousness=["hospitalisation"])
            if grade != ae.grade:
                self.emit("ae_updated", on, change, after=event)
        if r.random() < 0.65:
            on += days(r.randint(7, 45))
            resolved = {"outcome": "recovered", "resolved_on": on.isoformat()}
            self.emit("ae_updated", on, {"ae_event_id": event["event_id"], **resolved}, after=event)
        return event

    def _after_treatment(
        self, eot: date, eot_cause: str, pd_on: date | None, withdrawal: tuple[str, date] | None
    ) -> None:
        """Subsequent therapy after progression, contacts every 2-3 months, withdrawal."""
        r = self.rng
        if eot_cause == "ongoing":
            return
        if pd_on is not None and r.random() < 0.55:
            therapy, kind = r.choice(LATER_THERAPIES)
            on = max(eot, pd_on) + days(r.randint(14, 60))
            self.emit("subsequent_therapy_started", on, {"therapy": therapy, "kind": kind})
        on = eot
        while (on := on + days(r.randint(60, 90))) < self.last_day:
            self.emit("follow_up_contact", on, {"method": r.choice(("visit", "phone", "phone"))})
        if withdrawal is not None and withdrawal[1] == self.last_day:
            kind, on = withdrawal
            lag = r.randint(30, 90) if kind == "lost_to_follow_up" else 0
            self.emit("withdrawn", on, {"kind": kind}, lag=lag, user=f"{self.site_id}.pi")
