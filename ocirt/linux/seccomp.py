"""``linux.seccomp``: compile the runtime-spec object to a BPF program.

libseccomp (through the cffi shim, ``ocirt/_shim/seccomp.c``) turns the
profile into a classic-BPF program the way runc does (same action, operator
and argument rules), which we then patch and hand to whoever loads it:

* stage 2 (``ocirt/_shim/stage2.c``) loads it right before ``execve`` of the
  container's program, so the profile covers almost nothing but the program;
* with ``noNewPrivileges`` off, loading needs CAP_SYS_ADMIN, which the
  process may not keep: then the Python stage loads it before it drops
  capabilities and switches user, as runc loads it before finalizeNamespace.

The patch is runc's ``patchbpf``: a stub in front of libseccomp's program
returns ENOSYS for syscall numbers above the highest one the profile names
(per architecture), so a program meets "not implemented" rather than the
default EPERM for syscalls newer than the profile (glibc falls back from
clone3 to clone only on ENOSYS).

Notify: with any SCMP_ACT_NOTIFY rule the filter is loaded with
SECCOMP_FILTER_FLAG_NEW_LISTENER, and the listener must reach the agent at
``listenerPath`` before the loading process makes a syscall the profile
notifies (its own execve, a close...), or that syscall waits for an agent
that never gets the fd.  So the loader only *writes* the fd's number to the
runtime process above it (``write`` is the one syscall a profile may not
notify: refused here, as runc does), which takes the fd with pidfd_getfd(2)
(:func:`take_listener`), sends it with the runtime-spec
``ContainerProcessState`` to the agent (:func:`send_to_agent`) and only then
lets the loader go on; whatever the loader calls meanwhile waits in the
kernel for the agent, which has the fd by then.  Stage 2 writes to ``ocirt
start`` over the start connection (:func:`read_start_reply`); the Python
init (an early load) and exec's child write over their channel to ``create``
and ``exec``.

Only ``os``, ``sys`` and ``ocirt.errors`` are imported at module level, and
the cffi module lazily: :func:`read_start_reply` runs in ``ocirt start``,
one of the short commands.
"""

from __future__ import annotations

# At the top, not where they are used: the filter is compiled in the init,
# which cannot import (ocirt.process.common.seal_imports).
import _struct as struct  # C: struct.py, not in the code bundle, would finish the start
import fcntl
import posix  # not os (~1.5 ms of imports that exec, a probe, does without)

from ocirt.errors import OcirtError
from ocirt.linux import fdpass

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

EPERM = 1
ENOSYS = 38
SEEK_SET, SEEK_END = 0, 2  # os's, which posix lacks

# SCMP_ACT_* base values (libseccomp's, which are the kernel's SECCOMP_RET_*
# except KILL = KILL_THREAD); ERRNO and TRACE carry 16 bits of data.
ACT_KILL_PROCESS = 0x80000000
ACT_KILL_THREAD = 0x00000000
ACT_TRAP = 0x00030000
ACT_ERRNO = 0x00050000
ACT_NOTIFY = 0x7FC00000
ACT_TRACE = 0x7FF00000
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000
ACTIONS = {
    "SCMP_ACT_KILL": ACT_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": ACT_KILL_PROCESS,
    "SCMP_ACT_KILL_THREAD": ACT_KILL_THREAD,
    "SCMP_ACT_TRAP": ACT_TRAP,
    "SCMP_ACT_ERRNO": ACT_ERRNO,
    "SCMP_ACT_TRACE": ACT_TRACE,
    "SCMP_ACT_ALLOW": ACT_ALLOW,
    "SCMP_ACT_LOG": ACT_LOG,
    "SCMP_ACT_NOTIFY": ACT_NOTIFY,
}
# Default actions that let unknown syscalls through: no ENOSYS stub (runc's
# isAllowAction; a tracer is expected to handle new syscalls itself).
PERMISSIVE = (ACT_ALLOW, ACT_LOG, ACT_TRACE)

OPERATORS = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}

# SECCOMP_FILTER_FLAG_*.  TSYNC is accepted and ignored, as runc does: the
# process is single-threaded when the filter is loaded (and TSYNC cannot be
# combined with NEW_LISTENER).
FLAG_TSYNC = 1 << 0
FLAG_LOG = 1 << 1
FLAG_SPEC_ALLOW = 1 << 2
FLAG_NEW_LISTENER = 1 << 3
FLAG_WAIT_KILLABLE_RECV = 1 << 5
FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": 0,
    "SECCOMP_FILTER_FLAG_LOG": FLAG_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": FLAG_SPEC_ALLOW,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": FLAG_WAIT_KILLABLE_RECV,
}

# runtime-spec architecture -> libseccomp's name for it.
ARCHES = {
    "SCMP_ARCH_X86": "x86",
    "SCMP_ARCH_X86_64": "x86_64",
    "SCMP_ARCH_X32": "x32",
    "SCMP_ARCH_ARM": "arm",
    "SCMP_ARCH_AARCH64": "aarch64",
    "SCMP_ARCH_MIPS": "mips",
    "SCMP_ARCH_MIPS64": "mips64",
    "SCMP_ARCH_MIPS64N32": "mips64n32",
    "SCMP_ARCH_MIPSEL": "mipsel",
    "SCMP_ARCH_MIPSEL64": "mipsel64",
    "SCMP_ARCH_MIPSEL64N32": "mipsel64n32",
    "SCMP_ARCH_PPC": "ppc",
    "SCMP_ARCH_PPC64": "ppc64",
    "SCMP_ARCH_PPC64LE": "ppc64le",
    "SCMP_ARCH_S390": "s390",
    "SCMP_ARCH_S390X": "s390x",
    "SCMP_ARCH_PARISC": "parisc",
    "SCMP_ARCH_PARISC64": "parisc64",
    "SCMP_ARCH_RISCV64": "riscv64",
    "SCMP_ARCH_LOONGARCH64": "loongarch64",
    "SCMP_ARCH_M68K": "m68k",
    "SCMP_ARCH_SH": "sh",
    "SCMP_ARCH_SHEB": "sheb",
}
AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_S390 = 0x00000016
AUDIT_ARCH_S390X = 0x80000016
X32_SYSCALL_BIT = 0x40000000
SCMP_FLTATR_CTL_OPTIMIZE = 8
SPEC_VERSION = "1.0.2"  # ContainerProcessState's ociVersion when the state has none
LISTENER_MSG = b"seccomp-listener "  # stage 2's "seccomp-listener FD\n", see stage2.c
LISTENER_TAKEN = b"T"  # start -> stage 2: the agent has the listener, go on
NOTIFY_FD_LINK = "anon_inode:seccomp notify"  # what /proc/self/fd/N of a listener reads


class SeccompError(OcirtError):
    """A profile we cannot compile or load; the message says which part."""


class CompiledFilter:
    """A ready program: ``program`` is the struct sock_filter array."""

    __slots__ = ("flags", "program")

    def __init__(self, program: bytes, flags: int) -> None:
        self.program = program
        self.flags = flags  # for seccomp(2); includes NEW_LISTENER for notify

    @property
    def wants_listener(self) -> bool:
        return bool(self.flags & FLAG_NEW_LISTENER)


# -- compiling -------------------------------------------------------------------
def _lib() -> Any:
    from ocirt._shim._ocirt_shim import ffi, lib

    return ffi, lib


def action_value(name: str, errno_ret: int | None) -> int:
    """SCMP_ACT_* name (+ errnoRet) -> the 32-bit action (runc's getAction)."""
    try:
        base = ACTIONS[name]
    except KeyError:
        raise SeccompError(f"seccomp: unknown action {name!r}") from None
    if base in (ACT_ERRNO, ACT_TRACE):
        data = EPERM if errno_ret is None else errno_ret
        if not 0 <= data <= 0xFFFF:
            raise SeccompError(f"seccomp: errnoRet {data} does not fit the 16 bits of {name}")
        return base | data
    return base


def arch_token(spec_name: str) -> int:
    """libseccomp's token for a runtime-spec architecture name (refuses unknown ones)."""
    _, lib = _lib()
    name = ARCHES.get(spec_name)
    token = lib.ocirt_scmp_arch_token(name.encode()) if name else 0
    if not token:
        raise SeccompError(f"seccomp: architecture {spec_name} is not supported by libseccomp")
    return int(token)


def syscall_number(name: str, arch: int = 0) -> int:
    """The number of syscall NAME on ARCH (0 = native); -1 if libseccomp does not know it."""
    _, lib = _lib()
    return int(lib.ocirt_scmp_syscall_number(arch, name.encode()))


def compile_filter(config: dict[str, Any]) -> CompiledFilter:
    """A ``linux.seccomp`` object -> the patched program and its load flags."""
    default = action_value(config.get("defaultAction") or "", config.get("defaultErrnoRet"))
    if default == ACT_NOTIFY:
        # Every syscall of the runtime after the load would wait for an agent
        # that has not got the fd yet (runc refuses it too).
        raise SeccompError("seccomp: SCMP_ACT_NOTIFY cannot be used as default action")
    rules = list(_rules(config.get("syscalls") or (), default))
    flags = _flags(config.get("flags") or (), any(r[1] == ACT_NOTIFY for r in rules))
    program = _libseccomp_program(config, default, rules)
    stub = b""
    if _wants_enosys_stub(default):
        stub = _assemble(_enosys_stub(_last_syscalls(config)))
    return CompiledFilter(stub + program, flags)


def _rules(syscalls: Any, default: int) -> Any:
    """(number, action, conditions) per rule, with runc's matchCall semantics."""
    for entry in syscalls:
        action = action_value(entry.get("action") or "", entry.get("errnoRet"))
        conditions = [_condition(arg) for arg in entry.get("args") or ()]
        for name in entry.get("names") or ():
            if action == ACT_NOTIFY and name == "write":
                # The listener's number leaves its process by write (see the
                # top): that write must never wait for the agent it feeds.
                raise SeccompError(
                    "unable to init seccomp: SCMP_ACT_NOTIFY cannot be used for the write syscall"
                )
            if action == default:
                continue  # redundant; libseccomp refuses it
            number = syscall_number(name)
            if number == -1:
                continue  # unknown to libseccomp: skipped, as runc does
            indexes = [c[0] for c in conditions]
            if len(set(indexes)) < len(indexes):
                # Two conditions on one argument cannot be ANDed by libseccomp:
                # runc then adds one rule per condition (OR).
                for cond in conditions:
                    yield number, action, [cond]
            else:
                yield number, action, conditions


def _condition(arg: dict[str, Any]) -> tuple[int, int, int, int]:
    index = arg.get("index", 0)
    if not 0 <= index <= 5:
        raise SeccompError(f"seccomp: argument index {index} is out of range (0-5)")
    op = OPERATORS.get(arg.get("op") or "")
    if op is None:
        raise SeccompError(f"seccomp: unknown operator {arg.get('op')!r}")
    mask = 0xFFFFFFFFFFFFFFFF
    return index, op, arg.get("value", 0) & mask, arg.get("valueTwo", 0) & mask


def _flags(names: Any, notify: bool) -> int:
    flags = FLAG_NEW_LISTENER if notify else 0
    for name in names:
        if name not in FLAGS:
            raise SeccompError(f"seccomp: flag {name} is not known to ocirt")
        flags |= FLAGS[name]
    if not notify:
        # The kernel refuses WAIT_KILLABLE_RECV without a listener; with no
        # notify rule there is nothing for it to change.
        flags &= ~FLAG_WAIT_KILLABLE_RECV
    return flags


def _libseccomp_program(
    config: dict[str, Any], default: int, rules: list[tuple[int, int, list[Any]]]
) -> bytes:
    ffi, lib = _lib()
    ctx = lib.ocirt_scmp_new(default)
    if ctx == ffi.NULL:
        raise SeccompError("seccomp: libseccomp refused the default action")
    try:
        for spec_arch in config.get("architectures") or ():
            _check(lib.ocirt_scmp_arch_add(ctx, arch_token(spec_arch)), f"add {spec_arch}")
        if len(config.get("syscalls") or ()) > 32:
            # runc's choice: libseccomp's binary tree for long profiles.
            _check(lib.ocirt_scmp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2), "optimize")
        for number, action, conds in rules:
            n = len(conds)
            rc = lib.ocirt_scmp_rule_add(
                ctx, action, number, n,
                ffi.new("unsigned int[]", [c[0] for c in conds] or [0]),
                ffi.new("int[]", [c[1] for c in conds] or [0]),
                ffi.new("uint64_t[]", [c[2] for c in conds] or [0]),
                ffi.new("uint64_t[]", [c[3] for c in conds] or [0]),
            )  # fmt: skip
            _check(rc, f"add rule for syscall {number}")
        return _export(ctx)
    finally:
        lib.ocirt_scmp_free(ctx)


def _export(ctx: Any) -> bytes:
    _, lib = _lib()
    fd = posix.memfd_create("ocirt-seccomp-export", posix.MFD_CLOEXEC)
    try:
        _check(lib.ocirt_scmp_export_bpf(ctx, fd), "export")
        size = posix.lseek(fd, 0, SEEK_END)
        return posix.pread(fd, size, 0)
    finally:
        posix.close(fd)


def _check(rc: int, what: str) -> None:
    if rc < 0:
        ffi, _ = _lib()
        err = ffi.errno
        raise SeccompError(f"seccomp: {what}: {posix.strerror(err).lower()}")


# -- the -ENOSYS stub (runc's patchbpf) ---------------------------------------------
def _wants_enosys_stub(default: int) -> bool:
    if default in PERMISSIVE:
        return False
    return default != ACT_ERRNO | ENOSYS  # already what the stub would return


def _last_syscalls(config: dict[str, Any]) -> dict[int, dict[str, int]]:
    """audit arch -> {libseccomp arch name: highest syscall number the profile names}.

    The native architecture always counts (libseccomp's filter always has
    it; runc only looks at ``architectures``).  x86_64 and x32 share an
    audit arch and differ by the x32 bit in the number.
    """
    names = {n for entry in config.get("syscalls") or () for n in entry.get("names") or ()}
    _, lib = _lib()
    tokens = {int(lib.ocirt_scmp_arch_native())}
    tokens.update(arch_token(a) for a in config.get("architectures") or ())
    last: dict[int, dict[str, int]] = {}
    x32 = arch_token("SCMP_ARCH_X32")
    for token in tokens:
        numbers = [syscall_number(n, token) for n in names]
        highest = max((n for n in numbers if n >= 0), default=0)
        if highest <= 0:
            continue
        audit = AUDIT_ARCH_X86_64 if token == x32 else token
        last.setdefault(audit, {})["x32" if token == x32 else "main"] = highest
    return last


# Instructions: (op, k, jt, jf) with jt/jf label names (None: the next one),
# or ("label", name).  BPF opcodes below.
_LD_W_ABS = 0x20
_JA = 0x05
_JEQ = 0x15
_JGT = 0x25
_JSET = 0x45
_RET_K = 0x06
Insn = tuple  # (op, k, jt, jf) or ("label", name)


def _enosys_stub(last: dict[int, dict[str, int]]) -> list[Insn]:
    """Jump on the arch, compare the number with that arch's highest, else fall into the filter."""
    code: list[Insn] = [(_LD_W_ABS, 4, None, None)]  # seccomp_data.arch
    for audit in last:
        code.append((_JEQ, audit, f"arch{audit}", None))
    code.append((_JA, "filter", None, None))
    for audit, highest in last.items():
        code.append(("label", f"arch{audit}"))
        code.append((_LD_W_ABS, 0, None, None))  # seccomp_data.nr
        code.extend(_arch_section(audit, highest))
    code.append(("label", "enosys"))
    code.append((_RET_K, ACT_ERRNO | ENOSYS, None, None))
    code.append(("label", "filter"))
    return code


def _arch_section(audit: int, highest: dict[str, int]) -> list[Insn]:
    main, x32 = highest.get("main"), highest.get("x32")
    if audit in (AUDIT_ARCH_S390, AUDIT_ARCH_S390X):
        # Unknown large numbers reach the filter as 0 (setup(2), long gone).
        return [(_JEQ, 0, "enosys", None), (_JGT, main, "enosys", "filter")]
    if audit != AUDIT_ARCH_X86_64:
        return [(_JGT, main, "enosys", "filter")]
    x32 = x32 if x32 is None else x32 | X32_SYSCALL_BIT
    if main is not None and x32 is not None:
        return [
            (_JSET, X32_SYSCALL_BIT, "x32", None),
            (_JGT, main, "enosys", "filter"),
            ("label", "x32"),
            (_JGT, x32, "enosys", "filter"),
        ]
    if main is not None:  # x32 calls are the filter's business (bad arch)
        return [(_JSET, X32_SYSCALL_BIT, "filter", None), (_JGT, main, "enosys", "filter")]
    return [(_JSET, X32_SYSCALL_BIT, None, "filter"), (_JGT, x32, "enosys", "filter")]


def _assemble(code: list[Insn]) -> bytes:
    """Resolve labels to relative offsets; the stub is tiny, so they fit in 8 bits."""
    labels: dict[str, int] = {}
    pc = 0
    for insn in code:
        if insn[0] == "label":
            labels[insn[1]] = pc
        else:
            pc += 1
    out = bytearray()
    pc = 0
    for insn in code:
        if insn[0] == "label":
            continue
        op, k, jt, jf = insn
        if op == _JA:
            k, jt_off, jf_off = labels[k] - pc - 1, 0, 0
        else:
            jt_off = labels[jt] - pc - 1 if jt else 0
            jf_off = labels[jf] - pc - 1 if jf else 0
        assert 0 <= jt_off <= 255 and 0 <= jf_off <= 255
        out += struct.pack("=HBBI", op, jt_off, jf_off, k)
        pc += 1
    return bytes(out)


# -- loading ---------------------------------------------------------------------
def must_load_early(process: Any) -> bool:
    """Without no_new_privs, loading needs CAP_SYS_ADMIN: keep it or load before dropping it.

    The program keeps CAP_SYS_ADMIN in its effective set only as root with
    it in ``effective`` and ``permitted`` (or, non-root, in ``ambient``);
    in every other case the Python stage loads the filter while it still has
    its privileges, as runc does whenever noNewPrivileges is false.
    """
    if process.no_new_privileges:
        return False
    caps = process.capabilities
    admin = "CAP_SYS_ADMIN"
    if caps is None:  # nothing is dropped: root keeps all, anyone else has none
        return process.user.uid != 0
    if process.user.uid == 0:
        return not (admin in (caps.effective or ()) and admin in (caps.permitted or ()))
    return admin not in (caps.ambient or ())


def load(compiled: CompiledFilter) -> int:
    """Load into the calling thread; returns the listener fd, or -1."""
    ffi, lib = _lib()
    count = len(compiled.program) // 8
    rc = lib.ocirt_seccomp_load(compiled.flags, ffi.from_buffer(compiled.program), count)
    if rc < 0:
        err = ffi.errno
        raise OSError(err, f"unable to init seccomp: error loading seccomp filter into kernel: "
                      f"{posix.strerror(err).lower()}")  # fmt: skip
    return rc if compiled.wants_listener else -1


# pidfd_getfd(2) needs ptrace rights over the listener's holder.  A root
# runtime has them (CAP_SYS_PTRACE in the user namespace the holder's memory
# belongs to: its own, for a holder forked from it that has not exec'd); a
# rootless one only while the holder is dumpable, which the init and exec's
# child are not (CVE-2016-9962).  Read in the runtime, before the fork.
_RUNTIME_IS_ROOT = posix.geteuid() == 0
PR_SET_DUMPABLE = 4
_made_dumpable = False


def load_for_handover(compiled: CompiledFilter) -> int:
    """:func:`load`, in a process whose parent then takes the listener (take_listener).

    For a rootless parent we are made dumpable for that (see above): from
    before the load (after it, prctl may be a notified syscall, which no
    agent could answer yet) until :func:`end_handover`; runc's init is
    dumpable all along.
    """
    global _made_dumpable
    if compiled.wants_listener and not _RUNTIME_IS_ROOT:
        _, lib = _lib()
        lib.ocirt_prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
        _made_dumpable = True
    return load(compiled)


def end_handover() -> None:
    """The parent has the listener (and the agent): not dumpable any more."""
    global _made_dumpable
    if _made_dumpable:
        ffi, lib = _lib()
        if lib.ocirt_prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0:  # never go on dumpable
            err = ffi.errno  # (the agent may refuse a notified prctl)
            raise OSError(err, f"prctl(PR_SET_DUMPABLE, 0): {posix.strerror(err).lower()}")
        _made_dumpable = False


def program_memfd(compiled: CompiledFilter, floor: int) -> int:
    """A close-on-exec memfd at >= FLOOR holding the program, for stage 2."""
    fd = posix.memfd_create("ocirt-seccomp", posix.MFD_CLOEXEC)
    try:
        posix.write(fd, compiled.program)
        posix.lseek(fd, 0, SEEK_SET)
        return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, floor)
    finally:
        posix.close(fd)


def supported_flags() -> list[str]:
    """The known flags this kernel accepts (for ``features``)."""
    _, lib = _lib()
    out = []
    for name, bit in FLAGS.items():
        probe = bit or FLAG_TSYNC
        if bit == FLAG_WAIT_KILLABLE_RECV:
            probe |= FLAG_NEW_LISTENER  # refused on its own
        if lib.ocirt_seccomp_flag_supported(probe):
            out.append(name)
    return out


def supported_arches() -> list[str]:
    _, lib = _lib()
    return [n for n, scmp in ARCHES.items() if lib.ocirt_scmp_arch_token(scmp.encode())]


# -- notify: the listener's way to the agent ------------------------------------------
def read_start_reply(sock: Any, state: dict[str, Any], config: dict[str, Any]) -> bytes:
    """Read stage 2's reply on the start connection, forwarding a listener.

    Stage 2 first writes "seccomp-listener FD\n" when its filter has a
    listener, then waits: the fd goes to the agent (:func:`forward_listener`),
    then LISTENER_TAKEN tells stage 2 to go on, and our write side is shut.
    Returns the rest of the reply: empty when the exec worked.  ``sock`` is a
    ``_socket.socket``; ``state`` is the state that ``start`` sent; ``config``
    the container's config.json.
    """
    import _socket

    reply = b""
    handed_over = False
    while data := _recv_after_handover(sock, reply) if handed_over else sock.recv(65536):
        reply += data
        if handed_over or not reply.startswith(LISTENER_MSG) or b"\n" not in reply:
            continue  # an exec error (or its start), or the rest of the line to come
        line, _, reply = reply.partition(b"\n")
        seccomp = (config.get("linux") or {}).get("seccomp") or {}
        forward_listener(state.get("pid", 0), _fd_number(line), state, seccomp)
        handed_over = True
        try:
            sock.sendall(LISTENER_TAKEN)
            sock.shutdown(_socket.SHUT_WR)
        except BrokenPipeError:
            pass  # stage 2 failed meanwhile (the agent refused its read): its reply is next
    return reply


def _recv_after_handover(sock: Any, reply: bytes) -> bytes:
    """Stage 2's reply (REPLY: what came so far) once it has the all-clear, or did not wait.

    A stage 2 that failed before reading LISTENER_TAKEN (a notified read the
    agent answered with an error) exits with it unread, which the kernel
    reports as ECONNRESET once, after or before the reply it wrote (see
    ocirt.process.channel).  With no reply at all, the reset stands (killed).
    """
    try:
        return sock.recv(65536)
    except ConnectionResetError:
        if reply:
            return b""
        data = sock.recv(65536)
        if not data:
            raise
        return data


def _fd_number(line: bytes) -> int:
    number = line.removeprefix(LISTENER_MSG)
    if not number.isdigit():
        raise SeccompError(f"seccomp: bad listener message {line[:64]!r}")
    return int(number)


def forward_listener(
    holder: int, fd_number: int, state: dict[str, Any], seccomp: dict[str, Any],
    pid: int | None = None,
) -> None:  # fmt: skip
    """Take the listener FD_NUMBER of process HOLDER and send it to the agent.

    ``seccomp`` is the config's ``linux.seccomp``; PID as :func:`send_to_agent`.
    """
    fd = take_listener(holder, fd_number)
    try:
        send_to_agent(
            seccomp.get("listenerPath") or "",
            fd,
            state,
            seccomp.get("listenerMetadata") or "",
            pid=pid,
        )
    finally:
        posix.close(fd)


def take_listener(holder: int, fd_number: int) -> int:
    """Our copy of the notify listener that process HOLDER has at FD_NUMBER.

    pidfd_getfd(2): the holder only wrote the number (see the top); we are
    its parent (create, exec) or root over the container (start, whose peer
    is blocked waiting for our answer, so the pid is still its own).  The fd
    must be a listener: never hand the agent some other file of the process.
    """
    from ocirt.linux import syscalls

    try:
        pidfd = posix.pidfd_open(holder)
        try:
            fd = syscalls.pidfd_getfd(pidfd, fd_number)
        finally:
            posix.close(pidfd)
    except OSError as e:
        raise SeccompError(
            f"unable to get seccomp fd {fd_number} of pid {holder}:"
            f" {posix.strerror(e.errno).lower()}"
        ) from None
    try:
        is_listener = posix.readlink(f"/proc/self/fd/{fd}") == NOTIFY_FD_LINK
    except OSError:
        is_listener = False
    if not is_listener:
        posix.close(fd)
        raise SeccompError(f"unable to get seccomp fd {fd_number} of pid {holder}: not a listener")
    return fd


def send_to_agent(
    path: str, fd: int, state: dict[str, Any], metadata: str = "", pid: int | None = None
) -> None:
    """runtime-spec ContainerProcessState + the listener fd to the agent at PATH.

    PID is the process the filter belongs to: the init's (the state's) unless
    given (an exec'd process).
    """
    import _socket

    from ocirt import _fastjson

    if not path:
        raise SeccompError("seccomp: SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath")
    message: dict[str, Any] = {
        "ociVersion": state.get("ociVersion") or SPEC_VERSION,
        "fds": ["seccompFd"],
        "pid": state.get("pid", 0) if pid is None else pid,
    }
    if metadata:
        message["metadata"] = metadata
    message["state"] = state
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        sock.connect(path)
        sock.sendmsg([_fastjson.dumps(message).encode()], fdpass.rights(fd))
    except OSError as e:
        raise SeccompError(
            f"failed to connect with seccomp agent specified in the seccomp profile: "
            f"dial unix {path}: connect: {(e.strerror or '').lower()}"
        ) from None
    finally:
        sock.close()
