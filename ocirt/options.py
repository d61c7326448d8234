"""The API's option records: what ``create``, ``exec`` and ``update`` take.

``CreateOptions`` and ``ExecOptions`` carry runc's flags of those commands
under Python names (the CLI builds them from its flags, a program builds
them directly); ``Resources`` is a runtime-spec ``linux.resources`` object
for ``Container.update``.  All are read-only records (``replace()`` makes a
changed copy).  Imported by ``create``, ``exec`` and ``update`` only, never
by the short commands (``os``).
"""

from __future__ import annotations

import posix  # not os: exec, a probe, imports none of it (~1.5 ms)

from ocirt.errors import ExecError, OcirtError
from ocirt.spec import _REQUIRED, _Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class CreateOptions(_Record):
    """create's flags (runc's): the bundle and how to hand the container over.

    ``bundle``: the directory holding config.json; ``pid_file``: where to
    write the init's pid; ``console_socket``: an AF_UNIX socket that receives
    the pty master when the process has ``terminal: true``; ``preserve_fds``:
    how many fds above 2 the container's process inherits; ``rootless`` and
    ``systemd_cgroup``: runc's global flags of those names.
    """

    __slots__ = (
        "bundle", "pid_file", "console_socket", "no_pivot", "no_new_keyring",
        "preserve_fds", "rootless", "systemd_cgroup",
    )  # fmt: skip
    _fields = {
        "bundle": _REQUIRED,
        "pid_file": "",
        "console_socket": "",
        "no_pivot": False,
        "no_new_keyring": False,
        "preserve_fds": 0,
        "rootless": False,
        "systemd_cgroup": False,
    }

    @classmethod
    def from_flags(
        cls, values: dict[str, Any], *, rootless: bool, systemd_cgroup: bool
    ) -> CreateOptions:
        """From the values of create's (and run's) flags, keyed as ocirt/cli/create.py's
        FLAGS (``preserve_fds`` already an int); no bundle means the current directory."""
        return cls(
            bundle=values["bundle"] or posix.getcwd(),
            pid_file=values["pid_file"] or "",
            console_socket=values["console_socket"] or "",
            no_pivot=bool(values["no_pivot"]),
            no_new_keyring=bool(values["no_new_keyring"]),
            preserve_fds=values["preserve_fds"],
            rootless=rootless,
            systemd_cgroup=systemd_cgroup,
        )


class ExecOptions(_Record):
    """One more process in a running container (``Container.exec``).

    The process is, first found: ``process`` (a runtime-spec process object,
    as ``exec -p`` reads), the file ``process_file`` holds, or the
    container's own process with ``args`` and the overrides below (runc's
    exec flags: ``cwd``, ``env`` added, ``user`` "uid[:gid]",
    ``additional_gids``, ``caps`` added to the bounding, effective,
    permitted and ambient sets, ``no_new_privs``, ``apparmor``,
    ``process_label``, ``tty``).

    How it is handed over: ``console_socket`` (receives the pty master;
    only with ``tty`` and ``detach``), ``pid_file``, ``preserve_fds``,
    ``cgroup`` (runc's ``--cgroup [<controllers>:]<path>``, a sub-cgroup of
    the container's), ``ignore_paused``.  ``stdin``/``stdout``/``stderr``:
    fds of ours the process gets as 0, 1 and 2 (-1: it inherits ours).
    ``detach``: nobody waits in the foreground (the process may still be
    waited for: it is our child).  ``forward_signals``: from the call until
    ``ExecProcess.wait`` returns, the signals a terminal or a manager sends
    to *this* process go on to the new one (main thread only); SIGTERM and
    SIGINT before it runs abort the exec (``ExecInterrupted``).
    """

    __slots__ = (
        "additional_gids", "apparmor", "args", "caps", "cgroup", "console_socket", "cwd",
        "detach", "env", "forward_signals", "ignore_paused", "no_new_privs", "pid_file",
        "preserve_fds", "process", "process_file", "process_label", "stderr", "stdin",
        "stdout", "tty", "user",
    )  # fmt: skip
    _fields = {
        "args": (),
        "process": None,  # a runtime-spec process object
        "process_file": "",
        "cwd": "",
        "env": (),
        "user": "",  # "uid[:gid]", numeric
        "additional_gids": (),
        "caps": (),
        "no_new_privs": None,  # None: the container's setting
        "apparmor": "",
        "process_label": "",
        "tty": False,
        "console_socket": "",
        "detach": False,
        "pid_file": "",
        "preserve_fds": 0,
        "cgroup": (),  # --cgroup [<controller>[,...]:]<path>
        "ignore_paused": False,
        "forward_signals": False,
        "stdin": -1,
        "stdout": -1,
        "stderr": -1,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # runc checks these before it looks at the container.
        for gid in self.additional_gids:
            if gid < 0:
                raise ExecError(f"additional-gids must be a positive number {gid}")
        if self.process is None and not self.process_file and not self.args:
            raise ExecError("process args cannot be empty")

    @property
    def stdio(self) -> tuple[int, int, int]:
        return (self.stdin, self.stdout, self.stderr)


# The runtime-spec names of Resources' keyword arguments: (section, key).
_RESOURCE_KEYS = {
    "memory_limit": ("memory", "limit"),
    "memory_reservation": ("memory", "reservation"),
    "memory_swap": ("memory", "swap"),
    "cpu_shares": ("cpu", "shares"),
    "cpu_quota": ("cpu", "quota"),
    "cpu_period": ("cpu", "period"),
    "cpu_rt_runtime": ("cpu", "realtimeRuntime"),
    "cpu_rt_period": ("cpu", "realtimePeriod"),
    "cpuset_cpus": ("cpu", "cpus"),
    "cpuset_mems": ("cpu", "mems"),
    "pids_limit": ("pids", "limit"),
    "blkio_weight": ("blockIO", "weight"),
}


class Resources:
    """New limits for ``Container.update``: a runtime-spec ``linux.resources``.

    Keyword arguments name the settings ``runc update`` has flags for
    (``memory_limit=64 << 20``, ``cpu_quota``, ``pids_limit``...); a setting
    not given (or 0) is left as it is.  ``Resources.from_dict`` takes any
    runtime-spec resources object (what ``update -r FILE`` reads: hugepage
    limits, ``unified``, ...).
    """

    __slots__ = ("_spec",)

    def __init__(self, **settings: int | str | None) -> None:
        spec: dict[str, dict[str, Any]] = {}
        for name, value in settings.items():
            if name not in _RESOURCE_KEYS:
                raise TypeError(f"Resources: unknown setting {name!r}")
            if value is None:
                continue
            section, key = _RESOURCE_KEYS[name]
            spec.setdefault(section, {})[key] = value
        self._spec = spec

    @classmethod
    def from_dict(cls, resources: dict[str, Any], source: str = "resources") -> Resources:
        """A runtime-spec LinuxResources object (SOURCE names it in errors)."""
        if not isinstance(resources, dict):
            raise OcirtError(f"{source}: resources must be a JSON object")
        made = cls()
        made._spec = resources
        return made

    def to_dict(self) -> dict[str, Any]:
        """The runtime-spec object (the record's own: do not change it)."""
        return self._spec

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Resources) and other._spec == self._spec

    __hash__ = None  # type: ignore[assignment]  # mutable content

    def __repr__(self) -> str:
        return f"Resources.from_dict({self._spec!r})"
