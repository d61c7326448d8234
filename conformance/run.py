#!/usr/bin/env python3
"""Differential conformance runner: run the probe under several OCI runtimes.

For every case in conformance/cases/*.json a fresh bundle is built per runtime
(busybox rootfs + the static probe as /probe + the default `runc spec` config
with the case's patch applied), the runtime runs it with `run`, and the probe's
JSON report is normalized and compared field by field across runtimes.

Usage:
    run.py [--runtime NAME=CMD]... [--case GLOB]... [--json OUT]
           [--require-agree A,B] [--keep] [--diff-only]

CMD may contain spaces; it is split like a shell would (shlex), e.g.
    --runtime 'crun=/work/shared/tools/nohybrid /usr/bin/crun'

Stdlib only, so it runs with any python3 >= 3.9.
"""

from __future__ import annotations

import argparse
import copy
import fnmatch
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CASES_DIR = HERE / "cases"
# `runc spec` output (runc 1.1.5), vendored so that cases do not depend on
# which runc, if any, is installed.
BASE_CONFIG = CASES_DIR / "_base.json"
PROBE_DIR = HERE / "probe"
MKROOTFS = REPO / "tools" / "mkrootfs.sh"
BUNDLE_TOKEN = "${BUNDLE}"
NAMESPACES = ("pid", "net", "ipc", "uts", "mnt", "user", "cgroup", "time")
ABSENT = "<absent>"
STATUS_FIELD = "_status"

Json = Any


@dataclass
class Case:
    """One case file: a config patch plus how the runner must set it up."""

    name: str
    description: str
    patch: dict[str, Json] | list[dict[str, Json]]
    probe_args: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    preserve_fds: int = 0
    expect_exit: int = 0
    known_differences: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> Case:
        data = json.loads(path.read_text())
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"{path}: unknown keys {sorted(unknown)}")
        if data.get("name") != path.stem:
            raise ValueError(f"{path}: name must equal the file name stem")
        return cls(**data)


@dataclass
class Runtime:
    name: str
    cmd: list[str]


@dataclass
class RunResult:
    """One (case, runtime) execution and its normalized, flattened report."""

    runtime: str
    exit_code: int | None
    stdout: str
    stderr: str
    status: str
    probe: Json | None
    flat: dict[str, str]
    delete_stderr: str = ""


# ---------------------------------------------------------------- patches


def merge_patch(target: Json, patch: Json) -> Json:
    """RFC 7386 JSON Merge Patch: objects merge, null deletes, rest replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ValueError(f"bad JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def json_patch(doc: Json, ops: list[dict[str, Json]]) -> Json:
    """RFC 6902 JSON Patch, the add/remove/replace subset (enough for configs)."""
    doc = copy.deepcopy(doc)
    for op in ops:
        *parents, last = _pointer(op["path"])
        node = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        kind = op["op"]
        if isinstance(node, list):
            index = len(node) if last == "-" else int(last)
            if kind == "add":
                node.insert(index, copy.deepcopy(op["value"]))
            elif kind == "remove":
                del node[index]
            elif kind == "replace":
                node[index] = copy.deepcopy(op["value"])
            else:
                raise ValueError(f"unsupported op {kind!r}")
        elif kind in ("add", "replace"):
            if kind == "replace" and last not in node:
                raise KeyError(f"replace of missing {op['path']}")
            node[last] = copy.deepcopy(op["value"])
        elif kind == "remove":
            del node[last]
        else:
            raise ValueError(f"unsupported op {kind!r}")
    return doc


def substitute(value: Json, token: str, replacement: str) -> Json:
    """Replaces token in every string of a JSON value."""
    if isinstance(value, str):
        return value.replace(token, replacement)
    if isinstance(value, list):
        return [substitute(v, token, replacement) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, token, replacement) for k, v in value.items()}
    return value


def build_config(case: Case, base: Json, bundle: Path) -> Json:
    patch = case.patch
    config = json_patch(base, patch) if isinstance(patch, list) else merge_patch(base, patch)
    # Always: no tty (stdin is /dev/null) and the probe as the process.
    config["process"]["terminal"] = False
    config["process"]["args"] = ["/probe", *case.probe_args]
    return substitute(config, BUNDLE_TOKEN, str(bundle))


# ---------------------------------------------------------------- bundles


def ensure_probe() -> Path:
    """Builds the static probe with make when missing or stale."""
    probe = PROBE_DIR / "probe"
    source = PROBE_DIR / "probe.c"
    if not probe.exists() or probe.stat().st_mtime < source.stat().st_mtime:
        subprocess.run(["make", "-C", str(HERE), "probe/probe"], check=True)
    return probe


def build_template(workdir: Path, probe: Path) -> Path:
    """One rootfs built by mkrootfs.sh; bundles get copies (cheaper than rebuilding)."""
    rootfs = workdir / "template-rootfs"
    subprocess.run([str(MKROOTFS), str(rootfs)], check=True)
    shutil.copy2(probe, rootfs / "probe")
    os.chmod(rootfs / "probe", 0o755)
    return rootfs


def build_bundle(case: Case, base: Json, template: Path, bundle: Path) -> None:
    """A fresh bundle per (case, runtime): a runtime may create mountpoints in
    the rootfs, which must not leak into the next runtime's run."""
    bundle.mkdir(parents=True)
    subprocess.run(["cp", "-a", str(template), str(bundle / "rootfs")], check=True)
    for rel, content in case.files.items():
        target = bundle / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    for fd in range(3, 3 + case.preserve_fds):
        (bundle / f"fd{fd}.txt").write_text(f"preserved fd {fd}\n")
    config = build_config(case, base, bundle)
    (bundle / "config.json").write_text(json.dumps(config, indent=2) + "\n")


# ---------------------------------------------------------------- running


def run_command(case: Case, runtime: Runtime, root: Path, bundle: Path, cid: str) -> list[str]:
    cmd = [*runtime.cmd, "--root", str(root), "run"]
    if case.preserve_fds:
        cmd += ["--preserve-fds", str(case.preserve_fds)]
    cmd += ["--bundle", str(bundle), cid]
    if case.preserve_fds:
        # Fixed fd numbers 3.. are easiest to get from a shell redirection.
        redirs = " ".join(
            f"exec {fd}<{shlex.quote(str(bundle / f'fd{fd}.txt'))};"
            for fd in range(3, 3 + case.preserve_fds)
        )
        cmd = ["/bin/sh", "-c", f'{redirs} exec "$@"', "sh", *cmd]
    return cmd


def execute(cmd: list[str], timeout: float) -> tuple[int | None, str, str]:
    """Runs cmd with stdin=/dev/null; on timeout kills its whole process group."""
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        text=True,
        errors="replace",
    )
    try:
        out, err = proc.communicate(timeout=timeout)
        return proc.returncode, out, err
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return None, out, err + f"\n[runner] timed out after {timeout}s"


def run_case(
    case: Case,
    runtime: Runtime,
    base: Json,
    template: Path,
    workdir: Path,
    host_ns: dict[str, str | None],
    timeout: float,
) -> RunResult:
    safe_rt = re.sub(r"[^A-Za-z0-9_.-]", "_", runtime.name)
    cid = f"conf-{case.name}-{safe_rt}-{uuid.uuid4().hex[:8]}"
    bundle = workdir / "bundles" / f"{case.name}--{safe_rt}"
    root = workdir / "roots" / safe_rt
    root.mkdir(parents=True, exist_ok=True)
    build_bundle(case, base, template, bundle)
    try:
        code, out, err = execute(run_command(case, runtime, root, bundle, cid), timeout)
    finally:
        # Always, even after a timeout or a crash of the runner itself.
        _, _, del_err = execute([*runtime.cmd, "--root", str(root), "delete", "-f", cid], timeout)
    probe, status = parse_probe(out, code, case.expect_exit)
    flat: dict[str, str] = {}
    if probe is not None:
        normal = normalize(probe, host_ns, str(bundle), cid)
        flat = flatten(normal)
    flat[STATUS_FIELD] = json.dumps(status if status == "ok" else f"{status}: {first_line(err)}")
    return RunResult(runtime.name, code, out, err, status, probe, flat, del_err)


def first_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def parse_probe(out: str, code: int | None, expect_exit: int) -> tuple[Json | None, str]:
    """The probe prints one JSON object; anything else is a failure to report."""
    probe = None
    try:
        parsed = json.loads(out)
        probe = parsed if isinstance(parsed, dict) else None
    except ValueError:
        pass
    if code is None:
        return probe, "timeout"
    if probe is None:
        return None, f"exit={code} no-json"
    if code != expect_exit:
        return probe, f"exit={code} expected={expect_exit}"
    return probe, "ok"


# ---------------------------------------------------------------- normalizing


def host_namespaces() -> dict[str, str | None]:
    result: dict[str, str | None] = {}
    for ns in NAMESPACES:
        try:
            result[ns] = os.readlink(f"/proc/self/ns/{ns}")
        except OSError:
            result[ns] = None
    return result


_INODE = re.compile(r"^(pipe|socket|anon_inode|net|mnt|pid|user|ipc|uts|cgroup|time):\[\d+\]$")
# devpts (136-143): pty numbers depend on what else is running.
_PTS_MAJORS = range(136, 144)


def normalize(probe: Json, host_ns: dict[str, str | None], bundle: str, cid: str) -> Json:
    """Removes what legitimately differs between any two runs of one runtime."""
    probe = substitute(substitute(probe, bundle, "$BUNDLE"), cid, "$ID")
    namespaces = probe.get("namespaces")
    if isinstance(namespaces, dict):
        for ns, link in namespaces.items():
            if link is not None:
                namespaces[ns] = "host" if link == host_ns.get(ns) else "new"
    if isinstance(probe.get("pid"), int):
        probe["pid"] = 1 if probe["pid"] == 1 else "not-1"
    for fd in probe.get("fds") or []:
        if isinstance(fd.get("target"), str):
            fd["target"] = _INODE.sub(r"\1:[*]", fd["target"])
    for dev in probe.get("dev") or []:
        if dev.get("major") in _PTS_MAJORS:
            dev["minor"] = "*"
    return probe


def keyed(entries: list[Json], key: str) -> dict[str, Json]:
    """List of objects -> {entry[key]: rest}; repeated keys get #2, #3 (stacked
    mounts keep their relative order, which decides what is visible)."""
    result: dict[str, Json] = {}
    for entry in entries:
        name = str(entry.get(key))
        slot, n = name, 1
        while slot in result:
            n += 1
            slot = f"{name}#{n}"
        result[slot] = {k: v for k, v in entry.items() if k != key}
    return result


LIST_KEYS = {"mounts": "target", "dev": "name", "fds": "fd", "interfaces": "name"}


def flatten(probe: Json) -> dict[str, str]:
    """Probe report -> {field: canonical JSON}; one row per comparable item."""
    flat: dict[str, str] = {}

    def put(name: str, value: Json) -> None:
        flat[name] = json.dumps(value, sort_keys=True)

    for top, value in probe.items():
        if top in LIST_KEYS and isinstance(value, list):
            for sub, entry in keyed(value, LIST_KEYS[top]).items():
                put(f"{top}[{sub}]", entry)
        elif top == "env" and isinstance(value, list):
            for item in value:
                name, _, rest = item.partition("=")
                put(f"env[{name}]", rest)
        elif top == "cgroup" and isinstance(value, list):
            for line in value:
                _, controllers, path = [*line.split(":", 2), "", ""][:3]
                put(f"cgroup[{controllers or '-'}]", path)
        elif isinstance(value, dict):
            for sub, entry in value.items():
                put(f"{top}.{sub}", entry)
        else:
            put(top, value)
    return flat


# ---------------------------------------------------------------- reporting


def abbreviate(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def differing_parts(values: list[str]) -> list[str]:
    """For object values, keep only the keys that differ: a mount row then
    shows just e.g. vfs_options instead of an unreadable prefix."""
    parsed = []
    for v in values:
        try:
            parsed.append(json.loads(v) if v != ABSENT else None)
        except ValueError:
            return values
    if not all(isinstance(p, dict) for p in parsed):
        return values
    keys = sorted({k for p in parsed for k in p if len({json.dumps(q.get(k)) for q in parsed}) > 1})
    return [json.dumps({k: p.get(k) for k in keys}, sort_keys=True) for p in parsed]


def compare(
    cases: list[Case],
    results: dict[str, dict[str, RunResult]],
    runtimes: list[Runtime],
    diff_only: bool,
) -> tuple[list[str], int, int]:
    """Returns (table lines, fields agreeing, fields differing)."""
    names = [rt.name for rt in runtimes]
    width = 34
    lines = []
    header = f"{'case.field':<60} " + " ".join(f"{n:<{width}}" for n in names)
    if len(names) > 1:
        header += " | value"
    lines += [header, "-" * len(header)]
    agree = differ = 0
    for case in cases:
        per_rt = results[case.name]
        fields = sorted(
            {f for r in per_rt.values() for f in r.flat}, key=lambda f: (f != STATUS_FIELD, f)
        )
        if any(r.probe is None for r in per_rt.values()) and len(per_rt) > 1:
            # Without a report every other row would just read <absent>.
            skipped = len(fields) - 1
            fields = [STATUS_FIELD]
            lines.append(f"{case.name}: {skipped} fields not compared (a runtime gave no report)")
        for fld in fields:
            values = [per_rt[n].flat.get(fld, ABSENT) for n in names]
            row = abbreviate(f"{case.name}.{fld}", 60)
            if len(set(values)) == 1:
                agree += 1
                if not diff_only:
                    lines.append(
                        f"{row:<60} "
                        + " ".join(f"{'=':<{width}}" for _ in names)
                        + f" | {abbreviate(values[0], 60)}"
                    )
            else:
                differ += 1
                shown = differing_parts(values)
                lines.append(
                    f"{row:<60} " + " ".join(f"{abbreviate(v, width):<{width}}" for v in shown)
                )
    return lines, agree, differ


# Differences that come from how a runtime runs the case, not from the config,
# documented once for every case instead of in each case file.
RUNNER_KNOWN_DIFFERENCES = (
    # runc's foreground `run` without a tty gives the process pipes that it
    # copies (its setupProcessPipes); crun and ocirt hand the caller's stdio
    # through, here /dev/null.
    "fds[[]0[]]",
)


def disagreements(case: Case, a: RunResult, b: RunResult) -> list[str]:
    """Fields where a and b differ, minus the documented known differences."""
    problems = []
    for name, res in ((a.runtime, a), (b.runtime, b)):
        if res.status != "ok":
            problems.append(f"{case.name}: {name} failed: {res.flat[STATUS_FIELD]}")
    if problems:
        return problems  # field-by-field noise would hide the failure
    for fld in sorted(set(a.flat) | set(b.flat)):
        va, vb = a.flat.get(fld, ABSENT), b.flat.get(fld, ABSENT)
        allowed = (*case.known_differences, *RUNNER_KNOWN_DIFFERENCES)
        if va == vb or any(fnmatch.fnmatchcase(fld, pat) for pat in allowed):
            continue
        problems.append(f"{case.name}.{fld}: {a.runtime}={va} {b.runtime}={vb}")
    return problems


def to_json(
    cases: list[Case], results: dict[str, dict[str, RunResult]], host_ns: dict[str, str | None]
) -> Json:
    out: Json = {"host_namespaces": host_ns, "cases": {}}
    for case in cases:
        out["cases"][case.name] = {
            "description": case.description,
            "known_differences": case.known_differences,
            "results": {
                name: {
                    "exit_code": r.exit_code,
                    "status": r.status,
                    "stderr": r.stderr,
                    "delete_stderr": r.delete_stderr,
                    "probe": r.probe,
                    "stdout": r.stdout if r.probe is None else None,
                    "fields": {k: json.loads(v) for k, v in r.flat.items()},
                }
                for name, r in results[case.name].items()
            },
        }
    return out


# ---------------------------------------------------------------- CLI


def parse_runtime(spec: str) -> Runtime:
    name, sep, cmd = spec.partition("=")
    if not sep or not name or not cmd.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=CMD, got {spec!r}")
    return Runtime(name, shlex.split(cmd))


def select_cases(globs: list[str]) -> list[Case]:
    paths = sorted(p for p in CASES_DIR.glob("*.json") if not p.name.startswith("_"))
    cases = [Case.load(p) for p in paths]
    if globs:
        cases = [c for c in cases if any(fnmatch.fnmatchcase(c.name, g) for g in globs)]
    return cases


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--runtime", action="append", type=parse_runtime, default=[], metavar="NAME=CMD"
    )
    ap.add_argument("--case", action="append", default=[], metavar="GLOB")
    ap.add_argument("--json", type=Path, metavar="OUT", help="write full results here")
    ap.add_argument(
        "--require-agree", metavar="A,B", help="exit 1 unless runtimes A and B agree on every field"
    )
    ap.add_argument("--keep", action="store_true", help="keep the temp dir with bundles and state")
    ap.add_argument("--diff-only", action="store_true", help="print only differing rows")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per runtime invocation")
    args = ap.parse_args(argv)

    runtimes: list[Runtime] = args.runtime or [Runtime("runc", ["runc"])]
    names = [rt.name for rt in runtimes]
    if len(set(names)) != len(names):
        ap.error("runtime names must be unique")
    pair: tuple[str, str] | None = None
    if args.require_agree:
        a, _, b = args.require_agree.partition(",")
        if a not in names or b not in names:
            ap.error(f"--require-agree {args.require_agree}: both must be among {names}")
        pair = (a, b)
    cases = select_cases(args.case)
    if not cases:
        ap.error("no case matches")

    base = json.loads(BASE_CONFIG.read_text())
    host_ns = host_namespaces()
    workdir = Path(tempfile.mkdtemp(prefix="ocirt-conformance-"))
    results: dict[str, dict[str, RunResult]] = {}
    try:
        template = build_template(workdir, ensure_probe())
        for case in cases:
            results[case.name] = {
                rt.name: run_case(case, rt, base, template, workdir, host_ns, args.timeout)
                for rt in runtimes
            }
    finally:
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    lines, agree, differ = compare(cases, results, runtimes, args.diff_only)
    print("\n".join(lines))
    print(f"{agree} fields agree, {differ} differ")
    if args.json:
        args.json.write_text(json.dumps(to_json(cases, results, host_ns), indent=2) + "\n")

    if pair:
        problems = [
            p
            for c in cases
            for p in disagreements(c, results[c.name][pair[0]], results[c.name][pair[1]])
        ]
        for p in problems:
            print(f"DISAGREE {p}")
        if problems:
            print(f"{pair[0]} and {pair[1]} disagree on {len(problems)} field(s)")
            return 1
        print(f"{pair[0]} and {pair[1]} agree on every field")
    return 0


if __name__ == "__main__":
    sys.exit(main())
