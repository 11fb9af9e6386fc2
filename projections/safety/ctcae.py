"""NCI CTCAE v5.0: the term table, AE entry checks and grading of this regimen's lab terms.

The table ships as package data (`projections/safety/data/ctcae_v5_terms.csv`, provenance beside it):
837 terms in 26 system organ classes, each with the grades it allows.
"""

from __future__ import annotations

import csv
import difflib
import functools
import io
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from types import MappingProxyType

CTCAE_VERSION = "5.0"
GRADES = (1, 2, 3, 4, 5)

Number = Decimal | int | float | str


@dataclass(frozen=True, slots=True)
class CtcaeTerm:
    """One CTCAE v5.0 term with its SOC and the description of each grade it allows."""

    soc: str
    term: str
    grade_descriptions: Mapping[int, str]
    definition: str

    @property
    def allowed_grades(self) -> tuple[int, ...]:
        return tuple(sorted(self.grade_descriptions))

    @property
    def requires_verbatim(self) -> bool:
        # "<SOC> - Other, specify" terms are placeholders: the event itself is in the verbatim.
        return self.term.endswith("Other, specify")


@dataclass(frozen=True, slots=True)
class CtcaeTable:
    """The CTCAE v5.0 term list, looked up by term (case-insensitive, exact otherwise)."""

    terms: Mapping[str, CtcaeTerm]

    def __len__(self) -> int:
        return len(self.terms)

    @property
    def socs(self) -> frozenset[str]:
        return frozenset(entry.soc for entry in self.terms.values())

    def lookup(self, term: str) -> CtcaeTerm | None:
        """The term's entry, or None when it is not a CTCAE v5.0 term."""
        return self.terms.get(_key(term))

    def get(self, term: str) -> CtcaeTerm:
        """The term's entry; KeyError naming the closest terms when it is not in CTCAE v5.0."""
        entry = self.lookup(term)
        if entry is None:
            raise KeyError(_unknown_term_message(term, self.suggestions(term)))
        return entry

    def suggestions(self, term: str, limit: int = 3) -> tuple[str, ...]:
        """The closest CTCAE terms to a misspelt one, best first ("did you mean")."""
        close = difflib.get_close_matches(_key(term), list(self.terms), n=limit, cutoff=0.6)
        return tuple(self.terms[key].term for key in close)

    def allowed_grades(self, term: str) -> tuple[int, ...]:
        """The grades CTCAE v5.0 defines for the term (not always 1..5)."""
        return self.get(term).allowed_grades

    def soc(self, term: str) -> str:
        """The term's MedDRA system organ class."""
        return self.get(term).soc

    def requires_verbatim(self, term: str) -> bool:
        """True for the "<SOC> - Other, specify" terms."""
        return self.get(term).requires_verbatim


def _key(term: str) -> str:
    return term.strip().casefold()


@functools.cache
def ctcae_table() -> CtcaeTable:
    """The shipped CTCAE v5.0 term table, read once from the package data."""
    text = (
        resources.files("projections.safety").joinpath("data/ctcae_v5_terms.csv").read_text("utf-8")
    )
    terms: dict[str, CtcaeTerm] = {}
    for row in csv.DictReader(io.StringIO(text)):
        descriptions = {
            grade: row[f"grade_{grade}"].strip()
            for grade in GRADES
            if row[f"grade_{grade}"].strip()
        }
        entry = CtcaeTerm(
            soc=row["soc"].strip(),
            term=row["term"].strip(),
            grade_descriptions=MappingProxyType(descriptions),
            definition=row["definition"].strip(),
        )
        terms[_key(entry.term)] = entry
    return CtcaeTable(MappingProxyType(terms))


def _unknown_term_message(term: str, suggestions: tuple[str, ...]) -> str:
    if not suggestions:
        return f"'{term}' is not a CTCAE v{CTCAE_VERSION} term."
    quoted = " or ".join(f"'{name}'" for name in suggestions)
    return f"'{term}' is not a CTCAE v{CTCAE_VERSION} term. Did you mean {quoted}?"


def _spoken_list(values: tuple[int, ...]) -> str:
    words = [str(value) for value in values]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def check_ae(term: str, grade: int, verbatim: str | None) -> list[tuple[str, str]]:
    """Problems with an AE's CTCAE coding, as (field, sentence) pairs; empty when valid.

    CTCAE v5.0: the term must exist in the table; the grade must be one the term defines
    (some stop at grade 3, 343 have no grade 5); an "Other, specify" term needs a verbatim.
    """
    problems: list[tuple[str, str]] = []
    table = ctcae_table()
    entry = table.lookup(term)
    if not 1 <= grade <= 5:
        problems.append(("grade", f"Grade {grade} does not exist: CTCAE grades run from 1 to 5."))
    if entry is None:
        problems.append(("term", _unknown_term_message(term, table.suggestions(term))))
        return problems
    if 1 <= grade <= 5 and grade not in entry.grade_descriptions:
        problems.append(
            (
                "grade",
                f"'{entry.term}' has no grade {grade} in CTCAE v{CTCAE_VERSION}; "
                f"its grades are {_spoken_list(entry.allowed_grades)}.",
            )
        )
    if entry.requires_verbatim and not (verbatim or "").strip():
        problems.append(
            (
                "verbatim",
                f"'{entry.term}' needs a verbatim description of the event.",
            )
        )
    return problems


# Grading from measurements. Every threshold is compared in Decimal built from the value as
# written, so 3.0 × ULN is exactly 3.0 × ULN and a boundary never falls on the wrong side.


def _dec(value: Number) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _band(multiple_of: Decimal, value: Decimal, floors: tuple[str, str, str, str]) -> int:
    """Grade 1..4 for `value` above `floor_g × multiple_of` (strictly), 0 below grade 1."""
    grade = 0
    for index, floor in enumerate(floors, start=1):
        if value > Decimal(floor) * multiple_of:
            grade = index
    return grade


def grade_aminotransferase_increased(
    value: Number, uln: Number, baseline: Number | None = None
) -> int:
    """CTCAE v5.0 "ALT increased" / "AST increased" grade (0 = not an AE).

    Baseline normal (or unknown): G1 >ULN–3.0×ULN, G2 >3.0–5.0×ULN, G3 >5.0–20.0×ULN,
    G4 >20.0×ULN. Baseline abnormal (above ULN): G1 1.5–3.0×baseline, G2 >3.0–5.0×,
    G3 >5.0–20.0×, G4 >20.0×baseline.
    """
    measured, limit = _dec(value), _dec(uln)
    if baseline is None or _dec(baseline) <= limit:
        return _band(limit, measured, ("1", "3.0", "5.0", "20.0"))
    reference = _dec(baseline)
    if measured < Decimal("1.5") * reference:
        return 0
    return max(1, _band(reference, measured, ("1.5", "3.0", "5.0", "20.0")))


def grade_bilirubin_increased(value: Number, uln: Number, baseline: Number | None = None) -> int:
    """CTCAE v5.0 "Blood bilirubin increased" grade (0 = not an AE).

    Baseline normal (or unknown): G1 >ULN–1.5×ULN, G2 >1.5–3.0×ULN, G3 >3.0–10.0×ULN,
    G4 >10.0×ULN. Baseline abnormal (above ULN): G1 >1.0–1.5×baseline, G2 >1.5–3.0×,
    G3 >3.0–10.0×, G4 >10.0×baseline.
    """
    measured, limit = _dec(value), _dec(uln)
    floors = ("1", "1.5", "3.0", "10.0")
    if baseline is None or _dec(baseline) <= limit:
        return _band(limit, measured, floors)
    return _band(_dec(baseline), measured, floors)


def _count_decreased(value: Number, lln: Number, ceilings: tuple[str, str, str]) -> int:
    """Grade of a falling count: G1 <LLN down to the first ceiling, each band below exclusive."""
    measured = _dec(value)
    if measured >= _dec(lln):
        return 0
    grade = 1
    for index, ceiling in enumerate(ceilings, start=2):
        if measured < Decimal(ceiling):
            grade = index
    return grade


def grade_platelet_count_decreased(value: Number, lln: Number) -> int:
    """CTCAE v5.0 "Platelet count decreased" (×10e9/L; 0 = not an AE).

    G1 <LLN–75.0, G2 <75.0–50.0, G3 <50.0–25.0, G4 <25.0.
    """
    return _count_decreased(value, lln, ("75.0", "50.0", "25.0"))


def grade_neutrophil_count_decreased(value: Number, lln: Number) -> int:
    """CTCAE v5.0 "Neutrophil count decreased" (×10e9/L; 0 = not an AE).

    G1 <LLN–1.5, G2 <1.5–1.0, G3 <1.0–0.5, G4 <0.5.
    """
    return _count_decreased(value, lln, ("1.5", "1.0", "0.5"))


def grade_hypertension(systolic: int, diastolic: int, *, life_threatening: bool = False) -> int:
    """CTCAE v5.0 "Hypertension", adult blood-pressure criteria (mm Hg; 0 = not an AE).

    G1 SBP 120–139 or DBP 80–89; G2 SBP 140–159 or DBP 90–99; G3 SBP ≥160 or DBP ≥100;
    G4 life-threatening consequences (malignant hypertension, hypertensive crisis). The worse
    of the two pressures decides. The grade 2–3 intervention criteria are the investigator's
    call and may only raise this grade.
    """
    if life_threatening:
        return 4
    by_systolic = 3 if systolic >= 160 else 2 if systolic >= 140 else 1 if systolic >= 120 else 0
    by_diastolic = 3 if diastolic >= 100 else 2 if diastolic >= 90 else 1 if diastolic >= 80 else 0
    return max(by_systolic, by_diastolic)
