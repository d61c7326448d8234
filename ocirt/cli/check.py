"""ocirt check [--json]: what this host can honour, and what follows for configs."""

from __future__ import annotations

import sys

from ocirt import _fastjson
from ocirt.cli._common import HELP
from ocirt.cli.flags import Flag, UsageError

USAGE = "[command options]"
FLAGS = (
    Flag(("json",), help="print the findings as a JSON array (name, ok, detail, consequence)"),
    HELP,
)


def run(ctx, opts: dict, args: list[str]) -> int:
    from ocirt.hostreport import report

    if args:
        raise UsageError('ocirt: "check" requires exactly 0 argument(s)')
    findings = report()
    if opts["json"]:
        doc = [finding.as_dict() for finding in findings]
        sys.stdout.write(_fastjson.dumps(doc, indent=4) + "\n")
        return 0
    for finding in findings:
        line = f"{'ok' if finding.ok else 'missing':<8} {finding.name}: {finding.detail}"
        if not finding.ok and finding.consequence:
            line += f" -> {finding.consequence}"
        sys.stdout.write(line + "\n")
    return 0
