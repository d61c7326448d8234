"""Mounts of a container that shares the runtime's mount namespace.

A config without a new mount namespace (the spec allows it: the container
then shares the runtime's) must never change the host's root or its
propagation, so its init does no pivot_root and no remount of ``/``; it
chroots into the rootfs, and every mount ``mounts[]`` (and /dev, the
console, masked paths...) asks for lands under the rootfs: in the *host's*
mount table.  runc leaves those behind at delete; ocirt removes them.

Which mounts are the container's: every mount at or under the rootfs that
was not there before ``create`` cloned the init (a rootfs that is itself a
mount, as podman's overlay is, stays).  ``create`` writes that list into the
state directory (``RECORD``) before the init can mount anything, so that a
create killed at any step still leaves ``delete --force`` what it needs.
Removal works from the deepest mount up, and unmounts each through an fd
opened without following symlinks and checked to be that very mount: the
container may have left symlinks in the paths.
"""

from __future__ import annotations

import errno
import json
import os

from ocirt.linux import mountinfo
from ocirt.linux import syscalls as sc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ocirt.spec import Spec

RECORD = "host-mounts.json"  # in the state directory


def shares_runtime_namespace(spec: Spec) -> bool:
    """Whether the container's mounts land in the runtime's own mount namespace:
    no mount namespace in the config, or a path naming the runtime's own."""
    ns = spec.linux.namespace("mount")
    if ns is None:
        return True
    if not ns.path:
        return False
    try:
        return os.stat(ns.path).st_ino == os.stat("/proc/self/ns/mnt").st_ino
    except OSError:
        return False  # reported when the init joins it


def write_record(state_dir: str, rootfs: str) -> None:
    """Note the rootfs and the mounts at or under it now (before the init runs)."""
    real = os.path.realpath(rootfs)
    keep = [m.mount_id for m in mountinfo.read() if m.is_at_or_under(real)]
    data = json.dumps({"rootfs": real, "keep": keep}).encode()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    fd = os.open(os.path.join(state_dir, RECORD), flags, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def remove_recorded(state_dir: str) -> None:
    """Unmount what the container added under its rootfs, per RECORD (if any)."""
    try:
        with open(os.path.join(state_dir, RECORD), "rb") as f:
            data = json.loads(f.read())
    except FileNotFoundError:
        return
    remove_added(data["rootfs"], set(data["keep"]))


def remove_added(rootfs: str, keep: set[int]) -> None:
    """Unmount every mount at or under ROOTFS whose id is not in KEEP, deepest first.

    Repeated until none is left: a mount may be stacked over another, or
    uncovered by the removal of one above it.
    """
    for _round in range(64):  # bounded: each round removes at least one, or stops
        added = [m for m in mountinfo.read() if m.is_at_or_under(rootfs) and m.mount_id not in keep]
        if not added:
            return
        added.sort(key=lambda m: m.point.count("/"), reverse=True)
        if not any(_unmount(m) for m in added):
            left = ", ".join(m.point for m in added)
            raise OSError(errno.EBUSY, f"cannot unmount the container's mounts: {left}")


def _unmount(entry: mountinfo.MountEntry) -> bool:
    """Detach ENTRY if its mount point still resolves, without symlinks, to the
    topmost mount there and that is ENTRY; False if it does not (yet)."""
    resolve = sc.RESOLVE_NO_SYMLINKS | sc.RESOLVE_NO_MAGICLINKS
    try:
        fd = sc.openat2(-100, entry.point, os.O_PATH | os.O_CLOEXEC, 0, resolve)
    except OSError:
        return False
    try:
        if _mount_id_of(fd) != entry.mount_id:
            return False  # covered by another mount (removed first), or not this path
        sc.umount2(f"/proc/self/fd/{fd}", sc.MNT_DETACH)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


def _mount_id_of(fd: int) -> int:
    with open(f"/proc/self/fdinfo/{fd}", "rb") as f:
        for line in f:
            if line.startswith(b"mnt_id:"):
                return int(line.split()[1])
    return -1
