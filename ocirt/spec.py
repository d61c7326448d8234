"""One typed view of config.json.

Every module reads the spec through these classes instead of walking dicts:
a field's default lives in one place, and a typo is an AttributeError, not a
silent ``None``.  The view is built from an already-validated dict (see
``ocirt.validate``), so constructors trust types and only fill defaults.
Sections a later layer owns in full (``linux.resources``, ``linux.seccomp``)
stay raw dicts here and get their own typed view in that layer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# The namespace names of config.json and their /proc/PID/ns/ file names.
NS_PROC_NAMES = {
    "pid": "pid",
    "network": "net",
    "mount": "mnt",
    "ipc": "ipc",
    "uts": "uts",
    "user": "user",
    "cgroup": "cgroup",
    "time": "time",
}


@dataclass(frozen=True)
class User:
    uid: int = 0
    gid: int = 0
    umask: int | None = None
    additional_gids: tuple[int, ...] = ()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> User:
        return cls(
            uid=d.get("uid", 0),
            gid=d.get("gid", 0),
            umask=d.get("umask"),
            additional_gids=tuple(d.get("additionalGids") or ()),
        )


@dataclass(frozen=True)
class Capabilities:
    bounding: tuple[str, ...] = ()
    effective: tuple[str, ...] = ()
    inheritable: tuple[str, ...] = ()
    permitted: tuple[str, ...] = ()
    ambient: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Capabilities:
        return cls(**{k: tuple(d.get(k) or ()) for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Rlimit:
    type: str
    soft: int
    hard: int


@dataclass(frozen=True)
class Process:
    args: tuple[str, ...]
    env: tuple[str, ...] = ()
    cwd: str = "/"
    terminal: bool = False
    console_size: tuple[int, int] | None = None  # (height, width)
    user: User = field(default_factory=User)
    capabilities: Capabilities | None = None
    rlimits: tuple[Rlimit, ...] = ()
    no_new_privileges: bool = False
    oom_score_adj: int | None = None
    apparmor_profile: str = ""
    selinux_label: str = ""
    scheduler: dict[str, Any] | None = None
    io_priority: dict[str, Any] | None = None
    exec_cpu_affinity: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Process:
        caps = d.get("capabilities")
        size = d.get("consoleSize")
        return cls(
            args=tuple(d.get("args") or ()),
            env=tuple(d.get("env") or ()),
            cwd=d.get("cwd") or "/",
            terminal=bool(d.get("terminal", False)),
            console_size=(size.get("height", 0), size.get("width", 0)) if size else None,
            user=User.from_dict(d.get("user") or {}),
            capabilities=Capabilities.from_dict(caps) if caps is not None else None,
            rlimits=tuple(
                Rlimit(r["type"], r["soft"], r["hard"]) for r in d.get("rlimits") or ()
            ),
            no_new_privileges=bool(d.get("noNewPrivileges", False)),
            oom_score_adj=d.get("oomScoreAdj"),
            apparmor_profile=d.get("apparmorProfile", ""),
            selinux_label=d.get("selinuxLabel", ""),
            scheduler=d.get("scheduler"),
            io_priority=d.get("ioPriority"),
            exec_cpu_affinity=d.get("execCPUAffinity"),
        )

    def env_value(self, name: str, default: str = "") -> str:
        prefix = name + "="
        for entry in reversed(self.env):
            if entry.startswith(prefix):
                return entry[len(prefix) :]
        return default


@dataclass(frozen=True)
class Mount:
    destination: str
    type: str = ""
    source: str = ""
    options: tuple[str, ...] = ()
    uid_mappings: tuple[dict[str, int], ...] = ()
    gid_mappings: tuple[dict[str, int], ...] = ()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Mount:
        return cls(
            destination=d["destination"],
            type=d.get("type") or "",
            source=d.get("source") or "",
            options=tuple(d.get("options") or ()),
            uid_mappings=tuple(d.get("uidMappings") or ()),
            gid_mappings=tuple(d.get("gidMappings") or ()),
        )

    @property
    def is_bind(self) -> bool:
        return self.type == "bind" or "bind" in self.options or "rbind" in self.options


@dataclass(frozen=True)
class Hook:
    path: str
    args: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    timeout: int | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Hook:
        return cls(
            path=d["path"],
            args=tuple(d.get("args") or ()),
            env=tuple(d.get("env") or ()),
            timeout=d.get("timeout"),
        )


HOOK_KINDS = (
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
)


@dataclass(frozen=True)
class Namespace:
    type: str
    path: str = ""


@dataclass(frozen=True)
class IdMapping:
    container_id: int
    host_id: int
    size: int

    @classmethod
    def from_dict(cls, d: dict[str, int]) -> IdMapping:
        return cls(d["containerID"], d["hostID"], d["size"])


@dataclass(frozen=True)
class Device:
    path: str
    type: str
    major: int = 0
    minor: int = 0
    file_mode: int | None = None
    uid: int | None = None
    gid: int | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Device:
        return cls(
            path=d["path"],
            type=d["type"],
            major=d.get("major", 0),
            minor=d.get("minor", 0),
            file_mode=d.get("fileMode"),
            uid=d.get("uid"),
            gid=d.get("gid"),
        )


@dataclass(frozen=True)
class Linux:
    namespaces: tuple[Namespace, ...] = ()
    uid_mappings: tuple[IdMapping, ...] = ()
    gid_mappings: tuple[IdMapping, ...] = ()
    devices: tuple[Device, ...] = ()
    cgroups_path: str = ""
    resources: dict[str, Any] = field(default_factory=dict)
    rootfs_propagation: str = ""
    masked_paths: tuple[str, ...] = ()
    readonly_paths: tuple[str, ...] = ()
    sysctl: dict[str, str] = field(default_factory=dict)
    seccomp: dict[str, Any] | None = None
    mount_label: str = ""
    personality: dict[str, Any] | None = None
    time_offsets: dict[str, Any] | None = None
    intel_rdt: dict[str, Any] | None = None
    net_devices: dict[str, Any] | None = None
    memory_policy: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Linux:
        return cls(
            namespaces=tuple(
                Namespace(n["type"], n.get("path") or "") for n in d.get("namespaces") or ()
            ),
            uid_mappings=tuple(IdMapping.from_dict(m) for m in d.get("uidMappings") or ()),
            gid_mappings=tuple(IdMapping.from_dict(m) for m in d.get("gidMappings") or ()),
            devices=tuple(Device.from_dict(x) for x in d.get("devices") or ()),
            cgroups_path=d.get("cgroupsPath") or "",
            resources=d.get("resources") or {},
            rootfs_propagation=d.get("rootfsPropagation") or "",
            masked_paths=tuple(d.get("maskedPaths") or ()),
            readonly_paths=tuple(d.get("readonlyPaths") or ()),
            sysctl=dict(d.get("sysctl") or {}),
            seccomp=d.get("seccomp"),
            mount_label=d.get("mountLabel") or "",
            personality=d.get("personality"),
            time_offsets=d.get("timeOffsets"),
            intel_rdt=d.get("intelRdt"),
            net_devices=d.get("netDevices"),
            memory_policy=d.get("memoryPolicy"),
        )

    def namespace(self, ns_type: str) -> Namespace | None:
        for ns in self.namespaces:
            if ns.type == ns_type:
                return ns
        return None

    def has_new_namespace(self, ns_type: str) -> bool:
        ns = self.namespace(ns_type)
        return ns is not None and not ns.path


@dataclass(frozen=True)
class Spec:
    oci_version: str
    root_path: str  # absolute
    root_readonly: bool
    process: Process | None
    hostname: str = ""
    domainname: str = ""
    mounts: tuple[Mount, ...] = ()
    hooks: dict[str, tuple[Hook, ...]] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    linux: Linux = field(default_factory=Linux)

    @classmethod
    def from_dict(cls, d: dict[str, Any], bundle: str) -> Spec:
        root = d.get("root") or {}
        root_path = os.path.join(bundle, root.get("path") or "rootfs")
        hooks = d.get("hooks") or {}
        return cls(
            oci_version=d.get("ociVersion", ""),
            root_path=os.path.normpath(root_path),
            root_readonly=bool(root.get("readonly", False)),
            process=Process.from_dict(d["process"]) if d.get("process") else None,
            hostname=d.get("hostname") or "",
            domainname=d.get("domainname") or "",
            mounts=tuple(Mount.from_dict(m) for m in d.get("mounts") or ()),
            hooks={
                kind: tuple(Hook.from_dict(h) for h in hooks.get(kind) or ())
                for kind in HOOK_KINDS
            },
            annotations=dict(d.get("annotations") or {}),
            linux=Linux.from_dict(d.get("linux") or {}),
        )
