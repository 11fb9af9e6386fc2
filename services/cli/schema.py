"""JSON Schema and a valid example of every event type (`trial-ledger schema`)."""

from __future__ import annotations

import json
from pathlib import Path

from events import EVENT_CLASSES, decode
from events.examples import EXAMPLES


def write_schemas(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for kind, cls in EVENT_CLASSES.items():
        schema = cls.model_json_schema(mode="validation")
        schema["$id"] = f"https://trial-ledger.invalid/schema/{kind}.schema.json"
        example = EXAMPLES[kind]
        decode(example, mode="strict")  # an example that does not validate is a bug here
        for name, value in ((f"{kind}.schema.json", schema), (f"{kind}.example.json", example)):
            path = out / name
            path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")
            written.append(path)
    return written
