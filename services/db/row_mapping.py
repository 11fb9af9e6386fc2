"""How a value object of the projections becomes a read-model row, and back, written once.

A `RowMapping` lists, for each column of a table, where its value comes from: an attribute of
the object (`Col`), an attribute of an object it holds spread over several columns (`Part`),
a property the object computes (`Col(..., derived=True)`: written, never read back), or a
value the caller gives alongside (`Given`: the patient's key, the ledger position). Both
`to_row` and `from_row` are derived from that one list, and the mapping refuses, when built,
a list that does not cover its table's columns exactly: a column added to a table and not to
its mapping fails at import, not as a silently missing value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Table

M = TypeVar("M")


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True, slots=True)
class Codec:
    """A column's value from the object's (`dump`) and back (`load`); None stays None."""

    dump: Callable[[Any], Any] = _same
    load: Callable[[Any], Any] = _same

    def to_column(self, value: Any) -> Any:
        return None if value is None else self.dump(value)

    def from_column(self, value: Any) -> Any:
        return None if value is None else self.load(value)


PLAIN = Codec()
# tuples of the value objects are JSON arrays (lists) in JSONB columns
AS_LIST = Codec(list, tuple)


@dataclass(frozen=True, slots=True)
class Col:
    """Column `column` holds attribute `attr` (the column's name unless told; an int: the
    position in a tuple held by a `Part`). `derived`: a property, written but not read back."""

    column: str
    attr: str | int | None = None
    codec: Codec = PLAIN
    derived: bool = False

    @property
    def name(self) -> str | int:
        return self.column if self.attr is None else self.attr


@dataclass(frozen=True, slots=True)
class Given:
    """Column `column` holds a value the caller gives to `to_row`; `from_row` leaves it."""

    column: str
    codec: Codec = PLAIN


@dataclass(frozen=True, slots=True)
class Part:
    """Attribute `attr` holds an object (or a tuple) spread over `cols`; `build` makes it
    again from them (keywords; positions for a tuple). With `present`, the object is None
    when that column is (and then every one of its columns is None)."""

    attr: str
    build: Callable[..., Any]
    cols: tuple[Col, ...]
    present: str | None = None


Field = Col | Given | Part


def _get(holder: Any, name: str | int) -> Any:
    return holder[name] if isinstance(name, int) else getattr(holder, name)


def _values(row: Any) -> Mapping[str, Any]:
    """A SQLAlchemy Row's columns by name, or a mapping as it is."""
    mapping = getattr(row, "_mapping", None)
    return mapping if mapping is not None else row  # type: ignore[no-any-return]


class RowMapping(Generic[M]):
    """Rows of `table` from objects made by `build` (keywords), and those objects back."""

    def __init__(self, table: Table, build: Callable[..., M], fields: Sequence[Field]) -> None:
        self.table = table
        self.build = build
        self.fields = tuple(fields)
        mapped = [c.column for c in self._columns()]
        declared = [column.name for column in table.columns]
        if sorted(mapped) != sorted(declared):
            missing = sorted(set(declared) - set(mapped))
            extra = sorted(set(mapped) - set(declared))
            raise ValueError(
                f"row mapping of {table.name} does not match its table: "
                f"unmapped columns {missing}, unknown or repeated columns {extra or mapped}"
            )
        self._order = declared

    def _columns(self) -> list[Col | Given]:
        found: list[Col | Given] = []
        for item in self.fields:
            found.extend(item.cols if isinstance(item, Part) else (item,))
        return found

    def to_row(self, value: M, **given: Any) -> dict[str, Any]:
        """The row of `value`; `given` holds every `Given` column's value (by column name)."""
        row: dict[str, Any] = {}
        for item in self.fields:
            if isinstance(item, Given):
                if item.column not in given:
                    raise TypeError(f"{self.table.name}: no value given for {item.column}")
                row[item.column] = item.codec.to_column(given[item.column])
            elif isinstance(item, Col):
                row[item.column] = item.codec.to_column(_get(value, item.name))
            else:
                held = getattr(value, item.attr)
                for col in item.cols:
                    row[col.column] = (
                        None if held is None else col.codec.to_column(_get(held, col.name))
                    )
        return {name: row[name] for name in self._order}

    def from_row(self, row: Any, **extra: Any) -> M:
        """The object a row was made from; `extra` gives what no column holds."""
        values = _values(row)
        arguments: dict[str, Any] = {}
        for item in self.fields:
            if isinstance(item, Col) and not item.derived:
                arguments[str(item.name)] = item.codec.from_column(values[item.column])
            elif isinstance(item, Part):
                if item.present is not None and values[item.present] is None:
                    arguments[item.attr] = None
                    continue
                loaded = [
                    (col.name, col.codec.from_column(values[col.column])) for col in item.cols
                ]
                if all(isinstance(name, int) for name, _ in loaded):
                    arguments[item.attr] = item.build(*(v for _, v in sorted(loaded)))
                else:
                    arguments[item.attr] = item.build(**{str(n): v for n, v in loaded})
        return self.build(**arguments, **extra)
