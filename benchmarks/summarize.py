"""Summarize benchmarks/lifecycle.sh output as Markdown tables with ratios.

usage: summarize.py OUT_DIR [BENCH...]

Reads OUT_DIR/<bench>.json (hyperfine --export-json; one result per runtime,
named by runtime), OUT_DIR/pss.tsv (runtime, then PSS samples in kB) and
OUT_DIR/cpu.json (benchmarks/cpu.py --json), and prints, after the lines of
OUT_DIR/env.txt (benchmarks/env.sh: commit, ocirt's interpreter, versions):

1. wall time: mean ± stddev per runtime, the ocirt/runc and ocirt/crun
   ratios, the target of each row and whether it is met;
2. CPU time of every row: hyperfine's user+sys means, i.e. the rusage of the
   command and of the children it waited for.  A container's init that the
   runtime does not wait for (create, the split lifecycle) is not in it;
3. CPU time with everything counted (cpu.json: cpuacct of a cgroup holding
   the commands and their containers), the rows issue 19 sets targets for.

With BENCH names (e.g. ``exec``, which benchmarks/exec.sh passes), only
those rows ("pss" for the PSS row, "cpu" for the third table).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

BENCHES = ["run", "lifecycle", "hundred", "state", "start", "kill", "delete", "exec"]
LABELS = {"hundred": "100 containers"}
RUNTIMES = ["ocirt", "runc", "crun"]
TARGETS = {
    "lifecycle": "ocirt/runc <= 1.0",
    "hundred": "ocirt/crun <= 1",  # the project's aim (docs/benchmarks.md), no issue's yet
    "state": "ocirt/crun <= 3",  # issue 19 asks 1.3: see the CPU tables
    "start": "ocirt/crun <= 3",
    "kill": "ocirt/crun <= 3",
    "delete": "ocirt/crun <= 3",
    "pss": "ocirt <= 1024 kB",
}
# Issue 19: ocirt/crun of wall and of CPU time, for these rows of cpu.json.
ISSUE19_TARGETS = {"lifecycle": 1.3, "state": 1.3, "exec": 1.5, "hundred": 1.3}
# Runtime commands per operation of a cpu.json row (its wall has their spawn cost taken off).
CPUACCT_CALLS = {"lifecycle": 3, "state": 1, "exec": 1, "hundred": 0}
# (compared with, limit) for the "met" column: a ratio, or ocirt's own value.
LIMITS = {
    "lifecycle": ("runc", 1.0),
    "hundred": ("crun", 1.0),
    "state": ("crun", 3.0),
    "start": ("crun", 3.0),
    "kill": ("crun", 3.0),
    "delete": ("crun", 3.0),
    "pss": ("", 1024.0),
}


def load_times(out: Path, bench: str) -> dict[str, tuple[float, float]]:
    path = out / f"{bench}.json"
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    return {
        r["command"]: (r["mean"] * 1000.0, (r.get("stddev") or 0.0) * 1000.0)
        for r in data["results"]
    }


def load_cpu_times(out: Path, bench: str) -> dict[str, float]:
    """user+sys ms per runtime from hyperfine's JSON (rusage of the command and its
    waited-for children)."""
    path = out / f"{bench}.json"
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    return {
        r["command"]: (r["user"] + r["system"]) * 1000.0
        for r in data["results"]
        if "user" in r and "system" in r
    }


def load_cpuacct(out: Path) -> dict[str, dict[str, tuple[float, float]]]:
    """cpu.json: row -> runtime -> (median wall ms, spawn overhead subtracted; mean CPU ms)."""
    path = out / "cpu.json"
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    overhead = data.get("overhead_ms", 0.0)
    table: dict[str, dict[str, tuple[float, float]]] = {}
    for row, per_runtime in data["results"].items():
        calls = CPUACCT_CALLS.get(row, 0)
        table[row] = {
            name: (
                statistics.median(w for w, _ in samples) - calls * overhead,
                statistics.mean(c for _, c in samples),
            )
            for name, samples in per_runtime.items()
            if samples
        }
    return table


def load_pss(out: Path) -> dict[str, float]:
    path = out / "pss.tsv"
    if not path.exists():
        return {}
    pss: dict[str, float] = {}
    for line in path.read_text().splitlines():
        name, _, samples = line.partition("\t")
        values = [float(v) for v in samples.split()]
        if values:
            pss[name] = statistics.median(values)
    return pss


def ratio(values: dict[str, float], other: str) -> str:
    if "ocirt" in values and values.get(other):
        return f"{values['ocirt'] / values[other]:.2f}"
    return "-"


def met(bench: str, values: dict[str, float]) -> str:
    if bench not in LIMITS or "ocirt" not in values:
        return ""
    other, limit = LIMITS[bench]
    if not other:
        return "yes" if values["ocirt"] <= limit else "no"
    if not values.get(other):
        return "-"
    return "yes" if values["ocirt"] / values[other] <= limit else "no"


def main(argv: list[str]) -> int:
    if len(argv) < 2 or any(b not in [*BENCHES, "pss", "cpu"] for b in argv[2:]):
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[1])
    only = set(argv[2:]) or {*BENCHES, "pss", "cpu"}
    env = out / "env.txt"
    if env.exists():
        for line in env.read_text().splitlines():
            print(f"- {line}")
        print()
    head = "| benchmark | " + " | ".join(f"{r}" for r in RUNTIMES)
    print(head + " | ocirt/runc | ocirt/crun | target | met |")
    print("|---" * (len(RUNTIMES) + 5) + "|")
    for bench in (b for b in BENCHES if b in only):
        times = load_times(out, bench)
        if not times:
            continue
        cells = [
            f"{times[r][0]:.1f} ± {times[r][1]:.1f} ms" if r in times else "-" for r in RUNTIMES
        ]
        means = {r: m for r, (m, _) in times.items()}
        print(
            f"| {LABELS.get(bench, bench)} | "
            + " | ".join(cells)
            + f" | {ratio(means, 'runc')} | {ratio(means, 'crun')}"
            + f" | {TARGETS.get(bench, '')} | {met(bench, means)} |"
        )
    pss = load_pss(out) if "pss" in only else {}
    if pss:
        cells = [f"{pss[r]:.0f} kB" if r in pss else "-" for r in RUNTIMES]
        print(
            "| created init PSS | "
            + " | ".join(cells)
            + f" | {ratio(pss, 'runc')} | {ratio(pss, 'crun')}"
            + f" | {TARGETS['pss']} | {met('pss', pss)} |"
        )
    print_rusage_cpu(out, [b for b in BENCHES if b in only])
    if "cpu" in only:
        print_cpuacct(out)
    return 0


def print_rusage_cpu(out: Path, benches: list[str]) -> None:
    rows = [(b, load_cpu_times(out, b)) for b in benches]
    rows = [(b, cpu) for b, cpu in rows if cpu]
    if not rows:
        return
    print()
    print("CPU time (user+sys, ms; rusage of each command and the children it waited for):")
    print()
    print("| benchmark | " + " | ".join(RUNTIMES) + " | ocirt/runc | ocirt/crun |")
    print("|---" * (len(RUNTIMES) + 3) + "|")
    for bench, cpu in rows:
        cells = [f"{cpu[r]:.1f}" if r in cpu else "-" for r in RUNTIMES]
        print(
            f"| {LABELS.get(bench, bench)} | "
            + " | ".join(cells)
            + f" | {ratio(cpu, 'runc')} | {ratio(cpu, 'crun')} |"
        )


def print_cpuacct(out: Path) -> None:
    table = load_cpuacct(out)
    if not table:
        return
    print()
    print(
        "Everything counted (benchmarks/cpu.py: cpuacct of the commands and their containers,"
        " interleaved; wall: median, CPU: mean, ms; hundred: 100 lifecycles 4 at a time,"
        " wall of the batch, CPU per lifecycle):"
    )
    print()
    print("| row | " + " | ".join(f"{r} wall | {r} CPU" for r in RUNTIMES), end="")
    print(" | wall /crun | CPU /crun | target /crun | met |")
    print("|---" * (2 * len(RUNTIMES) + 5) + "|")
    for row, per_runtime in table.items():
        cells = []
        for r in RUNTIMES:
            wall, cpu = per_runtime.get(r, (None, None))
            cells += ["-", "-"] if wall is None else [f"{wall:.1f}", f"{cpu:.1f}"]
        walls = {r: w for r, (w, _) in per_runtime.items()}
        cpus = {r: c for r, (_, c) in per_runtime.items()}
        limit = ISSUE19_TARGETS.get(row)
        verdict = "-"
        if limit and "ocirt" in cpus and cpus.get("crun") and walls.get("crun"):
            within = max(walls["ocirt"] / walls["crun"], cpus["ocirt"] / cpus["crun"]) <= limit
            verdict = "yes" if within else "no"
        print(
            f"| {LABELS.get(row, row)} | "
            + " | ".join(cells)
            + f" | {ratio(walls, 'crun')} | {ratio(cpus, 'crun')}"
            + f" | {f'<= {limit}' if limit else ''} | {verdict} |"
        )


if __name__ == "__main__":
    sys.exit(main(sys.argv))
