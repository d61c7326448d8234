"""Running OCI hooks: state JSON on stdin, args[0] as argv[0], env, timeout.

A hook that never reads its stdin must not break the runtime: the state is
written from a thread-free loop that tolerates EPIPE, and SIGPIPE is ignored
for the runtime itself (Python already does so).
"""

from __future__ import annotations

import _signal  # the C module: `signal` imports enum, ~5 ms on every create
import posix  # not os (~1.2 ms of imports): ocirt.linux.pathnames has os.path's few uses
import select
import time

from ocirt import debug
from ocirt.errors import OcirtError
from ocirt.spec import Hook


class HookError(OcirtError):
    pass


def run(hook: Hook, state_json: bytes, kind: str, cwd: str = "") -> None:
    """Run HOOK to completion (in CWD, if given); raise HookError on failure or timeout.

    The hook gets the state on stdin and nothing else of ours: every fd from
    3 up is closed in its process (a seccomp memfd, the channel, the
    caller's preserved fds), as Go's exec gives runc's hooks only 0-2.
    """
    stdin_r, stdin_w = posix.pipe2(posix.O_CLOEXEC)
    argv = list(hook.args) or [hook.path]
    env = dict(e.split("=", 1) for e in hook.env if "=" in e)
    try:
        pid = posix.fork()
    except OSError as e:
        raise HookError(f"error running {kind} hook {hook.path}: {e.strerror}") from e
    if pid == 0:  # child: stdin from the pipe, stdout/stderr shared with us
        try:
            posix.dup2(stdin_r, 0)
            posix.closerange(3, 0x7FFFFFFF)  # close_range(2) underneath
            if cwd:
                posix.chdir(cwd)
            _signal.signal(_signal.SIGPIPE, _signal.SIG_DFL)
            posix.execve(hook.path, argv, env)
        except OSError as e:
            posix.write(2, f"{kind} hook {hook.path}: {e.strerror}\n".encode())
        posix._exit(127)
    posix.close(stdin_r)
    _feed(stdin_w, state_json)
    status = _wait(pid, hook.timeout)
    if status is None:
        raise HookError(f"{kind} hook {hook.path} timed out after {hook.timeout}s")
    if status != 0:
        raise HookError(f"error running {kind} hook {hook.path}: exit status {status}")
    debug.log(f"{kind} hook {hook.path} ran")


def _feed(fd: int, data: bytes) -> None:
    try:
        view = memoryview(data)
        while view:
            written = posix.write(fd, view)
            view = view[written:]
    except BrokenPipeError:
        pass  # the hook did not want its stdin
    finally:
        posix.close(fd)


def _wait(pid: int, timeout: int | None) -> int | None:
    """Exit status (128+sig when killed), or None after killing it on timeout."""
    if timeout is None:
        return _exit_code(posix.waitpid(pid, 0)[1])
    pidfd = posix.pidfd_open(pid)
    try:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([pidfd], [], [], left)[0]:
                if time.monotonic() >= deadline:
                    posix.kill(pid, _signal.SIGKILL)
                    posix.waitpid(pid, 0)
                    return None
                continue
            return _exit_code(posix.waitpid(pid, 0)[1])
    finally:
        posix.close(pidfd)


def _exit_code(status: int) -> int:
    return posix.WEXITSTATUS(status) if posix.WIFEXITED(status) else 128 + posix.WTERMSIG(status)


def encode_for_stage2(hooks: tuple[Hook, ...]) -> bytes:
    """startContainer hooks as stage 2 reads them (ocirt/_shim/stage2.c):
    ``path\\0timeout\\0argc\\0arg...\\0envc\\0env...\\0`` per hook."""
    fields: list[str] = []
    for hook in hooks:
        argv = list(hook.args) or [hook.path]
        fields += [hook.path, str(hook.timeout or 0), str(len(argv)), *argv]
        fields += [str(len(hook.env)), *hook.env]
    return b"".join(f.encode() + b"\0" for f in fields)
