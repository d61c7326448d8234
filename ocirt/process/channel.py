"""Typed messages between the runtime (parent) and the container init (child).

One SOCK_SEQPACKET socketpair: each message is one datagram, a one-byte
type followed by a JSON body, so a message is never split or merged.  Both
ends are close-on-exec: when the init execs the stage-2 program, the parent
reads EOF, which is how it learns that exec succeeded (CPython's subprocess
errpipe works the same way).  A failure travels as ERROR {errno, message}.

Sequence (docs/architecture.md has the diagram):

    child  -> parent  NEED_ID_MAPS        new user ns exists; write uid/gid maps
    parent -> child   ID_MAPS_DONE
    parent -> child   PROCEED             go on (the namespaces are set up);
                                          {"in_cgroup": bool}: in all its cgroups already;
                                          "state": the createContainer hooks' state
                                          (with the init's pid), if there are any
    parent -> child   CGROUP_READY        the init is in its cgroup, limits written
    child  -> parent  RUN_RUNTIME_HOOKS   mounts done: prestart + createRuntime
    parent -> child   HOOKS_DONE
    child  -> parent  READY               set up; about to exec stage 2
    child  -> parent  SECCOMP_LISTENER    {"fd": N}: the notify listener's number, for
                                          the parent to take (pidfd_getfd) and send to
                                          linux.seccomp.listenerPath (exec's child; the
                                          init when it loads the filter itself)
    parent -> child   LISTENER_SENT       the agent has it: go on
    child  -> parent  ERROR               instead of any of the above, then exit
    child  -> parent  DEBUG               with --debug, any time: {"message"}, a line
                                          for the parent to log (recv logs it)
"""

from __future__ import annotations

import _socket  # the C module: `socket` costs ~4 ms of imports
import posix as _posix

from ocirt import _fastjson, debug
from ocirt.errors import OcirtError

# Bodies are JSON, encoded and decoded in children that cannot import: _json
# is loaded when the pair is made, before the fork (see pair).

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_MESSAGE = 64 * 1024


class Msg:
    """Message types (the first byte of a datagram).

    Plain ints rather than an IntEnum: `enum` costs ~4 ms to import on the
    create and exec paths.  ``Msg.name(kind)`` spells one for messages.
    """

    NEED_ID_MAPS = 1
    ID_MAPS_DONE = 2
    PROCEED = 3
    RUN_RUNTIME_HOOKS = 4
    HOOKS_DONE = 5
    READY = 6
    ERROR = 7
    CGROUP_READY = 8
    SECCOMP_LISTENER = 9  # child -> parent: {"fd": N}, see announce_fd
    LISTENER_SENT = 10  # parent -> child: the agent has the listener, go on
    DEBUG = 11  # child -> parent: {"message"}: a --debug line (see ocirt.debug)

    @classmethod
    def name(cls, kind: int) -> str:
        for attr, value in vars(cls).items():
            if value == kind and attr.isupper():
                return attr
        return f"message {kind}"


class ChannelClosed(Exception):
    """The other end is gone (for the parent after READY: exec succeeded)."""


class ChildError(Exception):
    """The init reported a failure."""

    def __init__(self, errno: int, message: str) -> None:
        super().__init__(message)
        self.errno = errno
        self.message = message


class Channel:
    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock

    @classmethod
    def pair(cls, child_runs_python: bool = True) -> tuple[Channel, Channel]:
        """The two ends.  CHILD_RUNS_PYTHON: load _json now (~0.3 ms), for a
        child that cannot import later (ocirt.process.common.seal_imports);
        exec's stage 2 child is C, and exec loads it itself when its child is
        Python after all."""
        if child_runs_python:
            _fastjson.preload()
        parent, child = _socket.socketpair(
            _socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC
        )
        return cls(parent), cls(child)

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def send(self, kind: int, body: dict[str, Any] | None = None) -> None:
        payload = _fastjson.dumps(body or {}).encode()
        self.sock.send(bytes([kind]) + payload)

    def announce_fd(self, kind: int, fd: int) -> None:
        """KIND with body {"fd": FD}: the number, for the parent to take with pidfd_getfd(2).

        For a seccomp notify listener, right after its filter is loaded: one
        write(2), the syscall no profile may notify (ocirt.linux.seccomp), with
        nothing but these few bytes made in between (send() would be sendto(2),
        an fd passed with SCM_RIGHTS sendmsg(2): both notifiable).
        """
        _posix.write(self.sock.fileno(), b'%c{"fd":%d}' % (kind, fd))

    def send_error(self, errno: int, message: str) -> None:
        self.send(Msg.ERROR, {"errno": errno, "message": message})

    def report(self, exc: BaseException) -> None:
        """The child's last word: EXC as ERROR {errno, sentence}; never raises."""
        if isinstance(exc, OcirtError):
            errno, message = 0, str(exc)
        elif isinstance(exc, OSError):
            errno, message = exc.errno or 0, exc.strerror or str(exc)
        else:  # a bug: the parent must still hear about it
            errno, message = 0, f"internal error: {type(exc).__name__}: {exc}"
        try:
            self.send_error(errno, message)
        except OSError:
            pass

    def recv(self) -> tuple[int, dict[str, Any]]:
        """The next message; DEBUG lines from the child are logged on the way."""
        while True:
            try:
                data = self.sock.recv(MAX_MESSAGE)
            except ConnectionResetError:
                # The other end closed with a message of ours unread (the init
                # failed before reading CGROUP_READY).  The kernel reports that
                # first, once, ahead of what it had sent: its ERROR, or EOF.
                data = self.sock.recv(MAX_MESSAGE)
            kind, body = self._decode(data)
            if kind != Msg.DEBUG:
                return kind, body
            debug.log(body.get("message", ""))

    def forward_debug(self) -> None:
        """In a child: send its --debug lines to the parent (its stdio is the container's)."""
        if debug.enabled():
            debug.enable(lambda message: self.send(Msg.DEBUG, {"message": message}))

    @staticmethod
    def _decode(data: bytes) -> tuple[int, dict[str, Any]]:
        if not data:
            raise ChannelClosed()
        kind = data[0]
        body = _fastjson.loads(data[1:]) if len(data) > 1 else {}
        if kind == Msg.ERROR:
            raise ChildError(body.get("errno", 0), body.get("message", "unknown error"))
        return kind, body

    def expect(self, kind: int) -> dict[str, Any]:
        got, body = self.recv()
        if got != kind:
            raise ChildError(0, f"protocol error: expected {Msg.name(kind)}, got {Msg.name(got)}")
        return body
