"""ocirt kill [--all] <container-id> [signal]"""

from __future__ import annotations

import signal

from ocirt.cli._common import HELP
from ocirt.cli.flags import Flag, UsageError
from ocirt.container import Container
from ocirt.errors import OcirtError

USAGE = "[command options] <container-id> [signal]"
FLAGS = (
    Flag(("all", "a"), help="send the specified signal to all processes inside the container"),
    HELP,
)


def parse_signal(text: str) -> int:
    """9, KILL, SIGKILL, kill: what managers send (contract.md)."""
    if text.isdigit():
        number = int(text)
        if 0 < number < 65:
            return number
        raise OcirtError(f'unknown signal "{text}"')
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise OcirtError(f'unknown signal "{text}"') from None


def run(ctx, opts: dict, args: list[str]) -> int:
    if not 1 <= len(args) <= 2:
        raise UsageError('ocirt: "kill" requires a minimum of 1 and a maximum of 2 argument(s)')
    sig = parse_signal(args[1] if len(args) == 2 else "SIGTERM")
    with Container.load(ctx.root, args[0], lock=False) as c:
        c.kill(sig, all_processes=opts["all"])
    return 0
