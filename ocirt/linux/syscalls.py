"""Pythonic wrappers over the cffi shim: bytes/str in, ``OSError`` out.

Every failure raises ``OSError(errno, "call(args): strerror")`` so that a
message reaching the user says which call failed on what, the way mkosi's
sandbox layer reads.  Nothing here decides policy.
"""

from __future__ import annotations

import errno as _errno
import posix  # not os: exec imports nothing that needs it (~1.5 ms)

from ocirt._shim._ocirt_shim import ffi, lib

# clone(2) / unshare(2) / setns(2) namespace flags.
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# mount(2) flags.
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 0x20000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_SHARED = 0x100000
MS_RELATIME = 0x200000
MS_I_VERSION = 0x800000
MS_STRICTATIME = 0x1000000
MS_LAZYTIME = 0x2000000
MNT_DETACH = 0x2

# openat2(2) resolve flags.
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

# open_tree(2) / move_mount(2) / mount_setattr(2).
OPEN_TREE_CLONE = 0x1
OPEN_TREE_CLOEXEC = posix.O_CLOEXEC
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
AT_SYMLINK_NOFOLLOW = 0x100
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_EMPTY_PATH = 0x40
FSOPEN_CLOEXEC = 0x1
FSMOUNT_CLOEXEC = 0x1
FSCONFIG_SET_FLAG = 0
FSCONFIG_SET_STRING = 1
FSCONFIG_CMD_CREATE = 6
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR__ATIME = 0x70
MOUNT_ATTR_RELATIME = 0x0
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_IDMAP = 0x100000
MOUNT_ATTR_NOSYMFOLLOW = 0x200000

# prctl(2).
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

CLOSE_RANGE_CLOEXEC = 1 << 2


def _check(result: int, call: str, *detail: object) -> int:
    if result < 0:
        err = ffi.errno
        where = f"{call}({', '.join(_brief(str(d)) for d in detail)})" if detail else call
        raise OSError(err, f"{where}: {posix.strerror(err)}")
    return result


def _brief(text: str) -> str:
    """An argument as an error message shows it: a mount's data can be as long
    as a config's string (a fuzzed config's was a megabyte): its ends only."""
    return text if len(text) <= 200 else f"{text[:120]}...({len(text)} characters)...{text[-40:]}"


def _c(value: str | bytes | None):
    if value is None:
        return ffi.NULL
    return value.encode() if isinstance(value, str) else value


def fork_with_flags(flags: int, cgroup_fd: int = -1) -> int:
    """fork(2) whose child starts in new namespaces (and a cgroup on v2)."""
    return _check(lib.ocirt_fork(flags, cgroup_fd), "clone", hex(flags))


def unshare(flags: int) -> None:
    _check(lib.ocirt_unshare(flags), "unshare", hex(flags))


def setns(fd: int, nstype: int = 0) -> None:
    _check(lib.ocirt_setns(fd, nstype), "setns", hex(nstype))


def pivot_root(new_root: str, put_old: str) -> None:
    _check(lib.ocirt_pivot_root(_c(new_root), _c(put_old)), "pivot_root", new_root)


def mount(
    source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None
) -> None:
    result = lib.ocirt_mount(_c(source), _c(target), _c(fstype), flags, _c(data))
    _check(result, "mount", source, target, fstype, hex(flags), data or "")


def umount2(target: str, flags: int = 0) -> None:
    _check(lib.ocirt_umount2(_c(target), flags), "umount2", target)


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(lib.ocirt_sethostname(raw, len(raw)), "sethostname", name)


def setdomainname(name: str) -> None:
    raw = name.encode()
    _check(lib.ocirt_setdomainname(raw, len(raw)), "setdomainname", name)


def _split64(mask: int) -> list[int]:
    return [mask & 0xFFFFFFFF, (mask >> 32) & 0xFFFFFFFF]


def capget(pid: int = 0) -> tuple[int, int, int]:
    """(effective, permitted, inheritable) as 64-bit masks."""
    eff = ffi.new("uint32_t[2]")
    perm = ffi.new("uint32_t[2]")
    inh = ffi.new("uint32_t[2]")
    _check(lib.ocirt_capget(pid, eff, perm, inh), "capget", pid)
    join = lambda a: a[0] | (a[1] << 32)  # noqa: E731
    return join(eff), join(perm), join(inh)


def capset(effective: int, permitted: int, inheritable: int) -> None:
    eff = ffi.new("uint32_t[2]", _split64(effective))
    perm = ffi.new("uint32_t[2]", _split64(permitted))
    inh = ffi.new("uint32_t[2]", _split64(inheritable))
    _check(lib.ocirt_capset(eff, perm, inh), "capset")


def prctl(option: int, a2: int = 0, a3: int = 0, a4: int = 0, a5: int = 0) -> int:
    return _check(lib.ocirt_prctl(option, a2, a3, a4, a5), "prctl", option, a2)


def personality(persona: int) -> int:
    return _check(lib.ocirt_personality(persona), "personality", hex(persona))


# openat2 says EAGAIN when a rename or a mount anywhere on the host ran while it
# resolved a ".." under RESOLVE_IN_ROOT or RESOLVE_BENEATH (a busy node renames
# all the time: ~3% of such look-ups failed beside one renaming loop); the
# look-up is then simply made again.
OPENAT2_ATTEMPTS = 128


def openat2(dirfd: int, path: str, flags: int, mode: int = 0, resolve: int = 0) -> int:
    c_path = _c(path)
    for _ in range(OPENAT2_ATTEMPTS):
        result = lib.ocirt_openat2(dirfd, c_path, flags, mode, resolve)
        if result >= 0 or ffi.errno != _errno.EAGAIN:
            break
    return _check(result, "openat2", path)


def open_tree(dirfd: int, path: str, flags: int) -> int:
    return _check(lib.ocirt_open_tree(dirfd, _c(path), flags), "open_tree", path)


def move_mount(from_dirfd: int, from_path: str, to_dirfd: int, to_path: str, flags: int) -> None:
    result = lib.ocirt_move_mount(from_dirfd, _c(from_path), to_dirfd, _c(to_path), flags)
    _check(result, "move_mount", to_path)


def mount_setattr(
    dirfd: int,
    path: str,
    flags: int,
    attr_set: int = 0,
    attr_clr: int = 0,
    propagation: int = 0,
    userns_fd: int = 0,
) -> None:
    result = lib.ocirt_mount_setattr(
        dirfd, _c(path), flags, attr_set, attr_clr, propagation, userns_fd
    )
    _check(result, "mount_setattr", path, hex(attr_set), hex(attr_clr))


def fstatfs_type(fd: int) -> int:
    """The magic number of the filesystem FD is on (fstatfs(2)'s f_type)."""
    return _check(lib.ocirt_fstatfs_type(fd), "fstatfs", fd)


def fsopen(fsname: str) -> int:
    """A new filesystem context for FSNAME (fsopen(2), close-on-exec)."""
    return _check(lib.ocirt_fsopen(_c(fsname), FSOPEN_CLOEXEC), "fsopen", fsname)


def fsconfig(fd: int, cmd: int, key: str | None = None, value: str | None = None) -> None:
    _check(lib.ocirt_fsconfig(fd, cmd, _c(key), _c(value), 0), "fsconfig", key or cmd)


def fsmount(fd: int, attr_flags: int = 0) -> int:
    """The detached mount of the created context FD (fsmount(2), close-on-exec)."""
    return _check(lib.ocirt_fsmount(fd, FSMOUNT_CLOEXEC, attr_flags), "fsmount", fd)


def close_range(first: int, last: int = 0xFFFFFFFF, flags: int = 0) -> None:
    _check(lib.ocirt_close_range(first, last, flags), "close_range", first)


def pidfd_send_signal(pidfd: int, sig: int) -> None:
    """SIG to the process PIDFD pins, raising as ``_signal.pidfd_send_signal``
    does (ProcessLookupError once it has exited), without the launcher's main
    phase that importing ``_signal`` costs (~2 ms: shim.h).  A shim built
    before this call existed falls back to ``_signal``."""
    send = getattr(lib, "ocirt_pidfd_send_signal", None)
    if send is None:
        import _signal

        _signal.pidfd_send_signal(pidfd, sig)
        return
    if send(pidfd, sig) < 0:
        err = ffi.errno
        raise OSError(err, posix.strerror(err))


def pidfd_getfd(pidfd: int, target_fd: int) -> int:
    """Our copy (close-on-exec) of fd TARGET_FD of the process PIDFD refers to."""
    return _check(lib.ocirt_pidfd_getfd(pidfd, target_fd, 0), "pidfd_getfd", target_fd)


def ioprio_set(which: int, who: int, ioprio: int) -> None:
    _check(lib.ocirt_ioprio_set(which, who, ioprio), "ioprio_set", ioprio)


def setrlimit(resource: int, soft: int, hard: int) -> None:
    """RESOURCE by Linux's number; 2**64 - 1 is unlimited (RLIM_INFINITY)."""
    _check(lib.ocirt_setrlimit(resource, soft, hard), "setrlimit", resource)


def reset_signals() -> None:
    """Every ignored signal to SIG_DFL, an empty signal mask (see shim.h)."""
    _check(lib.ocirt_reset_signals(), "sigaction")


SIG_BLOCK, SIG_SETMASK = 0, 2


def has_signalfd() -> bool:
    """Whether this build of the shim has block_signals and signalfd (a shim
    built before them lacks them: its callers fall back to signal handlers)."""
    return hasattr(lib, "ocirt_signalfd")


def block_signals(signals: tuple[int, ...]) -> int:
    """Block SIGNALS (added to the mask); the previous mask, for set_signal_mask."""
    old = ffi.new("uint64_t *")
    _check(lib.ocirt_sigprocmask(SIG_BLOCK, signal_mask(signals), old), "sigprocmask")
    return int(old[0])


def set_signal_mask(mask: int) -> None:
    _check(lib.ocirt_sigprocmask(SIG_SETMASK, mask, ffi.NULL), "sigprocmask")


def signalfd(signals: tuple[int, ...]) -> int:
    """A signalfd(2) for SIGNALS (which must be blocked): close-on-exec, non-blocking."""
    return _check(lib.ocirt_signalfd(signal_mask(signals)), "signalfd")


def signal_mask(signals: tuple[int, ...]) -> int:
    """The kernel's sigset_t of SIGNALS: bit N-1 is signal N."""
    mask = 0
    for sig in signals:
        mask |= 1 << (sig - 1)
    return mask


def errno_name(err: int) -> str:
    return _errno.errorcode.get(err, str(err))


def sched_setattr(
    pid: int,
    policy: int,
    flags: int = 0,
    nice: int = 0,
    priority: int = 0,
    runtime: int = 0,
    deadline: int = 0,
    period: int = 0,
) -> None:
    result = lib.ocirt_sched_setattr(pid, policy, flags, nice, priority, runtime, deadline, period)
    _check(result, "sched_setattr", policy, hex(flags))


def set_mempolicy(mode: int, nodes: list[int]) -> None:
    """set_mempolicy(2); NODES are NUMA node numbers (an empty list: no mask)."""
    bits = 8 * ffi.sizeof("unsigned long")
    words = max(nodes, default=-1) // bits + 1
    mask = ffi.new("unsigned long[]", max(words, 1))
    for node in nodes:
        mask[node // bits] |= 1 << (node % bits)
    maxnode = words * bits + 1 if nodes else 0  # the kernel reads maxnode - 1 bits
    result = lib.ocirt_set_mempolicy(mode, mask if nodes else ffi.NULL, maxnode)
    _check(result, "set_mempolicy", mode)
