"""The systemd cgroup driver (``--systemd-cgroup``), side by side with runc's.

Most tests need a running systemd on a cgroup v2 host.  This machine has no
systemd, so ``test_systemd_driver_on_cgroup2_vm`` boots the cgroup v2 guest
(shared/tools/cgroup2-vm), starts systemd there as PID 1 of a pid + mount
namespace with only the D-Bus system bus (tests/guest/with-systemd.sh), and
runs this file under it.  The pure functions (slice expansion, unit names,
properties) are tested everywhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import call_runtime, run_pytest_in_cgroup2_vm

from ocirt.cgroups import CgroupError, mode
from ocirt.cgroups import systemd as sd

REPO = Path(__file__).resolve().parents[1]
MIB = 1 << 20
UNDER_SYSTEMD = sd.is_running_systemd() and os.path.isdir("/sys/fs/cgroup") and mode() == "v2"
needs_systemd = pytest.mark.skipif(
    not UNDER_SYSTEMD or os.geteuid() != 0,
    reason="needs root and a running systemd on cgroup v2 (see test_systemd_driver_on_cgroup2_vm)",
)


# -- pure functions: everywhere --------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("system.slice", "/system.slice"),
        ("a-b-c.slice", "/a.slice/a-b.slice/a-b-c.slice"),
        ("-.slice", "/"),
    ],
)
def test_expand_slice(name: str, path: str) -> None:
    assert sd.expand_slice(name) == path


@pytest.mark.parametrize("bad", ["system", "a--b.slice", "-a.slice", "a/b.slice", ".slice"])
def test_expand_slice_rejects_what_systemd_rejects(bad: str) -> None:
    with pytest.raises(CgroupError, match=f"invalid slice name: {bad}"):
        sd.expand_slice(bad)


def test_unit_names_and_paths_as_runc() -> None:
    assert sd.parse_path("", "c1") == ("", "runc", "c1")
    assert sd.parse_path("machine.slice:libpod:abc", "x") == ("machine.slice", "libpod", "abc")
    assert sd.unit_name("libpod", "abc") == "libpod-abc.scope"
    assert sd.unit_name("", "abc") == "abc.scope"
    assert sd.unit_name("x", "pod.slice") == "pod.slice"
    with pytest.raises(CgroupError, match='format "slice:prefix:name" for systemd cgroups, got'):
        sd.parse_path("/plain/path", "x")


def test_range_to_bits_is_systemds_cpu_set_layout() -> None:
    assert sd.range_to_bits("0") == b"\x01"
    assert sd.range_to_bits("0-3,9") == b"\x0f\x02"
    with pytest.raises(CgroupError):
        sd.range_to_bits("3-1")


def test_properties_follow_runc_conversions() -> None:
    r = {
        "memory": {"limit": 64 * MIB, "reservation": 32 * MIB, "swap": 96 * MIB},
        "cpu": {"shares": 512, "quota": 12345, "period": 100000, "cpus": "0"},
        "pids": {"limit": -1},
    }
    props = dict(sd.resource_properties(r, v2=True, version=252))
    assert props["MemoryMax"] == ("t", 64 * MIB)
    assert props["MemoryLow"] == ("t", 32 * MIB)
    assert props["MemorySwapMax"] == ("t", 32 * MIB)  # v1 memory+swap -> v2 swap only
    assert props["CPUWeight"] == ("t", 20)  # runc's shares -> weight: 1 + (512-2)*9999/262142
    assert props["CPUQuotaPerSecUSec"] == ("t", 130000)  # 123450 us/s rounded up to 1 %
    assert props["CPUQuotaPeriodUSec"] == ("t", 100000)
    assert props["TasksMax"] == ("t", 2**64 - 1)
    assert props["AllowedCPUs"] == ("ay", b"\x01")
    old = dict(sd.resource_properties(r, v2=False, version=241))
    assert old["MemoryLimit"] == ("t", 64 * MIB) and old["CPUShares"] == ("t", 512)
    assert "AllowedCPUs" not in old and "CPUQuotaPeriodUSec" not in old


def test_device_rules_become_an_allow_list() -> None:
    rules = [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": True, "type": "c", "major": 136, "access": "rw"},
        {"allow": True, "type": "b", "access": "m"},
        {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"},
    ]
    props = dict(sd.device_properties(rules))
    assert props["DevicePolicy"] == ("s", "strict")
    assert sorted(props["DeviceAllow"][1]) == [
        ("/dev/char/1:3", "rm"),
        ("block-*", "m"),
        ("char-136", "rw"),
    ]
    allow_all = dict(sd.device_properties([{"allow": True, "access": "rwm"}]))
    assert allow_all == {"DevicePolicy": ("s", "auto"), "DeviceAllow": ("a(ss)", [])}


def test_annotations_become_properties() -> None:
    props = sd.annotation_properties(
        {
            "org.systemd.property.TimeoutStopSec": "uint64 5",
            "org.systemd.property.CollectMode": "'inactive-or-failed'",
            "org.systemd.property.IgnoreOnIsolate": "true",
            "other": "x",
        }
    )
    assert props == [
        ("CollectMode", ("s", "inactive-or-failed")),
        ("IgnoreOnIsolate", ("b", True)),
        ("TimeoutStopUSec", ("t", 5_000_000)),
    ]
    with pytest.raises(CgroupError, match=r"org\.systemd\.property\.Bad-Name"):
        sd.annotation_properties({"org.systemd.property.Bad-Name": "1"})


def test_refused_without_systemd(ocirt_bin: str, tmp_root: Path, bundle) -> None:
    if sd.is_running_systemd():
        pytest.skip("systemd runs here")
    cid = unique("nosd")
    b = bundle("true")
    out = cli(ocirt_bin, tmp_root, "--systemd-cgroup", "create", "-b", str(b), cid, check=False)
    assert out.returncode == 1
    assert "systemd not running on this host, cannot use systemd cgroups manager" in out.stderr
    assert not (tmp_root / cid).exists()


# -- the host side: boot the guest with systemd and run the rest there -------------------
@pytest.mark.skipif(os.geteuid() != 0, reason="the VM runner needs root")
def test_systemd_driver_on_cgroup2_vm() -> None:
    if UNDER_SYSTEMD:
        pytest.skip("already under systemd on cgroup v2: the tests below run directly")
    print(
        run_pytest_in_cgroup2_vm(
            ["tests/test_systemd_cgroup.py", "-k", "under_systemd"],
            timeout=900,
            wrapper=[str(REPO / "tests/guest/with-systemd.sh")],
        )
    )


# -- under systemd ----------------------------------------------------------------------
def unique(tag: str) -> str:
    return f"ocirt-test-{tag}-{uuid.uuid4().hex[:8]}"


def cli(binary: str, root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = call_runtime(binary, root, *args, timeout=180)  # the guest is slow
    if check and result.returncode != 0:
        raise AssertionError(f"{binary} {args}: exit {result.returncode}: {result.stderr}")
    return result


def create(binary: str, root: Path, bundle: Path, cid: str) -> None:
    # The created init holds its stdio: files, not pipes (or run() waits for it).
    log = bundle / "create.stderr"
    with open(log, "w+") as err:
        result = subprocess.run(
            [binary, "--root", str(root), "--systemd-cgroup", "create", "-b", str(bundle), cid],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            timeout=180,
            check=False,
        )
    assert result.returncode == 0, f"{binary} create {cid}: {log.read_text()}"


UNIT_PROPS = (
    "ActiveState",
    "Delegate",
    "Slice",
    "MemoryMax",
    "MemoryLow",
    "MemorySwapMax",
    "CPUWeight",
    "CPUQuotaPerSecUSec",
    "CPUQuotaPeriodUSec",
    "TasksMax",
    "AllowedCPUs",
    "DevicePolicy",
    "DeviceAllow",
    "MemoryAccounting",
    "TasksAccounting",
    "DefaultDependencies",
)
FILES = (
    "memory.max",
    "memory.low",
    "memory.swap.max",
    "cpu.weight",
    "cpu.max",
    "pids.max",
    "cpuset.cpus",
)


def unit_properties(unit: str, names: tuple[str, ...] = UNIT_PROPS) -> dict[str, str]:
    out = subprocess.run(
        ["systemctl", "show", "-p", ",".join(names), unit],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    props: dict[str, list[str]] = {}
    for line in out.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            props.setdefault(key, []).append(value)
    # DeviceAllow= comes once per entry, in no particular order.
    return {key: " | ".join(sorted(values)) for key, values in props.items()}


def cgroup_files(path: str) -> dict[str, str]:
    return {name: (Path(path) / name).read_text().strip() for name in FILES}


def init_cgroup(binary: str, root: Path, cid: str) -> str:
    pid = json.loads(cli(binary, root, "state", cid).stdout)["pid"]
    return Path(f"/proc/{pid}/cgroup").read_text().strip()


RESOURCES = {
    "memory": {"limit": 64 * MIB, "reservation": 16 * MIB, "swap": 96 * MIB},
    "cpu": {"shares": 512, "quota": 25000, "period": 100000, "cpus": "0"},
    "pids": {"limit": 64},
}


def same_devices(ours: str, runc: str) -> bool:
    """DeviceAllow of both, modulo runc 1.1's older systemd syntax.

    runc 1.1 names a wildcard-minor rule by its /proc/devices group
    ("char-pts") and drops rules for nodes missing from the host's /dev/char
    (tun here); runc 1.2 and ocirt write "char-136" and keep them, which
    systemd >= 240 understands.  Every rule runc gives systemd must be ours too.
    """
    groups = {}
    for line in Path("/proc/devices").read_text().splitlines():
        major, _, name = line.strip().partition(" ")
        if major.isdigit() and name:
            groups.setdefault(f"char-{name}", f"char-{major}")
    theirs = {
        groups.get(e.split()[0], e.split()[0]) + " " + e.split()[1] for e in runc.split(" | ")
    }
    mine = set(ours.split(" | "))
    extra = {e for e in mine - theirs if not os.path.exists(e.split()[0])}
    return theirs <= mine and mine - theirs == extra


def two_containers(ocirt_bin: str, runc_bin: str, root: Path, bundle, tag: str, **patch: Any):
    """The same bundle created by ocirt and by runc, each in its own scope."""
    ids = {"ocirt": unique(f"{tag}-o"), "runc": unique(f"{tag}-r")}
    units = {}
    for runtime, binary in (("ocirt", ocirt_bin), ("runc", runc_bin)):
        prefix = "ocirt-t" if runtime == "ocirt" else "runc-t"
        b = bundle(
            "sleep",
            "1000",
            name=f"bundle-{runtime}",
            patch={
                "linux": {
                    "cgroupsPath": f"system.slice:{prefix}:{ids[runtime]}",
                    "resources": RESOURCES,
                },
                **patch,
            },
        )
        create(binary, root, b, ids[runtime])
        units[runtime] = f"{prefix}-{ids[runtime]}.scope"
    return ids, units


@needs_systemd
def test_under_systemd_scope_update_pause_delete_side_by_side_with_runc(
    ocirt_bin: str, runc_bin: str, tmp_root: Path, bundle
) -> None:
    """One bundle, created by ocirt and by runc: the same unit properties and
    cgroup files after create and after update; then pause/resume/ps/delete.

    (One test rather than several: each create costs ~15 s in the emulated guest.)
    """
    annotations = {
        "org.systemd.property.TimeoutStopSec": "uint64 7",
        "org.systemd.property.CollectMode": "'inactive-or-failed'",
    }
    ids, units = two_containers(
        ocirt_bin, runc_bin, tmp_root, bundle, "same", annotations=annotations
    )
    ours, theirs = unit_properties(units["ocirt"]), unit_properties(units["runc"])
    assert ours["ActiveState"] == "active" and ours["Delegate"] == "yes"
    assert ours["MemoryMax"] == str(64 * MIB) and ours["TasksMax"] == "64"
    assert ours["DevicePolicy"] == "strict" and "/dev/char/1:3 rwm" in ours["DeviceAllow"]
    assert same_devices(ours.pop("DeviceAllow"), theirs.pop("DeviceAllow"))
    assert ours == theirs
    extra = ("TimeoutStopUSec", "CollectMode")
    assert unit_properties(units["ocirt"], extra) == unit_properties(units["runc"], extra)
    assert unit_properties(units["ocirt"], extra) == {
        "TimeoutStopUSec": "7s",
        "CollectMode": "inactive-or-failed",
    }
    paths = {r: Path(f"/sys/fs/cgroup/system.slice/{u}") for r, u in units.items()}
    assert cgroup_files(paths["ocirt"]) == cgroup_files(paths["runc"])
    assert cgroup_files(paths["ocirt"])["memory.max"] == str(64 * MIB)
    assert init_cgroup(ocirt_bin, tmp_root, ids["ocirt"]) == f"0::/system.slice/{units['ocirt']}"
    assert json.loads(cli(ocirt_bin, tmp_root, "state", ids["ocirt"]).stdout)["status"] == "created"

    # A second container asking for the same unit fails, and leaves the first alone.
    taken = unique("taken")
    b = bundle(
        "true",
        name="bundle-taken",
        patch={"linux": {"cgroupsPath": f"system.slice:ocirt-t:{ids['ocirt']}"}},
    )
    out = cli(ocirt_bin, tmp_root, "--systemd-cgroup", "create", "-b", str(b), taken, check=False)
    assert out.returncode == 1 and "UnitExists" in out.stderr, out.stderr
    assert not (tmp_root / taken).exists()
    assert json.loads(cli(ocirt_bin, tmp_root, "state", ids["ocirt"]).stdout)["status"] == "created"
    assert unit_properties(units["ocirt"], ("ActiveState",))["ActiveState"] == "active"

    flags = ["--memory", str(128 * MIB), "--pids-limit", "100", "--cpu-quota", "20000"]
    for runtime, binary in (("ocirt", ocirt_bin), ("runc", runc_bin)):
        cli(binary, tmp_root, "--systemd-cgroup", "update", *flags, ids[runtime])
    ours, theirs = unit_properties(units["ocirt"]), unit_properties(units["runc"])
    assert ours["MemoryMax"] == str(128 * MIB) and ours["TasksMax"] == "100"
    assert ours["CPUQuotaPerSecUSec"] == "200ms"
    assert same_devices(ours.pop("DeviceAllow"), theirs.pop("DeviceAllow"))
    assert ours == theirs
    assert cgroup_files(paths["ocirt"]) == cgroup_files(paths["runc"])

    cid = ids["ocirt"]
    cli(ocirt_bin, tmp_root, "start", cid)
    cli(ocirt_bin, tmp_root, "pause", cid)
    assert json.loads(cli(ocirt_bin, tmp_root, "state", cid).stdout)["status"] == "paused"
    assert (paths["ocirt"] / "cgroup.freeze").read_text().strip() == "1"
    cli(ocirt_bin, tmp_root, "resume", cid)
    pids = json.loads(cli(ocirt_bin, tmp_root, "ps", "-f", "json", cid).stdout)
    assert pids and all(isinstance(p, int) for p in pids)
    for runtime, binary in (("ocirt", ocirt_bin), ("runc", runc_bin)):
        cli(binary, tmp_root, "delete", "-f", ids[runtime])
        assert unit_properties(units[runtime], ("LoadState",))["LoadState"] == "not-found"
        assert not paths[runtime].exists()
        assert not (tmp_root / ids[runtime]).exists()


@needs_systemd
def test_under_systemd_default_path_and_delete_after_exit(
    ocirt_bin: str, tmp_root: Path, bundle
) -> None:
    """No cgroupsPath: runc's "runc-<id>.scope" in system.slice.  The init
    exits, systemd collects the empty scope itself, and delete still succeeds."""
    cid = unique("dflt")
    b = bundle("true", patch={"linux": {"cgroupsPath": None}})
    create(ocirt_bin, tmp_root, b, cid)
    unit = f"runc-{cid}.scope"
    assert init_cgroup(ocirt_bin, tmp_root, cid) == f"0::/system.slice/{unit}"
    cli(ocirt_bin, tmp_root, "start", cid)
    deadline = time.monotonic() + 120
    while json.loads(cli(ocirt_bin, tmp_root, "state", cid).stdout)["status"] != "stopped":
        assert time.monotonic() < deadline, "the container did not stop"
        time.sleep(0.2)
    cli(ocirt_bin, tmp_root, "delete", cid)
    assert not (tmp_root / cid).exists()
    assert unit_properties(unit, ("LoadState",))["LoadState"] == "not-found"
    assert not Path(f"/sys/fs/cgroup/system.slice/{unit}").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")
@pytest.mark.parametrize(
    ("cgroups_path", "message"),
    [
        ("only:two", "expected cgroupsPath to be of format"),
        ("bad--name.slice:ocirt-t:x", "invalid slice name: bad--name.slice"),
        ("a/b.slice:ocirt-t:x", "invalid slice name: a/b.slice"),
    ],
)
def test_bad_paths_fail_and_leave_nothing(
    ocirt_bin: str, tmp_root: Path, bundle, cgroups_path: str, message: str
) -> None:
    cid = unique("bad")
    b = bundle("true", patch={"linux": {"cgroupsPath": cgroups_path}})
    out = cli(ocirt_bin, tmp_root, "--systemd-cgroup", "create", "-b", str(b), cid, check=False)
    assert out.returncode == 1 and message in out.stderr
    assert not (tmp_root / cid).exists()


@needs_systemd
def test_under_systemd_devices_are_confined(ocirt_bin: str, tmp_root: Path, bundle) -> None:
    """A node for an allowed device opens; one for /dev/mem (not allowed) does not.

    The process has CAP_MKNOD and CAP_SYS_RAWIO, so only the device cgroup
    (systemd's DevicePolicy and our eBPF filter) can refuse /dev/mem.
    """
    cid = unique("dev")
    script = (
        "mknod /dev/z c 1 5 && head -c1 /dev/z >/dev/null && echo zero-ok; "
        "mknod /dev/m c 1 1 && head -c1 /dev/m >/dev/null; true"
    )
    caps = ["CAP_MKNOD", "CAP_SYS_RAWIO", "CAP_DAC_OVERRIDE"]
    b = bundle(
        "sh",
        "-c",
        script,
        patch={
            "linux": {"cgroupsPath": f"system.slice:ocirt-t:{cid}"},
            "process": {"capabilities": {k: caps for k in ("bounding", "effective", "permitted")}},
        },
    )
    out = subprocess.run(
        [ocirt_bin, "--root", str(tmp_root), "--systemd-cgroup", "run", "-b", str(b), cid],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "zero-ok" in out.stdout
    assert "/dev/m: Operation not permitted" in out.stdout + out.stderr
