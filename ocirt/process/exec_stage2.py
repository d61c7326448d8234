"""exec's process without a forked interpreter: stage 2 (``ocirt-init exec``).

The Python child of ``ocirt.process.exec`` costs a fork of the interpreter
(its page tables, then ~430 copy-on-write faults as the child's Python runs)
and its Python: ~2 ms of CPU on every exec probe.  For the common shapes the
runtime instead spawns stage 2 (ocirt/_shim/stage2.c, the static program
the container's init ends in) with vfork+execve (``posix_spawn``), from a
sealed execute-only memfd, and sends it the whole plan, computed here, as
PROCEED's body; stage 2 performs ``exec_child.run``/``_setup``'s steps in C, in
their order and with their checks and error texts, then execve()s the
process.  The child is never the host's ocirt binary once in the container's
namespaces (its /proc/self/exe is the sealed copy: CVE-2019-5736).

Everything else (a terminal, --preserve-fds, AppArmor/SELinux, a seccomp
notify listener, user namespaces, a container without its own mount
namespace, execCPUAffinity, scheduler, ioPriority, a paused container,
--debug) keeps the Python child: ``usable`` says which.
"""

from __future__ import annotations

import fcntl  # built into the interpreter: no import cost
import posix

from ocirt import debug
from ocirt._shim._ocirt_shim import ffi, lib
from ocirt.errors import lower_first
from ocirt.linux import capabilities, rlimits
from ocirt.linux.namespaces import JOIN_ORDER
from ocirt.process.channel import MAX_MESSAGE, Msg

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ocirt.process.channel import Channel
    from ocirt.process.exec import ExecPlan
    from ocirt.spec import Process

STAGE2_PATH = __file__.rpartition("/")[0] + "/../_shim/ocirt-init"
MEMFD_NAME = "ocirt-exec"  # not ocirt.record's "ocirt-init": that names a created init
MFD_ALLOW_SEALING = 0x2
F_ADD_SEALS = 1033
F_SEAL_ALL = 0x1 | 0x2 | 0x4 | 0x8  # SEAL, SHRINK, GROW, WRITE
_U64_MAX = 2**64 - 1
_MAX_PROGRAM = 4096 * 8  # BPF_MAXINSNS: a longer one fails in the Python child (E2BIG)
# What stage 2 writes where the errno's text goes (it may be built with
# musl, whose texts differ from glibc's, which runc's messages carry).
_ERRNO_TEXT, _ERRNO_TEXT_LOWER, _ERRNO_TEXT_ALL_LOWER = "\x01", "\x02", "\x03"


def usable(plan: ExecPlan, paused: bool, preserve_fds: int) -> bool:
    """Whether stage 2 can start PLAN's process (the common shapes)."""
    proc = plan.process
    return not (
        not hasattr(lib, "ocirt_spawn")  # a shim built before it
        or paused  # the child may freeze in the cgroup: see Forwarder._child_has_exec
        or proc.terminal
        or preserve_fds
        or proc.apparmor_profile
        or proc.selinux_label
        or proc.exec_cpu_affinity
        or proc.scheduler
        or proc.io_priority
        or plan.in_user_ns
        or plan.root_fd >= 0
        or "mount" not in plan.ns_fds
        or "user" in plan.ns_fds
        or (plan.seccomp is not None and plan.seccomp.wants_listener)
        or (plan.seccomp is not None and len(plan.seccomp.program) > _MAX_PROGRAM)
        or debug.enabled()  # the Python child forwards its --debug lines
    )


def encode_plan(plan: ExecPlan, seccomp_fd: int) -> bytes | None:
    """PROCEED's body for stage 2 (stage2.c's exec_main reads the fields in
    this order), or None when it cannot carry it (a NUL in a string, or too
    long for one message): then the Python child does the work.  SECCOMP_FD:
    ``seccomp_program_fd``'s."""
    proc = plan.process
    fields = [
        *_seccomp_fields(plan, seccomp_fd),
        *_rlimit_fields(proc),
        "" if proc.oom_score_adj is None else str(proc.oom_score_adj),
        *_namespace_fields(plan.ns_fds),
        str(proc.user.uid),
        str(proc.user.gid),
        ",".join(str(gid) for gid in proc.user.additional_gids),
        str(proc.user.umask if proc.user.umask is not None else 0o022),
        proc.cwd,
        *_env_fields(proc),
        *_capability_fields(proc),
        "1" if proc.no_new_privileges else "0",
        str(len(proc.args)),
        *proc.args,
    ]
    text = "\0".join(fields)
    if text.count("\0") != len(fields) - 1:
        return None
    body = text.encode() + b"\0"
    return body if len(body) < MAX_MESSAGE - 1 else None


def _rlimit_fields(proc: Process) -> list[str]:
    fields = [str(len(proc.rlimits))]
    for rl in proc.rlimits:
        soft, hard = min(rl.soft, _U64_MAX), min(rl.hard, _U64_MAX)
        fields += [rl.type, str(rlimits.RLIMITS[rl.type]), str(soft), str(hard)]
    return fields


def _namespace_fields(ns_fds: dict[str, int]) -> list[str]:
    """(type, fd) in join order: user first, mount last; pid is joined by the spawn."""
    order = [ns for ns in JOIN_ORDER if ns in ns_fds and ns != "pid"]
    fields = [str(len(order))]
    for ns_type in order:
        fields += [ns_type, str(ns_fds[ns_type])]
    return fields


def _env_fields(proc: Process) -> list[str]:
    """Need HOME (from the container's /etc/passwd), then process.env as
    ``user.process_env``'s dict orders it: the last value of a name, at the
    place of its first."""
    env = dict(e.split("=", 1) if "=" in e else (e, "") for e in proc.env)
    need_home = "HOME" not in env
    return ["1" if need_home else "0", str(len(env)), *(f"{k}={v}" for k, v in env.items())]


def _capability_fields(proc: Process) -> list[str]:
    caps = proc.capabilities
    last = capabilities.last_cap()
    if caps is None:
        return ["0", "0", "0", "0", "0", "", str(last)]
    ambient = [
        str(number)
        for number in (capabilities.CAP_NUMBERS.get(name) for name in caps.ambient)
        if number is not None and number <= last
    ]
    masks = (caps.bounding, caps.effective, caps.permitted, caps.inheritable)
    return ["1", *(f"{capabilities.mask(m):x}" for m in masks), ",".join(ambient), str(last)]


def seccomp_program_fd(plan: ExecPlan) -> int:
    """An inheritable memfd holding PLAN's seccomp program, or -1 (none);
    stage 2 reads it before it closes our fds.  The caller closes it."""
    if plan.seccomp is None:
        return -1
    from ocirt.linux import seccomp  # preloaded

    fd = seccomp.program_memfd(plan.seccomp, 3)
    posix.set_inheritable(fd, True)
    return fd


def _seccomp_fields(plan: ExecPlan, fd: int) -> list[str]:
    """ "FD,FLAGS" or "-1", and whether it loads before the user switch
    (without no_new_privs: it needs CAP_SYS_ADMIN then)."""
    if plan.seccomp is None or fd < 0:
        return ["-1", "0"]
    from ocirt.linux import seccomp  # preloaded

    early = seccomp.must_load_early(plan.process)
    return [f"{fd},{plan.seccomp.flags}", "1" if early else "0"]


def stage2_memfd() -> int:
    """A sealed, execute-only copy of ocirt-init (see parent._stage2_memfd):
    the process's /proc/self/exe until its execve is never a host file."""
    fd = posix.memfd_create(MEMFD_NAME, posix.MFD_CLOEXEC | MFD_ALLOW_SEALING)
    try:
        source = posix.open(STAGE2_PATH, posix.O_RDONLY | posix.O_CLOEXEC)
        try:
            size = posix.fstat(source).st_size
            offset = 0
            while offset < size:
                offset += posix.sendfile(fd, source, offset, size - offset)
        finally:
            posix.close(source)
        fcntl.fcntl(fd, F_ADD_SEALS, F_SEAL_ALL)
        posix.fchmod(fd, 0o111)
    except BaseException:
        posix.close(fd)
        raise
    return fd


def spawn_argv(plan: ExecPlan, memfd: int) -> list[str]:
    """stage2.c's exec argv, its first item the path of MEMFD (stage2_memfd's);
    makes the fds it names inheritable (they are ours to close right after
    the spawn: ``exec.start``'s cleanups)."""
    argv = [f"/proc/self/fd/{memfd}", "exec", str(plan.channel.fileno())]
    argv += [str(fd) for fd in plan.stdio]
    inherited = [plan.channel.fileno(), *plan.ns_fds.values(), *(f for f in plan.stdio if f >= 0)]
    for fd, directory in plan.cgroup_files:
        argv += [str(fd), directory]
        inherited.append(fd)
    for fd in inherited:
        posix.set_inheritable(fd, True)
    return argv


def spawn(argv: list[str], cgroup_fd: int) -> int:
    """vfork+execve of stage 2 (the shim's ocirt_spawn: clone3 with CLONE_VM |
    CLONE_VFORK, so no page tables are copied and nothing copied on write,
    and CLONE_INTO_CGROUP with CGROUP_FD: the child is born in the cgroup v2
    directory, no write to cgroup.procs, which waits for an RCU grace period).
    Its environment is the plan's, not ours.  In the container's pid namespace
    when the caller has setns()'d it for its children (``exec._fork_child``)."""
    items = [ffi.new("char[]", arg.encode("utf-8", "surrogateescape")) for arg in argv]
    c_argv = ffi.new("char *[]", [*items, ffi.NULL])
    no_env = ffi.new("char *[]", [ffi.NULL])
    pid = lib.ocirt_spawn(items[0], c_argv, no_env, cgroup_fd)
    if pid < 0:
        err = ffi.errno
        raise OSError(err, f"clone3: {posix.strerror(err)}")
    return int(pid)


def send_plan(channel: Channel, body: bytes) -> None:
    channel.sock.send(bytes([Msg.PROCEED]) + body)


def error_text(errno: int, message: str) -> str:
    """Stage 2's MESSAGE with the errno's text where it marked it."""
    if not any(mark in message for mark in (_ERRNO_TEXT, _ERRNO_TEXT_LOWER, _ERRNO_TEXT_ALL_LOWER)):
        return message
    text = posix.strerror(errno)
    return (
        message.replace(_ERRNO_TEXT, text)
        .replace(_ERRNO_TEXT_LOWER, lower_first(text))
        .replace(_ERRNO_TEXT_ALL_LOWER, text.lower())
    )
