"""``Container.events()``: OOM kills and stats of a running container, as they come.

An event is the object ``runc events`` prints: ``{"type": "stats", "id": ID,
"data": {...}}`` every interval and ``{"type": "oom", "id": ID}`` each time
the kernel's OOM killer strikes in the container's cgroup.  Unlike runc,
which goes on forever, the stream ends when the container's init has gone
(its cgroup has nothing left to report).

OOM kills are watched without polling the files: on cgroup v1 through an
eventfd registered on ``memory.oom_control`` (readable once per OOM), on v2
through ``memory.events``, which polls readable always (every kernfs file
does) and POLLPRI only when it changed.
"""

from __future__ import annotations

import os
import select
import time

from ocirt.errors import OcirtError
from ocirt.state import init_is_alive

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

    from ocirt.cgroups import Manager

Event = dict  # {"type": "stats"|"oom", "id": str, "data"?: dict}


def event(kind: str, container_id: str, data: dict[str, Any] | None = None) -> Event:
    made: Event = {"type": kind, "id": container_id}
    if data is not None:
        made["data"] = data
    return made


def stream(
    record: dict[str, Any],
    manager: Manager,
    interval: float,
    on_error: Callable[[Exception], None],
) -> Iterator[Event]:
    """Stats every INTERVAL seconds and OOM events as they come, until the init is gone.

    The OOM watch starts now, not at the first ``next()``: an OOM kill right
    after this call is reported.  A failure to read the stats goes to
    ON_ERROR and the stream goes on (runc logs it and goes on too).
    """
    oom_fd = manager.oom_event_fd()
    try:
        last_ooms = manager.oom_count()
    except BaseException:
        os.close(oom_fd)
        raise
    return _events(record, manager, interval, on_error, oom_fd, last_ooms)


def _events(
    record: dict[str, Any],
    manager: Manager,
    interval: float,
    on_error: Callable[[Exception], None],
    oom_fd: int,
    last_ooms: int,
) -> Iterator[Event]:
    container_id = record["id"]
    is_eventfd = manager.oom_event_is_eventfd()
    poller = select.poll()
    poller.register(oom_fd, select.POLLIN if is_eventfd else select.POLLPRI)
    next_stats = time.monotonic() + interval
    try:
        while True:
            timeout = max(0.0, next_stats - time.monotonic())
            if poller.poll(min(timeout, 1.0) * 1000):
                count, last_ooms = _ooms_since_wakeup(manager, oom_fd, is_eventfd, last_ooms)
                for _ in range(count):
                    yield event("oom", container_id)
            if time.monotonic() >= next_stats:
                next_stats += interval
                try:
                    stats = manager.stats()
                except (OcirtError, OSError) as e:
                    on_error(e)
                else:
                    yield event("stats", container_id, stats)
            if not init_is_alive(record):
                # A last look: the OOM that killed the init may not have been read yet.
                if manager.exists() and manager.oom_count() > last_ooms:
                    yield event("oom", container_id)
                return
    finally:
        os.close(oom_fd)


def _ooms_since_wakeup(manager: Manager, fd: int, is_eventfd: bool, last: int) -> tuple[int, int]:
    """(OOM events the wakeup on FD stands for, the OOM count now), LAST the count before."""
    if is_eventfd:
        os.eventfd_read(fd)  # v1: one notification per read, as runc reports
        if not manager.exists():
            return 0, last
        return 1, manager.oom_count()
    os.lseek(fd, 0, os.SEEK_SET)
    os.read(fd, 4096)  # v2: re-arms the POLLPRI notification
    count = manager.oom_count()
    return max(0, count - last), max(count, last)
