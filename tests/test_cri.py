"""Kubernetes through CRI: containerd 1.6's CRI plugin runs pods on ocirt and on runc.

One containerd for the whole module (tests/cri_support.py: private mount, PID and
network namespaces, CNI bridge, pause and busybox images built here), two
RuntimeClass handlers: ``runc`` (Debian's runc 1.1.5, the control that proves the
harness) and ``ocirt``.  Every test drives the CRI v1 gRPC API as kubelet does, does
the same thing on both handlers, and compares: each handler's observations must equal
the expected ones, so a difference between the two shows as a dict diff.

Slow (a few seconds per pod): marked ``cluster``, skipped by ``make test-fast``.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cri_support import (
    CGROUP_ROOT,
    NAMESPACE,
    SUBNET_PREFIX,
    Cri,
    Pod,
    missing_prerequisites,
    pod,
    running_cri,
    websocket_exec,
)

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[1]
HANDLERS = ("runc", "ocirt")
MiB = 1 << 20


def _api() -> Any:
    from cri_api.v1 import api_pb2

    return api_pb2


@pytest.fixture(scope="module")
def cri() -> Iterator[Cri]:
    reason = missing_prerequisites()
    if reason:
        pytest.skip(reason)
    runc = os.environ.get("RUNC") or shutil.which("runc")
    ocirt = os.environ.get("OCIRT") or str(REPO / ".venv" / "bin" / "ocirt")
    if not runc:
        pytest.skip("runc is not installed (the control handler)")
    if not os.access(ocirt, os.X_OK):
        pytest.skip(f"no ocirt binary at {ocirt}")
    with running_cri({"runc": runc, "ocirt": ocirt}) as daemon:
        yield daemon


def _each_handler(cri: Cri, check: Callable[[Pod], dict[str, Any]], name: str) -> dict[str, Any]:
    """CHECK run in a fresh pod on each handler: {handler: observations}."""
    observed = {}
    for handler in HANDLERS:
        with pod(cri, handler, f"{name}-{handler}") as p:
            try:
                observed[handler] = check(p)
            except Exception as e:
                raise AssertionError(f"handler {handler}: {e}\n{cri.log_tail()}") from e
    return observed


def _same_as(expected: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {handler: expected for handler in HANDLERS}


def _exec(p: Pod, cid: str, *cmd: str, timeout: int = 30) -> Any:
    request = _api().ExecSyncRequest(container_id=cid, cmd=list(cmd), timeout=timeout)
    return p.cri.runtime.ExecSync(request, timeout=timeout + 30)


def _out(p: Pod, cid: str, *cmd: str) -> str:
    result = _exec(p, cid, *cmd)
    assert result.exit_code == 0, f"{cmd}: exit {result.exit_code}, {result.stderr!r}"
    return result.stdout.decode()


def _status(p: Pod, cid: str) -> Any:
    request = _api().ContainerStatusRequest(container_id=cid)
    return p.cri.runtime.ContainerStatus(request, timeout=30).status


def _wait_exited(p: Pod, cid: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        status = _status(p, cid)
        if status.state == _api().ContainerState.CONTAINER_EXITED:
            return status
        assert time.monotonic() < deadline, f"{cid} still {status.state} after {timeout}s"
        time.sleep(0.1)


def _cgroup_file(hierarchy: str, cgroup: str, name: str) -> str:
    return (CGROUP_ROOT / hierarchy / cgroup.lstrip("/") / name).read_text().strip()


SLEEP = ["sleep", "1000"]


# ----------------------------------------------------------------- the pod


def test_pod_ip_hostname_and_shared_namespaces(cri: Cri) -> None:
    """RunPodSandbox: a pod IP from the CNI bridge's subnet, on the containers'
    eth0; the pod's hostname and DNS config; two containers share the pod's
    network, IPC and UTS namespaces but not their PID namespaces (kubelet's
    default)."""

    def check(p: Pod) -> dict[str, Any]:
        status = p.cri.runtime.PodSandboxStatus(
            _api().PodSandboxStatusRequest(pod_sandbox_id=p.id), timeout=30
        ).status
        ip = status.network.ip
        a = p.create_and_start("a", SLEEP)
        b = p.create_and_start("b", SLEEP)
        links = "for n in net ipc uts pid; do readlink /proc/1/ns/$n; done"
        ns = {cid: _out(p, cid, "sh", "-c", links).split() for cid in (a, b)}
        return {
            "ready": status.state == _api().PodSandboxState.SANDBOX_READY,
            "ip in the pod subnet": ip.startswith(SUBNET_PREFIX) and ip != SUBNET_PREFIX + "1",
            "eth0 has the pod ip": f"inet {ip}/24"
            in _out(p, a, "ip", "-4", "addr", "show", "eth0"),
            "hostname": _out(p, b, "hostname").strip(),
            "resolv.conf": _out(p, a, "cat", "/etc/resolv.conf").split(),
            "same net, ipc, uts": ns[a][:3] == ns[b][:3],
            "own pid ns": ns[a][3] != ns[b][3],
            "gateway answers": _exec(p, a, "ping", "-c1", "-W5", SUBNET_PREFIX + "1").exit_code,
            "made by ocirt": [_made_by_ocirt(p, i) for i in (p.id, a, b)],
        }

    observed = _each_handler(cri, check, "net")
    made_by_ocirt = {"runc": [False] * 3, "ocirt": [True] * 3}
    assert observed == {
        handler: {
            "ready": True,
            "ip in the pod subnet": True,
            "eth0 has the pod ip": True,
            "hostname": f"net-{handler}",
            "resolv.conf": ["search", "ocirt.test", "nameserver", SUBNET_PREFIX + "1"],
            "same net, ipc, uts": True,
            "own pid ns": True,
            "gateway answers": 0,
            "made by ocirt": made_by_ocirt[handler],
        }
        for handler in HANDLERS
    }


def _made_by_ocirt(p: Pod, cid: str) -> bool:
    """Whether the handler's runtime was ocirt: its state directory (under the
    shim's --root) holds ocirt's state.marshal beside state.json; runc's has
    only state.json.  Proves the handlers are not both runc (or both ocirt)."""
    state_dir = p.cri.daemon_path(f"/run/containerd/runc/{NAMESPACE}/{cid}")
    assert (state_dir / "state.json").exists(), f"no runtime state for {cid}"
    return (state_dir / "state.marshal").exists()


# ----------------------------------------------------------------- cgroups and limits


def _limits(**fields: int) -> Any:
    return _api().LinuxContainerResources(**fields)


def _cgroup_limits(cgroup: str) -> dict[str, str]:
    return {
        "memory.limit_in_bytes": _cgroup_file("memory", cgroup, "memory.limit_in_bytes"),
        "cpu.cfs_quota_us": _cgroup_file("cpu", cgroup, "cpu.cfs_quota_us"),
        "cpu.cfs_period_us": _cgroup_file("cpu", cgroup, "cpu.cfs_period_us"),
        "cpu.shares": _cgroup_file("cpu", cgroup, "cpu.shares"),
    }


def test_cgroup_parent_limits_and_oom_score_adj(cri: Cri) -> None:
    """CreateContainer/StartContainer with kubelet's cgroup parent, limits and a
    BestEffort pod's oom_score_adj: the sandbox and the container sit in
    <parent>/<id> in every hierarchy, the host's cgroup files hold the limits."""

    def check(p: Pod) -> dict[str, Any]:
        resources = _limits(cpu_period=100000, cpu_quota=50000, cpu_shares=512,
                            memory_limit_in_bytes=64 * MiB, oom_score_adj=1000)  # fmt: skip
        cid = p.create_and_start("limited", SLEEP, resources)
        cgroup = f"{p.cgroup_parent}/{cid}"
        lines = _out(p, cid, "cat", "/proc/1/cgroup").splitlines()
        hierarchies = {line.split(":")[1]: line.split(":", 2)[2] for line in lines}
        pause_cgroup = CGROUP_ROOT / "memory" / p.cgroup_parent.lstrip("/") / p.id
        return {
            "in <parent>/<id> everywhere": set(hierarchies.values()) == {cgroup},
            "hierarchies": sorted(hierarchies),
            "sandbox in <parent>/<sandbox id>": pause_cgroup.is_dir(),
            "limits": _cgroup_limits(cgroup),
            "oom_score_adj": _out(p, cid, "cat", "/proc/1/oom_score_adj").strip(),
        }

    observed = _each_handler(cri, check, "limits")
    hierarchies = observed["runc"]["hierarchies"]
    assert "memory" in hierarchies and "cpu" in hierarchies, hierarchies
    assert observed == _same_as({
        "in <parent>/<id> everywhere": True,
        "hierarchies": hierarchies,
        "sandbox in <parent>/<sandbox id>": True,
        "limits": {"memory.limit_in_bytes": str(64 * MiB), "cpu.cfs_quota_us": "50000",
                   "cpu.cfs_period_us": "100000", "cpu.shares": "512"},
        "oom_score_adj": "1000",
    })  # fmt: skip


def test_update_container_resources_and_stats(cri: Cri) -> None:
    """UpdateContainerResources rewrites the container's cgroup files (the shim
    runs `update --resources -`); ContainerStats reads CPU and memory use."""

    def check(p: Pod) -> dict[str, Any]:
        busy = "i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; exec sleep 1000"
        resources = _limits(cpu_period=100000, cpu_quota=50000, cpu_shares=512,
                            memory_limit_in_bytes=64 * MiB)  # fmt: skip
        cid = p.create_and_start("updated", ["sh", "-c", busy], resources)
        cgroup = f"{p.cgroup_parent}/{cid}"
        before = _cgroup_limits(cgroup)
        update = _limits(cpu_period=100000, cpu_quota=20000, cpu_shares=256,
                         memory_limit_in_bytes=96 * MiB)  # fmt: skip
        p.cri.runtime.UpdateContainerResources(
            _api().UpdateContainerResourcesRequest(container_id=cid, linux=update), timeout=60
        )
        after = _cgroup_limits(cgroup)
        _wait_for_process(p, cid, "sleep 1000")
        stats = p.cri.runtime.ContainerStats(
            _api().ContainerStatsRequest(container_id=cid), timeout=30
        ).stats
        return {
            "before": before,
            "after": after,
            "stats id": stats.attributes.id == cid,
            "cpu used": stats.cpu.usage_core_nano_seconds.value > 0,
            "memory working set": 0 < stats.memory.working_set_bytes.value < 96 * MiB,
            "still running": _status(p, cid).state == _api().ContainerState.CONTAINER_RUNNING,
        }

    observed = _each_handler(cri, check, "update")
    assert observed == _same_as({
        "before": {"memory.limit_in_bytes": str(64 * MiB), "cpu.cfs_quota_us": "50000",
                   "cpu.cfs_period_us": "100000", "cpu.shares": "512"},
        "after": {"memory.limit_in_bytes": str(96 * MiB), "cpu.cfs_quota_us": "20000",
                  "cpu.cfs_period_us": "100000", "cpu.shares": "256"},
        "stats id": True,
        "cpu used": True,
        "memory working set": True,
        "still running": True,
    })  # fmt: skip


def _wait_for_process(p: Pod, cid: str, needle: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while needle not in _out(p, cid, "ps", "-o", "args"):
        assert time.monotonic() < deadline, f"no {needle!r} in {cid} after {timeout}s"
        time.sleep(0.2)


def test_oom_kill_is_reported_as_oomkilled(cri: Cri) -> None:
    """A container over its memory limit is killed by the kernel's OOM killer and
    ContainerStatus says OOMKilled (the shim watches memory.oom_control of the
    cgroup it finds through /proc/<init>/cgroup)."""

    def check(p: Pod) -> dict[str, Any]:
        # dd's 64 MiB buffer is filled from /dev/zero: 16 MiB cannot hold it.
        command = ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"]
        cid = p.create_and_start("hog", command, _limits(memory_limit_in_bytes=16 * MiB))
        status = _wait_exited(p, cid)
        return {"reason": status.reason, "exit code": status.exit_code}

    observed = _each_handler(cri, check, "oom")
    assert observed == _same_as({"reason": "OOMKilled", "exit code": 137})


# ----------------------------------------------------------------- logs and exec


def _log_lines(p: Pod, name: str, count: int, timeout: float = 30) -> list[list[str]]:
    """The CRI log file's lines, ``<RFC 3339 time> <stream> <F|P> <text>``, split."""
    path = p.log_dir / f"{name}.log"
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count or time.monotonic() > deadline:
            return [line.split(" ", 3) for line in lines]
        time.sleep(0.1)


def test_log_file_and_exit_status(cri: Cri) -> None:
    """The container's stdout and stderr reach kubelet's log file (CRI format),
    and a container that ends on its own is EXITED with its code and reason."""

    def check(p: Pod) -> dict[str, Any]:
        script = "echo out one; echo err one >&2; echo out two; exit 3"
        cid = p.create_and_start("talker", ["sh", "-c", script])
        status = _wait_exited(p, cid)
        lines = _log_lines(p, "talker", 3)
        stamps_ok = all(re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", line[0]) for line in lines)
        return {
            "lines": sorted((stream, tag, text) for _, stream, tag, text in lines),
            "timestamps": stamps_ok,
            "exit code": status.exit_code,
            "reason": status.reason,
            "log path": status.log_path == str(p.log_dir / "talker.log"),
        }

    observed = _each_handler(cri, check, "logs")
    assert observed == _same_as({
        "lines": [("stderr", "F", "err one"), ("stdout", "F", "out one"),
                  ("stdout", "F", "out two")],
        "timestamps": True,
        "exit code": 3,
        "reason": "Error",
        "log path": True,
    })  # fmt: skip


def test_exec_sync_output_exit_code_and_timeout(cri: Cri) -> None:
    """ExecSync: stdout, stderr and the exit code of a process run in the
    container; past its timeout the process is killed and the call fails."""

    def check(p: Pod) -> dict[str, Any]:
        cid = p.create_and_start("target", SLEEP)
        result = _exec(p, cid, "sh", "-c", "echo out; echo err >&2; id -u; exit 42")
        started = time.monotonic()
        import grpc

        try:
            _exec(p, cid, "sleep", "77", timeout=1)
            timed_out = "no error"
        except grpc.RpcError as e:
            timed_out = re.sub(r"\d+(\.\d+)?s", "Ns", e.details() or "")
        elapsed = time.monotonic() - started
        return {
            "stdout": result.stdout,
            "stderr": result.stderr,
            "exit code": result.exit_code,
            "timeout error": timed_out,
            "timeout honoured": elapsed < 15,
            "timed-out process killed": "sleep 77" not in _out(p, cid, "ps", "-o", "args"),
        }

    observed = _each_handler(cri, check, "execsync")
    assert observed == _same_as({
        "stdout": b"out\n0\n",
        "stderr": b"err\n",
        "exit code": 42,
        "timeout error": (
            "failed to exec in container: timeout Ns exceeded: context deadline exceeded"
        ),
        "timeout honoured": True,
        "timed-out process killed": True,
    })  # fmt: skip


def _exec_error(p: Pod, cid: str, *cmd: str) -> str:
    """The error ExecSync reports for CMD (the runtime's own text is in it)."""
    import grpc

    try:
        result = _exec(p, cid, *cmd)
    except grpc.RpcError as e:
        return re.sub(r'exec "[0-9a-f]{64}"', "exec ID", e.details() or "")
    return f"no error: exit {result.exit_code}"


def test_exec_sync_error_texts(cri: Cri) -> None:
    """A program that cannot be run: the runtime's error reaches kubelet with
    runc's words (containerd passes them on; users and tools match them)."""

    def check(p: Pod) -> dict[str, Any]:
        cid = p.create_and_start("target", SLEEP)
        return {prog: _exec_error(p, cid, prog) for prog in ("/no/such/program", "/bin")}

    prefix = (
        "failed to exec in container: failed to start exec ID: OCI runtime exec failed: "
        "exec failed: unable to start container process: "
    )
    observed = _each_handler(cri, check, "execerr")
    assert observed == _same_as({
        "/no/such/program": prefix + 'exec: "/no/such/program": '
        "stat /no/such/program: no such file or directory: unknown",
        "/bin": prefix + 'exec: "/bin": permission denied: unknown',
    })  # fmt: skip


def test_streaming_exec(cri: Cri) -> None:
    """Exec returns a URL of containerd's stream server; over it (websocket,
    v4.channel.k8s.io, as kubectl exec) stdin reaches the process, its stdout
    and stderr come back, and the status carries the exit code."""

    def check(p: Pod) -> dict[str, Any]:
        cid = p.create_and_start("shell", SLEEP)
        script = 'read line; echo "got $line"; echo oops >&2; exit 5'
        request = _api().ExecRequest(container_id=cid, cmd=["sh", "-c", script],
                                     stdin=True, stdout=True, stderr=True)  # fmt: skip
        url = p.cri.runtime.Exec(request, timeout=30).url
        host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
        with p.cri.connect_stream(host, int(port)) as sock:
            result = websocket_exec(sock, url, b"hello\n")
        causes = result.status.get("details", {}).get("causes", [])
        return {
            "stdout": result.stdout,
            "stderr": result.stderr,
            "status": result.status.get("status"),
            "reason": result.status.get("reason"),
            "exit code": [c.get("message") for c in causes if c.get("reason") == "ExitCode"],
        }

    observed = _each_handler(cri, check, "stream")
    assert observed == _same_as({
        "stdout": b"got hello\n",
        "stderr": b"oops\n",
        "status": "Failure",
        "reason": "NonZeroExitCode",
        "exit code": ["5"],
    })  # fmt: skip


# ----------------------------------------------------------------- stop and remove


def test_stop_with_grace_period(cri: Cri) -> None:
    """StopContainer sends SIGTERM and waits the grace period: a process that
    handles it exits with its own code at once; one that ignores it (sleep as
    PID 1: no handler, so the kernel drops SIGTERM) is SIGKILLed after it."""

    def check(p: Pod) -> dict[str, Any]:
        polite = p.create_and_start("polite", ["sh", "-c", "trap 'exit 7' TERM; sleep 1000 & wait"])
        deaf = p.create_and_start("deaf", SLEEP)
        _wait_for_process(p, polite, "sleep 1000")
        times = {}
        for cid, grace in ((polite, 20), (deaf, 2)):
            started = time.monotonic()
            request = _api().StopContainerRequest(container_id=cid, timeout=grace)
            p.cri.runtime.StopContainer(request, timeout=60)
            times[cid] = time.monotonic() - started
        polite_status, deaf_status = _status(p, polite), _status(p, deaf)
        return {
            "polite": (polite_status.exit_code, polite_status.reason, times[polite] < 10),
            "deaf": (deaf_status.exit_code, deaf_status.reason, 2 <= times[deaf] < 15),
        }

    observed = _each_handler(cri, check, "stop")
    assert observed == _same_as({"polite": (7, "Error", True), "deaf": (137, "Error", True)})


def test_full_teardown_leaves_nothing(cri: Cri) -> None:
    """StopContainer, RemoveContainer, StopPodSandbox, RemovePodSandbox: then no
    runtime state directory, shim bundle, mount, netns, cgroup or process of the
    pod is left (looked at in containerd's own namespaces and on the host)."""

    def check(p: Pod) -> dict[str, Any]:
        first = p.create_and_start("first", SLEEP)
        second = p.create_and_start("second", ["sh", "-c", "echo bye"])
        ids = [p.id, first, second]
        _wait_exited(p, second)
        before = _traces(p, ids)
        p.remove()  # the four calls, in kubelet's order, each checked by gRPC
        deadline = time.monotonic() + 20  # the shim exits after answering
        while (after := _traces(p, ids)) and time.monotonic() < deadline:
            time.sleep(0.2)
        return {"traces while running": sorted(before), "traces after": after}

    observed = _each_handler(cri, check, "teardown")
    assert observed == _same_as({
        "traces while running": ["cgroups", "mounts", "netns", "runtime state", "shim",
                                 "shim bundle"],
        "traces after": {},
    })  # fmt: skip


def _traces(p: Pod, ids: list[str]) -> dict[str, list[str]]:
    """What the pod's ids hold: {kind: [where]}, kinds without traces left out."""
    cri = p.cri
    runtime_root = cri.daemon_path(f"/run/containerd/runc/{NAMESPACE}")
    bundles = cri.work / "state" / "io.containerd.runtime.v2.task" / NAMESPACE
    mounts = cri.daemon_mounts()
    found = {
        "runtime state": [str(runtime_root / i) for i in ids if (runtime_root / i).exists()],
        "shim bundle": [str(bundles / i) for i in ids if (bundles / i).exists()],
        "mounts": [m for m in mounts if any(i in m for i in ids)],
        "netns": [m for m in mounts if m.startswith("/run/netns/")],
        "cgroups": [
            str(h / p.cgroup_parent.lstrip("/") / i)
            for h in CGROUP_ROOT.iterdir()
            for i in ids
            if (h / p.cgroup_parent.lstrip("/") / i).exists()
        ],
        "shim": [str(pid) for pid in cri.shim_pids()],
    }
    return {kind: where for kind, where in found.items() if where}
