"""process.apparmorProfile and process.selinuxLabel (and linux.mountLabel).

Both labels take effect at the next execve: the init writes them to
/proc/self/attr/... just before it executes stage 2, so stage 2 and the
user's program (which stage 2 executes) run confined.  A config asking for an
LSM the host does not run is refused at ``create`` (runc refuses SELinux
labels the same way; for AppArmor it fails later, at the write).
"""

from __future__ import annotations

import os

from ocirt.errors import OcirtError
from ocirt.linux import mountinfo
from ocirt.linux.procfs import open_checked, read_text

APPARMOR_ENABLED = "/sys/module/apparmor/parameters/enabled"
SELINUX_MOUNT = "/sys/fs/selinux"


def apparmor_enabled() -> bool:
    """runc's test: the module says Y (and the attr interface exists)."""
    try:
        return read_text(APPARMOR_ENABLED).startswith("Y")
    except OSError:
        return False


def selinux_enabled() -> bool:
    """SELinux is on when selinuxfs is mounted (libselinux's is_selinux_enabled)."""
    try:
        return any(m.fs_type == "selinuxfs" for m in mountinfo.read())
    except OSError:
        return False


def _write_attr(paths: tuple[str, ...], data: str, field: str) -> None:
    """Write DATA to the first of PATHS that exists, checked to be the real procfs
    file: a label written into a bind mount over it would leave the process
    unconfined, or land on another procfs file (CVE-2025-52881)."""
    last: OSError | None = None
    for path in paths:
        try:
            fd = open_checked(path, os.O_WRONLY)
        except FileNotFoundError as e:
            last = e
            continue
        except OSError as e:
            raise OcirtError(f"config.json: {field}: cannot apply {data!r}: {e.strerror}") from e
        try:
            os.write(fd, data.encode())
            return
        except OSError as e:
            raise OcirtError(f"config.json: {field}: cannot apply {data!r}: {e.strerror}") from e
        finally:
            os.close(fd)
    raise OcirtError(f"config.json: {field}: no LSM attribute file ({last})")


def apply_on_exec(apparmor_profile: str, selinux_label: str) -> None:
    """Arm the labels for the next execve (stage 2)."""
    if apparmor_profile:
        _write_attr(
            ("/proc/thread-self/attr/apparmor/exec", "/proc/thread-self/attr/exec"),
            f"exec {apparmor_profile}",
            "process.apparmorProfile",
        )
    if selinux_label:
        _write_attr(("/proc/thread-self/attr/exec",), selinux_label, "process.selinuxLabel")


def mount_data(data: str, mount_label: str) -> str:
    """Add ``context="LABEL"`` to a mount's data (the caller checked SELinux is on)."""
    if not mount_label:
        return data
    context = f'context="{mount_label}"'
    return f"{data},{context}" if data else context
