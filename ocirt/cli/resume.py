"""ocirt resume <container-id>: thaw a paused container (runc resume)."""

from __future__ import annotations

from ocirt.cli._common import HELP, exactly_one_id
from ocirt.container import Container

USAGE = """<container-id>

Where "<container-id>" is the name for the instance of the container to be
resumed."""
FLAGS = (HELP,)


def run(ctx, opts: dict, args: list[str]) -> int:
    with Container.load(ctx.root, exactly_one_id("resume", args)) as c:
        c.resume()
    return 0
