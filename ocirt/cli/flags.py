"""A small command-line parser with runc's (urfave/cli v1) rules.

Why not argparse: it costs ~8 ms to import and its rules differ from runc's
(``-flag=value`` with one dash, flags after positional arguments, bool flags
given as ``--detach=false``).  The rules here:

* ``--name value``, ``--name=value``, ``-n value``, ``-n=value``;
* a bool flag takes no value, but accepts ``--name=true|false``;
* flags may follow positional arguments (urfave reorders them), except for
  commands that say ``interspersed=False`` (``exec``: the rest is the command);
* ``--`` ends the flags.
"""

from __future__ import annotations

TYPE_CHECKING = False  # see ocirt/_fastjson.py: typing costs ms
if TYPE_CHECKING:
    from typing import Any


class UsageError(Exception):
    pass


class Flag:
    """One flag. A plain class: dataclasses costs ~8 ms of imports per call."""

    __slots__ = ("default", "help", "key", "multiple", "names", "takes_value", "value_name")

    def __init__(
        self,
        names: tuple[str, ...],  # long name first: ("bundle", "b")
        takes_value: bool = False,
        default: Any = None,
        help: str = "",
        multiple: bool = False,  # may be repeated: values collect in a list
        value_name: str = "value",
    ) -> None:
        self.names = names
        self.takes_value = takes_value
        self.default = default
        self.help = help
        self.multiple = multiple
        self.value_name = value_name
        self.key = names[0].replace("-", "_")


_TRUE = {"true", "1", "t", "yes"}
_FALSE = {"false", "0", "f", "no"}


def parse(
    argv: list[str], flags: tuple[Flag, ...], interspersed: bool = True
) -> tuple[dict[str, Any], list[str]]:
    by_name = {name: f for f in flags for name in f.names}
    values: dict[str, Any] = {f.key: ([] if f.multiple else f.default) for f in flags}
    positional: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            positional.extend(argv[i:])
            break
        if not arg.startswith("-") or arg == "-":
            positional.append(arg)
            if not interspersed:
                positional.extend(argv[i:])
                break
            continue
        name, has_eq, inline = arg.lstrip("-").partition("=")
        flag = by_name.get(name)
        if flag is None:
            raise UsageError(f"flag provided but not defined: -{name}")
        if flag.takes_value:
            if has_eq:
                value = inline
            elif i < len(argv):
                value = argv[i]
                i += 1
            else:
                raise UsageError(f"flag needs an argument: -{name}")
            if flag.multiple:
                values[flag.key].append(value)
            else:
                values[flag.key] = value
        elif has_eq:
            lowered = inline.lower()
            if lowered not in _TRUE | _FALSE:
                raise UsageError(f'invalid boolean value "{inline}" for -{name}')
            values[flag.key] = lowered in _TRUE
        else:
            values[flag.key] = True
    return values, positional


def usage_lines(flags: tuple[Flag, ...]) -> list[str]:
    lines = []
    for f in flags:
        spelled = ", ".join(("--" if len(n) > 1 else "-") + n for n in f.names)
        if f.takes_value:
            spelled += f" {f.value_name}"
        lines.append(f"   {spelled:<32} {f.help}")
    return lines
