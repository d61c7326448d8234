"""The network namespace's loopback interface.

Bringing ``lo`` up is one SIOCSIFFLAGS ioctl; importing pyroute2 for it would
cost ~170 ms on every create (measured), so pyroute2 is kept for what needs
netlink proper (linux.netDevices).
"""

from __future__ import annotations

import _socket  # the C module: `socket` costs ~2 ms of imports
import fcntl
import sys

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def _ifreq(name: bytes, flags: int) -> bytes:
    """struct ifreq with ifr_flags: struct.pack("16sH14x", NAME, FLAGS), without
    importing struct on every create."""
    return name.ljust(16, b"\0") + flags.to_bytes(2, sys.byteorder) + bytes(14)


def bring_up_loopback() -> None:
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC)
    try:
        reply = fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, _ifreq(b"lo", 0))
        flags = int.from_bytes(reply[16:18], sys.byteorder)
        if not flags & IFF_UP:  # namespaces.NetnsMaker's thread may have done it
            fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, _ifreq(b"lo", flags | IFF_UP))
    finally:
        s.close()
