"""Tests of ocirt.validate: schema layer, semantic checks, cache, import cost.

Bundles are real directories: the rootfs holds a copy of the static busybox
with a few applet symlinks, so program lookups hit a real filesystem.
"""

from __future__ import annotations

import copy
import errno
import glob
import hashlib
import json
import logging
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from ocirt import validate  # noqa: E402
from ocirt.errors import ConfigError  # noqa: E402

REFERENCE_CONFIGS = Path("/work/shared/reference/configs")
BUSYBOX = shutil.which("busybox") or "/bin/busybox"
APPLETS = ("sh", "true", "sleep", "ls", "cat")


# --------------------------------------------------------------------------
# fixtures and helpers


def make_rootfs(rootfs: Path) -> None:
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
    for applet in APPLETS:
        (rootfs / "bin" / applet).symlink_to("busybox")
    for d in ("proc", "dev", "sys", "tmp", "etc", "usr/bin"):
        (rootfs / d).mkdir(parents=True, exist_ok=True)


def minimal_config() -> dict[str, Any]:
    return {
        "ociVersion": "1.3.0",
        "root": {"path": "rootfs"},
        "process": {
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/bin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_KILL", "CAP_CHOWN"],
                "effective": ["CAP_KILL", "CAP_CHOWN"],
                "permitted": ["CAP_KILL", "CAP_CHOWN"],
                "inheritable": ["CAP_KILL", "CAP_CHOWN"],
                "ambient": ["CAP_KILL", "CAP_CHOWN"],
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024}],
        },
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]},
        ],
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "network"}],
        },
    }


@pytest.fixture(scope="session")
def rootfs_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rootfs-template") / "rootfs"
    make_rootfs(root)
    return root


@pytest.fixture
def bundle(tmp_path: Path, rootfs_template: Path) -> Path:
    shutil.copytree(rootfs_template, tmp_path / "rootfs", symlinks=True)
    write_config(tmp_path, minimal_config())
    return tmp_path


def write_config(bundle: Path, config: Any) -> bytes:
    raw = json.dumps(config, indent=2).encode()
    (bundle / "config.json").write_bytes(raw)
    return raw


def check(bundle: Path, config: dict[str, Any] | None = None, **kw: Any) -> None:
    if config is not None:
        write_config(bundle, config)
    cfg, raw = validate.load_config(str(bundle))
    validate.validate_config(cfg, raw, bundle=str(bundle), **kw)


def error_of(bundle: Path, config: dict[str, Any], **kw: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        check(bundle, config, **kw)
    return info.value


# --------------------------------------------------------------------------
# load_config


def test_minimal_config_is_valid(bundle: Path) -> None:
    check(bundle)


def test_missing_config_names_full_path_and_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        validate.load_config(str(tmp_path))
    msg = str(info.value)
    assert msg.startswith("config.json: JSON specification file ")
    assert f"{tmp_path}/config.json not found" in msg
    assert "ocirt spec" in msg


def test_bad_json_reports_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{\n  "ociVersion": "1.3.0",\n  "root": {"path": }\n}\n')
    with pytest.raises(ConfigError) as info:
        validate.load_config(str(tmp_path))
    assert str(info.value).startswith("config.json: invalid JSON at line 3:20: Expecting value")


def test_top_level_must_be_object(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(ConfigError) as info:
        validate.load_config(str(tmp_path))
    assert str(info.value) == "config.json: the top level must be a JSON object, not an array"


def test_load_config_returns_raw_bytes(bundle: Path) -> None:
    cfg, raw = validate.load_config(str(bundle))
    assert raw == (bundle / "config.json").read_bytes()
    assert cfg["ociVersion"] == "1.3.0"


# --------------------------------------------------------------------------
# schema layer: paths and messages


def test_schema_error_uid_type(bundle: Path) -> None:
    cfg = minimal_config()
    cfg["process"]["user"]["uid"] = "x"
    err = error_of(bundle, cfg)
    assert str(err) == "config.json: process.user.uid: 'x' is not of type 'integer'"
    assert err.json_path == "process.user.uid"


def test_schema_error_quoted_number_gets_fix(bundle: Path) -> None:
    cfg = minimal_config()
    cfg["process"]["user"]["gid"] = "0"
    err = error_of(bundle, cfg)
    assert err.json_path == "process.user.gid"
    assert "without quotes" in err.fix


def test_schema_error_mount_index_in_path(bundle: Path) -> None:
    cfg = minimal_config()
    cfg["mounts"].append({"type": "tmpfs", "source": "tmpfs"})
    err = error_of(bundle, cfg)
    assert str(err).startswith("config.json: mounts[2]: 'destination' is a required property")
    assert err.fix == 'add "destination"'


def test_schema_error_mount_destination_type(bundle: Path) -> None:
    cfg = minimal_config()
    cfg["mounts"][1]["destination"] = 5
    err = error_of(bundle, cfg)
    assert str(err) == "config.json: mounts[1].destination: 5 is not of type 'string'"


def test_schema_mount_idmappings_come_in_pairs(bundle: Path) -> None:
    cfg = minimal_config()
    cfg["mounts"][1]["uidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    err = error_of(bundle, cfg)
    assert err.json_path == "mounts[1]"
    assert "'gidMappings' is a dependency of 'uidMappings'" in err.problem


def test_schema_error_missing_oci_version(bundle: Path) -> None:
    cfg = minimal_config()
    del cfg["ociVersion"]
    err = error_of(bundle, cfg)
    assert str(err) == "config.json: 'ociVersion' is a required property (add \"ociVersion\")"


def test_schema_error_oci_version_garbage(bundle: Path) -> None:
    cfg = minimal_config()
    cfg["ociVersion"] = "latest"
    err = error_of(bundle, cfg)
    assert err.json_path == "ociVersion"
    assert err.problem == '"latest" is not a SemVer version'


@pytest.mark.parametrize(
    ("mutate", "path", "fragment"),
    [
        (
            lambda c: c["linux"].__setitem__("seccomp", {"defaultAction": "SCMP_ACT_NOPE"}),
            "linux.seccomp.defaultAction",
            "'SCMP_ACT_NOPE' is not one of",
        ),
        (
            lambda c: c["linux"].__setitem__(
                "seccomp",
                {
                    "defaultAction": "SCMP_ACT_ERRNO",
                    "syscalls": [
                        {
                            "names": ["chmod"],
                            "action": "SCMP_ACT_ALLOW",
                            "args": [{"index": 1, "value": 2, "op": "SCMP_CMP_MASKED"}],
                        }
                    ],
                },
            ),
            "linux.seccomp.syscalls[0].args[0].op",
            "'SCMP_CMP_MASKED' is not one of",
        ),
        (
            lambda c: c["linux"].__setitem__(
                "seccomp",
                {
                    "defaultAction": "SCMP_ACT_ERRNO",
                    "syscalls": [{"names": [], "action": "SCMP_ACT_ALLOW"}],
                },
            ),
            "linux.seccomp.syscalls[0].names",
            "should be non-empty",
        ),
        (
            lambda c: c["linux"].__setitem__(
                "seccomp", {"defaultAction": "SCMP_ACT_LOG", "architectures": ["SCMP_ARCH_Z80"]}
            ),
            "linux.seccomp.architectures[0]",
            "'SCMP_ARCH_Z80' is not one of",
        ),
        (
            lambda c: c["linux"].__setitem__(
                "seccomp", {"defaultAction": "SCMP_ACT_LOG", "flags": ["SECCOMP_FILTER_FLAG_NOPE"]}
            ),
            "linux.seccomp.flags[0]",
            "is not one of",
        ),
        (
            lambda c: c["linux"].__setitem__(
                "seccomp", {"defaultAction": "SCMP_ACT_NOTIFY", "listenerMetadata": "x"}
            ),
            "linux.seccomp",
            "'listenerPath' is a dependency of 'listenerMetadata'",
        ),
        (
            lambda c: c["linux"]["namespaces"].append({"type": "netns"}),
            "linux.namespaces[3].type",
            "'netns' is not one of",
        ),
        (
            lambda c: c["linux"].__setitem__(
                "uidMappings", [{"containerID": 0, "hostID": 0, "size": 2**32}]
            ),
            "linux.uidMappings[0].size",
            "is greater than the maximum of 4294967295",
        ),
        (
            lambda c: c["linux"].__setitem__(
                "gidMappings", [{"containerID": 0, "hostID": -1, "size": 1}]
            ),
            "linux.gidMappings[0].hostID",
            "-1 is less than the minimum of 0",
        ),
        (
            lambda c: c.__setitem__("hooks", {"poststart": [{"path": "/bin/true", "timeout": 0}]}),
            "hooks.poststart[0].timeout",
            "0 is less than the minimum of 1",
        ),
        (
            lambda c: c.__setitem__("hooks", {"createRuntime": [{"path": "bin/true"}]}),
            "hooks.createRuntime[0].path",
            '"bin/true" is not an absolute path',
        ),
        (
            lambda c: c.__setitem__("hooks", {"startContainer": [{"args": ["x"]}]}),
            "hooks.startContainer[0]",
            "'path' is a required property",
        ),
        (
            lambda c: c["linux"].__setitem__("sysctl", {"net.ipv4.ip_forward": 1}),
            'linux.sysctl["net.ipv4.ip_forward"]',
            "1 is not of type 'string'",
        ),
        (lambda c: c.__setitem__("annotations", {"": "x"}), "annotations", "should be non-empty"),
        (
            lambda c: c["process"].__setitem__("scheduler", {"policy": "SCHED_FAST"}),
            "process.scheduler.policy",
            "'SCHED_FAST' is not one of",
        ),
        (
            lambda c: c["process"].__setitem__(
                "scheduler", {"policy": "SCHED_RR", "flags": ["SCHED_FLAG_X"]}
            ),
            "process.scheduler.flags[0]",
            "'SCHED_FLAG_X' is not one of",
        ),
        (
            lambda c: c["process"].__setitem__(
                "scheduler", {"policy": "SCHED_DEADLINE", "runtime": -5}
            ),
            "process.scheduler.runtime",
            "-5 is less than the minimum of 0",
        ),
        (
            lambda c: c["process"].__setitem__(
                "ioPriority", {"class": "IOPRIO_CLASS_NONE", "priority": 1}
            ),
            "process.ioPriority.class",
            "'IOPRIO_CLASS_NONE' is not one of",
        ),
        (
            lambda c: c["process"].__setitem__(
                "ioPriority", {"class": "IOPRIO_CLASS_BE", "priority": 8}
            ),
            "process.ioPriority.priority",
            "8 is greater than the maximum of 7",
        ),
        (
            lambda c: c["process"].__setitem__("execCPUAffinity", {"initial": "0-3,x"}),
            "process.execCPUAffinity.initial",
            "does not match",
        ),
        (
            lambda c: c["process"].__setitem__("consoleSize", {"height": 25}),
            "process.consoleSize",
            "'width' is a required property",
        ),
        (
            lambda c: c["process"]["user"].__setitem__("umask", -1),
            "process.user.umask",
            "-1 is less than the minimum of 0",
        ),
        (
            lambda c: c["process"]["user"].__setitem__("additionalGids", ["wheel"]),
            "process.user.additionalGids[0]",
            "'wheel' is not of type 'integer'",
        ),
        (lambda c: c["process"]["user"].pop("gid"), "process.user", "'gid' is a required property"),
        (
            lambda c: c["process"]["rlimits"][0].pop("hard"),
            "process.rlimits[0]",
            "'hard' is a required property",
        ),
        (
            lambda c: c["process"].__setitem__("noNewPrivileges", "yes"),
            "process.noNewPrivileges",
            "'yes' is not of type 'boolean'",
        ),
        (
            lambda c: c["linux"].__setitem__(
                "devices", [{"type": "c", "path": "/dev/fuse", "minor": 229}]
            ),
            "linux.devices[0]",
            "'major' is a required property",
        ),
        (
            lambda c: c["linux"].__setitem__("devices", [{"type": "x", "path": "/dev/fuse"}]),
            "linux.devices[0].type",
            "'x' is not one of",
        ),
        (
            lambda c: c["linux"].__setitem__("resources", {"memory": {"checkBeforeUpdate": "no"}}),
            "linux.resources.memory.checkBeforeUpdate",
            "'no' is not of type 'boolean'",
        ),
        (
            lambda c: c["linux"].__setitem__("resources", {"cpu": {"burst": -1}}),
            "linux.resources.cpu.burst",
            "-1 is less than the minimum of 0",
        ),
        (
            lambda c: c["linux"].__setitem__("resources", {"cpu": {"idle": "1"}}),
            "linux.resources.cpu.idle",
            "'1' is not of type 'integer'",
        ),
        (
            lambda c: c["linux"].__setitem__("resources", {"blockIO": {"weight": 70000}}),
            "linux.resources.blockIO.weight",
            "70000 is greater than the maximum of 65535",
        ),
        (
            lambda c: c["linux"].__setitem__(
                "resources", {"hugepageLimits": [{"pageSize": "2M", "limit": 1}]}
            ),
            "linux.resources.hugepageLimits[0].pageSize",
            "does not match",
        ),
        (
            lambda c: c["linux"].__setitem__("resources", {"devices": [{"access": "rwm"}]}),
            "linux.resources.devices[0]",
            "'allow' is a required property",
        ),
        (
            lambda c: c["linux"].__setitem__("resources", {"rdma": {"mlx5_1": {}}}),
            "linux.resources.rdma.mlx5_1",
            "is not valid under any of the given schemas",
        ),
        (
            lambda c: c["linux"].__setitem__("resources", {"unified": {"io.max": 5}}),
            'linux.resources.unified["io.max"]',
            "5 is not of type 'string'",
        ),
        (
            lambda c: c["linux"].__setitem__("intelRdt", {"memBwSchema": "L3:0=ff"}),
            "linux.intelRdt.memBwSchema",
            "does not match",
        ),
        (
            lambda c: c["linux"].__setitem__("intelRdt", {"enableMonitoring": 1}),
            "linux.intelRdt.enableMonitoring",
            "1 is not of type 'boolean'",
        ),
        (
            lambda c: c["linux"].__setitem__("memoryPolicy", {"mode": "MPOL_FAST"}),
            "linux.memoryPolicy.mode",
            "'MPOL_FAST' is not one of",
        ),
        (
            lambda c: c["linux"].__setitem__(
                "memoryPolicy", {"mode": "MPOL_BIND", "flags": ["MPOL_F_X"]}
            ),
            "linux.memoryPolicy.flags[0]",
            "'MPOL_F_X' is not one of",
        ),
        (
            lambda c: c["linux"].__setitem__("personality", {"domain": "LINUX64"}),
            "linux.personality.domain",
            "'LINUX64' is not one of",
        ),
        (
            lambda c: c["linux"].__setitem__("rootfsPropagation", "bogus"),
            "linux.rootfsPropagation",
            "'bogus' is not one of",
        ),
        (
            lambda c: c["linux"].__setitem__("timeOffsets", {"monotonic": {"nanosecs": -1}}),
            "linux.timeOffsets.monotonic.nanosecs",
            "-1 is less than the minimum of 0",
        ),
        (
            lambda c: c["linux"].__setitem__("netDevices", {"eth0": {"name": 3}}),
            "linux.netDevices.eth0.name",
            "3 is not of type 'string'",
        ),
        (
            lambda c: c["linux"].__setitem__("maskedPaths", ["proc/kcore"]),
            "linux.maskedPaths[0]",
            '"proc/kcore" is not an absolute path',
        ),
    ],
)
def test_schema_errors(bundle: Path, mutate: Any, path: str, fragment: str) -> None:
    cfg = minimal_config()
    mutate(cfg)
    err = error_of(bundle, cfg)
    assert err.filename == "config.json"
    assert err.json_path == path, str(err)
    assert fragment in err.problem, str(err)
    assert str(err).startswith(f"config.json: {path}: ")


def test_schema_accepts_full_v1_3_features(bundle: Path) -> None:
    """Every v1.3.0 field, set to a valid value, passes."""
    cfg = minimal_config()
    cfg["linux"]["namespaces"].append({"type": "uts"})
    cfg["domainname"] = "example.test"
    cfg["hostname"] = "box"
    cfg["annotations"] = {"com.example.key": "v"}
    cfg["hooks"] = {
        "poststart": [{"path": "/bin/true", "args": ["true"], "env": ["A=b"], "timeout": 5}],
        "poststop": [{"path": "/bin/true"}],
    }
    cfg["mounts"].append(
        {
            "destination": "/data",
            "type": "none",
            "source": "rootfs/tmp",
            "options": ["rbind", "idmap"],
            "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
            "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
        }
    )
    p = cfg["process"]
    p.update(
        {
            "terminal": True,
            "consoleSize": {"height": 25, "width": 80},
            "noNewPrivileges": True,
            "apparmorProfile": "unconfined",
            "selinuxLabel": "system_u:system_r:container_t:s0",
            "oomScoreAdj": 100,
            "scheduler": {
                "policy": "SCHED_DEADLINE",
                "nice": -5,
                "priority": 0,
                "flags": ["SCHED_FLAG_RECLAIM"],
                "runtime": 10,
                "deadline": 20,
                "period": 30,
            },
            "ioPriority": {"class": "IOPRIO_CLASS_IDLE", "priority": 4},
            "execCPUAffinity": {"initial": "0", "final": "0-3,7"},
        }
    )
    p["user"].update({"umask": 18, "additionalGids": [5, 6]})
    cfg["linux"].update(
        {
            "timeOffsets": {"monotonic": {"secs": -10, "nanosecs": 5}},
            "devices": [
                {
                    "path": "/dev/fuse",
                    "type": "c",
                    "major": 10,
                    "minor": 229,
                    "fileMode": 438,
                    "uid": 0,
                    "gid": 0,
                },
                {"path": "/dev/fifo", "type": "p"},
            ],
            "netDevices": {"eth1": {"name": "ctr1"}, "eth2": {}},
            "cgroupsPath": "/ocirt/test",
            "rootfsPropagation": "slave",
            "resources": {
                "devices": [
                    {"allow": False, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"},
                ],
                "memory": {
                    "limit": -1,
                    "reservation": 1,
                    "swap": 2,
                    "swappiness": 0,
                    "disableOOMKiller": False,
                    "useHierarchy": True,
                    "checkBeforeUpdate": True,
                },
                "cpu": {
                    "shares": 1024,
                    "quota": 100000,
                    "burst": 1000,
                    "period": 100000,
                    "realtimeRuntime": 0,
                    "realtimePeriod": 0,
                    "cpus": "0-1",
                    "mems": "0",
                    "idle": 1,
                },
                "blockIO": {
                    "weight": 10,
                    "leafWeight": 10,
                    "weightDevice": [{"major": 8, "minor": 0, "weight": 5}],
                    "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 600}],
                },
                "hugepageLimits": [{"pageSize": "2MB", "limit": 209715200}],
                "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 500}]},
                "pids": {"limit": 100},
                "rdma": {"mlx5_1": {"hcaHandles": 3}},
                "unified": {"memory.high": "max"},
            },
            "intelRdt": {
                "closID": "g",
                "l3CacheSchema": "L3:0=7f0",
                "memBwSchema": "MB:0=20",
                "schemata": "L2:0=f",
                "enableMonitoring": True,
            },
            "memoryPolicy": {
                "mode": "MPOL_INTERLEAVE",
                "nodes": "0-1",
                "flags": ["MPOL_F_STATIC_NODES"],
            },
            "sysctl": {"net.ipv4.ip_forward": "1"},
            "seccomp": {
                "defaultAction": "SCMP_ACT_ERRNO",
                "defaultErrnoRet": 1,
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
                "flags": ["SECCOMP_FILTER_FLAG_LOG"],
                "listenerPath": "/run/agent.sock",
                "listenerMetadata": "meta",
                "syscalls": [
                    {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                    {
                        "names": ["personality"],
                        "action": "SCMP_ACT_ALLOW",
                        "args": [
                            {"index": 0, "value": 255, "valueTwo": 8, "op": "SCMP_CMP_MASKED_EQ"}
                        ],
                    },
                    {"names": ["kexec_load"], "action": "SCMP_ACT_KILL_PROCESS"},
                    {"names": ["ptrace"], "action": "SCMP_ACT_NOTIFY", "errnoRet": 1},
                ],
            },
            "maskedPaths": ["/proc/kcore"],
            "readonlyPaths": ["/proc/sys"],
            "mountLabel": "system_u:object_r:container_file_t:s0",
            "personality": {"domain": "LINUX32", "flags": []},
            "x-unknown-field": {"runtimes": "must ignore it"},
        }
    )
    cfg["x-vendor-extension"] = [1, 2, 3]
    check(bundle, cfg)


# --------------------------------------------------------------------------
# semantic checks


@pytest.mark.parametrize(
    "version", ["1.0.0", "1.0.2-dev", "1.1.0", "1.2.1", "1.3.0", "1.3.7+build.1"]
)
def test_supported_oci_versions(bundle: Path, version: str) -> None:
    cfg = minimal_config()
    cfg["ociVersion"] = version
    check(bundle, cfg)


@pytest.mark.parametrize("version", ["2.0.0", "1.4.0", "0.5.0-dev"])
def test_unsupported_oci_versions(bundle: Path, version: str) -> None:
    cfg = minimal_config()
    cfg["ociVersion"] = version
    err = error_of(bundle, cfg)
    assert err.json_path == "ociVersion"
    assert (
        err.problem == f'"{version}" is not supported: ocirt implements runtime-spec 1.0.0 to 1.3.x'
    )
    assert '"1.3.0"' in err.fix


def test_capability_list_is_complete() -> None:
    assert len(validate.KNOWN_CAPABILITIES) == 41
    assert {
        "CAP_CHOWN",
        "CAP_CHECKPOINT_RESTORE",
        "CAP_BPF",
        "CAP_PERFMON",
    } <= validate.KNOWN_CAPABILITIES
    last_cap = Path("/proc/sys/kernel/cap_last_cap")
    if last_cap.exists():
        # The running kernel knows at least as many as we list (40 = CHECKPOINT_RESTORE).
        assert int(last_cap.read_text()) >= 40


@pytest.mark.parametrize(
    "cap_set", ["bounding", "effective", "inheritable", "permitted", "ambient"]
)
def test_unknown_capability_in_each_set(bundle: Path, cap_set: str) -> None:
    cfg = minimal_config()
    cfg["process"]["capabilities"][cap_set][1] = "CAP_TELEPORT"
    err = error_of(bundle, cfg)
    assert str(err).startswith(
        f'config.json: process.capabilities.{cap_set}[1]: unknown capability "CAP_TELEPORT"'
    )


def test_capability_schema_pattern(bundle: Path) -> None:
    cfg = minimal_config()
    cfg["process"]["capabilities"]["bounding"][0] = "net_admin"
    err = error_of(bundle, cfg)
    assert err.json_path == "process.capabilities.bounding[0]"
    assert "'net_admin' does not match" in err.problem


def test_unknown_rlimit(bundle: Path) -> None:
    cfg = minimal_config()
    cfg["process"]["rlimits"].append({"type": "RLIMIT_FOO", "soft": 1, "hard": 1})
    err = error_of(bundle, cfg)
    assert str(err).startswith(
        'config.json: process.rlimits[1].type: unknown rlimit type "RLIMIT_FOO"'
    )


def test_rlimit_soft_above_hard(bundle: Path) -> None:
    cfg = minimal_config()
    cfg["process"]["rlimits"] = [{"type": "RLIMIT_CORE", "soft": 10, "hard": 5}]
    err = error_of(bundle, cfg)
    assert err.json_path == "process.rlimits[0].soft"
    assert err.problem == "soft limit 10 is above the hard limit 5 for RLIMIT_CORE"


def test_rlimit_duplicate(bundle: Path) -> None:
    cfg = minimal_config()
    cfg["process"]["rlimits"].append({"type": "RLIMIT_NOFILE", "soft": 1, "hard": 2})
    err = error_of(bundle, cfg)
    assert err.json_path == "process.rlimits[1].type"
    assert err.problem == "RLIMIT_NOFILE is already set by process.rlimits[0]"


def test_all_rlimits_known(bundle: Path) -> None:
    cfg = minimal_config()
    cfg["process"]["rlimits"] = [
        {"type": t, "soft": 1, "hard": 2} for t in sorted(validate.KNOWN_RLIMITS)
    ]
    check(bundle, cfg)


def test_duplicate_namespace(bundle: Path) -> None:
    cfg = minimal_config()
    cfg["linux"]["namespaces"].append({"type": "pid"})
    err = error_of(bundle, cfg)
    assert err.json_path == "linux.namespaces[3].type"
    assert err.problem == "duplicate pid namespace (also linux.namespaces[0])"


def test_namespace_path_of_right_type(bundle: Path) -> None:
    cfg = minimal_config()
    cfg["linux"]["namespaces"][2] = {"type": "network", "path": "/proc/self/ns/net"}
    check(bundle, cfg)


def test_namespace_path_plain_file(bundle: Path, tmp_path: Path) -> None:
    plain = tmp_path / "x"
    plain.write_text("")
    cfg = minimal_config()
    cfg["linux"]["namespaces"][2] = {"type": "network", "path": str(plain)}
    err = error_of(bundle, cfg)
    assert str(err).startswith(
        f"config.json: linux.namespaces[2].path: {plain} is not a network namespace"
    )


def test_namespace_path_wrong_type(bundle: Path) -> None:
    cfg = minimal_config()
    cfg["linux"]["namespaces"][2] = {"type": "network", "path": "/proc/self/ns/uts"}
    err = error_of(bundle, cfg)
    assert err.json_path == "linux.namespaces[2].path"
    assert err.problem.startswith("/proc/self/ns/uts is not a network namespace")
    assert "uts namespace" in err.problem


def test_namespace_path_missing(bundle: Path) -> None:
    cfg = minimal_config()
    cfg["linux"]["namespaces"][0] = {"type": "pid", "path": "/proc/self/ns/nonexistent"}
    err = error_of(bundle, cfg)
    assert str(err).startswith(
        "config.json: linux.namespaces[0].path: /proc/self/ns/nonexistent does not exist"
    )


def test_namespace_path_relative(bundle: Path) -> None:
    cfg = minimal_config()
    cfg["linux"]["namespaces"][0] = {"type": "pid", "path": "proc/self/ns/pid"}
    err = error_of(bundle, cfg)
    assert err.json_path == "linux.namespaces[0].path"
    assert "is not an absolute path" in err.problem


def test_user_namespace_without_mappings(bundle: Path) -> None:
    cfg = minimal_config()
    cfg["linux"]["namespaces"].append({"type": "user"})
    err = error_of(bundle, cfg)
    assert err.json_path == "linux.uidMappings"
    assert err.problem == "user namespaces enabled, but no uid mappings found"
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    err = error_of(bundle, cfg)
    assert err.json_path == "linux.gidMappings"
    assert err.problem == "user namespaces enabled, but no gid mappings found"
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    check(bundle, cfg)


def test_user_namespace_path_needs_no_mappings(bundle: Path) -> None:
    cfg = minimal_config()
    cfg["linux"]["namespaces"].append({"type": "user", "path": "/proc/self/ns/user"})
    check(bundle, cfg)


def test_mappings_without_user_namespace(bundle: Path) -> None:
    cfg = minimal_config()
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    err = error_of(bundle, cfg)
    assert str(err).startswith(
        "config.json: linux.gidMappings: user namespace mappings specified, "
        "but user namespace isn't enabled"
    )


def test_relative_mount_destination_warns(bundle: Path, caplog: pytest.LogCaptureFixture) -> None:
    # runtime-spec 1.3: deprecated but allowed on Linux, relative to "/"; runc 1.2 warns.
    cfg = minimal_config()
    cfg["mounts"].append({"destination": "tmp", "type": "tmpfs", "source": "tmpfs"})
    with caplog.at_level(logging.WARNING, logger="ocirt.validate"):
        check(bundle, cfg)
    assert "mounts[2].destination: 'tmp' is not absolute" in caplog.text


@pytest.mark.parametrize(
    "mount",
    [
        {"destination": "/data", "type": "bind", "source": "/nonexistent/volume"},
        {
            "destination": "/data",
            "type": "none",
            "source": "/nonexistent/volume",
            "options": ["rbind", "ro"],
        },
        {"destination": "/data", "source": "/nonexistent/volume", "options": ["bind"]},
    ],
)
def test_bind_mount_source_missing(bundle: Path, mount: dict[str, Any]) -> None:
    cfg = minimal_config()
    cfg["mounts"].append(mount)
    err = error_of(bundle, cfg)
    assert err.json_path == "mounts[2].source"
    assert err.problem == "bind mount source /nonexistent/volume does not exist"
    assert "/data" in err.fix


def test_bind_mount_source_relative_to_bundle(bundle: Path) -> None:
    (bundle / "volume").mkdir()
    cfg = minimal_config()
    cfg["mounts"].append(
        {"destination": "/data", "type": "bind", "source": "volume", "options": ["rbind"]}
    )
    check(bundle, cfg)
    cfg["mounts"][-1]["source"] = "missing-volume"
    err = error_of(bundle, cfg)
    assert err.problem == f"bind mount source {bundle}/missing-volume does not exist"


def test_non_bind_mount_source_not_checked(bundle: Path) -> None:
    cfg = minimal_config()
    cfg["mounts"].append({"destination": "/mnt", "type": "tmpfs", "source": "/nonexistent"})
    check(bundle, cfg)


def test_root_path_missing(bundle: Path) -> None:
    cfg = minimal_config()
    cfg["root"]["path"] = "nope"
    err = error_of(bundle, cfg)
    assert err.json_path == "root.path"
    assert err.problem == f"{bundle}/nope: No such file or directory"
    assert "create the root filesystem" in err.fix


def test_root_path_not_a_directory(bundle: Path) -> None:
    (bundle / "file").write_text("")
    cfg = minimal_config()
    cfg["root"]["path"] = "file"
    err = error_of(bundle, cfg)
    assert str(err).startswith(f"config.json: root.path: {bundle}/file is not a directory")


def test_root_path_absolute(bundle: Path) -> None:
    cfg = minimal_config()
    cfg["root"]["path"] = str(bundle / "rootfs")
    check(bundle, cfg)


def test_root_missing(bundle: Path) -> None:
    cfg = minimal_config()
    del cfg["root"]
    err = error_of(bundle, cfg)
    assert err.json_path == "root.path"
    assert "missing" in err.problem


def test_root_without_path_is_schema_error(bundle: Path) -> None:
    cfg = minimal_config()
    cfg["root"] = {"readonly": True}
    err = error_of(bundle, cfg)
    assert str(err) == "config.json: root: 'path' is a required property (add \"path\")"


def test_process_required(bundle: Path) -> None:
    cfg = minimal_config()
    del cfg["process"]
    err = error_of(bundle, cfg)
    assert err.json_path == "process"
    assert err.problem == "process property must not be empty"


def test_cwd_required_by_schema(bundle: Path) -> None:
    cfg = minimal_config()
    del cfg["process"]["cwd"]
    err = error_of(bundle, cfg)
    assert str(err) == "config.json: process: 'cwd' is a required property (add \"cwd\")"


def test_cwd_must_be_absolute(bundle: Path) -> None:
    cfg = minimal_config()
    cfg["process"]["cwd"] = "tmp"
    err = error_of(bundle, cfg)
    assert err.json_path == "process.cwd"
    assert err.problem == 'cwd must be an absolute path, not "tmp"'


@pytest.mark.parametrize("args", [[], None])
def test_args_must_not_be_empty(bundle: Path, args: list[str] | None) -> None:
    cfg = minimal_config()
    if args is None:
        del cfg["process"]["args"]
    else:
        cfg["process"]["args"] = args
    err = error_of(bundle, cfg)
    assert str(err).startswith("config.json: process.args: args must not be empty")


def test_program_not_in_path(bundle: Path) -> None:
    cfg = minimal_config()
    cfg["process"]["args"] = ["foo", "--bar"]
    err = error_of(bundle, cfg)
    msg = str(err)
    assert msg.startswith(
        'config.json: process.args[0]: exec: "foo": executable file not found in $PATH ('
    )
    assert str(bundle / "rootfs") in msg
    assert "PATH=/usr/bin:/bin" in msg
    assert "process.env PATH" in msg


def test_program_found_through_env_path(bundle: Path) -> None:
    opt = bundle / "rootfs" / "opt" / "tools"
    opt.mkdir(parents=True)
    (opt / "tool").symlink_to("/bin/busybox")  # absolute: resolves inside the rootfs
    cfg = minimal_config()
    cfg["process"]["args"] = ["tool"]
    err = error_of(bundle, cfg)
    assert "executable file not found in $PATH" in err.problem
    cfg["process"]["env"] = ["PATH=/usr/bin", "PATH=/opt/tools:/bin"]  # the last PATH wins
    check(bundle, cfg)


def test_program_default_path_when_env_has_none(bundle: Path) -> None:
    cfg = minimal_config()
    cfg["process"]["env"] = ["TERM=xterm"]
    cfg["process"]["args"] = ["sleep", "1"]
    check(bundle, cfg)
    cfg["process"]["args"] = ["nope"]
    err = error_of(bundle, cfg)
    assert f"PATH={validate.DEFAULT_PATH}" in err.fix


def test_program_absolute_missing(bundle: Path) -> None:
    cfg = minimal_config()
    cfg["process"]["args"] = ["/bin/nope"]
    err = error_of(bundle, cfg)
    assert err.json_path == "process.args[0]"
    assert err.problem == 'exec: "/bin/nope": stat /bin/nope: no such file or directory'


def test_program_not_executable(bundle: Path) -> None:
    (bundle / "rootfs" / "etc" / "passwd").write_text("root:x:0:0::/:/bin/sh\n")
    cfg = minimal_config()
    cfg["process"]["args"] = ["/etc/passwd"]
    err = error_of(bundle, cfg)
    assert err.problem == 'exec: "/etc/passwd": permission denied'


def test_program_is_directory(bundle: Path) -> None:
    cfg = minimal_config()
    cfg["process"]["args"] = ["/bin"]
    err = error_of(bundle, cfg)
    assert err.problem == 'exec: "/bin": permission denied'  # runc's (Go's LookPath)


def test_program_relative_to_cwd(bundle: Path) -> None:
    cfg = minimal_config()
    cfg["process"]["cwd"] = "/bin"
    cfg["process"]["args"] = ["./busybox", "true"]
    check(bundle, cfg)
    cfg["process"]["cwd"] = "/etc"
    err = error_of(bundle, cfg)
    assert err.problem == 'exec: "./busybox": stat /etc/./busybox: no such file or directory'


def test_program_symlink_to_host_path_is_not_followed_outside(bundle: Path) -> None:
    # /usr/bin/env exists on the host (coreutils) but not in the rootfs: an
    # absolute symlink must resolve inside the rootfs.
    assert os.path.exists("/usr/bin/env")
    (bundle / "rootfs" / "bin" / "hostenv").symlink_to("/usr/bin/env")
    cfg = minimal_config()
    cfg["process"]["args"] = ["hostenv"]
    err = error_of(bundle, cfg)
    assert "executable file not found in $PATH" in err.problem


def test_program_dotdot_symlink_clamped_at_root(bundle: Path) -> None:
    (bundle / "rootfs" / "usr" / "bin" / "deep").symlink_to("../../../../../../../../bin/busybox")
    cfg = minimal_config()
    cfg["process"]["args"] = ["/usr/bin/deep"]
    check(bundle, cfg)


def test_program_from_bind_mount(bundle: Path) -> None:
    # docker --init: docker-init is bind-mounted from the host over the rootfs.
    cfg = minimal_config()
    cfg["process"]["args"] = ["/sbin/docker-init", "--", "sh"]
    err = error_of(bundle, cfg)
    assert "no such file or directory" in err.problem
    cfg["mounts"].append(
        {
            "destination": "/sbin/docker-init",
            "type": "bind",
            "source": BUSYBOX,
            "options": ["bind", "ro"],
        }
    )
    check(bundle, cfg)


def test_program_under_tmpfs_not_judged(bundle: Path) -> None:
    cfg = minimal_config()
    cfg["process"]["args"] = ["/dev/whatever"]  # /dev is a tmpfs mount in minimal_config
    check(bundle, cfg)


def test_program_missing_but_hook_may_add_it(bundle: Path) -> None:
    cfg = minimal_config()
    cfg["process"]["args"] = ["nvidia-smi"]
    cfg["hooks"] = {
        "createContainer": [
            {"path": "/usr/bin/nvidia-container-runtime-hook", "args": ["hook", "prestart"]}
        ]
    }
    check(bundle, cfg)


def test_docker_network_hook_does_not_hide_missing_program(bundle: Path) -> None:
    cfg = minimal_config()
    cfg["process"]["args"] = ["foo"]
    cfg["hooks"] = {
        "prestart": [
            {"path": "/proc/1/exe", "args": ["libnetwork-setkey", "-exec-root=/x", "id", "n"]}
        ]
    }
    err = error_of(bundle, cfg)
    assert 'exec: "foo": executable file not found in $PATH' in err.problem


# --------------------------------------------------------------------------
# resolve_in_root


def test_resolve_in_root_absolute_and_relative_links(tmp_path: Path) -> None:
    root = tmp_path / "r"
    (root / "a" / "b").mkdir(parents=True)
    (root / "target").write_text("")
    (root / "a" / "abs").symlink_to("/target")
    (root / "a" / "b" / "rel").symlink_to("../../target")
    (root / "a" / "up").symlink_to("../../../../..")
    assert validate.resolve_in_root(str(root), "/a/abs") == str(root / "target")
    assert validate.resolve_in_root(str(root), "a/b/rel") == str(root / "target")
    assert validate.resolve_in_root(str(root), "/a/up/target") == str(root / "target")
    assert validate.resolve_in_root(str(root), "/../../etc/passwd") == str(root / "etc" / "passwd")
    assert validate.resolve_in_root(str(root), "/") == str(root)
    assert validate.resolve_in_root(str(root), "/a/./b/../missing/x") == str(
        root / "a" / "missing" / "x"
    )


def test_resolve_in_root_symlink_loop(tmp_path: Path) -> None:
    (tmp_path / "loop1").symlink_to("loop2")
    (tmp_path / "loop2").symlink_to("/loop1")
    with pytest.raises(OSError) as info:
        validate.resolve_in_root(str(tmp_path), "/loop1")
    assert info.value.errno == errno.ELOOP


def test_resolve_in_root_chain_of_40_links_is_fine(tmp_path: Path) -> None:
    (tmp_path / "end").write_text("")
    (tmp_path / "l0").symlink_to("end")
    for i in range(1, 40):
        (tmp_path / f"l{i}").symlink_to(f"l{i - 1}")
    assert validate.resolve_in_root(str(tmp_path), "/l39") == str(tmp_path / "end")
    (tmp_path / "l40").symlink_to("l39")
    with pytest.raises(OSError):
        validate.resolve_in_root(str(tmp_path), "/l40")


def test_program_symlink_loop_reported(bundle: Path) -> None:
    (bundle / "rootfs" / "bin" / "loopy").symlink_to("loopy")
    cfg = minimal_config()
    cfg["process"]["args"] = ["/bin/loopy"]
    err = error_of(bundle, cfg)
    assert err.problem == 'exec: "/bin/loopy": stat /bin/loopy: too many levels of symbolic links'


# --------------------------------------------------------------------------
# cache


def test_cache_not_written_when_the_compiled_check_accepts(bundle: Path, tmp_path: Path) -> None:
    # The compiled schema's verdict costs less than a marker (create's usual case).
    cache = tmp_path / "cache"
    check(bundle, cache_dir=str(cache))
    assert not cache.exists()


def test_cache_marker_written_and_dir_private(
    bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # jsonschema judges: as in a checkout whose schemas/ changed since the
    # compiled check was made (validate._fast_schema_accepts says False then).
    monkeypatch.setattr(validate, "_fast_schema_accepts", lambda *args: False)
    cache = tmp_path / "cache" / "schema"
    check(bundle, cache_dir=str(cache))
    raw = (bundle / "config.json").read_bytes()
    expected = hashlib.sha256(raw + b"\0" + validate.SCHEMA_VERSION.encode()).hexdigest()
    assert os.listdir(cache) == [expected]
    assert (cache / expected).stat().st_size == 0
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700


def test_cache_not_written_on_schema_failure(bundle: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cfg = minimal_config()
    cfg["process"]["user"]["uid"] = "x"
    error_of(bundle, cfg, cache_dir=str(cache))
    assert not cache.exists() or os.listdir(cache) == []


def test_cache_hit_skips_schema_but_not_semantics(bundle: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    cfg = minimal_config()
    cfg["process"]["user"]["uid"] = "x"  # a schema error...
    raw = write_config(bundle, cfg)
    marker = hashlib.sha256(raw + b"\0" + validate.SCHEMA_VERSION.encode()).hexdigest()
    (cache / marker).write_bytes(b"")
    check(bundle, cache_dir=str(cache))  # ...hidden by the (planted) marker
    cfg["process"]["args"] = ["nope"]  # different bytes: no marker, schema runs
    err = error_of(bundle, cfg, cache_dir=str(cache))
    assert err.json_path == "process.user.uid"
    # A cached config still gets the semantic checks.
    good = minimal_config()
    raw = write_config(bundle, good)
    check(bundle, cache_dir=str(cache))
    shutil.rmtree(bundle / "rootfs")
    with pytest.raises(ConfigError) as info:
        validate.validate_config(good, raw, bundle=str(bundle), cache_dir=str(cache))
    assert info.value.json_path == "root.path"


def test_cache_write_errors_ignored(bundle: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    check(bundle, cache_dir=str(blocker / "cache"))  # cannot mkdir under a file


# --------------------------------------------------------------------------
# import cost


def test_import_does_not_load_jsonschema() -> None:
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "import ocirt.validate\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('jsonschema', 'referencing')]\n"
        "assert not bad, bad\n"
        "print('clean')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "clean"


# --------------------------------------------------------------------------
# reference configs from real container managers, and runc's own output


def _reference(pattern: str) -> list[Path]:
    return sorted(Path(p) for p in glob.glob(str(REFERENCE_CONFIGS / pattern)))


FULL_CONFIGS = [
    p for p in _reference("*.json") if "process" not in p.name and "update" not in p.name
]
EXEC_PROCESSES = _reference("*-process.json")
UPDATE_RESOURCES = _reference("*-update-resources.json")


@pytest.mark.skipif(not FULL_CONFIGS, reason="reference configs not present")
def test_reference_set_is_what_we_expect() -> None:
    names = {p.name for p in FULL_CONFIGS}
    assert {"docker.json", "podman.json", "containerd.json", "swarm.json"} <= names
    assert any(n.endswith("-tty.json") for n in names)
    assert EXEC_PROCESSES and UPDATE_RESOURCES


@pytest.mark.parametrize("path", FULL_CONFIGS, ids=lambda p: p.name)
def test_reference_config_passes_schema(path: Path) -> None:
    validate.validate_against(json.loads(path.read_bytes()), "config-schema.json", path.name)


@pytest.mark.parametrize("path", FULL_CONFIGS, ids=lambda p: p.name)
def test_reference_config_passes_semantics_with_local_paths(
    path: Path, tmp_path: Path, rootfs_template: Path
) -> None:
    """The managers' configs pass every check once their host paths exist here."""
    cfg = json.loads(path.read_bytes())
    shutil.copytree(rootfs_template, tmp_path / "rootfs", symlinks=True)
    cfg["root"]["path"] = "rootfs"
    host_file = tmp_path / "host-file"
    host_file.write_text("")
    for mount in cfg.get("mounts", []):
        if validate._is_bind(mount):
            mount["source"] = str(host_file)
    for ns in cfg["linux"].get("namespaces", []):
        if "path" in ns:
            ns["path"] = f"/proc/self/ns/{validate.NAMESPACES[ns['type']][0]}"
    check(tmp_path, cfg)


@pytest.mark.parametrize("path", EXEC_PROCESSES, ids=lambda p: p.name)
def test_reference_exec_process_passes(path: Path) -> None:
    validate.validate_process(json.loads(path.read_bytes()), path.name)


@pytest.mark.parametrize("path", UPDATE_RESOURCES, ids=lambda p: p.name)
def test_reference_update_resources_pass(path: Path) -> None:
    validate.validate_resources(json.loads(path.read_bytes()), path.name)


def test_validate_process_paths_are_file_relative() -> None:
    proc = {"cwd": "/", "args": ["sh"], "user": {"uid": "root", "gid": 0}}
    with pytest.raises(ConfigError) as info:
        validate.validate_process(proc, "process.json")
    assert str(info.value) == "process.json: user.uid: 'root' is not of type 'integer'"
    proc["user"]["uid"] = 0
    proc["capabilities"] = {"ambient": ["CAP_NOPE"]}
    with pytest.raises(ConfigError) as info:
        validate.validate_process(proc, "process.json")
    assert str(info.value).startswith(
        'process.json: capabilities.ambient[0]: unknown capability "CAP_NOPE"'
    )
    del proc["capabilities"]
    proc["cwd"] = "relative"
    with pytest.raises(ConfigError) as info:
        validate.validate_process(proc, "process.json")
    assert info.value.json_path == "cwd"
    with pytest.raises(ConfigError) as info:
        validate.validate_process([], "process.json")  # type: ignore[arg-type]
    assert "top level must be a JSON object" in str(info.value)


def test_validate_resources_reports_path() -> None:
    with pytest.raises(ConfigError) as info:
        validate.validate_resources({"memory": {"limit": "1G"}}, "resources.json")
    assert str(info.value) == "resources.json: memory.limit: '1G' is not of type 'integer'"


RUNC = shutil.which("runc")


@pytest.mark.skipif(RUNC is None, reason="runc not installed")
@pytest.mark.parametrize("rootless", [False, True], ids=["spec", "spec-rootless"])
def test_runc_spec_output_is_valid(tmp_path: Path, rootfs_template: Path, rootless: bool) -> None:
    assert RUNC is not None
    subprocess.run([RUNC, "spec", *(["--rootless"] if rootless else [])], cwd=tmp_path, check=True)
    shutil.copytree(rootfs_template, tmp_path / "rootfs", symlinks=True)
    cfg, raw = validate.load_config(str(tmp_path))
    validate.validate_config(cfg, raw, bundle=str(tmp_path))
    if rootless:
        types = [ns["type"] for ns in cfg["linux"]["namespaces"]]
        assert "user" in types and cfg["linux"]["uidMappings"]


# --------------------------------------------------------------------------
# state and features schemas


def test_state_schema() -> None:
    state = {
        "ociVersion": "1.3.0",
        "id": "c1",
        "status": "running",
        "pid": 42,
        "bundle": "/b",
        "rootfs": "/b/rootfs",
        "created": "2024-01-01T00:00:00Z",
        "owner": "",
        "annotations": {"k": "v"},
    }
    validate.validate_against(state, "state-schema.json", "state")
    bad = dict(state, status="paused")
    with pytest.raises(ConfigError) as info:
        validate.validate_against(bad, "state-schema.json", "state")
    assert info.value.json_path == "status"
    assert (
        "'paused' is not one of ['creating', 'created', 'running', 'stopped']" in info.value.problem
    )
    no_pid = {k: v for k, v in state.items() if k != "pid"}
    with pytest.raises(ConfigError) as info:
        validate.validate_against(no_pid, "state-schema.json", "state")
    assert "'pid' is a required property" in info.value.problem
    validate.validate_against(dict(no_pid, status="stopped"), "state-schema.json", "state")


def test_features_schema() -> None:
    features = {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.3.0",
        "hooks": [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop",
        ],
        "mountOptions": ["ro", "rbind", "idmap"],
        "potentiallyUnsafeConfigAnnotations": ["com.example."],
        "annotations": {"org.opencontainers.runc.version": "ocirt"},
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": sorted(validate.KNOWN_CAPABILITIES),
            "cgroup": {"v1": False, "v2": True, "systemd": True, "systemdUser": True, "rdma": True},
            "seccomp": {
                "enabled": True,
                "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_NOTIFY"],
                "operators": ["SCMP_CMP_MASKED_EQ"],
                "archs": ["SCMP_ARCH_X86_64"],
                "knownFlags": ["SECCOMP_FILTER_FLAG_TSYNC"],
                "supportedFlags": ["SECCOMP_FILTER_FLAG_LOG"],
            },
            "apparmor": {"enabled": True},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": True}},
            "netDevices": {"enabled": True},
            "memoryPolicy": {"modes": ["MPOL_BIND"], "flags": ["MPOL_F_STATIC_NODES"]},
        },
    }
    validate.validate_against(features, "features-schema.json", "features")
    bad = copy.deepcopy(features)
    bad["linux"]["namespaces"].append("net")
    with pytest.raises(ConfigError) as info:
        validate.validate_against(bad, "features-schema.json", "features")
    assert info.value.json_path == "linux.namespaces[8]"
    del bad["ociVersionMax"]
    with pytest.raises(ConfigError) as info:
        validate.validate_against(bad, "features-schema.json", "features")
    assert "'ociVersionMax' is a required property" in info.value.problem


@pytest.mark.skipif(RUNC is None, reason="runc not installed")
def test_runc_features_output_is_valid() -> None:
    assert RUNC is not None
    out = subprocess.run([RUNC, "features"], capture_output=True, check=True)
    validate.validate_against(json.loads(out.stdout), "features-schema.json", "runc features")


def test_json_path_formatting() -> None:
    assert validate.format_json_path(["mounts", 2, "destination"]) == "mounts[2].destination"
    assert (
        validate.format_json_path(["annotations", "com.example/key"])
        == 'annotations["com.example/key"]'
    )
    assert validate.format_json_path(["user", "uid"], "process") == "process.user.uid"
    assert validate.format_json_path([]) == ""


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("kernel.panic", "sysctl 'kernel.panic' is not in a separate kernel namespace"),
        ("kernel.shmmax", "sysctl 'kernel.shmmax' not allowed in host ipc namespace"),
    ],
)
def test_sysctl_must_belong_to_a_namespace_of_the_container(
    bundle: Path, key: str, problem: str
) -> None:
    cfg = minimal_config()
    cfg["linux"]["sysctl"] = {key: "1"}
    with pytest.raises(ConfigError) as exc:
        validate.validate_config(cfg, json.dumps(cfg).encode(), bundle=str(bundle))
    assert exc.value.json_path == f'linux.sysctl["{key}"]'
    assert exc.value.problem == problem


def test_sysctl_of_the_containers_network_namespace_is_accepted(bundle: Path) -> None:
    cfg = minimal_config()
    cfg["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    validate.validate_config(cfg, json.dumps(cfg).encode(), bundle=str(bundle))


def test_hostname_needs_a_uts_namespace(bundle: Path) -> None:
    cfg = minimal_config()
    cfg["hostname"] = "box"
    with pytest.raises(ConfigError) as exc:
        validate.validate_config(cfg, json.dumps(cfg).encode(), bundle=str(bundle))
    assert str(exc.value).startswith(
        "config.json: hostname: unable to set hostname without a private UTS namespace"
    )
