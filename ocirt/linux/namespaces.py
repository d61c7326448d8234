"""linux.namespaces: which to create with clone(), which to join with setns()."""

from __future__ import annotations

import os

from ocirt.errors import OcirtError
from ocirt.linux import syscalls as sc
from ocirt.spec import NS_PROC_NAMES, Linux

CLONE_FLAGS = {
    "pid": sc.CLONE_NEWPID,
    "network": sc.CLONE_NEWNET,
    "mount": sc.CLONE_NEWNS,
    "ipc": sc.CLONE_NEWIPC,
    "uts": sc.CLONE_NEWUTS,
    "user": sc.CLONE_NEWUSER,
    "cgroup": sc.CLONE_NEWCGROUP,
    "time": sc.CLONE_NEWTIME,
}

# setns() order: the user namespace first (it grants the caps for the others),
# mount last among the rest so that opening paths is not affected earlier.
JOIN_ORDER = ("user", "ipc", "uts", "network", "cgroup", "time", "pid", "mount")

# Namespaces created by clone() itself. cgroup and time are unshared by the
# init later: cgroup after the init sits in its cgroup (so that cgroup is its
# root), time because clone() cannot take CLONE_NEWTIME.
CLONE_AT_FORK = ("pid", "network", "mount", "ipc", "uts", "user")


def clone_flags(linux: Linux) -> int:
    flags = 0
    for ns_type in CLONE_AT_FORK:
        if linux.has_new_namespace(ns_type):
            flags |= CLONE_FLAGS[ns_type]
    return flags


def open_paths(linux: Linux) -> dict[str, int]:
    """Open every namespace given by path (checked by validate, opened here)."""
    fds: dict[str, int] = {}
    try:
        for ns in linux.namespaces:
            if ns.path:
                try:
                    fds[ns.type] = os.open(ns.path, os.O_RDONLY | os.O_CLOEXEC)
                except OSError as e:
                    raise OcirtError(
                        f"config.json: linux.namespaces: cannot open {ns.type} namespace"
                        f" {ns.path}: {e.strerror}"
                    ) from e
    except BaseException:
        for fd in fds.values():
            os.close(fd)
        raise
    return fds


def join(fds: dict[str, int], skip: tuple[str, ...] = ()) -> None:
    for ns_type in JOIN_ORDER:
        if ns_type in fds and ns_type not in skip:
            try:
                sc.setns(fds[ns_type], CLONE_FLAGS[ns_type])
            except OSError as e:
                raise OSError(e.errno, f"failed to join {ns_type} namespace: {e.strerror}") from e


def unshare_late(linux: Linux, kinds: tuple[str, ...] = ("cgroup", "time")) -> None:
    """The namespaces the init creates itself, after clone (cgroup: once it is
    in its cgroup, which becomes the namespace's root)."""
    flags = 0
    for ns_type in kinds:
        if linux.has_new_namespace(ns_type):
            flags |= CLONE_FLAGS[ns_type]
    if flags:
        sc.unshare(flags)
    if "time" in kinds and linux.has_new_namespace("time"):
        write_time_offsets(linux.time_offsets or {})


def time_offsets_text(offsets: dict[str, dict[str, int]]) -> str:
    """linux.timeOffsets in /proc/PID/timens_offsets' format: one clock a line."""
    return "".join(
        f"{clock} {value.get('secs', 0)} {value.get('nanosecs', 0)}\n"
        for clock, value in offsets.items()
    )


def write_time_offsets(offsets: dict[str, dict[str, int]]) -> None:
    """Set the clocks of the time namespace we just unshared.

    unshare(CLONE_NEWTIME) moves only our future children (and us, at our
    next execve: stage 2) into the new namespace; its offsets can be written
    until the first process enters it, so this runs right after the unshare,
    before any hook is forked.
    """
    if not offsets:
        return
    try:
        with open("/proc/self/timens_offsets", "w") as f:
            f.write(time_offsets_text(offsets))
    except OSError as e:
        raise OcirtError(
            f"config.json: linux.timeOffsets: cannot write timens_offsets: {e.strerror}"
        ) from e


def proc_ns_path(pid: int | str, ns_type: str) -> str:
    return f"/proc/{pid}/ns/{NS_PROC_NAMES[ns_type]}"
