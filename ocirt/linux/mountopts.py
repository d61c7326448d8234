"""config.json mount options -> mount(2) flags, propagation and fs data.

The table follows the runtime-spec's Linux mount options; whatever it does
not know is passed to the filesystem as data (``size=64m``, ``mode=755``).
"""

from __future__ import annotations

from ocirt.linux import syscalls as sc

# option -> (clear?, flag): "clear" options undo a flag (rw, suid, dev...).
FLAGS: dict[str, tuple[bool, int]] = {
    "ro": (False, sc.MS_RDONLY),
    "rw": (True, sc.MS_RDONLY),
    "nosuid": (False, sc.MS_NOSUID),
    "suid": (True, sc.MS_NOSUID),
    "nodev": (False, sc.MS_NODEV),
    "dev": (True, sc.MS_NODEV),
    "noexec": (False, sc.MS_NOEXEC),
    "exec": (True, sc.MS_NOEXEC),
    "sync": (False, sc.MS_SYNCHRONOUS),
    "async": (True, sc.MS_SYNCHRONOUS),
    "dirsync": (False, sc.MS_DIRSYNC),
    "remount": (False, sc.MS_REMOUNT),
    "mand": (False, sc.MS_MANDLOCK),
    "nomand": (True, sc.MS_MANDLOCK),
    "atime": (True, sc.MS_NOATIME),
    "noatime": (False, sc.MS_NOATIME),
    "diratime": (True, sc.MS_NODIRATIME),
    "nodiratime": (False, sc.MS_NODIRATIME),
    "relatime": (False, sc.MS_RELATIME),
    "norelatime": (True, sc.MS_RELATIME),
    "strictatime": (False, sc.MS_STRICTATIME),
    "nostrictatime": (True, sc.MS_STRICTATIME),
    "lazytime": (False, sc.MS_LAZYTIME),
    "nolazytime": (True, sc.MS_LAZYTIME),
    "iversion": (False, sc.MS_I_VERSION),
    "noiversion": (True, sc.MS_I_VERSION),
    "silent": (False, sc.MS_SILENT),
    "loud": (True, sc.MS_SILENT),
    "nosymfollow": (False, sc.MS_NOSYMFOLLOW),
    "symfollow": (True, sc.MS_NOSYMFOLLOW),
    "bind": (False, sc.MS_BIND),
    "rbind": (False, sc.MS_BIND | sc.MS_REC),
}

PROPAGATION: dict[str, int] = {
    "private": sc.MS_PRIVATE,
    "rprivate": sc.MS_PRIVATE | sc.MS_REC,
    "shared": sc.MS_SHARED,
    "rshared": sc.MS_SHARED | sc.MS_REC,
    "slave": sc.MS_SLAVE,
    "rslave": sc.MS_SLAVE | sc.MS_REC,
    "unbindable": sc.MS_UNBINDABLE,
    "runbindable": sc.MS_UNBINDABLE | sc.MS_REC,
}

# Recursive mount attributes (mount_setattr(AT_RECURSIVE)): option -> (clear?, attr).
RECURSIVE_ATTRS: dict[str, tuple[bool, int]] = {
    "rro": (False, sc.MOUNT_ATTR_RDONLY),
    "rrw": (True, sc.MOUNT_ATTR_RDONLY),
    "rnosuid": (False, sc.MOUNT_ATTR_NOSUID),
    "rsuid": (True, sc.MOUNT_ATTR_NOSUID),
    "rnodev": (False, sc.MOUNT_ATTR_NODEV),
    "rdev": (True, sc.MOUNT_ATTR_NODEV),
    "rnoexec": (False, sc.MOUNT_ATTR_NOEXEC),
    "rexec": (True, sc.MOUNT_ATTR_NOEXEC),
    "rnodiratime": (False, sc.MOUNT_ATTR_NODIRATIME),
    "rdiratime": (True, sc.MOUNT_ATTR_NODIRATIME),
    "rnosymfollow": (False, sc.MOUNT_ATTR_NOSYMFOLLOW),
    "rsymfollow": (True, sc.MOUNT_ATTR_NOSYMFOLLOW),
}
# Options ocirt acts on itself rather than passing to the kernel.
EXTENSIONS = {"tmpcopyup", "idmap", "ridmap"}

# The flags a bind remount must keep when the kernel locked them (user ns).
LOCKED_FLAGS = sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC


class MountOptions:
    """One mount's options, sorted by what acts on them."""

    __slots__ = ("data", "extensions", "flags", "propagation", "rec_clear", "rec_set")

    def __init__(self) -> None:
        self.flags = 0  # mount(2) flags
        self.propagation: list[int] = []  # applied one by one after the mount
        self.rec_set = 0  # mount_setattr(AT_RECURSIVE) attributes
        self.rec_clear = 0
        self.data = ""  # filesystem-specific, comma-joined
        self.extensions: frozenset[str] = frozenset()  # ours: tmpcopyup, idmap

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & sc.MS_BIND)

    @property
    def is_recursive_bind(self) -> bool:
        return bool(self.flags & sc.MS_REC)


def parse(options: tuple[str, ...] | list[str]) -> MountOptions:
    result = MountOptions()
    data: list[str] = []
    ext: set[str] = set()
    for opt in options:
        if opt in FLAGS:
            clear, flag = FLAGS[opt]
            result.flags = (result.flags & ~flag) if clear else (result.flags | flag)
        elif opt in PROPAGATION:
            result.propagation.append(PROPAGATION[opt])
        elif opt in RECURSIVE_ATTRS:
            clear, attr = RECURSIVE_ATTRS[opt]
            if clear:
                result.rec_clear |= attr
            else:
                result.rec_set |= attr
        elif opt in EXTENSIONS:
            ext.add(opt)
        else:
            data.append(opt)
    result.data = ",".join(data)
    result.extensions = frozenset(ext)
    return result
