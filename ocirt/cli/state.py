"""ocirt state <container-id>"""

from __future__ import annotations

import sys

from ocirt import _fastjson
from ocirt.cli._common import HELP, exactly_one_id
from ocirt.container import Container

USAGE = "<container-id>"
FLAGS = (HELP,)


def run(ctx, opts: dict, args: list[str]) -> int:
    with Container.load(ctx.root, exactly_one_id("state", args), lock=False) as c:
        state = c.state()
    sys.stdout.write(_fastjson.dumps(state, indent=2) + "\n")
    return 0
