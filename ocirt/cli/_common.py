"""Pieces shared by several commands."""

from __future__ import annotations

from ocirt.cli.flags import Flag, UsageError

HELP = Flag(("help", "h"), help="show help")


def exactly_one_id(command: str, args: list[str]) -> str:
    if len(args) != 1:
        raise UsageError(f'ocirt: "{command}" requires exactly 1 argument(s)')
    return args[0]


def min_args(command: str, args: list[str], count: int) -> None:
    if len(args) < count:
        raise UsageError(f'ocirt: "{command}" requires a minimum of {count} argument(s)')
