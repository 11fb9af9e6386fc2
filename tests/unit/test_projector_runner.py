"""Small pure parts of the projector's runner."""

from __future__ import annotations

import pytest
from nats.aio.msg import Msg

from services.projector.runner import stream_seq

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "reply",
    [
        "$JS.ACK.LEDGER.proj_live_core.1.4242.17.1700000000000000000.3",  # v1 form
        "$JS.ACK.hub.ACCHASH.LEDGER.proj_live_core.2.4242.18.1700000000000000000.0.token",  # v2 form
        "$JS.ACK.hub.ACCHASH.LEDGER.proj_live_core.2.4242.18.1700000000000000000.0",
    ],
)
def test_stream_seq_reads_the_ack_subject_as_nats_py_does(reply: str) -> None:
    msg = Msg(_client=None, subject="ledger.T.s.p.enrolled", reply=reply)  # type: ignore[arg-type]
    assert stream_seq(msg) == msg.metadata.sequence.stream == 4242
