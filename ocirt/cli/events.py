"""ocirt events [--stats] [--interval D] <container-id> (runc events).

One JSON object per line: ``{"type":"stats","id":ID,"data":{...}}`` every
interval (or once with ``--stats``), and ``{"type":"oom","id":ID}`` when the
kernel's OOM killer strikes in the container's cgroup.  Unlike runc, which
goes on forever, the stream ends when the container stops (its cgroup has
nothing left to report).
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from ocirt.cli import output
from ocirt.cli._common import HELP, exactly_one_id
from ocirt.cli.flags import Flag, UsageError
from ocirt.container import Container
from ocirt.errors import OcirtError

USAGE = """[command options] <container-id>

Where "<container-id>" is the name for the instance of the container.

DESCRIPTION:
   The events command displays information about the container. By default the
information is displayed once every 5 seconds."""
FLAGS = (
    Flag(("interval",), True, "5s", "set the stats collection interval (default: 5s)"),
    Flag(("stats",), help="display the container's stats then exit"),
    HELP,
)

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Go's time.ParseDuration ("5s", "1m30s", "250ms"), in seconds."""
    body = text.lstrip("+-")
    if body == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(body):
        match = _PART.match(body, pos)
        if not match:
            raise UsageError(f'invalid value "{text}" for flag -interval: parse error')
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not body:
        raise UsageError(f'invalid value "{text}" for flag -interval: parse error')
    return -total if text.startswith("-") else total


def emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def run(ctx, opts: dict, args: list[str]) -> int:
    container_id = exactly_one_id("events", args)
    interval = parse_duration(opts["interval"])
    if interval <= 0:
        raise OcirtError("duration interval must be greater than 0")
    with Container.load(ctx.root, container_id, lock=False) as c:
        if opts["stats"]:
            emit({"type": "stats", "id": container_id, "data": c.stats()})
            return 0
        events = c.events(interval, on_error=lambda e: output.error(ctx, output.describe(e)))
    for event in events:  # until the container stops
        emit(event)
    return 0
