"""process.terminal: the container's pty and the --console-socket hand-off.

The pty is opened from the container's own devpts (/dev/ptmx after
pivot_root), its slave becomes the process's stdio and controlling terminal
and /dev/console; the master goes to the caller over the console socket in
one SCM_RIGHTS message, without waiting for the receiver.
"""

from __future__ import annotations

import _socket  # the C module: `socket` costs ~4 ms of imports
import _struct as struct  # not struct.py: not in the code bundle, it finishes the start
import errno
import fcntl
import os
import stat
import termios

from ocirt.linux import fdpass
from ocirt.linux import syscalls as sc
from ocirt.linux.devices import bind_fd_over

TIOCSPTLCK = 0x40045431
TIOCGPTN = 0x80045430
TIOCSCTTY = 0x540E
TIOCGPTPEER = 0x5441  # Linux 4.13
PTY_SLAVE_MAJOR = 136  # UNIX98_PTY_SLAVE_MAJOR


def open_pty() -> tuple[int, str]:
    """(master fd, slave path) from the container's /dev/ptmx.

    The slave is opened from the master (TIOCGPTPEER), checked to be that
    pty's slave, and kept: ``mount_console`` and ``become_session_leader_on``
    use this fd, never the path, which is looked up in a /dev/pts the
    container may have replaced (CVE-2025-52565).  The path is only the name
    that goes with the master over the console socket.
    """
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
        number = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, struct.pack("I", 0)))[0]
        slave_path = f"/dev/pts/{number}"
        _slaves[slave_path] = _open_peer(master, number)
    except BaseException:
        os.close(master)
        raise
    return master, slave_path


# Slave fds by path, from open_pty (see there); the init and exec's child are
# single-threaded and make one pty each.
_slaves: dict[str, int] = {}


def _open_peer(master: int, number: int) -> int:
    """The slave of MASTER, opened through it, checked to be pty NUMBER's slave."""
    slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    st = os.fstat(slave)
    if not (stat.S_ISCHR(st.st_mode) and _is_pty_slave(st.st_rdev, number)):
        os.close(slave)
        raise OSError(errno.ENOTTY, f"/dev/ptmx gave no slave for pty {number}")
    return slave


def _is_pty_slave(rdev: int, number: int | None = None) -> bool:
    """A devpts slave: char 136:N, N the pty's number (devpts's minors are 20 bits)."""
    return os.major(rdev) == PTY_SLAVE_MAJOR and number in (None, os.minor(rdev))


def _slave_fd(slave_path: str) -> int:
    """The fd open_pty kept for SLAVE_PATH; else the path opened without following
    a symlink and checked to be a pty slave (a caller that made its own pty)."""
    fd = _slaves.get(slave_path)
    if fd is not None:
        return fd
    flags = os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC
    fd = sc.openat2(-100, slave_path, flags, 0, sc.RESOLVE_NO_SYMLINKS)  # AT_FDCWD
    st = os.fstat(fd)
    if not (stat.S_ISCHR(st.st_mode) and _is_pty_slave(st.st_rdev)):
        os.close(fd)
        raise OSError(errno.ENOTTY, f"{slave_path} is not a pty slave")
    _slaves[slave_path] = fd
    return fd


def set_size(fd: int, size: tuple[int, int] | None) -> None:
    if size and (size[0] or size[1]):
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))


def send_master(sock: _socket.socket, master: int, name: str) -> None:
    sock.sendmsg([name.encode()], fdpass.rights(master))


def mount_console(slave_path: str) -> None:
    """Bind the slave over /dev/console (created as an empty file if needed).

    From the slave's fd onto an fd of /dev/console itself, opened without
    following a symlink: a /dev/console the image made a symlink (to
    /proc/sysrq-trigger, or out of a shared volume) is refused, not followed
    (CVE-2025-31133), and the mount is checked to be the slave afterwards.
    """
    slave = _slave_fd(slave_path)
    root = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        dev = sc.openat2(root, "dev", _PATH_DIR, 0, sc.RESOLVE_IN_ROOT | sc.RESOLVE_NO_SYMLINKS)
    finally:
        os.close(root)
    try:
        target = _console_target(dev)
        try:
            bind_fd_over(slave, target)
        finally:
            os.close(target)
        _check_console(dev, slave)
    finally:
        os.close(dev)


_PATH_DIR = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
_IN_DIR = sc.RESOLVE_BENEATH | sc.RESOLVE_NO_SYMLINKS


def _console_target(dev: int) -> int:
    """O_PATH fd of dev/console: an existing file or device, or a new empty file."""
    try:
        os.close(os.open("console", os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o600,
                         dir_fd=dev))  # fmt: skip
    except FileExistsError:
        pass  # O_EXCL: a symlink there is not followed, it fails here or below
    try:
        target = sc.openat2(dev, "console", os.O_PATH | os.O_CLOEXEC, 0, _IN_DIR)
    except OSError as e:
        if e.errno != errno.ELOOP:
            raise
        raise OSError(
            errno.ELOOP, "/dev/console is a symlink: refusing to mount the console over its target"
        ) from None
    mode = os.fstat(target).st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISCHR(mode)):
        os.close(target)
        raise OSError(errno.EINVAL, "/dev/console is neither a file nor a device")
    return target


def _check_console(dev: int, slave: int) -> None:
    """What /dev/console now is must be the slave itself."""
    mounted = sc.openat2(dev, "console", os.O_PATH | os.O_CLOEXEC, 0, _IN_DIR)
    try:
        got, want = os.fstat(mounted), os.fstat(slave)
    finally:
        os.close(mounted)
    if (got.st_dev, got.st_ino) != (want.st_dev, want.st_ino):
        raise OSError(errno.EXDEV, "/dev/console is not the pty after mounting it there")


def become_session_leader_on(slave_path: str, owner: int = 0) -> None:
    """setsid, then make the slave our controlling terminal and stdio.

    The slave goes to OWNER, the process's uid (its group stays devpts's,
    tty with runc's "gid=5"), as runc leaves it: a non-root process owns its
    terminal.  Only this pty is changed: stdio the caller passed (a host
    file, /dev/null) is never re-owned (runc#3674).
    """
    os.setsid()
    slave = _slave_fd(slave_path)
    del _slaves[slave_path]
    if owner:
        os.fchown(slave, owner, -1)
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
