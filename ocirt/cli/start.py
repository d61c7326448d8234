"""ocirt start <container-id>"""

from __future__ import annotations

from ocirt.cli import output
from ocirt.cli._common import HELP, exactly_one_id
from ocirt.container import Container

USAGE = "<container-id>"
FLAGS = (HELP,)


def run(ctx, opts: dict, args: list[str]) -> int:
    with Container.load(ctx.root, exactly_one_id("start", args)) as c:
        warnings = c.start()
    for warning in warnings:
        output.warn(ctx, warning)
    return 0
