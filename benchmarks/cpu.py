"""CPU and wall time per operation, ocirt beside runc and crun, interleaved.

usage (as root; crun needs the hybrid cgroup mount out of sight):
    tools/nohybrid.sh .venv/bin/python benchmarks/cpu.py [-n 40] [--json OUT]
        [--rows lifecycle,state,exec,hundred] [NAME=BINARY ...]

What a node pays for each thing a manager does: the rows are the split
lifecycle (create, start, wait for the init to exit, delete), `state` of a
created container (containerd polls it), `exec ID true` into a running one
(a kubelet exec probe) and 100 lifecycles run 4 at a time ("hundred": a
node starting many pods).

CPU is everything the runtime spends, its container's init included: each
runtime command is moved, before it execs, into a cgroup of this run
(cpuacct `ocirt-cpu-PID/cmd`), and every container gets `cgroupsPath`
`/ocirt-cpu-PID/c-ID`, so the init's own work (ocirt's Python stage, runc's
`runc init`) is counted too.  CPU per operation is the cpuacct delta
(cpuacct.usage: user+sys, ns) of `ocirt-cpu-PID` over the operation.  The program the
container runs is `true` (and `exec`'s `true`): the same for every runtime.
Wall time is measured around each command from here; what starting a
command costs this script (fork and exec of /bin/true, measured the same
way) is subtracted.  Each iteration runs every runtime in turn, so a busy
moment of the host hits all of them.

Prints, per row: median wall ms and mean CPU ms for each runtime, and the
ocirt/runc and ocirt/crun ratios of both; the issue's targets beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CPUACCT = Path("/sys/fs/cgroup/cpuacct")
ROWS = ("lifecycle", "state", "exec", "hundred")
# Issue 19's targets: ocirt/crun, for wall and for CPU.
BASES = ("runc", "crun")
TARGETS = {"lifecycle": 1.3, "state": 1.3, "exec": 1.5, "hundred": 1.3}


class Bench:
    """The cgroup of this run, the bundles and the state roots."""

    def __init__(self, work: Path) -> None:
        self.name = f"ocirt-cpu-{os.getpid()}"
        self.group = CPUACCT / self.name
        self.cmd_group = self.group / "cmd"
        self.cmd_group.mkdir(parents=True)
        self.work = work
        self.bundles: dict[str, Path] = {}

    def usage_ns(self) -> int:
        """CPU time (user+sys) of the run's cgroup, its children included (cpuacct is
        hierarchical).  cpuacct.usage, the scheduler's own count: usage_user and
        usage_sys are split from it by ticks, too coarse for a 3 ms command."""
        return int((self.group / "cpuacct.usage").read_text())

    def bundle(self, args: list[str], cid: str) -> Path:
        """A bundle running ARGS whose cgroup is under this run's (one per container id)."""
        key = " ".join(args)
        if key not in self.bundles:
            path = self.work / f"bundle-{len(self.bundles)}"
            subprocess.run(
                ["sh", str(REPO / "tools" / "mkbundle.sh"), str(path), *args],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            self.bundles[key] = path
        return self.bundles[key]

    def config_for(self, bundle: Path, cid: str) -> None:
        config = json.loads((bundle / "config.json").read_text())
        config["linux"]["cgroupsPath"] = f"/{self.name}/c-{cid}"
        (bundle / "config.json").write_text(json.dumps(config))

    def remove(self) -> None:
        """This run's directories in every hierarchy.  Under nohybrid, crun makes
        plain files in the directory the cgroup2 mount hides (/sys/fs/cgroup
        is a tmpfs there): those go too."""
        for hierarchy in Path("/sys/fs/cgroup").iterdir():
            top = hierarchy / self.name
            if not top.is_dir():
                continue
            for directory, _dirs, files in os.walk(top, topdown=False):
                if files and os.statvfs(directory).f_namemax and _plain_dir(directory):
                    for name in files:
                        os.unlink(os.path.join(directory, name))
                os.rmdir(directory)


def _plain_dir(path: str) -> bool:
    """Not a cgroup filesystem (whose files go with rmdir of their directory)."""
    with open("/proc/self/mountinfo") as f:
        best, fstype = "", ""
        for line in f:
            fields = line.split()
            point = fields[4]
            if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) > len(
                best
            ):
                best, fstype = point, fields[fields.index("-") + 1]
    return fstype not in ("cgroup", "cgroup2")


def run_cmd(bench: Bench, cmd: list[str]) -> float:
    """Run CMD in the run's cgroup; its wall time in ms (it must succeed)."""
    tasks = str(bench.cmd_group / "tasks")

    def join() -> None:  # in the child, before exec: from here on it is counted
        fd = os.open(tasks, os.O_WRONLY)
        os.write(fd, b"0")
        os.close(fd)

    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        done = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, preexec_fn=join
        )
        elapsed = (time.perf_counter() - start) * 1000
        if done.returncode != 0:
            err.seek(0)
            raise SystemExit(f"cpu.py: {' '.join(cmd)} failed: {err.read().decode().strip()}")
    return elapsed


def wait_exited(pid: int) -> None:
    while True:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    return
        except FileNotFoundError:
            return


class Runtime:
    def __init__(self, name: str, binary: str, bench: Bench) -> None:
        self.name = name
        self.binary = binary
        self.root = bench.work / f"root-{name}"
        self.bench = bench

    def cmd(self, *args: str) -> list[str]:
        prefix = [self.binary] if " " not in self.binary else self.binary.split()
        return [*prefix, "--root", str(self.root), *args]

    def lifecycle(self, bundle: Path, cid: str) -> float:
        pid_file = self.bench.work / f"{self.name}-{cid}.pid"
        wall = run_cmd(self.bench, self.cmd("create", "-b", str(bundle), "--pid-file",
                                            str(pid_file), cid))  # fmt: skip
        pid = int(pid_file.read_text())
        wall += run_cmd(self.bench, self.cmd("start", cid))
        start = time.perf_counter()
        wait_exited(pid)
        wall += (time.perf_counter() - start) * 1000
        wall += run_cmd(self.bench, self.cmd("delete", cid))
        pid_file.unlink()
        return wall


def measure(fn, bench: Bench) -> tuple[float, float]:
    """(wall ms as FN returns it, CPU ms of the run's cgroup over FN)."""
    before = bench.usage_ns()
    wall = fn()
    return wall, (bench.usage_ns() - before) / 1e6


def row_lifecycle(rt: Runtime, bench: Bench, i: int) -> tuple[float, float]:
    cid = f"l{i}"
    bundle = bench.bundle(["true"], cid)
    bench.config_for(bundle, f"{rt.name}-{cid}")
    return measure(lambda: rt.lifecycle(bundle, cid), bench)


def row_state(rt: Runtime, bench: Bench, i: int) -> tuple[float, float]:
    return measure(lambda: run_cmd(bench, rt.cmd("state", "s")), bench)


def row_exec(rt: Runtime, bench: Bench, i: int) -> tuple[float, float]:
    return measure(lambda: run_cmd(bench, rt.cmd("exec", "x", "true")), bench)


def row_hundred(rt: Runtime, bench: Bench, i: int, count: int = 100) -> tuple[float, float]:
    """COUNT lifecycles, 4 at a time: wall of the whole batch, CPU per lifecycle."""
    bundles = []
    for n in range(count):
        bundle = bench.work / f"h-{rt.name}-{n}"
        if not bundle.exists():
            shutil.copytree(bench.bundle(["true"], "h"), bundle, symlinks=True)
            bench.config_for(bundle, f"{rt.name}-h{n}")
        bundles.append(bundle)

    def batch() -> float:
        start = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda n: rt.lifecycle(bundles[n], f"h{i}-{n}"), range(count)))
        return (time.perf_counter() - start) * 1000

    wall, cpu = measure(batch, bench)
    return wall, cpu / count


ROW_FUNCS = {"lifecycle": row_lifecycle, "state": row_state, "exec": row_exec,
             "hundred": row_hundred}  # fmt: skip


def prepare(runtimes: list[Runtime], bench: Bench, rows: list[str]) -> None:
    """The long-lived containers: a created one for state, a running one for exec."""
    for rt in runtimes:
        if "state" in rows:
            bundle = bench.bundle(["true"], "s")
            bench.config_for(bundle, f"{rt.name}-s")
            run_cmd(bench, rt.cmd("create", "-b", str(bundle), "s"))
        if "exec" in rows:
            bundle = bench.bundle(["sleep", "100000"], "x")
            bench.config_for(bundle, f"{rt.name}-x")
            run_cmd(bench, rt.cmd("run", "-d", "-b", str(bundle), "x"))


def cleanup(runtimes: list[Runtime]) -> None:
    for rt in runtimes:
        if rt.root.is_dir():
            for entry in rt.root.iterdir():
                if entry.is_dir():
                    subprocess.run(rt.cmd("delete", "-f", entry.name), capture_output=True)


def spawn_overhead(bench: Bench, n: int) -> float:
    return statistics.median(run_cmd(bench, ["/bin/true"]) for _ in range(n))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=40, help="iterations per row (hundred: n/10)")
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument("--json", help="write the raw results here")
    parser.add_argument("runtimes", nargs="*", help="NAME=BINARY (default: ocirt runc crun)")
    args = parser.parse_args()
    rows = [r for r in args.rows.split(",") if r]
    if os.geteuid() != 0 or not (CPUACCT / "cpuacct.usage").exists():
        print("cpu.py: needs root and the cgroup v1 cpuacct hierarchy", file=sys.stderr)
        return 1
    pairs = [r.split("=", 1) for r in args.runtimes] or [
        ["ocirt", os.environ.get("OCIRT") or str(REPO / ".venv" / "bin" / "ocirt")],
        ["runc", shutil.which("runc") or ""],
        ["crun", shutil.which("crun") or ""],
    ]
    with tempfile.TemporaryDirectory(prefix="ocirt-cpu.") as tmp:
        bench = Bench(Path(tmp))
        runtimes = [Runtime(name, binary, bench) for name, binary in pairs if binary]
        results: dict[str, dict[str, list[tuple[float, float]]]] = {}
        try:
            prepare(runtimes, bench, rows)
            overhead = spawn_overhead(bench, 20)
            for row in rows:
                iterations = max(1, args.n // 10) if row == "hundred" else args.n
                results[row] = {rt.name: [] for rt in runtimes}
                for i in range(iterations):
                    for rt in runtimes:
                        results[row][rt.name].append(ROW_FUNCS[row](rt, bench, i))
        finally:
            cleanup(runtimes)
            bench.remove()
    report(results, overhead)
    if args.json:
        Path(args.json).write_text(json.dumps({"overhead_ms": overhead, "results": results}))
    return 0


def report(results: dict, overhead: float) -> None:
    calls = {"lifecycle": 3, "state": 1, "exec": 1, "hundred": 0}
    print(f"spawn overhead per command (subtracted from wall): {overhead:.2f} ms")
    header = "| row | runtime | wall ms (median) | CPU ms (mean) | wall /runc | wall /crun |"
    print(header + " CPU /runc | CPU /crun | target (/crun) |")
    print("|---" * 10 + "|")
    for row, per_rt in results.items():
        wall = {n: statistics.median(w for w, _ in v) - calls[row] * overhead
                for n, v in per_rt.items()}  # fmt: skip
        cpu = {n: statistics.mean(c for _, c in v) for n, v in per_rt.items()}
        for name in per_rt:
            ratios = []
            for base in ("runc", "crun"):
                ratios.append(f"{wall[name] / wall[base]:.2f}" if base in wall else "-")
            cpu_ratios = [
                f"{cpu[name] / cpu[b]:.2f}" if b in cpu else "-" for b in ("runc", "crun")
            ]
            target = f"<= {TARGETS[row]}" if name == "ocirt" else ""
            print(f"| {row} | {name} | {wall[name]:.1f} | {cpu[name]:.1f} | "
                  f"{' | '.join(ratios)} | {' | '.join(cpu_ratios)} | {target} |")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
