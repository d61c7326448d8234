"""process.rlimits -> setrlimit(2)."""

from __future__ import annotations

import resource

from ocirt.spec import Rlimit

# Linux's numbering (asm-generic/resource.h); Python's resource module lacks some.
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

# The runtime-spec's uint64 max means "unlimited"; Python wants RLIM_INFINITY.
_U64_MAX = 2**64 - 1


def _value(v: int) -> int:
    return resource.RLIM_INFINITY if v >= _U64_MAX else v


def apply(rlimits: tuple[Rlimit, ...]) -> None:
    for rl in rlimits:
        try:
            resource.setrlimit(RLIMITS[rl.type], (_value(rl.soft), _value(rl.hard)))
        except (ValueError, OSError) as e:
            raise OSError(
                getattr(e, "errno", None) or 1,
                f"error setting rlimit type {rl.type} to soft={rl.soft} hard={rl.hard}: {e}",
            ) from e
