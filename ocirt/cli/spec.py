"""ocirt spec [-b bundle] [--rootless]"""

from __future__ import annotations

import json
import os

from ocirt.cli._common import HELP
from ocirt.cli.flags import Flag
from ocirt.errors import OcirtError
from ocirt.specgen import default_spec

USAGE = "[command options]"
FLAGS = (
    Flag(("bundle", "b"), True, "", "path to the root of the bundle directory"),
    Flag(("rootless",), help="generate a configuration for a rootless container"),
    HELP,
)


def run(ctx, opts: dict, args: list[str]) -> int:
    path = os.path.join(opts["bundle"] or ".", "config.json")
    if os.path.lexists(path):
        raise OcirtError("File config.json exists. Remove it first")
    data = json.dumps(default_spec(rootless=opts["rootless"]), indent="\t") + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    with os.fdopen(fd, "w") as f:
        f.write(data)
    return 0
