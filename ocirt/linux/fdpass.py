"""File descriptors over AF_UNIX sockets (SCM_RIGHTS): what ocirt sends and receives.

Three conversations pass fds: the console socket (the pty master, to conmon,
the containerd shim or ``run``/``exec`` themselves), the seccomp notify
listener (stage 2 or exec's child to ``start``/``exec``, then on to the
agent) and exec's channel.  C modules only (``_socket``, no ``struct`` or
``array``): the short commands and the init import this.
"""

import _socket
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_INT = 4  # sizeof(int)


def rights(*fds: int) -> "list[tuple[int, int, bytes]]":
    """The ancillary data for ``sendmsg`` that passes FDS."""
    payload = b"".join(fd.to_bytes(_INT, sys.byteorder) for fd in fds)
    return [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, payload)]


def space(count: int = 1) -> int:
    """The ancillary buffer ``recvmsg`` needs for COUNT fds."""
    return _socket.CMSG_SPACE(_INT * count)


def received(ancdata: "list[tuple[int, int, Any]]") -> list[int]:
    """The fds in ``recvmsg``'s ancillary data (now ours to close)."""
    fds = []
    for level, kind, payload in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            whole = len(payload) - len(payload) % _INT  # a truncated int is no fd
            fds.extend(
                int.from_bytes(payload[i : i + _INT], sys.byteorder) for i in range(0, whole, _INT)
            )
    return fds
