"""ocirt list [-f table|json] [-q]"""

from __future__ import annotations

import sys

from ocirt import _fastjson
from ocirt.cli._common import HELP
from ocirt.cli.flags import Flag, UsageError
from ocirt.container import list_containers

USAGE = "[command options]"
FLAGS = (
    Flag(("format", "f"), True, "table", 'select one of: table or json (default: "table")'),
    Flag(("quiet", "q"), help="display only container IDs"),
    HELP,
)
COLUMNS = ("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")


def table(rows: list[list[str]]) -> str:
    """Go's tabwriter(minwidth=12, tabwidth=1, padding=3), as runc uses it."""
    widths = [max(12, max(len(r[i]) for r in rows) + 3) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        lines.append("".join(cells) + row[-1])
    return "\n".join(lines) + "\n"


def run(ctx, opts: dict, args: list[str]) -> int:
    if args:
        raise UsageError('ocirt: "list" requires exactly 0 argument(s)')
    states = list_containers(ctx.root)
    if opts["quiet"]:
        sys.stdout.write("".join(s["id"] + "\n" for s in states))
    elif opts["format"] == "json":
        # runc prints Go's nil slice, `null`, when there is no container.
        sys.stdout.write(_fastjson.dumps(states or None, compact=True) + "\n")
    elif opts["format"] == "table":
        rows = [list(COLUMNS)] + [
            [s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], s["owner"]]
            for s in states
        ]
        sys.stdout.write(table(rows))
    else:
        raise UsageError(f"invalid format option: {opts['format']}")
    return 0
