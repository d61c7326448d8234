"""linux.sysctl: written under /proc/sys from inside the container's namespaces."""

from __future__ import annotations

import posix  # not os (~1.2 ms of imports): ocirt.linux.pathnames has os.path's few uses

from ocirt.errors import OcirtError
from ocirt.linux import procfs

# Keys that belong to a namespace the container owns (runc's validator).
IPC_KEYS = {
    "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
    "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced",
}  # fmt: skip
IPC_PREFIX = "fs.mqueue."
NET_PREFIX = "net."
UTS_KEYS = {"kernel.hostname", "kernel.domainname"}


def namespace_of(key: str) -> str | None:
    """Which namespace KEY is isolated by, or None if it is host-wide."""
    if key in IPC_KEYS or key.startswith(IPC_PREFIX):
        return "ipc"
    if key.startswith(NET_PREFIX):
        return "network"
    if key in UTS_KEYS:
        return "uts"
    return None


def apply(values: dict[str, str]) -> None:
    """Write each key under the container's /proc/sys, checked to be the real file
    (ocirt.linux.procfs: a mount over it is refused, never written through)."""
    try:
        proc = procfs.open_root("/proc")
    except OSError as e:
        key = next(iter(values))
        raise OcirtError(f"config.json: linux.sysctl[{key!r}]: {e.strerror}") from e
    try:
        for key, value in values.items():
            _write_one(proc, key, value)
    finally:
        posix.close(proc)


def _write_one(proc: int, key: str, value: str) -> None:
    relative = "sys/" + key.replace(".", "/")
    try:
        fd = procfs.open_beneath(proc, relative, posix.O_WRONLY, "/proc/" + relative)
        try:
            posix.write(fd, value.encode())
        finally:
            posix.close(fd)
    except OSError as e:
        raise OcirtError(
            f"config.json: linux.sysctl[{key!r}]: cannot write /proc/{relative}: {e.strerror}"
        ) from e
