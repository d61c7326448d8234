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


def unshare_late(linux: Linux) -> None:
    """The namespaces the init creates itself, after clone."""
    flags = 0
    for ns_type in ("cgroup", "time"):
        if linux.has_new_namespace(ns_type):
            flags |= CLONE_FLAGS[ns_type]
    if flags:
        sc.unshare(flags)


def proc_ns_path(pid: int | str, ns_type: str) -> str:
    return f"/proc/{pid}/ns/{NS_PROC_NAMES[ns_type]}"
