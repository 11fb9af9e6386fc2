"""HighwayHash-64, the checksum nats-server's file store puts after every message record.

Written here from the algorithm's published description (Alakuijala, Cox, Wassenberg 2016)
because no installed package provides it; the tamper tests need it to re-checksum an edited
record the way a careful attacker would, so the server serves the edit instead of dropping
it. `tests/integration/test_tamper.py` checks it against the checksums the server wrote.
"""

from __future__ import annotations

import struct

MASK = (1 << 64) - 1
LOW32 = 0xFFFFFFFF
INIT0 = (0xDBE6D5D5FE4CCE2F, 0xA4093822299F31D0, 0x13198A2E03707344, 0x243F6A8885A308D3)
INIT1 = (0x3BD39E10CB0EF593, 0xC0ACF169B5F18A8C, 0xBE5466CF34E90C6C, 0x452821E638D01377)
LANES = struct.Struct("<4Q")


def _swap_halves(value: int) -> int:
    return ((value >> 32) | (value << 32)) & MASK


def _rotate_halves(value: int, count: int) -> int:
    def rotate(half: int) -> int:
        return ((half << count) | (half >> (32 - count))) & LOW32

    return rotate(value & LOW32) | (rotate(value >> 32) << 32)


def _zipper_merge(high: int, low: int) -> tuple[int, int]:
    """The byte shuffle that mixes the multiplication results into the other half-state."""
    add_low = (
        (((low & 0xFF000000) | (high & 0xFF00000000)) >> 24)
        | (((low & 0xFF0000000000) | (high & 0xFF000000000000)) >> 16)
        | (low & 0xFF0000)
        | ((low & 0xFF00) << 32)
        | ((high & 0xFF00000000000000) >> 8)
        | (low << 56)
    ) & MASK
    add_high = (
        (((high & 0xFF000000) | (low & 0xFF00000000)) >> 24)
        | (high & 0xFF0000)
        | ((high & 0xFF0000000000) >> 16)
        | ((high & 0xFF00) << 24)
        | ((low & 0xFF000000000000) >> 8)
        | ((high & 0xFF) << 48)
        | (low & 0xFF00000000000000)
    ) & MASK
    return add_high, add_low


class _State:
    def __init__(self, key: bytes) -> None:
        words: tuple[int, ...] = LANES.unpack(key)
        self.mul0: list[int] = list(INIT0)
        self.mul1: list[int] = list(INIT1)
        self.v0: list[int] = [INIT0[i] ^ words[i] for i in range(4)]
        self.v1: list[int] = [INIT1[i] ^ _swap_halves(words[i]) for i in range(4)]

    def update(self, lanes: tuple[int, ...] | list[int]) -> None:
        v0, v1, mul0, mul1 = self.v0, self.v1, self.mul0, self.mul1
        for i in range(4):
            v1[i] = (v1[i] + mul0[i] + lanes[i]) & MASK
            mul0[i] ^= ((v1[i] & LOW32) * (v0[i] >> 32)) & MASK
            v0[i] = (v0[i] + mul1[i]) & MASK
            mul1[i] ^= ((v0[i] & LOW32) * (v1[i] >> 32)) & MASK
        for source, target in ((v1, v0), (v0, v1)):
            for high, low in ((1, 0), (3, 2)):
                add_high, add_low = _zipper_merge(source[high], source[low])
                target[high] = (target[high] + add_high) & MASK
                target[low] = (target[low] + add_low) & MASK

    def update_remainder(self, rest: bytes) -> None:
        size = len(rest)
        for i in range(4):
            self.v0[i] = (self.v0[i] + (size << 32) + size) & MASK
            self.v1[i] = _rotate_halves(self.v1[i], size)
        whole = size & ~3
        packet = bytearray(32)
        packet[:whole] = rest[:whole]
        size_mod4 = size & 3
        if size & 16:
            for i in range(4):
                packet[28 + i] = rest[whole + i + size_mod4 - 4]
        elif size_mod4:
            packet[16] = rest[whole]
            packet[17] = rest[whole + (size_mod4 >> 1)]
            packet[18] = rest[whole + size_mod4 - 1]
        self.update(LANES.unpack(bytes(packet)))

    def finish(self) -> int:
        for _ in range(4):
            v0 = self.v0
            self.update(
                [_swap_halves(v0[2]), _swap_halves(v0[3]), _swap_halves(v0[0]), _swap_halves(v0[1])]
            )
        return (self.v0[0] + self.v1[0] + self.mul0[0] + self.mul1[0]) & MASK


def highwayhash64(key: bytes, data: bytes) -> int:
    """HighwayHash-64 of `data` under a 32-byte `key`."""
    if len(key) != 32:
        raise ValueError("HighwayHash takes a 32-byte key")
    state = _State(key)
    whole = len(data) - len(data) % 32
    for at in range(0, whole, 32):
        state.update(LANES.unpack_from(data, at))
    if whole < len(data):
        state.update_remainder(data[whole:])
    return state.finish()
