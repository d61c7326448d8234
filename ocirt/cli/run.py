"""ocirt run [options] <container-id>: create, start, wait, delete."""

from __future__ import annotations

import os
import signal

from ocirt.cli import output
from ocirt.cli._common import exactly_one_id
from ocirt.cli.create import FLAGS as CREATE_FLAGS
from ocirt.cli.create import create_options
from ocirt.cli.flags import Flag

USAGE = "[command options] <container-id>"
FLAGS = (
    *CREATE_FLAGS,
    Flag(("detach", "d"), help="detach from the container's process"),
    Flag(("keep",), help="do not delete the container after it exits"),
    Flag(("no-subreaper",), help="disable the use of the subreaper used to reap reparented processes"),
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
    if not opts["detach"] and not opts["no_subreaper"]:
        sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
    c = Container.create(ctx.root, container_id, create_opts)
    try:
        c.start()
    except BaseException:
        c.delete(force=True)
        raise
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


def _wait_forwarding_signals(pid: int) -> int:
    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for sig in FORWARDED:
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
