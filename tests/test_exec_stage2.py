"""exec's process started by stage 2 (ocirt/process/exec_stage2.py), side by side with runc.

tests/test_exec.py compares what the process sees for every flag (the common
shapes now go through stage 2); this module checks that they do, that the
other shapes keep the Python child, and what stage 2 alone produces: its
error texts word for word (the errno's text is filled in by `exec`, glibc's,
whatever libc stage 2 was built with), a seccomp profile loaded before the
user switch (no no_new_privs) and after it, HOME from the container's
/etc/passwd, and that the process holds none of the runtime's fds.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import test_exec
from test_exec import Runtime, _make_bundle

# test_exec's fixtures: the running pair (ocirt's and runc's), the probe.
pair = test_exec.pair
probe_bin = test_exec.probe_bin

STAGE2_EXEC = re.compile(r'execve\("/proc/self/fd/\d+", \["/proc/self/fd/\d+", "exec"')


def _strace_exec(rt: Runtime, *args: str) -> str:
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed")
    out = subprocess.run(
        ["strace", "-f", "-e", "trace=execve", *rt.cmd("exec", *args)],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stderr


def _message(stderr: str) -> str:
    """runc's log line without its time: level and message."""
    return re.sub(r'time="[^"]*" ', "", stderr.strip())


def test_common_shape_runs_stage2(pair):
    ours = pair[0]
    trace = _strace_exec(ours, ours.container, "true")
    assert STAGE2_EXEC.search(trace), trace
    # Its next execve is the program's, by the same process.
    assert re.search(r'execve\("/bin/true", \["true"\]', trace), trace


# What only the Python child needs (its steps, _json for its channel bodies, the
# user switch; stat, which look_path no longer imports): not loaded for stage 2.
PYTHON_CHILD_ONLY = ("ocirt.process.exec_child", "ocirt.linux.user", "_json", "stat")
EXEC_IN_FRESH_INTERPRETER = """
import sys
sys.path[:0] = [{repo!r}, {site!r}]  # site-packages: _cffi_backend, for the shim
before = set(sys.modules)
from ocirt import fastcli
status = fastcli.run(["--root", {root!r}, "exec", *{flags!r}, {cid!r}, "true"])
new = set(sys.modules) - before
print(status, sorted(name for name in {modules!r} if name in new), file=sys.stderr)
"""


@pytest.mark.parametrize(
    ("flags", "loaded"),
    [
        ((), []),
        (("--preserve-fds", "0"), []),
        (("--preserve-fds", "1"), sorted(PYTHON_CHILD_ONLY[:3])),
    ],
)
def test_python_child_modules_load_only_for_it(pair, flags, loaded):
    """The fast front end's exec with stage 2 imports none of the Python child's
    modules (exec_child was exec's own code, _json its channel's preload);
    --preserve-fds keeps the Python child, which gets them all before its fork."""
    import sysconfig

    ours = pair[0]
    code = EXEC_IN_FRESH_INTERPRETER.format(
        repo=str(Path(__file__).resolve().parents[1]), site=sysconfig.get_paths()["purelib"],
        root=str(ours.root), flags=flags,
        cid=ours.container, modules=PYTHON_CHILD_ONLY,
    )  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert out.stderr.strip().splitlines()[-1] == f"0 {loaded}", out.stderr


def test_preserve_fds_keeps_the_python_child(pair):
    ours = pair[0]
    trace = _strace_exec(ours, "--preserve-fds", "1", ours.container, "true")
    assert not STAGE2_EXEC.search(trace), trace


@pytest.mark.parametrize(
    ("flags", "command"),
    [
        ((), ("nonexistent-binary",)),
        ((), ("/nonexistent",)),
        ((), ("/nonexistent/dir/x",)),
        ((), ("/etc/passwd",)),
        ((), ("/etc",)),
        (("--cwd", "/nonexistent"), ("true",)),
        (("--cwd", "/etc/passwd"), ("true",)),
        (("-u", "1000", "--cwd", "/root"), ("ls",)),  # entered as root: works in both
    ],
)
def test_errors_word_for_word(pair, flags, command):
    ours, runc = (rt.exec(*flags, command=command) for rt in pair)
    assert (ours.returncode, _message(ours.stderr)) == (runc.returncode, _message(runc.stderr))


def test_rlimit_error(pair, tmp_path):
    """Above fs.nr_open: EPERM in both (runc 1.1.5 names the type by number;
    ocirt's words are the Python child's, errno text filled in by `exec`)."""
    limit = 1 << 30
    process = {
        "args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0},
        "rlimits": [{"type": "RLIMIT_NOFILE", "soft": limit, "hard": limit}],
    }  # fmt: skip
    results = []
    for rt in pair:
        path = tmp_path / f"{rt.name}.json"
        path.write_text(json.dumps(process))
        out = rt.run("exec", "-p", str(path), rt.container)
        results.append((out.returncode, _message(out.stderr)))
    assert results[0][0] == results[1][0] == 255, results
    assert "operation not permitted" in results[1][1], results
    assert (
        "exec failed: unable to start container process: error setting rlimit type"
        f' RLIMIT_NOFILE to soft={limit} hard={limit}: operation not permitted"'
    ) in results[0][1], results


def test_home_comes_from_the_containers_passwd(pair):
    """Unset HOME: the user's from /etc/passwd, "/" for a uid it lacks."""
    for uid, home in (("0", "/root"), ("65534", "/nonexistent"), ("4242", "/")):
        outs = [rt.exec("-u", uid, command=("sh", "-c", "echo $HOME")) for rt in pair]
        assert [(o.returncode, o.stdout) for o in outs] == [(0, f"{home}\n")] * 2, outs


def test_process_holds_no_runtime_fd(pair):
    outs = [rt.exec(command=("ls", "/proc/self/fd")) for rt in pair]
    assert outs[0].returncode == 0, outs[0].stderr
    assert outs[0].stdout.split() == outs[1].stdout.split()


# -- a container with a seccomp profile ---------------------------------------------------
# mkdir and mkdirat fail with EPERM; everything else is allowed.
PROFILE = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
}


@pytest.fixture(scope="module")
def seccomp_pair(
    _bundle_template: Path,
    probe_bin: Path,
    ocirt_bin: str,
    runc_bin: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Runtime, Runtime]]:
    base = tmp_path_factory.mktemp("exec-seccomp")
    bundle = _make_bundle(
        _bundle_template, base / "bundle", probe_bin,
        {"args": ["sleep", "1000"], "noNewPrivileges": False},
    )  # fmt: skip
    config = json.loads((bundle / "config.json").read_text())
    config["linux"]["seccomp"] = PROFILE
    (bundle / "config.json").write_text(json.dumps(config))
    yield from test_exec.running_side_by_side(ocirt_bin, runc_bin, base, bundle, "xs")


@pytest.mark.parametrize("flags", [(), ("--no-new-privs",), ("-u", "1000")])
def test_seccomp_profile_applies(seccomp_pair, flags: tuple[str, ...]):
    """Loaded before the user switch without no_new_privs, after it with."""
    name = f"/tmp/d-{uuid.uuid4().hex[:8]}"
    results: list[Any] = []
    for rt in seccomp_pair:
        out = rt.exec(*flags, command=("mkdir", name))
        status = rt.exec(
            *flags, command=("grep", "-E", "^(Seccomp|NoNewPrivs):", "/proc/self/status")
        )
        results.append((out.returncode, "Operation not permitted" in out.stderr, status.stdout))
    assert results[0] == results[1]
    assert results[0][:2] == (1, True), results
    assert "Seccomp:\t2" in results[0][2]


def test_seccomp_exec_runs_stage2(seccomp_pair):
    ours = seccomp_pair[0]
    trace = _strace_exec(ours, ours.container, "true")
    assert STAGE2_EXEC.search(trace), trace
