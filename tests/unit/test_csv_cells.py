"""CSV cells a spreadsheet would run as formulas are exported as text (OWASP CSV injection);
numbers stay numbers; every CSV writer uses the same rule."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest

from events import AeReportedData, Attribution
from projections.common.csv_cells import csv_text, spreadsheet_safe
from projections.endpoints.adam import AdaeRow, adae_row, render_csv

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "text",
    [
        "=1+1",
        '=HYPERLINK("http://evil.example","click")',
        "+SUM(1,2)",
        "-2+3+cmd|' /C calc'!A0",
        "@SUM(1+1)",
        "\t=1+1",
        "\r=1+1",
        "-",
        "+",
        "-inf",
        "-12.5%",
        "--1",
    ],
)
def test_text_that_would_start_a_formula_is_prefixed_with_a_quote(text: str) -> None:
    assert spreadsheet_safe(text) == "'" + text


@pytest.mark.parametrize(
    "number", ["-12.5", "-3", "+7", "-0.5", "-1e-05", "-2.5E+10", "-.5", "12", "0"]
)
def test_a_negative_or_signed_number_is_a_number_not_a_formula(number: str) -> None:
    assert spreadsheet_safe(number) == number


@pytest.mark.parametrize(
    "text", ["Hypertension", "2025-02-05", "HAIC-PD1-LEN-site01-P0001", "", "a=b", " =1+1", "'=1"]
)
def test_plain_text_is_left_as_recorded(text: str) -> None:
    assert spreadsheet_safe(text) == text


def test_csv_text_neutralises_every_cell_and_quotes_as_rfc_4180() -> None:
    text = csv_text(["TERM", "PCHG"], [["=cmd|' /C calc'!A0, x", "-12.5"], ["@x", "3"]])
    assert text == "TERM,PCHG\r\n\"'=cmd|' /C calc'!A0, x\",-12.5\r\n'@x,3\r\n"
    assert list(csv.reader(io.StringIO(text)))[1] == ["'=cmd|' /C calc'!A0, x", "-12.5"]


def test_the_adam_renderer_uses_the_same_rule_for_a_verbatim_ae_term() -> None:
    ae = AeReportedData(
        term="Rash maculo-papular",
        verbatim='=HYPERLINK("http://evil.example","click")',
        grade=2,
        attribution=Attribution(pd1="probable"),
    )
    row = adae_row(
        "T",
        "site01",
        "P0001",
        ae,
        onset_on=dt.date(2025, 3, 1),
        soc="Skin",
        treatment_emergent=True,
        srcseqs=(5,),
    )
    parsed = list(csv.DictReader(io.StringIO(render_csv(AdaeRow, [row]))))
    assert parsed[0]["AETERM"] == "'" + ae.verbatim
    assert parsed[0]["ATOXGR"] == "2"
