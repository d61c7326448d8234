"""The parent/child channel (ocirt/process/channel.py) on a real socketpair."""

from __future__ import annotations

import pytest

from ocirt.process.channel import Channel, ChannelClosed, ChildError, Msg


def test_an_error_sent_before_closing_with_unread_messages_is_read() -> None:
    """The init fails (a mount) before reading the parent's CGROUP_READY and exits:
    the kernel reports ECONNRESET to the parent first, once; the init's ERROR must
    still be what the parent reads (else create says "Connection reset by peer")."""
    parent, child = Channel.pair()
    parent.send(Msg.CGROUP_READY)
    child.send_error(2, "error mounting proc")
    child.close()
    with pytest.raises(ChildError, match="error mounting proc"):
        parent.recv()
    parent.close()


def test_a_close_with_unread_messages_and_no_error_is_eof() -> None:
    parent, child = Channel.pair()
    parent.send(Msg.CGROUP_READY)
    child.close()
    with pytest.raises(ChannelClosed):
        parent.recv()
    parent.close()


def test_announce_fd_is_one_datagram_with_the_number() -> None:
    """A seccomp listener's number, written right after the load (one write(2))."""
    parent, child = Channel.pair()
    child.announce_fd(Msg.SECCOMP_LISTENER, 12)
    assert parent.recv() == (Msg.SECCOMP_LISTENER, {"fd": 12})
    parent.close()
    child.close()
