"""The ``tmpcopyup`` mount option: a new tmpfs starts with the directory's contents.

Podman asks for it on /tmp, /run and friends so that an image's files there
stay visible under the tmpfs.  The copy works on directory fds only (the
directory under the new mount is still reachable through the fd opened
before mounting), never on paths, and never follows a symlink: a hostile
image cannot make it read or write outside the rootfs.  Modes, owners,
timestamps and extended attributes come along; hard links become copies.
"""

from __future__ import annotations

import errno
import os
import stat

from ocirt.linux.paths import fd_path

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# Reopening an O_PATH fd goes through the /proc/self/fd magic link: no NOFOLLOW.
REOPEN_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def copy_up(under: int, mounted: int) -> None:
    """Copy the tree under the mount (fd UNDER) into the new tmpfs (fd MOUNTED).

    Both fds may be O_PATH; MOUNTED is closed here.  The tmpfs root takes
    the mode and owner of the directory it covers, as crun does.
    """
    try:
        src = os.open(fd_path(under), REOPEN_FLAGS)
        try:
            dst = os.open(fd_path(mounted), REOPEN_FLAGS)
            try:
                _copy_dir_contents(src, dst)
                _copy_meta(os.fstat(src), dst)
            finally:
                os.close(dst)
        finally:
            os.close(src)
    finally:
        os.close(mounted)


def _copy_dir_contents(src: int, dst: int) -> None:
    for entry in os.scandir(src):
        st = entry.stat(follow_symlinks=False)
        name = entry.name
        if stat.S_ISDIR(st.st_mode):
            os.mkdir(name, 0o700, dir_fd=dst)
            child_src = os.open(name, DIR_FLAGS, dir_fd=src)
            try:
                child_dst = os.open(name, DIR_FLAGS, dir_fd=dst)
                try:
                    _copy_dir_contents(child_src, child_dst)
                    _copy_meta(st, child_dst)
                finally:
                    os.close(child_dst)
            finally:
                os.close(child_src)
            continue
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(name, dir_fd=src), name, dir_fd=dst)
        elif stat.S_ISREG(st.st_mode):
            _copy_file(src, dst, name)
        elif stat.S_ISSOCK(st.st_mode):
            continue  # a socket cannot be copied; nothing would listen on it
        else:  # fifos, device nodes
            os.mknod(name, st.st_mode, st.st_rdev, dir_fd=dst)
        _copy_meta_at(st, dst, name)


def _copy_file(src: int, dst: int, name: str) -> None:
    fd_in = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src)
    try:
        fd_out = os.open(
            name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
            dir_fd=dst,
        )  # fmt: skip
        try:
            size = os.fstat(fd_in).st_size
            offset = 0
            while offset < size:
                sent = os.sendfile(fd_out, fd_in, offset, size - offset)
                if sent == 0:
                    break
                offset += sent
            _copy_xattrs(fd_in, fd_out)
        finally:
            os.close(fd_out)
    finally:
        os.close(fd_in)


def _copy_meta(st: os.stat_result, fd: int) -> None:
    """Owner, then mode (chown clears set-id bits), then times: on an open fd."""
    os.chown(fd, st.st_uid, st.st_gid)
    os.chmod(fd, stat.S_IMODE(st.st_mode))
    os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))


def _copy_meta_at(st: os.stat_result, dir_fd: int, name: str) -> None:
    os.chown(name, st.st_uid, st.st_gid, dir_fd=dir_fd, follow_symlinks=False)
    if not stat.S_ISLNK(st.st_mode):  # symlinks have no mode of their own
        os.chmod(name, stat.S_IMODE(st.st_mode), dir_fd=dir_fd)
    os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dir_fd, follow_symlinks=False)


def _copy_xattrs(fd_in: int, fd_out: int) -> None:
    try:
        names = os.listxattr(fd_in)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return
        raise
    for attr in names:
        try:
            os.setxattr(fd_out, attr, os.getxattr(fd_in, attr))
        except OSError as e:
            # tmpfs takes user.* only with a recent kernel, security.* per LSM.
            if e.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
                raise
