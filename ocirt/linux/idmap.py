"""User namespace id maps: the container's, and the ones of idmapped mounts.

The container's maps (``linux.uidMappings``/``gidMappings``) are written by
the runtime, outside the new user namespace, once the init exists:

* as root, straight into /proc/PID/uid_map and gid_map;
* unprivileged, a map of our own uid (gid) of size 1 is written directly too
  (the kernel allows it once setgroups is "deny"); anything larger goes
  through the setuid ``newuidmap``/``newgidmap`` helpers, which check
  /etc/subuid and /etc/subgid.  That is runc's rule.

Idmapped mounts (the ``idmap``/``ridmap`` options and per-mount mappings)
need a user namespace that carries the mount's mapping: a short-lived child
is forked into a new user namespace, the maps are written, the namespace is
kept open by fd and the child is reaped.
"""

from __future__ import annotations

import os

from ocirt.errors import OcirtError
from ocirt.linux import syscalls as sc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from ocirt.spec import IdMapping


def format_map(maps: Sequence[IdMapping]) -> str:
    return "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in maps)


def is_own_id_only(maps: Sequence[IdMapping], own_id: int) -> bool:
    """True when MAPS is one entry mapping our own id, size 1: no helper needed."""
    return len(maps) == 1 and maps[0].host_id == own_id and maps[0].size == 1


def needs_helper(uid_maps: Sequence[IdMapping], gid_maps: Sequence[IdMapping]) -> list[str]:
    """The helpers (newuidmap, newgidmap) an unprivileged caller needs for these maps."""
    if os.geteuid() == 0:
        return []
    needed = []
    if not is_own_id_only(uid_maps, os.geteuid()):
        needed.append("newuidmap")
    if not is_own_id_only(gid_maps, os.getegid()):
        needed.append("newgidmap")
    return needed


def write_maps(pid: int, uid_maps: Sequence[IdMapping], gid_maps: Sequence[IdMapping]) -> None:
    """Give the user namespace of PID its maps (uid first, as the helpers expect)."""
    helpers = needs_helper(uid_maps, gid_maps)
    if "newuidmap" in helpers:
        _run_helper("newuidmap", pid, uid_maps)
    else:
        _write_file(pid, "uid_map", format_map(uid_maps))
    if "newgidmap" in helpers:
        _run_helper("newgidmap", pid, gid_maps)
    else:
        if os.geteuid() != 0:
            # Since Linux 3.19 an unprivileged gid_map needs setgroups denied
            # first (else a process could drop groups used to deny it access).
            _write_file(pid, "setgroups", "deny")
        _write_file(pid, "gid_map", format_map(gid_maps))


def _write_file(pid: int, name: str, text: str) -> None:
    path = f"/proc/{pid}/{name}"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
    except OSError as e:
        raise OcirtError(f"cannot write {path} ({text.strip()!r}): {e.strerror}") from e


def _run_helper(helper: str, pid: int, maps: Sequence[IdMapping]) -> None:
    import shutil
    import subprocess  # ~5 ms: only unprivileged creates with wide maps get here

    path = shutil.which(helper)
    field = "linux.uidMappings" if helper == "newuidmap" else "linux.gidMappings"
    if path is None:
        raise OcirtError(
            f"config.json: {field}: mapping more than your own id needs {helper}"
            " (Debian/Ubuntu package uidmap) and an entry in /etc/sub"
            f"{'uid' if helper == 'newuidmap' else 'gid'}"
        )
    args = [path, str(pid)]
    for m in maps:
        args += [str(m.container_id), str(m.host_id), str(m.size)]
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        detail = proc.stderr.strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
        raise OcirtError(f"config.json: {field}: {helper} failed: {detail[0]}")


def userns_fd(uid_maps: Sequence[IdMapping], gid_maps: Sequence[IdMapping]) -> int:
    """An fd of a fresh user namespace with these maps (for MOUNT_ATTR_IDMAP).

    The caller must be privileged (it writes the maps directly): idmapped
    mounts of host filesystems need CAP_SYS_ADMIN in the initial namespace
    anyway.
    """
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    pid = sc.fork_with_flags(sc.CLONE_NEWUSER)
    if pid == 0:  # the child only holds the namespace until we have its fd
        try:
            os.close(write_end)
            os.read(read_end, 1)
        finally:
            os._exit(0)
    os.close(read_end)
    try:
        _write_file(pid, "uid_map", format_map(uid_maps))
        _write_file(pid, "setgroups", "deny")
        _write_file(pid, "gid_map", format_map(gid_maps))
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(write_end)  # EOF: the child exits
        os.waitpid(pid, 0)
