"""process.rlimits -> setrlimit(2)."""

from __future__ import annotations

import posix  # not os: see ocirt/linux/syscalls.py

from ocirt.errors import lower_first
from ocirt.linux import syscalls as sc
from ocirt.spec import Rlimit

# Linux's numbering (asm-generic/resource.h).  Not Python's resource module: it
# lacks some, and it is a shared library of its own (~0.2 ms of create's imports).
RLIMITS = {
    "RLIMIT_CPU": 0,
    "RLIMIT_FSIZE": 1,
    "RLIMIT_DATA": 2,
    "RLIMIT_STACK": 3,
    "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5,
    "RLIMIT_NPROC": 6,
    "RLIMIT_NOFILE": 7,
    "RLIMIT_MEMLOCK": 8,
    "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10,
    "RLIMIT_SIGPENDING": 11,
    "RLIMIT_MSGQUEUE": 12,
    "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14,
    "RLIMIT_RTTIME": 15,
}

# The runtime-spec's "unlimited" is uint64's max, which is also the kernel's
# RLIM_INFINITY: the values go to setrlimit(2) as they are.
_U64_MAX = 2**64 - 1


def apply(rlimits: tuple[Rlimit, ...]) -> None:
    for rl in rlimits:
        try:
            sc.setrlimit(RLIMITS[rl.type], min(rl.soft, _U64_MAX), min(rl.hard, _U64_MAX))
        except OSError as e:
            raise OSError(
                e.errno,
                f"error setting rlimit type {rl.type} to soft={rl.soft} hard={rl.hard}:"
                f" {lower_first(posix.strerror(e.errno))}",
            ) from e
