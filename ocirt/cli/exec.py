"""ocirt exec [options] <container-id> <command> [args...] | -p process.json <container-id>

Flags stop at the first argument after the id: the rest is the command.
Every failure is "exec failed: <why>" with exit status 255, as runc's (the
managers tell a failed exec from the process's own exit code that way).
"""

from __future__ import annotations

import os

from ocirt.cli._common import HELP, min_args
from ocirt.cli.flags import Flag, UsageError

USAGE = "[command options] <container-id> <command> [args...]  || -p process.json <container-id>"
INTERSPERSED = False
EXEC_FAILED = 255
FLAGS = (
    Flag(("console-socket",), True, "", "AF_UNIX socket path which will receive the pty master"),
    Flag(("cwd",), True, "", "current working directory in the container"),
    Flag(("env", "e"), True, help="set environment variables", multiple=True),
    Flag(("tty", "t"), help="allocate a pseudo-TTY"),
    Flag(("user", "u"), True, "", "UID (format: <uid>[:<gid>])"),
    Flag(("additional-gids", "g"), True, help="additional gids", multiple=True),
    Flag(("process", "p"), True, "", "path to the process.json"),
    Flag(("detach", "d"), help="detach from the container's process"),
    Flag(("pid-file",), True, "", "specify the file to write the process id to"),
    Flag(("process-label",), True, "", "set the asm process label for the process (selinux)"),
    Flag(("apparmor",), True, "", "set the apparmor profile for the process"),
    Flag(("no-new-privs",), help="set the no new privileges value for the process"),
    Flag(("cap", "c"), True, help="add a capability to the bounding set", multiple=True),
    Flag(("preserve-fds",), True, "0", "pass N additional file descriptors to the process"),
    Flag(("cgroup",), True, help="existing sub-cgroup to run in: [<ctrl>:]<path>", multiple=True),
    Flag(("ignore-paused",), help="allow exec in a paused container"),
    HELP,
)  # fmt: skip


def run(ctx, opts: dict, args: list[str]) -> int:
    min_args("exec", args, 1)
    preserve = _int_flag(opts["preserve_fds"], "preserve-fds")
    gids = tuple(_int_flag(g, "additional-gids") for g in opts["additional_gids"])
    try:
        return _exec(ctx, opts, args, preserve, gids)
    except Exception as e:  # OcirtError, OSError: runc's "exec failed: ...", 255
        from ocirt.cli import output

        output.error(ctx, f"exec failed: {output.describe(e)}")
        return EXEC_FAILED


def _int_flag(text: str, name: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise UsageError(f'invalid value "{text}" for flag -{name}') from None


def _exec(ctx, opts: dict, args: list[str], preserve: int, gids: tuple[int, ...]) -> int:
    from ocirt.container import Container
    from ocirt.options import ExecOptions

    container_id, command = args[0], args[1:]
    exec_opts = ExecOptions(
        args=tuple(command),
        process_file=opts["process"],
        cwd=opts["cwd"],
        env=tuple(opts["env"]),
        user=opts["user"],
        additional_gids=gids,
        caps=tuple(opts["cap"]),
        no_new_privs=opts["no_new_privs"],
        apparmor=opts["apparmor"],
        process_label=opts["process_label"],
        tty=opts["tty"],
        console_socket=opts["console_socket"],
        detach=opts["detach"],
        pid_file=os.path.abspath(opts["pid_file"]) if opts["pid_file"] else "",
        preserve_fds=preserve,
        cgroup=tuple(opts["cgroup"]),
        ignore_paused=opts["ignore_paused"],
        forward_signals=True,
    )
    with Container.load(ctx.root, container_id) as c:
        process = c.exec(exec_opts)
    # The lock is released: a long foreground exec must not block `ocirt state`.
    with process:
        return 0 if exec_opts.detach else process.wait(attach_terminal=True)
