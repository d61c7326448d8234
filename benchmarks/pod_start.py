"""Pod start through CRI: RunPodSandbox + CreateContainer + StartContainer, ocirt vs runc.

usage (as root):
    .venv/bin/python benchmarks/pod_start.py [-n 20] [--warmup 2]

Starts one private containerd 1.6 with its CRI plugin and two RuntimeClass
handlers, ``runc`` (Debian's, or $RUNC) and ``ocirt`` (this checkout's launcher, or
$OCIRT), exactly as tests/test_cri.py does (tests/cri_support.py: private
namespaces, CNI bridge, pause and busybox images built here).  Each iteration
starts one pod of one ``sleep`` container on each handler in turn (the order
alternates, so a busy moment of the host hits both), as kubelet would: the three
calls one after the other, timed together; then, timed apart, two ExecSync of
``true`` (what an exec probe costs: the shim runs ``exec --process F --detach``)
and the teardown (stop, remove), and waits until its shim has exited.

CPU: the cgroup v1 cpuacct usage of containerd (which is moved into its own
cgroup, so shims, runtimes and CNI plugins are counted) plus the pods' cgroups,
over the three calls: all the CPU the pod start costs the machine, runtime init
stages included.  Prints medians and the ocirt/runc ratios as a markdown table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import cri_support  # noqa: E402  (tests/ holds the shared harness)

HANDLERS = ("ocirt", "runc")


def _one_pod(cri: cri_support.Cri, handler: str, i: int) -> dict[str, float]:
    pod = cri_support.Pod(cri, handler, f"bench-{handler}-{i}")
    cpu0, t0 = cri.cpu_ns(), time.perf_counter()
    pod.run()
    cid = pod.create("sleeper", ["sleep", "1000"])
    pod.start(cid)
    t1, cpu1 = time.perf_counter(), cri.cpu_ns()
    exec_sync = _exec_sync_ms(cri, cid)
    t2 = time.perf_counter()
    pod.remove()
    t3 = time.perf_counter()
    _wait_no_shims(cri)
    sample = {"start": (t1 - t0) * 1000, "exec": exec_sync, "teardown": (t3 - t2) * 1000}
    if cpu0 is not None and cpu1 is not None:
        sample["cpu"] = (cpu1 - cpu0) / 1e6
    return sample


def _exec_sync_ms(cri: cri_support.Cri, cid: str, times: int = 2) -> float:
    """ExecSync of `true` (an exec probe: the shim runs `exec --process F --detach`)."""
    from cri_api.v1 import api_pb2

    request = api_pb2.ExecSyncRequest(container_id=cid, cmd=["true"], timeout=30)
    elapsed = []
    for _ in range(times):
        started = time.perf_counter()
        result = cri.runtime.ExecSync(request, timeout=60)
        elapsed.append((time.perf_counter() - started) * 1000)
        if result.exit_code != 0:
            raise SystemExit(f"pod_start.py: exec of true exited {result.exit_code}")
    return statistics.fmean(elapsed)


def _wait_no_shims(cri: cri_support.Cri, timeout: float = 20) -> None:
    """A shim exiting late would charge its last CPU to the next pod."""
    deadline = time.monotonic() + timeout
    while cri.shim_pids():
        if time.monotonic() > deadline:
            raise SystemExit("pod_start.py: a shim did not exit after its pod was removed")
        time.sleep(0.05)


def _output(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.strip()


def _versions(handlers: dict[str, str]) -> list[str]:
    lines = []
    git = ["git", "-C", str(REPO)]
    commit = _output([*git, "rev-parse", "--short", "HEAD"])
    dirty = _output([*git, "status", "--porcelain", "--untracked-files=no"])
    lines.append(f"commit: {commit}{' + working tree changes' if dirty else ''}")
    for name, binary in handlers.items():
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
        lines.append(f"{name}: {binary}: {out.stdout.splitlines()[0] if out.stdout else '?'}")
    ctd = subprocess.run(["containerd", "--version"], capture_output=True, text=True, check=False)
    lines.append(f"containerd: {ctd.stdout.strip()}")
    lines.append(f"kernel: {os.uname().release}, load: {os.getloadavg()[0]:.2f}")
    return lines


def _table(samples: dict[str, list[dict[str, float]]]) -> str:
    keys = [k for k in ("start", "cpu", "exec", "teardown")
            if all(k in s[0] for s in samples.values())]  # fmt: skip
    label = {"start": "pod start wall (ms)", "cpu": "pod start CPU (ms)",
             "exec": "ExecSync `true` wall (ms)", "teardown": "teardown wall (ms)"}  # fmt: skip
    rows = ["| row | ocirt median | runc median | ocirt/runc | ocirt mean | runc mean |",
            "|---|---|---|---|---|---|"]  # fmt: skip
    for key in keys:
        med = {h: statistics.median(s[key] for s in samples[h]) for h in HANDLERS}
        mean = {h: statistics.fmean(s[key] for s in samples[h]) for h in HANDLERS}
        rows.append(
            f"| {label[key]} | {med['ocirt']:.1f} | {med['runc']:.1f} | "
            f"{med['ocirt'] / med['runc']:.2f} | {mean['ocirt']:.1f} | {mean['runc']:.1f} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("-n", type=int, default=20, help="timed pods per handler")
    parser.add_argument("--warmup", type=int, default=2, help="untimed pods per handler first")
    args = parser.parse_args()
    reason = cri_support.missing_prerequisites()
    if reason:
        raise SystemExit(f"pod_start.py: {reason}")
    handlers = {
        "ocirt": os.environ.get("OCIRT") or str(REPO / ".venv" / "bin" / "ocirt"),
        "runc": os.environ.get("RUNC") or shutil.which("runc") or "runc",
    }
    samples: dict[str, list[dict[str, float]]] = {h: [] for h in HANDLERS}
    with cri_support.running_cri(handlers) as cri:
        for i in range(args.warmup + args.n):
            order = HANDLERS if i % 2 == 0 else HANDLERS[::-1]
            for handler in order:
                sample = _one_pod(cri, handler, i)
                if i >= args.warmup:
                    samples[handler].append(sample)
    print("\n".join(_versions(handlers)))
    print(f"runs: {args.n} per handler (+{args.warmup} warmup), interleaved\n")
    print(_table(samples))


if __name__ == "__main__":
    main()
