"""The systemd cgroup driver (``--systemd-cgroup``), as runc's.

The container's cgroup is a transient scope unit "<prefix>-<name>.scope" in
the slice "<slice>" (``linux.cgroupsPath`` = "slice:prefix:name"; empty means
":runc:<id>", an empty slice means system.slice).  systemd creates the unit
over D-Bus with the init's pid in it (``StartTransientUnit`` with ``PIDs``,
``Delegate=yes`` and the resources as unit properties); then, as runc does,
the same resources are also written to the cgroup files by the cgroupfs
driver of the hierarchy (v2, or every v1 controller), which also attaches
our eBPF device filter on v2.  ``delete`` stops the unit (``StopUnit``), and
``update`` sets the properties (``SetUnitProperties``) and the files.

The D-Bus client is jeepney (pure Python), imported only when a D-Bus call
is made: ``state`` and ``kill`` of a systemd container read cgroup files
only.  The bus is the system bus (``DBUS_SYSTEM_BUS_ADDRESS`` or
/run/dbus/system_bus_socket), as for runc.  Rootless containers would need
the user's systemd instance; that is refused with a clear message.
"""

from __future__ import annotations

import posix  # not os (~1.2 ms of imports): ocirt.linux.pathnames has os.path's few uses
import time

from ocirt.cgroups import CgroupError, Manager, clean_path, mode, shares_to_weight
from ocirt.linux import pathnames

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# sd_booted(3): systemd creates this directory early when it runs as PID 1.
SYSTEMD_RUN_DIR = "/run/systemd/system"
DEFAULT_SYSTEM_BUS = "unix:path=/run/dbus/system_bus_socket"
JOB_TIMEOUT = 30.0  # runc waits 30 s for systemd's job, then gives up
DEFAULT_CPU_QUOTA_PERIOD = 100000
UINT64_MAX = 2**64 - 1
ANNOTATION_PREFIX = "org.systemd.property."

_SD = "org.freedesktop.systemd1"
_SD_PATH = "/org/freedesktop/systemd1"
_SD_MANAGER = "org.freedesktop.systemd1.Manager"


def is_running_systemd() -> bool:
    return pathnames.isdir(SYSTEMD_RUN_DIR)


def parse_path(cgroups_path: str, container_id: str) -> tuple[str, str, str]:
    """ "slice:prefix:name" -> (slice, prefix, name); "" -> ("", "runc", ID) like runc."""
    cleaned = clean_path(cgroups_path)
    if not cleaned:
        return "", "runc", container_id
    parts = cleaned.split(":")
    if len(parts) != 3:
        raise CgroupError(
            'expected cgroupsPath to be of format "slice:prefix:name" for systemd cgroups, '
            f'got "{cleaned}" instead'
        )
    return parts[0], parts[1], parts[2]


def unit_name(prefix: str, name: str) -> str:
    """A scope unless NAME is a slice (runc's getUnitName)."""
    if name.endswith(".slice"):
        return name
    return f"{prefix}-{name}.scope" if prefix else f"{name}.scope"


def expand_slice(slice_name: str) -> str:
    """ "a-b-c.slice" -> "/a.slice/a-b.slice/a-b-c.slice" (systemd's slice nesting)."""
    suffix = ".slice"
    if len(slice_name) <= len(suffix) - 1 or not slice_name.endswith(suffix) or "/" in slice_name:
        raise CgroupError(f"invalid slice name: {slice_name}")
    stem = slice_name[: -len(suffix)]
    if stem == "-":
        return "/"
    path, prefix = "", ""
    for component in stem.split("-"):
        if not component:
            raise CgroupError(f"invalid slice name: {slice_name}")
        path += "/" + prefix + component + suffix
        prefix += component + "-"
    return path


def range_to_bits(text: str) -> bytes:
    """A cpuset list ("0-3,6") -> systemd's AllowedCPUs byte array (bit n = cpu n)."""
    value = 0
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        low, sep, high = part.partition("-")
        try:
            first, last = int(low), int(high) if sep else int(low)
        except ValueError:
            raise CgroupError(f"invalid cpuset list {text!r}") from None
        if first < 0 or last < first:
            raise CgroupError(f"invalid cpuset list {text!r}")
        for bit in range(first, last + 1):
            value |= 1 << bit
    if value == 0:
        raise CgroupError(f"empty cpuset list {text!r}")
    return value.to_bytes((value.bit_length() + 7) // 8, "little")


# -- unit properties from linux.resources (runc's genV1/genV2ResourcesProperties) --
Property = tuple  # (name, (dbus signature, value)): jeepney's a(sv) element


def resource_properties(r: dict[str, Any], *, v2: bool, version: int) -> list[Property]:
    from ocirt.cgroups.v2 import _num, swap_to_v2  # the fs2 driver's own readings of r

    props: list[Property] = []
    if r.get("devices") is not None:
        props += device_properties(r["devices"])
    mem = r.get("memory") or {}
    limit = _num(mem, "limit")
    if v2:
        if limit:
            props.append(("MemoryMax", ("t", limit & UINT64_MAX)))
        if _num(mem, "reservation"):
            props.append(("MemoryLow", ("t", _num(mem, "reservation") & UINT64_MAX)))
        swap = swap_to_v2(_num(mem, "swap"), limit)
        if swap:
            props.append(("MemorySwapMax", ("t", swap & UINT64_MAX)))
    elif limit:
        props.append(("MemoryLimit", ("t", limit & UINT64_MAX)))
    cpu = r.get("cpu") or {}
    shares = _num(cpu, "shares")
    if shares:
        if v2:
            props.append(("CPUWeight", ("t", shares_to_weight(shares))))
        else:
            props.append(("CPUShares", ("t", shares)))
    props += _cpu_quota(_num(cpu, "quota"), _num(cpu, "period"), version)
    if not v2:
        weight = _num(r.get("blockIO"), "weight")
        if weight:
            props.append(("BlockIOWeight", ("t", weight)))
    pids = _num(r.get("pids"), "limit")
    if pids > 0 or pids == -1:
        props.append(("TasksMax", ("t", pids & UINT64_MAX)))
    if version >= 244:  # AllowedCPUs/AllowedMemoryNodes appeared in systemd 244
        if cpu.get("cpus"):
            props.append(("AllowedCPUs", ("ay", range_to_bits(cpu["cpus"]))))
        if cpu.get("mems"):
            props.append(("AllowedMemoryNodes", ("ay", range_to_bits(cpu["mems"]))))
    if v2 and r.get("unified"):
        props += _unified_properties(r["unified"], version)
    return props


def _cpu_quota(quota: int, period: int, version: int) -> list[Property]:
    props: list[Property] = []
    if period and version >= 242:
        props.append(("CPUQuotaPeriodUSec", ("t", period)))
    if quota or period:
        per_sec = UINT64_MAX  # USEC_INFINITY: no quota
        if quota > 0:
            # systemd stores whole percents of a CPU: round up to 10 ms per second so
            # that the cgroup file ends up >= the quota asked for (runc does the same).
            per_sec = quota * 1_000_000 // (period or DEFAULT_CPU_QUOTA_PERIOD)
            if per_sec % 10000:
                per_sec = (per_sec // 10000 + 1) * 10000
        props.append(("CPUQuotaPerSecUSec", ("t", per_sec)))
    return props


_UNIFIED_MEMORY = {
    "memory.high": "MemoryHigh",
    "memory.low": "MemoryLow",
    "memory.min": "MemoryMin",
    "memory.max": "MemoryMax",
    "memory.swap.max": "MemorySwapMax",
}


def _unified_properties(unified: dict[str, str], version: int) -> list[Property]:
    """The unified keys systemd has properties for; the rest go to the files only."""
    props: list[Property] = []
    for key, raw in unified.items():
        value = str(raw).strip()
        try:
            if key == "cpu.max":
                fields = value.split()
                quota = 0 if fields[0] == "max" else int(fields[0])
                period = int(fields[1]) if len(fields) > 1 else DEFAULT_CPU_QUOTA_PERIOD
                props += _cpu_quota(quota, period, version)
            elif key == "cpu.weight":
                props.append(("CPUWeight", ("t", int(value))))
            elif key in ("cpuset.cpus", "cpuset.mems") and version >= 244:
                name = "AllowedCPUs" if key == "cpuset.cpus" else "AllowedMemoryNodes"
                props.append((name, ("ay", range_to_bits(value))))
            elif key in _UNIFIED_MEMORY:
                num = UINT64_MAX if value == "max" else int(value)
                props.append((_UNIFIED_MEMORY[key], ("t", num)))
            elif key == "pids.max":
                props.append(("TasksMax", ("t", UINT64_MAX if value == "max" else int(value))))
        except (ValueError, IndexError):
            raise CgroupError(
                f"linux.resources.unified: {key!r} value {value!r} is invalid"
            ) from None
    return props


def device_properties(rules: list[dict[str, Any]]) -> list[Property]:
    """DevicePolicy/DeviceAllow for the rules, like runc's systemd device code.

    The rules are replayed (later rules win) into either "everything allowed"
    or an allow list; systemd has no deny lists, so a deny-list ruleset becomes
    strict deny-all there and our own eBPF filter (v2) or devices.allow/deny
    (v1), applied right after, is what holds.  Wildcard-major rules have no
    systemd syntax and are left to that same filter.
    """
    allow_all = False  # runc's emulator starts as an allow list with nothing in it
    allowed: dict[tuple[str, int | None, int | None], set[str]] = {}
    denied: dict[tuple[str, int | None, int | None], set[str]] = {}
    for rule in rules:
        dtype = rule.get("type") or "a"
        major, minor = rule.get("major"), rule.get("minor")
        major = None if major is None or major < 0 else major
        minor = None if minor is None or minor < 0 else minor
        access = set(rule.get("access") or "rwm")
        allow = bool(rule.get("allow"))
        if dtype == "a" and major is None and minor is None and access >= set("rwm"):
            allow_all = allow  # resets everything before it
            allowed.clear()
            denied.clear()
            continue
        for t in ("c", "b") if dtype == "a" else (dtype,):
            key = (t, major, minor)
            if allow_all:
                grow, shrink = (None, denied) if allow else (denied, None)
            else:
                grow, shrink = (allowed, None) if allow else (None, allowed)
            if grow is not None:
                grow.setdefault(key, set()).update(access)
            elif shrink is not None and key in shrink:
                shrink[key] -= access
                if not shrink[key]:
                    del shrink[key]
    if allow_all:
        if not denied:
            return [("DevicePolicy", ("s", "auto")), ("DeviceAllow", ("a(ss)", []))]
        # systemd has no deny lists: deny everything there (runc warns and does the same).
        return [("DevicePolicy", ("s", "strict")), ("DeviceAllow", ("a(ss)", []))]
    entries: list[tuple[str, str]] = []
    for (dtype, major, minor), access in allowed.items():
        group = "char-" if dtype == "c" else "block-"
        if major is None:
            if minor is not None:
                continue  # "c *:5": no systemd syntax (runc warns and skips it too)
            path = group + "*"
        elif minor is None:
            path = f"{group}{major}"  # systemd >= 240
        else:
            path = f"/dev/{'char' if dtype == 'c' else 'block'}/{major}:{minor}"
        entries.append((path, "".join(p for p in "rwm" if p in access)))
    return [("DevicePolicy", ("s", "strict")), ("DeviceAllow", ("a(ss)", entries))]


def annotation_properties(annotations: dict[str, str]) -> list[Property]:
    """``org.systemd.property.NAME`` annotations, as runc's specconv reads them.

    Values use busctl/GVariant text: "true", "uint64 100", "'text'", a bare
    integer (int32).  Names ending in "Sec" are converted to systemd's "USec"
    properties (seconds -> microseconds), as runc does.
    """
    props: list[Property] = []
    for key, raw in sorted(annotations.items()):
        if not key.startswith(ANNOTATION_PREFIX):
            continue
        name = key[len(ANNOTATION_PREFIX) :]
        if not name or not name[0].isupper() or not name.isalnum():
            raise CgroupError(f"annotation {key}: {name!r} is not a systemd property name")
        signature, value = _parse_variant(key, raw.strip())
        if name.endswith("Sec") and not name.endswith("USec"):
            if signature == "s" or isinstance(value, (bool, bytes)):
                raise CgroupError(f"annotation {key}: {raw!r} is not a number of seconds")
            name, signature, value = name[:-3] + "USec", "t", int(float(value) * 1_000_000)
        props.append((name, (signature, value)))
    return props


_VARIANT_TYPES = {"uint64": "t", "int64": "x", "uint32": "u", "int32": "i", "double": "d"}


def _parse_variant(key: str, text: str) -> tuple[str, Any]:
    if text in ("true", "false"):
        return "b", text == "true"
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return "s", text[1:-1]
    kind, _, number = text.partition(" ")
    try:
        if kind in _VARIANT_TYPES and number:
            sig = _VARIANT_TYPES[kind]
            return sig, float(number) if sig == "d" else int(number)
        if "." in text:
            return "d", float(text)
        return "i", int(text)
    except ValueError:
        raise CgroupError(
            f"annotation {key}: cannot parse {text!r} (use e.g. \"uint64 100\", true, 'text')"
        ) from None


# -- D-Bus -------------------------------------------------------------------------
class _Systemd:
    """A blocking connection to systemd's manager object on the system bus."""

    def __init__(self) -> None:
        import os  # jeepney imports it anyway

        from jeepney import DBusAddress
        from jeepney.io.blocking import open_dbus_connection

        address = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS") or DEFAULT_SYSTEM_BUS
        try:
            self._conn = open_dbus_connection(bus=address, auth_timeout=JOB_TIMEOUT)
        except (OSError, ValueError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            raise CgroupError(
                f"systemd cgroup driver: cannot connect to the D-Bus system bus at {address}: "
                f"{reason} (is dbus running?)"
            ) from None
        self._manager = DBusAddress(_SD_PATH, bus_name=_SD, interface=_SD_MANAGER)
        self._subscribed = False

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> _Systemd:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: str, signature: str = "", body: tuple = ()) -> tuple:
        from jeepney import DBusErrorResponse, new_method_call

        msg = new_method_call(self._manager, method, signature or None, body)
        try:
            reply = self._conn.send_and_get_reply(msg, timeout=JOB_TIMEOUT)
        except TimeoutError:
            raise CgroupError(f"systemd did not answer {method} in {JOB_TIMEOUT:.0f} s") from None
        if reply.header.message_type.name == "error":
            raise _dbus_error(DBusErrorResponse(reply))
        return reply.body

    def version(self) -> int:
        from jeepney import Properties

        try:
            reply = self._conn.send_and_get_reply(
                Properties(self._manager).get("Version"), timeout=JOB_TIMEOUT
            )
            text = str(reply.body[0][1]).lstrip('"v')
        except Exception:
            return -1
        digits = ""
        for ch in text:
            if not ch.isdigit():
                break
            digits += ch
        return int(digits) if digits else -1

    def run_job(self, method: str, signature: str, body: tuple) -> str:
        """Call a job-returning method and wait for its JobRemoved: its result."""
        from jeepney import MatchRule, message_bus
        from jeepney.io.blocking import Proxy

        rule = MatchRule(type="signal", interface=_SD_MANAGER, member="JobRemoved", path=_SD_PATH)
        with self._conn.filter(rule, bufsize=64) as queue:
            if not self._subscribed:
                Proxy(message_bus, self._conn).AddMatch(rule)
                self.call("Subscribe")
                self._subscribed = True
            (job,) = self.call(method, signature, body)
            deadline = time.monotonic() + JOB_TIMEOUT
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return "timeout"
                try:
                    signal = self._conn.recv_until_filtered(queue, timeout=left)
                except TimeoutError:
                    return "timeout"
                _job_id, job_path, _unit, result = signal.body
                if job_path == job:
                    return result


def _dbus_error(err: Any) -> CgroupError:
    text = err.data[0] if err.data and isinstance(err.data[0], str) else ""
    out = CgroupError(f"{err.name}: {text}" if text else err.name)
    out.dbus_name = err.name  # type: ignore[attr-defined]
    return out


# -- the manager ---------------------------------------------------------------------
class SystemdManager(Manager):
    """A transient scope over D-Bus, with the cgroupfs driver for the files."""

    driver = "systemd"
    made_by_apply = True  # the transient scope is started with the init's pid

    def __init__(
        self,
        unit: str,
        slice_name: str,
        description: str,
        inner: Manager,
        extra: list[Property] | None = None,
    ) -> None:
        self._unit = unit
        self._slice = slice_name
        self._description = description
        self._inner = inner
        self._extra = list(extra or [])
        self._v2 = inner.driver == "fs2"
        # Whether the unit is ours to stop: a create that failed to start it (the
        # name is taken by another container) must leave that unit alone.
        self._started = False

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> SystemdManager:
        from ocirt.cgroups import manager_from_record

        inner = manager_from_record(record["inner"])
        manager = cls(record["unit"], record.get("slice", ""), "", inner)
        manager._started = True  # recorded by a create that got past apply()
        return manager

    def to_record(self) -> dict[str, Any]:
        return {
            "driver": self.driver,
            "unit": self._unit,
            "slice": self._slice,
            "inner": self._inner.to_record(),
        }

    @property
    def unit(self) -> str:
        return self._unit

    def paths(self) -> dict[str, str]:
        return self._inner.paths()

    # -- lifecycle -----------------------------------------------------------------
    def create(self) -> None:
        """Nothing to make yet: systemd creates the scope with the init in it (apply)."""

    def apply(self, pid: int, *, cloned_into: bool = False, self_joined: bool = False) -> None:
        is_slice = self._unit.endswith(".slice")
        props: list[Property] = [("Description", ("s", self._description))]
        props.append(
            ("Wants", ("as", [self._slice])) if is_slice else ("Slice", ("s", self._slice))
        )
        if not is_slice:
            props.append(("PIDs", ("au", [pid])))
            props.append(("Delegate", ("b", True)))
        for accounting in ("MemoryAccounting", "CPUAccounting", "IOAccounting", "TasksAccounting"):
            props.append((accounting, ("b", True)))
        props.append(("DefaultDependencies", ("b", False)))
        props += self._extra
        with _Systemd() as sd:
            self._start_unit(sd, props)
            self._started = True
        # The scope exists with the init in it; the cgroupfs driver enables the
        # controllers below it (v2) and joins the hierarchies systemd left out (v1).
        self._inner.create()
        self._inner.apply(pid)

    def _start_unit(self, sd: _Systemd, props: list[Property]) -> None:
        body = (self._unit, "replace", props, [])
        for attempt in (1, 2):
            try:
                result = sd.run_job("StartTransientUnit", "ssa(sv)a(sa(sv))", body)
            except CgroupError as e:
                exists = getattr(e, "dbus_name", "") == "org.freedesktop.systemd1.UnitExists"
                if exists and attempt == 1:
                    # A failed leftover of the same name: let systemd drop it, retry once.
                    self._reset_failed(sd)
                    continue
                raise CgroupError(f'unable to start unit "{self._unit}": {e}') from None
            if result == "done":
                return
            self._reset_failed(sd)
            if result == "timeout":
                raise CgroupError(f"Timeout waiting for systemd to create {self._unit}")
            raise CgroupError(f"error creating systemd unit `{self._unit}`: got `{result}`")

    def _reset_failed(self, sd: _Systemd) -> None:
        try:
            sd.call("ResetFailedUnit", "s", (self._unit,))
        except CgroupError:
            pass  # not failed, or already gone

    def destroy(self) -> None:
        if not self._started:
            return  # nothing of ours exists: systemd never made the unit for us
        try:
            with _Systemd() as sd:
                try:
                    result = sd.run_job("StopUnit", "ss", (self._unit, "replace"))
                except CgroupError as e:
                    # An exited container's scope is gone already: systemd collects
                    # empty transient scopes by itself.
                    if getattr(e, "dbus_name", "") != "org.freedesktop.systemd1.NoSuchUnit":
                        raise CgroupError(f'unable to stop unit "{self._unit}": {e}') from None
                    result = "done"
                if result == "timeout":
                    raise CgroupError(f"Timed out while waiting for systemd to remove {self._unit}")
                self._reset_failed(sd)
        finally:
            self._inner.destroy()
            for path in self._inner.paths().values():
                try:
                    posix.rmdir(path)  # systemd removes it; a v1 hierarchy it skipped is ours
                except OSError:
                    pass

    def exists(self) -> bool:
        return self._inner.exists()

    def pids(self) -> list[int]:
        return self._inner.pids()

    def cgroup_fd(self) -> int:
        return -1  # the cgroup does not exist before the unit starts

    # -- resources -------------------------------------------------------------------
    def set(self, resources: dict[str, Any] | None, *, update: bool = False) -> None:
        r = resources or {}
        with _Systemd() as sd:
            props = resource_properties(r, v2=self._v2, version=sd.version())
            if props:
                try:
                    sd.call("SetUnitProperties", "sba(sv)", (self._unit, True, props))
                except CgroupError as e:
                    raise CgroupError(f"unable to set unit properties: {e}") from None
        self._inner.set(resources, update=update)

    # systemd removes the scope's cgroup as soon as its last process has gone,
    # at any moment: a cgroup that vanished is neither frozen nor to be thawed.
    def freeze(self) -> None:
        self._inner.freeze()

    def thaw(self) -> None:
        try:
            self._inner.thaw()
        except CgroupError:
            if self._inner.exists():
                raise

    def is_frozen(self) -> bool:
        try:
            return self._inner.is_frozen()
        except CgroupError:
            if self._inner.exists():
                raise
            return False

    def stats(self) -> dict[str, Any]:
        return self._inner.stats()

    def oom_count(self) -> int:
        return self._inner.oom_count()

    def oom_event_fd(self) -> int:
        return self._inner.oom_event_fd()

    def oom_event_is_eventfd(self) -> bool:
        return self._inner.oom_event_is_eventfd()


def new_manager(
    cgroups_path: str,
    container_id: str,
    *,
    rootless: bool,
    annotations: dict[str, str] | None = None,
) -> SystemdManager:
    # The config first (runc's specconv reads cgroupsPath before it looks for systemd).
    slice_name, prefix, name = parse_path(cgroups_path, container_id)
    slice_name = slice_name or "system.slice"
    unit = unit_name(prefix, name)
    path = expand_slice(slice_name) + "/" + unit
    extra = annotation_properties(annotations or {})
    if not is_running_systemd():
        raise CgroupError("systemd not running on this host, cannot use systemd cgroups manager")
    if rootless:
        raise CgroupError(
            "systemd cgroup driver: rootless containers (the user's systemd instance) are "
            "not supported; run without --systemd-cgroup"
        )
    if mode() == "v2":
        from ocirt.cgroups import v2

        inner: Manager = v2.V2Manager.for_path(path, rootless=False)
    else:
        from ocirt.cgroups import v1

        inner = v1.V1Manager.for_path(path, rootless=False, explicit=True)
    return SystemdManager(unit, slice_name, f"libcontainer container {name}", inner, extra)
