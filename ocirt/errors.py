"""Errors raised by the ocirt library.

The library never prints or exits: it raises these, and the CLI turns them into
runc's stderr line, the ``--log`` record and exit status 1.  Messages follow
runc's wording where container managers string-match them (see
``../shared/reference/contract.md``): "container does not exist",
"container not running", "no such process", "permission denied".

One hierarchy: every error the library raises is an ``OcirtError``.  Here
are the ones a caller may want to tell apart (a missing or existing
container, a config that is wrong, a failed exec, a cgroup operation); the
modules below the API subclass ``OcirtError`` for their own failures
(``MountError``, ``SeccompError``, ``HookError``...), whose message is the
sentence to show.  ``exit_code`` is the status runc exits with for it.

No ``from __future__ import annotations``: the short commands import this
module, and that would be one more import (see ocirt.record).
"""


def lower_first(text: str | None) -> str:
    """An strerror as Go (and so runc) spells it: lower case first."""
    text = text or ""
    return text[:1].lower() + text[1:]


class OcirtError(Exception):
    """A failure to report to the user as one sentence."""

    exit_code = 1


class ConfigError(OcirtError):
    """config.json (or another input file) is wrong.

    The message names the file, the field as a dotted JSON path, what is wrong
    and, where there is one, the fix:
    ``config.json: process.user.uid: 'x' is not of type 'integer'``.
    """

    def __init__(self, filename: str, json_path: str, problem: str, fix: str = "") -> None:
        self.filename = filename
        self.json_path = json_path
        self.problem = problem
        self.fix = fix
        where = f"{filename}: {json_path}: " if json_path else f"{filename}: "
        super().__init__(where + problem + (f" ({fix})" if fix else ""))


class ContainerNotExist(OcirtError):
    def __init__(self, container_id: str) -> None:
        super().__init__("container does not exist")
        self.container_id = container_id


class ContainerExists(OcirtError):
    def __init__(self, container_id: str) -> None:
        super().__init__(f"container with id exists: {container_id}")


class ContainerNotRunning(OcirtError):
    def __init__(self) -> None:
        super().__init__("container not running")


class CreateError(OcirtError):
    """create could not make the container (nothing of it is left)."""


class ExecError(OcirtError):
    """Any failure of exec: the CLI prints "exec failed: ..." and exits 255."""

    exit_code = 255


class ExecInterrupted(ExecError):
    """SIGTERM or SIGINT while the process was being set up (``forward_signals``)."""


class CgroupError(OcirtError):
    """A cgroup operation failed; the message names the file and the reason."""

    def __init__(self, message: str, err: int = 0) -> None:
        super().__init__(message)
        self.errno = err
