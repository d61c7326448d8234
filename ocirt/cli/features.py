"""ocirt features: the runtime-spec features document, as JSON."""

from __future__ import annotations

import sys

from ocirt import _fastjson
from ocirt.cli._common import HELP
from ocirt.cli.flags import UsageError

USAGE = ""
FLAGS = (HELP,)


def run(ctx, opts: dict, args: list[str]) -> int:
    from ocirt.features import features

    if args:
        raise UsageError('ocirt: "features" requires exactly 0 argument(s)')
    sys.stdout.write(_fastjson.dumps(features(), indent=4) + "\n")
    return 0
