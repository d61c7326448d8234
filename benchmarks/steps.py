"""The split lifecycle step by step: create, start, wait, delete, per runtime.

usage (as root; crun needs the hybrid cgroup mount out of sight):
    tools/nohybrid.sh .venv/bin/python benchmarks/steps.py [-n 30] [NAME=BINARY ...]

Without NAME=BINARY: ocirt (this checkout's .venv launcher, or $OCIRT), runc and
crun from PATH.  Two builds of ocirt can be compared the same way
(``old=/path/to/launcher new=.venv/bin/ocirt``).  Each iteration runs the four
steps for every runtime in turn (interleaved, so a busy moment of the host
hits all of them), each command started from here with stdio on /dev/null;
``wait`` polls /proc/PID/stat until the init has exited, without a runtime
call.  Prints the median of every step and of the total, then the totals'
ratios to runc and crun.  ``benchmarks/lifecycle.sh`` times the same
lifecycle as one command (hyperfine); this script says where the time goes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = ("create", "start", "wait", "delete")


def _timed(cmd: list[str]) -> float:
    # stderr to a file, not a pipe: the container's init keeps what create gives it.
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        elapsed = (time.perf_counter() - start) * 1000
        if done.returncode != 0:
            err.seek(0)
            raise SystemExit(f"steps.py: {' '.join(cmd)} failed: {err.read().decode().strip()}")
    return elapsed


def _wait_exited(pid: int) -> float:
    start = time.perf_counter()
    while True:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except FileNotFoundError:
            break
        if state == b"Z":
            break
    return (time.perf_counter() - start) * 1000


def _one_lifecycle(binary: str, root: str, bundle: str, cid: str) -> dict[str, float]:
    pid_file = f"{root}.{cid}.pid"
    times = {
        "create": _timed(
            [binary, "--root", root, "create", "-b", bundle, "--pid-file", pid_file, cid]
        )
    }
    with open(pid_file) as f:
        pid = int(f.read())
    os.unlink(pid_file)
    times["start"] = _timed([binary, "--root", root, "start", cid])
    times["wait"] = _wait_exited(pid)
    times["delete"] = _timed([binary, "--root", root, "delete", cid])
    return times


def _default_runtimes() -> dict[str, str]:
    found = {"ocirt": os.environ.get("OCIRT") or os.path.join(REPO, ".venv", "bin", "ocirt")}
    for name in ("runc", "crun"):
        path = shutil.which(name)
        if path:
            found[name] = path
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=30)
    parser.add_argument("--bundle", help="a bundle whose process exits at once (default: built)")
    parser.add_argument("runtimes", nargs="*", metavar="NAME=BINARY")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("steps.py: run as root")
    runtimes = dict(r.split("=", 1) for r in args.runtimes) or _default_runtimes()
    work = tempfile.mkdtemp(prefix="ocirt-steps.")
    prefix = f"os{os.getpid()}-"
    roots = {name: os.path.join(work, f"root-{name}") for name in runtimes}
    try:
        bundle = args.bundle
        if not bundle:
            bundle = os.path.join(work, "bundle")
            subprocess.run(
                ["sh", os.path.join(REPO, "tools", "mkbundle.sh"), bundle, "true"],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        results = {name: {step: [] for step in (*STEPS, "total")} for name in runtimes}
        for i in range(args.runs):
            for name, binary in runtimes.items():
                times = _one_lifecycle(binary, roots[name], bundle, f"{prefix}{i}")
                for step, value in times.items():
                    results[name][step].append(value)
                results[name]["total"].append(sum(times.values()))
        _report(results, args.runs)
    finally:
        _cleanup(runtimes, roots, prefix)
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _report(results: dict[str, dict[str, list[float]]], runs: int) -> None:
    columns = (*STEPS, "total")
    print(f"medians of {runs} interleaved runs, ms")
    print(f"{'':10}" + "".join(f"{c:>9}" for c in columns))
    medians = {}
    for name, steps in results.items():
        medians[name] = {c: statistics.median(steps[c]) for c in columns}
        print(f"{name:10}" + "".join(f"{medians[name][c]:9.1f}" for c in columns))
    for ref in ("runc", "crun"):
        if ref not in medians:
            continue
        for name in medians:
            if name != ref:
                ratio = medians[name]["total"] / medians[ref]["total"]
                print(f"{name}/{ref} total: {ratio:.2f}")


def _cleanup(runtimes: dict[str, str], roots: dict[str, str], prefix: str) -> None:
    for name, binary in runtimes.items():
        root = roots[name]
        for cid in os.listdir(root) if os.path.isdir(root) else ():
            subprocess.run(
                [binary, "--root", root, "delete", "-f", cid],
                stdin=subprocess.DEVNULL,
                capture_output=True,
            )
    # A runtime may leave an empty cgroup behind: remove only ours.
    for hierarchy in os.listdir("/sys/fs/cgroup"):
        base = os.path.join("/sys/fs/cgroup", hierarchy)
        for entry in os.listdir(base) if os.path.isdir(base) else ():
            if entry.startswith(prefix):
                try:
                    os.rmdir(os.path.join(base, entry))
                except OSError:
                    pass


if __name__ == "__main__":
    sys.exit(main())
