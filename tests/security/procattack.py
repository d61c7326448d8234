"""Helpers for the tests that attack the runtime's processes from a container.

``procattack.c`` (built statically once per session) is the container
process: ``procattack watch /stop /out`` probes every process of its pid
namespace (ptrace, /proc/PID/mem, /proc/PID/exe, /proc/PID/fd/*) and writes
what it reached to ``/out`` in its rootfs, which the test reads from the host.
The same attack runs against ocirt, runc and crun (``RUNTIMES``): the tests
assert ocirt's result, and runc's and crun's where theirs is stable; the
results are in docs/security.md.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
NOHYBRID = HERE.parents[1] / "tools" / "nohybrid.sh"
PROBE_TARGET = "/probe-target"  # a copy of procattack in the rootfs: a program to exec

RUNTIMES = ("ocirt", "runc", "crun")


def build_procattack(out_dir: Path) -> Path:
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler for tests/security/procattack.c")
    binary = out_dir / "procattack"
    result = subprocess.run(
        [cc, "-static", "-O2", "-o", str(binary), str(HERE / "procattack.c")],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot build procattack statically: {result.stderr[-500:]}")
    return binary


def runtime_argv(name: str, ocirt_bin: str) -> list[str]:
    """The command that runs runtime NAME (crun through nohybrid: it refuses this host)."""
    if name == "ocirt":
        return [ocirt_bin]
    if name == "runc":
        runc = os.environ.get("RUNC") or shutil.which("runc")
        if runc is None:
            pytest.skip("runc is not installed")
        return [runc]
    crun = shutil.which("crun")
    if crun is None:
        pytest.skip("crun is not installed")
    if not NOHYBRID.exists():
        pytest.skip(f"{NOHYBRID} is missing (crun refuses a hybrid cgroup host)")
    return [str(NOHYBRID), crun]


def call(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """ARGV with stdin from /dev/null and its output in files, not pipes: a
    created container's init would hold a pipe open and keep us waiting."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        result = subprocess.run(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, timeout=timeout, check=False
        )
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(argv, result.returncode, out.read(), err.read())


_BUILT: list[Path] = []


def procattack_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """procattack.c built statically, once per session (the test modules'
    ``procattack_bin`` fixture calls this)."""
    if not _BUILT:
        _BUILT.append(build_procattack(tmp_path_factory.mktemp("procattack")))
    return _BUILT[0]


def attack_config(config: dict[str, Any]) -> None:
    """The attacker's container: a writable rootfs (it writes /out) and runc
    spec's process otherwise (root, three capabilities, no_new_privs)."""
    config["root"]["readonly"] = False


def install(bundle_dir: Path, procattack: Path) -> None:
    rootfs = bundle_dir / "rootfs"
    for name in ("procattack", PROBE_TARGET.lstrip("/")):
        shutil.copy2(procattack, rootfs / name)


class Findings:
    """What the attacker wrote: one list of fields per line."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.lines = [line.split(" ") for line in text.splitlines() if line]

    def __str__(self) -> str:
        return self.text

    def user_program_pids(self) -> set[str]:
        """Pids seen running the exec'd program itself (the container's file)."""
        return {f[1] for f in self.lines if f[0] == "seen" and f[2] == PROBE_TARGET}

    def reached(self) -> list[str]:
        """Every line where the attacker got at a runtime process: a ptrace
        attach, /proc/PID/mem, /proc/PID/exe or one of its fds.

        The exec'd program's own lines do not count: once its execve is done
        the runtime is gone from that process.  A process is judged by the
        exe it had when it was probed, so a pid seen first as the runtime
        and later as the program is judged line by line.
        """
        bad = []
        current_exe: dict[str, str] = {}
        for fields in self.lines:
            kind = fields[0]
            if kind == "seen":
                current_exe[fields[1]] = fields[2]
                continue
            if kind not in ("ptrace", "mem", "exe", "fd", "exe-write"):
                continue
            pid = fields[1]
            # The program's own lines, and a round whose exe read said ENOENT:
            # that pid was gone or between two programs (seen under load: the
            # exec'd program exits and the pid's next process is probed).
            if current_exe.get(pid) in (PROBE_TARGET, "-2"):
                continue
            if _succeeded(kind, fields):
                bad.append(" ".join(fields))
        return bad

    def runtime_exe_ids(self) -> list[str]:
        """DEV:INO of every runtime-process exe the attacker could open."""
        current_exe: dict[str, str] = {}
        ids = []
        for fields in self.lines:
            if fields[0] == "seen":
                current_exe[fields[1]] = fields[2]
            elif (
                fields[0] == "exe"
                and not fields[2].startswith("-")
                and current_exe.get(fields[1]) != PROBE_TARGET
            ):
                ids.append(fields[2])
        return ids

    def reopened_for_writing(self) -> list[str]:
        """Runtime exes the attacker reopened for writing (the exec'd program's
        own file, the container's, does not count)."""
        current_exe: dict[str, str] = {}
        program_ids = set()
        for fields in self.lines:
            if fields[0] == "seen":
                current_exe[fields[1]] = fields[2]
            elif fields[0] == "exe" and current_exe.get(fields[1]) == PROBE_TARGET:
                program_ids.add(fields[2])
        return [
            " ".join(f)
            for f in self.lines
            if f[0] == "reopen" and f[3] == "ok" and f[2] not in program_ids
        ]

    def saw_any_process(self) -> bool:
        return any(f[0] == "seen" for f in self.lines)


def _succeeded(kind: str, fields: list[str]) -> bool:
    if kind == "exe":
        return not fields[2].startswith("-")
    if kind == "fd":
        return fields[-1] == "ok"
    return fields[2] == "ok"


class Attacker:
    """Container "attacker" (the runtime under test runs it): procattack watch."""

    def __init__(self, argv: list[str], root: Path, bundle_dir: Path, cid: str) -> None:
        self.argv = argv
        self.root = root
        self.bundle_dir = bundle_dir
        self.id = cid
        self.rootfs = bundle_dir / "rootfs"

    def runtime(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return call([*self.argv, "--root", str(self.root), *args], timeout=timeout)

    def start(self) -> None:
        result = self.runtime("run", "-d", "--bundle", str(self.bundle_dir), self.id)
        assert result.returncode == 0, result.stderr
        deadline = time.monotonic() + 20
        while not (self.rootfs / "out").exists():
            assert time.monotonic() < deadline, "the attacker did not start"
            time.sleep(0.05)

    def init_pid(self) -> int:
        result = self.runtime("state", self.id)
        assert result.returncode == 0, result.stderr
        return int(json.loads(result.stdout)["pid"])

    def finish(self) -> Findings:
        """Stop watching: the deferred reopen runs, then "done"."""
        (self.rootfs / "stop").touch()
        deadline = time.monotonic() + 30
        while "done\n" not in (text := (self.rootfs / "out").read_text()):
            assert time.monotonic() < deadline, f"the attacker did not finish:\n{text}"
            time.sleep(0.1)
        return Findings(text)

    def delete(self) -> None:
        self.runtime("delete", "-f", self.id)


@contextmanager
def attacker(
    argv: list[str],
    root: Path,
    make_bundle: Callable[..., Path],
    procattack: Path,
    cid: str = "attacker",
    patch: Callable[[dict[str, Any]], None] | None = None,
) -> Iterator[Attacker]:
    def config(cfg: dict[str, Any]) -> None:
        attack_config(cfg)
        if patch is not None:
            patch(cfg)

    bundle_dir = make_bundle("/procattack", "watch", "/stop", "/out", patch=config, name=cid)
    install(bundle_dir, procattack)
    victim = Attacker(argv, root, bundle_dir, cid)
    try:
        victim.start()
        yield victim
    finally:
        victim.delete()


def strace_delaying(
    syscalls: str, seconds: float, path: str = "", detach_on_exec: bool = True
) -> list[str]:
    """A prefix that runs a command under strace, every call of SYSCALLS held
    at its entry for SECONDS (only those naming PATH, if given): the runtime's
    process stays in the state it execs from, for the attacker to probe.
    (Its tracer is strace, so a ptrace attach fails anyway while it waits:
    /proc/PID/mem, which needs the same access, is the attacker's test then.)
    DETACH_ON_EXEC=False keeps following a process past its first execve: a
    runtime whose child execs a helper first (ocirt's exec: stage 2, runc's:
    runc init) before the program named PATH, which must be held too."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed (it holds the runtime before its execve)")
    micros = int(seconds * 1_000_000)
    argv = [strace, "-f", "-qq", "-o", "/dev/null", "-e", f"trace={syscalls}"]
    if path:
        argv += ["-P", path]
    # --detach-on=execve: a created container's init outlives the command;
    # strace lets it go once it has exec'd (or it would wait for it).
    detach = ["--detach-on=execve"] if detach_on_exec else []
    return [*argv, *detach, "-e", f"inject={syscalls}:delay_enter={micros}"]


def victim_in_pid_ns_of(
    make_bundle: Callable[..., Path], procattack: Path, pid: int, name: str = "victim"
) -> Path:
    """A bundle whose container joins PID's pid namespace (a pod's shared one),
    so the attacker there sees its init; its program is PROBE_TARGET noop."""

    def config(cfg: dict[str, Any]) -> None:
        for ns in cfg["linux"]["namespaces"]:
            if ns["type"] == "pid":
                ns["path"] = f"/proc/{pid}/ns/pid"

    bundle_dir = make_bundle(PROBE_TARGET, "noop", patch=config, name=name)
    install(bundle_dir, procattack)
    return bundle_dir
