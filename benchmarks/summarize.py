"""Summarize benchmarks/lifecycle.sh output as a Markdown table with ratios.

usage: summarize.py OUT_DIR [BENCH...]

Reads OUT_DIR/<bench>.json (hyperfine --export-json; one result per runtime,
named by runtime) and OUT_DIR/pss.tsv (runtime, then PSS samples in kB), and
prints mean ± stddev per runtime plus the ocirt/runc and ocirt/crun ratios,
the issue's target for each row and whether it is met, after the lines of
OUT_DIR/env.txt (benchmarks/env.sh: commit, ocirt's interpreter, versions).
With BENCH names (e.g. ``exec``, which benchmarks/exec.sh passes), only
those rows ("pss" for the PSS row).
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
    "state": "ocirt/crun <= 3",
    "start": "ocirt/crun <= 3",
    "kill": "ocirt/crun <= 3",
    "delete": "ocirt/crun <= 3",
    "pss": "ocirt <= 1024 kB",
}
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
    if len(argv) < 2 or any(b not in [*BENCHES, "pss"] for b in argv[2:]):
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[1])
    only = set(argv[2:]) or {*BENCHES, "pss"}
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
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
