"""The default config.json that ``ocirt spec`` writes (runc's, for runtime-spec 1.3.0)."""

from __future__ import annotations

import os
from typing import Any

DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
MASKED_PATHS = [
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
]  # fmt: skip
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


def default_spec(rootless: bool = False, args: list[str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "ociVersion": "1.3.0",
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": args or ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm",
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": list(DEFAULT_CAPS),
                "effective": list(DEFAULT_CAPS),
                "permitted": list(DEFAULT_CAPS),
                "ambient": list(DEFAULT_CAPS),
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "runc",  # runc 1.1's `spec`, whose configs managers and users compare
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {
                "destination": "/dev",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
            },
            {
                "destination": "/dev/pts",
                "type": "devpts",
                "source": "devpts",
                "options": [
                    "nosuid",
                    "noexec",
                    "newinstance",
                    "ptmxmode=0666",
                    "mode=0620",
                    "gid=5",
                ],
            },
            {
                "destination": "/dev/shm",
                "type": "tmpfs",
                "source": "shm",
                "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
            },
            {
                "destination": "/dev/mqueue",
                "type": "mqueue",
                "source": "mqueue",
                "options": ["nosuid", "noexec", "nodev"],
            },
            {
                "destination": "/sys",
                "type": "sysfs",
                "source": "sysfs",
                "options": ["nosuid", "noexec", "nodev", "ro"],
            },
            {
                "destination": "/sys/fs/cgroup",
                "type": "cgroup",
                "source": "cgroup",
                "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
            },
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"},
                {"type": "network"},
                {"type": "ipc"},
                {"type": "uts"},
                {"type": "mount"},
            ],
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
        },
    }
    if rootless:
        _make_rootless(spec)
    return spec


def _make_rootless(spec: dict[str, Any]) -> None:
    """runc's ToRootless: own user namespace mapping us to root, host /sys bound."""
    linux = spec["linux"]
    linux["namespaces"] = [
        ns for ns in linux["namespaces"] if ns["type"] not in ("network", "user", "cgroup")
    ] + [{"type": "user"}]
    linux["uidMappings"] = [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
    linux["gidMappings"] = [{"containerID": 0, "hostID": os.getegid(), "size": 1}]
    linux.pop("resources", None)
    mounts = []
    for m in spec["mounts"]:
        if m["destination"] == "/sys":
            mounts.append(
                {
                    "destination": "/sys",
                    "type": "none",
                    "source": "/sys",
                    "options": ["rbind", "nosuid", "noexec", "nodev", "ro"],
                }
            )
        elif "options" in m:
            m = dict(m)
            m["options"] = [o for o in m["options"] if not o.startswith("gid=")]
            mounts.append(m)
        else:
            mounts.append(m)
    spec["mounts"] = mounts
