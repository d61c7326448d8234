"""/proc/PID/mountinfo, parsed into one typed record.

The format (proc(5)): ``ID PARENT MAJ:MIN ROOT POINT OPTIONS [OPTIONAL...] -
FSTYPE SOURCE SUPER_OPTIONS``; ROOT, POINT and SOURCE escape space, tab,
newline and backslash as octal.
"""

from __future__ import annotations

from ocirt.linux.procfs import read_text


class MountEntry:
    """One line of mountinfo."""

    __slots__ = ("fs_type", "mount_id", "optional", "parent_id", "point", "root", "source",
                 "super_options")  # fmt: skip

    def __init__(self, line: str) -> None:
        left, _, right = line.partition(" - ")
        fields = left.split()
        right_fields = right.split()
        self.mount_id = int(fields[0])
        self.parent_id = int(fields[1])
        self.root = unescape(fields[3])
        self.point = unescape(fields[4])
        self.optional = tuple(fields[6:])  # shared:N, master:N, propagate_from:N, unbindable
        self.fs_type = right_fields[0] if right_fields else ""
        self.source = unescape(right_fields[1]) if len(right_fields) > 1 else ""
        self.super_options = right_fields[2] if len(right_fields) > 2 else ""

    @property
    def shared(self) -> bool:
        return any(o.startswith("shared:") for o in self.optional)

    def is_at_or_under(self, path: str) -> bool:
        """Whether the mount point is PATH (absolute, no trailing slash) or below it."""
        return self.point == path or self.point.startswith(path.rstrip("/") + "/")


def read(pid: int | str = "self") -> list[MountEntry]:
    return [MountEntry(line) for line in read_text(f"/proc/{pid}/mountinfo").splitlines()]


def unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal."""
    if "\\" not in field:
        return field
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field
