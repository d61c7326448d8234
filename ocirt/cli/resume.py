"""ocirt resume <container-id>: thaw a paused container (runc resume)."""

from __future__ import annotations

from ocirt.cli._common import HELP, exactly_one_id
from ocirt.cli.pause import cgroup_manager
from ocirt.container import Container
from ocirt.errors import OcirtError

USAGE = """<container-id>

Where "<container-id>" is the name for the instance of the container to be
resumed."""
FLAGS = (HELP,)


def run(ctx, opts: dict, args: list[str]) -> int:
    with Container.load(ctx.root, exactly_one_id("resume", args)) as c:
        if c.status == "stopped":
            raise OcirtError("container not paused")
        manager = cgroup_manager(c)
        if not manager.is_frozen():
            raise OcirtError("container not paused")
        manager.thaw()
    return 0
