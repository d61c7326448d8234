"""/dev inside the container: default device nodes, linux.devices, symlinks.

Nodes are made with mknod relative to an fd of their directory resolved
inside the rootfs, and owned with fchownat(AT_SYMLINK_NOFOLLOW): nothing here
can reach, create or chown a host file (the /dev/null chown of runc's
CVE history).  In a user namespace mknod is not allowed; the host's node is
bind-mounted over an empty file instead, as runc does.
"""

from __future__ import annotations

import os
import stat

from ocirt.linux import syscalls as sc
from ocirt.linux.paths import ensure_dir, ensure_file, fd_path
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


def create_devices(root_fd: int, spec: Spec, in_user_ns: bool) -> None:
    old_umask = os.umask(0)
    try:
        for device in all_devices(spec):
            if in_user_ns:
                _bind_host_device(root_fd, device)
            else:
                _mknod(root_fd, device)
    finally:
        os.umask(old_umask)


def _mknod(root_fd: int, device: Device) -> None:
    parent, name = os.path.split(device.path)
    dir_fd = ensure_dir(root_fd, parent)
    try:
        try:
            os.unlink(name, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        mode = (device.file_mode if device.file_mode is not None else 0o666) & 0o7777
        rdev = os.makedev(device.major, device.minor) if device.type != "p" else 0
        os.mknod(name, mode | TYPE_BITS[device.type], rdev, dir_fd=dir_fd)
        os.chown(
            name,
            device.uid if device.uid is not None else 0,
            device.gid if device.gid is not None else 0,
            dir_fd=dir_fd,
            follow_symlinks=False,
        )
    finally:
        os.close(dir_fd)


def _bind_host_device(root_fd: int, device: Device) -> None:
    target = ensure_file(root_fd, device.path, 0o000)
    try:
        sc.mount(device.path, fd_path(target), None, sc.MS_BIND)
    finally:
        os.close(target)


def create_symlinks(root_fd: int) -> None:
    dev = ensure_dir(root_fd, "/dev")
    try:
        links = list(DEFAULT_SYMLINKS)
        if os.path.exists("/proc/kcore"):
            links.append(("/proc/kcore", "/dev/core"))
        for target, link in links:
            try:
                os.symlink(target, os.path.basename(link), dir_fd=dev)
            except FileExistsError:
                pass
        # /dev/ptmx must be the container's devpts instance's, not the host's.
        try:
            os.unlink("ptmx", dir_fd=dev)
        except (FileNotFoundError, IsADirectoryError):
            pass
        os.symlink("pts/ptmx", "ptmx", dir_fd=dev)
    finally:
        os.close(dev)
