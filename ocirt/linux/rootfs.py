"""The container's filesystem: mounts[], /dev, pivot_root, masked and read-only paths.

Runs in the init, inside the new mount namespace, in this order (runc's):
``prepare()`` before the createContainer hooks, ``enter()`` (pivot_root or
chroot) after them, then ``finish()`` for what is done from inside.
"""

from __future__ import annotations

import errno
import os

from ocirt.errors import OcirtError
from ocirt.linux import mountopts
from ocirt.linux import syscalls as sc
from ocirt.linux.paths import ensure_dir, ensure_file, fd_path, open_in_root
from ocirt.spec import Mount, Spec

ROOTFS_PROPAGATION = {
    "": sc.MS_SLAVE | sc.MS_REC,  # runc's default: host mounts reach us, ours never leak out
    "slave": sc.MS_SLAVE | sc.MS_REC,
    "rslave": sc.MS_SLAVE | sc.MS_REC,
    "private": sc.MS_PRIVATE | sc.MS_REC,
    "rprivate": sc.MS_PRIVATE | sc.MS_REC,
    "shared": sc.MS_SHARED | sc.MS_REC,
    "rshared": sc.MS_SHARED | sc.MS_REC,
    "unbindable": sc.MS_UNBINDABLE | sc.MS_REC,
    "runbindable": sc.MS_UNBINDABLE | sc.MS_REC,
}


class MountError(OcirtError):
    pass


def prepare(spec: Spec, bundle: str, cgroup_paths: dict[str, str]) -> tuple[int, list[str]]:
    """Mount everything into the rootfs.

    Returns an O_PATH fd of the rootfs and the tmpfs destinations whose "ro"
    is applied later by ``remount_deferred``: /dev must stay writable until
    the device nodes exist, and runc makes every read-only tmpfs read-only
    by a bind remount (read-only mount, read-write superblock).
    """
    rootfs = spec.root_path
    sc.mount(None, "/", None, ROOTFS_PROPAGATION[spec.linux.rootfs_propagation])
    # pivot_root needs the new root to be a mount point whose parent is not shared.
    sc.mount(rootfs, rootfs, None, sc.MS_BIND | sc.MS_REC)
    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    deferred: list[str] = []
    for index, m in enumerate(spec.mounts):
        try:
            if mount_one(root_fd, m, bundle, cgroup_paths):
                deferred.append(m.destination)
        except OSError as e:
            raise MountError(
                f"error mounting {m.source or m.type!r} to rootfs at {m.destination!r}"
                f" (mounts[{index}]): {e.strerror}"
            ) from e
    return root_fd, deferred


def remount_deferred(root_fd: int, destinations: list[str]) -> None:
    for destination in destinations:
        target = open_in_root(root_fd, destination, os.O_PATH)
        try:
            bind_remount(fd_path(target), sc.MS_RDONLY | _statvfs_flags(fd_path(target)))
        finally:
            os.close(target)


def mount_one(root_fd: int, m: Mount, bundle: str, cgroup_paths: dict[str, str]) -> bool:
    """Mount M; True when its read-only flag is left for ``remount_deferred``."""
    opts = mountopts.parse(m.options)
    if m.type == "bind" or opts.is_bind:
        _bind_mount(root_fd, m, opts, bundle)
    elif m.type == "cgroup":
        _mount_cgroup(root_fd, m, opts, cgroup_paths)
    else:
        target = ensure_dir(root_fd, m.destination)
        flags = opts.flags
        defer_ro = m.type == "tmpfs" and bool(flags & sc.MS_RDONLY)
        if defer_ro:
            flags &= ~sc.MS_RDONLY
        try:
            data = opts.data or None
            sc.mount(m.source or m.type, fd_path(target), m.type, flags, data)
        finally:
            os.close(target)
        _apply_after_mount(root_fd, m.destination, opts)
        return defer_ro
    return False


def _bind_source(m: Mount, bundle: str) -> str:
    return m.source if os.path.isabs(m.source) else os.path.join(bundle, m.source)


def _bind_mount(root_fd: int, m: Mount, opts: mountopts.MountOptions, bundle: str) -> None:
    source = _bind_source(m, bundle)
    source_is_dir = os.path.isdir(source)
    target = (ensure_dir if source_is_dir else ensure_file)(root_fd, m.destination)
    try:
        tree_flags = sc.OPEN_TREE_CLONE | sc.OPEN_TREE_CLOEXEC
        if opts.is_recursive_bind:
            tree_flags |= sc.AT_RECURSIVE
        tree = sc.open_tree(-100, source, tree_flags)  # AT_FDCWD
        try:
            sc.move_mount(
                tree, "", target, "", sc.MOVE_MOUNT_F_EMPTY_PATH | sc.MOVE_MOUNT_T_EMPTY_PATH
            )
        finally:
            os.close(tree)
    finally:
        os.close(target)
    remount_flags = opts.flags & ~(sc.MS_BIND | sc.MS_REC | sc.MS_REMOUNT)
    if remount_flags:
        mounted = open_in_root(root_fd, m.destination, os.O_PATH)
        try:
            bind_remount(fd_path(mounted), remount_flags)
        finally:
            os.close(mounted)
    _apply_after_mount(root_fd, m.destination, opts)


def bind_remount(path: str, flags: int) -> None:
    """Remount a bind mount with FLAGS, keeping the flags the kernel has locked."""
    try:
        sc.mount(None, path, None, sc.MS_BIND | sc.MS_REMOUNT | flags)
    except OSError as e:
        if e.errno != errno.EPERM:
            raise
        locked = _statvfs_flags(path) & mountopts.LOCKED_FLAGS
        sc.mount(None, path, None, sc.MS_BIND | sc.MS_REMOUNT | flags | locked)


def _statvfs_flags(path: str) -> int:
    st = os.statvfs(path)
    # statvfs's ST_* values equal the MS_* ones for the flags we keep.
    return st.f_flag & (sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)


def _apply_after_mount(root_fd: int, destination: str, opts: mountopts.MountOptions) -> None:
    """Recursive attributes and propagation, on the new mount (reopened: the
    fd used to mount refers to the directory underneath it)."""
    if not (opts.rec_set or opts.rec_clear or opts.propagation):
        return
    target = open_in_root(root_fd, destination, os.O_PATH)
    try:
        _apply_after(target, opts)
    finally:
        os.close(target)


def _apply_after(target: int, opts: mountopts.MountOptions) -> None:
    if opts.rec_set or opts.rec_clear:
        sc.mount_setattr(
            target, "", sc.AT_EMPTY_PATH | sc.AT_RECURSIVE, opts.rec_set, opts.rec_clear
        )
    for propagation in opts.propagation or ():
        sc.mount(None, fd_path(target), None, propagation)


def _mount_cgroup(
    root_fd: int, m: Mount, opts: mountopts.MountOptions, cgroup_paths: dict[str, str]
) -> None:
    """``type: cgroup``: cgroup2 on a v2 host, else a tmpfs of per-controller binds."""
    target = ensure_dir(root_fd, m.destination)
    try:
        if "" in cgroup_paths and len(cgroup_paths) == 1:  # pure cgroup v2
            sc.mount("cgroup2", fd_path(target), "cgroup2", opts.flags, None)
            return
        sc.mount("tmpfs", fd_path(target), "tmpfs", opts.flags & ~sc.MS_RDONLY, "mode=755")
        os.close(target)
        target = open_in_root(root_fd, m.destination, os.O_PATH | os.O_DIRECTORY)
        for mountpoint, cg_path in _v1_hierarchies(cgroup_paths):
            name = os.path.basename(mountpoint)
            sub = ensure_dir(root_fd, os.path.join(m.destination, name))
            try:
                host_dir = os.path.join(mountpoint, cg_path.lstrip("/"))
                tree = sc.open_tree(-100, host_dir, sc.OPEN_TREE_CLONE | sc.OPEN_TREE_CLOEXEC)
                try:
                    sc.move_mount(
                        tree,
                        "",
                        sub,
                        "",
                        sc.MOVE_MOUNT_F_EMPTY_PATH | sc.MOVE_MOUNT_T_EMPTY_PATH,
                    )
                finally:
                    os.close(tree)
            finally:
                os.close(sub)
            mounted = open_in_root(root_fd, os.path.join(m.destination, name))
            try:
                bind_remount(
                    fd_path(mounted), opts.flags & ~(sc.MS_BIND | sc.MS_REC | sc.MS_REMOUNT)
                )
            finally:
                os.close(mounted)
            for alias in name.split(","):  # cpu,cpuacct -> cpu and cpuacct symlinks
                if alias != name:
                    try:
                        os.symlink(name, alias, dir_fd=target)
                    except FileExistsError:
                        pass
        # runc leaves this tmpfs read-write; only the controller mounts are ro.
    finally:
        os.close(target)


def _v1_hierarchies(cgroup_paths: dict[str, str]) -> list[tuple[str, str]]:
    """(host mount point, the init's cgroup path in it) for each v1 hierarchy."""
    result = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            if fields[sep + 1] != "cgroup":
                continue
            mountpoint = fields[4]
            super_opts = fields[sep + 3].split(",")
            key = ",".join(
                o for o in super_opts if o not in ("rw", "ro") and not o.startswith("release_")
            )
            for controller_key, path in cgroup_paths.items():
                if controller_key and set(controller_key.split(",")) & set(key.split(",")):
                    result.append((mountpoint, path))
                    break
    return result


def current_cgroup_paths(pid: str = "self") -> dict[str, str]:
    """/proc/PID/cgroup as {controllers: path}; '' is the cgroup2 hierarchy."""
    paths: dict[str, str] = {}
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _hid, controllers, path = line.rstrip("\n").split(":", 2)
            paths[controllers] = path
    return paths


def enter(root_fd: int, rootfs: str, no_pivot: bool) -> None:
    """Make the rootfs our /: pivot_root, or MS_MOVE + chroot with --no-pivot."""
    if no_pivot:
        os.chdir(rootfs)
        sc.mount(rootfs, "/", None, sc.MS_MOVE)
        os.chroot(".")
        os.chdir("/")
        return
    old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fchdir(root_fd)
        # pivot_root(".", ".") stacks the old root on top of the new one; we
        # then detach it from under us without ever needing a put_old dir.
        sc.pivot_root(".", ".")
        os.fchdir(old_root)
        sc.mount(None, ".", None, sc.MS_SLAVE | sc.MS_REC)
        sc.umount2(".", sc.MNT_DETACH)
    finally:
        os.close(old_root)
    os.chdir("/")


def make_root_readonly() -> None:
    bind_remount("/", sc.MS_RDONLY)


def mask_paths(paths: tuple[str, ...]) -> None:
    """Hide PATHS: an empty read-only tmpfs over directories, /dev/null over files."""
    for path in paths:
        fd = _open_in_new_root(path)
        if fd < 0:
            continue
        try:
            if os.path.isdir(fd_path(fd)):
                sc.mount("tmpfs", fd_path(fd), "tmpfs", sc.MS_RDONLY, None)
            else:
                sc.mount("/dev/null", fd_path(fd), None, sc.MS_BIND)
        finally:
            os.close(fd)


def readonly_paths(paths: tuple[str, ...]) -> None:
    for path in paths:
        fd = _open_in_new_root(path)
        if fd < 0:
            continue
        try:
            sc.mount(fd_path(fd), fd_path(fd), None, sc.MS_BIND | sc.MS_REC)
        finally:
            os.close(fd)
        fd = _open_in_new_root(path)  # the new mount, not the directory under it
        try:
            bind_remount(fd_path(fd), sc.MS_RDONLY | _statvfs_flags(fd_path(fd)))
        finally:
            os.close(fd)


def _open_in_new_root(path: str) -> int:
    """O_PATH fd of PATH inside our (pivoted) root, or -1 if it does not exist."""
    root = os.open("/", os.O_PATH | os.O_CLOEXEC)
    try:
        return open_in_root(root, path, os.O_PATH)
    except FileNotFoundError:
        return -1
    finally:
        os.close(root)
