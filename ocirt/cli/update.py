"""ocirt update [options] <container-id>: change resource limits (runc update).

Resources come from ``-r FILE`` (``-`` for stdin: runtime-spec LinuxResources
JSON, as docker and podman write it) or from the flags; with ``-r`` the flags
are ignored.  A zero (or absent) value leaves that setting as it is.
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any

from ocirt.cli._common import HELP, exactly_one_id
from ocirt.cli.flags import Flag, UsageError
from ocirt.container import Container
from ocirt.errors import OcirtError
from ocirt.options import Resources

USAGE = """[command options] <container-id>

The accepted format is as follow (unchanged values can be omitted):

{
  "memory": {
    "limit": 0,
    "reservation": 0,
    "swap": 0
  },
  "cpu": {
    "shares": 0,
    "quota": 0,
    "period": 0,
    "realtimeRuntime": 0,
    "realtimePeriod": 0,
    "cpus": "",
    "mems": ""
  },
  "blockIO": {
    "weight": 0
  }
}

Note: if data is to be read from a file or the standard input, all
other options are ignored."""


def _flag(name: str, text: str, *aliases: str) -> Flag:
    return Flag((name, *aliases), True, "", text)


FLAGS = (
    _flag(
        "resources",
        "path to the file containing the resources to update "
        "or '-' to read from the standard input",
        "r",
    ),
    _flag("blkio-weight", "Specifies per cgroup weight, range is from 10 to 1000 (default: 0)"),
    _flag(
        "cpu-period",
        "CPU CFS period to be used for hardcapping (in usecs). 0 to use system default",
    ),
    _flag("cpu-quota", "CPU CFS hardcap limit (in usecs). Allowed cpu time in a given period"),
    _flag("cpu-share", "CPU shares (relative weight vs. other containers)", "cpu-shares"),
    _flag(
        "cpu-rt-period",
        "CPU realtime period to be used for hardcapping (in usecs). 0 to use system default",
    ),
    _flag(
        "cpu-rt-runtime",
        "CPU realtime hardcap limit (in usecs). Allowed cpu time in a given period",
    ),
    _flag("cpuset-cpus", "CPU(s) to use"),
    _flag("cpuset-mems", "Memory node(s) to use"),
    _flag("kernel-memory", "(obsoleted; do not use)"),
    _flag("kernel-memory-tcp", "(obsoleted; do not use)"),
    _flag("memory", "Memory limit (in bytes)"),
    _flag("memory-reservation", "Memory reservation or soft_limit (in bytes)"),
    _flag("memory-swap", "Total memory usage (memory + swap); set '-1' to enable unlimited swap"),
    _flag("pids-limit", "Maximum number of pids allowed in the container (default: 0)"),
    _flag("l3-cache-schema", "The string of Intel RDT/CAT L3 cache schema"),
    _flag("mem-bw-schema", "The string of Intel RDT/MBA memory bandwidth schema"),
    HELP,
)

# docker/go-units RAMInBytes: "64m", "1.5GiB", "512" (binary multiples).
_RAM_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b)?$", re.IGNORECASE)
_RAM_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def ram_in_bytes(text: str) -> int:
    match = _RAM_RE.match(text.strip())
    if not match:
        raise ValueError(f"invalid size: '{text}'")
    number, unit, _ = match.groups()
    return int(float(number) * _RAM_UNITS[unit.lower()])


def _go_int(name: str, text: str) -> int:
    """urfave's IntFlag: a bad value is a usage error."""
    try:
        return int(text, 0) if text else 0
    except ValueError:
        raise UsageError(f'invalid value "{text}" for flag -{name}: parse error') from None


def _parse_number(name: str, text: str, signed: bool) -> int:
    func = "ParseInt" if signed else "ParseUint"
    if re.fullmatch(r"-?\d+" if signed else r"\d+", text):
        return int(text)
    raise OcirtError(f'invalid value for {name}: strconv.{func}: parsing "{text}": invalid syntax')


def resources_from_flags(opts: dict[str, Any]) -> Resources:
    """The runtime-spec resources the flags describe (zeros: unchanged)."""
    cpu: dict[str, Any] = {}
    memory: dict[str, Any] = {}
    r: dict[str, Any] = {"memory": memory, "cpu": cpu}
    weight = _go_int("blkio-weight", opts["blkio_weight"])
    if weight:
        r["blockIO"] = {"weight": weight}
    for flag, key in (("cpuset-cpus", "cpus"), ("cpuset-mems", "mems")):
        if opts[flag.replace("-", "_")]:
            cpu[key] = opts[flag.replace("-", "_")]
    for flag, key, signed in (
        ("cpu-period", "period", False),
        ("cpu-rt-period", "realtimePeriod", False),
        ("cpu-share", "shares", False),
        ("cpu-quota", "quota", True),
        ("cpu-rt-runtime", "realtimeRuntime", True),
    ):
        text = opts[flag.replace("-", "_")]
        if text:
            cpu[key] = _parse_number(flag, text, signed)
    for flag, key in (
        ("memory", "limit"),
        ("memory-swap", "swap"),
        ("kernel-memory", "kernel"),
        ("kernel-memory-tcp", "kernelTCP"),
        ("memory-reservation", "reservation"),
    ):
        text = opts[flag.replace("-", "_")]
        if text:
            try:
                memory[key] = -1 if text == "-1" else ram_in_bytes(text)
            except ValueError as e:
                raise OcirtError(f"invalid value for {flag}: {e}") from None
    pids = _go_int("pids-limit", opts["pids_limit"])
    if pids:
        r["pids"] = {"limit": pids}
    return Resources.from_dict(r)


def resources_from_file(path: str) -> Resources:
    try:
        if path == "-":
            data = sys.stdin.read()
        else:
            with open(path) as f:
                data = f.read()
        resources = json.loads(data)
    except OSError as e:
        raise OcirtError(f"open {path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise OcirtError(f"{path}: invalid JSON: {e}") from None
    return Resources.from_dict(resources, path)


def check_rdt(opts: dict[str, Any]) -> None:
    enabled = os.path.exists("/sys/fs/resctrl/schemata")
    if opts["l3_cache_schema"] and not enabled:
        raise OcirtError("Intel RDT/CAT: l3 cache schema is not enabled")
    if opts["mem_bw_schema"] and not enabled:
        raise OcirtError("Intel RDT/MBA: memory bandwidth schema is not enabled")
    if opts["l3_cache_schema"] or opts["mem_bw_schema"]:
        raise OcirtError("Intel RDT schemata cannot be updated by ocirt")


def run(ctx, opts: dict, args: list[str]) -> int:
    container_id = exactly_one_id("update", args)
    with Container.load(ctx.root, container_id) as c:
        if opts["resources"]:
            resources = resources_from_file(opts["resources"])
        else:
            resources = resources_from_flags(opts)
            check_rdt(opts)
        c.update(resources)
    return 0
