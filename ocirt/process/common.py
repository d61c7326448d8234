"""Small pieces both runtime-side paths (create and exec) and their children need."""

from __future__ import annotations

import fcntl
import posix  # not os (~1.5 ms of imports that exec, a probe, does without)
import sys

from ocirt.errors import OcirtError, lower_first
from ocirt.linux import pathnames


def high_fd(fd: int, floor: int) -> int:
    """Move FD to >= FLOOR (close-on-exec): the fds below it are the caller's
    preserved ones (--preserve-fds), which must reach the process as they are."""
    if fd >= floor:
        return fd
    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, floor)
    posix.close(fd)
    return new


def join_cgroups_by_tasks(files: tuple[tuple[int, str], ...], what: str) -> None:
    """Enter the cgroups whose ``tasks`` files the runtime opened for us.

    See ocirt.cgroups.open_tasks_file: "0" names the writing thread, and we
    are single-threaded, so this moves the whole process, without the RCU
    grace period a write to cgroup.procs waits for.  WHAT begins the error.
    """
    for fd, directory in files:
        try:
            posix.write(fd, b"0")
        except OSError as e:
            reason = f"failed to write 0 to {directory}/tasks: {lower_first(e.strerror)}"
            raise OSError(e.errno, f"{what}: {reason}") from None
        finally:
            posix.close(fd)


def pid_file_temp(path: str) -> str:
    """The temporary name write_pid_file(PATH) writes first (create records it:
    a create killed before the rename leaves it for `delete --force`)."""
    path = pathnames.abspath(path)
    head, name = path[: path.rfind("/") + 1], path[path.rfind("/") + 1 :]
    return f"{head}.{name}.{posix.getpid()}"


def write_pid_file(path: str, pid: int) -> None:
    """Digits only, no newline, replaced atomically (conmon reads it once)."""
    path = pathnames.abspath(path)
    tmp = pid_file_temp(path)
    fd = posix.open(tmp, posix.O_WRONLY | posix.O_CREAT | posix.O_TRUNC | posix.O_CLOEXEC, 0o644)
    try:
        posix.write(fd, str(pid).encode())
    finally:
        posix.close(fd)
    posix.rename(tmp, path)


def kill_and_reap(pid: int) -> None:
    """SIGKILL our child PID and wait for it, whatever state it is in."""
    try:
        posix.kill(pid, 9)  # SIGKILL
    except ProcessLookupError:
        pass
    try:
        posix.waitpid(pid, 0)
    except ChildProcessError:
        pass


# -- in the child (the init, exec's process), before its execve ----------------
def seal_imports() -> None:
    """From here on, nothing more can be imported (built-in modules aside).

    The children of create and exec run with modules imported before the
    fork (ocirt.process.init.preload, exec's imports): after pivot_root or
    setns(mnt), the directories on sys.path would be the *container's*, and
    an import would run the image's code as root.  Without the path finder a
    module that was not loaded fails at once, with "No module named ...".
    Only the interpreter's built-in and frozen importers stay: that also
    removes the launcher's code bundle finder (ocirt._codebundle) and closes
    its file, whose path would as well be looked up in the container.
    """
    bundle = sys.modules.get("ocirt._codebundle")
    if bundle is not None:
        bundle.uninstall()
    sys.meta_path[:] = [f for f in sys.meta_path if getattr(f, "__name__", "") in _SEALED_FINDERS]


_SEALED_FINDERS = ("BuiltinImporter", "FrozenImporter")


def reset_signals() -> None:
    """Python ignores SIGPIPE and SIGXFSZ, a caller maybe more; ignored signals
    survive execve, and runc's process starts with none."""
    from ocirt.linux import syscalls  # loaded: both children use it before sealing

    syscalls.reset_signals()


OUTSIDE_ROOT = (
    "current working directory is outside of container mount namespace root"
    " -- possible container breakout detected"
)


def close_fds_above(first: int, keep: tuple[int, ...]) -> None:
    """Close, not merely mark close-on-exec, every fd >= FIRST but those in KEEP.

    Before the cwd is entered (CVE-2024-21626): a host directory fd left open
    (the caller's, leaked into ``ocirt create``; the state dir's lock) would
    be reachable as /proc/self/fd/N, and a cwd naming it would put the
    process in the host's filesystem.  One close_range per gap between KEEP's fds.
    """
    from ocirt.linux import syscalls  # loaded: both children use it before sealing

    low = first
    for fd in sorted({fd for fd in keep if fd >= first}):
        if fd > low:
            syscalls.close_range(low, fd - 1)
        low = fd + 1
    syscalls.close_range(low, 0xFFFFFFFF)


def enter_cwd_as_root(cwd: str) -> bool:
    """Enter CWD before the user switch, as runc does: a cwd only root may
    enter (``/root``, mode 700) still works for a non-root user; checked at
    once, before a seccomp profile loaded early may deny getcwd.  False when
    the chdir failed: ``enter_cwd_as_user`` tries again after the switch."""
    try:
        posix.chdir(cwd)
    except OSError:
        return False
    check_cwd_inside_root()
    return True


def enter_cwd_as_user(cwd: str) -> None:
    chdir_to_cwd(cwd)
    check_cwd_inside_root()


def chdir_to_cwd(cwd: str) -> None:
    try:
        posix.chdir(cwd)
    except OSError as e:
        raise OSError(
            e.errno, f'chdir to cwd ("{cwd}") set in config.json failed: {lower_first(e.strerror)}'
        ) from e


def check_cwd_inside_root() -> None:
    """The cwd must lie under our root: the kernel's getcwd prefixes a path it
    cannot reach from the root with "(unreachable)", which glibc turns into
    ENOENT (a magic link such as /proc/self/fd/N to a host directory gets there)."""
    try:
        posix.getcwd()
    except FileNotFoundError:
        raise OcirtError(OUTSIDE_ROOT) from None
    except OSError:
        pass  # getcwd denied (a seccomp profile): the fds were closed before the chdir


def look_path(arg0: str, path_env: str) -> str:
    """Go's exec.LookPath, inside the container, with runc's error wording."""
    if "/" in arg0:
        if _is_executable(arg0):
            return arg0
        err = _exec_error(arg0)
        raise OSError(err.errno, f'exec: "{arg0}": {err.strerror}')
    for directory in path_env.split(":") if path_env else ():
        candidate = pathnames.join(directory or ".", arg0)
        if _is_executable(candidate):
            return candidate
    raise OSError(2, f'exec: "{arg0}": executable file not found in $PATH')


# stat.S_ISREG's bits: importing stat (a frozen module, ~0.1 ms) for one test
# cost every exec its import.
_S_IFMT, _S_IFREG = 0o170000, 0o100000


def _is_executable(path: str) -> bool:
    try:
        st = posix.stat(path)
    except OSError:
        return False
    return st.st_mode & _S_IFMT == _S_IFREG and bool(st.st_mode & 0o111)


def _exec_error(path: str) -> OSError:
    """Why PATH cannot run, in Go's exec.LookPath words (runc's): a failed stat
    is "stat PATH: ...", a directory or a file without x "permission denied"."""
    try:
        posix.stat(path)
    except OSError as e:
        return OSError(e.errno, f"stat {path}: {lower_first(e.strerror)}")
    return OSError(13, "permission denied")
