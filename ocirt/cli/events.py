"""ocirt events [--stats] [--interval D] <container-id> (runc events).

One JSON object per line: ``{"type":"stats","id":ID,"data":{...}}`` every
interval (or once with ``--stats``), and ``{"type":"oom","id":ID}`` when the
kernel's OOM killer strikes in the container's cgroup.  Unlike runc, which
goes on forever, the stream ends when the container stops (its cgroup has
nothing left to report).
"""

from __future__ import annotations

import json
import os
import re
import select
import sys
import time
from typing import Any

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


def emit(kind: str, container_id: str, data: dict[str, Any] | None = None) -> None:
    event: dict[str, Any] = {"type": kind, "id": container_id}
    if data is not None:
        event["data"] = data
    sys.stdout.write(json.dumps(event, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def run(ctx, opts: dict, args: list[str]) -> int:
    container_id = exactly_one_id("events", args)
    interval = parse_duration(opts["interval"])
    if interval <= 0:
        raise OcirtError("duration interval must be greater than 0")
    with Container.load(ctx.root, container_id, lock=False) as c:
        record = c.record
        if c.status == "stopped":
            raise OcirtError(f"container with id {container_id} is not running")
    if not record.get("cgroup"):
        raise OcirtError("cannot get container stats: cgroups not configured for container")
    from ocirt.cgroups import manager_from_record

    manager = manager_from_record(record)
    if opts["stats"]:
        emit("stats", container_id, manager.stats())
        return 0
    return stream(ctx, record, manager, interval)


def stream(ctx, record: dict[str, Any], manager, interval: float) -> int:
    """Stats every INTERVAL and OOM events as they come, until the container stops."""
    from ocirt.cli import output
    from ocirt.state import init_is_alive

    container_id = record["id"]
    oom_fd = manager.oom_event_fd()
    is_eventfd = manager.oom_event_is_eventfd()
    poller = select.poll()
    # v1: an eventfd, readable per OOM.  v2: memory.events, which polls readable
    # always (every kernfs file does): only POLLPRI says that it changed.
    poller.register(oom_fd, select.POLLIN if is_eventfd else select.POLLPRI)
    last_ooms = manager.oom_count()
    next_stats = time.monotonic() + interval
    try:
        while True:
            timeout = max(0.0, next_stats - time.monotonic())
            if poller.poll(min(timeout, 1.0) * 1000):
                last_ooms = _on_oom_wakeup(manager, oom_fd, is_eventfd, last_ooms, container_id)
            if time.monotonic() >= next_stats:
                next_stats += interval
                try:
                    emit("stats", container_id, manager.stats())
                except (OcirtError, OSError) as e:
                    output.error(ctx, output.describe(e))  # runc logs and goes on
            if not init_is_alive(record):
                # A last look: the OOM that killed the init may not have been read yet.
                if manager.exists() and manager.oom_count() > last_ooms:
                    emit("oom", container_id)
                return 0
    finally:
        os.close(oom_fd)


def _on_oom_wakeup(manager, fd: int, is_eventfd: bool, last: int, container_id: str) -> int:
    if is_eventfd:
        os.eventfd_read(fd)  # v1: one notification per read, as runc reports
        if manager.exists():
            emit("oom", container_id)
        return manager.oom_count() if manager.exists() else last
    os.lseek(fd, 0, os.SEEK_SET)
    os.read(fd, 4096)  # v2: re-arms the POLLPRI notification
    count = manager.oom_count()
    for _ in range(count - last):
        emit("oom", container_id)
    return max(count, last)
