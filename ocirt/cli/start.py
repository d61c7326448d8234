"""ocirt start <container-id>"""

from __future__ import annotations

from ocirt.cli._common import HELP, exactly_one_id
from ocirt.container import Container

USAGE = "<container-id>"
FLAGS = (HELP,)


def run(ctx, opts: dict, args: list[str]) -> int:
    with Container.load(ctx.root, exactly_one_id("start", args)) as c:
        c.start()
    return 0
