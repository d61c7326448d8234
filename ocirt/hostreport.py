"""What this host can honour: ``ocirt check``'s findings.

Every probe is the one validation or the runtime already uses
(``ocirt.linux.hostcheck``, ``ocirt.linux.lsm``, ``ocirt.cgroups``, the
seccomp shim), so ``check`` and a refused config cannot disagree: each
finding says what follows for configs when the feature is missing.
"""

from __future__ import annotations

import os
import shutil

from ocirt.linux import hostcheck, lsm
from ocirt.linux.procfs import read_text


class Finding:
    """One line of the report. A plain class: see ocirt.cli.flags.Flag."""

    __slots__ = ("consequence", "detail", "name", "ok")

    def __init__(self, name: str, ok: bool, detail: str, consequence: str = "") -> None:
        self.name = name
        self.ok = ok
        self.detail = detail
        self.consequence = consequence  # what a config meets when the feature is missing

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "ok": self.ok,
            "detail": self.detail,
            "consequence": "" if self.ok else self.consequence,
        }


def report() -> list[Finding]:
    return [
        _cgroups(),
        _systemd(),
        _user_namespaces(),
        _id_helpers(),
        Finding(
            "idmapped mounts",
            hostcheck.idmapped_mounts_supported(),
            "mount_setattr(2)",
            "mounts with the idmap or ridmap option fail (Linux 5.12+ needed)",
        ),
        *_seccomp(),
        Finding(
            "time namespace",
            hostcheck.time_namespace_supported(),
            "/proc/self/ns/time",
            'configs with a {"type": "time"} namespace or linux.timeOffsets are refused',
        ),
        _overlayfs(),
        Finding(
            "AppArmor",
            lsm.apparmor_enabled(),
            "enabled" if lsm.apparmor_enabled() else "not enabled",
            "configs with process.apparmorProfile are refused",
        ),
        Finding(
            "SELinux",
            lsm.selinux_enabled(),
            "enabled" if lsm.selinux_enabled() else "disabled or not supported",
            "configs with process.selinuxLabel are refused",
        ),
        Finding(
            "NUMA",
            hostcheck.numa_supported(),
            "/sys/devices/system/node",
            "configs with linux.memoryPolicy are refused",
        ),
        _intel_rdt(),
        _criu(),
    ]


def _cgroups() -> Finding:
    from ocirt import cgroups

    mounts = cgroups.cgroup_mounts()
    mode = cgroups.mode(mounts)
    v1 = sorted(
        {opt for m in mounts if m.fs_type == "cgroup" for opt in m.super_options.split(",")}
        & _v1_controllers()
    )
    v2 = _v2_controllers(mode)
    parts = []
    if v1:
        parts.append("v1: " + ",".join(v1))
    if mode != "v1":
        parts.append("v2: " + (",".join(v2) or "no controllers"))
    return Finding(
        "cgroups",
        bool(mounts),
        f"{mode} ({'; '.join(parts)})" if mounts else "no cgroup file system mounted",
        "linux.resources cannot be applied; only configs without resources run",
    )


def _v1_controllers() -> set[str]:
    try:
        lines = read_text("/proc/cgroups").splitlines()[1:]
    except OSError:
        return set()
    return {fields[0] for fields in (line.split() for line in lines) if fields[-1:] == ["1"]}


def _v2_controllers(mode: str) -> list[str]:
    from ocirt import cgroups

    root = cgroups.CGROUP_ROOT if mode == "v2" else cgroups.HYBRID_UNIFIED
    try:
        return read_text(os.path.join(root, "cgroup.controllers")).split()
    except OSError:
        return []


def _systemd() -> Finding:
    from ocirt.cgroups import systemd

    running = systemd.is_running_systemd()
    return Finding(
        "systemd",
        running,
        "running (PID 1)" if running else f"not running (no {systemd.SYSTEMD_RUN_DIR})",
        "--systemd-cgroup is refused; the cgroupfs driver (the default) works",
    )


def _user_namespaces() -> Finding:
    present = os.path.exists("/proc/self/ns/user")
    try:
        limit = int(read_text("/proc/sys/user/max_user_namespaces"))
    except (OSError, ValueError):
        limit = 0 if not present else -1
    ok = present and limit != 0
    detail = "supported" if ok else "not supported" if not present else "max_user_namespaces is 0"
    if ok and limit > 0:
        detail += f" (max_user_namespaces {limit})"
    return Finding(
        "user namespaces",
        ok,
        detail,
        'configs with a {"type": "user"} namespace fail, and so does every rootless one',
    )


def _id_helpers() -> Finding:
    found = {name: shutil.which(name) for name in ("newuidmap", "newgidmap")}
    missing = [name for name, path in found.items() if not path]
    return Finding(
        "newuidmap/newgidmap",
        not missing,
        ", ".join(path for path in found.values() if path) or "not found",
        "rootless configs that map more than the caller's own uid and gid fail"
        " (Debian: the uidmap package)",
    )


def _seccomp() -> list[Finding]:
    from ocirt import build_info

    kernel = "Seccomp:" in read_text("/proc/self/status")
    version = build_info.libseccomp_version()
    findings = [
        Finding(
            "seccomp",
            kernel and version[:1].isdigit(),
            f"kernel filters {'yes' if kernel else 'no'}, libseccomp {version}",
            "configs with linux.seccomp fail",
        )
    ]
    notify = False
    if kernel and version[:1].isdigit():
        from ocirt._shim._ocirt_shim import lib
        from ocirt.linux import seccomp

        # The probe seccomp.supported_flags makes (`features`), for the notify flag.
        notify = bool(lib.ocirt_seccomp_flag_supported(seccomp.FLAG_NEW_LISTENER))
    findings.append(
        Finding(
            "seccomp notify",
            notify,
            "SECCOMP_FILTER_FLAG_NEW_LISTENER" + (" accepted" if notify else " refused"),
            "seccomp profiles with SCMP_ACT_NOTIFY fail (Linux 5.0+ needed)",
        )
    )
    return findings


def _overlayfs() -> Finding:
    try:
        known = "\toverlay\n" in read_text("/proc/filesystems")
    except OSError:
        known = False
    return Finding(
        "overlayfs",
        known,
        "in /proc/filesystems" if known else "not loaded (`modprobe overlay` may load it)",
        'mounts of type "overlay" fail',
    )


def _intel_rdt() -> Finding:
    mounted = hostcheck.resctrl_mounted()
    return Finding(
        "Intel RDT",
        False,
        f"resctrl {'mounted' if mounted else 'not mounted'} at {hostcheck.RESCTRL};"
        " not implemented by ocirt",
        "configs with linux.intelRdt are refused",
    )


def _criu() -> Finding:
    path = shutil.which("criu")
    return Finding(
        "CRIU",
        False,
        f"{path or 'criu not found'}; checkpoint/restore is not implemented by ocirt",
        "`ocirt checkpoint` and `ocirt restore` do not exist",
    )
