"""``ocirt``: runc's command line over the ``ocirt.container`` API.

Global flags come before the command, as with runc.  Each command lives in
its own module (``ocirt.cli.<command>``), imported only when it runs, so the
short commands stay short.  Errors: one line on stderr and, with ``--log``,
one record in the log file (``--log-format json``: what containerd and
podman parse), exit status 1.
"""

from __future__ import annotations

import gc
import os
import sys

from ocirt.cli.flags import Flag, UsageError, parse, usage_lines

VERSION = "0.1.0"
SPEC_VERSION = "1.3.0"

COMMANDS = {
    "check": "check what this host can honour: one line per feature, and what follows for configs",
    "create": "create a container",
    "delete": "delete any resources held by the container often used with detached container",
    "events": (
        "display container events such as OOM notifications, cpu, memory, and IO usage statistics"
    ),
    "exec": "execute new process inside the container",
    "features": "show the enabled features",
    "kill": "kill sends the specified signal (default: SIGTERM) to the container's init process",
    "list": "lists containers started by ocirt with the given root",
    "pause": "pause suspends all processes inside the container",
    "ps": "ps displays the processes running inside a container",
    "resume": "resumes all processes that have been previously paused",
    "run": "create and run a container",
    "spec": "create a new specification file",
    "start": "executes the user defined process in a created container",
    "state": "output the state of a container",
    "trace": "trace a container's syscalls and write a seccomp profile that allows them",
    "update": "update container resource constraints",
}
ALIASES = {"ps": "ps", "ls": "list"}
# Commands that can outlive a moment (a foreground container or process, a
# stream of events): they collect cyclic garbage as usual.
RUN_FOR_LONG = frozenset({"run", "exec", "events", "trace"})

GLOBAL_FLAGS = (
    Flag(("debug",), help="enable debug logging"),
    Flag(("log",), True, "", "set the log file to write ocirt logs to (default is stderr)"),
    Flag(("log-format",), True, "text", "set the log format ('text' (default), or 'json')"),
    Flag(("root",), True, "", "root directory for storage of container state"),
    Flag(("criu",), True, "criu", "path to the criu binary (checkpoint is not supported)"),
    Flag(("systemd-cgroup",), help="enable systemd cgroup support"),
    Flag(
        ("rootless",), True, "auto", "ignore cgroup permission errors ('true', 'false', or 'auto')"
    ),
    Flag(("version", "v"), help="print the version"),
    Flag(("help", "h"), help="show help"),
)


class Context:
    """What every command gets from the global flags."""

    def __init__(
        self,
        root: str,
        log: str,
        log_format: str,
        debug: bool,
        systemd_cgroup: bool,
        rootless: str,
        command: str = "",
    ) -> None:
        self.root = root
        self.log = log
        self.log_format = log_format
        self.debug = debug
        self.systemd_cgroup = systemd_cgroup
        self.rootless = rootless
        self.command = command


def default_root() -> str:
    if os.geteuid() != 0:
        runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
        if runtime_dir:
            return os.path.join(runtime_dir, "ocirt")
    return "/run/ocirt"


def version_text() -> str:
    from ocirt import build_info

    return (
        f"ocirt version {VERSION}\n"
        f"commit: {build_info.commit()}\n"
        f"spec: {SPEC_VERSION}\n"
        f"python: {sys.version.split()[0]}\n"
        f"launcher: {build_info.launcher()}\n"
        f"libseccomp: {build_info.libseccomp_version()}\n"
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ctx = Context("", "", "text", False, False, "auto")
    try:
        gopts, rest = parse(argv, GLOBAL_FLAGS, interspersed=False)
        ctx = Context(
            root=gopts["root"] or default_root(),
            log=gopts["log"],
            log_format=gopts["log_format"],
            debug=gopts["debug"],
            systemd_cgroup=gopts["systemd_cgroup"],
            rootless=gopts["rootless"],
        )
        if ctx.log_format not in ("text", "json"):
            raise UsageError(f"invalid log-format: {ctx.log_format}")
        if ctx.log and not _open_log(ctx):
            return 1
        _report_through(ctx)
        if gopts["version"]:
            sys.stdout.write(version_text())
            return 0
        if not rest or gopts["help"] or rest[0] == "help":
            return _print_help(rest[1:] if rest and rest[0] == "help" else [])
        ctx.command = ALIASES.get(rest[0], rest[0])
        if ctx.command not in COMMANDS:
            raise UsageError(f"No help topic for '{rest[0]}'")
        module = __import__(f"ocirt.cli.{ctx.command}", fromlist=["run"])
        opts, args = parse(rest[1:], module.FLAGS, getattr(module, "INTERSPERSED", True))
        if opts.get("help"):
            sys.stdout.write(command_help(ctx.command, module))
            return 0
        if ctx.command in RUN_FOR_LONG:
            gc.enable()  # ocirt.fastcli turned it off for the short commands
        return module.run(ctx, opts, args)
    except UsageError as e:
        from ocirt.cli import output

        output.error(ctx, f"{e}" if ctx.command else str(e))
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # OcirtError, OSError: one line, exit 1
        from ocirt.cli import output

        return output.fail(ctx, e)


def _open_log(ctx: Context) -> bool:
    """--log FILE is opened (created) first, as runc does: a path that cannot be
    opened fails every command, with the error on stderr."""
    try:
        os.close(os.open(ctx.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644))
    except OSError as e:
        from ocirt.cli import output

        path, ctx.log = ctx.log, ""
        output.error(ctx, f"open {path}: {(e.strerror or str(e)).lower()}")
        return False
    return True


def _report_through(ctx: Context) -> None:
    """The library's warnings (and, with --debug, its step lines: ocirt.debug)
    as runc's level=warning (level=debug) records."""
    from ocirt import debug
    from ocirt.cli import output

    debug.on_warning(lambda message: output.warn(ctx, message))
    if ctx.debug:
        debug.enable(lambda message: output.log(ctx, "debug", message))


def _print_help(topic: list[str]) -> int:
    if topic and topic[0] in COMMANDS:
        module = __import__(f"ocirt.cli.{topic[0]}", fromlist=["run"])
        sys.stdout.write(command_help(topic[0], module))
        return 0
    lines = [
        "NAME:",
        "   ocirt - Open Container Initiative runtime, in Python",
        "",
        "USAGE:",
        "   ocirt [global options] command [command options] [arguments...]",
        "",
        f"VERSION:\n   {VERSION}\n   spec: {SPEC_VERSION}",
        "",
        "COMMANDS:",
        *(f"   {name:<10} {text}" for name, text in COMMANDS.items()),
        "",
        "GLOBAL OPTIONS:",
        *usage_lines(GLOBAL_FLAGS),
        "",
    ]
    sys.stdout.write("\n".join(lines))
    return 0


def command_help(name: str, module: object) -> str:
    lines = [
        "NAME:",
        f"   ocirt {name} - {COMMANDS[name]}",
        "",
        "USAGE:",
        f"   ocirt {name} {getattr(module, 'USAGE', '')}",
        "",
        "OPTIONS:",
        *usage_lines(module.FLAGS),  # type: ignore[attr-defined]
        "",
    ]
    return "\n".join(lines)
