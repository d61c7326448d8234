"""ocirt pause <container-id>: freeze every process of the container (runc pause)."""

from __future__ import annotations

from ocirt.cli._common import HELP, exactly_one_id
from ocirt.container import Container

USAGE = """<container-id>

Where "<container-id>" is the name for the instance of the container to be
paused."""
FLAGS = (HELP,)


def run(ctx, opts: dict, args: list[str]) -> int:
    with Container.load(ctx.root, exactly_one_id("pause", args)) as c:
        c.pause()
    return 0
