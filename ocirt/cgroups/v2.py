"""cgroup v2 driver ("fs2"): runc 1.1's libcontainer/cgroups/fs2, in Python.

One directory under /sys/fs/cgroup.  Every ancestor gets all the controllers
it has enabled in its cgroup.subtree_control (errors ignored, as runc: a
controller that cannot be enabled fails later, when a limit needs it).
"""

from __future__ import annotations

import errno
import posix  # not os (~1.2 ms of imports): ocirt.linux.pathnames has os.path's few uses
import select
import time

from ocirt.cgroups import (
    CGROUP_ROOT,
    CgroupError,
    Manager,
    blkio_weight_to_io_weight,
    makedirs_tracked,
    parse_proc_cgroup,
    procs_in,
    read_file,
    read_int,
    read_keyed,
    remove_dir,
    shares_to_weight,
    write_file,
)
from ocirt.linux import pathnames

TYPE_CHECKING = False  # typing costs ~2 ms to import: annotations only
if TYPE_CHECKING:
    from typing import Any

UINT64_MAX = (1 << 64) - 1


def dir_for(inner: str) -> str:
    """runc's fs2 defaultDirPath: relative paths go under our cgroup's *parent*.

    Our own cgroup holds processes (us), so by the no-internal-processes rule
    it could not enable controllers for a child; its parent can.
    """
    if inner.startswith("/"):
        return pathnames.join(CGROUP_ROOT, inner.lstrip("/"))
    own = parse_proc_cgroup().get("", "/")
    return pathnames.normpath(
        pathnames.join(CGROUP_ROOT, pathnames.dirname(own).lstrip("/"), inner)
    )


class V2Manager(Manager):
    driver = "fs2"

    def __init__(self, path: str, created: list[str], rootless: bool) -> None:
        if not path.startswith(CGROUP_ROOT + "/"):
            raise CgroupError(f"invalid cgroup path {path}")
        self._path = path
        self._created = list(created)
        self._rootless = rootless

    @classmethod
    def for_path(cls, inner: str, *, rootless: bool) -> V2Manager:
        return cls(dir_for(inner), [], rootless)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> V2Manager:
        return cls(record["path"], record.get("created") or [], bool(record.get("rootless")))

    def to_record(self) -> dict[str, Any]:
        return {
            "driver": self.driver,
            "path": self._path,
            "created": self._created,
            "rootless": self._rootless,
        }

    def paths(self) -> dict[str, str]:
        return {"": self._path}

    # -- lifecycle -----------------------------------------------------------------
    def create(self) -> None:
        made = makedirs_tracked(self._path)
        self._created.extend(d for d in made if d not in self._created)
        # Enable controllers from the root down to our parent.
        directory = CGROUP_ROOT
        for part in pathnames.relpath(self._path, CGROUP_ROOT).split("/"):
            _enable_controllers(directory)
            directory = pathnames.join(directory, part)

    def cgroup_fd(self) -> int:
        """For clone3(CLONE_INTO_CGROUP): the child starts inside the cgroup."""
        flags = posix.O_PATH | posix.O_DIRECTORY | posix.O_CLOEXEC
        try:
            return posix.open(self._path, flags)
        except OSError as e:
            raise CgroupError(f"failed to open {self._path}: {e.strerror}", e.errno or 0) from None

    def needs_apply(self, *, cloned_into: bool = False, self_joined: bool = False) -> bool:
        return not cloned_into

    def apply(self, pid: int, *, cloned_into: bool = False, self_joined: bool = False) -> None:
        if cloned_into:
            return  # there already (and a write would wait for an RCU grace period)
        for attempt in range(5):
            try:
                write_file(self._path, "cgroup.procs", str(pid))
                return
            except CgroupError as e:
                if e.errno == errno.EBUSY:
                    raise CgroupError(
                        f"cannot enter cgroupv2 {self._path!r} with domain controllers -- "
                        "it is in an invalid state",
                        e.errno,
                    ) from None
                if e.errno != errno.EINVAL or attempt == 4:
                    raise
                time.sleep(0.03)

    def destroy(self) -> None:
        remove_dir_if_created = self._path in self._created
        if remove_dir_if_created:
            remove_dir(self._path)
        for path in sorted(set(self._created) - {self._path}, key=len, reverse=True):
            try:
                posix.rmdir(path)
            except OSError:
                pass  # shared with another container, or gone

    def exists(self) -> bool:
        return pathnames.isdir(self._path)

    def pids(self) -> list[int]:
        return procs_in(self._path)

    # -- resources -------------------------------------------------------------------
    def set(self, resources: dict[str, Any] | None, *, update: bool = False) -> None:
        r = resources or {}
        p = self._path
        # runc fs2 order; unified last so that it overrides.
        _set_pids(p, r)
        _set_memory(p, r, update)
        _set_io(p, r, update)
        _set_cpu(p, r, update)
        if not update and r.get("devices") is not None:
            _set_devices(p, r["devices"])
        _set_cpuset(p, r)
        if not update:
            _set_hugetlb(p, r)
            _set_rdma(p, r)
        _set_unified(p, r.get("unified") or {})

    # -- freezer -------------------------------------------------------------------
    def freeze(self) -> None:
        write_file(self._path, "cgroup.freeze", "1")
        self._wait_frozen(True)

    def thaw(self) -> None:
        write_file(self._path, "cgroup.freeze", "0")
        self._wait_frozen(False)

    def _wait_frozen(self, frozen: bool, timeout: float = 5.0) -> None:
        """cgroup.freeze takes effect asynchronously: wait for cgroup.events."""
        want = 1 if frozen else 0
        deadline = time.monotonic() + timeout
        fd = posix.open(
            pathnames.join(self._path, "cgroup.events"), posix.O_RDONLY | posix.O_CLOEXEC
        )
        try:
            poller = select.poll()
            poller.register(fd, select.POLLPRI)
            while True:
                posix.lseek(fd, 0, 0)
                events = _keyed_text(posix.read(fd, 4096).decode())
                if events.get("frozen") == want:
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                poller.poll(min(left, 0.1) * 1000)
        finally:
            posix.close(fd)
        if frozen:
            write_file(self._path, "cgroup.freeze", "0")
            raise CgroupError(f"unable to freeze {self._path}: timed out")

    def is_frozen(self) -> bool:
        return read_file(self._path, "cgroup.freeze").strip() == "1"

    # -- stats and OOM -----------------------------------------------------------------
    def oom_count(self) -> int:
        return read_keyed(self._path, "memory.events").get("oom_kill", 0)

    def oom_event_fd(self) -> int:
        """memory.events, pollable with POLLPRI: the kernel notifies on change."""
        try:
            return posix.open(
                pathnames.join(self._path, "memory.events"), posix.O_RDONLY | posix.O_CLOEXEC
            )
        except OSError as e:
            raise CgroupError(
                f"cannot watch for OOM: {self._path}/memory.events: {e.strerror}"
            ) from None

    def stats(self) -> dict[str, Any]:
        p = self._path
        return {
            "cpu": _cpu_stats(p),
            "cpuset": _cpuset_stats(p),
            "memory": _memory_stats(p),
            "pids": _nonzero(
                {"current": read_int(p, "pids.current"), "limit": read_int(p, "pids.max")}
            ),
            "blkio": _io_stats(p),
            "hugetlb": _hugetlb_stats(p),
            "intel_rdt": {},
            "network_interfaces": None,
        }


def _keyed_text(text: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


def _enable_controllers(directory: str) -> None:
    try:
        available = read_file(directory, "cgroup.controllers").split()
    except CgroupError:
        return
    if not available:
        return
    try:
        write_file(directory, "cgroup.subtree_control", " ".join("+" + c for c in available))
    except CgroupError:
        # One refused controller (say, cpu while a realtime task runs) must
        # not keep the others off: try them one by one.
        for controller in available:
            try:
                write_file(directory, "cgroup.subtree_control", "+" + controller)
            except CgroupError:
                continue


# -- setters ---------------------------------------------------------------------
def _num(section: dict[str, Any] | None, key: str) -> int:
    value = (section or {}).get(key)
    return int(value) if value is not None else 0


def _max_or(value: int) -> str:
    """runc's numToStr: 0 -> "" (leave alone), -1 -> "max"."""
    if value == 0:
        return ""
    return "max" if value == -1 else str(value)


def _set_pids(path: str, r: dict[str, Any]) -> None:
    value = _max_or(_num(r.get("pids"), "limit"))
    if value:
        write_file(path, "pids.max", "max" if value.startswith("-") else value)


def swap_to_v2(swap: int, memory: int) -> int:
    """v1's memory+swap limit -> v2's swap-only limit (runc's conversion)."""
    if memory == -1 and swap == 0:
        return -1  # both unlimited
    if swap in (-1, 0):
        return swap
    if memory in (0, -1):
        raise CgroupError("unable to set swap limit without memory limit")
    if memory < 0:
        raise CgroupError(f"invalid memory value: {memory}")
    if swap < memory:
        raise CgroupError("memory+swap limit should be >= memory limit")
    return swap - memory


def _set_memory(path: str, r: dict[str, Any], update: bool) -> None:
    mem = r.get("memory") or {}
    limit, swap_total = _num(mem, "limit"), _num(mem, "swap")
    swap = swap_to_v2(swap_total, limit)
    swap_value = _max_or(swap)
    if not swap_value and swap == 0 and swap_total > 0:
        swap_value = "0"  # memory == memory+swap: no swap at all
    if swap_value:
        try:
            write_file(path, "memory.swap.max", swap_value)
        except CgroupError as e:
            # Without swap accounting, "no limit" and "no swap" both hold.
            if not (e.errno == errno.ENOENT and swap_value in ("max", "0")):
                raise
    if _max_or(limit):
        write_file(path, "memory.max", _max_or(limit))
    if _max_or(_num(mem, "reservation")):
        write_file(path, "memory.low", _max_or(_num(mem, "reservation")))
    # kernel, swappiness, disableOOMKiller: no v2 equivalent (runc ignores them).
    if _num(mem, "kernelTCP"):  # a limit the spec says to apply: refused, not dropped
        raise CgroupError(
            "cannot set linux.resources.memory.kernelTCP: cgroup v2 has no TCP memory"
            " limit (remove kernelTCP from the config)"
        )


def _set_io(path: str, r: dict[str, Any], update: bool) -> None:
    bio = r.get("blockIO") or {}
    bfq = pathnames.exists(pathnames.join(path, "io.bfq.weight"))
    weight = _num(bio, "weight")
    if weight:
        if bfq:
            write_file(path, "io.bfq.weight", str(weight))
        else:
            write_file(path, "io.weight", str(blkio_weight_to_io_weight(weight)))
    if update:
        return
    for wd in bio.get("weightDevice") or []:
        if _num(wd, "weight") and bfq:
            write_file(path, "io.bfq.weight", f"{wd['major']}:{wd['minor']} {wd['weight']}")
    for key, name in (
        ("throttleReadBpsDevice", "rbps"),
        ("throttleWriteBpsDevice", "wbps"),
        ("throttleReadIOPSDevice", "riops"),
        ("throttleWriteIOPSDevice", "wiops"),
    ):
        for td in bio.get(key) or []:
            write_file(path, "io.max", f"{td['major']}:{td['minor']} {name}={td['rate']}")


def _set_cpu(path: str, r: dict[str, Any], update: bool) -> None:
    cpu = r.get("cpu") or {}
    weight = shares_to_weight(_num(cpu, "shares"))
    if weight:
        write_file(path, "cpu.weight", str(weight))
    if cpu.get("idle") is not None and not update:
        write_file(path, "cpu.idle", str(int(cpu["idle"])))
    quota, period = _num(cpu, "quota"), _num(cpu, "period")
    if quota or period:
        if update and not quota:
            # runc update keeps the old quota when only the period changes.
            quota_text = read_file(path, "cpu.max").split()[0]
        else:
            quota_text = str(quota) if quota > 0 else "max"
        write_file(path, "cpu.max", quota_text + (f" {period}" if period else ""))
    if _num(cpu, "burst") and not update:
        write_file(path, "cpu.max.burst", str(_num(cpu, "burst")))


def _set_cpuset(path: str, r: dict[str, Any]) -> None:
    cpu = r.get("cpu") or {}
    if cpu.get("cpus"):
        write_file(path, "cpuset.cpus", cpu["cpus"])
    if cpu.get("mems"):
        write_file(path, "cpuset.mems", cpu["mems"])


def _set_devices(path: str, devices: list[dict[str, Any]]) -> None:
    from ocirt.cgroups import devices_bpf

    emu = devices_bpf.Emulator.from_rules(devices_bpf.rules_from_spec(devices))
    devices_bpf.install(path, emu)


def _set_hugetlb(path: str, r: dict[str, Any]) -> None:
    for h in r.get("hugepageLimits") or []:
        # runc 1.1 leaves hugetlb.<size>.rsvd.max alone (1.2 sets it too).
        write_file(path, f"hugetlb.{h['pageSize']}.max", str(int(h["limit"])))


def _set_rdma(path: str, r: dict[str, Any]) -> None:
    for device, limits in (r.get("rdma") or {}).items():
        parts = [device]
        if limits.get("hcaHandles") is not None:
            parts.append(f"hca_handle={limits['hcaHandles']}")
        if limits.get("hcaObjects") is not None:
            parts.append(f"hca_object={limits['hcaObjects']}")
        write_file(path, "rdma.max", " ".join(parts))


def _set_unified(path: str, unified: dict[str, str]) -> None:
    for key, value in unified.items():
        if "/" in key:
            raise CgroupError(f"unified resource {key!r} must be a file name (no slashes)")
        try:
            write_file(path, key, value)
        except CgroupError as e:
            if e.errno in (errno.ENOENT, errno.EPERM, errno.EACCES):
                controller, dot, _ = key.partition(".")
                if not dot:
                    raise CgroupError(
                        f"unified resource {key!r} must be in the form CONTROLLER.PARAMETER"
                    ) from None
                available = read_file(path, "cgroup.controllers").split()
                if controller not in available and controller != "cgroup":
                    raise CgroupError(
                        f"unified resource {key!r} can't be set: "
                        f"controller {controller!r} not available"
                    ) from None
            raise


# -- stats ---------------------------------------------------------------------------
def _nonzero(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v}


def _cpu_stats(path: str) -> dict[str, Any]:
    s = read_keyed(path, "cpu.stat")
    usage = _nonzero({"total": s.get("usage_usec", 0) * 1000})
    usage["kernel"] = s.get("system_usec", 0) * 1000
    usage["user"] = s.get("user_usec", 0) * 1000
    throttling = _nonzero(
        {
            "periods": s.get("nr_periods", 0),
            "throttledPeriods": s.get("nr_throttled", 0),
            "throttledTime": s.get("throttled_usec", 0) * 1000,
        }
    )
    return {"usage": usage, "throttling": throttling}


def _cpuset_stats(path: str) -> dict[str, Any]:
    from ocirt.cgroups.v1 import parse_cpu_list

    out: dict[str, Any] = {}
    try:
        cpus = parse_cpu_list(read_file(path, "cpuset.cpus.effective"))
        mems = parse_cpu_list(read_file(path, "cpuset.mems.effective"))
    except CgroupError:
        return out
    if cpus:
        out["cpus"] = cpus
    if mems:
        out["mems"] = mems
    return out


def _limit(path: str, name: str) -> int:
    text = read_file(path, name).strip() if pathnames.exists(pathnames.join(path, name)) else "max"
    return UINT64_MAX if text == "max" else int(text)


def _memory_stats(path: str) -> dict[str, Any]:
    raw = read_keyed(path, "memory.stat")
    events = read_keyed(path, "memory.events")
    out: dict[str, Any] = _nonzero({"cache": raw.get("file", 0)})
    usage = read_int(path, "memory.current")
    out["usage"] = {"limit": _limit(path, "memory.max")}
    out["usage"].update(_nonzero({"usage": usage, "max": read_int(path, "memory.peak")}))
    out["usage"]["failcnt"] = events.get("max", 0)
    # runc reports v2 swap as memory+swap, to look like v1's memsw.
    swap = read_int(path, "memory.swap.current")
    out["swap"] = {"limit": _limit(path, "memory.swap.max")}
    out["swap"].update(_nonzero({"usage": swap + usage}))
    out["swap"]["failcnt"] = 0
    out["kernel"] = {"limit": 0, "failcnt": 0}
    out["kernelTCP"] = {"limit": 0, "failcnt": 0}
    if raw:
        out["raw"] = dict(sorted(raw.items()))
    return out


def _io_stats(path: str) -> dict[str, Any]:
    """io.stat "8:0 rbytes=1 wbytes=2 rios=3 wios=4 ..." in v1's shape."""
    service_bytes: list[dict[str, Any]] = []
    serviced: list[dict[str, Any]] = []
    try:
        text = read_file(path, "io.stat")
    except CgroupError:
        return {}
    for line in text.splitlines():
        device, *pairs = line.split()
        major, _, minor = device.partition(":")
        values = dict(p.split("=", 1) for p in pairs if "=" in p)
        for key, op, target in (
            ("rbytes", "Read", service_bytes),
            ("wbytes", "Write", service_bytes),
            ("rios", "Read", serviced),
            ("wios", "Write", serviced),
        ):
            if key in values:
                entry = {
                    "major": int(major),
                    "minor": int(minor),
                    "op": op,
                    "value": int(values[key]),
                }
                target.append(_nonzero(entry))
    return _nonzero({"ioServiceBytesRecursive": service_bytes, "ioServicedRecursive": serviced})


def _hugetlb_stats(path: str) -> dict[str, Any]:
    out = {}
    for name in sorted(posix.listdir(path)):
        if name.startswith("hugetlb.") and name.endswith(".current") and ".rsvd." not in name:
            size = name[len("hugetlb.") : -len(".current")]
            entry = _nonzero(
                {"usage": read_int(path, name), "max": read_int(path, f"hugetlb.{size}.max")}
            )
            entry["failcnt"] = read_keyed(path, f"hugetlb.{size}.events").get("max", 0)
            out[size] = entry
    return out
