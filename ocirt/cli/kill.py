"""ocirt kill [--all] <container-id> [signal]"""

from __future__ import annotations

from ocirt.cli._common import HELP
from ocirt.cli.flags import Flag, UsageError
from ocirt.container import Container
from ocirt.fastcli import parse_signal  # shared with the fast front end

USAGE = "[command options] <container-id> [signal]"
FLAGS = (
    Flag(("all", "a"), help="send the specified signal to all processes inside the container"),
    HELP,
)


def run(ctx, opts: dict, args: list[str]) -> int:
    if not 1 <= len(args) <= 2:
        raise UsageError('ocirt: "kill" requires a minimum of 1 and a maximum of 2 argument(s)')
    sig = parse_signal(args[1] if len(args) == 2 else "SIGTERM")
    with Container.load(ctx.root, args[0], lock=False) as c:
        c.kill(sig, all_processes=opts["all"])
    return 0
