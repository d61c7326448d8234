"""Scheduling attributes of the container's process.

``process.scheduler`` (sched_setattr), ``process.ioPriority`` (ioprio_set),
``process.execCPUAffinity`` (sched_setaffinity, exec only) and
``linux.memoryPolicy`` (set_mempolicy).  All four are inherited across fork
and kept across execve, so the init applies them before it executes stage 2
and the user's program gets them unchanged.

Every function takes the raw config dict of its field (the spec view keeps
these sections as they are in config.json) and raises ``OcirtError`` naming
the field when the kernel refuses.
"""

from __future__ import annotations

import os

from ocirt.errors import OcirtError
from ocirt.linux import syscalls as sc
from ocirt.linux.procfs import read_text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SCHED_POLICIES = {
    "SCHED_OTHER": 0,
    "SCHED_FIFO": 1,
    "SCHED_RR": 2,
    "SCHED_BATCH": 3,
    "SCHED_ISO": 4,  # reserved by the kernel, never implemented: sched_setattr says EINVAL
    "SCHED_IDLE": 5,
    "SCHED_DEADLINE": 6,
}
SCHED_FLAGS = {
    "SCHED_FLAG_RESET_ON_FORK": 0x01,
    "SCHED_FLAG_RECLAIM": 0x02,
    "SCHED_FLAG_DL_OVERRUN": 0x04,
    "SCHED_FLAG_KEEP_POLICY": 0x08,
    "SCHED_FLAG_KEEP_PARAMS": 0x10,
    "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
    "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40,
}
# The policies whose priority must be 1..99; for the others it must be 0.
REALTIME = {"SCHED_FIFO", "SCHED_RR"}
RT_RUNTIME = "/sys/fs/cgroup/cpu/cpu.rt_runtime_us"

IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
IOPRIO_CLASS_SHIFT = 13
IOPRIO_WHO_PROCESS = 1

MPOL_MODES = {
    "MPOL_DEFAULT": 0,
    "MPOL_PREFERRED": 1,
    "MPOL_BIND": 2,
    "MPOL_INTERLEAVE": 3,
    "MPOL_LOCAL": 4,
    "MPOL_PREFERRED_MANY": 5,
    "MPOL_WEIGHTED_INTERLEAVE": 6,
}
MPOL_FLAGS = {
    "MPOL_F_NUMA_BALANCING": 1 << 13,
    "MPOL_F_RELATIVE_NODES": 1 << 14,
    "MPOL_F_STATIC_NODES": 1 << 15,
}
# Modes that take no node list (the kernel wants an empty mask for them).
MPOL_WITHOUT_NODES = {"MPOL_DEFAULT", "MPOL_LOCAL"}


def parse_cpu_list(text: str) -> list[int]:
    """``"0-3,7"`` -> [0, 1, 2, 3, 7]; the kernel's cpulist format (also NUMA nodes)."""
    result: set[int] = set()
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        first, dash, last = part.partition("-")
        low = int(first)
        high = int(last) if dash else low
        if high < low:
            raise ValueError(f"range {part!r} goes backwards")
        result.update(range(low, high + 1))
    return sorted(result)


def apply_scheduler(scheduler: dict[str, Any] | None) -> None:
    if not scheduler:
        return
    policy = scheduler["policy"]
    flags = 0
    for name in scheduler.get("flags") or ():
        flags |= SCHED_FLAGS[name]
    try:
        sc.sched_setattr(
            0,
            SCHED_POLICIES[policy],
            flags,
            scheduler.get("nice", 0),
            scheduler.get("priority", 0),
            scheduler.get("runtime", 0),
            scheduler.get("deadline", 0),
            scheduler.get("period", 0),
        )
    except OSError as e:
        hint = ""
        if e.errno == 1 and policy in REALTIME and os.path.exists(RT_RUNTIME):
            # cgroup v1 gives a new cpu cgroup no real-time budget at all.
            hint = " (cgroup v1: the container's cpu.rt_runtime_us must be > 0,"
            hint += " see linux.resources.cpu.realtimeRuntime)"
        raise OcirtError(
            f"config.json: process.scheduler: cannot set {policy}: {e.strerror}{hint}"
        ) from e


def ioprio_value(io_priority: dict[str, Any]) -> int:
    return (IOPRIO_CLASSES[io_priority["class"]] << IOPRIO_CLASS_SHIFT) | io_priority["priority"]


def apply_io_priority(io_priority: dict[str, Any] | None) -> None:
    if not io_priority:
        return
    try:
        sc.ioprio_set(IOPRIO_WHO_PROCESS, 0, ioprio_value(io_priority))
    except OSError as e:
        raise OcirtError(
            f"config.json: process.ioPriority: cannot set {io_priority['class']}"
            f" {io_priority['priority']}: {e.strerror}"
        ) from e


def apply_cpu_affinity(affinity: dict[str, Any] | None, which: str) -> None:
    """Pin the calling process to ``execCPUAffinity[WHICH]`` (initial or final).

    The spec applies the field to processes started by ``exec`` only:
    ``initial`` before the process joins the container's cgroup, ``final``
    after it.  An empty or missing list leaves the affinity alone.
    """
    text = (affinity or {}).get(which) or ""
    if not text.strip():
        return
    cpus = parse_cpu_list(text)
    try:
        os.sched_setaffinity(0, cpus)
    except OSError as e:
        raise OcirtError(
            f"process.execCPUAffinity.{which}: cannot run on CPUs {text!r}: {e.strerror}"
        ) from e


def apply_memory_policy(policy: dict[str, Any] | None) -> None:
    if not policy:
        return
    mode_name = policy["mode"]
    mode = MPOL_MODES[mode_name]
    for flag in policy.get("flags") or ():
        mode |= MPOL_FLAGS[flag]
    nodes = parse_cpu_list(policy.get("nodes") or "")
    try:
        sc.set_mempolicy(mode, nodes)
    except OSError as e:
        raise OcirtError(
            f"config.json: linux.memoryPolicy: cannot set {mode_name}"
            f" on nodes {policy.get('nodes') or '(none)'!r}: {e.strerror}"
        ) from e


def check_memory_policy(policy: dict[str, Any]) -> str | None:
    """Why POLICY cannot work on this host (a sentence), or None if it can."""
    mode = policy.get("mode")
    nodes_text = policy.get("nodes") or ""
    try:
        nodes = parse_cpu_list(nodes_text)
    except ValueError as e:
        return f"nodes {nodes_text!r} is not a node list: {e}"
    if mode in MPOL_WITHOUT_NODES and nodes:
        return f"{mode} takes no nodes (got {nodes_text!r})"
    if mode not in MPOL_WITHOUT_NODES and not nodes:
        return f"{mode} needs nodes"
    online = _online("/sys/devices/system/node/online")
    if online is not None and not set(nodes) <= set(online):
        missing = sorted(set(nodes) - set(online))
        return f"NUMA node(s) {missing} are not online on this host (online: {online})"
    return None


def check_cpu_list(text: str) -> str | None:
    """Why the CPU list TEXT cannot be used here, or None."""
    try:
        cpus = parse_cpu_list(text)
    except ValueError as e:
        return f"{text!r} is not a CPU list: {e}"
    online = _online("/sys/devices/system/cpu/online")
    if online is not None and cpus and not set(cpus) <= set(online):
        missing = sorted(set(cpus) - set(online))
        return f"CPU(s) {missing} are not online on this host (online: {online})"
    return None


def check_scheduler(scheduler: dict[str, Any]) -> str | None:
    """The kernel's rules for sched_setattr, checked before anything is created."""
    policy = scheduler.get("policy")
    priority = scheduler.get("priority", 0)
    if policy == "SCHED_ISO":
        return "SCHED_ISO is reserved and not implemented by Linux"
    if policy in REALTIME and not 1 <= priority <= 99:
        return f"{policy} needs a priority between 1 and 99 (got {priority})"
    if policy not in REALTIME and priority:
        return f"{policy} takes priority 0 (got {priority}); priority is for SCHED_FIFO/SCHED_RR"
    nice = scheduler.get("nice", 0)
    if not -20 <= nice <= 19:
        return f"nice must be between -20 and 19 (got {nice})"
    if policy == "SCHED_DEADLINE":
        runtime, deadline = scheduler.get("runtime", 0), scheduler.get("deadline", 0)
        period = scheduler.get("period", 0) or deadline
        if not 0 < runtime <= deadline <= period:
            return "SCHED_DEADLINE needs 0 < runtime <= deadline <= period (in nanoseconds)"
    return None


def _online(path: str) -> list[int] | None:
    try:
        return parse_cpu_list(read_text(path).strip())
    except (OSError, ValueError):
        return None
