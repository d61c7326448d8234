"""CVE-2019-5736: a container process rewrites the runtime's binary through /proc/PID/exe.

Every runtime process a container can see has an exe: if that is a host file
(the installed ocirt, runc, crun) and the container may open it, it can keep
an O_PATH fd and, once the process is gone and the file no longer busy,
reopen /proc/self/fd/N for writing: the next `ocirt` the host runs is the
container's.  ocirt's rules: the created container's init runs from a sealed
memfd copy of stage 2; every runtime process that runs the host's ocirt image
inside the container (the init before stage 2, exec's child before its
execve) is non-dumpable, so its exe cannot be opened at all.

The attacker (procattack.c in a container, see procattack.py) opens the exe
of every process it sees, and after the run tries the reopen for writing; it
never writes.  The tests read its report from the host and compare what it
opened with the host's runtime binaries.

Checked against the fixes: with exec's ``PR_SET_DUMPABLE 0``
(exec._fork_child) removed, ``test_exec_child_exe_is_out_of_reach[ocirt]``
fails with ``reopen 2 <dev:ino of .venv/bin/ocirt> ok``: the host's ocirt
opened for writing from the container; with the init's (init.py, step 7)
removed, ``test_init_exe_before_stage2_is_out_of_reach`` fails the same way;
with ``_stage2_memfd`` returning the installed ocirt-init opened O_RDONLY
instead of the memfd, ``test_created_init_runs_from_a_sealed_memfd`` fails
(create itself does then: the parent knows stage 2 by the memfd's name).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest
from procattack import (
    PROBE_TARGET,
    RUNTIMES,
    attacker,
    call,
    procattack_binary,
    runtime_argv,
    strace_delaying,
    victim_in_pid_ns_of,
)


@pytest.fixture(scope="session")
def procattack_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return procattack_binary(tmp_path_factory)


HOLD = 2.0
F_GET_SEALS = 1034
F_SEAL_WRITE = 0x0008
SELF_EXE_SCRIPT = "#!/proc/self/exe\n"


def host_binaries(*argv: str) -> dict[str, str]:
    """DEV:INO -> path of the files a runtime's processes may run from."""
    paths = {os.path.realpath(a) for a in argv if os.path.exists(a)}
    for name in ("runc", "crun"):
        if found := shutil.which(name):
            paths.add(os.path.realpath(found))
    paths.add(os.path.realpath(sys.executable))
    installed_init = Path(__file__).resolve().parents[2] / "ocirt" / "_shim" / "ocirt-init"
    if installed_init.exists():
        paths.add(str(installed_init))
    ids = {}
    for path in paths:
        st = os.stat(path)
        ids[f"{st.st_dev}:{st.st_ino}"] = path
    return ids


def test_created_init_runs_from_a_sealed_memfd(ocirt_bin, tmp_root, bundle):
    """Seen from the host: the waiting init's exe is the memfd, sealed against writes."""
    b = bundle("true")
    created = call([ocirt_bin, "--root", str(tmp_root), "create", "--bundle", str(b), "sealed"])
    assert created.returncode == 0, created.stderr
    try:
        state = call([ocirt_bin, "--root", str(tmp_root), "state", "sealed"])
        pid = json.loads(state.stdout)["pid"]
        assert os.readlink(f"/proc/{pid}/exe").startswith("/memfd:ocirt-init")
        fd = os.open(f"/proc/{pid}/exe", os.O_RDONLY | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            assert f"{st.st_dev}:{st.st_ino}" not in host_binaries(ocirt_bin)
            assert fcntl.fcntl(fd, F_GET_SEALS) & F_SEAL_WRITE
        finally:
            os.close(fd)
    finally:
        call([ocirt_bin, "--root", str(tmp_root), "delete", "-f", "sealed"])


def _assert_no_runtime_exe(findings, binaries: dict[str, str], who: str) -> None:
    opened = findings.runtime_exe_ids()
    host_files = [f"{i} ({binaries[i]})" for i in opened if i in binaries]
    assert not host_files, f"{who}: the container opened a host binary:\n{findings}"
    assert opened == [], f"{who}: the container opened a runtime exe:\n{findings}"
    assert findings.reopened_for_writing() == [], f"{who}:\n{findings}"


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_created_init_exe_is_out_of_reach(runtime, ocirt_bin, tmp_root, bundle, procattack_bin):
    argv = runtime_argv(runtime, ocirt_bin)
    with attacker(argv, tmp_root, bundle, procattack_bin) as a:
        victim = victim_in_pid_ns_of(bundle, procattack_bin, a.init_pid())
        try:
            created = a.runtime("create", "--bundle", str(victim), "victim")
            assert created.returncode == 0, created.stderr
            time.sleep(1)
            findings = a.finish()
        finally:
            a.runtime("delete", "-f", "victim")
    assert findings.saw_any_process(), findings
    _assert_no_runtime_exe(findings, host_binaries(*argv), runtime)


def test_init_exe_before_stage2_is_out_of_reach(ocirt_bin, tmp_root, bundle, procattack_bin):
    """The init runs the host's ocirt until it executes stage 2: held there."""
    with attacker([ocirt_bin], tmp_root, bundle, procattack_bin) as a:
        victim = victim_in_pid_ns_of(bundle, procattack_bin, a.init_pid())
        held = strace_delaying("execveat", HOLD)
        try:
            cmd = [ocirt_bin, "--root", str(tmp_root), "create", "--bundle", str(victim), "victim"]
            created = call([*held, *cmd])
            assert created.returncode == 0, created.stderr
            findings = a.finish()
        finally:
            a.runtime("delete", "-f", "victim")
    assert findings.saw_any_process(), findings
    _assert_no_runtime_exe(findings, host_binaries(ocirt_bin), "ocirt create")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_exec_child_exe_is_out_of_reach(runtime, ocirt_bin, tmp_root, bundle, procattack_bin):
    """exec's process runs the runtime's image until its execve: held there."""
    argv = runtime_argv(runtime, ocirt_bin)
    with attacker(argv, tmp_root, bundle, procattack_bin) as a:
        # Followed past stage 2's or runc init's own execve, up to the program's.
        held = strace_delaying("execve,execveat", HOLD, path=PROBE_TARGET, detach_on_exec=False)
        execd = call([*held, *argv, "--root", str(tmp_root), "exec", a.id, PROBE_TARGET, "noop"])
        findings = a.finish()
    assert execd.returncode == 0, execd.stderr
    assert findings.saw_any_process(), findings
    _assert_no_runtime_exe(findings, host_binaries(*argv), runtime)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_exec_of_a_proc_self_exe_script(runtime, ocirt_bin, tmp_root, bundle, procattack_bin):
    """The original exploit: the container's program is a script whose
    interpreter is /proc/self/exe, so the execve runs the exe of the process
    making it -- the runtime's -- as a new, dumpable program in the container."""
    argv = runtime_argv(runtime, ocirt_bin)
    with attacker(argv, tmp_root, bundle, procattack_bin) as a:
        script = a.rootfs / "self-exe"
        script.write_text(SELF_EXE_SCRIPT)
        script.chmod(0o755)
        execd = call([*argv, "--root", str(tmp_root), "exec", a.id, "/self-exe"])
        findings = a.finish()
    if "no such file or directory" in execd.stderr.lower():
        # Linux 6.18 (this project's host) answers ENOENT for such an
        # interpreter when the exe lies outside the caller's mount namespace.
        pytest.skip(f"this kernel does not run a /proc/self/exe interpreter here: {execd.stderr}")
    _assert_no_runtime_exe(findings, host_binaries(*argv), runtime)
