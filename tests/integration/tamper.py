"""Tampering with a copy of a real data directory: the stream's message blocks, read and
rewritten the way someone with access to the disk would, and a nats-server on the copy.

nats-server's file store (server/filestore.go) keeps a stream's messages in
`streams/<name>/msgs/<n>.blk`, one record after another:

    rl uint32 (bit 31: has headers) | seq uint64 | ts int64 | subject length uint16 |
    subject | [headers length uint32 | headers] | body | checksum (8 bytes)

all little-endian, `rl` the whole record's length. The checksum is a HighwayHash-64 of
seq, ts, subject, headers and body, keyed with SHA-256 of "<stream>-<block index>". A
record failing it is not served; when `msgs/index.db` (the stream state written on a clean
stop) is gone, the server rebuilds from the blocks and drops that record and everything
after it: a silent truncation. An attacker who re-computes the checksum is served instead.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import signal
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

from services.runtime.embedded import free_port, nats_server_binary, stop_process, wait_for_port
from tests.integration.highwayhash import highwayhash64

HEADERS_BIT = 1 << 31
RECORD_HEADER = struct.Struct("<IQqH")
CHECKSUM_BYTES = 8


@dataclass(frozen=True)
class Record:
    """One message's bytes in a block file."""

    block: Path
    seq: int
    start: int  # offset of the record
    length: int
    subject: str
    body_start: int
    body_end: int
    seq_and_time: bytes  # the 16 bytes after `rl`, part of what the checksum covers
    headers: bytes | None
    checksum: bytes

    def body(self) -> bytes:
        return self.block.read_bytes()[self.body_start : self.body_end]


def block_key(block: Path) -> bytes:
    """The checksum key of a LEDGER block: SHA-256 of "<stream>-<block index>"."""
    return hashlib.sha256(f"LEDGER-{int(block.stem)}".encode()).digest()


def checksum(
    block: Path, seq_and_time: bytes, subject: bytes, headers: bytes, body: bytes
) -> bytes:
    return struct.pack(
        "<Q", highwayhash64(block_key(block), seq_and_time + subject + headers + body)
    )


def record_bytes(
    block: Path, seq_and_time: bytes, subject: str, headers: bytes | None, body: bytes
) -> bytes:
    """One record as the file store writes it, with a valid checksum."""
    name = subject.encode()
    middle = name + (struct.pack("<I", len(headers)) + headers if headers is not None else b"")
    length = 4 + len(seq_and_time) + 2 + len(middle) + len(body) + CHECKSUM_BYTES
    flag = HEADERS_BIT if headers is not None else 0
    return (
        struct.pack("<I", length | flag)
        + seq_and_time
        + struct.pack("<H", len(name))
        + middle
        + body
        + checksum(block, seq_and_time, name, headers or b"", body)
    )


def _replace(block: Path, changes: dict[int, tuple[int, bytes]]) -> None:
    """Put new bytes in place of records (start → (old length, new bytes)) in one block."""
    raw = block.read_bytes()
    out, at = bytearray(), 0
    for start in sorted(changes):
        length, new = changes[start]
        out += raw[at:start] + new
        at = start + length
    out += raw[at:]
    block.write_bytes(bytes(out))


def ledger_store(data_dir: Path) -> Path:
    """The LEDGER stream's directory in an embedded nats-server's store."""
    found = sorted(data_dir.glob("nats/jetstream/jetstream/*/streams/LEDGER"))
    assert len(found) == 1, f"expected one LEDGER store under {data_dir}, found {found}"
    return found[0]


def records(data_dir: Path) -> dict[int, Record]:
    """Every message record of LEDGER, by seq."""
    found: dict[int, Record] = {}
    blocks = sorted((ledger_store(data_dir) / "msgs").glob("*.blk"), key=lambda p: int(p.stem))
    for block in blocks:
        raw = block.read_bytes()
        at = 0
        while at + RECORD_HEADER.size <= len(raw):
            length, seq, _, subject_length = RECORD_HEADER.unpack_from(raw, at)
            has_headers = bool(length & HEADERS_BIT)
            length &= ~HEADERS_BIT
            if length == 0:
                break
            cursor = at + RECORD_HEADER.size
            subject = raw[cursor : cursor + subject_length].decode()
            cursor += subject_length
            headers = None
            if has_headers:
                (headers_length,) = struct.unpack_from("<I", raw, cursor)
                headers = raw[cursor + 4 : cursor + 4 + headers_length]
                cursor += 4 + headers_length
            end = at + length - CHECKSUM_BYTES
            found[seq] = Record(
                block,
                seq,
                at,
                length,
                subject,
                cursor,
                end,
                raw[at + 4 : at + 20],
                headers,
                raw[end : at + length],
            )
            at += length
    return found


def edit_body(record: Record, old: bytes, new: bytes) -> None:
    """Replace `old` by `new` (same length) in one message's body and re-checksum the
    record: the server cannot tell the edit from what it wrote."""
    assert len(old) == len(new)
    body = record.body()
    assert body.count(old) == 1, f"{old!r} is not once in the body of seq {record.seq}"
    rebuilt = record_bytes(
        record.block, record.seq_and_time, record.subject, record.headers, body.replace(old, new)
    )
    _replace(record.block, {record.start: (record.length, rebuilt)})


def flip_bit(record: Record, offset: int) -> None:
    """Flip the lowest bit of the body's byte at `offset`."""
    raw = bytearray(record.block.read_bytes())
    raw[record.body_start + offset] ^= 0x01
    record.block.write_bytes(bytes(raw))


def swap_messages(first: Record, second: Record) -> None:
    """Exchange two messages (subject, headers, body) between two seqs of one block, each
    record re-checksummed: the server serves them in each other's place."""
    assert first.block == second.block
    _replace(
        first.block,
        {
            first.start: (
                first.length,
                record_bytes(
                    first.block, first.seq_and_time, second.subject, second.headers, second.body()
                ),
            ),
            second.start: (
                second.length,
                record_bytes(
                    second.block, second.seq_and_time, first.subject, first.headers, first.body()
                ),
            ),
        },
    )


def cut_after(record: Record) -> None:
    """Cut the stream's files just after `record`: later records and blocks are gone."""
    raw = record.block.read_bytes()
    record.block.write_bytes(raw[: record.start + record.length])
    for block in record.block.parent.glob("*.blk"):
        if int(block.stem) > int(record.block.stem):
            block.unlink()


def remove_index(data_dir: Path) -> None:
    """What an unclean stop leaves: no stream state, so the server rebuilds from the blocks."""
    msgs = ledger_store(data_dir) / "msgs"
    for index in [*msgs.glob("index.db"), *msgs.glob("*.idx"), *msgs.glob("*.fss")]:
        index.unlink()


def copy_data_dir(source: Path, target: Path) -> Path:
    """The data dir without PostgreSQL's files (the read models are not tampered with)."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("postgres", "*.log"))
    return target


@dataclass
class CopiedNats:
    """nats-server on a copied data dir: the original's configuration, its own port."""

    data_dir: Path
    source: Path
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> CopiedNats:
        config = self.data_dir / "nats" / "nats.conf"
        text = config.read_text().replace(str(self.source), str(self.data_dir))
        self.port = free_port()
        config.write_text(re.sub(r"(?m)^listen: .*$", f"listen: 127.0.0.1:{self.port}", text))
        log = open(self.data_dir / "nats" / "nats.log", "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(
            [nats_server_binary(), "-c", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for_port(self.port, proc=self.proc)
        return self

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGTERM, 15.0)
