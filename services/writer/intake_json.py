"""A submission's bytes read as JSON within limits, so hostile input gets an answer.

The standard parser takes NaN and Infinity, turns `1e999` into infinity, reads integers of any
size and recurses as deep as the input nests; each of those later broke an append (RFC 8785
canonical JSON has no NaN and no integer beyond 2**53) and left the submitter without a reply.
Here a number outside I-JSON's range (RFC 7493 §2.2) is kept as a marker, so the event that
holds it is rejected with the field's path while the other events of a batch go on.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from events.envelope import text_problem
from projections.common.field_error import FieldError

# An event nests a few levels (data.lesions.0.longest_diameter_mm); 32 leaves ample room.
MAX_DEPTH = 32
# The integers every JSON reader represents exactly (RFC 7493 §2.2, RFC 8785 §3.2.2.3).
MAX_SAFE_INTEGER = 2**53 - 1


class SubmissionUnreadable(ValueError):
    """The body as a whole cannot be read: no event in it can be judged."""


@dataclass(frozen=True, slots=True)
class OutOfRange:
    """A number the ledger cannot hold, in place of its value."""

    text: str


def _parse_int(text: str) -> int | OutOfRange:
    if len(text) > 17:  # more digits than any safe integer: do not even convert
        return OutOfRange(text[:24])
    value = int(text)
    return value if abs(value) <= MAX_SAFE_INTEGER else OutOfRange(text)


def _parse_float(text: str) -> float | OutOfRange:
    value = float(text)
    return value if math.isfinite(value) else OutOfRange(text[:24])


def parse_submission(payload: bytes) -> Any:
    """The JSON value of `payload` (UTF-8), out-of-range numbers as `OutOfRange` markers."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SubmissionUnreadable(f"not UTF-8 text (byte {exc.start})") from None
    try:
        return json.loads(
            text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=OutOfRange
        )
    except RecursionError:
        raise SubmissionUnreadable(f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise SubmissionUnreadable(f"not valid JSON: {exc}") from None


def _dotted(path: tuple[str | int, ...]) -> str:
    return ".".join(str(part) for part in path) or "event"


def json_problems(value: Any) -> list[FieldError]:
    """What in one parsed event the ledger cannot hold: numbers out of range, text with
    control characters (in values and in keys), nesting deeper than MAX_DEPTH."""
    problems: list[FieldError] = []
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack and len(problems) < 20:
        item, path = stack.pop()
        if len(path) > MAX_DEPTH:
            problems.append(FieldError(_dotted(path), f"nested deeper than {MAX_DEPTH} levels"))
        elif isinstance(item, OutOfRange):
            problems.append(
                FieldError(
                    _dotted(path),
                    f"number {item.text} is out of range (finite, integers within ±2**53-1)",
                )
            )
        elif isinstance(item, str):
            problem = text_problem(item)
            if problem is not None:
                problems.append(FieldError(_dotted(path), problem))
        elif isinstance(item, dict):
            for key, child in item.items():
                problem = text_problem(key)
                if problem is not None:
                    problems.append(FieldError(_dotted(path), f"a field name has a {problem}"))
                else:
                    stack.append((child, (*path, key)))
        elif isinstance(item, list):
            stack.extend((child, (*path, index)) for index, child in enumerate(item))
    return sorted(problems, key=lambda problem: problem.field)
