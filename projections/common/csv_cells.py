"""CSV text that is safe to open in a spreadsheet: the one definition every CSV writer uses.

A spreadsheet (Excel, LibreOffice, Google Sheets) runs a cell that begins with `=`, `+`, `-`
or `@` as a formula, and tab or carriage return at the start lets such a payload slip past
naive filters; a verbatim AE term like `=HYPERLINK("http://evil","click")` would run on the
sponsor's machine (CSV injection, OWASP "CSV Injection"). OWASP's remedy is to prefix such a
cell with a single quote, which makes the spreadsheet show it as text.

A number is not a formula: `-12.5` (a percent change) or `-1e-05` is left as it is, so numeric
columns stay numeric. Only the exported text changes; the ledger and the read models keep the
value as recorded.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence

# OWASP CSV Injection: the characters a formula (or a DDE payload) can start with.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# A plain decimal number, as Python renders ints and floats (`-12.5`, `+3`, `-1e-05`):
# spreadsheets read it as a number, never as a formula. Anything else is text.
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def spreadsheet_safe(text: str) -> str:
    """The cell as a spreadsheet shows it literally: `'` before text that would start a
    formula (OWASP CSV Injection), plain numbers left alone."""
    if text.startswith(FORMULA_START) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def csv_text(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """The header and rows of text cells as CSV (RFC 4180: CRLF line ends, quoting only where
    needed), every cell made spreadsheet-safe."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([spreadsheet_safe(cell) for cell in header])
    writer.writerows([spreadsheet_safe(cell) for cell in row] for row in rows)
    return buffer.getvalue()
