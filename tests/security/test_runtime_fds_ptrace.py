"""CVE-2016-9962: a container process ptraces the runtime entering the container.

While a runtime process is in the container's pid namespace but not yet the
container's program, it holds host things: its fds (the state directory,
sockets, memfds), its memory, and it runs the runtime's own code.  A process
of the container that may ptrace it (same uid, no fewer capabilities) can
inject code that runs before the seccomp filter is loaded, or open its fds
through /proc/PID/fd.  The kernel's guard is "dumpable": a non-dumpable
process can be ptraced, and its /proc/PID/{mem,exe,fd} opened, only with
CAP_SYS_PTRACE over the user namespace it was started in (the host's).

The attacker is ``procattack watch`` (procattack.c) in a container; the
runtime's processes are made visible to it the way a pod does: a second
container joins its pid namespace.  From the host the test reads what the
attacker reached (ptrace attach, /proc/PID/mem opened read-write, the exe,
any fd).

Checked against the fixes (each reverted in turn, then these tests run):
- without ``os.fchmod(fd, 0o111)`` in parent._stage2_memfd and the
  ``prctl(PR_SET_DUMPABLE, 0)`` at the top of stage2.c's main,
  ``test_created_init_is_out_of_reach[ocirt]`` fails: ``ptrace 2 ok``,
  ``mem 2 ok``, and stage 2's start.sock fd listed;
- without the init's ``sc.prctl(sc.PR_SET_DUMPABLE, 0)`` (init.py, step 7),
  ``test_init_before_stage2_is_out_of_reach`` fails: ``mem 2 ok``, the
  host's ocirt as ``exe``, and the stage-2 memfd among its fds;
- without exec's ``PR_SET_DUMPABLE 0`` before the fork (exec._fork_child),
  ``test_exec_child_before_execve_is_out_of_reach[ocirt]`` fails the same way.
"""

from __future__ import annotations

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


HOLD = 2.0  # seconds a runtime process is held before its execve


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_created_init_is_out_of_reach(runtime, ocirt_bin, tmp_root, bundle, procattack_bin):
    """A created (not started) container's init, seen from a pod sibling.

    ocirt's is stage 2 (the sealed memfd), runc's and crun's are the runtime
    itself waiting on exec.fifo: all three must be non-dumpable.
    """
    argv = runtime_argv(runtime, ocirt_bin)
    with attacker(argv, tmp_root, bundle, procattack_bin) as a:
        victim = victim_in_pid_ns_of(bundle, procattack_bin, a.init_pid())
        try:
            created = a.runtime("create", "--bundle", str(victim), "victim")
            assert created.returncode == 0, created.stderr
            time.sleep(1)  # the attacker probes the waiting init meanwhile
            findings = a.finish()
        finally:
            a.runtime("delete", "-f", "victim")
    assert findings.saw_any_process(), f"the attacker never saw the init:\n{findings}"
    assert findings.reached() == [], f"{runtime}'s created init was reachable:\n{findings}"


def test_init_before_stage2_is_out_of_reach(ocirt_bin, tmp_root, bundle, procattack_bin):
    """ocirt's init between dropping to the container's capabilities and
    executing stage 2: held at that execveat for HOLD seconds (strace)."""
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
    assert findings.saw_any_process(), f"the attacker never saw the init:\n{findings}"
    assert findings.reached() == [], f"the init before stage 2 was reachable:\n{findings}"


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_exec_child_before_execve_is_out_of_reach(
    runtime, ocirt_bin, tmp_root, bundle, procattack_bin
):
    """`exec`'s process in the container, held at the execve of the program."""
    argv = runtime_argv(runtime, ocirt_bin)
    with attacker(argv, tmp_root, bundle, procattack_bin) as a:
        # Followed past stage 2's own execve (ocirt) or runc init's, up to the
        # program's: a process that exits, so strace ends with it.
        held = strace_delaying("execve,execveat", HOLD, path=PROBE_TARGET, detach_on_exec=False)
        execd = call([*held, *argv, "--root", str(tmp_root), "exec", a.id, PROBE_TARGET, "noop"])
        findings = a.finish()
    assert execd.returncode == 0, execd.stderr
    # It saw the process (held HOLD seconds before its execve: it cannot miss it).
    assert findings.saw_any_process(), f"the attacker never saw the exec:\n{findings}"
    assert findings.reached() == [], f"{runtime}'s exec child was reachable:\n{findings}"
