"""ADaM-style export rows: given a patient's derived values → these columns and CSV cells."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest

from events import AeReportedData, Attribution, EnrolledData
from projections.endpoints.adam import (
    ADAE_COLUMNS,
    ADRS_COLUMNS,
    ADSL_COLUMNS,
    ADTTE_COLUMNS,
    AdaeRow,
    AdrsRow,
    AdtteRow,
    adae_row,
    adrs_row,
    adsl_row,
    adtte_row,
    render_cell,
    render_csv,
    to_csv_rows,
)
from projections.endpoints.tte import Cnsr, PatientCourse, TteRecord

pytestmark = pytest.mark.unit

TRIAL, SITE, PATIENT = "HAIC-PD1-LEN", "site01", "P0001"

ENROLLED = EnrolledData(
    bclc_stage="C",
    child_pugh="A6",
    ecog=1,
    prior_systemic_therapy=("sorafenib",),
    baseline_pvtt=True,
    baseline_pvtt_vp="Vp3",
    baseline_extrahepatic_spread=False,
    body_weight_kg=64.5,
    age_years=58,
    sex="M",
)

TREATED = PatientCourse(
    trial_id=TRIAL,
    site_id=SITE,
    patient_id=PATIENT,
    startdt=dt.date(2024, 1, 10),
    death_on=dt.date(2024, 5, 10),
    last_known_alive_on=dt.date(2024, 5, 2),
)


def death_record() -> TteRecord:
    return TteRecord(
        trial_id=TRIAL,
        site_id=SITE,
        patient_id=PATIENT,
        paramcd="OS",
        param="Overall Survival",
        startdt=dt.date(2024, 1, 10),
        adt=dt.date(2024, 3, 1),
        cnsr=Cnsr.EVENT,
        evntdesc="DEATH",
        cnsdtdsc=None,
        srcseqs=(40, 44),
    )


def test_adtte_columns_are_the_domain_export_list_in_order() -> None:
    assert ADTTE_COLUMNS == (
        "STUDYID",
        "USUBJID",
        "PARAMCD",
        "PARAM",
        "AVAL",
        "AVALU",
        "STARTDT",
        "ADT",
        "CNSR",
        "EVNTDESC",
        "CNSDTDSC",
        "SRCSEQ",
    )


def test_adtte_row_of_a_death_renders_iso_dates_and_empty_censoring_description() -> None:
    rows = to_csv_rows(AdtteRow, [adtte_row(death_record())])
    assert rows[1] == [
        "HAIC-PD1-LEN",
        "HAIC-PD1-LEN-site01-P0001",
        "OS",
        "Overall Survival",
        "52",
        "DAYS",
        "2024-01-10",
        "2024-03-01",
        "0",
        "DEATH",
        "",
        "40;44",
    ]


def test_empty_dataset_still_has_its_header() -> None:
    assert render_csv(AdrsRow, []) == (
        "STUDYID,USUBJID,PARAMCD,PARAM,PARCAT3,AVALC,ADT,ANL01FL,ANL01RSN,SRCSEQ\r\n"
    )


def test_csv_quotes_text_that_contains_a_comma() -> None:
    censored = adtte_row(
        TteRecord(
            trial_id=TRIAL,
            site_id=SITE,
            patient_id=PATIENT,
            paramcd="PFS",
            param="Progression-Free Survival per mRECIST",
            startdt=dt.date(2024, 1, 10),
            adt=dt.date(2024, 4, 3),
            cnsr=Cnsr.LAST_ADEQUATE_ASSESSMENT,
            evntdesc="NO PROGRESSION, ALIVE",
            cnsdtdsc="LAST ADEQUATE ASSESSMENT",
            srcseqs=(20,),
        )
    )
    text = render_csv(AdtteRow, [censored])
    assert '"NO PROGRESSION, ALIVE"' in text
    parsed = list(csv.reader(io.StringIO(text)))
    assert parsed[1][ADTTE_COLUMNS.index("EVNTDESC")] == "NO PROGRESSION, ALIVE"
    assert parsed[1][ADTTE_COLUMNS.index("AVAL")] == "85"
    assert parsed[1][ADTTE_COLUMNS.index("CNSR")] == "1"


def test_cells_render_dates_none_flags_and_seqs() -> None:
    assert render_cell(dt.date(2024, 2, 29)) == "2024-02-29"
    assert render_cell(None) == ""
    assert render_cell(True) == "Y"
    assert render_cell(False) == "N"
    assert render_cell((7,)) == "7"
    assert render_cell(Cnsr.MISSED_ASSESSMENTS) == "4"


def test_adsl_row_of_a_treated_patient() -> None:
    row = adsl_row(TREATED, ENROLLED, trtedt=dt.date(2024, 4, 1), measurable_mrecist=True)
    assert ADSL_COLUMNS[:4] == ("STUDYID", "USUBJID", "SUBJID", "SITEID")
    assert (row.usubjid, row.ittfl, row.saffl, row.efffl) == (
        "HAIC-PD1-LEN-site01-P0001",
        "Y",
        "Y",
        "Y",
    )
    assert (row.measrfl, row.measmfl) == ("N", "Y")
    assert (row.trtsdt, row.trtedt) == (dt.date(2024, 1, 10), dt.date(2024, 4, 1))
    assert (row.bclc, row.childpugh, row.ecog, row.pvttbl, row.pvttvpbl, row.ehsbl) == (
        "C",
        "A6",
        1,
        "Y",
        "Vp3",
        "N",
    )
    assert (row.age, row.ageu, row.sex) == (58, "YEARS", "M")
    assert (row.dthfl, row.dthdt, row.lstalvdt) == ("Y", dt.date(2024, 5, 10), None)


def test_adsl_never_treated_patient_is_not_in_the_safety_population() -> None:
    untreated = PatientCourse(trial_id=TRIAL, site_id=SITE, patient_id="P0002", startdt=None)
    row = adsl_row(untreated, ENROLLED, measurable_mrecist=True)
    assert (row.ittfl, row.saffl, row.efffl, row.trtsdt) == ("Y", "N", "N", None)


def test_adsl_hides_a_death_after_the_cut_off() -> None:
    row = adsl_row(TREATED, ENROLLED, data_cutoff=dt.date(2024, 4, 30))
    assert (row.dthfl, row.dthdt, row.lstalvdt) == ("N", None, dt.date(2024, 4, 30))


def test_adrs_best_response_names_its_criterion() -> None:
    row = adrs_row(
        TRIAL,
        SITE,
        PATIENT,
        paramcd="CBOR",
        criterion="mRECIST",
        avalc="PR",
        adt=dt.date(2024, 2, 21),
        srcseqs=(10,),
    )
    assert ADRS_COLUMNS == (
        "STUDYID",
        "USUBJID",
        "PARAMCD",
        "PARAM",
        "PARCAT3",
        "AVALC",
        "ADT",
        "ANL01FL",
        "ANL01RSN",
        "SRCSEQ",
    )
    assert to_csv_rows(AdrsRow, [row])[1] == [
        "HAIC-PD1-LEN",
        "HAIC-PD1-LEN-site01-P0001",
        "CBOR",
        "Best Confirmed Overall Response",
        "mRECIST",
        "PR",
        "2024-02-21",
        "Y",
        "",
        "10",
    ]


def test_adrs_missing_best_response_has_no_date() -> None:
    row = adrs_row(TRIAL, SITE, PATIENT, paramcd="BOR", criterion="PVTT", avalc="MISSING", adt=None)
    assert to_csv_rows(AdrsRow, [row])[1][-4:] == ["", "Y", "", ""]


def test_adae_row_carries_seriousness_criteria_and_relation_per_agent() -> None:
    ae = AeReportedData(
        term="Hypertension",
        verbatim="high blood pressure",
        grade=3,
        serious=True,
        seriousness=("hospitalisation", "important_medical_event"),
        attribution=Attribution(lenvatinib="probable", pd1="unlikely"),
        action_taken="dose_reduced",
        outcome="recovered",
        resolved_on=dt.date(2024, 3, 2),
    )
    row = adae_row(
        TRIAL,
        SITE,
        PATIENT,
        ae,
        onset_on=dt.date(2024, 2, 20),
        soc="Vascular disorders",
        treatment_emergent=True,
        srcseqs=(31, 35),
    )
    cells = dict(zip(ADAE_COLUMNS, to_csv_rows(AdaeRow, [row])[1], strict=True))
    assert (cells["AETERM"], cells["AEDECOD"], cells["AESOC"]) == (
        "high blood pressure",
        "Hypertension",
        "Vascular disorders",
    )
    assert (cells["ATOXGR"], cells["AESER"], cells["TRTEMFL"]) == ("3", "Y", "Y")
    assert (cells["AESHOSP"], cells["AESMIE"], cells["AESDTH"], cells["AESLIFE"]) == (
        "Y",
        "Y",
        "N",
        "N",
    )
    assert (cells["AREL_HAIC"], cells["AREL_PD1"], cells["AREL_LENV"]) == (
        "NOT YET ASSESSED",  # never guessed as unrelated: the site is asked to complete it
        "UNLIKELY",
        "PROBABLE",
    )
    assert (cells["ASTDT"], cells["AENDT"], cells["SRCSEQ"]) == (
        "2024-02-20",
        "2024-03-02",
        "31;35",
    )
    assert (cells["AEACN"], cells["AEOUT"]) == ("DOSE_REDUCED", "RECOVERED")
