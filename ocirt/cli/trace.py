"""ocirt trace [-b DIR] [-o FILE] <container-id>: trace a bundle, write a seccomp profile.

Runs the bundle's process to completion under ptrace (see ``ocirt.trace``
for the design), prints which syscalls it made (count, first caller binary,
the first call) and writes a runtime-spec ``linux.seccomp`` object that lets
exactly those through (default SCMP_ACT_ERRNO).  python-ptrace is imported
only here.
"""

from __future__ import annotations

import json
import os
import sys

from ocirt.cli._common import HELP, exactly_one_id
from ocirt.cli.flags import Flag

USAGE = "[command options] <container-id>"
FLAGS = (
    Flag(("bundle", "b"), True, "", "path to the root of the bundle directory"),
    Flag(("output", "o"), True, "seccomp.json", "file to write the seccomp profile to"),
    HELP,
)


def run(ctx, opts: dict, args: list[str]) -> int:
    from ocirt.options import CreateOptions
    from ocirt.trace import summary_lines, trace_bundle

    container_id = exactly_one_id("trace", args)
    bundle = opts["bundle"] or os.getcwd()
    create_opts = CreateOptions(bundle=bundle, systemd_cgroup=ctx.systemd_cgroup)
    result, profile = trace_bundle(ctx.root, container_id, create_opts)
    with open(opts["output"], "w") as f:
        json.dump(profile, f, indent="\t")
        f.write("\n")
    sys.stdout.write("\n".join(summary_lines(result)) + "\n")
    sys.stdout.write(f"profile written to {opts['output']}\n")
    return 0
