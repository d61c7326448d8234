"""Putting one more process into a running container's cgroups (``exec``).

``exec`` (``ocirt.process.exec``) forks its child into the container's
cgroups: on cgroup v2 the child is cloned into the cgroup2 directory
(``CLONE_INTO_CGROUP``: an O_PATH fd of it, ``ExecCgroups.clone_into``), on
v1 the child writes "0" to each hierarchy's ``tasks`` file, which we open
before the fork (``tasks_files``: see ``ocirt.cgroups.open_tasks_file``, no
RCU grace period), and rootless ones are left to us to move the child into
after the fork (``left``, by ``enter``).

The cgroups are those the container's record names, or -- for a container
without a cgroup of its own, or with ``--cgroup`` -- the init's own cgroup in
each hierarchy (plus the sub-cgroup), found through ``/proc/<init>/cgroup``
and the cgroup mounts (``ocirt.linux.mountinfo``).
"""

from __future__ import annotations

import errno
import posix  # not os: exec, a probe, imports none of it (~1.5 ms)

from ocirt.cgroups import cgroup_mounts
from ocirt.errors import ExecError, lower_first
from ocirt.linux.procfs import cgroup_paths
from ocirt.record import cgroup_dirs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

    from ocirt.linux.mountinfo import MountEntry

ADD_FAILED = "unable to start container process: error adding pid to cgroups"


def parse_sub_cgroups(args: tuple[str, ...]) -> dict[str, str]:
    """--cgroup values as {controller: sub-path}; "" = every hierarchy (runc's rules)."""
    paths: dict[str, str] = {}
    for arg in args:
        parts = arg.split(":")
        if len(parts) > 2:
            raise ExecError(f"invalid --cgroup argument: {arg}")
        if len(parts) == 1:
            if len(args) != 1:
                raise ExecError(f"invalid --cgroup argument: {arg} (missing <controller>: prefix)")
            paths[""] = arg
            continue
        for controller in parts[0].split(","):
            paths[controller] = parts[1]
    return paths


class ExecCgroups:
    """Where the new process goes: cloned into (v2), joined by itself (v1 tasks),
    or moved by us after the fork."""

    __slots__ = ("clone_into", "left", "lenient", "tasks_files")

    def __init__(self) -> None:
        self.clone_into = -1  # O_PATH fd of the cgroup2 directory, for CLONE_INTO_CGROUP
        self.tasks_files: tuple[tuple[int, str], ...] = ()
        self.left: list[str] = []  # we write the pid to cgroup.procs here after the fork
        self.lenient = False  # rootless without a cgroupsPath: not allowed is not fatal


def open_for_exec(
    record: dict[str, Any], sub_args: tuple[str, ...], keep: Callable[[int], int]
) -> ExecCgroups:
    """The init's cgroups (or --cgroup sub-cgroups of them), opened before the fork.

    KEEP takes each fd opened (close-on-exec) and returns the fd to use: the
    caller moves it above the fds it preserves and closes it when done.
    Rootless, the process is moved by us after the fork, as before:
    cgroup.procs (whose errors may be ignored then) and no
    CLONE_INTO_CGROUP (which may not be allowed).
    """
    sub = parse_sub_cgroups(sub_args)
    out = ExecCgroups()
    cg = record.get("cgroup") or {}
    if cg and not sub:
        fs = cg["inner"] if cg.get("driver") == "systemd" else cg  # the cgroupfs record
        targets = sorted({(d, key == "") for key, d in cgroup_dirs(fs).items()})
        rootless = bool(fs.get("rootless"))
        out.lenient = rootless and not fs.get("explicit")
    else:
        targets = sorted(set(_init_cgroup_dirs(record["pid"], sub)))
        rootless = posix.geteuid() != 0
    files: list[tuple[int, str]] = []
    for directory, is_v2 in targets:
        if rootless:
            out.left.append(directory)
        elif is_v2:
            out.clone_into = keep(_open(directory, posix.O_PATH | posix.O_DIRECTORY))
        else:
            # For the child to write "0" to (open_tasks_file: by the opener's rights).
            files.append((keep(_open(_join(directory, "tasks"), posix.O_WRONLY)), directory))
    out.tasks_files = tuple(files)
    return out


def _join(directory: str, name: str) -> str:
    """os.path.join(DIRECTORY, NAME) for a plain NAME, without os."""
    return f"{directory.rstrip('/')}/{name}"


def _open(path: str, flags: int) -> int:
    try:
        return posix.open(path, flags | posix.O_CLOEXEC)
    except OSError as e:
        raise ExecError(f"{ADD_FAILED}: open {path}: {lower_first(e.strerror)}") from None


def _init_cgroup_dirs(init_pid: int, sub: dict[str, str]) -> Iterator[tuple[str, bool]]:
    """Each hierarchy's directory of the init (+ --cgroup sub-path) we are not in,
    and whether it is the cgroup2 one."""
    import posixpath  # imports os: only here (a container without cgroups of its own)

    own = cgroup_paths("self")
    mounts = cgroup_mounts()
    for controllers, path in cgroup_paths(init_pid).items():
        names = controllers.split(",") if controllers else []
        extra = sub.get("") or next((sub[n] for n in names if n in sub), "")
        target = _sub_cgroup(path, extra) if extra else path
        if not extra and own.get(controllers) == target:
            continue  # inherited from us already (a container without cgroups of its own)
        mount = _find_mount(mounts, names)
        if mount is None:
            continue
        rel = posixpath.relpath(target, mount.root)
        if rel.startswith(".."):
            continue  # outside what this mount shows
        yield posixpath.normpath(posixpath.join(mount.point, rel)), not names


def _sub_cgroup(path: str, sub: str) -> str:
    """PATH/SUB, which must stay inside PATH (runc: a leading "/" is still relative
    to it, and ".." may not leave it): the process goes into the container's
    cgroup or below, never elsewhere in the hierarchy."""
    import posixpath  # imports os: only with --cgroup

    target = posixpath.normpath(f"{path}/{sub}")
    if target != path and not target.startswith(path.rstrip("/") + "/"):
        raise ExecError(f"unable to create new parent process: {sub} is not a sub cgroup path")
    return target


def _find_mount(mounts: list[MountEntry], names: list[str]) -> MountEntry | None:
    """The mount of the hierarchy with these controllers ([] = the cgroup2 one)."""
    for mount in mounts:
        is_v2 = mount.fs_type == "cgroup2"
        if is_v2 and not names:
            return mount
        if not is_v2 and names and set(mount.super_options.split(",")).issuperset(names):
            return mount
    return None


def enter(directory: str, pid: int, lenient: bool) -> None:
    """Move PID into the cgroup DIRECTORY (cgroup.procs); LENIENT: a refusal
    (rootless without a cgroupsPath) leaves it where it is, as runc does."""
    procs = _join(directory, "cgroup.procs")
    try:
        fd = posix.open(procs, posix.O_WRONLY | posix.O_CLOEXEC)
        try:
            posix.write(fd, str(pid).encode())
        finally:
            posix.close(fd)
    except OSError as e:
        if lenient and e.errno in (errno.EPERM, errno.EACCES, errno.EROFS):
            return
        raise ExecError(
            f"unable to start container process: error adding pid {pid} to cgroups:"
            f" failed to write {pid}: {procs}: {lower_first(e.strerror)}"
        ) from None
