"""``times_delivered`` agrees with nats-py's metadata on every ack-subject form."""

from __future__ import annotations

from typing import Any, cast

import pytest
from chat_bus.streams import times_delivered
from nats.aio.msg import Msg

V1 = "$JS.ACK.CHAT_CMDS.messages.{n}.120.77.1733580000000000000.3"
V2 = "$JS.ACK.hub.ACCHASH.CHAT_CMDS.messages.{n}.120.77.1733580000000000000.3.rnd"
V2_SHORT = "$JS.ACK._.ACCHASH.CHAT_CMDS.messages.{n}.120.77.1733580000000000000.3"


def _msg(reply: str) -> Msg:
    return Msg(cast(Any, None), subject="chat.cmd.send.c1", reply=reply, data=b"{}")


@pytest.mark.parametrize("form", [V1, V2, V2_SHORT])
@pytest.mark.parametrize("n", [1, 2, 17, 2000])
def test_times_delivered_matches_the_metadata(form: str, n: int) -> None:
    msg = _msg(form.format(n=n))
    assert times_delivered(msg) == n == _msg(form.format(n=n)).metadata.num_delivered


def test_a_message_that_is_not_from_jetstream_is_refused_as_nats_py_refuses_it() -> None:
    with pytest.raises(Exception) as ours:
        times_delivered(_msg(""))
    with pytest.raises(Exception) as theirs:
        _ = _msg("").metadata
    assert type(ours.value) is type(theirs.value)
