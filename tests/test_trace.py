"""``ocirt trace``: trace a busybox workload, then run it under the profile it wrote."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

WORKLOAD = "ls / >/dev/null; cat /etc/passwd > /tmp/x; echo ok"
REFERENCE = Path("/work/shared/reference/configs")


def _ocirt(ocirt_bin: str, root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [ocirt_bin, "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def _use_profile(bundle: Path, profile: dict[str, Any], args: list[str] | None = None) -> None:
    path = bundle / "config.json"
    config = json.loads(path.read_text())
    config["linux"]["seccomp"] = profile
    if args is not None:
        config["process"]["args"] = args
    path.write_text(json.dumps(config))


@pytest.mark.parametrize("nnp", [True, False], ids=["late-load", "early-load"])
def test_trace_writes_a_profile_the_workload_runs_under(
    ocirt_bin, tmp_root, bundle, tmp_path, nnp: bool
) -> None:
    def patch(config: dict[str, Any]) -> None:
        config["root"]["readonly"] = False
        config["process"]["noNewPrivileges"] = nnp
        if not nnp:  # docker's capabilities: no CAP_SYS_ADMIN, the filter loads early
            docker = json.loads((REFERENCE / "docker.json").read_text())
            config["process"]["capabilities"] = docker["process"]["capabilities"]

    b = bundle("sh", "-c", WORKLOAD, patch=patch)
    out_file = tmp_path / "profile.json"
    traced = _ocirt(ocirt_bin, tmp_root, "trace", "-b", str(b), "-o", str(out_file), "t1")
    assert traced.returncode == 0, traced.stderr
    assert traced.stdout.startswith("ok\n")  # the workload's own output comes first
    summary = traced.stdout.splitlines()
    assert summary[1].split() == ["SYSCALL", "COUNT", "FIRST", "CALLER"]
    rows = {line.split()[0]: line.split() for line in summary[2:-2]}
    assert int(rows["openat"][1]) >= 2 and rows["openat"][2] == "/bin/busybox"
    assert "workload exited with status 0" in summary[-2]
    assert not (tmp_root / "t1").exists()  # the traced container is deleted

    profile = json.loads(out_file.read_text())
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    names = set(profile["syscalls"][0]["names"])
    assert {"execve", "openat", "write", "exit_group"} <= names
    assert not {"mkdir", "mkdirat", "unshare"} & names

    _use_profile(b, profile)
    again = _ocirt(ocirt_bin, tmp_root, "run", "-b", str(b), "t2")
    assert (again.returncode, again.stdout) == (0, "ok\n"), again.stderr

    # Calls the workload never made are refused.
    _use_profile(b, profile, ["sh", "-c", f"{WORKLOAD}; mkdir /tmp/y; echo rc=$?; unshare -n true"])
    blocked = _ocirt(ocirt_bin, tmp_root, "run", "-b", str(b), "t3")
    assert blocked.stdout.startswith("ok\nrc=1\n"), blocked.stderr
    assert "Operation not permitted" in blocked.stderr


def test_trace_follows_forks_and_execs(ocirt_bin, tmp_root, bundle, tmp_path) -> None:
    """A child that execs another program: its syscalls are recorded too."""
    b = bundle("sh", "-c", "/bin/sh -c 'uname -n' | cat; echo done")
    out_file = tmp_path / "p.json"
    traced = _ocirt(ocirt_bin, tmp_root, "trace", "-b", str(b), "-o", str(out_file), "t1")
    assert traced.returncode == 0, traced.stderr
    assert traced.stdout.startswith("runc\ndone\n")
    names = set(json.loads(out_file.read_text())["syscalls"][0]["names"])
    assert {"uname", "pipe2", "wait4", "execve"} <= names or {"uname", "pipe", "wait4"} <= names


def test_trace_needs_an_id(ocirt_bin, tmp_root) -> None:
    out = _ocirt(ocirt_bin, tmp_root, "trace")
    assert out.returncode == 1
    assert "requires exactly 1 argument" in out.stderr
