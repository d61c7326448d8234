"""Process and linux fields beyond the basics, checked from inside the container.

scheduler, ioPriority, personality, memoryPolicy, the time namespace with
timeOffsets, netDevices; fields this host cannot honour (an LSM it does not
run, Intel RDT, CPUs it lacks) must fail at ``create`` naming the field and
leave nothing behind.  execCPUAffinity applies to ``exec`` only (the spec);
its function is checked on its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import call_runtime, ok

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ocirt.linux import scheduling  # noqa: E402


def run(ocirt: str, root: Path, bundle: Path, name: str = "c1") -> subprocess.CompletedProcess[str]:
    return call_runtime(ocirt, root, "run", "-b", str(bundle), name)


def refused(
    ocirt: str, root: Path, bundle: Path, field: str, words: str
) -> subprocess.CompletedProcess[str]:
    """`create` fails naming FIELD and leaves no state dir and no process."""
    name = "refused-" + uuid.uuid4().hex[:8]
    proc = subprocess.run(
        [ocirt, "--root", str(root), "create", "-b", str(bundle), name],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert field in proc.stderr and words in proc.stderr, proc.stderr
    assert not (root / name).exists()
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(bundle) not in ps
    return proc


def sh(script: str) -> tuple[str, ...]:
    return ("sh", "-c", script)


# ------------------------------------------------------------------ rlimits


def test_rlimits_unlimited_and_numbers(ocirt_bin: str, tmp_root: Path, bundle: Any) -> None:
    """uint64's max is "unlimited" (the kernel's RLIM_INFINITY), the rest as given."""
    limits = [
        {"type": "RLIMIT_CORE", "soft": 2**64 - 1, "hard": 2**64 - 1},
        {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1000},
        {"type": "RLIMIT_RTTIME", "soft": 7, "hard": 9},  # not in Python's resource module
    ]
    b = bundle(
        *sh("ulimit -c; ulimit -n; ulimit -Hn; grep 'Max realtime timeout' /proc/self/limits")
    )
    patch = json.loads((b / "config.json").read_text())
    patch["process"]["rlimits"] = limits
    (b / "config.json").write_text(json.dumps(patch))
    core, soft, hard, rttime = ok(run(ocirt_bin, tmp_root, b)).splitlines()
    assert (core, soft, hard) == ("unlimited", "512", "1000")
    assert rttime.split()[3:5] == ["7", "9"], rttime


def test_rlimit_above_the_hosts_hard_limit_fails_like_runc(
    ocirt_bin: str, runc_bin: str, tmp_root: Path, bundle: Any
) -> None:
    """Raising a hard limit needs CAP_SYS_RESOURCE, which this host's bounding set lacks."""
    if _has_cap_sys_resource():
        pytest.skip("with CAP_SYS_RESOURCE the hard limit can be raised")
    b = bundle("true")
    config = json.loads((b / "config.json").read_text())
    hard = int(Path("/proc/self/limits").read_text().split("Max open files")[1].split()[1]) + 1
    config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": hard}]
    (b / "config.json").write_text(json.dumps(config))
    theirs = call_runtime(runc_bin, tmp_root, "create", "-b", str(b), "rl-runc")
    assert theirs.returncode == 1 and "operation not permitted" in theirs.stderr
    refused(
        ocirt_bin,
        tmp_root,
        b,
        f"error setting rlimit type RLIMIT_NOFILE to soft=1024 hard={hard}",
        "operation not permitted",
    )


def _has_cap_sys_resource() -> bool:
    status = Path("/proc/self/status").read_text()
    bounding = int(status.split("CapBnd:")[1].split()[0], 16)
    return bool(bounding & (1 << 24))


# ------------------------------------------------------------------ scheduling


def test_scheduler_batch_with_nice(ocirt_bin: str, tmp_root: Path, bundle: Any) -> None:
    b = bundle(
        *sh("cut -d' ' -f19,41 /proc/self/stat"),
        patch={"process": {"scheduler": {"policy": "SCHED_BATCH", "nice": 7}}},
    )
    assert ok(run(ocirt_bin, tmp_root, b)).split() == ["7", "3"]  # nice 7, policy 3


def test_scheduler_idle(ocirt_bin: str, tmp_root: Path, bundle: Any) -> None:
    b = bundle(
        *sh("cut -d' ' -f41 /proc/self/stat"),
        patch={"process": {"scheduler": {"policy": "SCHED_IDLE"}}},
    )
    assert ok(run(ocirt_bin, tmp_root, b)).strip() == "5"


def test_scheduler_fifo_and_flags_in_a_host_process() -> None:
    """SCHED_FIFO + RESET_ON_FORK through the shim (the container's cgroup v1
    gets no real-time budget on this host, see docs/config-fields.md)."""
    code = (
        "import os; from ocirt.linux import scheduling as s;"
        "s.apply_scheduler({'policy': 'SCHED_FIFO', 'priority': 7,"
        " 'flags': ['SCHED_FLAG_RESET_ON_FORK']});"
        "print(os.sched_getscheduler(0) & 0xff, os.sched_getparam(0).sched_priority);"
        "pid = os.fork();"
        "os._exit(os.sched_getscheduler(0)) if pid == 0 else"
        " print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))"
    )
    if os.geteuid() != 0:
        pytest.skip("real-time policies need root")
    budget = _rt_budget()
    if budget == 0:
        pytest.skip("this process's cgroup v1 has no real-time budget (cpu.rt_runtime_us is 0)")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    ).stdout.split()
    assert out == ["1", "7", "0"]  # FIFO prio 7; the child is reset to SCHED_OTHER


def _rt_budget() -> int | None:
    """cpu.rt_runtime_us of this process's v1 cpu cgroup (CONFIG_RT_GROUP_SCHED: a
    cgroup under the root often gets 0, and SCHED_FIFO is then EPERM); None if
    the kernel has no such budget."""
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if "cpu" in controllers.split(","):
                mounts = (f"/sys/fs/cgroup/{controllers}", "/sys/fs/cgroup/cpu")
                for base in mounts:
                    try:
                        with open(f"{base}{path.rstrip('/')}/cpu.rt_runtime_us") as budget:
                            return int(budget.read())
                    except OSError:
                        continue
    return None


def test_scheduler_checks() -> None:
    assert "priority between 1 and 99" in scheduling.check_scheduler({"policy": "SCHED_RR"})
    assert "takes priority 0" in scheduling.check_scheduler(
        {"policy": "SCHED_OTHER", "priority": 3}
    )
    assert "runtime <= deadline" in scheduling.check_scheduler(
        {"policy": "SCHED_DEADLINE", "runtime": 5, "deadline": 1}
    )
    assert scheduling.check_scheduler({"policy": "SCHED_FIFO", "priority": 50}) is None


@pytest.mark.parametrize(
    ("io_class", "priority", "expected"),
    [("IOPRIO_CLASS_BE", 2, "best-effort: prio 2"), ("IOPRIO_CLASS_IDLE", 7, "idle")],
)
def test_io_priority(
    ocirt_bin: str, tmp_root: Path, bundle: Any, io_class: str, priority: int, expected: str
) -> None:
    b = bundle(
        "ionice", patch={"process": {"ioPriority": {"class": io_class, "priority": priority}}}
    )
    assert ok(run(ocirt_bin, tmp_root, b)).strip() == expected


def test_io_priority_realtime(ocirt_bin: str, tmp_root: Path, bundle: Any) -> None:
    b = bundle(
        "ionice", patch={"process": {"ioPriority": {"class": "IOPRIO_CLASS_RT", "priority": 1}}}
    )
    assert ok(run(ocirt_bin, tmp_root, b)).strip() == "realtime: prio 1"


def test_cpu_list_parsing_and_affinity() -> None:
    assert scheduling.parse_cpu_list("0-3, 7,5") == [0, 1, 2, 3, 5, 7]
    assert scheduling.parse_cpu_list("") == []
    with pytest.raises(ValueError):
        scheduling.parse_cpu_list("3-1")
    assert "not online" in (scheduling.check_cpu_list("0-4095") or "")
    code = (
        "import os; from ocirt.linux import scheduling as s;"
        "s.apply_cpu_affinity({'initial': '0', 'final': ''}, 'initial');"
        "a = sorted(os.sched_getaffinity(0));"
        "s.apply_cpu_affinity({'final': ''}, 'final');"  # empty: left alone
        "print(a, sorted(os.sched_getaffinity(0)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    ).stdout.strip()
    assert out == "[0] [0]"


def test_exec_cpu_affinity_is_validated(ocirt_bin: str, tmp_root: Path, bundle: Any) -> None:
    b = bundle("true", patch={"process": {"execCPUAffinity": {"initial": "0-4095"}}})
    refused(ocirt_bin, tmp_root, b, "process.execCPUAffinity.initial", "not online")


# ------------------------------------------------------------------ personality, NUMA


def test_personality_linux32(ocirt_bin: str, tmp_root: Path, bundle: Any) -> None:
    b = bundle("uname", "-m", patch={"linux": {"personality": {"domain": "LINUX32"}}})
    assert ok(run(ocirt_bin, tmp_root, b)).strip() in ("i686", "armv8l", "ppc", "s390")


def test_personality_flag(ocirt_bin: str, tmp_root: Path, bundle: Any) -> None:
    patch = {"linux": {"personality": {"domain": "LINUX", "flags": ["ADDR_NO_RANDOMIZE"]}}}
    b = bundle(*sh("cat /proc/self/personality"), patch=patch)
    assert int(ok(run(ocirt_bin, tmp_root, b)), 16) == 0x0040000


def test_personality_unknown_flag_refused(ocirt_bin: str, tmp_root: Path, bundle: Any) -> None:
    b = bundle("true", patch={"linux": {"personality": {"domain": "LINUX", "flags": ["NOPE"]}}})
    refused(ocirt_bin, tmp_root, b, "linux.personality.flags", "NOPE")


def test_memory_policy_bind(ocirt_bin: str, tmp_root: Path, bundle: Any) -> None:
    b = bundle(
        *sh("grep -m1 -o 'bind:0' /proc/self/numa_maps"),
        patch={"linux": {"memoryPolicy": {"mode": "MPOL_BIND", "nodes": "0"}}},
    )
    assert ok(run(ocirt_bin, tmp_root, b)).strip() == "bind:0"


def test_memory_policy_interleave_static(ocirt_bin: str, tmp_root: Path, bundle: Any) -> None:
    policy = {"mode": "MPOL_INTERLEAVE", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]}
    b = bundle(
        *sh("grep -m1 -o 'interleave=static:0' /proc/self/numa_maps"),
        patch={"linux": {"memoryPolicy": policy}},
    )
    assert ok(run(ocirt_bin, tmp_root, b)).strip() == "interleave=static:0"


def test_memory_policy_missing_node_refused(ocirt_bin: str, tmp_root: Path, bundle: Any) -> None:
    b = bundle("true", patch={"linux": {"memoryPolicy": {"mode": "MPOL_BIND", "nodes": "63"}}})
    refused(ocirt_bin, tmp_root, b, "linux.memoryPolicy", "not online")


# ------------------------------------------------------------------ time namespace


def _with_time_ns(config: dict[str, Any], offsets: dict[str, Any] | None) -> None:
    config["linux"]["namespaces"].append({"type": "time"})
    if offsets is not None:
        config["linux"]["timeOffsets"] = offsets


def test_time_namespace_and_offsets(ocirt_bin: str, tmp_root: Path, bundle: Any) -> None:
    if not os.path.exists("/proc/self/ns/time"):
        pytest.skip("no time namespaces on this kernel")
    offsets = {"boottime": {"secs": 86400 * 1000}, "monotonic": {"secs": 77, "nanosecs": 5}}
    b = bundle(
        *sh("readlink /proc/self/ns/time; cat /proc/self/timens_offsets; cut -d. -f1 /proc/uptime"),
        patch=lambda c: _with_time_ns(c, offsets),
    )
    lines = ok(run(ocirt_bin, tmp_root, b)).splitlines()
    assert lines[0] != os.readlink("/proc/self/ns/time")  # the program is in the new one
    assert lines[1].split() == ["monotonic", "77", "5"]
    assert lines[2].split() == ["boottime", str(86400 * 1000), "0"]
    assert int(lines[3]) >= 86400 * 1000  # uptime counts the boottime offset


def test_time_offsets_without_time_namespace_refused(
    ocirt_bin: str, tmp_root: Path, bundle: Any
) -> None:
    b = bundle("true", patch={"linux": {"timeOffsets": {"boottime": {"secs": 1}}}})
    refused(ocirt_bin, tmp_root, b, "linux.timeOffsets", "new time namespace")


def test_time_offsets_bad_clock_refused(ocirt_bin: str, tmp_root: Path, bundle: Any) -> None:
    b = bundle("true", patch=lambda c: _with_time_ns(c, {"realtime": {"secs": 1}}))
    refused(ocirt_bin, tmp_root, b, "linux.timeOffsets.realtime", "monotonic and boottime")


# ------------------------------------------------------------------ host cannot do it


def test_apparmor_refused_without_apparmor(ocirt_bin: str, tmp_root: Path, bundle: Any) -> None:
    from ocirt.linux import lsm

    if lsm.apparmor_enabled():
        pytest.skip("this host runs AppArmor")
    b = bundle("true", patch={"process": {"apparmorProfile": "docker-default"}})
    refused(ocirt_bin, tmp_root, b, "process.apparmorProfile", "AppArmor is not enabled")


def test_selinux_refused_without_selinux(ocirt_bin: str, tmp_root: Path, bundle: Any) -> None:
    from ocirt.linux import lsm

    if lsm.selinux_enabled():
        pytest.skip("this host runs SELinux")
    b = bundle("true", patch={"process": {"selinuxLabel": "system_u:system_r:container_t:s0"}})
    refused(ocirt_bin, tmp_root, b, "process.selinuxLabel", "selinux is disabled")


def test_intel_rdt_refused_without_resctrl(ocirt_bin: str, tmp_root: Path, bundle: Any) -> None:
    b = bundle("true", patch={"linux": {"intelRdt": {"closID": "gold"}}})
    refused(ocirt_bin, tmp_root, b, "linux.intelRdt", "resctrl")


def test_unknown_fields_accepted_and_annotations_kept(
    ocirt_bin: str, tmp_root: Path, bundle: Any
) -> None:
    patch = {
        "annotations": {"org.example/key": "value"},
        "org.example.future": {"x": 1},
        "linux": {"org.example.linuxFuture": True},
    }
    b = bundle("sleep", "30", patch=patch)
    subprocess.run(
        [ocirt_bin, "--root", str(tmp_root), "create", "-b", str(b), "ann"],
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=60,
    )
    state = json.loads(
        subprocess.run(
            [ocirt_bin, "--root", str(tmp_root), "state", "ann"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert state["annotations"] == {"org.example/key": "value"}


# ------------------------------------------------------------------ netDevices


@pytest.fixture
def veth() -> Any:
    """A veth pair on the host (this kernel has no dummy driver); removed after."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    name = "ocirt-t" + uuid.uuid4().hex[:6]
    peer = name + "p"
    subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name", peer], check=True)
    subprocess.run(["ip", "addr", "add", "10.213.7.1/24", "dev", name], check=True)
    try:
        yield name
    finally:
        for n in (name, peer):
            subprocess.run(["ip", "link", "del", n], capture_output=True)


def test_net_device_moved_and_renamed(
    ocirt_bin: str, tmp_root: Path, bundle: Any, veth: str
) -> None:
    b = bundle(
        *sh("ip -o addr show ctr0; cat /sys/class/net/ctr0/operstate"),
        patch={"linux": {"netDevices": {veth: {"name": "ctr0"}}}},
    )
    out = ok(run(ocirt_bin, tmp_root, b))
    assert "inet 10.213.7.1/24" in out  # its permanent address came along
    assert not Path(f"/sys/class/net/{veth}").exists()  # a veth dies with the namespace


def test_net_device_restored_on_delete(
    ocirt_bin: str, tmp_root: Path, bundle: Any, veth: str
) -> None:
    from ocirt.linux import netdevices

    b = bundle("sleep", "60", patch={"linux": {"netDevices": {veth: {"name": "ctr1"}}}})
    subprocess.run(
        [ocirt_bin, "--root", str(tmp_root), "create", "-b", str(b), "nd"],
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=60,
    )
    assert not Path(f"/sys/class/net/{veth}").exists()
    record = json.loads((tmp_root / "nd" / "state.json").read_text())
    assert netdevices.restore(record, init_alive=True) == []
    assert Path(f"/sys/class/net/{veth}").exists()  # back, under its host name


def test_net_devices_need_a_network_namespace(ocirt_bin: str, tmp_root: Path, bundle: Any) -> None:
    def patch(c: dict[str, Any]) -> None:
        c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "network"]
        c["linux"]["netDevices"] = {"eth0": {}}

    refused(ocirt_bin, tmp_root, bundle("true", patch=patch), "linux.netDevices", "NET namespace")


def test_net_device_missing_on_host_refused(ocirt_bin: str, tmp_root: Path, bundle: Any) -> None:
    b = bundle("true", patch={"linux": {"netDevices": {"ocirt-none0": {}}}})
    refused(ocirt_bin, tmp_root, b, "ocirt-none0", "the host has no network interface")


# ------------------------------------------------------------------ side by side with runc


def test_conformance_cases_agree_with_runc(ocirt_bin: str, tmp_path: Path) -> None:
    """The cases this issue added: ocirt and runc must report the same."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    runner = REPO / "conformance" / "run.py"
    cases = [
        "userns-*",
        "rootfs-propagation-*",
        "mounts-options-extra",
        "mounts-tmpcopyup",
        "mounts-relative-destination",
        "mounts-bind-file-overlay",
        "devices-custom",
    ]
    args = [
        sys.executable,
        str(runner),
        "--runtime",
        "runc=runc",
        "--runtime",
        f"ocirt={ocirt_bin}",
        "--require-agree",
        "ocirt,runc",
        "--diff-only",
        "--json",
        str(tmp_path / "out.json"),
    ]
    for case in cases:
        args += ["--case", case]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    results = json.loads((tmp_path / "out.json").read_text())["cases"]
    runc = {name: r["results"]["runc"]["probe"] for name, r in results.items()}
    devs = {d["name"]: d for d in runc["devices-custom"]["dev"]}
    assert (devs["/dev/null"]["mode"], devs["/dev/fifo"]["type"]) == ("0600", "p")
    assert (devs["/dev/custom-zero"]["uid"], devs["/dev/custom-zero"]["gid"]) == (1000, 27)
    assert devs["/dev/loop-like"]["type"] == "b" and devs["/dev/unbuffered"]["type"] == "c"
    mounts = {m["target"]: m for m in runc["mounts-options-extra"]["mounts"]}
    assert "nosymfollow" in mounts["/opt-a"]["vfs_options"]
    assert {"ro", "nosuid", "nodev", "noexec"} <= set(mounts["/opt-b"]["vfs_options"].split(","))
    targets = {m["target"] for m in runc["mounts-relative-destination"]["mounts"]}
    assert {"/rel/tmp", "/climb", "/b/c"} <= targets
    user = runc["userns-user-1000"]
    assert (user["uid"], user["groups"]) == (1000, [10])
