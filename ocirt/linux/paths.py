"""Resolving paths inside the container's rootfs without ever leaving it.

Every mount destination, device path and masked path is opened with
openat2(RESOLVE_IN_ROOT) against an fd of the rootfs: a symlink (absolute or
with ``..``) is resolved as if the rootfs were ``/``, so a hostile image
cannot point a mount at the host (runc's CVE-2021-30465 and friends).  What
is mounted is then mounted on ``/proc/self/fd/N``, the fd we resolved, never
on a path that could be swapped between check and use.
"""

from __future__ import annotations

import errno
import posix  # not os (~1.2 ms of imports): ocirt.linux.pathnames has os.path's few uses
import stat

from ocirt.linux import pathnames
from ocirt.linux import syscalls as sc

MAX_SYMLINK_DEPTH = 40


def fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def clean(path: str) -> str:
    """PATH made lexically clean, relative to the root (Go's filepath.Clean, as runc).

    ``/a/../b`` must work when ``/a`` does not exist yet, as in runc; the
    kernel would want ``a`` to exist.  Safe either way: RESOLVE_IN_ROOT
    clamps what is left at the root.
    """
    return pathnames.normpath("/" + path).lstrip("/") or "."


def open_in_root(root_fd: int, path: str, flags: int = posix.O_PATH) -> int:
    return sc.openat2(root_fd, clean(path), flags | posix.O_CLOEXEC, 0, sc.RESOLVE_IN_ROOT)


def ensure_dir(root_fd: int, path: str, mode: int = 0o755, _depth: int = 0) -> int:
    """O_PATH fd of directory PATH inside the root, created (mkdir -p) if missing.

    Each missing component is made with mkdirat(2) in the directory fd its
    parent resolved to, and what was made is opened from that same fd, never
    by looking PATH up again: a volume another container shares can turn any
    parent into a symlink at any moment (runc's CVE-2024-45310), and a path
    looked up twice can then name two places.
    """
    if _depth > MAX_SYMLINK_DEPTH:
        raise OSError(errno.ELOOP, f"too many symlinks creating {path}")
    try:
        return open_in_root(root_fd, path, posix.O_PATH | posix.O_DIRECTORY)
    except FileNotFoundError:
        pass
    parent, name = pathnames.split(pathnames.normpath("/" + path))
    parent_fd = ensure_dir(root_fd, parent, mode, _depth + 1)
    try:
        try:
            return make_dir_in(parent_fd, name, mode)
        except FileExistsError:
            pass
        try:
            target = posix.readlink(name, dir_fd=parent_fd)
        except OSError:
            # Not a symlink (any more): made meanwhile; look it up again, inside the root.
            return open_in_root(root_fd, path, posix.O_PATH | posix.O_DIRECTORY)
        # A dangling symlink: make what it points at, inside the root.
        return ensure_dir(root_fd, pathnames.join(parent, target), mode, _depth + 1)
    finally:
        posix.close(parent_fd)


def make_dir_in(dir_fd: int, name: str, mode: int = 0o755) -> int:
    """O_PATH fd of a new directory NAME (no slash) made in DIR_FD; no symlink followed."""
    posix.mkdir(name, mode, dir_fd=dir_fd)
    return _open_made(dir_fd, name, posix.O_PATH | posix.O_DIRECTORY)


def ensure_file(root_fd: int, path: str, mode: int = 0o644) -> int:
    """O_PATH fd of a non-directory at PATH inside the root, created if missing
    (mknodat in its parent's fd and opened from there, as ``ensure_dir``)."""
    try:
        return open_in_root(root_fd, path, posix.O_PATH)
    except FileNotFoundError:
        pass
    parent, name = pathnames.split(pathnames.normpath("/" + path))
    parent_fd = ensure_dir(root_fd, parent)
    try:
        try:
            posix.mknod(name, stat.S_IFREG | mode, dir_fd=parent_fd)
        except FileExistsError:
            return open_in_root(root_fd, path, posix.O_PATH)  # made meanwhile
        return _open_made(parent_fd, name, posix.O_PATH)
    finally:
        posix.close(parent_fd)


def _open_made(dir_fd: int, name: str, flags: int) -> int:
    """What we just made as NAME in DIR_FD, opened without following a symlink
    (ELOOP if a racing process put one there meanwhile)."""
    resolve = sc.RESOLVE_BENEATH | sc.RESOLVE_NO_SYMLINKS
    return sc.openat2(dir_fd, name, flags | posix.O_CLOEXEC, 0, resolve)


def is_dir_fd(fd: int) -> bool:
    return stat.S_ISDIR(posix.fstat(fd).st_mode)


def resolve_in_root(root: str, path: str) -> str:
    """Host path of PATH resolved inside ROOT (symlinks clamped to ROOT).

    For read-only look-ups before the rootfs is entered (the executable check):
    it walks the components with readlink, as the kernel would in a chroot.
    """
    parts = [p for p in path.split("/") if p]
    resolved: list[str] = []
    depth = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = pathnames.join(root, *resolved, part)
        try:
            target = posix.readlink(candidate)
        except OSError:
            resolved.append(part)
            continue
        depth += 1
        if depth > MAX_SYMLINK_DEPTH:
            raise OSError(errno.ELOOP, f"too many levels of symbolic links: {path}")
        if target.startswith("/"):
            resolved = []
        parts = [p for p in target.split("/") if p] + parts
    return pathnames.join(root, *resolved)
