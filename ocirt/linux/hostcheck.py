"""Semantic checks of the Linux fields the schema cannot judge: host support.

Called from ``ocirt.validate._semantic_checks`` on every ``create``, before
anything exists: a config asking for what this host cannot do (an LSM it
does not run, a CPU it does not have, a time namespace on a kernel without
one) fails here with the field's JSON path and the reason, so nothing is
left behind.  Each check is cheap (a stat or a small /sys read) and only
runs when its field is present.
"""

from __future__ import annotations

import posix  # not os (~1.2 ms of imports): ocirt.linux.pathnames has os.path's few uses

from ocirt.errors import ConfigError
from ocirt.linux import mountinfo, pathnames

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

TIME_CLOCKS = ("monotonic", "boottime")
RESCTRL = "/sys/fs/resctrl"


def check(config: dict[str, Any], filename: str) -> None:
    linux = config.get("linux") or {}
    process = config.get("process") or {}
    kinds = {ns.get("type"): ns for ns in linux.get("namespaces") or []}
    _check_lsm(process, filename)
    _check_process_scheduling(process, filename)
    _check_personality(linux, filename)
    _check_memory_policy(linux, filename)
    _check_time(linux, kinds, filename)
    _check_intel_rdt(linux, filename)
    _check_net_devices(linux, kinds, filename)
    _check_devices(linux, filename)
    _check_mount_extensions(config.get("mounts") or [], kinds, linux, filename)
    _check_rootless(kinds, filename)


# Each check imports the module it needs only when its field is present:
# create runs them all, and most configs use none of these fields.
def _check_lsm(process: dict[str, Any], filename: str) -> None:
    if not process.get("apparmorProfile") and not process.get("selinuxLabel"):
        return
    from ocirt.linux import lsm

    if process.get("apparmorProfile") and not lsm.apparmor_enabled():
        raise ConfigError(
            filename,
            "process.apparmorProfile",
            "an AppArmor profile is specified in config, but AppArmor is not enabled on this host",
            "remove the field, or run on a host with AppArmor",
        )
    if process.get("selinuxLabel") and not lsm.selinux_enabled():
        raise ConfigError(
            filename,
            "process.selinuxLabel",
            "selinux label is specified in config, but selinux is disabled or not supported",
            "remove the field, or run on a host with SELinux",
        )


def _check_process_scheduling(process: dict[str, Any], filename: str) -> None:
    if not process.get("scheduler") and not process.get("execCPUAffinity"):
        return
    from ocirt.linux import scheduling

    scheduler = process.get("scheduler")
    if scheduler:
        problem = scheduling.check_scheduler(scheduler)
        if problem:
            raise ConfigError(filename, "process.scheduler", problem)
    for which, text in (process.get("execCPUAffinity") or {}).items():
        problem = scheduling.check_cpu_list(text or "")
        if problem:
            raise ConfigError(filename, f"process.execCPUAffinity.{which}", problem)


def _check_personality(linux: dict[str, Any], filename: str) -> None:
    value = linux.get("personality")
    if not value:
        return
    from ocirt.linux import personality

    unknown = personality.unknown_flags(value)
    if unknown:
        raise ConfigError(
            filename,
            "linux.personality.flags",
            f"unknown personality flag(s) {unknown}",
            f"use personality(2) names: {', '.join(sorted(personality.FLAGS))}",
        )


def _check_memory_policy(linux: dict[str, Any], filename: str) -> None:
    policy = linux.get("memoryPolicy")
    if not policy:
        return
    from ocirt.linux import scheduling

    problem = scheduling.check_memory_policy(policy)
    if problem:
        raise ConfigError(filename, "linux.memoryPolicy", problem)
    if not numa_supported():
        raise ConfigError(
            filename, "linux.memoryPolicy", "this kernel has no NUMA support (CONFIG_NUMA)"
        )


def _check_time(linux: dict[str, Any], kinds: dict[str, Any], filename: str) -> None:
    offsets = linux.get("timeOffsets")
    if "time" in kinds and not time_namespace_supported():
        raise ConfigError(
            filename,
            "linux.namespaces",
            "this kernel has no time namespaces (Linux 5.6+ with CONFIG_TIME_NS)",
        )
    if not offsets:
        return
    time_ns = kinds.get("time")
    if time_ns is None or time_ns.get("path"):
        raise ConfigError(
            filename,
            "linux.timeOffsets",
            "time offsets need a new time namespace"
            + (" (a joined one has its clocks set already)" if time_ns else ""),
            'add {"type": "time"} without a path to linux.namespaces',
        )
    for clock in offsets:
        if clock not in TIME_CLOCKS:
            raise ConfigError(
                filename,
                f"linux.timeOffsets.{clock}",
                f"a time namespace offsets only {' and '.join(TIME_CLOCKS)}",
            )


def _check_intel_rdt(linux: dict[str, Any], filename: str) -> None:
    if "intelRdt" not in linux:
        return
    if not resctrl_mounted():
        raise ConfigError(
            filename,
            "linux.intelRdt",
            "Intel RDT is requested, but this host has no resctrl filesystem mounted"
            f" at {RESCTRL} (no RDT hardware, or the kernel lacks CONFIG_X86_CPU_RESCTRL)",
            "remove linux.intelRdt",
        )
    raise ConfigError(
        filename, "linux.intelRdt", "ocirt does not implement Intel RDT yet", "remove the field"
    )


# -- what the host has: these checks' probes, also `ocirt check`'s (ocirt.hostreport) --
def resctrl_mounted() -> bool:
    try:
        return any(m.fs_type == "resctrl" for m in mountinfo.read())
    except OSError:
        return False


def time_namespace_supported() -> bool:
    return pathnames.exists("/proc/self/ns/time")


def numa_supported() -> bool:
    return pathnames.exists("/sys/devices/system/node")


def idmapped_mounts_supported() -> bool:
    """mount_setattr(2) exists (Linux 5.12+): EBADF for a bad fd, not ENOSYS."""
    import errno

    from ocirt.linux import syscalls as sc

    try:
        sc.mount_setattr(-1, "", sc.AT_EMPTY_PATH, 0, 0)
    except OSError as e:
        return e.errno != errno.ENOSYS
    return True


def _check_net_devices(linux: dict[str, Any], kinds: dict[str, Any], filename: str) -> None:
    devices = linux.get("netDevices")
    if not devices:
        return
    from ocirt.linux import netdevices

    if "network" not in kinds:
        raise ConfigError(
            filename,
            "linux.netDevices",
            "unable to move network devices without a NET namespace",
            'add {"type": "network"} to linux.namespaces',
        )
    if posix.geteuid() != 0:
        raise ConfigError(filename, "linux.netDevices", "moving host network devices needs root")
    seen: dict[str, str] = {}
    for host_name, settings in devices.items():
        where = f'linux.netDevices["{host_name}"]'
        new_name = netdevices.container_name(host_name, settings or {})
        for name, field in ((host_name, where), (new_name, f"{where}.name")):
            problem = netdevices.name_problem(name)
            if problem:
                raise ConfigError(filename, field, f"invalid interface name: {problem}")
        if not netdevices.host_has(host_name):
            raise ConfigError(filename, where, f"the host has no network interface {host_name}")
        if new_name in seen:
            raise ConfigError(
                filename, f"{where}.name", f"{new_name} is also the name for {seen[new_name]}"
            )
        seen[new_name] = host_name


def _check_devices(linux: dict[str, Any], filename: str) -> None:
    for i, device in enumerate(linux.get("devices") or []):
        path = device.get("path", "")
        where = f"linux.devices[{i}]"
        if not path.startswith("/"):
            raise ConfigError(
                filename, f"{where}.path", f"{path!r} is not an absolute path", "start it with /"
            )
        if pathnames.normpath(path) in ("/", "//"):
            raise ConfigError(filename, f"{where}.path", f"{path!r} names the root directory")
        if device.get("type") != "p" and ("major" not in device or "minor" not in device):
            raise ConfigError(
                filename, where, f"a {device.get('type')!r} device needs major and minor numbers"
            )


def _check_mount_extensions(
    mounts: list[dict[str, Any]], kinds: dict[str, Any], linux: dict[str, Any], filename: str
) -> None:
    for i, mount in enumerate(mounts):
        options = set(mount.get("options") or [])
        where = f"mounts[{i}]"
        has_maps = bool(mount.get("uidMappings") or mount.get("gidMappings"))
        idmapped = bool({"idmap", "ridmap"} & options)
        if has_maps and not idmapped:
            raise ConfigError(
                filename,
                f"{where}.uidMappings",
                "mount mappings need the idmap or ridmap option (the spec requires one)",
                'add "idmap" (or "ridmap" for the whole tree) to the options',
            )
        if idmapped:
            _check_idmapped(mount, has_maps, linux, filename, where)
        if "tmpcopyup" in options and mount.get("type") != "tmpfs":
            raise ConfigError(
                filename,
                f"{where}.options",
                f"tmpcopyup needs a tmpfs mount, not {mount.get('type') or 'a bind'!r}",
            )


def _check_idmapped(
    mount: dict[str, Any], has_maps: bool, linux: dict[str, Any], filename: str, where: str
) -> None:
    options = mount.get("options") or []
    is_bind = mount.get("type") == "bind" or "bind" in options or "rbind" in options
    if not is_bind:
        raise ConfigError(
            filename,
            f"{where}.options",
            "idmapped mounts are supported for bind mounts only",
            'use "type": "bind" with the idmap option',
        )
    if not has_maps and not (linux.get("uidMappings") and linux.get("gidMappings")):
        raise ConfigError(
            filename,
            f"{where}.options",
            "idmap without uidMappings/gidMappings takes the container's user namespace"
            " mappings, and there are none",
            "give the mount its own uidMappings and gidMappings",
        )
    if bool(mount.get("uidMappings")) != bool(mount.get("gidMappings")):
        raise ConfigError(
            filename, where, "an idmapped mount needs both uidMappings and gidMappings"
        )
    if posix.geteuid() != 0:
        raise ConfigError(
            filename,
            f"{where}.options",
            "idmapped mounts of host directories need root (CAP_SYS_ADMIN in the"
            " initial user namespace)",
        )


def _check_rootless(kinds: dict[str, Any], filename: str) -> None:
    if posix.geteuid() != 0 and "user" not in kinds:
        raise ConfigError(
            filename,
            "linux.namespaces",
            "rootless container requires user namespaces",
            'add {"type": "user"} with uidMappings/gidMappings (`ocirt spec --rootless`)',
        )
