"""linux.namespaces: which to create with clone(), which to join with setns()."""

from __future__ import annotations

import _thread
import posix  # not os: see ocirt/linux/syscalls.py

from ocirt.errors import OcirtError
from ocirt.linux import network, procfs
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


def clone_flags(linux: Linux, made: tuple[str, ...] = ()) -> int:
    """The CLONE_NEW* flags of the namespaces the init gets new at clone(), but
    for those MADE already (NetnsMaker), which it joins instead."""
    flags = 0
    for ns_type in CLONE_AT_FORK:
        if linux.has_new_namespace(ns_type) and ns_type not in made:
            flags |= CLONE_FLAGS[ns_type]
    return flags


def describe_flags(flags: int) -> str:
    """The namespace types in CLONE_NEW* FLAGS, for a debug line."""
    return ", ".join(kind for kind, flag in CLONE_FLAGS.items() if flags & flag)


class NetnsMaker:
    """The container's new network namespace, made on a helper thread meanwhile.

    A new network namespace costs the kernel ~0.5 ms (its sysctl tables, its
    loopback device), which clone() would spend on create's critical path.
    ``create`` starts this as soon as it has read the config; the thread
    unshares its own network namespace and opens it, while the main thread
    validates the config and makes the cgroups; the init then joins it as if
    the config had given its path (step 3), so it is owned by the same (the
    host's) user namespace as one made by clone.  Only for configs where that
    is so: a new network namespace, no new user namespace, no netDevices (they
    are moved into the init's namespace before it joins), created as root.
    """

    def __init__(self) -> None:
        self._fd = -1
        self._tasks = _task_count()
        self._done = _thread.allocate_lock()
        self._done.acquire()
        _thread.start_new_thread(self._make, ())

    @classmethod
    def start_for(cls, linux: Linux, rootless: bool) -> NetnsMaker | None:
        """A maker if LINUX's network namespace can be made this way, else None."""
        wanted = linux.has_new_namespace("network") and linux.namespace("user") is None
        if not wanted or rootless or linux.net_devices or posix.geteuid() != 0:
            return None
        return cls()

    def _make(self) -> None:
        try:
            sc.unshare(sc.CLONE_NEWNET)  # this thread's only
            self._fd = posix.open("/proc/thread-self/ns/net", posix.O_RDONLY | posix.O_CLOEXEC)
            network.bring_up_loopback()  # off the init's path too (it checks again)
        except OSError:
            pass  # clone() makes it after all (result() is -1), or the init brings lo up
        finally:
            self._done.release()

    def result(self) -> int:
        """The namespace's fd (the caller's to close), or -1: clone() must make it.

        Returns once the thread is gone, not only done: clone() is a raw
        syscall, so glibc's fork handlers (its malloc locks) do not run, and
        the child must not start with a lock some other thread held.
        """
        self._done.acquire()
        while _task_count() > self._tasks:
            posix.sched_yield()
        return self._fd

    def discard(self) -> None:
        fd = self.result()
        if fd >= 0:
            posix.close(fd)


def _task_count() -> int:
    return len(posix.listdir("/proc/self/task"))


def open_paths(linux: Linux) -> dict[str, int]:
    """Open every namespace given by path (checked by validate, opened here)."""
    fds: dict[str, int] = {}
    try:
        for ns in linux.namespaces:
            if ns.path:
                try:
                    fds[ns.type] = posix.open(ns.path, posix.O_RDONLY | posix.O_CLOEXEC)
                except OSError as e:
                    raise OcirtError(
                        f"config.json: linux.namespaces: cannot open {ns.type} namespace"
                        f" {ns.path}: {e.strerror}"
                    ) from e
    except BaseException:
        for fd in fds.values():
            posix.close(fd)
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
        procfs.write_text("/proc/self/timens_offsets", time_offsets_text(offsets))
    except OSError as e:
        raise OcirtError(
            f"config.json: linux.timeOffsets: cannot write timens_offsets: {e.strerror}"
        ) from e


def proc_ns_path(pid: int | str, ns_type: str) -> str:
    return f"/proc/{pid}/ns/{NS_PROC_NAMES[ns_type]}"
