"""process.user: supplementary groups, gid, uid, umask; and oomScoreAdj."""

from __future__ import annotations

import posix  # not os: see ocirt/linux/syscalls.py

from ocirt.linux.procfs import write_text
from ocirt.spec import User


def switch(user: User, in_user_ns: bool = False) -> None:
    """setgroups, setresgid, setresuid: groups first, uid last (needs CAP_SETUID)."""
    # In a user namespace without a gid map writable setgroups, setgroups fails
    # with EPERM when /proc/self/setgroups says "deny"; skip empty lists then.
    if user.additional_gids or not in_user_ns:
        posix.setgroups(list(user.additional_gids))
    posix.setresgid(user.gid, user.gid, user.gid)
    posix.setresuid(user.uid, user.uid, user.uid)


def set_umask(user: User) -> None:
    posix.umask(user.umask if user.umask is not None else 0o022)


def set_oom_score_adj(value: int | None) -> None:
    if value is None:
        return
    # Checked: a mount over the file (the image's symlink as a mount
    # destination) must not take the value elsewhere (ocirt.linux.procfs).
    try:
        write_text("/proc/self/oom_score_adj", str(value))
    except OSError as e:
        # Lowering it needs CAP_SYS_RESOURCE (a kubelet's -998 for the pause
        # container, where containerd runs without it): say which write failed,
        # in runc's words (nsexec's "failed to update ..." line in its log).
        raise OSError(e.errno, f"failed to update /proc/self/oom_score_adj: {e.strerror}") from e


def home_of(uid: int, passwd: str = "/etc/passwd") -> str:
    """The home directory of UID in the container's /etc/passwd, else "/"."""
    wanted = str(uid).encode()
    try:
        with open(passwd, "rb") as f:  # bytes: no text layer for the lines we skip
            for line in f:
                fields = line.rstrip(b"\n").split(b":")
                if len(fields) >= 6 and fields[2] == wanted:
                    return fields[5].decode("utf-8", "replace") or "/"
    except OSError:
        pass
    return "/"


def process_env(env: tuple[str, ...], uid: int) -> dict[str, str]:
    """process.env as a dict, plus HOME from /etc/passwd when unset (as runc)."""
    result = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
    if "HOME" not in result:
        result["HOME"] = home_of(uid)
    return result
