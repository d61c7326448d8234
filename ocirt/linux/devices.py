"""/dev inside the container: default device nodes, linux.devices, symlinks.

Nodes are made with mknod relative to an fd of their directory resolved
inside the rootfs, and owned with fchownat(AT_SYMLINK_NOFOLLOW): nothing here
can reach, create or chown a host file (the /dev/null chown of runc's
CVE history).  In a user namespace mknod is not allowed; the host's node is
bind-mounted over an empty file instead, as runc does.
"""

from __future__ import annotations

import errno
import posix  # not os (~1.2 ms of imports): ocirt.linux.pathnames has os.path's few uses
import stat

from ocirt.errors import OcirtError
from ocirt.linux import pathnames
from ocirt.linux import syscalls as sc
from ocirt.linux.paths import ensure_dir
from ocirt.spec import Device, Spec

DEFAULT_DEVICES = (
    Device("/dev/null", "c", 1, 3, 0o666, 0, 0),
    Device("/dev/zero", "c", 1, 5, 0o666, 0, 0),
    Device("/dev/full", "c", 1, 7, 0o666, 0, 0),
    Device("/dev/random", "c", 1, 8, 0o666, 0, 0),
    Device("/dev/urandom", "c", 1, 9, 0o666, 0, 0),
    Device("/dev/tty", "c", 5, 0, 0o666, 0, 0),
)

DEFAULT_SYMLINKS = (
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
)

TYPE_BITS = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def needs_dev_setup(spec: Spec) -> bool:
    """runc leaves /dev alone when the config bind-mounts something over it."""
    return not any(m.destination == "/dev" and m.is_bind for m in spec.mounts)


def all_devices(spec: Spec) -> list[Device]:
    """The defaults, with linux.devices overriding a default of the same path."""
    configured = {d.path: d for d in spec.linux.devices}
    result = [d for d in DEFAULT_DEVICES if d.path not in configured]
    return result + list(spec.linux.devices)


class DeviceError(OcirtError):
    pass


def create_devices(root_fd: int, spec: Spec, in_user_ns: bool) -> None:
    configured = {d.path: i for i, d in enumerate(spec.linux.devices)}
    old_umask = posix.umask(0)
    try:
        for device in all_devices(spec):
            where = f"linux.devices[{configured[device.path]}]" if device.path in configured else ""
            try:
                _create_one(root_fd, device, in_user_ns)
            except OSError as e:
                raise DeviceError(
                    f"{'config.json: ' + where + ': ' if where else ''}cannot create device"
                    f" {device.path}: {e.strerror}"
                ) from e
    finally:
        posix.umask(old_umask)


def _create_one(root_fd: int, device: Device, in_user_ns: bool) -> None:
    """mknod, or bind the host's node where mknod is not allowed (a user namespace)."""
    parent, name = _split(device.path)
    dir_fd = ensure_dir(root_fd, parent)
    try:
        if _existing_matches(dir_fd, name, device):
            return  # the rootfs already has this very node: keep it (runc does)
        if not in_user_ns or device.type == "p":  # a fifo needs no privilege
            try:
                _mknod(dir_fd, name, device)
                return
            except PermissionError:
                pass  # no CAP_MKNOD here: fall back to a bind mount, as runc
        _bind_host_device(dir_fd, name, device)
    finally:
        posix.close(dir_fd)


def _split(path: str) -> tuple[str, str]:
    """(parent, name) of a device path, normalized: ``..`` cannot name a directory here."""
    parent, name = pathnames.split(pathnames.normpath("/" + path))
    if not name:
        raise OSError(errno.EINVAL, f"{path!r} names the root directory")
    return parent, name


def _existing_matches(dir_fd: int, name: str, device: Device) -> bool:
    """False if nothing is at NAME; True if the same device is; else an error (spec)."""
    try:
        st = posix.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if stat.S_IFMT(st.st_mode) == TYPE_BITS[device.type] and (
        device.type == "p" or st.st_rdev == posix.makedev(device.major, device.minor)
    ):
        return True
    raise OSError(
        errno.EEXIST,
        f"a different file already exists there ({_describe(st)}; the config asks for"
        f" {device.type} {device.major}:{device.minor})",
    )


def _describe(st: posix.stat_result) -> str:
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        kind = "c" if stat.S_ISCHR(st.st_mode) else "b"
        return f"device {kind} {posix.major(st.st_rdev)}:{posix.minor(st.st_rdev)}"
    for test, what in ((stat.S_ISLNK, "a symlink"), (stat.S_ISDIR, "a directory")):
        if test(st.st_mode):
            return what
    return "a regular file" if stat.S_ISREG(st.st_mode) else "a special file"


def _mknod(dir_fd: int, name: str, device: Device) -> None:
    mode = (device.file_mode if device.file_mode is not None else 0o666) & 0o7777
    rdev = posix.makedev(device.major, device.minor) if device.type != "p" else 0
    posix.mknod(name, mode | TYPE_BITS[device.type], rdev, dir_fd=dir_fd)
    # Relative to the directory's fd and without following: the node we just
    # made, never a host file a symlink could point at.
    posix.chown(
        name,
        device.uid if device.uid is not None else 0,
        device.gid if device.gid is not None else 0,
        dir_fd=dir_fd,
        follow_symlinks=False,
    )


def _bind_host_device(dir_fd: int, name: str, device: Device) -> None:
    """Bind the host's node at the same path; it must be that very device.

    The node is opened once and checked through its fd, and the bind is made
    from that fd: a path looked up again could be another file by then."""
    try:
        # The host's /dev, before pivot_root: symlinks there (/dev/rtc) are the host's.
        host = posix.open(device.path, posix.O_PATH | posix.O_CLOEXEC)
    except FileNotFoundError:
        raise OSError(
            errno.ENOENT,
            "mknod is not allowed here (user namespace) and the host has no node"
            f" {device.path} to bind",
        ) from None
    try:
        st = posix.fstat(host)
        if not _is_device(st, device):
            raise OSError(
                errno.ENODEV,
                f"mknod is not allowed here and the host's {device.path} is {_describe(st)},"
                f" not {device.type} {device.major}:{device.minor}",
            )
        flags = posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_NOFOLLOW | posix.O_CLOEXEC
        fd = posix.open(name, flags, 0o000, dir_fd=dir_fd)
        try:
            bind_fd_over(host, fd)
        finally:
            posix.close(fd)
    finally:
        posix.close(host)


def _is_device(st: posix.stat_result, device: Device) -> bool:
    if device.type == "p":
        return stat.S_ISFIFO(st.st_mode)
    return stat.S_IFMT(st.st_mode) == TYPE_BITS[device.type] and st.st_rdev == posix.makedev(
        device.major, device.minor
    )


def bind_fd_over(source: int, target: int, recursive: bool = False, attr_set: int = 0) -> None:
    """Bind what fd SOURCE is over what fd TARGET is, with mount attributes
    ATTR_SET (MOUNT_ATTR_*) on the new mount: open_tree + move_mount, fds
    only, so no path (and no symlink or /proc/self/fd the container could
    have replaced) is looked up between the check of an fd and the mount."""
    flags = sc.OPEN_TREE_CLONE | sc.OPEN_TREE_CLOEXEC | sc.AT_EMPTY_PATH
    tree = sc.open_tree(source, "", flags | (sc.AT_RECURSIVE if recursive else 0))
    try:
        if attr_set:
            sc.mount_setattr(tree, "", sc.AT_EMPTY_PATH, attr_set)
        sc.move_mount(tree, "", target, "", sc.MOVE_MOUNT_F_EMPTY_PATH | sc.MOVE_MOUNT_T_EMPTY_PATH)
    finally:
        posix.close(tree)


NULL = Device("/dev/null", "c", 1, 3, 0o666, 0, 0)


def open_null(root_fd: int) -> int:
    """O_PATH fd of /dev/null in the root ROOT_FD, checked to be the null device.

    What masks a file (rootfs.mask_paths) is bound from this fd: a /dev/null
    the image (or a container sharing /dev) replaced with a symlink, say to
    /proc/sys/kernel/core_pattern, would otherwise put that file, writable,
    where a masked path was (CVE-2025-31133).  No symlink is followed on the
    way, and the node must be c 1:3."""
    resolve = sc.RESOLVE_IN_ROOT | sc.RESOLVE_NO_SYMLINKS
    try:
        fd = sc.openat2(root_fd, "dev/null", posix.O_PATH | posix.O_CLOEXEC, 0, resolve)
    except OSError as e:
        if e.errno != errno.ELOOP:
            raise
        raise OSError(errno.ELOOP, "/dev/null is a symlink: refusing to mask with it") from None
    st = posix.fstat(fd)
    if not _is_device(st, NULL):
        posix.close(fd)
        raise OSError(
            errno.ENODEV,
            f"/dev/null is {_describe(st)}, not the null device (c 1:3): refusing to mask with it",
        )
    return fd


def create_symlinks(root_fd: int) -> None:
    dev = ensure_dir(root_fd, "/dev")
    try:
        links = list(DEFAULT_SYMLINKS)
        if pathnames.exists("/proc/kcore"):
            links.append(("/proc/kcore", "/dev/core"))
        for target, link in links:
            try:
                posix.symlink(target, pathnames.basename(link), dir_fd=dev)
            except FileExistsError:
                pass
        # /dev/ptmx must be the container's devpts instance's, not the host's.
        try:
            posix.unlink("ptmx", dir_fd=dev)
        except (FileNotFoundError, IsADirectoryError):
            pass
        posix.symlink("pts/ptmx", "ptmx", dir_fd=dev)
    finally:
        posix.close(dev)
