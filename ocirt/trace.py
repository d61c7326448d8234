"""``ocirt trace``: run a bundle under ptrace and derive a seccomp allow-list.

Design: the runtime traces the container from the outside, with host pids.

1. ``Container.create`` as ``run`` does: the init is our own child, waiting
   in stage 2 (``accept()`` on the start socket) with every namespace,
   mount, capability and uid already in place.
2. ``PTRACE_ATTACH`` to that init (python-ptrace's ``PtraceDebugger`` works
   with host pids; we are outside the container's pid namespace, as a
   tracer must be), with fork/vfork/clone/exec following.
3. ``start`` runs in a helper thread -- it blocks until stage 2 execs, and
   stage 2 only runs while we resume it -- and the main thread, the tracer,
   resumes every tracee from syscall stop to syscall stop.
4. Syscalls are recorded from the init's exec of the user's program on
   (stage 2's own accept/read/hooks are not the workload's); processes that
   existed before that (startContainer hooks) are not recorded.

Why attach to stage 2 rather than to the Python init or after start: the
init's setup is the runtime's, not the workload's; after ``start`` the
first instructions of the program would already have run untraced.

The profile written is the smallest runtime-spec object that runs the same
workload: ``defaultAction`` SCMP_ACT_ERRNO and one SCMP_ACT_ALLOW rule
with every syscall seen, plus ``execve`` (stage 2 loads the filter right
before it).  When the bundle has ``noNewPrivileges: false`` the filter is
loaded earlier by the Python stage (see ``ocirt.linux.seccomp``), so the
syscalls the runtime itself makes after that load are added too.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any

# What ocirt runs under the filter besides the program.  Stage 2, after a
# late load: execve (and sendmsg/close for a notify listener).  After an
# early load (no_new_privs off) the Python stage finishes its setup, then
# stage 2 waits for start: these are those syscalls (x86_64, CPython 3.11).
AFTER_LATE_LOAD = ("execve",)
AFTER_EARLY_LOAD = (
    "accept4", "brk", "capget", "capset", "chdir", "close", "execve", "execveat",
    "exit_group", "fcntl", "fstat", "futex", "getcwd", "getdents64", "getegid",
    "geteuid", "getgid", "getpid", "getppid", "getrandom", "gettid", "getuid", "ioctl",
    "lseek", "mmap", "mprotect", "munmap", "newfstatat", "openat", "prctl", "read",
    "readlink", "rt_sigaction", "rt_sigprocmask", "sendmsg", "sendto", "setgroups",
    "setresgid", "setresuid", "stat", "statx", "umask", "wait4", "write",
)  # fmt: skip


@dataclass
class SyscallStats:
    count: int = 0
    first_binary: str = ""
    first_call: str = ""


@dataclass
class TraceResult:
    exit_code: int
    syscalls: dict[str, SyscallStats] = field(default_factory=dict)

    def profile(self, early_load: bool) -> dict[str, Any]:
        names = set(self.syscalls) | set(AFTER_LATE_LOAD)
        if early_load:
            names |= set(AFTER_EARLY_LOAD)
        from ocirt.linux import seccomp

        return {
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": [_native_arch_name(seccomp)],
            "syscalls": [{"names": sorted(names), "action": "SCMP_ACT_ALLOW"}],
        }


def _native_arch_name(seccomp: Any) -> str:
    _, lib = seccomp._lib()
    native = int(lib.ocirt_scmp_arch_native())
    for spec_name in seccomp.supported_arches():
        if seccomp.arch_token(spec_name) == native:
            return spec_name
    return "SCMP_ARCH_X86_64"


class _Recorder:
    """Counts syscalls per name; remembers who called each first."""

    def __init__(self) -> None:
        self.stats: dict[str, SyscallStats] = {}
        self._exe: dict[int, str] = {}

    def forget(self, pid: int) -> None:
        self._exe.pop(pid, None)  # exec'd or gone: read /proc again next time

    def record(self, pid: int, name: str, call: Any) -> None:
        stats = self.stats.get(name)
        if stats is None:
            stats = self.stats[name] = SyscallStats(
                first_binary=self._binary(pid), first_call=_format(call)
            )
        stats.count += 1

    def _binary(self, pid: int) -> str:
        if pid not in self._exe:
            try:
                self._exe[pid] = os.readlink(f"/proc/{pid}/exe")
            except OSError:
                self._exe[pid] = "?"
        return self._exe[pid]


def _format(call: Any) -> str:
    try:
        return call.format()
    except Exception:  # python-ptrace cannot decode every argument
        return call.name


def trace_bundle(root: str, container_id: str, create_opts: Any) -> tuple[TraceResult, dict]:
    """``ocirt trace``: trace the bundle's container to completion; (what it
    did, the seccomp profile that allows exactly that)."""
    from ocirt import _fastjson
    from ocirt.linux import seccomp
    from ocirt.spec import Process

    with open(os.path.join(create_opts.bundle, "config.json"), "rb") as f:
        process = Process.from_dict(_fastjson.loads(f.read()).get("process") or {})
    result = trace_container(root, container_id, create_opts)
    return result, result.profile(early_load=seccomp.must_load_early(process))


def trace_container(root: str, container_id: str, create_opts: Any) -> TraceResult:
    """Create, trace to completion and delete the container; the syscalls it made."""
    from ptrace.debugger import PtraceDebugger

    from ocirt.container import Container
    from ocirt.linux import syscalls as sc

    sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)  # the workload's orphans come to us
    container = Container.create(root, container_id, create_opts)
    debugger = PtraceDebugger()
    try:
        debugger.traceFork()
        debugger.traceExec()
        debugger.traceClone()
        init = debugger.addProcess(container.pid, False)
        starter = _Starter(container)
        starter.thread.start()
        result = _follow(debugger, init)
        starter.thread.join()
        if starter.error is not None:
            raise starter.error
        return result
    finally:
        debugger.quit()
        container.close()
        with Container.load(root, container_id) as again:
            again.delete(force=True)


class _Starter:
    """``start`` in a thread: it returns only once stage 2 has exec'd, which needs the tracer."""

    def __init__(self, container: Any) -> None:
        self.container = container
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="ocirt-trace-start", daemon=True)

    def _run(self) -> None:
        try:
            self.container.start()
        except BaseException as e:
            self.error = e


def _follow(debugger: Any, init: Any) -> TraceResult:
    """The tracer loop: resume every tracee to its next syscall stop until all are gone."""
    from ptrace.debugger import (
        NewProcessEvent,
        ProcessExecution,
        ProcessExit,
        ProcessSignal,
    )
    from ptrace.func_call import FunctionCallOptions

    options = FunctionCallOptions(write_types=False, string_max_length=64)
    recorder = _Recorder()
    workload: set[int] = set()  # pids whose syscalls are the workload's
    exit_code = 255
    init.syscall()
    while debugger:
        try:
            event = debugger.waitSyscall()
        except ProcessExit as ev:
            if ev.process.pid == init.pid:
                exit_code = _exit_status(ev)
            recorder.forget(ev.process.pid)
            workload.discard(ev.process.pid)
            continue
        except NewProcessEvent as ev:
            if ev.process.parent.pid in workload:
                workload.add(ev.process.pid)
            ev.process.syscall()
            ev.process.parent.syscall()
            continue
        except ProcessExecution as ev:
            if ev.process.pid == init.pid:
                workload.add(init.pid)  # stage 2 became the user's program
            recorder.forget(ev.process.pid)
            ev.process.syscall()
            continue
        except ProcessSignal as ev:
            ev.process.syscall(ev.signum)  # deliver it, as if we were not there
            continue
        process = event.process
        call = process.syscall_state.event(options)
        if call is not None and call.result is None and process.pid in workload:
            recorder.record(process.pid, call.name, call)
        process.syscall()
    return TraceResult(exit_code, recorder.stats)


def _exit_status(ev: Any) -> int:
    if ev.exitcode is not None:
        return ev.exitcode
    if ev.signum is not None:
        return 128 + ev.signum
    return 255


def summary_lines(result: TraceResult) -> list[str]:
    """A table: syscall, count, first caller binary (most used first)."""
    rows = sorted(result.syscalls.items(), key=lambda kv: (-kv[1].count, kv[0]))
    width = max((len(name) for name, _ in rows), default=7)
    lines = [f"{'SYSCALL':<{width}}  {'COUNT':>6}  FIRST CALLER"]
    for name, stats in rows:
        lines.append(f"{name:<{width}}  {stats.count:>6}  {stats.first_binary}  {stats.first_call}")
    lines.append(f"{len(rows)} syscalls; the workload exited with status {result.exit_code}")
    return lines
