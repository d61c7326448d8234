"""Text files of /proc and /sys, read and written as bytes; every write checked.

``open(path)`` in text mode needs the codec registry, i.e. the ``encodings``
package: under the compiled launcher's core phase (ocirt/_shim/launcher.c)
it is not loaded yet (~0.5 ms to load for a read of mountinfo), and the
container's init, once it has sealed its imports, could not load it at all.
``bytes.decode`` and ``str.encode`` with UTF-8 need neither.

Writes go through ``open_checked`` (CVE-2025-52881).  Inside the container
/proc and /sys are the container's mounts, and a mount the config declares
(its destination reached through a symlink of the image, or a volume another
container swaps) can cover any file under them: a bind of
/proc/sys/kernel/core_pattern over /proc/self/attr/apparmor/exec would take
the LSM label meant for the process, a tmpfs file there would swallow it.
So a write lands only on the real file:

* the root (/proc or /sys) is opened and must be that filesystem
  (fstatfs's magic) and its root directory (inode 1), not a bind of some
  directory or file below it;
* the file is opened from that fd with openat2(RESOLVE_BENEATH |
  RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS): the kernel refuses (EXDEV) a
  path that crosses any mount, so the file lies on the very mount whose
  root was checked, and a bind over it, or over a directory on the way, is
  refused rather than followed.

That is four syscalls for the root and one per file: no mountinfo parse.
Reads are not checked: what they see is either the runtime's own (host side)
or information the container could fake anyway.
"""

from __future__ import annotations

import errno
import posix  # not os: see ocirt/linux/syscalls.py

PROC_SUPER_MAGIC = 0x9FA0
SYSFS_MAGIC = 0x62656572
FS_ROOT_INO = 1  # the root directory of procfs and of sysfs (kernfs)
MAGIC_OF_ROOT = {"/proc": PROC_SUPER_MAGIC, "/sys": SYSFS_MAGIC}


def read_text(path: str) -> str:
    """PATH's text; bytes that are not UTF-8 (a path in mountinfo) stay surrogates."""
    with open(path, "rb") as f:
        return f.read().decode("utf-8", "surrogateescape")


def write_text(path: str, text: str) -> None:
    """Write TEXT to PATH, a file under /proc or /sys, checked (see above)."""
    fd = open_checked(path, posix.O_WRONLY)
    try:
        posix.write(fd, text.encode())
    finally:
        posix.close(fd)


def open_checked(path: str, flags: int) -> int:
    """An fd of PATH (under /proc or /sys) that is the real procfs/sysfs file."""
    root_path, relative = split_root(path)
    root = open_root(root_path)
    try:
        return open_beneath(root, relative, flags, path)
    finally:
        posix.close(root)


def split_root(path: str) -> tuple[str, str]:
    """("/proc" or "/sys", the rest) of an absolute PATH under one of them."""
    for root_path in MAGIC_OF_ROOT:
        if path.startswith(root_path + "/"):
            return root_path, path[len(root_path) + 1 :]
    raise ValueError(f"{path} is not under /proc or /sys")


def open_root(root_path: str) -> int:
    """An O_PATH fd of ROOT_PATH ("/proc" or "/sys"), checked to be the root of
    that filesystem; OSError(EXDEV) if it is not."""
    from ocirt.linux import syscalls as sc  # loaded: the init and exec's child use it first

    fd = posix.open(root_path, posix.O_PATH | posix.O_DIRECTORY | posix.O_CLOEXEC)
    try:
        magic = sc.fstatfs_type(fd)
        inode = posix.fstat(fd).st_ino
        if magic != MAGIC_OF_ROOT[root_path] or inode != FS_ROOT_INO:
            raise OSError(
                errno.EXDEV,
                f"{root_path} is not the root of a {root_path[1:]} filesystem"
                f" (magic {magic:#x}, inode {inode}): refusing to write through it",
            )
    except BaseException:
        posix.close(fd)
        raise
    return fd


def open_beneath(root: int, relative: str, flags: int, shown: str = "") -> int:
    """RELATIVE opened from ROOT (an fd from ``open_root``) without crossing a mount."""
    from ocirt.linux import syscalls as sc  # loaded (see open_root)

    resolve = sc.RESOLVE_BENEATH | sc.RESOLVE_NO_XDEV | sc.RESOLVE_NO_MAGICLINKS
    try:
        return sc.openat2(root, relative, flags | posix.O_CLOEXEC, 0, resolve)
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
        raise OSError(
            errno.EXDEV,
            f"{shown or relative} is covered by a mount (not the real file): refusing to write it",
        ) from None


def cgroup_paths(pid: int | str = "self") -> dict[str, str]:
    """/proc/PID/cgroup as {controllers as listed ("cpu,cpuacct", "name=systemd",
    "" for cgroup2): path}."""
    paths = {}
    for line in read_text(f"/proc/{pid}/cgroup").splitlines():
        _hid, controllers, path = line.split(":", 2)
        paths[controllers] = path
    return paths
