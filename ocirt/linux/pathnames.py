"""os.path's few functions that create's modules use, on posix alone.

Importing os costs create ~1.2 ms of CPU (_collections_abc, posixpath,
genericpath, os.environ); every module on create's way calls posix, which os
re-exports, and these for os.path.  Each answers as its os.path namesake does.
"""

from __future__ import annotations

import posix

_S_IFMT = 0o170000
_S_IFDIR = 0o040000


def normpath(path: str) -> str:
    """PATH with '.', '..' and repeated slashes resolved lexically."""
    if not path:
        return "."
    slashes = len(path) - len(path.lstrip("/"))
    root = "//" if slashes == 2 else "/" if slashes else ""  # POSIX keeps exactly two
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part != ".." or (not root and (not parts or parts[-1] == "..")):
            parts.append(part)
        elif parts:
            parts.pop()
    return root + "/".join(parts) or "."


def join(first: str, *rest: str) -> str:
    """The parts joined by '/'; an absolute part starts the path anew."""
    path = first
    for part in rest:
        if part.startswith("/"):
            path = part
        elif not path or path.endswith("/"):
            path += part
        else:
            path += "/" + part
    return path


def split(path: str) -> tuple[str, str]:
    """(the directory part, the last part) of PATH."""
    cut = path.rfind("/") + 1
    head, tail = path[:cut], path[cut:]
    if head and head.strip("/"):
        head = head.rstrip("/")  # trailing slashes go, unless the head is all slashes
    return head, tail


def dirname(path: str) -> str:
    return split(path)[0]


def basename(path: str) -> str:
    return path[path.rfind("/") + 1 :]


def isabs(path: str) -> bool:
    return path.startswith("/")


def abspath(path: str) -> str:
    return normpath(join(posix.getcwd(), path))


def relpath(path: str, start: str) -> str:
    """PATH relative to START (both made absolute first)."""
    if not path:
        raise ValueError("no path specified")
    target = [p for p in abspath(path).split("/") if p]
    base = [p for p in abspath(start).split("/") if p]
    common = 0
    while common < min(len(target), len(base)) and target[common] == base[common]:
        common += 1
    parts = [".."] * (len(base) - common) + target[common:]
    return "/".join(parts) if parts else "."


def exists(path: str) -> bool:
    try:
        posix.stat(path)
    except (OSError, ValueError):
        return False
    return True


def lexists(path: str) -> bool:
    try:
        posix.lstat(path)
    except (OSError, ValueError):
        return False
    return True


def isdir(path: str) -> bool:
    try:
        mode = posix.stat(path).st_mode
    except (OSError, ValueError):
        return False
    return mode & _S_IFMT == _S_IFDIR


def makedirs(path: str, mode: int = 0o777) -> None:
    """os.makedirs(PATH, MODE, exist_ok=True): the missing parents made with 0o777."""
    try:
        posix.mkdir(path, mode)
    except FileExistsError:
        if not isdir(path):
            raise
    except FileNotFoundError:
        parent = dirname(path.rstrip("/"))
        if not parent or parent == path:
            raise
        makedirs(parent)
        try:
            posix.mkdir(path, mode)
        except FileExistsError:
            if not isdir(path):
                raise
