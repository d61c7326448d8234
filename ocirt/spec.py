"""One typed view of config.json.

Every module reads the spec through these classes instead of walking dicts:
a field's default lives in one place, and a typo is an AttributeError, not a
silent ``None``.  The view is built from an already-validated dict (see
``ocirt.validate``), so constructors trust types and only fill defaults.
Sections a later layer owns in full (``linux.resources``, ``linux.seccomp``)
stay raw dicts here and get their own typed view in that layer.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class _Record:
    """A small frozen-ish record: fields from ``_fields`` (name -> default).

    Not a dataclass: building a dataclass runs generated code at import, and
    the spec's dozen classes cost ~10 ms on every ``create`` (measured).
    A default that is a class (dict, User, Linux) is called for a fresh value.
    """

    __slots__ = ()
    _fields: dict[str, Any] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        names = list(self._fields)
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__} takes {len(names)} arguments")
        values = dict(zip(names, args, strict=False))
        for key, value in kwargs.items():
            if key not in self._fields or key in values:
                raise TypeError(f"{type(self).__name__}: bad argument {key!r}")
            values[key] = value
        for name, default in self._fields.items():
            if name in values:
                value = values[name]
            elif default is _REQUIRED:
                raise TypeError(f"{type(self).__name__} needs {name!r}")
            else:
                value = default() if isinstance(default, type) else default
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def replace(self, **changes: Any) -> _Record:
        """A copy with CHANGES applied (dataclasses.replace)."""
        values = {name: getattr(self, name) for name in self._fields}
        values.update(changes)
        return type(self)(**values)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and all(
            getattr(self, n) == getattr(other, n) for n in self._fields
        )

    def __hash__(self) -> int:
        return hash(tuple(repr(getattr(self, n)) for n in self._fields))

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._fields)
        return f"{type(self).__name__}({inner})"


_REQUIRED = object()

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


class User(_Record):
    __slots__ = (
        "uid",
        "gid",
        "umask",
        "additional_gids",
    )
    _fields = {"uid": 0, "gid": 0, "umask": None, "additional_gids": ()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> User:
        return cls(
            uid=d.get("uid", 0),
            gid=d.get("gid", 0),
            umask=d.get("umask"),
            additional_gids=tuple(d.get("additionalGids") or ()),
        )


class Capabilities(_Record):
    __slots__ = (
        "bounding",
        "effective",
        "inheritable",
        "permitted",
        "ambient",
    )
    _fields = {"bounding": (), "effective": (), "inheritable": (), "permitted": (), "ambient": ()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Capabilities:
        return cls(**{k: tuple(d.get(k) or ()) for k in cls._fields})


class Rlimit(_Record):
    __slots__ = (
        "type",
        "soft",
        "hard",
    )
    _fields = {"type": _REQUIRED, "soft": _REQUIRED, "hard": _REQUIRED}


class Process(_Record):
    __slots__ = (
        "args",
        "env",
        "cwd",
        "terminal",
        "console_size",
        "user",
        "capabilities",
        "rlimits",
        "no_new_privileges",
        "oom_score_adj",
        "apparmor_profile",
        "selinux_label",
        "scheduler",
        "io_priority",
        "exec_cpu_affinity",
    )
    _fields = {
        "args": _REQUIRED,
        "env": (),
        "cwd": "/",
        "terminal": False,
        "console_size": None,
        "user": User,
        "capabilities": None,
        "rlimits": (),
        "no_new_privileges": False,
        "oom_score_adj": None,
        "apparmor_profile": "",
        "selinux_label": "",
        "scheduler": None,
        "io_priority": None,
        "exec_cpu_affinity": None,
    }

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
            rlimits=tuple(Rlimit(r["type"], r["soft"], r["hard"]) for r in d.get("rlimits") or ()),
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


class Mount(_Record):
    __slots__ = (
        "destination",
        "type",
        "source",
        "options",
        "uid_mappings",
        "gid_mappings",
    )
    _fields = {
        "destination": _REQUIRED,
        "type": "",
        "source": "",
        "options": (),
        "uid_mappings": (),
        "gid_mappings": (),
    }

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


class Hook(_Record):
    __slots__ = (
        "path",
        "args",
        "env",
        "timeout",
    )
    _fields = {"path": _REQUIRED, "args": (), "env": (), "timeout": None}

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


class Namespace(_Record):
    __slots__ = (
        "type",
        "path",
    )
    _fields = {"type": _REQUIRED, "path": ""}


class IdMapping(_Record):
    __slots__ = (
        "container_id",
        "host_id",
        "size",
    )
    _fields = {"container_id": _REQUIRED, "host_id": _REQUIRED, "size": _REQUIRED}

    @classmethod
    def from_dict(cls, d: dict[str, int]) -> IdMapping:
        return cls(d["containerID"], d["hostID"], d["size"])


class Device(_Record):
    __slots__ = (
        "path",
        "type",
        "major",
        "minor",
        "file_mode",
        "uid",
        "gid",
    )
    _fields = {
        "path": _REQUIRED,
        "type": _REQUIRED,
        "major": 0,
        "minor": 0,
        "file_mode": None,
        "uid": None,
        "gid": None,
    }

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


class Linux(_Record):
    __slots__ = (
        "namespaces",
        "uid_mappings",
        "gid_mappings",
        "devices",
        "cgroups_path",
        "resources",
        "rootfs_propagation",
        "masked_paths",
        "readonly_paths",
        "sysctl",
        "seccomp",
        "mount_label",
        "personality",
        "time_offsets",
        "intel_rdt",
        "net_devices",
        "memory_policy",
    )
    _fields = {
        "namespaces": (),
        "uid_mappings": (),
        "gid_mappings": (),
        "devices": (),
        "cgroups_path": "",
        "resources": dict,
        "rootfs_propagation": "",
        "masked_paths": (),
        "readonly_paths": (),
        "sysctl": dict,
        "seccomp": None,
        "mount_label": "",
        "personality": None,
        "time_offsets": None,
        "intel_rdt": None,
        "net_devices": None,
        "memory_policy": None,
    }

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


class Spec(_Record):
    __slots__ = (
        "oci_version",
        "root_path",
        "root_readonly",
        "process",
        "hostname",
        "domainname",
        "mounts",
        "hooks",
        "annotations",
        "linux",
    )
    _fields = {
        "oci_version": _REQUIRED,
        "root_path": _REQUIRED,
        "root_readonly": _REQUIRED,
        "process": _REQUIRED,
        "hostname": "",
        "domainname": "",
        "mounts": (),
        "hooks": dict,
        "annotations": dict,
        "linux": Linux,
    }

    @classmethod
    def from_dict(cls, d: dict[str, Any], bundle: str) -> Spec:
        from ocirt.linux import pathnames  # not posixpath, which imports os

        root = d.get("root") or {}
        root_path = pathnames.join(bundle, root.get("path") or "rootfs")
        hooks = d.get("hooks") or {}
        return cls(
            oci_version=d.get("ociVersion", ""),
            root_path=pathnames.normpath(root_path),
            root_readonly=bool(root.get("readonly", False)),
            process=Process.from_dict(d["process"]) if d.get("process") else None,
            hostname=d.get("hostname") or "",
            domainname=d.get("domainname") or "",
            mounts=tuple(Mount.from_dict(m) for m in d.get("mounts") or ()),
            hooks={
                kind: tuple(Hook.from_dict(h) for h in hooks.get(kind) or ()) for kind in HOOK_KINDS
            },
            annotations=dict(d.get("annotations") or {}),
            linux=Linux.from_dict(d.get("linux") or {}),
        )
