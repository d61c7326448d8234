"""ocirt.linux.fdpass: the SCM_RIGHTS helpers the console, notify and exec sockets share."""

from __future__ import annotations

import os
import socket
import sys

from ocirt.linux import fdpass


def test_fds_travel_and_arrive_as_new_descriptors() -> None:
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    r, w = os.pipe()
    try:
        with left, right:
            left.sendmsg([b"two"], fdpass.rights(r, w))
            data, ancdata, _flags, _addr = right.recvmsg(64, fdpass.space(2))
            got = fdpass.received(ancdata)
        assert data == b"two" and len(got) == 2 and not {r, w} & set(got)
        os.write(got[1], b"x")  # the copy of w writes into the same pipe
        assert os.read(r, 1) == b"x"
        for fd in got:
            os.close(fd)
    finally:
        os.close(r)
        os.close(w)


def test_received_ignores_other_messages_and_truncated_ints() -> None:
    other = (socket.SOL_SOCKET, socket.SCM_CREDENTIALS, b"\0" * 12)
    truncated = (socket.SOL_SOCKET, socket.SCM_RIGHTS, (7).to_bytes(4, sys.byteorder) + b"\1\2")
    assert fdpass.received([other]) == []
    assert fdpass.received([truncated]) == [7]
