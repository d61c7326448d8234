"""ocirt run [options] <container-id>: create, start, wait, delete."""

from __future__ import annotations

import _signal as signal  # the C module: `signal` imports enum (~5 ms)
import os

from ocirt import _fastjson
from ocirt.cli import output
from ocirt.cli._common import exactly_one_id
from ocirt.cli.create import FLAGS as CREATE_FLAGS
from ocirt.cli.create import create_options
from ocirt.cli.flags import Flag
from ocirt.errors import OcirtError

USAGE = "[command options] <container-id>"
FLAGS = (
    *CREATE_FLAGS,
    Flag(("detach", "d"), help="detach from the container's process"),
    Flag(("keep",), help="do not delete the container after it exits"),
    Flag(
        ("no-subreaper",),
        help="disable the use of the subreaper used to reap reparented processes",
    ),
)

# Everything a terminal or a manager may send us goes on to the container.
FORWARDED = (
    signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGUSR1,
    signal.SIGUSR2, signal.SIGCONT, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU,
    signal.SIGWINCH, signal.SIGALRM, signal.SIGPROF, signal.SIGVTALRM, signal.SIGIO,
)  # fmt: skip


def run(ctx, opts: dict, args: list[str]) -> int:
    from ocirt.container import Container
    from ocirt.linux import syscalls as sc

    container_id = exactly_one_id("run", args)
    create_opts = create_options(ctx, opts)
    terminal = _config_terminal(create_opts.bundle)
    if terminal and opts["detach"] and not create_opts.console_socket:
        raise OcirtError("cannot allocate tty if ocirt will detach without setting console socket")
    if not opts["detach"] and not opts["no_subreaper"]:
        sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
    if terminal and not opts["detach"] and not create_opts.console_socket:
        return _run_on_our_terminal(ctx, opts, container_id, create_opts)
    c = Container.create(ctx.root, container_id, create_opts)
    try:
        warnings = c.start()
    except BaseException:
        c.delete(force=True)
        raise
    for warning in warnings:
        output.warn(ctx, warning)
    if opts["detach"]:
        c.close()
        return 0
    c.close()  # do not hold the lock while the container runs
    code = _wait_forwarding_signals(c.pid)
    if not opts["keep"]:
        with Container.load(ctx.root, container_id) as again:
            for warning in again.delete(force=True):
                output.warn(ctx, warning)
    return code


def _wait_forwarding_signals(pid: int, skip: tuple[int, ...] = ()) -> int:
    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for sig in FORWARDED:
        if sig not in skip:
            signal.signal(sig, forward)
    while True:
        # As subreaper we also reap orphans of the container; its init decides.
        try:
            child, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 0
        if child == pid:
            if os.WIFSIGNALED(status):
                return 128 + os.WTERMSIG(status)
            return os.WEXITSTATUS(status)


def _config_terminal(bundle: str) -> bool:
    """process.terminal of the bundle's config; create reports a broken config."""
    try:
        with open(os.path.join(bundle, "config.json"), "rb") as f:
            process = _fastjson.loads(f.read()).get("process") or {}
    except (OSError, ValueError, AttributeError):
        return False
    return process.get("terminal") is True


def _run_on_our_terminal(ctx, opts: dict, container_id: str, create_opts) -> int:
    """terminal: true in the foreground without --console-socket (runc's `run -t`).

    We are our own console socket: a temporary listening socket gets the
    pty master from the init during create, and our tty is proxied to it
    (raw mode, SIGWINCH, restored at the end) while we wait.
    """
    from ocirt.container import Container
    from ocirt.linux.tty import TerminalProxy

    c, master = _create_receiving_console(ctx.root, container_id, create_opts)
    with TerminalProxy(master):
        try:
            warnings = c.start()
        except BaseException:
            c.delete(force=True)
            raise
        for warning in warnings:
            output.warn(ctx, warning)
        c.close()  # do not hold the lock while the container runs
        code = _wait_forwarding_signals(c.pid, skip=(signal.SIGWINCH,))
    if not opts["keep"]:
        with Container.load(ctx.root, container_id) as again:
            for warning in again.delete(force=True):
                output.warn(ctx, warning)
    return code


def _create_receiving_console(root: str, container_id: str, create_opts):
    """Container.create with a console socket of our own; (container, pty master)."""
    import socket  # only here: ~4 ms of imports that plain `run` does not need
    import tempfile

    from ocirt.container import Container
    from ocirt.linux import console

    with tempfile.TemporaryDirectory(prefix="ocirt-console-") as tmp:
        path = os.path.join(tmp, "console.sock")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as listener:
            listener.bind(path)
            listener.listen(1)
            with_console = create_opts.replace(console_socket=path)
            c = Container.create(root, container_id, with_console)
            try:
                # The init connected and sent the master before create returned.
                listener.settimeout(10)
                conn, _ = listener.accept()
                with conn:
                    return c, console.recv_master(conn)
            except BaseException:
                c.delete(force=True)
                raise
