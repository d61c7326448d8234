"""The container's state directory: one per container under ``--root``.

Layout of ``<root>/<id>/``:

* ``state.json``  the record below, replaced atomically (write + rename);
* ``start.sock``  the socket a created container's init waits on (see
  docs/architecture.md); gone once started.

Concurrency: every command that changes a container holds ``flock(LOCK_EX)``
on the directory itself; ``create`` holds it from ``mkdir`` to the end, so a
second command on the same id waits instead of reading half a container.

The status is never stored: it is derived from the live init, identified by
its pid *and* its start time (field 22 of /proc/PID/stat), so a pid the
kernel has recycled is never taken for the container.
"""

from __future__ import annotations

import fcntl
import os
import time

from ocirt import _fastjson
from ocirt.errors import ContainerNotExist, OcirtError

TYPE_CHECKING = False  # typing costs ~3 ms to import: names for annotations only
if TYPE_CHECKING:
    from typing import Any

OCI_VERSION = "1.3.0"
STATE_FILE = "state.json"
START_SOCKET = "start.sock"
# What /proc/PID/exe of a created (not yet started) init reads: the stage-2
# init runs from a memfd of this name (see ocirt/process/parent.py).
STAGE2_MEMFD_NAME = "ocirt-init"


def check_id(container_id: str) -> None:
    """runc's rule, ^[\\w+-.]+$ (word characters, '+', '-', '.'), minus . and .."""
    valid = bool(container_id) and all(c.isalnum() or c in "_+-." for c in container_id)
    if not valid or container_id in (".", ".."):
        raise OcirtError("invalid container ID format")


def rfc3339_now() -> str:
    ns = time.time_ns()
    secs, frac = divmod(ns, 1_000_000_000)
    # Go's RFC3339Nano, as runc prints it: trailing zeros of the fraction dropped.
    fraction = f"{frac:09d}".rstrip("0")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    return f"{stamp}.{fraction}Z" if fraction else f"{stamp}Z"


def process_start_time(pid: int) -> int | None:
    """Start time of PID in clock ticks since boot, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(b")") + 2 :].split()
    return int(fields[19])


def process_state_letter(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return "X"
    return chr(stat[stat.rindex(b")") + 2])


class StateDir:
    """A container's directory, opened and optionally locked."""

    def __init__(self, root: str, container_id: str) -> None:
        check_id(container_id)
        self.root = root
        self.id = container_id
        self.path = os.path.join(root, container_id)
        self._fd: int | None = None

    # -- lifecycle of the directory ------------------------------------
    def create(self) -> None:
        """mkdir + lock; refuses an id in use (mkdir is the atomic test)."""
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        try:
            os.mkdir(self.path, 0o700)
        except FileExistsError:
            raise OcirtError("container with given ID already exists") from None
        self._fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def open(self, lock: bool = True) -> None:
        try:
            self._fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise ContainerNotExist(self.id) from None
        if lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        if not os.path.exists(os.path.join(self.path, STATE_FILE)):
            self.close()
            raise ContainerNotExist(self.id)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def remove(self) -> None:
        """Remove the directory and everything in it (state files only)."""
        for name in os.listdir(self.path):
            os.unlink(os.path.join(self.path, name))
        os.rmdir(self.path)
        self.close()

    # -- the record ------------------------------------------------------
    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def socket_path(self, name: str) -> str:
        """A path for bind()/connect() of a socket in the directory.

        sun_path holds 108 bytes; dockerd's state dirs alone take ~100
        (/var/run/docker/runtime-runc/moby/<64 hex id>), so go through the
        directory's open fd instead of its name.
        """
        if self._fd is None:  # opened unlocked; close() releases it
            try:
                self._fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except FileNotFoundError:
                raise ContainerNotExist(self.id) from None
        return f"/proc/self/fd/{self._fd}/{name}"

    def write(self, record: dict[str, Any]) -> None:
        tmp = self.file(STATE_FILE + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(_fastjson.dumps(record, compact=True))
        os.rename(tmp, self.file(STATE_FILE))

    def read(self) -> dict[str, Any]:
        try:
            with open(self.file(STATE_FILE), "rb") as f:
                return _fastjson.loads(f.read())
        except FileNotFoundError:
            raise ContainerNotExist(self.id) from None


def list_ids(root: str) -> list[str]:
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if os.path.isfile(os.path.join(root, n, STATE_FILE)))


def init_is_alive(record: dict[str, Any]) -> bool:
    """True while the recorded init (same pid, same start time) lives."""
    pid = record.get("pid") or 0
    if pid <= 0:
        return False
    if process_start_time(pid) != record.get("init_start_time"):
        return False
    return process_state_letter(pid) not in ("Z", "X")


def init_is_waiting(pid: int) -> bool:
    """True while the init is the stage-2 program, blocked before exec."""
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return False
    return exe.startswith("/memfd:" + STAGE2_MEMFD_NAME)


def derive_status(record: dict[str, Any], paused: bool = False) -> str:
    if not init_is_alive(record):
        return "stopped"
    if paused:
        return "paused"
    if init_is_waiting(record["pid"]):
        return "created"
    return "running"


def public_state(record: dict[str, Any], status: str) -> dict[str, Any]:
    """The runtime-spec state (what `ocirt state` prints and hooks read)."""
    state = {
        "ociVersion": record["ociVersion"],
        "id": record["id"],
        "pid": record["pid"] if status != "stopped" else 0,
        "status": status,
        "bundle": record["bundle"],
        "rootfs": record["rootfs"],
        "created": record["created"],
        "owner": record.get("owner", ""),
    }
    if record.get("annotations"):
        state["annotations"] = record["annotations"]
    return state
