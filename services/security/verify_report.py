"""What `trial-ledger verify` found, and how it is shown to a person."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from services.security.seals import fingerprint


@dataclass(frozen=True)
class Problem:
    seq: int
    kind: str
    detail: str
    patient: str | None = None  # "trial.site.patient"


@dataclass
class Report:
    head_seq: int = 0
    events: int = 0
    patients: int = 0
    seals: int = 0
    signed_events: int = 0
    trusted_keys: tuple[str, ...] = ()
    problems: list[Problem] = field(default_factory=list)
    # [first, last, source]: seqs an outside mark says the ledger must hold but does not
    missing: list[tuple[int, int, str]] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)  # the outside marks compared
    notes: list[str] = field(default_factory=list)  # evidence that could not be used
    pinned: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first(self) -> Problem | None:
        # at one seq, what is wrong there comes before a seal missing there (its consequence)
        return min(self.problems, key=lambda p: (p.seq, p.kind == "unsealed"), default=None)

    def as_dict(self) -> dict[str, Any]:
        first = self.first
        return {
            "ok": self.ok,
            "head_seq": self.head_seq,
            "events": self.events,
            "patients": self.patients,
            "seals": self.seals,
            "signed_events": self.signed_events,
            "trusted_keys": list(self.trusted_keys),
            "trusted_key_fingerprints": [fingerprint(k) for k in self.trusted_keys],
            "pinned_key": self.pinned,
            "missing": [{"from": a, "to": b, "source": src} for a, b, src in self.missing],
            "evidence": list(self.evidence),
            "notes": list(self.notes),
            "first_bad_seq": first.seq if first else None,
            "first_bad_patient": first.patient if first else None,
            "problems": [asdict(p) for p in sorted(self.problems, key=lambda p: p.seq)],
        }


def print_report(report: Report, console: Console) -> None:
    table = Table(title="Ledger verification")
    table.add_column("check")
    table.add_column("value", justify="right")
    for name, value in (
        ("ledger head seq", report.head_seq),
        ("events read", report.events),
        ("patient chains", report.patients),
        ("seals", report.seals),
        ("events signed by the writer", report.signed_events),
    ):
        table.add_row(name, str(value))
    console.print(table)
    if not report.trusted_keys:
        console.print(
            "[yellow]no trusted writer key: event and seal keys were not checked[/yellow]"
        )
    for key in report.trusted_keys:
        how = "pinned by the auditor" if report.pinned else "from the system's own files"
        console.print(f"trusted writer key {fingerprint(key)} ({how})")
    for line in report.evidence:
        console.print(f"compared with {line}")
    for note in report.notes:
        console.print(f"[yellow]{note}[/yellow]")
    for first_missing, last_missing, source in report.missing:
        console.print(f"[red]missing seqs {first_missing}..{last_missing}[/red] (per {source})")
    first = report.first
    if first is None:
        console.print("[green]the ledger verifies clean[/green]")
        return
    console.print(
        f"[red]first bad seq {first.seq}[/red] ({first.kind}, patient {first.patient or '-'}): "
        f"{first.detail}"
    )
    for problem in sorted(report.problems, key=lambda p: p.seq)[:50]:
        console.print(
            f"  seq {problem.seq} {problem.kind} {problem.patient or '-'}: {problem.detail}"
        )
