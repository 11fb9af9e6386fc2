"""The event catalogue as a contract: golden samples, canonical JSON, hashing, purity."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

import events
from events import EVENT_TYPES, canonical_json, decode, event_hash, seal_stored
from events.catalogue import NewerSchemaVersion, UnknownEventType
from events.examples import EXAMPLES

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "events" / "samples"

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)


@pytest.mark.parametrize("kind", EVENT_TYPES)
def test_every_type_has_a_golden_sample_that_still_decodes_strictly(kind: str) -> None:
    sample = json.loads((SAMPLES / f"{kind}.v1.json").read_text())
    event = decode(sample, mode="strict")
    assert event.type == kind
    assert sample == EXAMPLES[kind]


def test_unknown_type_and_newer_version_are_never_silently_accepted() -> None:
    with pytest.raises(UnknownEventType):
        decode({**EXAMPLES["death"], "type": "resurrected"})
    with pytest.raises(NewerSchemaVersion):
        decode({**EXAMPLES["death"], "schema_version": 2})


def test_tolerant_decoding_ignores_unknown_fields_but_strict_rejects_them() -> None:
    raw = {**EXAMPLES["death"], "colour": "blue"}
    assert decode(raw).type == "death"
    with pytest.raises(ValueError):
        decode(raw, mode="strict")


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_canonical_json_equals_the_rfc8785_reference(value: object) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


def test_canonical_json_of_rfc8785_number_examples() -> None:
    assert (
        canonical_json({"b": 52.0, "a": [1e21, 0.1, -0.0, 1e-7]})
        == b'{"a":[1e+21,0.1,0,1e-7],"b":52}'
    )


def test_hash_covers_everything_but_itself_and_changes_with_one_byte() -> None:
    stored = seal_stored(EXAMPLES["scan_read"], recorded_at="2025-01-28T10:00:00Z", prev_hash=None)
    assert stored["prev_hash"] == "0" * 64
    assert event_hash(stored) == stored["hash"]
    tampered = json.loads(json.dumps(stored))
    tampered["data"]["lesions"][0]["longest_diameter_mm"] = 52.1
    assert event_hash(tampered) != stored["hash"]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


ALLOWED = {
    "events": {"__future__", "pydantic", "events", "rfc8785"},
    "projections": {"__future__", "pydantic", "events", "projections", "scipy", "numpy"},
}


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_pure_packages_import_only_the_standard_library_and_pydantic(package: str) -> None:
    import sys

    stdlib = set(sys.stdlib_module_names) - {"os", "socket", "subprocess", "random", "time"}
    offenders = {}
    for path in (ROOT / package).rglob("*.py"):
        bad = _imports(path) - stdlib - ALLOWED[package]
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert offenders == {}


def test_schema_export_writes_a_schema_and_a_valid_example_per_type(tmp_path: Path) -> None:
    from services.cli.schema import write_schemas

    written = write_schemas(tmp_path)
    assert len(written) == 2 * len(EVENT_TYPES)
    for kind in EVENT_TYPES:
        schema = json.loads((tmp_path / f"{kind}.schema.json").read_text())
        example = json.loads((tmp_path / f"{kind}.example.json").read_text())
        assert schema["properties"]["type"]["const"] == kind
        assert events.decode(example, mode="strict").type == kind


def test_an_upcaster_brings_an_old_version_up_before_decoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A v1 → v2 change of meaning: v1 recorded causes as free words, v2 as a code."""
    from events import catalogue

    def v1_to_v2(raw: dict[str, object]) -> dict[str, object]:
        data = dict(raw["data"])  # type: ignore[call-overload]
        data["cause"] = {"tumour": "disease_progression"}.get(
            str(data["cause"]), str(data["cause"])
        )
        return {**raw, "data": data}

    monkeypatch.setitem(catalogue.CURRENT_VERSION, "death", 2)
    monkeypatch.setitem(catalogue.UPCASTERS, ("death", 1), v1_to_v2)
    old = {**EXAMPLES["death"], "data": {"cause": "tumour"}}
    event = decode(old)
    assert event.schema_version == 2
    assert event.data.cause == "disease_progression"


@pytest.mark.parametrize("token", ["site01\n", "site01\r\n", "P1\n"])
def test_a_subject_token_with_a_trailing_newline_is_not_a_token(token: str) -> None:
    from events.subjects import intake_subject

    with pytest.raises(ValueError):
        intake_subject("HAIC", token)
