"""ocirt kill [--all] <container-id> [signal]"""

from __future__ import annotations

from ocirt.cli._common import HELP
from ocirt.cli.flags import Flag, UsageError
from ocirt.container import Container
from ocirt.errors import OcirtError

# Linux signal numbers (the `signal` module would import enum: ~4 ms).
SIGNALS = {
    "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7,
    "FPE": 8, "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14,
    "TERM": 15, "STKFLT": 16, "CHLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21,
    "TTOU": 22, "URG": 23, "XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27, "WINCH": 28,
    "IO": 29, "POLL": 29, "PWR": 30, "SYS": 31,
}  # fmt: skip

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
    name = text.upper().removeprefix("SIG")
    if name in SIGNALS:
        return SIGNALS[name]
    if name.startswith("RTMIN") or name.startswith("RTMAX"):
        offset = name[5:]
        base = 34 if name.startswith("RTMIN") else 64
        if offset == "" or (offset[0] in "+-" and offset[1:].isdigit()):
            number = base + int(offset or "0")
            if 34 <= number <= 64:
                return number
    raise OcirtError(f'unknown signal "{text}"')


def run(ctx, opts: dict, args: list[str]) -> int:
    if not 1 <= len(args) <= 2:
        raise UsageError('ocirt: "kill" requires a minimum of 1 and a maximum of 2 argument(s)')
    sig = parse_signal(args[1] if len(args) == 2 else "SIGTERM")
    with Container.load(ctx.root, args[0], lock=False) as c:
        c.kill(sig, all_processes=opts["all"])
    return 0
