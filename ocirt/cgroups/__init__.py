"""Control groups: one ``Manager`` per container, as runc's libcontainer/cgroups.

Drivers (``to_record()["driver"]``):

* ``fs``  cgroup v1 (``ocirt.cgroups.v1``): a directory in every mounted v1
  hierarchy (including ``name=systemd``) and, on a hybrid host, in the cgroup2
  mount at ``/sys/fs/cgroup/unified`` (joined only, as runc 1.1 does);
* ``fs2`` cgroup v2 (``ocirt.cgroups.v2``): one directory, controllers
  enabled in every ancestor's ``cgroup.subtree_control``, devices filtered by
  an eBPF program (``ocirt.cgroups.devices_bpf``);
* ``systemd`` (``ocirt.cgroups.systemd``): a transient scope made over D-Bus,
  with the files written by the fs/fs2 code above (as runc's systemd driver).

This module is imported by ``state``/``kill``/``delete``: it only imports the
standard library, and loads a driver module when a manager is made.
Resources are runtime-spec ``linux.resources`` dicts (``memory.limit``,
``cpu.shares``...); each driver converts them the way runc's specconv and its
fs/fs2 managers do.
"""

from __future__ import annotations

import errno
import posix  # not os: exec, a probe, imports none of it (~1.5 ms)
import time

from ocirt.errors import CgroupError
from ocirt.linux.procfs import cgroup_paths

TYPE_CHECKING = False  # typing costs ~2 ms to import: annotations only
if TYPE_CHECKING:
    from typing import Any

    from ocirt.linux.mountinfo import MountEntry

CGROUP_ROOT = "/sys/fs/cgroup"
HYBRID_UNIFIED = "/sys/fs/cgroup/unified"


# -- small file helpers (shared by the drivers) -------------------------------
def _join(directory: str, name: str) -> str:
    """os.path.join(DIRECTORY, NAME) for a plain NAME, without os."""
    return f"{directory.rstrip('/')}/{name}"


def write_file(directory: str, name: str, value: str) -> None:
    """Write VALUE to a cgroup file in one write(2), as the kernel wants it."""
    path = _join(directory, name)
    try:
        fd = posix.open(path, posix.O_WRONLY | posix.O_TRUNC | posix.O_CLOEXEC)
        try:
            posix.write(fd, value.encode())
        finally:
            posix.close(fd)
    except OSError as e:
        raise CgroupError(
            f"failed to write {value!r} to {path}: {posix.strerror(e.errno or 0)}", e.errno or 0
        ) from None


def read_file(directory: str, name: str) -> str:
    path = _join(directory, name)
    try:
        # Bytes, decoded here: see ocirt.linux.procfs.
        with open(path, "rb") as f:
            return f.read().decode("ascii", errors="replace")
    except OSError as e:
        raise CgroupError(
            f"failed to read {path}: {posix.strerror(e.errno or 0)}", e.errno or 0
        ) from None


def read_int(directory: str, name: str, default: int = 0) -> int:
    """An integer file; "max" and missing files read as DEFAULT."""
    try:
        text = read_file(directory, name).strip()
    except CgroupError:
        return default
    if not text or text == "max":
        return default
    return int(text.split()[0])


def read_keyed(directory: str, name: str) -> dict[str, int]:
    """A "key value" per line file (memory.stat, cpu.stat, memory.events)."""
    try:
        text = read_file(directory, name)
    except CgroupError:
        return {}
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        try:
            out[key] = int(value)
        except ValueError:
            continue
    return out


def clean_path(path: str) -> str:
    """runc's utils.CleanPath: no ".." may climb out of the hierarchy root."""
    if not path:
        return ""
    from ocirt.linux import pathnames  # not posixpath, which imports os

    cleaned = pathnames.normpath("/" + path)
    if path.startswith("/"):
        return cleaned
    return pathnames.relpath(cleaned, "/") if cleaned != "/" else ""


def remove_dir(path: str, attempts: int = 10) -> None:
    """rmdir PATH and any child cgroups; retry while the kernel says EBUSY.

    EBUSY lasts a moment after the last task exits (an OOM-killed or just
    SIGKILLed task is still being torn down), hence the backoff (10 ms
    doubling, as runc's RemovePath).  On a loaded host that moment passed
    1.3 s (7 attempts): delete failed and, in the tests, the cgroups were
    left behind; 10 attempts wait up to about 10 s, only while EBUSY lasts.
    """
    delay = 0.01
    for attempt in range(attempts):
        try:
            for child in _child_dirs(path):
                remove_dir(child, attempts=1)
            posix.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno not in (errno.EBUSY, errno.ENOTEMPTY) or attempt == attempts - 1:
                raise CgroupError(
                    f"failed to remove cgroup {path}: {posix.strerror(e.errno or 0)}", e.errno or 0
                ) from None
        time.sleep(delay)
        delay *= 2


def _child_dirs(path: str) -> list[str]:
    try:
        with posix.scandir(path) as it:
            return [e.path for e in it if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []


def missing_dirs(path: str) -> list[str]:
    """PATH and those of its parents that are not directories (yet), innermost first."""
    from ocirt.linux import pathnames  # not posixpath, which imports os

    missing: list[str] = []
    probe = path
    while not pathnames.isdir(probe):
        missing.append(probe)
        probe = pathnames.dirname(probe)
    return missing


def makedirs_tracked(path: str, mode: int = 0o755) -> list[str]:
    """mkdir -p that returns the directories it made, outermost first."""
    made: list[str] = []
    for d in reversed(missing_dirs(path)):
        try:
            posix.mkdir(d, mode)
            made.append(d)
        except FileExistsError:
            continue  # a concurrent create made it: not ours to remove
        except OSError as e:
            raise CgroupError(
                f"failed to create cgroup {d}: {posix.strerror(e.errno or 0)}", e.errno or 0
            ) from None
    return made


def open_tasks_file(directory: str) -> int:
    """The ``tasks`` file of a v1 cgroup directory, open for writing.

    For a new process to join the cgroup by itself
    (``ocirt.process.common.join_cgroups_by_tasks``): writing a pid to
    ``cgroup.procs`` moves a whole thread group and takes the kernel's global
    cgroup_threadgroup_rwsem for writing, which, when no writer came by lately,
    first waits for an RCU grace period (~5 ms here, up to 15); writing "0" to
    ``tasks`` moves only the writing thread and skips that lock (the kernel's
    cgroup_procs_write_start: a single thread, and it is current).  The process
    must be single-threaded (a fresh fork is).  Opened here, by the runtime:
    v1 judges a write by the opener's credentials, so the new process may
    already be in a user namespace.
    """
    path = _join(directory, "tasks")
    try:
        return posix.open(path, posix.O_WRONLY | posix.O_CLOEXEC)
    except OSError as e:
        raise CgroupError(
            f"failed to open {path}: {posix.strerror(e.errno or 0)}", e.errno or 0
        ) from None


def procs_in(path: str, recursive: bool = True) -> list[int]:
    """Pids in cgroup.procs of PATH (and of every cgroup below it)."""
    import os  # os.walk: delete's and kill's, not exec's

    pids: list[int] = []
    for directory, _dirs, _files in os.walk(path) if recursive else [(path, [], [])]:
        try:
            text = read_file(directory, "cgroup.procs")
        except CgroupError:
            continue
        pids.extend(int(line) for line in text.split())
    return pids


def parse_proc_cgroup(pid: str | int = "self") -> dict[str, str]:
    """/proc/PID/cgroup as {controller: path}; "" is the cgroup2 hierarchy.

    A v1 line names several controllers when they share a hierarchy
    ("4:cpu,cpuacct:/x"); each gets the path, as does the joined name.
    """
    out: dict[str, str] = {}
    for controllers, path in cgroup_paths(pid).items():
        out[controllers] = path
        for name in controllers.split(","):
            out[name] = path
    return out


def cgroup_mounts() -> list[MountEntry]:
    """Every cgroup and cgroup2 mount of our mount namespace, in mountinfo's order
    (a v1 entry's ``super_options`` name its controllers)."""
    from ocirt.linux import mountinfo

    return [m for m in mountinfo.read() if m.fs_type in ("cgroup", "cgroup2")]


def mode(mounts: list[MountEntry] | None = None) -> str:
    """ "v2" (unified), "hybrid" (v1 + cgroup2 at unified/) or "v1"; from MOUNTS
    (cgroup_mounts()) when the caller has read them already."""
    if mounts is None:
        mounts = cgroup_mounts()
    kinds = {m.point: m.fs_type for m in mounts}
    if kinds.get(CGROUP_ROOT) == "cgroup2":
        return "v2"
    if kinds.get(HYBRID_UNIFIED) == "cgroup2":
        return "hybrid"
    return "v1"


# -- devices: runc's default allow list and spec conversions ---------------------
# specconv.AllowedDevices of runc 1.1: mknod of anything, then the devices every
# container gets (null, random, full, tty, zero, urandom, pts, ptmx, tun).
_DEFAULT_ALLOWED = (
    ("c", None, None, "m"),
    ("b", None, None, "m"),
    ("c", 1, 3, "rwm"),
    ("c", 1, 8, "rwm"),
    ("c", 1, 7, "rwm"),
    ("c", 5, 0, "rwm"),
    ("c", 1, 5, "rwm"),
    ("c", 1, 9, "rwm"),
    ("c", 136, None, "rwm"),
    ("c", 5, 2, "rwm"),
    ("c", 10, 200, "rwm"),
)


def with_default_devices(resources: dict[str, Any] | None) -> dict[str, Any]:
    """linux.resources with the device rules runc applies at create.

    runc appends, after the spec's ``resources.devices``, its default allow
    list (/dev/null, /dev/zero, ..., and mknod of any node); without this the
    container could not open /dev/null.  Nodes that ``linux.devices`` creates
    get no rule of their own: only this list and ``resources.devices`` decide
    what the container may open (as runc: a config that denies all and
    creates /dev/kmsg cannot write to it).  Call it on the create path only
    (``update`` never changes device rules).
    """
    out = dict(resources or {})
    rules = list(out.get("devices") or [])
    for dtype, major, minor, access in _DEFAULT_ALLOWED:
        rules.append(
            {"allow": True, "type": dtype, "major": major, "minor": minor, "access": access}
        )
    out["devices"] = rules
    return out


# -- CPU/IO conversions v1 -> v2 (runc libcontainer/cgroups/utils.go) -------------
def shares_to_weight(shares: int) -> int:
    """cpu.shares [2, 262144] -> cpu.weight [1, 10000]."""
    if shares == 0:
        return 0
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_weight_to_io_weight(weight: int) -> int:
    """blkio.weight [10, 1000] -> io.weight [1, 10000]."""
    if weight == 0:
        return 0
    return 1 + (weight - 10) * 9999 // 990


# -- the manager interface ---------------------------------------------------------
class Manager:
    """What the create path and the commands use; see v1.py / v2.py."""

    driver = ""
    # The cgroup is made by apply(pid) (systemd's scope), not by create(): its
    # limits can only be written after the init is there.
    made_by_apply = False

    def create(self) -> None:
        raise NotImplementedError

    def cgroup_fd(self) -> int:
        """An O_PATH fd of a cgroup2 directory to clone3() into (CLONE_INTO_CGROUP), or -1."""
        return -1

    def tasks_files(self) -> list[tuple[int, str]]:
        """v1: [(fd, dir)] of ``tasks`` files a new process writes "0" to (open_tasks_file)."""
        return []

    def apply(self, pid: int, *, cloned_into: bool = False, self_joined: bool = False) -> None:
        """Move PID into the cgroup(s), except where it is already: CLONED_INTO the
        cgroup_fd() directory, SELF_JOINED by writing to the tasks_files()."""
        raise NotImplementedError

    def needs_apply(self, *, cloned_into: bool = False, self_joined: bool = False) -> bool:
        """Whether apply(pid, ...) with these arguments has anything left to do."""
        return True

    def set(self, resources: dict[str, Any] | None, *, update: bool = False) -> None:
        raise NotImplementedError

    def destroy(self) -> None:
        raise NotImplementedError

    def pids(self) -> list[int]:
        raise NotImplementedError

    def freeze(self) -> None:
        raise NotImplementedError

    def thaw(self) -> None:
        raise NotImplementedError

    def is_frozen(self) -> bool:
        raise NotImplementedError

    def stats(self) -> dict[str, Any]:
        raise NotImplementedError

    def oom_count(self) -> int:
        raise NotImplementedError

    def oom_event_fd(self) -> int:
        """An fd that polls readable (v1 eventfd) or POLLPRI (v2) on OOM."""
        raise NotImplementedError

    def oom_event_is_eventfd(self) -> bool:
        """True if oom_event_fd() is a v1 eventfd (read 8 bytes per wakeup)."""
        return self.driver == "fs"

    def exists(self) -> bool:
        raise NotImplementedError

    def paths(self) -> dict[str, str]:
        raise NotImplementedError

    def to_record(self) -> dict[str, Any]:
        raise NotImplementedError

    def planned_record(self) -> dict[str, Any]:
        """to_record() as it will be after create(), taken before it: what a
        `delete --force` removes should create be killed while making it.

        The fs drivers count as made every directory missing now (create()
        makes exactly those, bar one a concurrent create makes first); systemd
        makes its scope itself, and stopping a unit that is not there is no error.
        """
        record = self.to_record()
        if self.driver in ("fs", "fs2"):
            made = set(record.get("created") or ())
            for path in self.paths().values():
                made.update(missing_dirs(path))
            record["created"] = sorted(made)
        return record


def manager_for(
    cgroups_path: str,
    container_id: str,
    *,
    systemd: bool,
    rootless: bool,
    annotations: dict[str, str] | None = None,
) -> Manager:
    """The manager for a new container (nothing is created until create()).

    runc semantics: an absolute path is taken from each hierarchy's root; a
    relative one (or "" which means the container id) lies under the cgroup
    of the runtime itself (v1: per hierarchy; v2: its parent, since the
    runtime's own leaf cgroup holds processes and cannot delegate).
    """
    if systemd:
        from ocirt.cgroups import systemd as driver_systemd

        return driver_systemd.new_manager(
            cgroups_path, container_id, rootless=rootless, annotations=annotations
        )
    inner = clean_path(cgroups_path) or container_id
    mounts = cgroup_mounts()  # read once: the mode, and v1's hierarchies
    if mode(mounts) == "v2":
        from ocirt.cgroups import v2

        return v2.V2Manager.for_path(inner, rootless=rootless)
    from ocirt.cgroups import v1

    return v1.V1Manager.for_path(
        inner, rootless=rootless, explicit=bool(cgroups_path), mounts=mounts
    )


def manager_from_record(record: dict[str, Any]) -> Manager:
    """Rebuild the manager from to_record() (or from a container record holding it)."""
    if "driver" not in record and isinstance(record.get("cgroup"), dict):
        record = record["cgroup"]
    driver = record.get("driver")
    if driver == "fs2":
        from ocirt.cgroups import v2

        return v2.V2Manager.from_record(record)
    if driver == "fs":
        from ocirt.cgroups import v1

        return v1.V1Manager.from_record(record)
    if driver == "systemd":
        from ocirt.cgroups import systemd as driver_systemd

        return driver_systemd.SystemdManager.from_record(record)
    raise CgroupError(f"unknown cgroup driver {driver!r} in the container's state")


def is_frozen(record: dict[str, Any]) -> bool:
    """For state.derive_status: True if the container's cgroup is frozen.

    Reads one or two small files; a record without a cgroup (or a cgroup that
    is gone) is not frozen.
    """
    cg = record.get("cgroup") if "driver" not in record else record
    if not cg:
        return False
    try:
        return manager_from_record(cg).is_frozen()
    except (CgroupError, OSError):
        return False
