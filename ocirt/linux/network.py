"""The network namespace's loopback interface.

Bringing ``lo`` up is one SIOCSIFFLAGS ioctl; importing pyroute2 for it would
cost ~170 ms on every create (measured), so pyroute2 is kept for what needs
netlink proper (linux.netDevices).
"""

from __future__ import annotations

import _socket  # the C module: `socket` costs ~2 ms of imports
import fcntl
import struct

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def bring_up_loopback() -> None:
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC)
    try:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))
    finally:
        s.close()
