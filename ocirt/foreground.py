"""What ``Container.run`` and ``Container.exec`` add to create/start and exec's start:
waiting in the foreground, passing signals on, a terminal of our own.

``ExecProcess`` is the handle ``Container.exec`` returns.  ``run_container``
is ``Container.run``: create, start, wait, delete.  Both leave the process
global state they change (signal handlers, the terminal's mode, the child
subreaper flag) to the caller's choice: only what the options ask for.
"""

from __future__ import annotations

import posix  # not os (~1.5 ms of imports that exec does without)

from ocirt import _fastjson, debug
from ocirt.errors import OcirtError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from ocirt.container import Container
    from ocirt.options import CreateOptions, ExecOptions
    from ocirt.process.exec import Forwarder

# Everything a terminal or a manager may send `run` goes on to the container
# (Linux's numbers, as `_signal` is imported where used: its state comes with
# the interpreter's main phase, which `exec` does without): SIGHUP, SIGINT,
# SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGCONT, SIGTSTP, SIGTTIN, SIGTTOU,
# SIGWINCH, SIGALRM, SIGPROF, SIGVTALRM, SIGIO.
SIGWINCH = 28
RUN_FORWARDED = (1, 2, 3, 15, 10, 12, 18, 20, 21, 22, SIGWINCH, 14, 27, 26, 29)


# -- exec ----------------------------------------------------------------------
class ExecProcess:
    """A process ``Container.exec`` started: our child, running the program.

    ``pid`` (host pid), ``pidfd`` (-1 where the kernel has none), ``master``
    (the pty master when ``tty`` was asked without a console socket, else
    None), ``returncode`` (None until ``wait`` returned).  Close it (or use
    it as a context manager) to release the pidfd and the pty.
    """

    def __init__(self, pid: int, master: int | None, forwarder: Forwarder | None) -> None:
        self.pid = pid
        self.master = master
        self.returncode: int | None = None
        self._forwarder = forwarder
        try:
            self.pidfd = posix.pidfd_open(pid)
        except (AttributeError, OSError):  # before Linux 5.3
            self.pidfd = -1

    def wait(self, *, attach_terminal: bool = False) -> int:
        """The exit status as a shell reports it: the code, or 128 + the signal.

        ATTACH_TERMINAL: while waiting, our stdin and stdout are the process's
        terminal (raw mode, window size; restored at the end): ``exec -t``.
        """
        if self.returncode is not None:
            return self.returncode
        from ocirt.process import exec as ex

        try:
            if attach_terminal and self.master is not None:
                from ocirt.linux.tty import TerminalProxy

                master, self.master = self.master, None
                with TerminalProxy(master):  # closes the master
                    self.returncode = ex.wait(self.pid)
            else:
                self.returncode = ex.wait(self.pid, self._forwarder, self.pidfd)
        finally:
            self._restore_signals()
        return self.returncode

    def send_signal(self, sig: int) -> None:
        """SIG to the process (through its pidfd: never to a recycled pid)."""
        if self.returncode is not None:
            raise ProcessLookupError(f"process {self.pid} has exited")
        if self.pidfd >= 0:
            import _signal

            _signal.pidfd_send_signal(self.pidfd, sig)
        else:
            posix.kill(self.pid, sig)

    def close(self) -> None:
        self._restore_signals()
        for fd in (self.pidfd, self.master):
            if fd is not None and fd >= 0:
                posix.close(fd)
        self.pidfd, self.master = -1, None

    def _restore_signals(self) -> None:
        if self._forwarder is not None:
            self._forwarder.restore()
            self._forwarder = None

    def __enter__(self) -> ExecProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ExecProcess(pid={self.pid}, returncode={self.returncode})"


def exec_process(container: Container, what: ExecOptions | Sequence[str]) -> ExecProcess:
    """Container.exec: the process (ExecOptions' rules) started in CONTAINER."""
    from ocirt.options import ExecOptions
    from ocirt.process import exec as ex

    opts = what if isinstance(what, ExecOptions) else ExecOptions(args=tuple(what))
    ex.check_status(container.status, opts.ignore_paused)
    process = _process(opts, container.record)
    forwarder = None
    if opts.forward_signals and not opts.detach:
        forwarder = ex.make_forwarder(3 + opts.preserve_fds, process.get("terminal") is True)
    try:
        started = ex.start(container, process, opts, forwarder)
    except BaseException:
        if forwarder is not None:
            forwarder.restore()
        raise
    return ExecProcess(started.pid, started.master, forwarder)


def _process(opts: ExecOptions, record: dict[str, Any]) -> dict[str, Any]:
    from ocirt.process import exec as ex

    if opts.process is not None:
        from ocirt import validate

        validate.validate_process(opts.process, "process")
        return opts.process
    if opts.process_file:
        # runc ignores the other process flags when -p is given; so do we.
        return ex.load_process_file(opts.process_file)
    return ex.process_from_flags(
        (record.get("config") or {}).get("process") or {},
        list(opts.args),
        cwd=opts.cwd,
        env=tuple(opts.env),
        user_spec=opts.user,
        additional_gids=tuple(opts.additional_gids),
        caps=_known_caps(tuple(opts.caps)),
        no_new_privs=opts.no_new_privs,
        apparmor=opts.apparmor,
        process_label=opts.process_label,
        tty=opts.tty,
    )


def _known_caps(caps: tuple[str, ...]) -> tuple[str, ...]:
    """runc warns about capability names this kernel lacks and goes on without them."""
    if not caps:
        return caps
    from ocirt.linux.capabilities import CAP_NUMBERS, last_cap

    top = last_cap()
    known = tuple(c for c in caps if CAP_NUMBERS.get(c, top + 1) <= top)
    unknown = [c for c in caps if c not in known]
    if unknown:
        debug.warn(f"ignoring unknown or unavailable capabilities: [{' '.join(unknown)}]")
    return known


# -- run -----------------------------------------------------------------------
def run_container(
    root: str,
    container_id: str,
    opts: CreateOptions,
    *,
    detach: bool,
    keep: bool,
    subreaper: bool,
    forward_signals: bool,
) -> int:
    """Container.run: create, start, and unless DETACH wait (and unless KEEP delete).

    The exit status, as a shell reports it (0 when detached).  Warnings
    (failed poststart/poststop hooks) go to ``ocirt.debug.warn``.
    """
    from ocirt.container import Container

    terminal = _config_terminal(opts.bundle)
    if terminal and detach and not opts.console_socket:
        raise OcirtError("cannot allocate tty if ocirt will detach without setting console socket")
    if subreaper and not detach:
        from ocirt.linux import syscalls as sc

        sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
    if terminal and not detach and not opts.console_socket:
        code = _run_on_our_terminal(root, container_id, opts, subreaper, forward_signals)
    else:
        c = Container.create(root, container_id, opts)
        _start_or_delete(c)
        c.close()  # do not hold the lock while the container runs
        if detach:
            return 0
        code = _wait_init(c.pid, subreaper, forward_signals)
    if not keep:
        with Container.load(root, container_id) as again:
            for warning in again.delete(force=True):
                debug.warn(warning)
    return code


def _start_or_delete(c: Container) -> None:
    try:
        warnings = c.start()
    except BaseException:
        c.delete(force=True)
        raise
    for warning in warnings:
        debug.warn(warning)


def _wait_init(pid: int, reap_all: bool, forward_signals: bool, skip: tuple[int, ...] = ()) -> int:
    """PID's exit status; REAP_ALL (a subreaper) also reaps the container's orphans."""
    import _signal as signal  # the C module: `signal` imports enum (~5 ms)

    def forward(signum: int, _frame: object) -> None:
        try:
            posix.kill(pid, signum)
        except ProcessLookupError:
            pass

    old = {}
    if forward_signals:
        for sig in RUN_FORWARDED:
            if sig not in skip:
                old[sig] = signal.signal(sig, forward)
    try:
        while True:
            try:
                child, status = posix.waitpid(-1 if reap_all else pid, 0)
            except ChildProcessError:
                return 0
            if child == pid:
                if posix.WIFSIGNALED(status):
                    return 128 + posix.WTERMSIG(status)
                return posix.WEXITSTATUS(status)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _config_terminal(bundle: str) -> bool:
    """process.terminal of the bundle's config; create reports a broken config."""
    try:
        separator = "/" if bundle and not bundle.endswith("/") else ""
        with open(f"{bundle}{separator}config.json", "rb") as f:
            process = _fastjson.loads(f.read()).get("process") or {}
    except (OSError, ValueError, AttributeError):
        return False
    return process.get("terminal") is True


def _run_on_our_terminal(
    root: str, container_id: str, opts: CreateOptions, reap_all: bool, forward_signals: bool
) -> int:
    """terminal: true in the foreground without a console socket (runc's `run -t`).

    We are our own console socket: a temporary listening socket gets the
    pty master from the init during create, and our tty is proxied to it
    (raw mode, SIGWINCH, restored at the end) while we wait.
    """
    from ocirt.linux.tty import TerminalProxy

    c, master = _create_receiving_console(root, container_id, opts)
    with TerminalProxy(master):
        _start_or_delete(c)
        c.close()  # do not hold the lock while the container runs
        return _wait_init(c.pid, reap_all, forward_signals, skip=(SIGWINCH,))


def _create_receiving_console(
    root: str, container_id: str, opts: CreateOptions
) -> tuple[Container, int]:
    """Container.create with a console socket of our own; (container, pty master)."""
    import socket  # only here: ~4 ms of imports that plain `run` does not need
    import tempfile

    from ocirt.container import Container
    from ocirt.linux import console

    with tempfile.TemporaryDirectory(prefix="ocirt-console-") as tmp:
        path = f"{tmp}/console.sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as listener:
            listener.bind(path)
            listener.listen(1)
            c = Container.create(root, container_id, opts.replace(console_socket=path))
            try:
                # The init connected and sent the master before create returned.
                listener.settimeout(10)
                conn, _ = listener.accept()
                with conn:
                    return c, console.recv_master(conn)
            except BaseException:
                c.delete(force=True)
                raise


__all__ = ["ExecProcess", "exec_process", "run_container"]
