"""ADaM-style export rows (DOMAIN.md "Exports"): ADSL, ADTTE, ADRS, ADAE, and their CSV text.

Each row model is a frozen dataclass whose field order is the CSV column order and whose
column names are the field names upper-cased (CDISC ADaM variable names). Rendering is pure:
dates as ISO 8601, None as an empty cell, flags as "Y"/"N", ledger seqs joined by ";" (the
original event's seq first, then its corrections).
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Literal, TypeVar

from events import AeReportedData, EnrolledData
from projections.common.csv_cells import csv_text
from projections.endpoints.tte import PatientCourse, TteRecord

Flag = Literal["Y", "N"]
Cell = str | int | float | bool | dt.date | tuple[int, ...] | None
Criterion = Literal["RECIST 1.1", "mRECIST", "PVTT"]
ResponseParamcd = Literal["OVR", "BOR", "CBOR"]

RESPONSE_PARAMS: dict[ResponseParamcd, str] = {
    "OVR": "Overall Response",
    "BOR": "Best Overall Response",
    "CBOR": "Best Confirmed Overall Response",
}


def usubjid(trial_id: str, site_id: str, patient_id: str) -> str:
    """Unique patient identifier across the trial: trial-site-patient."""
    return f"{trial_id}-{site_id}-{patient_id}"


def _flag(value: bool) -> Flag:
    return "Y" if value else "N"


@dataclass(frozen=True, slots=True)
class AdamRow:
    """A row of an ADaM dataset; subclasses list their columns as fields, in order."""

    DATASET: ClassVar[str] = ""

    @classmethod
    def columns(cls) -> tuple[str, ...]:
        return tuple(name.upper() for name in _field_names(cls))

    def cells(self) -> tuple[Cell, ...]:
        getter = _CELLS.get(type(self))
        if getter is None:
            names = _field_names(type(self))
            attributes = operator.attrgetter(*names)
            getter = _CELLS[type(self)] = (
                attributes if len(names) > 1 else (lambda row: (attributes(row),))
            )
        return getter(self)


def _field_names(row_type: type[AdamRow]) -> tuple[str, ...]:
    return tuple(f.name for f in fields(row_type))


# per row type, a getter of its cells in column order (`dataclasses.fields` is slow per row)
_CELLS: dict[type[AdamRow], Callable[[AdamRow], Any]] = {}


@dataclass(frozen=True, slots=True)
class AdslRow(AdamRow):
    """One row per patient: population flags, treatment dates, baseline characteristics.

    TRTSDT = STARTDT. TRTEDT = the last date of exposure to any study agent
    (`projections.endpoints.cutoff.last_exposure_on`): the last HAIC / PD-1 infusion; for lenvatinib
    (oral, daily) the discontinuation or interruption date — and while it is still being
    taken, the end of observed exposure: the earliest of the data cut-off, death,
    discontinuation of all study treatment, withdrawal of consent, and the last date known
    alive (a declared loss to follow-up is not a contact). Never
    after the data cut-off; doses dated after it are not counted.

    BLFLGR / BLFLGM: the baseline's flags per RECIST 1.1 / mRECIST, joined by ";" (empty when
    the baseline is clean): no usable baseline and why, a non-measurable target, more than 5
    targets, more than 2 in one organ, no measurable disease (`projections.criteria.baseline`).
    """

    DATASET: ClassVar[str] = "ADSL"

    studyid: str
    usubjid: str
    subjid: str
    siteid: str
    ittfl: Flag
    saffl: Flag
    efffl: Flag
    measrfl: Flag
    measmfl: Flag
    blflgr: str | None
    blflgm: str | None
    trtsdt: dt.date | None
    trtedt: dt.date | None
    age: int | None
    ageu: str | None
    sex: str | None
    bclc: str | None
    childpugh: str | None
    ecog: int | None
    pvttbl: Flag | None
    pvttvpbl: str | None
    ehsbl: Flag | None
    dthfl: Flag
    dthdt: dt.date | None
    lstalvdt: dt.date | None


@dataclass(frozen=True, slots=True)
class AdtteRow(AdamRow):
    """One row per patient and time-to-event parameter (AVAL in days)."""

    DATASET: ClassVar[str] = "ADTTE"

    studyid: str
    usubjid: str
    paramcd: str
    param: str
    aval: int
    avalu: str
    startdt: dt.date
    adt: dt.date
    cnsr: int
    evntdesc: str
    cnsdtdsc: str | None
    srcseq: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class AdrsRow(AdamRow):
    """One response record: a timepoint (OVR) or a best response (BOR, CBOR) per criterion.

    ANL01FL = "Y" on the records the analysis uses: every BOR / CBOR, and the OVR timepoints
    the best response is chosen from; "N" on a timepoint after the data cut-off, on or after
    subsequent anticancer therapy, after the first PD, before STARTDT, not the worst read of
    its date, or of a patient not treated by the cut-off (ANL01RSN says which:
    `projections.criteria.response.analysis_exclusions`).
    """

    DATASET: ClassVar[str] = "ADRS"

    studyid: str
    usubjid: str
    paramcd: ResponseParamcd
    param: str
    parcat3: Criterion
    avalc: str
    adt: dt.date | None
    anl01fl: Flag
    anl01rsn: str | None
    srcseq: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class AdaeRow(AdamRow):
    """One AE episode as it stands (updates applied), graded by CTCAE v5.0."""

    DATASET: ClassVar[str] = "ADAE"

    studyid: str
    usubjid: str
    aeterm: str
    aedecod: str
    aesoc: str | None
    atoxgr: int
    aeser: Flag
    aesdth: Flag
    aeslife: Flag
    aeshosp: Flag
    aesdisab: Flag
    aescong: Flag
    aesmie: Flag
    trtemfl: Flag
    arel_haic: str
    arel_pd1: str
    arel_lenv: str
    aeirfl: Flag
    aeacn: str
    aeout: str
    astdt: dt.date | None
    aendt: dt.date | None
    srcseq: tuple[int, ...]


ADSL_COLUMNS = AdslRow.columns()
ADTTE_COLUMNS = AdtteRow.columns()
ADRS_COLUMNS = AdrsRow.columns()
ADAE_COLUMNS = AdaeRow.columns()


def adsl_row(
    course: PatientCourse,
    enrolled: EnrolledData | None,
    *,
    trtedt: dt.date | None = None,
    measurable_recist: bool = False,
    measurable_mrecist: bool = False,
    data_cutoff: dt.date | None = None,
    baseline_flags_recist: tuple[str, ...] = (),
    baseline_flags_mrecist: tuple[str, ...] = (),
) -> AdslRow:
    """The patient's ADSL row (DOMAIN.md "Time origin and units", "Best overall response").

    ITTFL: enrolled. SAFFL: treated (has a STARTDT on or before the cut-off). MEASRFL /
    MEASMFL: measurable disease at baseline per RECIST 1.1 / mRECIST (the caller's response
    engine decides). EFFFL: treated and measurable per mRECIST, the primary ORR population.
    Death and last-known-alive dates after the data cut-off are not reported.
    """
    treated = course.startdt is not None and (data_cutoff is None or course.startdt <= data_cutoff)
    death = course.death_on
    if death is not None and data_cutoff is not None and death > data_cutoff:
        death = None
    alive = course.last_known_alive_on
    if alive is not None and data_cutoff is not None:
        alive = min(alive, data_cutoff)
    return AdslRow(
        studyid=course.trial_id,
        usubjid=usubjid(course.trial_id, course.site_id, course.patient_id),
        subjid=course.patient_id,
        siteid=course.site_id,
        ittfl=_flag(enrolled is not None),
        saffl=_flag(treated),
        efffl=_flag(treated and measurable_mrecist),
        measrfl=_flag(measurable_recist),
        measmfl=_flag(measurable_mrecist),
        blflgr=";".join(baseline_flags_recist) or None,
        blflgm=";".join(baseline_flags_mrecist) or None,
        trtsdt=course.startdt if treated else None,
        trtedt=trtedt if treated else None,
        age=enrolled.age_years if enrolled else None,
        ageu="YEARS" if enrolled else None,
        sex=enrolled.sex if enrolled else None,
        bclc=enrolled.bclc_stage if enrolled else None,
        childpugh=enrolled.child_pugh if enrolled else None,
        ecog=enrolled.ecog if enrolled else None,
        pvttbl=_flag(enrolled.baseline_pvtt) if enrolled else None,
        pvttvpbl=enrolled.baseline_pvtt_vp if enrolled else None,
        ehsbl=_flag(enrolled.baseline_extrahepatic_spread) if enrolled else None,
        dthfl=_flag(death is not None),
        dthdt=death,
        lstalvdt=None if death is not None else alive,
    )


def adtte_row(record: TteRecord) -> AdtteRow:
    """A time-to-event record as an ADTTE row: AVAL = ADT − STARTDT + 1, AVALU "DAYS"."""
    return AdtteRow(
        studyid=record.trial_id,
        usubjid=usubjid(record.trial_id, record.site_id, record.patient_id),
        paramcd=record.paramcd,
        param=record.param,
        aval=record.aval,
        avalu="DAYS",
        startdt=record.startdt,
        adt=record.adt,
        cnsr=int(record.cnsr),
        evntdesc=record.evntdesc,
        cnsdtdsc=record.cnsdtdsc,
        srcseq=record.srcseqs,
    )


def adrs_row(
    trial_id: str,
    site_id: str,
    patient_id: str,
    *,
    paramcd: ResponseParamcd,
    criterion: Criterion,
    avalc: str,
    adt: dt.date | None,
    srcseqs: tuple[int, ...] = (),
    not_analysed_because: str | None = None,
) -> AdrsRow:
    """A response as an ADRS row (admiralonco ADRS: OVR per timepoint, BOR, confirmed BOR);
    PARCAT3 names the criterion. A best response of MISSING has no date. A record is
    analysed (ANL01FL "Y") unless `not_analysed_because` names why not (ANL01RSN)."""
    return AdrsRow(
        studyid=trial_id,
        usubjid=usubjid(trial_id, site_id, patient_id),
        paramcd=paramcd,
        param=RESPONSE_PARAMS[paramcd],
        parcat3=criterion,
        avalc=avalc,
        adt=adt,
        anl01fl=_flag(not_analysed_because is None),
        anl01rsn=not_analysed_because,
        srcseq=srcseqs,
    )


def adae_row(
    trial_id: str,
    site_id: str,
    patient_id: str,
    ae: AeReportedData,
    *,
    onset_on: dt.date | None,
    soc: str | None,
    treatment_emergent: bool,
    srcseqs: tuple[int, ...] = (),
) -> AdaeRow:
    """An AE episode (its current state, updates applied) as an ADAE row.

    AEDECOD is the CTCAE v5.0 term, AETERM the verbatim when given; seriousness criteria per
    ICH E2A; relation per agent as reported (DOMAIN.md "Adverse events").
    """
    criteria = set(ae.seriousness)
    return AdaeRow(
        studyid=trial_id,
        usubjid=usubjid(trial_id, site_id, patient_id),
        aeterm=ae.verbatim or ae.term,
        aedecod=ae.term,
        aesoc=soc,
        atoxgr=ae.grade,
        aeser=_flag(ae.serious),
        aesdth=_flag("death" in criteria),
        aeslife=_flag("life_threatening" in criteria),
        aeshosp=_flag("hospitalisation" in criteria),
        aesdisab=_flag("disability" in criteria),
        aescong=_flag("congenital_anomaly" in criteria),
        aesmie=_flag("important_medical_event" in criteria),
        trtemfl=_flag(treatment_emergent),
        arel_haic=_relation(ae.attribution.haic),
        arel_pd1=_relation(ae.attribution.pd1),
        arel_lenv=_relation(ae.attribution.lenvatinib),
        aeirfl=_flag(ae.immune_related),
        aeacn=ae.action_taken.upper(),
        aeout=ae.outcome.upper(),
        astdt=onset_on,
        aendt=ae.resolved_on,
        srcseq=srcseqs,
    )


NOT_YET_ASSESSED = "NOT YET ASSESSED"


def _relation(causality: str | None) -> str:
    # Shown, never guessed: the site is asked to complete it (DOMAIN.md "Serious AEs").
    return causality.upper() if causality else NOT_YET_ASSESSED


Row = TypeVar("Row", bound=AdamRow)


def render_cell(value: Cell) -> str:
    """One value as CSV text: ISO dates, empty for None, Y/N for booleans, seqs joined by ";"."""
    match value:
        case None:
            return ""
        case bool():
            return _flag(value)
        case dt.date():
            return value.isoformat()
        case int():
            return str(int(value))
        case float():
            return repr(value)
        case str():
            return value
        case tuple():
            return ";".join(str(seq) for seq in value)


def to_csv_rows(row_type: type[Row], rows: Iterable[Row]) -> list[list[str]]:
    """The header (the row type's columns) followed by each row's cells as text; an empty
    dataset still has its header, hence the row type."""
    return [list(row_type.columns()), *([render_cell(c) for c in row.cells()] for row in rows)]


def render_csv(row_type: type[Row], rows: Iterable[Row]) -> str:
    """The dataset as CSV text (RFC 4180: CRLF line ends, quoting only where needed), safe to
    open in a spreadsheet (`projections.common.csv_cells`)."""
    header, *cells = to_csv_rows(row_type, rows)
    return csv_text(header, cells)
