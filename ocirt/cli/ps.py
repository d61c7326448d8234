"""ocirt ps [-f table|json] <container-id> [ps options] (runc ps).

The pids are ``Container.processes()``: those of the container's cgroup.  ``json`` prints them as a
bare array; ``table`` runs ps(1) with the given options (default ``-ef``) and
keeps its header and the lines whose PID column is one of them.
"""

from __future__ import annotations

import json
import subprocess
import sys

from ocirt.cli._common import HELP, min_args
from ocirt.cli.flags import Flag
from ocirt.container import Container
from ocirt.errors import OcirtError

USAGE = """[command options] <container-id> [ps options]"""
FLAGS = (
    Flag(("format", "f"), True, "table", 'select one of: table or json (default: "table")'),
    HELP,
)
# Everything after the container id belongs to ps(1): "-o pid,comm", "aux".
INTERSPERSED = False


def run(ctx, opts: dict, args: list[str]) -> int:
    min_args("ps", args, 1)
    with Container.load(ctx.root, args[0], lock=False) as c:
        pids = c.processes()
    if opts["format"] == "json":
        # Go's encoding of a nil slice is null: runc prints null for no pids.
        sys.stdout.write(json.dumps(pids or None, separators=(",", ":")) + "\n")
        return 0
    if opts["format"] != "table":
        raise OcirtError("invalid format option")
    sys.stdout.write(filter_ps(args[1:] or ["-ef"], set(pids)))
    return 0


def filter_ps(ps_args: list[str], pids: set[int]) -> str:
    result = subprocess.run(["ps", *ps_args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise OcirtError(f"exit status {result.returncode}: {result.stdout}{result.stderr}")
    lines = result.stdout.split("\n")
    titles = lines[0].split()
    if "PID" not in titles:
        raise OcirtError("couldn't find PID field in ps output")
    index = titles.index("PID")
    out = [lines[0]]
    for line in lines[1:]:
        if not line:
            continue
        field = line.split()[index]
        try:
            pid = int(field)
        except ValueError:
            raise OcirtError(
                f'unable to parse pid: strconv.Atoi: parsing "{field}": invalid syntax'
            ) from None
        if pid in pids:
            out.append(line)
    return "\n".join(out) + "\n"
