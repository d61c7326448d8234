"""The installed ``ocirt``'s entry point: a lean front end for the short commands.

``ocirt/launcher.py`` writes an ``ocirt`` that calls ``main()`` here.  The
issue wants ``state``, ``start``, ``kill`` and ``delete`` within 3x crun's
time (crun: ~3 ms), and a bare ``python -I -S`` start takes ~7.5 ms of that:
what ocirt adds must fit in about 1.5 ms (docs/benchmarks.md).  ``ocirt.cli``
is the complete command line (every flag, help tables, ``os``); this module
parses the usual spellings of those four commands itself and makes the same
library calls as ``ocirt/cli/<command>.py``, through ``ocirt.container``,
which for them imports neither ``os`` nor ``ocirt.cgroups`` (see
``ocirt.record``).  No ``from __future__`` here either: it is an import.
``create`` comes this way too: it needs ``os`` and the rest anyway, but not
``ocirt.cli``'s parser and tables (~0.5 ms).

Anything else -- another command, --help, --version, a flag or a spelling it
does not know, a wrong argument count -- goes to ``ocirt.cli.main``
untouched, before anything has run, so usage errors and help read exactly as
there.  Errors of the library calls are reported by ``ocirt.cli.output``, as
``ocirt.cli`` reports them.

``main`` then leaves with ``_exit`` once stdout and stderr are flushed,
skipping the interpreter's finalization (~1.3 ms for the short commands, ~2
ms once create's modules are loaded): ocirt's files are written with ``with``
and closed, and nothing of ocirt registers atexit handlers.  When something
may still need the normal exit (``threading`` was imported: pyroute2, the
tty proxy; or atexit handlers are registered), ``sys.exit`` is used.
"""

import gc
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

# ocirt.cli's GLOBAL_FLAGS that these commands accept and ignore (or use:
# root, log, log-format); --help, --version and the rest go to ocirt.cli.
_VALUE_FLAGS = ("root", "log", "log-format", "criu", "rootless")
_BOOL_FLAGS = ("debug", "systemd-cgroup")

# Linux signal numbers (the `signal` module would import enum: ~4 ms).
SIGNALS = {
    "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7,
    "FPE": 8, "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14,
    "TERM": 15, "STKFLT": 16, "CHLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21,
    "TTOU": 22, "URG": 23, "XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27, "WINCH": 28,
    "IO": 29, "POLL": 29, "PWR": 30, "SYS": 31,
}  # fmt: skip


class Context:
    """What ocirt.cli.output and create read of ocirt.cli's Context."""

    __slots__ = ("command", "log", "log_format", "root", "rootless", "systemd_cgroup")

    def __init__(
        self,
        root: str,
        log: str,
        log_format: str,
        command: str = "",
        rootless: str = "auto",
        systemd_cgroup: bool = False,
    ) -> None:
        self.root = root
        self.log = log
        self.log_format = log_format
        self.command = command
        self.rootless = rootless
        self.systemd_cgroup = systemd_cgroup


def main() -> "NoReturn":
    # No cyclic garbage collection: a short command allocates a few thousand
    # objects (imports, one record) and exits; the collector's passes over
    # them cost ~0.3 ms of create.  Reference counting still frees memory;
    # ocirt.cli turns it back on for the commands that may run for long.
    gc.disable()
    argv = sys.argv[1:]
    try:
        status = run(argv)
    except KeyboardInterrupt:
        status = 130
    if status is None:
        _finish_start()
        from ocirt.cli import main as full_main

        status = full_main(argv)
    exit_now(status)


def run(argv: list[str]) -> int | None:
    """Run a short command; None (having done nothing) if ocirt.cli must run ARGV."""
    parsed = _global_flags(argv)
    if parsed is None or not parsed[1]:
        return None
    ctx, rest = parsed
    handler = _HANDLERS.get(rest[0])
    if handler is None or (ctx.log and not _log_opens(ctx.log)):
        return None  # ocirt.cli: another command, or the error of a --log it cannot open
    args = rest[1:]
    if "--" in args:
        return None
    ctx.command = rest[0]
    try:
        return handler(ctx, args)
    except Exception as e:  # OcirtError, OSError: one line, as ocirt.cli does
        _finish_start()
        from ocirt.cli import output

        return output.fail(ctx, e)


def exit_now(status: int | None) -> "NoReturn":
    """sys.exit(STATUS) without the interpreter's finalization when that is safe."""
    status = 0 if status is None else status
    if "stdout" in sys.__dict__:  # else the launcher's core phase: nothing buffered
        try:
            sys.stdout.flush()
        except Exception:  # what finalization would report: EPIPE and the like
            status = status or 120
        try:
            sys.stderr.flush()
        except Exception:
            pass
    if "threading" in sys.modules or _atexit_pending():
        sys.exit(status)
    import posix

    posix._exit(status)


def _atexit_pending() -> bool:
    if "atexit" not in sys.modules:  # nothing registered (saves its import, ~60 µs)
        return False
    import atexit

    count = getattr(atexit, "_ncallbacks", None)
    return count is None or count() > 0


def parse_signal(text: str) -> int:
    """9, KILL, SIGKILL, kill: what managers send (contract.md)."""
    number = _signal_number(text)
    if number is None:
        from ocirt.errors import OcirtError

        raise OcirtError(f'unknown signal "{text}"')
    return number


def _signal_number(text: str) -> int | None:
    if text.isdigit():
        number = int(text)
        return number if number < 65 else None  # 0 as runc: is it there?
    name = text.upper().removeprefix("SIG")
    if name in SIGNALS:
        return SIGNALS[name]
    if name.startswith("RTMIN") or name.startswith("RTMAX"):
        offset = name[5:]
        base = 34 if name.startswith("RTMIN") else 64
        if offset == "" or (offset[0] in "+-" and offset[1:].isdigit()):
            number = base + int(offset or "0")
            if 34 <= number <= 64:
                return number
    return None


# -- argv ---------------------------------------------------------------------
def _global_flags(argv: list[str]) -> "tuple[Context, list[str]] | None":
    """ocirt.cli's global flag rules (ocirt/cli/flags.py) for the flags above."""
    values = {"root": "", "log": "", "log-format": "text", "rootless": "auto"}
    systemd_cgroup = False
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not _is_flag(arg):
            break  # the command
        name, has_eq, value = arg.lstrip("-").partition("=")
        if name in _VALUE_FLAGS:
            if not has_eq:
                i += 1
                if i == len(argv):
                    return None
                value = argv[i]
            values[name] = value
        elif name not in _BOOL_FLAGS or has_eq or name == "debug":
            return None  # --debug: ocirt.cli, which logs the steps (not a hot path)
        elif name == "systemd-cgroup":
            systemd_cgroup = True
        i += 1
    if values["log-format"] not in ("text", "json"):
        return None
    ctx = Context(
        values["root"] or _default_root(),
        values["log"],
        values["log-format"],
        rootless=values["rootless"],
        systemd_cgroup=systemd_cgroup,
    )
    return ctx, argv[i:]


def _log_opens(path: str) -> bool:
    """--log FILE opened (created) first, as runc does (ocirt.cli._open_log reports)."""
    import posix

    try:
        fd = posix.open(
            path, posix.O_WRONLY | posix.O_CREAT | posix.O_APPEND | posix.O_CLOEXEC, 0o644
        )
    except OSError:
        return False
    posix.close(fd)
    return True


def _is_flag(arg: str) -> bool:
    return arg.startswith("-") and arg != "-"


def _default_root() -> str:
    """ocirt.cli's default_root()."""
    import posix

    if posix.geteuid() != 0:
        raw = posix.environ.get(b"XDG_RUNTIME_DIR")
        if raw:
            runtime_dir = raw.decode(sys.getfilesystemencoding(), sys.getfilesystemencodeerrors())
            return runtime_dir + ("ocirt" if runtime_dir.endswith("/") else "/ocirt")
    return "/run/ocirt"


# -- the commands: the same calls as ocirt/cli/<command>.py ----------------------
def _state(ctx: Context, args: list[str]) -> int | None:
    if len(args) != 1 or _is_flag(args[0]):
        return None
    from ocirt import _fastjson
    from ocirt.record import container_state  # Container.load(...).state(), without either

    return _write_stdout(_fastjson.dumps(container_state(ctx.root, args[0]), indent=2) + "\n")


def _write_stdout(text: str) -> int:
    """sys.stdout.write(TEXT), also before the launcher has made sys.stdout;
    the exit status: 120 if it could not be written (as exit_now's flush)."""
    if "stdout" in sys.__dict__:
        sys.stdout.write(text)
        return 0
    import posix

    data = text.encode("utf-8", "surrogateescape")
    try:
        while data:
            data = data[posix.write(1, data) :]
    except OSError:  # EPIPE (SIGPIPE is ignored) and the like
        return 120
    return 0


def _finish_start() -> None:
    """The whole interpreter (sys.stdout, the path finder) for what needs it."""
    from ocirt._codebundle import finish_start  # loaded already: the launchers run it

    finish_start()


def _start(ctx: Context, args: list[str]) -> int | None:
    if len(args) != 1 or _is_flag(args[0]):
        return None
    from ocirt.container import Container

    with Container.load(ctx.root, args[0]) as c:
        warnings = c.start()
    _warn(ctx, warnings)
    return 0


def _kill(ctx: Context, args: list[str]) -> int | None:
    """kill [--all|-a] ID [SIGNAL]: the shim sends `kill --all ID 9` after every
    container's init has exited, so --all is as fast as the plain kill."""
    flags = [a for a in args if _is_flag(a)]
    rest = [a for a in args if not _is_flag(a)]
    if not 1 <= len(rest) <= 2 or any(f.lstrip("-") not in ("all", "a") for f in flags):
        return None  # --help, another flag or a usage error
    sig = parse_signal(rest[1] if len(rest) == 2 else "SIGTERM")
    from ocirt.container import Container

    with Container.load(ctx.root, rest[0], lock=False) as c:
        c.kill(sig, all_processes=bool(flags))
    return 0


def _delete(ctx: Context, args: list[str]) -> int | None:
    force = False
    ids = []
    for arg in args:
        if _is_flag(arg):
            if arg.lstrip("-") not in ("force", "f"):
                return None
            force = True
        else:
            ids.append(arg)
    if len(ids) != 1:
        return None
    from ocirt.container import Container
    from ocirt.errors import ContainerNotExist

    try:
        c = Container.load(ctx.root, ids[0])
    except ContainerNotExist:
        if force:
            from ocirt.container import delete_abandoned

            delete_abandoned(ctx.root, ids[0])  # what a create killed midway left
            return 0  # containerd deletes twice: the second must succeed
        raise
    with c:
        warnings = c.delete(force=force)
    _warn(ctx, warnings)
    return 0


def _warn(ctx: Context, warnings: list[str]) -> None:
    """runc's warning records (failed poststart and poststop hooks)."""
    if warnings:
        _finish_start()
        from ocirt.cli import output

        for warning in warnings:
            output.warn(ctx, warning)


# create's flags (ocirt/cli/create.py's FLAGS): the option each one sets.
_CREATE_VALUE_FLAGS = {
    "bundle": "bundle", "b": "bundle", "console-socket": "console_socket",
    "pid-file": "pid_file", "preserve-fds": "preserve_fds", "pidfd-socket": "",
}  # fmt: skip
_CREATE_BOOL_FLAGS = {"no-pivot": "no_pivot", "no-new-keyring": "no_new_keyring"}


def _create(ctx: Context, args: list[str]) -> int | None:
    """create without ocirt.cli (~0.5 ms of imports); its usual spellings only."""
    parsed = parse_create(args)
    if parsed is None:
        return None
    opts, container_id = parsed
    from ocirt import debug
    from ocirt.container import Container
    from ocirt.options import CreateOptions

    debug.on_warning(lambda message: _warn(ctx, [message]))

    options = CreateOptions.from_flags(
        {**opts, "preserve_fds": int(opts["preserve_fds"])},
        rootless=ctx.rootless == "true",
        systemd_cgroup=ctx.systemd_cgroup,
    )
    Container.create(ctx.root, container_id, options).close()
    return 0


def parse_create(args: list[str]) -> "tuple[dict, str] | None":
    """ocirt.cli.flags.parse of create's FLAGS, for the usual spellings; else None."""
    opts: dict = {"bundle": "", "console_socket": "", "pid_file": "", "preserve_fds": "0"}
    opts.update(dict.fromkeys(_CREATE_BOOL_FLAGS.values(), False))
    ids = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if not _is_flag(arg):
            ids.append(arg)
            continue
        name, has_eq, value = arg.lstrip("-").partition("=")
        if name in _CREATE_VALUE_FLAGS:
            if not has_eq:
                if i == len(args):
                    return None
                value = args[i]
                i += 1
            if _CREATE_VALUE_FLAGS[name]:  # --pidfd-socket: accepted, unused (as ocirt.cli)
                opts[_CREATE_VALUE_FLAGS[name]] = value
        elif name in _CREATE_BOOL_FLAGS and not has_eq:
            opts[_CREATE_BOOL_FLAGS[name]] = True
        else:
            return None  # --help, --flag=true, an unknown flag: ocirt.cli says it
    if len(ids) != 1 or not opts["preserve_fds"].isdigit():
        return None
    return opts, ids[0]


# exec's flags (ocirt/cli/exec.py's FLAGS) in the shapes managers use: the
# option each one sets.  -t, --console-socket, --cgroup, --cap and the rest go
# to ocirt.cli (a terminal to proxy needs threads and the whole interpreter).
_EXEC_VALUE_FLAGS = {
    "pid-file": "pid_file", "process": "process_file", "p": "process_file", "cwd": "cwd",
    "user": "user", "u": "user", "env": "env", "e": "env", "preserve-fds": "preserve_fds",
}  # fmt: skip
_EXEC_BOOL_FLAGS = {"detach": "detach", "d": "detach"}
EXEC_FAILED = 255  # ocirt/cli/exec.py's: runc's status for "exec failed: ..."


def _exec(ctx: Context, args: list[str]) -> int | None:
    """exec without ocirt.cli and the interpreter's main phase (see ExecOptions'
    forward_signals: a signalfd here); its usual spellings only."""
    parsed = parse_exec(args)
    if parsed is None:
        return None
    opts, container_id, command = parsed
    try:
        return _exec_process(ctx, opts, container_id, command)
    except Exception as e:  # OcirtError, OSError: runc's "exec failed: ...", 255
        _finish_start()
        from ocirt.cli import output

        output.error(ctx, f"exec failed: {output.describe(e)}")
        return EXEC_FAILED


def _exec_process(ctx: Context, opts: dict, container_id: str, command: list[str]) -> int:
    """ocirt/cli/exec.py's _exec, the same calls."""
    from ocirt import debug
    from ocirt.container import Container
    from ocirt.options import ExecOptions

    debug.on_warning(lambda message: _warn(ctx, [message]))
    pid_file = opts["pid_file"]
    if pid_file and not pid_file.startswith("/"):
        import posix

        pid_file = posix.getcwd() + "/" + pid_file  # ocirt.cli: abspath (the same file)
    exec_opts = ExecOptions(
        args=tuple(command),
        process_file=opts["process_file"],
        cwd=opts["cwd"],
        env=tuple(opts["env"]),
        user=opts["user"],
        detach=opts["detach"],
        pid_file=pid_file,
        preserve_fds=int(opts["preserve_fds"]),
        forward_signals=True,
    )
    with Container.load(ctx.root, container_id) as c:
        process = c.exec(exec_opts)
    # The lock is released: a long foreground exec must not block `ocirt state`.
    with process:
        return 0 if exec_opts.detach else process.wait()


def parse_exec(args: list[str]) -> "tuple[dict, str, list[str]] | None":
    """ocirt.cli.flags.parse of exec's FLAGS (not interspersed: the command follows
    the id), for the spellings above; else None."""
    opts: dict = {"pid_file": "", "process_file": "", "cwd": "", "user": "", "env": []}
    opts.update(preserve_fds="0", detach=False)
    i = 0
    while i < len(args) and _is_flag(args[i]):
        name, has_eq, value = args[i].lstrip("-").partition("=")
        i += 1
        if name in _EXEC_VALUE_FLAGS:
            if not has_eq:
                if i == len(args):
                    return None
                value = args[i]
                i += 1
            key = _EXEC_VALUE_FLAGS[name]
            if key == "env":
                opts["env"].append(value)
            else:
                opts[key] = value
        elif name in _EXEC_BOOL_FLAGS and not has_eq:
            opts[_EXEC_BOOL_FLAGS[name]] = True
        else:
            return None  # --help, -t, --flag=true, an unknown flag: ocirt.cli says it
    command = args[i + 1 :]
    if i == len(args) or not opts["preserve_fds"].isdigit():
        return None
    if not command and not opts["process_file"]:
        return None  # ocirt.cli's error words
    return opts, args[i], command


_HANDLERS = {
    "state": _state, "start": _start, "kill": _kill, "delete": _delete, "create": _create,
    "exec": _exec,
}  # fmt: skip
