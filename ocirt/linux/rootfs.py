"""The container's filesystem: mounts[], /dev, pivot_root, masked and read-only paths.

Runs in the init, inside the new mount namespace, in this order (runc's):
``prepare()`` before the createContainer hooks, ``enter()`` (pivot_root or
chroot) after them, then ``finish()`` for what is done from inside.

``lsm`` (mount labels) and ``copyup`` (tmpcopyup) are imported where they are
used: by then ``ocirt.process.init.preload`` has loaded them for a config that
needs them (the init cannot import, see ``seal_imports``); ``idmap`` is used
by the runtime itself (``source_trees``).
"""

from __future__ import annotations

import errno
import posix  # not os (~1.2 ms of imports): ocirt.linux.pathnames has os.path's few uses
import stat

from ocirt import debug
from ocirt.errors import OcirtError
from ocirt.linux import devices, mountinfo, mountopts, pathnames
from ocirt.linux import syscalls as sc
from ocirt.linux.paths import (
    clean,
    ensure_dir,
    ensure_file,
    fd_path,
    is_dir_fd,
    make_dir_in,
    open_in_root,
)
from ocirt.linux.procfs import PROC_SUPER_MAGIC
from ocirt.spec import IdMapping, Mount, Spec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

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


class MountContext:
    """What mounting one entry needs besides the entry itself."""

    __slots__ = ("bundle", "cgroup_paths", "in_cgroup_ns", "in_user_ns", "mount_label", "trees")

    def __init__(
        self,
        bundle: str,
        cgroup_paths: dict[str, str] | Callable[[], dict[str, str]],
        in_user_ns: bool = False,
        trees: dict[int, int] | None = None,
        mount_label: str = "",
    ) -> None:
        self.bundle = bundle
        self.mount_label = mount_label  # SELinux context for new filesystems, "" if none
        self.in_cgroup_ns = False
        self.cgroup_paths = cgroup_paths
        self.in_user_ns = in_user_ns
        self.trees = trees or {}  # mounts[] index -> detached idmapped tree (from the parent)


def prepare(
    spec: Spec,
    bundle: str,
    cgroup_paths: dict[str, str] | Callable[[], dict[str, str]],
    trees: dict[int, int] | None = None,
) -> tuple[int, list[str]]:
    """Mount everything into the rootfs.

    Returns an O_PATH fd of the rootfs and the tmpfs destinations whose "ro"
    is applied later by ``remount_deferred``: /dev must stay writable until
    the device nodes exist, and runc makes every read-only tmpfs read-only
    by a bind remount (read-only mount, read-write superblock).
    """
    rootfs = spec.root_path
    if spec.linux.has_new_namespace("mount"):
        _prepare_own_namespace(spec)
    elif spec.root_readonly:
        # The host's mount namespace (ocirt.linux.hostmounts): "/" and its
        # propagation are the host's and stay as they are.  Only a read-only
        # root needs a mount of its own to make read-only, not the host's.
        sc.mount(rootfs, rootfs, None, sc.MS_BIND | sc.MS_REC)
    root_fd = posix.open(rootfs, posix.O_PATH | posix.O_DIRECTORY | posix.O_CLOEXEC)
    label = ""
    if spec.linux.mount_label:
        from ocirt.linux import lsm

        label = spec.linux.mount_label if lsm.selinux_enabled() else ""
    ctx = MountContext(bundle, cgroup_paths, spec.linux.namespace("user") is not None, trees, label)
    ctx.in_cgroup_ns = spec.linux.namespace("cgroup") is not None
    deferred: list[str] = []
    for index, m in enumerate(spec.mounts):
        try:
            if mount_one(root_fd, m, ctx, index):
                deferred.append(m.destination)
            debug.log(f"init: mounted {m.type or 'bind'} {m.source or '-'} on {m.destination}")
        except OSError as e:
            raise MountError(
                f"error mounting {m.source or m.type!r} to rootfs at {m.destination!r}"
                f" (mounts[{index}]): {e.strerror}"
            ) from e
    return root_fd, deferred


def _prepare_own_namespace(spec: Spec) -> None:
    """In a new mount namespace: its propagation, and the rootfs a mount (pivot_root's rule)."""
    rootfs = spec.root_path
    propagation = ROOTFS_PROPAGATION[spec.linux.rootfs_propagation]
    if propagation & sc.MS_UNBINDABLE:
        # An unbindable tree cannot be bound (not even the rootfs onto itself,
        # nor /dev/null over masked paths): private now, unbindable at the end.
        propagation = sc.MS_PRIVATE | sc.MS_REC
    sc.mount(None, "/", None, propagation)
    if propagation & sc.MS_SHARED:
        # pivot_root refuses a new root whose parent mount is shared.
        _make_parent_mount_private(rootfs)
    sc.mount(rootfs, rootfs, None, sc.MS_BIND | sc.MS_REC)


def _make_parent_mount_private(path: str) -> None:
    """runc's rootfsParentMountPrivate: the mount holding PATH, if shared, turns private."""
    mountpoint, shared = _mount_of(path)
    if shared:
        sc.mount(None, mountpoint, None, sc.MS_PRIVATE)


def _mount_of(path: str) -> tuple[str, bool]:
    """(mount point containing PATH, whether it is shared), from mountinfo."""
    best, best_shared = "/", False
    for entry in mountinfo.read():
        point = entry.point
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, best_shared = point, entry.shared
    return best, best_shared


def remount_deferred(root_fd: int, destinations: list[str]) -> None:
    for destination in destinations:
        target = open_in_root(root_fd, destination, posix.O_PATH)
        try:
            bind_remount(fd_path(target), sc.MS_RDONLY | _statvfs_flags(fd_path(target)))
        finally:
            posix.close(target)


def mount_one(root_fd: int, m: Mount, ctx: MountContext, index: int = -1) -> bool:
    """Mount M (mounts[INDEX]); True when its read-only flag is left for ``remount_deferred``."""
    opts = mountopts.parse(m.options)
    if m.type == "bind" or opts.is_bind:
        _bind_mount(root_fd, m, opts, ctx.bundle, ctx.trees.get(index))
    elif m.type == "cgroup":
        _mount_cgroup(root_fd, m, opts, ctx)
    else:
        return _mount_filesystem(root_fd, m, opts, ctx)
    return False


def _mount_filesystem(
    root_fd: int, m: Mount, opts: mountopts.MountOptions, ctx: MountContext
) -> bool:
    """A new filesystem instance (tmpfs, proc, sysfs, overlay, ...) at M's destination."""
    # runc: a tmpfs whose options name no mode= takes the mode of the directory
    # it covers, if the image has one (one made here keeps tmpfs's 1777).
    keep_mode = m.type == "tmpfs" and not _names_mode(opts.data) and _exists(root_fd, m)
    target = _filesystem_target(root_fd, m)
    flags = opts.flags
    defer_ro = m.type == "tmpfs" and bool(flags & sc.MS_RDONLY)
    if defer_ro:
        flags &= ~sc.MS_RDONLY
    try:
        dir_mode = stat.S_IMODE(posix.fstat(target).st_mode) if keep_mode else 0
        try:
            data = opts.data
            if ctx.mount_label:
                from ocirt.linux import lsm

                data = lsm.mount_data(opts.data, ctx.mount_label)
            sc.mount(m.source or m.type, fd_path(target), m.type, flags, data or None)
        except PermissionError:
            if not (m.type == "sysfs" and ctx.in_user_ns):
                raise
            # A user namespace may mount sysfs only if it owns the network
            # namespace; runc then binds the host's /sys, read-only.
            _bind_host_sys(root_fd, target, m.destination)
            return False
        if keep_mode:
            mounted = open_in_root(root_fd, m.destination, posix.O_PATH)  # the new tmpfs
            try:
                posix.chmod(fd_path(mounted), dir_mode)
            finally:
                posix.close(mounted)
        if "tmpcopyup" in opts.extensions:
            # TARGET still names the directory under the new tmpfs: copy it up.
            from ocirt.linux import copyup

            copyup.copy_up(target, open_in_root(root_fd, m.destination, posix.O_PATH))
    finally:
        posix.close(target)
    _apply_after_mount(root_fd, m.destination, opts)
    return defer_ro


def _names_mode(data: str | None) -> bool:
    return any(option.startswith("mode=") for option in (data or "").split(","))


def _exists(root_fd: int, m: Mount) -> bool:
    try:
        posix.close(open_in_root(root_fd, m.destination, posix.O_PATH))
    except FileNotFoundError:
        return False
    return True


def _bind_host_sys(root_fd: int, target: int, destination: str) -> None:
    sc.mount("/sys", fd_path(target), None, sc.MS_BIND | sc.MS_REC)
    mounted = open_in_root(root_fd, destination, posix.O_PATH)  # the bind, not the dir under it
    try:
        bind_remount(fd_path(mounted), sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)
    finally:
        posix.close(mounted)


def _bind_source(m: Mount, bundle: str) -> str:
    return m.source if pathnames.isabs(m.source) else pathnames.join(bundle, m.source)


def _bind_mount(
    root_fd: int,
    m: Mount,
    opts: mountopts.MountOptions,
    bundle: str,
    tree: int | None = None,
) -> None:
    """Bind M's source; TREE is the detached copy the parent made, if any
    (``source_trees``: its flags are set already).

    The copy gets its flags and recursive attributes while it is still
    detached, then is moved onto the fd of the destination: nothing is looked
    up by path after the mount (a volume another container shares can swap a
    directory on the way for a symlink at any moment: a read-only flag applied
    by path would land elsewhere and leave this mount writable)."""
    source = _bind_source(m, bundle)
    if tree is not None:  # the source may be out of our reach (a user namespace)
        source_is_dir = stat.S_ISDIR(posix.fstat(tree).st_mode)
    else:
        source_is_dir = pathnames.isdir(source)
    _refuse_proc_destination(root_fd, m)
    target = (ensure_dir if source_is_dir else ensure_file)(root_fd, m.destination)
    try:
        _refuse_proc_target(root_fd, target, m)
        own_tree = tree is None
        if own_tree:
            tree = clone_tree(source, opts.is_recursive_bind)
        try:
            if own_tree:
                _set_tree_attrs(tree, opts)
            sc.move_mount(
                tree, "", target, "", sc.MOVE_MOUNT_F_EMPTY_PATH | sc.MOVE_MOUNT_T_EMPTY_PATH
            )
        finally:
            if own_tree:
                posix.close(tree)
    finally:
        posix.close(target)
    if opts.propagation:
        # Propagation only on the attached mount, reopened: a swap can at
        # worst make some other mount of the container shared or slave.
        mounted = open_in_root(root_fd, m.destination, posix.O_PATH)
        try:
            for propagation in opts.propagation:
                sc.mount(None, fd_path(mounted), None, propagation)
        finally:
            posix.close(mounted)


def _set_tree_attrs(tree: int, opts: mountopts.MountOptions) -> None:
    """What a bind remount with OPTS's flags, then mount_setattr(AT_RECURSIVE)
    with its recursive attributes, would do to the mount, done on the detached TREE."""
    remount_flags = opts.flags & ~(sc.MS_BIND | sc.MS_REC | sc.MS_REMOUNT)
    if remount_flags:
        attr_set, attr_clr = _mount_attrs(remount_flags)
        # A bind remount sets or clears nosymfollow too (the cgroup binds never name it).
        if remount_flags & sc.MS_NOSYMFOLLOW:
            attr_set |= sc.MOUNT_ATTR_NOSYMFOLLOW
        else:
            attr_clr |= sc.MOUNT_ATTR_NOSYMFOLLOW
        try:
            sc.mount_setattr(tree, "", sc.AT_EMPTY_PATH, attr_set, attr_clr)
        except PermissionError:
            # In a user namespace the kernel locks the flags the source mount
            # has: keep them all (bind_remount keeps the locked ones).
            sc.mount_setattr(tree, "", sc.AT_EMPTY_PATH, attr_set, 0)
    if opts.rec_set or opts.rec_clear:
        flags = sc.AT_EMPTY_PATH | sc.AT_RECURSIVE
        sc.mount_setattr(tree, "", flags, opts.rec_set, opts.rec_clear)


# Files under /proc a bind may cover: what lxcfs emulates (runc's list too).
PROC_FILES_BINDABLE = frozenset(
    {"cpuinfo", "diskstats", "meminfo", "stat", "swaps", "uptime", "loadavg", "slabinfo"}
    | {"net/dev", "sys/kernel/ns_last_pid"}
)


def _filesystem_target(root_fd: int, m: Mount) -> int:
    """O_PATH fd of the directory a new filesystem M is mounted on, made if missing.

    proc and sysfs only on a directory reached without a symlink (runc's
    rule, CVE-2019-19921 and its regression CVE-2023-27561): an image whose
    /proc is a symlink into a volume another container shares would get its
    procfs on a directory that container can rename away, and put a fake in
    its place before the runtime masks, protects and writes /proc.
    """
    _refuse_proc_destination(root_fd, m)
    if m.type in ("proc", "sysfs"):
        resolve = sc.RESOLVE_IN_ROOT | sc.RESOLVE_NO_SYMLINKS
        flags = posix.O_PATH | posix.O_DIRECTORY | posix.O_CLOEXEC
        try:
            return sc.openat2(root_fd, clean(m.destination), flags, 0, resolve)
        except FileNotFoundError:
            pass  # made below, by ensure_dir, from fds (and without a symlink at the end)
        except OSError as e:
            if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            raise OSError(
                e.errno, f'filesystem "{m.type}" must be mounted on ordinary directory'
            ) from None
    target = ensure_dir(root_fd, m.destination)
    try:
        _refuse_proc_target(root_fd, target, m)
    except BaseException:
        posix.close(target)
        raise
    return target


def _refuse_proc_destination(root_fd: int, m: Mount) -> None:
    """runc's rule for /proc, on the destination as written: only procfs on
    /proc, and under it only binds over ``PROC_FILES_BINDABLE`` (CVE-2019-16884:
    a volume over /proc takes the runtime's writes to it, an LSM label, sysctls)."""
    relative = clean(m.destination)
    if relative == "proc" or relative.startswith("proc/"):
        _judge_in_proc(root_fd, relative, relative[5:], m)


def _refuse_proc_target(root_fd: int, target: int, m: Mount) -> None:
    """The same rule, on the fd the mount lands on: the destination may have
    reached procfs through a symlink, or a racing container's swap."""
    if sc.fstatfs_type(target) != PROC_SUPER_MAGIC:
        return
    where = posix.readlink(fd_path(target))  # the host's /proc still: we have not pivoted
    root = posix.readlink(fd_path(root_fd))
    relative = where[len(root) :].lstrip("/") if where.startswith(root + "/") else where
    # Any procfs mount counts, wherever it is: only the one at /proc has its
    # files named by PROC_FILES_BINDABLE.
    inside = relative[5:] if relative == "proc" or relative.startswith("proc/") else relative
    _judge_in_proc(root_fd, relative, inside, m)


def _judge_in_proc(root_fd: int, relative: str, inside: str, m: Mount) -> None:
    """Refuse M, whose destination RELATIVE to the root is INSIDE ("" for /proc
    itself) the container's /proc."""
    if inside == "" and m.type == "proc":
        return
    if inside in PROC_FILES_BINDABLE and m.type != "proc":
        return
    shown = pathnames.join(posix.readlink(fd_path(root_fd)), relative)
    if inside == "":
        raise OSError(errno.EPERM, f'"{shown}" cannot be mounted because it is not of type proc')
    raise OSError(errno.EPERM, f'"{shown}" cannot be mounted because it is inside /proc')


def clone_tree(source: str, recursive: bool) -> int:
    """A detached copy of the mount tree at SOURCE (open_tree(OPEN_TREE_CLONE))."""
    flags = sc.OPEN_TREE_CLONE | sc.OPEN_TREE_CLOEXEC
    if recursive:
        flags |= sc.AT_RECURSIVE
    return sc.open_tree(-100, source, flags)  # AT_FDCWD


def wants_idmap(m: Mount) -> bool:
    return bool({"idmap", "ridmap"} & set(m.options)) or bool(m.uid_mappings or m.gid_mappings)


def source_trees(spec: Spec, bundle: str, all_binds: bool = False) -> dict[int, int]:
    """Detached copies of bind sources made in ``ocirt create`` before clone(),
    in the host's namespaces, with their flags set: {mounts[] index: tree}.

    Those with idmap/ridmap: the kernel lets only a caller privileged over the
    source filesystem's owner (the initial user namespace, for host
    filesystems) idmap a mount; a mount without its own mappings takes the
    container's (runc's rule).  With ALL_BINDS (a container with a user
    namespace of its own, created as root) every bind's: its root, a mapped
    uid, may not reach a source under a 0700 host directory, and runc too
    opens the sources outside the container's user namespace.  The init
    move_mount()s each tree into place.
    """
    trees: dict[int, int] = {}
    try:
        for index, m in enumerate(spec.mounts):
            if wants_idmap(m):
                trees[index] = _idmapped_tree(spec, bundle, index, m)
            elif all_binds and (m.type == "bind" or mountopts.parse(m.options).is_bind):
                trees[index] = _host_tree(bundle, index, m)
            else:
                continue
            _set_tree_attrs(trees[index], mountopts.parse(m.options))
    except BaseException:
        for fd in trees.values():
            posix.close(fd)
        raise
    return trees


def _host_tree(bundle: str, index: int, m: Mount) -> int:
    source = _bind_source(m, bundle)
    try:
        return clone_tree(source, mountopts.parse(m.options).is_recursive_bind)
    except OSError as e:
        raise MountError(
            f"error mounting {source!r} to rootfs at {m.destination!r} (mounts[{index}]):"
            f" {e.strerror}"
        ) from e


def _idmapped_tree(spec: Spec, bundle: str, index: int, m: Mount) -> int:
    uid_maps, gid_maps = _mount_maps(m, spec)
    recursive = "ridmap" in m.options
    source = _bind_source(m, bundle)
    try:
        tree = clone_tree(source, recursive or mountopts.parse(m.options).is_recursive_bind)
        try:
            from ocirt.linux import idmap

            userns = idmap.userns_fd(uid_maps, gid_maps)
            try:
                flags = sc.AT_EMPTY_PATH | (sc.AT_RECURSIVE if recursive else 0)
                sc.mount_setattr(tree, "", flags, sc.MOUNT_ATTR_IDMAP, userns_fd=userns)
            finally:
                posix.close(userns)
        except BaseException:
            posix.close(tree)
            raise
    except OSError as e:
        raise MountError(
            f"config.json: mounts[{index}]: cannot make an idmapped mount of {source}"
            f" for {m.destination}: {e.strerror}"
        ) from e
    return tree


def _mount_maps(m: Mount, spec: Spec) -> tuple[tuple[IdMapping, ...], tuple[IdMapping, ...]]:
    uid = tuple(IdMapping.from_dict(x) for x in m.uid_mappings) or spec.linux.uid_mappings
    gid = tuple(IdMapping.from_dict(x) for x in m.gid_mappings) or spec.linux.gid_mappings
    return uid, gid


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
    st = posix.statvfs(path)
    # statvfs's ST_* values equal the MS_* ones for the flags we keep.
    return st.f_flag & (sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)


def _apply_after_mount(root_fd: int, destination: str, opts: mountopts.MountOptions) -> None:
    """Recursive attributes and propagation, on the new mount (reopened: the
    fd used to mount refers to the directory underneath it)."""
    if not (opts.rec_set or opts.rec_clear or opts.propagation):
        return
    target = open_in_root(root_fd, destination, posix.O_PATH)
    try:
        _apply_after(target, opts)
    finally:
        posix.close(target)


def _apply_after(target: int, opts: mountopts.MountOptions) -> None:
    if opts.rec_set or opts.rec_clear:
        sc.mount_setattr(
            target, "", sc.AT_EMPTY_PATH | sc.AT_RECURSIVE, opts.rec_set, opts.rec_clear
        )
    for propagation in opts.propagation or ():
        sc.mount(None, fd_path(target), None, propagation)


def _mount_cgroup(root_fd: int, m: Mount, opts: mountopts.MountOptions, ctx: MountContext) -> None:
    """``type: cgroup``: cgroup2 on a v2 host, else a tmpfs with one mount per hierarchy.

    Each v1 hierarchy is a bind of the init's own cgroup directory, or, in a
    cgroup namespace, a fresh mount of the hierarchy (its root is then the
    namespace's root: a bind would show the host's whole tree), as runc does.
    """
    # A callable waits until the init is in its cgroup (process/init.py's CgroupGate).
    cgroup_paths = ctx.cgroup_paths() if callable(ctx.cgroup_paths) else ctx.cgroup_paths
    target = _filesystem_target(root_fd, m)
    try:
        if "" in cgroup_paths and len(cgroup_paths) == 1:  # pure cgroup v2
            sc.mount("cgroup2", fd_path(target), "cgroup2", opts.flags, None)
            return
        # runc's flags for it whatever the mount's options (its defaultMountFlags).
        holder_flags = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC
        sc.mount("tmpfs", fd_path(target), "tmpfs", holder_flags, "mode=755")
        posix.close(target)
        target = open_in_root(root_fd, m.destination, posix.O_PATH | posix.O_DIRECTORY)
        flags = opts.flags & ~(sc.MS_BIND | sc.MS_REC | sc.MS_REMOUNT)
        for mountpoint, cg_path, key in _v1_hierarchies(cgroup_paths):
            name = pathnames.basename(mountpoint)
            sub = make_dir_in(target, name)  # in the tmpfs just mounted: nothing is there
            try:
                if ctx.in_cgroup_ns:
                    source = key[5:] if key.startswith("name=") else "cgroup"
                    sc.mount(
                        source,
                        fd_path(sub),
                        "cgroup",
                        sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC,
                        key,
                    )
                else:
                    # Private and read-only before it is attached: a clone keeps
                    # the host mount's peer group, and runc's are private.
                    _bind_tree(pathnames.join(mountpoint, cg_path.lstrip("/")), sub, flags)
                    _link_joint_controllers(target, name)
                    continue
            finally:
                posix.close(sub)
            mounted = open_in_root(root_fd, pathnames.join(m.destination, name))
            try:
                sc.mount(None, fd_path(mounted), None, sc.MS_PRIVATE)
                bind_remount(fd_path(mounted), flags)
            finally:
                posix.close(mounted)
            _link_joint_controllers(target, name)
        # runc leaves this tmpfs read-write; only the controller mounts are ro.
    finally:
        posix.close(target)


def _link_joint_controllers(holder: int, name: str) -> None:
    """A hierarchy of joint controllers (cpu,cpuacct) is also reached by each
    controller's name, as runc links them: programs read /sys/fs/cgroup/cpu/."""
    for alias in name.split(","):
        if alias != name:
            try:
                posix.symlink(name, alias, dir_fd=holder)
            except FileExistsError:
                pass


def _bind_tree(source: str, target: int, flags: int | None = None) -> None:
    """A clone of SOURCE's mount on TARGET.  With FLAGS (MS_*), the clone is made
    private and given them, as a bind remount would, before it is attached."""
    tree = sc.open_tree(-100, source, sc.OPEN_TREE_CLONE | sc.OPEN_TREE_CLOEXEC)
    try:
        if flags is not None:
            attr_set, attr_clr = _mount_attrs(flags)
            try:
                sc.mount_setattr(tree, "", sc.AT_EMPTY_PATH, attr_set, attr_clr, sc.MS_PRIVATE)
            except PermissionError:
                # In a user namespace the kernel locks the flags the host mount
                # has: keep them all (bind_remount keeps the locked ones).
                sc.mount_setattr(tree, "", sc.AT_EMPTY_PATH, attr_set, 0, sc.MS_PRIVATE)
        sc.move_mount(tree, "", target, "", sc.MOVE_MOUNT_F_EMPTY_PATH | sc.MOVE_MOUNT_T_EMPTY_PATH)
    finally:
        posix.close(tree)


# mount(2) flags and their mount_setattr(2) attributes.
_ATTRS = (
    (sc.MS_RDONLY, sc.MOUNT_ATTR_RDONLY),
    (sc.MS_NOSUID, sc.MOUNT_ATTR_NOSUID),
    (sc.MS_NODEV, sc.MOUNT_ATTR_NODEV),
    (sc.MS_NOEXEC, sc.MOUNT_ATTR_NOEXEC),
    (sc.MS_NODIRATIME, sc.MOUNT_ATTR_NODIRATIME),
)
_ATIMES = ((sc.MS_NOATIME, sc.MOUNT_ATTR_NOATIME), (sc.MS_STRICTATIME, sc.MOUNT_ATTR_STRICTATIME))


def _mount_attrs(flags: int) -> tuple[int, int]:
    """MS_* FLAGS as mount_setattr's (attr_set, attr_clr): what a bind remount with
    FLAGS leaves, the flags it names set and the others cleared."""
    attr_set = sum(attr for ms, attr in _ATTRS if flags & ms)
    attr_clr = sum(attr for ms, attr in _ATTRS if not flags & ms)
    attr_clr |= sc.MOUNT_ATTR__ATIME  # one atime mode replaces another; relatime is 0
    attr_set |= next((attr for ms, attr in _ATIMES if flags & ms), sc.MOUNT_ATTR_RELATIME)
    return attr_set, attr_clr


def _v1_hierarchies(cgroup_paths: dict[str, str]) -> list[tuple[str, str, str]]:
    """(host mount point, the init's cgroup path in it, controllers) per v1 hierarchy.

    Only the first mount of each hierarchy counts: later ones may be copies
    inside the rootfs (a /sys bound from the host, in a user namespace).
    """
    result = []
    seen: set[str] = set()
    for mount in mountinfo.read():
        if mount.fs_type != "cgroup":
            continue
        super_opts = mount.super_options.split(",")
        key = ",".join(
            o for o in super_opts if o not in ("rw", "ro") and not o.startswith("release_")
        )
        if key in seen:
            continue
        seen.add(key)
        for controller_key, path in cgroup_paths.items():
            if controller_key and set(controller_key.split(",")) & set(key.split(",")):
                result.append((mount.point, path, key))
                break
    return result


def enter(root_fd: int, rootfs: str, no_pivot: bool, new_mount_ns: bool = True) -> None:
    """Make the rootfs our /: pivot_root, or MS_MOVE + chroot with --no-pivot.

    Without a mount namespace of our own, chroot only: pivot_root or a move
    onto "/" would change the root of everything that shares it, the host.
    """
    if not new_mount_ns:
        posix.fchdir(root_fd)
        posix.chroot(".")
        posix.chdir("/")
        return
    if no_pivot:
        posix.chdir(rootfs)
        sc.mount(rootfs, "/", None, sc.MS_MOVE)
        posix.chroot(".")
        posix.chdir("/")
        return
    old_root = posix.open("/", posix.O_DIRECTORY | posix.O_RDONLY | posix.O_CLOEXEC)
    try:
        posix.fchdir(root_fd)
        # pivot_root(".", ".") stacks the old root on top of the new one; we
        # then detach it from under us without ever needing a put_old dir.
        sc.pivot_root(".", ".")
        posix.fchdir(old_root)
        sc.mount(None, ".", None, sc.MS_SLAVE | sc.MS_REC)
        sc.umount2(".", sc.MNT_DETACH)
    finally:
        posix.close(old_root)
    posix.chdir("/")


def finish_propagation(spec: Spec) -> None:
    """The last step of the rootfs: "/" shared or unbindable when rootfsPropagation asks.

    Both had to wait: pivot_root refuses a shared parent, and an unbindable
    tree cannot be bound.  A shared root is a new peer group (``shared:N``
    in the container's mountinfo), as crun makes it; slave and private were
    set at the start (``_prepare_own_namespace``) and the bind keeps them.
    """
    if not spec.linux.has_new_namespace("mount"):
        return  # the mount namespace is not ours (see enter)
    propagation = ROOTFS_PROPAGATION[spec.linux.rootfs_propagation]
    if propagation & sc.MS_SHARED and spec.linux.rootfs_propagation != "rshared":
        propagation &= ~sc.MS_REC  # "/" alone, as crun: the mounts below stay private
    if propagation & (sc.MS_SHARED | sc.MS_UNBINDABLE):
        sc.mount(None, "/", None, propagation)


def make_root_readonly() -> None:
    bind_remount("/", sc.MS_RDONLY)


def mask_paths(paths: tuple[str, ...]) -> None:
    """Hide PATHS: an empty read-only tmpfs over directories, /dev/null over files."""
    _for_each_present(paths, _mask)


def readonly_paths(paths: tuple[str, ...]) -> None:
    _for_each_present(paths, _make_readonly)


def _mask(root_fd: int, path: str, fd: int) -> None:
    if is_dir_fd(fd):
        _mount_empty_tmpfs_over(fd)
        return
    # From the container's /dev/null checked through an fd, bound fd to fd
    # (CVE-2025-31133: a /dev/null replaced by a symlink must not be followed).
    null = devices.open_null(root_fd)
    try:
        devices.bind_fd_over(null, fd)
    finally:
        posix.close(null)


def _mount_empty_tmpfs_over(target: int) -> None:
    """An empty read-only tmpfs over the directory fd TARGET, made detached and
    moved onto the fd: no /proc/self/fd path (we have pivoted, /proc is the
    container's and, without a procfs mount, the image's own: its fake
    self/fd/N symlinks would put the mask anywhere and leave the path bare)."""
    context = sc.fsopen("tmpfs")
    try:
        sc.fsconfig(context, sc.FSCONFIG_SET_STRING, "source", "tmpfs")  # as mount(2) shows it
        sc.fsconfig(context, sc.FSCONFIG_SET_FLAG, "ro")
        sc.fsconfig(context, sc.FSCONFIG_CMD_CREATE)
        mount = sc.fsmount(context, sc.MOUNT_ATTR_RDONLY)
    finally:
        posix.close(context)
    try:
        sc.move_mount(
            mount, "", target, "", sc.MOVE_MOUNT_F_EMPTY_PATH | sc.MOVE_MOUNT_T_EMPTY_PATH
        )
    finally:
        posix.close(mount)


def _make_readonly(root_fd: int, path: str, fd: int) -> None:
    """A read-only bind of PATH onto itself, made from its fd: no path is looked up
    again (a /proc/self/fd or a symlink swapped meanwhile would put the
    read-only copy elsewhere and leave PATH writable).  As runc: the top
    mount read-only, its other flags kept (mount_setattr changes only that)."""
    devices.bind_fd_over(fd, fd, recursive=True, attr_set=sc.MOUNT_ATTR_RDONLY)


def _for_each_present(paths: tuple[str, ...], action: Callable[[int, str, int], None]) -> None:
    """ACTION(root fd, path, O_PATH fd of it) for each of PATHS that exists in our
    (pivoted) root, looked up inside it from one fd of it."""
    root = posix.open("/", posix.O_PATH | posix.O_CLOEXEC)
    try:
        for path in paths:
            try:
                fd = open_in_root(root, path, posix.O_PATH)
            except FileNotFoundError:
                continue
            try:
                action(root, path, fd)
            finally:
                posix.close(fd)
    finally:
        posix.close(root)
