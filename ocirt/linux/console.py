"""process.terminal: the container's pty and the --console-socket hand-off.

The pty is opened from the container's own devpts (/dev/ptmx after
pivot_root), its slave becomes the process's stdio and controlling terminal
and /dev/console; the master goes to the caller over the console socket in
one SCM_RIGHTS message, without waiting for the receiver.
"""

from __future__ import annotations

import _socket  # the C module: `socket` costs ~4 ms of imports
import errno
import fcntl
import os
import struct
import termios

from ocirt.linux import fdpass
from ocirt.linux import syscalls as sc

TIOCSPTLCK = 0x40045431
TIOCGPTN = 0x80045430
TIOCSCTTY = 0x540E


def open_pty() -> tuple[int, str]:
    """(master fd, slave path) from the container's /dev/ptmx."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    number = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, struct.pack("I", 0)))[0]
    return master, f"/dev/pts/{number}"


def set_size(fd: int, size: tuple[int, int] | None) -> None:
    if size and (size[0] or size[1]):
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))


def send_master(sock: _socket.socket, master: int, name: str) -> None:
    sock.sendmsg([name.encode()], fdpass.rights(master))


def mount_console(slave_path: str) -> None:
    """Bind the slave over /dev/console (created as an empty file if needed)."""
    if not os.path.exists("/dev/console"):
        os.close(os.open("/dev/console", os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
    sc.mount(slave_path, "/dev/console", None, sc.MS_BIND)


def become_session_leader_on(slave_path: str) -> None:
    """setsid, then make the slave our controlling terminal and stdio."""
    os.setsid()
    slave = os.open(slave_path, os.O_RDWR)
    fcntl.ioctl(slave, TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)


def recv_master(sock: _socket.socket) -> int:
    """Receive the pty master a container sent with ``send_master``.

    The receiving half of the --console-socket protocol: what conmon and the
    containerd shim do, and what ``run``/``exec`` do themselves when they own
    the terminal.  The fd arrives close-on-exec.
    """
    msg, ancdata, _flags, _addr = sock.recvmsg(4096, fdpass.space(4), _socket.MSG_CMSG_CLOEXEC)
    fds = fdpass.received(ancdata)
    if not fds:
        raise OSError(errno.EBADMSG, f"console socket: no pty master received ({msg!r})")
    for extra in fds[1:]:
        os.close(extra)
    return fds[0]
