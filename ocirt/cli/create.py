"""ocirt create [options] <container-id>"""

from __future__ import annotations

from ocirt.cli._common import HELP, exactly_one_id
from ocirt.cli.flags import Flag, UsageError

USAGE = "[command options] <container-id>"
FLAGS = (
    Flag(("bundle", "b"), True, "", "path to the root of the bundle directory"),
    Flag(
        ("console-socket",), True, "", "path to an AF_UNIX socket which will receive the pty master"
    ),
    Flag(("pid-file",), True, "", "specify the file to write the process id to"),
    Flag(("no-pivot",), help="do not use pivot root to jail process inside rootfs"),
    Flag(("no-new-keyring",), help="do not create a new session keyring for the container"),
    Flag(("preserve-fds",), True, "0", "pass N additional file descriptors to the container"),
    Flag(("pidfd-socket",), True, "", "path to an AF_UNIX socket which will receive the pidfd"),
    HELP,
)


def create_options(ctx, opts: dict):
    from ocirt.options import CreateOptions

    try:
        preserve = int(opts["preserve_fds"])
    except ValueError:
        raise UsageError(f'invalid value "{opts["preserve_fds"]}" for flag -preserve-fds') from None
    return CreateOptions.from_flags(
        {**opts, "preserve_fds": preserve},
        rootless=ctx.rootless == "true",
        systemd_cgroup=ctx.systemd_cgroup,
    )


def run(ctx, opts: dict, args: list[str]) -> int:
    from ocirt.container import Container

    container_id = exactly_one_id("create", args)
    Container.create(ctx.root, container_id, create_options(ctx, opts)).close()
    return 0
