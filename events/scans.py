"""Lesion-level scan reads (DOMAIN.md "Tumour response per timepoint")."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from events.clinical import VpGrade
from events.envelope import Envelope, Millimetres, Model, Text, Token

Location = Literal["intrahepatic", "extrahepatic", "vascular"]
Role = Literal["target", "non_target", "new"]
NonTargetStatus = Literal["present", "absent", "unequivocal_progression", "not_assessed"]
RecistCall = Literal["CR", "PR", "SD", "PD", "NE", "NON-CR/NON-PD"]
PvttCall = Literal["CR", "PR", "SD", "PD", "NE"]


class Lesion(Model):
    """One lesion as the reader measured it at this timepoint.

    `longest_diameter_mm` is the RECIST 1.1 measurement (short axis for nodes goes in
    `short_axis_mm`); `viable_diameter_mm` is the arterially enhancing part (mRECIST).
    A target that could not be assessed carries no measurement and `not_assessed`.
    """

    lesion_id: Token
    location: Location
    organ: Token
    is_lymph_node: bool = False
    role: Role
    longest_diameter_mm: Millimetres | None = None
    viable_diameter_mm: Millimetres | None = None
    short_axis_mm: Millimetres | None = None
    status: NonTargetStatus | None = None
    enhancing: bool | None = None
    typical_hcc_pattern: bool | None = None
    equivocal: bool = False
    not_assessed: bool = False
    note: Text | None = None

    @model_validator(mode="after")
    def _measured_as_its_role_requires(self) -> Lesion:
        if self.role == "target" and not self.not_assessed:
            size = self.short_axis_mm if self.is_lymph_node else self.longest_diameter_mm
            if size is None:
                which = "short_axis_mm" if self.is_lymph_node else "longest_diameter_mm"
                raise ValueError(f"target lesion {self.lesion_id} needs {which} (or not_assessed)")
        if self.role == "non_target" and self.status is None:
            raise ValueError(f"non-target lesion {self.lesion_id} needs a status")
        return self


class PvttAssessment(Model):
    """Portal vein tumour thrombus at this timepoint (non-measurable, non-target)."""

    present: bool
    vp_grade: VpGrade | None = None
    thrombus_diameter_mm: Millimetres | None = None
    enhancing: bool | None = None
    branch: Token | None = None
    new_branch: bool = False

    @model_validator(mode="after")
    def _grade_when_present(self) -> PvttAssessment:
        if self.present and self.vp_grade is None:
            raise ValueError("a present thrombus needs its Vp grade")
        return self


class ReaderCalls(Model):
    """The reader's own overall calls; the engine recomputes and flags disagreement."""

    recist: RecistCall | None = None
    mrecist: RecistCall | None = None
    pvtt: PvttCall | None = None


class ScanReadData(Model):
    modality: Literal["CT", "MRI"] = "CT"
    timepoint: Literal["baseline", "follow_up", "unscheduled"] = "follow_up"
    lesions: tuple[Lesion, ...] = Field(default=(), max_length=60)
    pvtt: PvttAssessment | None = None
    new_ascites_cytology_proven: bool = False
    reader: Token | None = None
    reader_calls: ReaderCalls = ReaderCalls()

    @model_validator(mode="after")
    def _lesion_ids_unique(self) -> ScanReadData:
        ids = [lesion.lesion_id for lesion in self.lesions]
        if len(ids) != len(set(ids)):
            raise ValueError("lesion_id values must be unique within a scan")
        return self


class ScanRead(Envelope):
    type: Literal["scan_read"] = "scan_read"
    data: ScanReadData
