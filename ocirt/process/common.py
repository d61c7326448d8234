"""Small pieces both runtime-side paths (create and exec) need."""

from __future__ import annotations

import fcntl
import os


def high_fd(fd: int, floor: int) -> int:
    """Move FD to >= FLOOR (close-on-exec): the fds below it are the caller's
    preserved ones (--preserve-fds), which must reach the process as they are."""
    if fd >= floor:
        return fd
    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, floor)
    os.close(fd)
    return new


def write_pid_file(path: str, pid: int) -> None:
    """Digits only, no newline, replaced atomically (conmon reads it once)."""
    path = os.path.abspath(path)
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, str(pid).encode())
    finally:
        os.close(fd)
    os.rename(tmp, path)


def kill_and_reap(pid: int) -> None:
    """SIGKILL our child PID and wait for it, whatever state it is in."""
    try:
        os.kill(pid, 9)  # SIGKILL
    except ProcessLookupError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
