"""What the /dev and procfs-write attacks share (tests/security/test_dev_symlinks.py,
test_console_races.py, test_procfs_writes.py).

* ``canary_sysctl``: a host-wide sysctl nobody relies on (kernel.printk_ratelimit)
  that a container can reach only if a runtime hands it a procfs file it
  should not have: a masked path or /dev/console bound from a symlink's
  target.  The tests write a value through what the runtime gave the
  container and read the host's sysctl back: that is the host-visible harm.
  The old value is put back whatever happens.
* ``ConsoleSocket``: the receiving end of --console-socket (what conmon and
  the containerd shim are), draining the pty so the container never blocks.
* ``without_dev_tmpfs``: a config whose /dev is the rootfs's directory.
"""

from __future__ import annotations

import array
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CANARY = Path("/proc/sys/kernel/printk_ratelimit")
CANARY_VALUE = "4217"  # what an attack writes; never the host's own value


@contextmanager
def canary_sysctl() -> Iterator[Path]:
    """The canary's path; its value is restored at the end."""
    saved = CANARY.read_text()
    assert saved.strip() != CANARY_VALUE, "the canary already holds the attack's value"
    try:
        yield CANARY
    finally:
        CANARY.write_text(saved)


def canary_harm() -> str:
    value = CANARY.read_text().strip()
    return f"the host's {CANARY} became {value}" if value == CANARY_VALUE else ""


def without_dev_tmpfs(config: dict[str, Any]) -> None:
    """The config's mounts without the /dev tmpfs: /dev is the rootfs's directory
    (writable: the runtime makes its nodes and /dev/console there)."""
    config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/dev"]
    config["root"]["readonly"] = False


class ConsoleSocket:
    """A unix socket at PATH that accepts connections and keeps reading each pty
    master it is sent, until ``close``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(4)
        self._server.settimeout(0.2)
        self._stop = threading.Event()
        self.output = b""
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        masters: list[int] = []
        try:
            while not self._stop.is_set():
                try:
                    conn, _ = self._server.accept()
                except TimeoutError:
                    self._drain(masters)
                    continue
                with conn:
                    masters += self._receive(conn)
        finally:
            for fd in masters:
                os.close(fd)

    @staticmethod
    def _receive(conn: socket.socket) -> list[int]:
        fds = array.array("i")
        _msg, ancdata, _flags, _addr = conn.recvmsg(1024, socket.CMSG_SPACE(4 * fds.itemsize))
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
        for fd in fds:
            os.set_blocking(fd, False)
        return list(fds)

    def _drain(self, masters: list[int]) -> None:
        for fd in masters:
            try:
                self.output += os.read(fd, 65536)
            except (BlockingIOError, OSError):
                pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._server.close()


@contextmanager
def console_socket(path: Path) -> Iterator[ConsoleSocket]:
    server = ConsoleSocket(path)
    try:
        yield server
    finally:
        server.close()
