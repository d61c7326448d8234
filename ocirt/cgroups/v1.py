"""cgroup v1 driver ("fs"): runc 1.1's libcontainer/cgroups/fs, in Python.

One directory per mounted hierarchy.  On a hybrid host the cgroup2 mount
(``/sys/fs/cgroup/unified``) gets a directory too, under the key "", which is
only joined (runc 1.1 does the same: no controller is set there).
"""

from __future__ import annotations

import errno
import posix  # not os (~1.2 ms of imports): ocirt.linux.pathnames has os.path's few uses
import time

from ocirt.cgroups import (
    HYBRID_UNIFIED,
    CgroupError,
    Manager,
    cgroup_mounts,
    makedirs_tracked,
    open_tasks_file,
    parse_proc_cgroup,
    procs_in,
    read_file,
    read_int,
    read_keyed,
    remove_dir,
    write_file,
)
from ocirt.linux import pathnames

TYPE_CHECKING = False  # typing costs ~2 ms to import: annotations only
if TYPE_CHECKING:
    from typing import Any

    from ocirt.linux.mountinfo import MountEntry

# runc's subsystem order: Set() writes controllers in this order.
CONTROLLERS = (
    "cpuset",
    "devices",
    "memory",
    "cpu",
    "cpuacct",
    "pids",
    "blkio",
    "hugetlb",
    "net_cls",
    "net_prio",
    "perf_event",
    "freezer",
    "rdma",
    "name=systemd",
    "misc",
)
UNLIMITED = 0x7FFFFFFFFFFFF000  # what an unlimited v1 memory file reads (page-aligned)


def _hierarchies(mounts: list[MountEntry] | None = None) -> dict[str, tuple[str, str]]:
    """{controller: (mountpoint, mount root)} of the mounted v1 hierarchies (+ "" if
    hybrid), from MOUNTS (cgroup_mounts()) when the caller has read them already."""
    found: dict[str, tuple[str, str]] = {}
    for mount in cgroup_mounts() if mounts is None else mounts:
        if mount.fs_type == "cgroup2":
            if mount.point == HYBRID_UNIFIED:
                found[""] = (mount.point, mount.root)
            continue
        for opt in mount.super_options.split(","):
            if opt in CONTROLLERS and opt not in found:
                found[opt] = (mount.point, mount.root)
    return found


def _path_in(mountpoint: str, mount_root: str, own: str, inner: str) -> str:
    if inner.startswith("/"):
        return pathnames.join(mountpoint, inner.lstrip("/"))
    # Our own cgroup, seen from inside this mount (its root may be a sub-cgroup).
    if mount_root != "/" and own.startswith(mount_root):
        own = own[len(mount_root) :]
    return pathnames.normpath(pathnames.join(mountpoint, own.lstrip("/"), inner))


class _Files:
    """Writes to one controller's directory; a missing directory is runc's error."""

    def __init__(self, controller: str, path: str | None) -> None:
        self.controller = controller
        self.path = path

    def write(self, name: str, value: str | int) -> None:
        if not self.path:
            raise CgroupError(
                f"cannot set {self.controller} limit: container could not join or create cgroup"
            )
        write_file(self.path, name, str(value))

    def has(self, name: str) -> bool:
        return bool(self.path) and pathnames.exists(pathnames.join(self.path, name))


class V1Manager(Manager):
    driver = "fs"

    def __init__(
        self, paths: dict[str, str], created: list[str], rootless: bool, explicit: bool
    ) -> None:
        self._paths = dict(paths)
        self._created = list(created)
        self._rootless = rootless
        self._explicit = explicit  # cgroupsPath given: permission errors are fatal

    @classmethod
    def for_path(
        cls,
        inner: str,
        *,
        rootless: bool,
        explicit: bool,
        mounts: list[MountEntry] | None = None,
    ) -> V1Manager:
        own = parse_proc_cgroup()
        paths = {}
        for controller, (mountpoint, root) in _hierarchies(mounts).items():
            paths[controller] = _path_in(mountpoint, root, own.get(controller, "/"), inner)
        if "devices" not in paths and not rootless:
            # runc: a missing devices hierarchy is fatal (it is the security boundary).
            raise CgroupError("cgroup v1 devices hierarchy is not mounted: cannot confine devices")
        return cls(paths, [], rootless, explicit)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> V1Manager:
        return cls(
            record.get("paths") or {},
            record.get("created") or [],
            bool(record.get("rootless")),
            bool(record.get("explicit")),
        )

    def to_record(self) -> dict[str, Any]:
        return {
            "driver": self.driver,
            "paths": self._paths,
            "created": self._created,
            "rootless": self._rootless,
            "explicit": self._explicit,
        }

    def paths(self) -> dict[str, str]:
        return dict(self._paths)

    # -- lifecycle ------------------------------------------------------------------
    def create(self) -> None:
        for controller, path in list(self._paths.items()):
            try:
                made = makedirs_tracked(path)
            except CgroupError as e:
                if self._permission_ignorable(e):
                    del self._paths[controller]
                    continue
                raise
            self._created.extend(d for d in made if d not in self._created)
            if controller == "cpuset":
                _cpuset_fill(path)

    def _permission_ignorable(self, e: CgroupError) -> bool:
        # runc: rootless without an explicit cgroupsPath runs without the cgroup.
        return (
            self._rootless
            and not self._explicit
            and e.errno in (errno.EPERM, errno.EACCES, errno.EROFS)
        )

    def cgroup_fd(self) -> int:
        """On a hybrid host, the cgroup2 ("unified") directory: the init is cloned into it.

        As root only: a rootless create may lack the right, and then runs
        without that cgroup (apply ignores the error) instead of failing clone.
        """
        unified = self._paths.get("")
        if not unified or self._rootless:
            return -1
        try:
            return posix.open(unified, posix.O_PATH | posix.O_DIRECTORY | posix.O_CLOEXEC)
        except OSError as e:
            raise CgroupError(f"failed to open {unified}: {e.strerror}", e.errno or 0) from None

    def tasks_files(self) -> list[tuple[int, str]]:
        """Every v1 directory's ``tasks`` (not the hybrid cgroup2 one: no such file there)."""
        files: list[tuple[int, str]] = []
        try:
            for path in self._v1_dirs():
                try:
                    files.append((open_tasks_file(path), path))
                except CgroupError as e:
                    if not self._permission_ignorable(e):
                        raise
        except BaseException:
            for fd, _ in files:
                posix.close(fd)
            raise
        return files

    def apply(self, pid: int, *, cloned_into: bool = False, self_joined: bool = False) -> None:
        for path in self._left_to_apply(cloned_into, self_joined):
            try:
                _write_procs(path, pid)
            except CgroupError as e:
                if not self._permission_ignorable(e):
                    raise

    def needs_apply(self, *, cloned_into: bool = False, self_joined: bool = False) -> bool:
        return bool(self._left_to_apply(cloned_into, self_joined))

    def _left_to_apply(self, cloned_into: bool, self_joined: bool) -> list[str]:
        # self_joined: every v1 directory whose tasks file could be opened;
        # one that could not is one a rootless create goes without (as apply).
        paths = set() if self_joined else set(self._v1_dirs())
        unified = self._paths.get("")
        if unified and not cloned_into:
            paths.add(unified)
        return sorted(paths)

    def _v1_dirs(self) -> list[str]:
        unified = self._paths.get("")
        return sorted({p for c, p in self._paths.items() if c and p != unified})

    def destroy(self) -> None:
        """Remove the leaf cgroups we made, then the parents we made (if empty)."""
        leaves = {p for p in self._paths.values() if p in self._created}
        errors = []
        for path in sorted(leaves):
            try:
                remove_dir(path)
            except CgroupError as e:
                errors.append(str(e))
        for path in sorted(set(self._created) - leaves, key=len, reverse=True):
            try:
                posix.rmdir(path)
            except OSError:
                pass  # shared with another container, or gone
        if errors:
            raise CgroupError("; ".join(errors))

    def exists(self) -> bool:
        return any(pathnames.isdir(p) for p in self._paths.values())

    def pids(self) -> list[int]:
        path = self._paths.get("devices") or next(iter(self._paths.values()), "")
        return procs_in(path) if path else []

    # -- resources ------------------------------------------------------------------
    def set(self, resources: dict[str, Any] | None, *, update: bool = False) -> None:
        r = resources or {}
        if r.get("unified"):
            raise CgroupError("invalid configuration: cannot use unified on cgroup v1")
        f = {c: _Files(c, self._paths.get(c)) for c in CONTROLLERS}
        _set_cpuset(f["cpuset"], r)
        if not update:  # runc update never changes device rules
            _set_devices(f["devices"], r, self._rootless)
        _set_memory(f["memory"], r, update)
        _set_cpu(f["cpu"], r, update)
        _set_pids(f["pids"], r)
        _set_blkio(f["blkio"], r, update)
        if not update:
            _set_hugetlb(f["hugetlb"], r)
            _set_network(f["net_cls"], f["net_prio"], r)
            _set_rdma(f["rdma"], r)

    # -- freezer -------------------------------------------------------------------
    def _freezer(self) -> str:
        path = self._paths.get("freezer")
        if not path:
            raise CgroupError("cannot toggle freezer: cgroups not configured for container")
        return path

    def freeze(self) -> None:
        path = self._freezer()
        # A v1 freeze can stay FREEZING while tasks fork: retry, thawing now and
        # then so that new tasks settle (runc's empirically tuned loop).
        for attempt in range(1000):
            if attempt % 50 == 49:
                write_file(path, "freezer.state", "THAWED")
                time.sleep(0.01)
            write_file(path, "freezer.state", "FROZEN")
            if attempt % 25 == 24:
                time.sleep(0.00001)
            state = read_file(path, "freezer.state").strip()
            if state == "FROZEN":
                return
            if state != "FREEZING":
                raise CgroupError(f"unexpected state {state} while freezing {path}")
        write_file(path, "freezer.state", "THAWED")
        raise CgroupError(f"unable to freeze {path}")

    def thaw(self) -> None:
        write_file(self._freezer(), "freezer.state", "THAWED")

    def is_frozen(self) -> bool:
        path = self._paths.get("freezer")
        if not path or not pathnames.isdir(path):
            return False  # (a cgroup left in another hierarchy only: nothing to freeze)
        state = read_file(path, "freezer.state").strip()
        if state == "THAWED":
            return False
        # FROZEN or FREEZING: frozen by us, or only through an ancestor?
        return read_file(path, "freezer.self_freezing").strip() == "1"

    # -- stats and OOM ---------------------------------------------------------------
    def oom_count(self) -> int:
        path = self._paths.get("memory")
        return read_keyed(path, "memory.oom_control").get("oom_kill", 0) if path else 0

    def oom_event_fd(self) -> int:
        """eventfd registered on memory.oom_control through cgroup.event_control.

        It also fires when the cgroup is removed, so a reader must check exists().
        """
        path = self._paths.get("memory")
        if not path:
            raise CgroupError("cannot watch for OOM: no memory cgroup")
        efd = posix.eventfd(0, posix.EFD_CLOEXEC)
        try:
            ofd = posix.open(
                pathnames.join(path, "memory.oom_control"), posix.O_RDONLY | posix.O_CLOEXEC
            )
            try:
                write_file(path, "cgroup.event_control", f"{efd} {ofd}")
            finally:
                posix.close(ofd)
        except BaseException:
            posix.close(efd)
            raise
        return efd

    def stats(self) -> dict[str, Any]:
        p = self._paths
        return {
            "cpu": _cpu_stats(p.get("cpuacct"), p.get("cpu")),
            "cpuset": _cpuset_stats(p.get("cpuset")),
            "memory": _memory_stats(p.get("memory")),
            "pids": _pids_stats(p.get("pids")),
            "blkio": _blkio_stats(p.get("blkio")),
            "hugetlb": _hugetlb_stats(p.get("hugetlb")),
            "intel_rdt": {},
            "network_interfaces": None,
        }


# -- create/apply helpers --------------------------------------------------------
def _cpuset_fill(path: str) -> None:
    """A new v1 cpuset has no cpus/mems, and no task may join it: copy them
    down from the nearest ancestor that has them (runc's ensureParent)."""
    chain = []
    probe = path
    while pathnames.exists(pathnames.join(probe, "cpuset.cpus")):
        chain.append(probe)
        parent = pathnames.dirname(probe)
        if parent == probe:
            break
        probe = parent
    for directory in reversed(chain[:-1]):  # from just below the top, down
        parent = pathnames.dirname(directory)
        for name in ("cpuset.cpus", "cpuset.mems"):
            if not read_file(directory, name).strip():
                write_file(directory, name, read_file(parent, name).strip())


def _write_procs(path: str, pid: int) -> None:
    # EINVAL while the task is mid-fork/exit: runc retries a few times.
    for attempt in range(5):
        try:
            write_file(path, "cgroup.procs", str(pid))
            return
        except CgroupError as e:
            if e.errno != errno.EINVAL or attempt == 4:
                raise
            time.sleep(0.03)


# -- setters (spec field names in, cgroup v1 files out) ---------------------------
def _num(section: dict[str, Any] | None, key: str) -> int:
    value = (section or {}).get(key)
    return int(value) if value is not None else 0


def _set_cpuset(f: _Files, r: dict[str, Any]) -> None:
    cpu = r.get("cpu") or {}
    if cpu.get("cpus"):
        f.write("cpuset.cpus", cpu["cpus"])
    if cpu.get("mems"):
        f.write("cpuset.mems", cpu["mems"])


def _set_devices(f: _Files, r: dict[str, Any], rootless: bool) -> None:
    if r.get("devices") is None:
        return
    from ocirt.cgroups.devrules import Emulator, rules_from_spec

    target = Emulator.from_rules(rules_from_spec(r["devices"]))
    if not f.path:
        if rootless:
            return
        raise CgroupError("cannot set devices limit: container could not join or create cgroup")
    current = Emulator.from_v1_list(read_file(f.path, "devices.list"))
    if current == target:
        return
    # Reset to the target's default, then punch the exceptions: a running
    # container is only affected on create (update leaves devices alone).
    if target.default_allow:
        f.write("devices.allow", "a")
    else:
        f.write("devices.deny", "a")
    name = "devices.deny" if target.default_allow else "devices.allow"
    for rule in target.exceptions():
        f.write(name, rule.v1_string())


def _set_memory(f: _Files, r: dict[str, Any], update: bool) -> None:
    mem = r.get("memory") or {}
    limit, swap = _num(mem, "limit"), _num(mem, "swap")
    # memory -1 with no swap given means both unlimited (runc).
    if limit == -1 and swap == 0 and f.has("memory.memsw.limit_in_bytes"):
        swap = -1
    # The kernel refuses memory > memsw, so order the two writes by the
    # current limit when raising or lowering both.
    if limit and swap:
        current = read_int(f.path or "", "memory.limit_in_bytes")
        if swap == -1 or current < swap:
            _set_swap(f, swap)
            _set_limit(f, limit)
            limit = swap = 0
    _set_limit(f, limit)
    _set_swap(f, swap)
    # memory.kernel is ignored, as in runc 1.1 (kmem limits are deprecated);
    # kernelTCP is honoured where the kernel still has its file, else refused.
    _set_kernel_tcp(f, _num(mem, "kernelTCP"))
    if _num(mem, "reservation"):
        f.write("memory.soft_limit_in_bytes", _num(mem, "reservation"))
    if update:
        return
    if mem.get("disableOOMKiller"):
        f.write("memory.oom_control", "1")
    swappiness = mem.get("swappiness")
    if swappiness is not None and int(swappiness) != -1:
        if not 0 <= int(swappiness) <= 100:
            raise CgroupError(
                f"invalid memory swappiness value: {swappiness} (valid range is 0-100)"
            )
        f.write("memory.swappiness", int(swappiness))


def _set_kernel_tcp(f: _Files, limit: int) -> None:
    if not limit:
        return
    if not f.has("memory.kmem.tcp.limit_in_bytes"):
        raise CgroupError(
            "cannot set linux.resources.memory.kernelTCP: this kernel has no"
            " memory.kmem.tcp.limit_in_bytes (remove kernelTCP from the config)"
        )
    f.write("memory.kmem.tcp.limit_in_bytes", limit)


def _set_limit(f: _Files, limit: int) -> None:
    if not limit:
        return
    try:
        f.write("memory.limit_in_bytes", limit)
    except CgroupError as e:
        if e.errno != errno.EBUSY:
            raise
        usage = read_int(f.path or "", "memory.usage_in_bytes")
        peak = read_int(f.path or "", "memory.max_usage_in_bytes")
        raise CgroupError(
            f"unable to set memory limit to {limit} (current usage: {usage}, peak usage: {peak})",
            e.errno,
        ) from None


def _set_swap(f: _Files, swap: int) -> None:
    if swap:
        f.write("memory.memsw.limit_in_bytes", swap)


def _set_cpu(f: _Files, r: dict[str, Any], update: bool) -> None:
    cpu = r.get("cpu") or {}
    shares = _num(cpu, "shares")
    if shares:
        f.write("cpu.shares", shares)
        # The kernel clamps: report the bound as runc does.
        actual = read_int(f.path or "", "cpu.shares")
        if shares > actual:
            raise CgroupError(f"the maximum allowed cpu-shares is {actual}")
        if shares < actual:
            raise CgroupError(f"the minimum allowed cpu-shares is {actual}")
    _set_cfs(f, _num(cpu, "period"), _num(cpu, "quota"))
    if _num(cpu, "burst") and not update:
        f.write("cpu.cfs_burst_us", _num(cpu, "burst"))
    if _num(cpu, "realtimePeriod"):
        f.write("cpu.rt_period_us", _num(cpu, "realtimePeriod"))
    if _num(cpu, "realtimeRuntime"):
        f.write("cpu.rt_runtime_us", _num(cpu, "realtimeRuntime"))
    if cpu.get("idle") is not None and not update:
        f.write("cpu.idle", int(cpu["idle"]))


def _set_cfs(f: _Files, period: int, quota: int) -> None:
    pending_period = 0
    if period:
        try:
            f.write("cpu.cfs_period_us", period)
        except CgroupError as e:
            # A smaller period can break the parent's quota until the new
            # quota is written: retry the period after the quota.
            if e.errno != errno.EINVAL or not quota:
                raise
            pending_period = period
    if quota:
        f.write("cpu.cfs_quota_us", quota)
        if pending_period:
            f.write("cpu.cfs_period_us", pending_period)


def _set_pids(f: _Files, r: dict[str, Any]) -> None:
    limit = _num(r.get("pids"), "limit")
    if limit:
        f.write("pids.max", limit if limit > 0 else "max")


def _set_blkio(f: _Files, r: dict[str, Any], update: bool) -> None:
    bio = r.get("blockIO") or {}
    # Kernels with BFQ and no CFQ only have the blkio.bfq.* weight files.
    if f.has("blkio.weight") or not f.has("blkio.bfq.weight"):
        weight_file, weight_device_file = "blkio.weight", "blkio.weight_device"
    else:
        weight_file, weight_device_file = "blkio.bfq.weight", "blkio.bfq.weight_device"
    if _num(bio, "weight"):
        f.write(weight_file, _num(bio, "weight"))
    if update:
        return
    if _num(bio, "leafWeight"):
        f.write("blkio.leaf_weight", _num(bio, "leafWeight"))
    for wd in bio.get("weightDevice") or []:
        dev = f"{wd['major']}:{wd['minor']}"
        if _num(wd, "weight"):
            f.write(weight_device_file, f"{dev} {_num(wd, 'weight')}")
        if _num(wd, "leafWeight"):
            f.write("blkio.leaf_weight_device", f"{dev} {_num(wd, 'leafWeight')}")
    for key, name in (
        ("throttleReadBpsDevice", "blkio.throttle.read_bps_device"),
        ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device"),
        ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device"),
        ("throttleWriteIOPSDevice", "blkio.throttle.write_iops_device"),
    ):
        for td in bio.get(key) or []:
            f.write(name, f"{td['major']}:{td['minor']} {td['rate']}")


def _set_hugetlb(f: _Files, r: dict[str, Any]) -> None:
    for h in r.get("hugepageLimits") or []:
        f.write(f"hugetlb.{h['pageSize']}.limit_in_bytes", int(h["limit"]))


def _set_network(cls: _Files, prio: _Files, r: dict[str, Any]) -> None:
    net = r.get("network") or {}
    if net.get("classID"):
        cls.write("net_cls.classid", int(net["classID"]))
    for p in net.get("priorities") or []:
        prio.write("net_prio.ifpriomap", f"{p['name']} {p['priority']}")


def _set_rdma(f: _Files, r: dict[str, Any]) -> None:
    for device, limits in (r.get("rdma") or {}).items():
        parts = [device]
        if limits.get("hcaHandles") is not None:
            parts.append(f"hca_handle={limits['hcaHandles']}")
        if limits.get("hcaObjects") is not None:
            parts.append(f"hca_object={limits['hcaObjects']}")
        f.write("rdma.max", " ".join(parts))


# -- stats: runc's types.Stats (events --stats), zero fields omitted as Go does ---
def _nonzero(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v}


def _ints(path: str, name: str) -> list[int]:
    try:
        return [int(x) for x in read_file(path, name).split()]
    except CgroupError:
        return []


def _cpu_stats(acct: str | None, cpu: str | None) -> dict[str, Any]:
    usage: dict[str, Any] = {}
    if acct:
        ticks = posix.sysconf("SC_CLK_TCK")
        stat = read_keyed(acct, "cpuacct.stat")
        usage = _nonzero(
            {
                "total": read_int(acct, "cpuacct.usage"),
                "percpu": _ints(acct, "cpuacct.usage_percpu"),
                "percpu_kernel": _ints(acct, "cpuacct.usage_percpu_sys"),
                "percpu_user": _ints(acct, "cpuacct.usage_percpu_user"),
            }
        )
        usage["kernel"] = stat.get("system", 0) * 1_000_000_000 // ticks
        usage["user"] = stat.get("user", 0) * 1_000_000_000 // ticks
    throttling: dict[str, int] = {}
    if cpu:
        s = read_keyed(cpu, "cpu.stat")
        throttling = _nonzero(
            {
                "periods": s.get("nr_periods", 0),
                "throttledPeriods": s.get("nr_throttled", 0),
                "throttledTime": s.get("throttled_time", 0),
            }
        )
    return {"usage": usage, "throttling": throttling}


def parse_cpu_list(text: str) -> list[int]:
    out: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def _cpuset_stats(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    names = (
        "cpu_exclusive",
        "mem_hardwall",
        "mem_exclusive",
        "memory_migrate",
        "memory_spread_page",
        "memory_spread_slab",
        "memory_pressure",
        "sched_load_balance",
        "sched_relax_domain_level",
    )
    out: dict[str, Any] = {}
    cpus = parse_cpu_list(read_file(path, "cpuset.cpus"))
    mems = parse_cpu_list(read_file(path, "cpuset.mems"))
    if cpus:
        out["cpus"] = cpus
    out["cpu_exclusive"] = 0
    if mems:
        out["mems"] = mems
    for name in names:
        out[name] = read_int(path, f"cpuset.{name}")
    return out


def _memory_entry(path: str, prefix: str) -> dict[str, int]:
    entry = {"limit": read_int(path, f"{prefix}.limit_in_bytes")}
    entry.update(
        _nonzero(
            {
                "usage": read_int(path, f"{prefix}.usage_in_bytes"),
                "max": read_int(path, f"{prefix}.max_usage_in_bytes"),
            }
        )
    )
    entry["failcnt"] = read_int(path, f"{prefix}.failcnt")
    return entry


def _memory_stats(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    raw = read_keyed(path, "memory.stat")
    out: dict[str, Any] = _nonzero({"cache": raw.get("cache", 0)})
    out["usage"] = _memory_entry(path, "memory")
    out["swap"] = _memory_entry(path, "memory.memsw")
    out["kernel"] = _memory_entry(path, "memory.kmem")
    out["kernelTCP"] = _memory_entry(path, "memory.kmem.tcp")
    if raw:
        out["raw"] = dict(sorted(raw.items()))
    return out


def _pids_stats(path: str | None) -> dict[str, int]:
    if not path:
        return {}
    return _nonzero(
        {"current": read_int(path, "pids.current"), "limit": read_int(path, "pids.max")}
    )


def _blkio_entries(path: str, name: str) -> list[dict[str, Any]]:
    """ "8:0 Read 4096" lines (a "Total" line has no device)."""
    entries = []
    try:
        text = read_file(path, name)
    except CgroupError:
        return []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 3:
            major, _, minor = fields[0].partition(":")
            entry = {
                "major": int(major),
                "minor": int(minor),
                "op": fields[1],
                "value": int(fields[2]),
            }
        elif len(fields) == 2 and ":" in fields[0]:
            major, _, minor = fields[0].partition(":")
            entry = {"major": int(major), "minor": int(minor), "value": int(fields[1])}
        else:
            continue
        entries.append(_nonzero(entry))
    return entries


def _blkio_stats(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    # runc prefers the CFQ files, then BFQ's, then the throttle ones.
    if pathnames.exists(pathnames.join(path, "blkio.io_service_bytes_recursive")):
        prefix = "blkio."
    elif pathnames.exists(pathnames.join(path, "blkio.bfq.io_service_bytes_recursive")):
        prefix = "blkio.bfq."
    else:
        prefix = "blkio.throttle."
    out = {
        "ioServiceBytesRecursive": _blkio_entries(path, prefix + "io_service_bytes_recursive"),
        "ioServicedRecursive": _blkio_entries(path, prefix + "io_serviced_recursive"),
    }
    return {k: v for k, v in out.items() if v}


def _hugetlb_stats(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    out = {}
    for name in sorted(posix.listdir(path)):
        if (
            name.startswith("hugetlb.")
            and name.endswith(".usage_in_bytes")
            and ".rsvd." not in name
        ):
            size = name[len("hugetlb.") : -len(".usage_in_bytes")]
            entry = _nonzero(
                {
                    "usage": read_int(path, name),
                    "max": read_int(path, f"hugetlb.{size}.max_usage_in_bytes"),
                }
            )
            entry["failcnt"] = read_int(path, f"hugetlb.{size}.failcnt")
            out[size] = entry
    return out
