"""The cgroup managers against the real kernel, compared with runc.

Hierarchy-aware: on this (v1/hybrid) host the tests drive the "fs" driver;
inside the cgroup2 VM (``test_suite_on_cgroup2_vm`` re-runs this module
there) they drive "fs2", devices through the eBPF filter.  Every cgroup made
here is named ``ocirt-test-*`` and removed at teardown.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run_pytest_in_cgroup2_vm

from ocirt import cgroups
from ocirt.cgroups import CgroupError, Manager, manager_for, manager_from_record
from ocirt.linux import syscalls as sc
from ocirt.process.common import join_cgroups_by_tasks

REPO = Path(__file__).resolve().parents[1]
MIB = 1 << 20


def _mode() -> str:
    try:
        return cgroups.mode()
    except OSError:
        return "none"


MODE = _mode()
V2 = MODE == "v2"
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or MODE == "none", reason="needs root and mounted cgroups"
)


def unique(tag: str) -> str:
    return f"ocirt-test-{tag}-{uuid.uuid4().hex[:8]}"


# -- fixtures --------------------------------------------------------------------
@pytest.fixture
def make_manager() -> Iterator[Callable[[str], Manager]]:
    made: list[Manager] = []

    def make(path: str) -> Manager:
        m = manager_for(path, "unused-id", systemd=False, rootless=False)
        m.create()
        made.append(m)
        return m

    yield make
    for m in reversed(made):
        _kill_all(m)
        m.destroy()


@pytest.fixture
def start_in() -> Iterator[Callable[..., subprocess.Popen]]:
    """start_in(manager, *argv): a process that joins the cgroup before exec."""
    procs: list[subprocess.Popen] = []

    def start(m: Manager, *argv: str) -> subprocess.Popen:
        p = subprocess.Popen(
            list(argv or ("sleep", "1000")),
            preexec_fn=lambda: m.apply(os.getpid()),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()


def _kill_all(m: Manager) -> None:
    if m.is_frozen():
        m.thaw()
    for pid in m.pids():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def runc_run(runc_bin: str, tmp_root: Path) -> Iterator[Callable[[Path, str], dict[str, str]]]:
    """runc_run(bundle, id): runc run -d; returns runc's cgroup paths (state.json).

    Each container is removed with runc itself at teardown (before tmp_root's).
    """
    ids: list[str] = []

    def run(bundle: Path, cid: str) -> dict[str, str]:
        ids.append(cid)
        # The container inherits stdio: no pipes, or run() would wait for it.
        subprocess.run(
            [runc_bin, "--root", str(tmp_root), "run", "-d", "-b", str(bundle), cid],
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=120,
        )
        state = json.loads((tmp_root / cid / "state.json").read_text())
        return state["cgroup_paths"]

    yield run
    for cid in ids:
        subprocess.run(
            [runc_bin, "--root", str(tmp_root), "delete", "-f", cid],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
            check=False,
        )


# -- what this kernel supports ------------------------------------------------------
def _root_controllers() -> set[str]:
    if V2:
        return set(Path("/sys/fs/cgroup/cgroup.controllers").read_text().split())
    return {c for c, (_mnt, _root) in _v1_hierarchies().items()}


def _v1_hierarchies() -> dict[str, tuple[str, str]]:
    from ocirt.cgroups import v1

    return v1._hierarchies()


def _block_device() -> tuple[int, int] | None:
    for name in sorted(os.listdir("/sys/block")):
        if name.startswith(("loop", "ram", "zram")):
            continue
        major, minor = Path(f"/sys/block/{name}/dev").read_text().split(":")
        return int(major), int(minor)
    return None


def _swap_accounting() -> bool:
    """The kernel accounts swap per cgroup (CONFIG_MEMCG_SWAP, not swapaccount=0):
    v1's memory.memsw.* files, v2's memory.swap.max; without it runc refuses a
    swap limit, so the tests leave it out."""
    if V2:
        return _v2_child_file("memory.swap.max", "memory.max")
    mem = _v1_hierarchies().get("memory")
    return bool(mem) and os.path.exists(os.path.join(mem[0], "memory.memsw.limit_in_bytes"))


def _v2_child_file(name: str, controller_file: str) -> bool:
    """A child of the cgroup2 root has NAME (the root has few of the interface
    files), judged only among children where the controller's files are there
    (CONTROLLER_FILE: it is enabled for them)."""
    children = [p for p in Path("/sys/fs/cgroup").iterdir() if p.is_dir()]
    return any((c / name).exists() for c in children if (c / controller_file).exists())


def _block_weight_file() -> bool:
    """A weight file for blockIO.weight: v1's blkio.weight (CFQ) or blkio.bfq.weight
    (BFQ), v2's io.weight (iocost) or io.bfq.weight.  Without one (block devices
    using "none" or mq-deadline, the default on many hosts) runc refuses the config."""
    if V2:
        return any(_v2_child_file(n, "io.stat") for n in ("io.weight", "io.bfq.weight"))
    blkio = _v1_hierarchies().get("blkio")
    return bool(blkio) and any(
        os.path.exists(os.path.join(blkio[0], n)) for n in ("blkio.weight", "blkio.bfq.weight")
    )


def _block_throttling() -> bool:
    """The throttle files (CONFIG_BLK_DEV_THROTTLING): v1's blkio.throttle.*, v2's io.max."""
    if V2:
        return _v2_child_file("io.max", "io.stat")
    blkio = _v1_hierarchies().get("blkio")
    return bool(blkio) and os.path.exists(os.path.join(blkio[0], "blkio.throttle.read_bps_device"))


def host_resources() -> dict[str, Any]:
    """Every linux.resources setting this kernel supports, with non-default values."""
    r: dict[str, Any] = {
        "memory": {"limit": 64 * MIB, "reservation": 32 * MIB},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 42},
    }
    if _swap_accounting():
        r["memory"]["swap"] = 128 * MIB
    if not V2:
        r["memory"].update({"swappiness": 10, "disableOOMKiller": True})
        cpu_mount = _v1_hierarchies()["cpu"][0]
        if os.path.exists(os.path.join(cpu_mount, "cpu.rt_runtime_us")):
            r["cpu"].update({"realtimeRuntime": 1000, "realtimePeriod": 1000000})
    controllers = _root_controllers()
    if ("io" if V2 else "blkio") in controllers:
        block: dict[str, Any] = {}
        if _block_weight_file():
            block["weight"] = 300
        dev = _block_device()
        if dev and _block_throttling():
            block["throttleReadBpsDevice"] = [{"major": dev[0], "minor": dev[1], "rate": MIB}]
            block["throttleWriteIOPSDevice"] = [{"major": dev[0], "minor": dev[1], "rate": 100}]
        if block:
            r["blockIO"] = block
    if (
        V2
        and "hugetlb" in controllers
        and os.path.isdir("/sys/kernel/mm/hugepages/hugepages-2048kB")
    ):
        r["hugepageLimits"] = [{"pageSize": "2MB", "limit": 4 * MIB}]
    return r


V1_FILES = {
    "memory": (
        "memory.limit_in_bytes",
        "memory.memsw.limit_in_bytes",
        "memory.soft_limit_in_bytes",
        "memory.kmem.limit_in_bytes",
        "memory.kmem.tcp.limit_in_bytes",
        "memory.swappiness",
        "memory.oom_control",
    ),
    "cpu": (
        "cpu.shares",
        "cpu.cfs_quota_us",
        "cpu.cfs_period_us",
        "cpu.rt_runtime_us",
        "cpu.rt_period_us",
    ),
    "cpuset": ("cpuset.cpus", "cpuset.mems"),
    "pids": ("pids.max",),
    "blkio": (
        "blkio.weight",
        "blkio.bfq.weight",
        "blkio.throttle.read_bps_device",
        "blkio.throttle.write_iops_device",
    ),
    "devices": ("devices.list",),
}
V2_FILES = (
    "memory.max",
    "memory.swap.max",
    "memory.low",
    "cpu.weight",
    "cpu.max",
    "cpuset.cpus",
    "cpuset.mems",
    "pids.max",
    "io.weight",
    "io.bfq.weight",
    "io.max",
    "hugetlb.2MB.max",
    "hugetlb.2MB.rsvd.max",
)


def cgroup_values(paths: dict[str, str]) -> dict[str, str]:
    """The compared files of a cgroup (by controller on v1); absent files skipped."""
    out = {}
    files = {"": V2_FILES} if V2 else V1_FILES
    for controller, names in files.items():
        directory = paths.get(controller)
        for name in names:
            path = os.path.join(directory or "", name)
            if directory and os.path.exists(path):
                text = Path(path).read_text()
                if name in ("memory.oom_control", "devices.list"):
                    # oom_control also counts events; devices.list order is the kernel's
                    lines = [
                        ln
                        for ln in text.splitlines()
                        if not ln.startswith(("under_oom", "oom_kill "))
                    ]
                    text = "\n".join(sorted(lines))
                out[f"{controller}/{name}"] = text.strip()
    return out


def read_setting(m: Manager, v1: tuple[str, str], v2: str) -> str:
    if V2:
        return Path(m.paths()[""], v2).read_text().strip()
    controller, name = v1
    return Path(m.paths()[controller], name).read_text().strip()


# -- paths ----------------------------------------------------------------------------
def test_default_path_is_runcs(runc_run, bundle) -> None:
    """ "" (the id) lands where runc puts it, in every hierarchy."""
    cid = unique("path")
    runc_paths = runc_run(bundle("sleep", "1000"), cid)
    ours = manager_for("", cid, systemd=False, rootless=False).paths()
    assert ours == runc_paths


def test_relative_and_absolute_paths() -> None:
    own = cgroups.parse_proc_cgroup()
    rel = manager_for("a/../b/ocirt-x", "id", systemd=False, rootless=False).paths()
    absolute = manager_for("/ocirt-y/z", "id", systemd=False, rootless=False).paths()
    if V2:
        parent = os.path.dirname(own[""])
        assert rel[""] == os.path.normpath(f"/sys/fs/cgroup/{parent}/b/ocirt-x")
        assert absolute == {"": "/sys/fs/cgroup/ocirt-y/z"}
    else:
        mnt = _v1_hierarchies()["memory"][0]
        assert rel["memory"] == os.path.normpath(f"{mnt}/{own['memory']}/b/ocirt-x")
        assert absolute["memory"] == f"{mnt}/ocirt-y/z"
        assert absolute["devices"].endswith("/ocirt-y/z")


# -- set: the files runc writes -------------------------------------------------------------
def test_set_matches_runc(
    runc_bin: str, tmp_root: Path, runc_run, bundle, make_manager, start_in
) -> None:
    resources = host_resources()
    b = bundle(
        "sleep",
        "1000",
        patch={"linux": {"cgroupsPath": "/" + unique("runc"), "resources": resources}},
    )
    cid = unique("cmp")
    runc_paths = runc_run(b, cid)
    config = json.loads((b / "config.json").read_text())

    ours = make_manager("/" + unique("ours"))
    ours.set(cgroups.with_default_devices(config["linux"]["resources"]))
    start_in(ours)
    expected = cgroup_values(runc_paths)
    assert expected, "no cgroup file was compared"
    assert cgroup_values(ours.paths()) == expected

    # Then what docker's `update` sends, through runc update and through ours.
    update = REPO.parent / "shared/reference/configs/docker-update-resources.json"
    if update.exists():
        subprocess.run(
            [runc_bin, "--root", str(tmp_root), "update", "-r", str(update), cid],
            check=True,
            capture_output=True,
            timeout=60,
        )
        ours.set(json.loads(update.read_text()), update=True)
        assert cgroup_values(ours.paths()) == cgroup_values(runc_paths)


def test_devices_are_enforced(make_manager, start_in) -> None:
    """Default deny + runc's allow list: /dev/null opens, /dev/kmsg (1:11) does not."""
    m = make_manager("/" + unique("dev"))
    m.set(cgroups.with_default_devices({"devices": [{"allow": False, "access": "rwm"}]}))
    for dev, allowed in (("/dev/null", True), ("/dev/zero", True), ("/dev/kmsg", False)):
        p = start_in(m, "dd", f"if={dev}", "count=0")
        _, err = p.communicate(timeout=60)
        assert (p.returncode == 0) == allowed, (dev, err)
        if not allowed:
            assert b"Operation not permitted" in err


def test_device_rules_replace_on_second_set(make_manager, start_in) -> None:
    m = make_manager("/" + unique("dev2"))
    m.set(cgroups.with_default_devices({"devices": [{"allow": False, "access": "rwm"}]}))
    rules = [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "rw"},
    ]
    m.set({"devices": rules})  # only kmsg now: /dev/null is denied
    null = start_in(m, "dd", "if=/dev/null", "count=0")
    kmsg = start_in(m, "dd", "if=/dev/kmsg", "count=0")
    assert null.wait(timeout=60) != 0
    assert kmsg.wait(timeout=60) == 0
    if V2:
        from ocirt.cgroups import devices_bpf

        fd = os.open(m.paths()[""], os.O_RDONLY | os.O_DIRECTORY)
        try:
            assert len(devices_bpf.attached_programs(fd)) == 1
        finally:
            os.close(fd)


def test_update_zero_leaves_settings(make_manager) -> None:
    m = make_manager("/" + unique("upd"))
    m.set({"memory": {"limit": 64 * MIB}, "cpu": {"shares": 512, "quota": 50000, "period": 100000}})
    before = cgroup_values(m.paths())
    zeros = {
        "memory": {"limit": 0, "reservation": 0, "swap": 0, "kernel": 0},
        "cpu": {"shares": 0, "quota": 0, "period": 0},
        "blockIO": {"weight": 0},
        "pids": {"limit": 0},
    }
    m.set(zeros, update=True)
    assert cgroup_values(m.paths()) == before

    m.set({"memory": {"limit": 32 * MIB}, "cpu": {"quota": 20000}}, update=True)
    assert read_setting(m, ("memory", "memory.limit_in_bytes"), "memory.max") == str(32 * MIB)
    if V2:
        assert read_setting(m, ("cpu", ""), "cpu.max") == "20000 100000"
    else:
        assert read_setting(m, ("cpu", "cpu.cfs_quota_us"), "") == "20000"
        assert read_setting(m, ("cpu", "cpu.cfs_period_us"), "") == "100000"
        assert read_setting(m, ("cpu", "cpu.shares"), "") == "512"


def test_shares_convert_to_weight() -> None:
    assert cgroups.shares_to_weight(2) == 1
    assert cgroups.shares_to_weight(1024) == 39
    assert cgroups.shares_to_weight(262144) == 10000
    assert cgroups.blkio_weight_to_io_weight(10) == 1
    assert cgroups.blkio_weight_to_io_weight(1000) == 10000


@pytest.mark.skipif(V2, reason="cgroup v1 only")
def test_v1_refuses_unified(make_manager) -> None:
    m = make_manager("/" + unique("uni"))
    with pytest.raises(CgroupError, match="cannot use unified on cgroup v1"):
        m.set({"unified": {"memory.high": "1000000"}})


@pytest.mark.skipif(not V2, reason="cgroup v2 only")
def test_v2_unified_and_errors(make_manager) -> None:
    m = make_manager("/" + unique("uni"))
    m.set({"unified": {"memory.high": str(48 * MIB)}})
    assert Path(m.paths()[""], "memory.high").read_text().strip() == str(48 * MIB)
    with pytest.raises(CgroupError, match="unable to set swap limit without memory limit"):
        m.set({"memory": {"swap": 64 * MIB}})
    with pytest.raises(CgroupError, match="no slashes"):
        m.set({"unified": {"../memory.high": "1"}})


# -- processes, freezer, stats, OOM -----------------------------------------------------------
def test_apply_pids_freeze_thaw(make_manager, start_in) -> None:
    m = make_manager("/" + unique("frz"))
    p = start_in(m)
    assert m.pids() == [p.pid]
    for path in set(m.paths().values()):
        assert str(p.pid) in Path(path, "cgroup.procs").read_text().split()
    assert not m.is_frozen()
    m.freeze()
    assert m.is_frozen()
    assert manager_from_record(m.to_record()).is_frozen()
    assert cgroups.is_frozen({"cgroup": m.to_record()})
    m.thaw()
    assert not m.is_frozen()
    assert not cgroups.is_frozen({"cgroup": m.to_record()})
    assert not cgroups.is_frozen({})


def test_stats_shape(make_manager, start_in) -> None:
    m = make_manager("/" + unique("st"))
    m.set({"memory": {"limit": 64 * MIB}, "pids": {"limit": 10}})
    start_in(m)
    stats = m.stats()
    assert set(stats) >= {"cpu", "memory", "pids", "blkio", "hugetlb"}
    assert stats["pids"] == {"current": 1, "limit": 10}
    assert stats["memory"]["usage"]["limit"] == 64 * MIB
    assert stats["memory"]["usage"]["usage"] > 0
    assert set(stats["cpu"]["usage"]) >= {"kernel", "user"}
    json.dumps(stats)  # what events --stats prints


def test_oom_kill_is_counted_and_notified(make_manager, start_in) -> None:
    m = make_manager("/" + unique("oom"))
    limits: dict[str, Any] = {"limit": 16 * MIB}
    if _swap_accounting():
        limits["swap"] = 16 * MIB  # no swap either
    m.set({"memory": limits})
    fd = m.oom_event_fd()
    try:
        hog = start_in(m, sys.executable, "-c", "b = b'x' * (512 << 20)")
        assert hog.wait(timeout=120) == -signal.SIGKILL
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLPRI)
        assert poller.poll(10_000), "no OOM notification"
    finally:
        os.close(fd)
    assert m.oom_count() >= 1


# -- a new process joins without a grace period (create's init, exec's process) ------------------
def _fork_and_join(m: Manager) -> tuple[int, int]:
    """A child cloned into m.cgroup_fd() that writes "0" to m.tasks_files() itself,
    as the init and exec's process do; (pid, fd whose EOF tells it to exit)."""
    files = m.tasks_files()
    cgroup_fd = m.cgroup_fd()
    ready_r, ready_w = os.pipe()
    hold_r, hold_w = os.pipe()
    try:
        pid = sc.fork_with_flags(0, cgroup_fd)
        if pid == 0:  # pragma: no cover - the child
            status = 1
            os.close(hold_w)  # or reading hold_r never ends
            try:
                join_cgroups_by_tasks(tuple(files), "join")
                os.write(ready_w, b"ok")
                os.read(hold_r, 1)
                status = 0
            except BaseException as e:
                os.write(ready_w, str(e).encode())
            os._exit(status)
    finally:
        for fd, _ in files:
            os.close(fd)
        if cgroup_fd >= 0:
            os.close(cgroup_fd)
        os.close(ready_w)
        os.close(hold_r)
    assert os.read(ready_r, 4096) == b"ok"
    os.close(ready_r)
    return pid, hold_w


def test_a_new_process_joins_by_itself(make_manager) -> None:
    """v1: "0" to each tasks file; v2 and hybrid's cgroup2: cloned into it.  Nothing left
    for apply(), which would write cgroup.procs and wait for an RCU grace period."""
    m = make_manager("/" + unique("join"))
    files = m.tasks_files()
    cgroup_fd = m.cgroup_fd()
    placed = {"cloned_into": cgroup_fd >= 0, "self_joined": bool(files)}
    try:
        v1_dirs = sorted({d for d in m.paths().values() if Path(d, "tasks").exists()})
        assert sorted(d for _, d in files) == v1_dirs
        assert (cgroup_fd >= 0) == ("" in m.paths())  # v2, or a hybrid host's cgroup2 mount
    finally:
        for fd, _ in files:
            os.close(fd)
        if cgroup_fd >= 0:
            os.close(cgroup_fd)
    assert not m.needs_apply(**placed)
    assert m.needs_apply()
    pid, hold = _fork_and_join(m)
    try:
        assert m.pids() == [pid]
        for path in set(m.paths().values()):
            assert str(pid) in Path(path, "cgroup.procs").read_text().split(), path
    finally:
        os.close(hold)
        os.waitpid(pid, 0)


@pytest.mark.skipif(V2, reason="v1 cpuset: a cgroup without cpus takes no task")
def test_a_failed_self_join_names_the_file() -> None:
    empty = Path("/sys/fs/cgroup/cpuset", unique("nocpus"))
    empty.mkdir()
    try:
        files = [(cgroups.open_tasks_file(str(empty)), str(empty))]
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                join_cgroups_by_tasks(tuple(files), "unable to apply cgroup configuration")
                os.write(write_end, b"joined")
            except OSError as e:
                os.write(write_end, f"{e.errno} {e.strerror}".encode())
            os._exit(0)
        os.close(write_end)
        for fd, _ in files:
            os.close(fd)
        got = os.read(read_end, 4096).decode()
        os.close(read_end)
        os.waitpid(pid, 0)
        assert got == (
            f"{errno.ENOSPC} unable to apply cgroup configuration:"
            f" failed to write 0 to {empty}/tasks: no space left on device"
        )
    finally:
        empty.rmdir()


# -- destroy ----------------------------------------------------------------------------------
def test_destroy_removes_what_it_created() -> None:
    top = unique("nest")
    m = manager_for(f"/{top}/mid/leaf", "id", systemd=False, rootless=False)
    m.create()
    created = m.to_record()["created"]
    assert created and all(os.path.isdir(d) for d in created)
    p = subprocess.Popen(["sleep", "1000"], preexec_fn=lambda: m.apply(os.getpid()))
    p.kill()  # destroy right away: the kernel may still be tearing it down (EBUSY)
    m.destroy()
    p.wait()
    assert not any(os.path.exists(d) for d in created)
    assert not any(os.path.exists(p) for p in m.paths().values())


def test_destroy_keeps_a_joined_cgroup(make_manager) -> None:
    path = "/" + unique("pre")
    owner = make_manager(path)
    joiner = manager_from_record(manager_for(path, "id", systemd=False, rootless=False).to_record())
    joiner.create()
    assert joiner.to_record()["created"] == []
    joiner.destroy()
    assert all(os.path.isdir(p) for p in owner.paths().values())


def test_systemd_driver_refused_without_systemd() -> None:
    if os.path.isdir("/run/systemd/system"):
        pytest.skip("systemd runs here")
    with pytest.raises(CgroupError, match="systemd not running on this host"):
        manager_for("system.slice:ocirt:x", "x", systemd=True, rootless=False)


# -- the same tests on a pure cgroup v2 kernel ---------------------------------------------------
@pytest.mark.skipif(V2, reason="already running on cgroup v2")
def test_suite_on_cgroup2_vm() -> None:
    print(run_pytest_in_cgroup2_vm(["tests/test_cgroups.py"], timeout=900))
