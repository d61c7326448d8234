"""ocirt pause <container-id>: freeze every process of the container (runc pause)."""

from __future__ import annotations

from ocirt.cli._common import HELP, exactly_one_id
from ocirt.container import Container
from ocirt.errors import ContainerNotRunning, OcirtError

USAGE = """<container-id>

Where "<container-id>" is the name for the instance of the container to be
paused."""
FLAGS = (HELP,)


def cgroup_manager(c: Container):  # -> ocirt.cgroups.Manager
    """The container's cgroup manager, or runc's error when it has none."""
    from ocirt.cgroups import manager_from_record

    if not c.record.get("cgroup"):
        raise OcirtError("cannot toggle freezer: cgroups not configured for container")
    return manager_from_record(c.record)


def run(ctx, opts: dict, args: list[str]) -> int:
    with Container.load(ctx.root, exactly_one_id("pause", args)) as c:
        # runc pauses created and running containers; a paused one is "not running".
        if c.status == "stopped":
            raise ContainerNotRunning()
        manager = cgroup_manager(c)
        if manager.is_frozen():
            raise ContainerNotRunning()
        manager.freeze()
    return 0
