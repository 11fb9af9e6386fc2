"""Patient-course events: enrollment, treatment, follow-up, death (DOMAIN.md "Trial facts")."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from events.envelope import Envelope, EventRef, Model, Text

Agent = Literal["haic", "pd1", "lenvatinib"]
InfusedAgent = Literal["haic", "pd1"]
BclcStage = Literal["B", "C"]
ChildPugh = Literal["A5", "A6", "B7", "B8", "B9", "C10", "C11", "C12", "C13", "C14", "C15"]
VpGrade = Literal["Vp1", "Vp2", "Vp3", "Vp4"]


class BaselineLabs(Model):
    """Baseline values the CTCAE grading of lab AEs is relative to (units in the names)."""

    alt_u_per_l: float | None = Field(default=None, ge=0)
    ast_u_per_l: float | None = Field(default=None, ge=0)
    bilirubin_umol_per_l: float | None = Field(default=None, ge=0)
    albumin_g_per_l: float | None = Field(default=None, ge=0)
    platelets_10e9_per_l: float | None = Field(default=None, ge=0)
    neutrophils_10e9_per_l: float | None = Field(default=None, ge=0)
    afp_ng_per_ml: float | None = Field(default=None, ge=0)
    alt_uln: float | None = Field(default=None, gt=0)
    ast_uln: float | None = Field(default=None, gt=0)
    bilirubin_uln: float | None = Field(default=None, gt=0)


class EnrolledData(Model):
    bclc_stage: BclcStage
    child_pugh: ChildPugh
    ecog: int = Field(ge=0, le=4)
    prior_systemic_therapy: tuple[Text, ...] = Field(min_length=1)
    baseline_pvtt: bool
    baseline_pvtt_vp: VpGrade | None = None
    baseline_extrahepatic_spread: bool
    body_weight_kg: float = Field(gt=20, lt=300)
    age_years: int = Field(ge=18, le=110)
    sex: Literal["F", "M"]
    baseline_labs: BaselineLabs = BaselineLabs()


class InfusionGivenData(Model):
    """One HAIC cycle (e.g. FOLFOX via the hepatic artery) or one PD-1 infusion."""

    agent: InfusedAgent
    cycle: int = Field(ge=1, le=200)
    regimen: Text | None = None
    dose: float | None = Field(default=None, gt=0)
    dose_unit: Literal["mg", "mg/kg", "mg/m2"] | None = None


class DoseModifiedData(Model):
    """Start, reduce, interrupt, resume or discontinue one agent (lenvatinib chiefly)."""

    agent: Agent
    action: Literal["start", "reduce", "interrupt", "resume", "discontinue"]
    dose_mg: float | None = Field(default=None, ge=0, le=1000)
    ae_event_id: EventRef | None = None
    cause: Literal["adverse_event", "progression", "patient_decision", "protocol", "other"] = (
        "protocol"
    )


class DeathData(Model):
    cause: Literal["disease_progression", "adverse_event", "other", "unknown"]
    ae_event_id: EventRef | None = None
    autopsy: bool = False


class FollowUpContactData(Model):
    """A contact that shows the patient alive on `occurred_on` (OS censoring date)."""

    method: Literal["visit", "phone", "record_review"]
    alive: Literal[True] = True


class SubsequentTherapyStartedData(Model):
    therapy: Text
    kind: Literal["systemic", "locoregional", "surgery", "radiotherapy", "other"]
    anticancer: bool = True


class TreatmentDiscontinuedData(Model):
    """The patient stops all study treatment and enters follow-up."""

    cause: Literal[
        "progression",
        "adverse_event",
        "patient_decision",
        "physician_decision",
        "completed",
        "other",
    ]
    ae_event_id: EventRef | None = None


class WithdrawnData(Model):
    kind: Literal["consent_withdrawn", "lost_to_follow_up"]


class Enrolled(Envelope):
    type: Literal["enrolled"] = "enrolled"
    data: EnrolledData


class InfusionGiven(Envelope):
    type: Literal["infusion_given"] = "infusion_given"
    data: InfusionGivenData


class DoseModified(Envelope):
    type: Literal["dose_modified"] = "dose_modified"
    data: DoseModifiedData


class Death(Envelope):
    type: Literal["death"] = "death"
    data: DeathData


class FollowUpContact(Envelope):
    type: Literal["follow_up_contact"] = "follow_up_contact"
    data: FollowUpContactData


class SubsequentTherapyStarted(Envelope):
    type: Literal["subsequent_therapy_started"] = "subsequent_therapy_started"
    data: SubsequentTherapyStartedData


class TreatmentDiscontinued(Envelope):
    type: Literal["treatment_discontinued"] = "treatment_discontinued"
    data: TreatmentDiscontinuedData


class Withdrawn(Envelope):
    type: Literal["withdrawn"] = "withdrawn"
    data: WithdrawnData


__all__ = [
    "Agent",
    "BaselineLabs",
    "Death",
    "DeathData",
    "DoseModified",
    "DoseModifiedData",
    "Enrolled",
    "EnrolledData",
    "FollowUpContact",
    "FollowUpContactData",
    "InfusionGiven",
    "InfusionGivenData",
    "SubsequentTherapyStarted",
    "SubsequentTherapyStartedData",
    "TreatmentDiscontinued",
    "TreatmentDiscontinuedData",
    "VpGrade",
    "Withdrawn",
    "WithdrawnData",
]
