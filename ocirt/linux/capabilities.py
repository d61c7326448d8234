"""process.capabilities: the five sets, applied in the kernel's required order."""

from __future__ import annotations

import errno
import posix

from ocirt.linux import syscalls as sc
from ocirt.spec import Capabilities

CAP_NAMES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)  # fmt: skip
CAP_NUMBERS = {name: number for number, name in enumerate(CAP_NAMES)}


_last_cap: list[int] = []  # read once: the init asks for it with every set it changes


def last_cap() -> int:
    """The highest capability this kernel knows."""
    if not _last_cap:
        try:  # posix, not open(): _io costs exec ~0.2 ms to import (ocirt.fastcli)
            fd = posix.open("/proc/sys/kernel/cap_last_cap", posix.O_RDONLY | posix.O_CLOEXEC)
            try:
                _last_cap.append(int(posix.read(fd, 32)))
            finally:
                posix.close(fd)
        except OSError:
            _last_cap.append(len(CAP_NAMES) - 1)
    return _last_cap[0]


def mask(names: tuple[str, ...]) -> int:
    """Bit mask of NAMES; names this kernel lacks are skipped, as runc does."""
    top = last_cap()
    bits = 0
    for name in names:
        number = CAP_NUMBERS.get(name)
        if number is not None and number <= top:
            bits |= 1 << number
    return bits


def drop_bounding(caps: Capabilities) -> None:
    """Step 1, while we still hold CAP_SETPCAP."""
    keep = mask(caps.bounding)
    for number in range(last_cap() + 1):
        if not keep & (1 << number):
            try:
                sc.prctl(sc.PR_CAPBSET_DROP, number)
            except OSError as e:
                if e.errno != errno.EINVAL:  # a cap the kernel does not have
                    raise


def keep_caps_across_setuid(keep: bool) -> None:
    sc.prctl(sc.PR_SET_KEEPCAPS, 1 if keep else 0)


def apply_sets(caps: Capabilities) -> None:
    """Last step, after the uid switch: effective/permitted/inheritable, ambient."""
    sc.capset(mask(caps.effective), mask(caps.permitted), mask(caps.inheritable))
    sc.prctl(sc.PR_CAP_AMBIENT, sc.PR_CAP_AMBIENT_CLEAR_ALL)
    for name in caps.ambient:
        number = CAP_NUMBERS.get(name)
        if number is None or number > last_cap():
            continue
        try:
            sc.prctl(sc.PR_CAP_AMBIENT, sc.PR_CAP_AMBIENT_RAISE, number)
        except OSError as e:
            # runc ignores ambient caps that are not also permitted+inheritable.
            if e.errno != errno.EPERM:
                raise
