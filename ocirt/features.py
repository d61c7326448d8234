"""The runtime-spec ``features`` document: what this build and host support.

Truthful by construction: each entry is derived from the code that
implements it (the mount option table, the capability table) or from the
host (cgroup hierarchies, LSMs), not written by hand.
"""

from __future__ import annotations

import os

from ocirt import build_info
from ocirt.linux import capabilities, hostcheck, lsm, mountinfo, mountopts, scheduling
from ocirt.spec import HOOK_KINDS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

OCI_VERSION_MIN = "1.0.0"
OCI_VERSION_MAX = "1.3.0"
NAMESPACES = ["cgroup", "ipc", "mount", "network", "pid", "user", "uts", "time"]


def _host_cgroups() -> tuple[bool, bool]:
    """(v1, v2): which hierarchies this host has mounted."""
    try:
        kinds = {m.fs_type for m in mountinfo.read()}
    except OSError:
        return False, False
    return "cgroup" in kinds, "cgroup2" in kinds


def features() -> dict[str, Any]:
    options = sorted(
        {*mountopts.FLAGS, *mountopts.PROPAGATION, *mountopts.RECURSIVE_ATTRS}
        | mountopts.EXTENSIONS
    )
    top = capabilities.last_cap()
    caps = [name for number, name in enumerate(capabilities.CAP_NAMES) if number <= top]
    v1, v2 = _host_cgroups()
    return {
        "ociVersionMin": OCI_VERSION_MIN,
        "ociVersionMax": OCI_VERSION_MAX,
        "hooks": list(HOOK_KINDS),
        "mountOptions": options,
        "linux": {
            "namespaces": [ns for ns in NAMESPACES if os.path.exists(f"/proc/self/ns/{_proc(ns)}")],
            "capabilities": caps,
            "cgroup": {"v1": v1, "v2": v2, "systemd": True, "systemdUser": False, "rdma": v2},
            "seccomp": _seccomp(),
            "apparmor": {"enabled": lsm.apparmor_enabled()},
            "selinux": {"enabled": lsm.selinux_enabled()},
            "intelRdt": {"enabled": False},  # not implemented: create refuses linux.intelRdt
            "mountExtensions": {"idmap": {"enabled": hostcheck.idmapped_mounts_supported()}},
            "netDevices": {"enabled": True},
            "memoryPolicy": {
                "modes": sorted(scheduling.MPOL_MODES),
                "flags": sorted(scheduling.MPOL_FLAGS),
            },
        },
        "annotations": {"io.github.ocirt.stage2": "memfd", **build_info.annotations()},
    }


def _seccomp() -> dict[str, Any]:
    """What ocirt.linux.seccomp compiles; archs libseccomp knows, flags the kernel takes."""
    from ocirt.linux import seccomp

    return {
        "enabled": True,
        "actions": sorted(seccomp.ACTIONS),
        "operators": sorted(seccomp.OPERATORS),
        "archs": sorted(seccomp.supported_arches()),
        "knownFlags": sorted(seccomp.FLAGS),
        "supportedFlags": sorted(seccomp.supported_flags()),
    }


def _proc(ns: str) -> str:
    return {"network": "net", "mount": "mnt"}.get(ns, ns)
