"""linux.personality: the execution domain (LINUX, LINUX32) and flags.

The personality survives execve (the kernel only clears the flags that are
unsafe for set-user-ID programs), so the init sets it before stage 2 and the
user's program runs with it: under LINUX32 ``uname -m`` says i686.
"""

from __future__ import annotations

from ocirt.errors import OcirtError
from ocirt.linux import syscalls as sc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DOMAINS = {"LINUX": 0x0000, "LINUX32": 0x0008}
# personality(2) flags.  The spec lists none yet; these are the kernel's,
# accepted by name so a config can ask for e.g. ADDR_NO_RANDOMIZE.
FLAGS = {
    "UNAME26": 0x0020000,
    "ADDR_NO_RANDOMIZE": 0x0040000,
    "FDPIC_FUNCPTRS": 0x0080000,
    "MMAP_PAGE_ZERO": 0x0100000,
    "ADDR_COMPAT_LAYOUT": 0x0200000,
    "READ_IMPLIES_EXEC": 0x0400000,
    "ADDR_LIMIT_32BIT": 0x0800000,
    "SHORT_INODE": 0x1000000,
    "WHOLE_SECONDS": 0x2000000,
    "STICKY_TIMEOUTS": 0x4000000,
    "ADDR_LIMIT_3GB": 0x8000000,
}


def value(personality: dict[str, Any]) -> int:
    persona = DOMAINS[personality["domain"]]
    for flag in personality.get("flags") or ():
        persona |= FLAGS[flag]
    return persona


def unknown_flags(personality: dict[str, Any]) -> list[str]:
    return [f for f in personality.get("flags") or () if f not in FLAGS]


def apply(personality: dict[str, Any] | None) -> None:
    if not personality:
        return
    try:
        sc.personality(value(personality))
    except OSError as e:
        raise OcirtError(
            f"config.json: linux.personality: cannot set {personality['domain']}: {e.strerror}"
        ) from e
