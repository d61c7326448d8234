"""``exec``: one more process in a running container.

Process model: one fork, and the new process is our direct child.

  ocirt exec (P, stays on the host)            the new process (C)
  1. load the container; the process: config.json's process + flags, or -p FILE
  2. open /proc/<init>/ns/* that differ from ours; re-check the init (pid reuse)
  3. PR_SET_DUMPABLE 0 (C inherits it): a container process cannot ptrace C
     or open its /proc/<pid>/fd while C still holds runtime fds (CVE-2016-9962)
  4. setns(pid) -- affects our children only --, fork, setns back:
     C is born in the container's pid namespace, as our child
     (on cgroup v2 into the container's cgroup:   C joins its v1 cgroups by itself
     CLONE_INTO_CGROUP)                            ("0" to the tasks files we opened)
  5. PROCEED                                    ->  rlimits, oom_score_adj (host privileges)
                                                    setns user first, ..., mount last
                                                    pty, fds, caps, user, cwd, nnp, LSM
                                                    execve (the channel is close-on-exec)
  6. EOF on the channel: exec succeeded; ERROR {errno, message}: it failed
  7. pid file; --detach: exit, and C is re-parented to our caller's subreaper
     (conmon, the containerd shim), who wait()s for it; else forward signals
     (and proxy the terminal), wait, exit with C's status

runc gets the same shape with CLONE_PARENT: its exec'd process is also a
direct child of `runc exec`.  No process of ours lingers after --detach.
"""

from __future__ import annotations

# Imports are kept lean: `exec` is the hot path of Kubernetes exec probes.
# _socket is the C module under `socket` (which imports enum, selectors:
# ~7 ms); dataclasses/typing/traceback are avoided too, and contextlib
# (collections, functools, types: ~2.5 ms; see _Cleanups).  No `_signal`
# here: its state comes with the interpreter's main phase, which the
# launcher's fast front end does without (see BlockedSignals).
import _socket as socket
import posix  # not os (~1.5 ms of imports: _collections_abc, posixpath...)
import select

from ocirt import _fastjson, debug
from ocirt.cgroups import join
from ocirt.errors import ExecError, ExecInterrupted, OcirtError, lower_first
from ocirt.linux import syscalls as sc
from ocirt.options import ExecOptions
from ocirt.process import exec_stage2
from ocirt.process.channel import Channel, ChannelClosed, ChildError, Msg
from ocirt.process.common import high_fd, kill_and_reap, write_pid_file
from ocirt.spec import _REQUIRED, NS_PROC_NAMES, Process, _Record
from ocirt.state import init_is_alive

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType
    from typing import Any

    from ocirt.linux import seccomp

# What a terminal or a manager may send us goes on to the process.  SIGWINCH
# is not forwarded: with a terminal it resizes the pty (runc does the same).
# Linux's numbers: SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGCONT,
# SIGTSTP, SIGTTIN, SIGTTOU, SIGALRM, SIGPROF, SIGVTALRM, SIGIO.
SIGINT, SIGKILL, SIGTERM = 2, 9, 15
FORWARDED = (1, SIGINT, 3, SIGTERM, 10, 12, 18, 20, 21, 22, 14, 27, 26, 29)


class Started(_Record):
    """A process that exec'd; ``master`` is the pty when we own the terminal."""

    __slots__ = ("master", "pid")
    _fields = {"pid": _REQUIRED, "master": None}


# -- building the process ------------------------------------------------------
def process_from_flags(
    config_process: dict[str, Any],
    args: list[str],
    *,
    cwd: str = "",
    env: tuple[str, ...] = (),
    user_spec: str = "",
    additional_gids: tuple[int, ...] = (),
    caps: tuple[str, ...] = (),
    no_new_privs: bool | None = None,
    apparmor: str = "",
    process_label: str = "",
    tty: bool = False,
) -> dict[str, Any]:
    """runc's getProcess without -p: the container's process, overridden."""
    p = _deep_copy(config_process)
    p["args"] = list(args)
    p["terminal"] = tty  # never inherited from config.json: only -t asks for one
    p.pop("consoleSize", None)
    if cwd:
        p["cwd"] = cwd
    if apparmor:
        p["apparmorProfile"] = apparmor
    if process_label:
        p["selinuxLabel"] = process_label
    if caps:
        # runc 1.1 adds --cap to these four sets (ambient only sticks where
        # the cap is also inheritable, which --cap does not make it).
        sets = p.setdefault("capabilities", {})
        for set_name in ("bounding", "effective", "permitted", "ambient"):
            sets[set_name] = [*(sets.get(set_name) or []), *caps]
    p["env"] = [*(p.get("env") or []), *env]
    if no_new_privs is not None:
        p["noNewPrivileges"] = no_new_privs
    u = p.setdefault("user", {})
    if user_spec:
        u["uid"], gid = parse_user(user_spec)
        if gid is not None:
            u["gid"] = gid
    if additional_gids:
        u["additionalGids"] = [*(u.get("additionalGids") or []), *additional_gids]
    return p


def parse_user(text: str) -> tuple[int, int | None]:
    """-u uid[:gid], numeric only (runc's wording on errors)."""
    uid_text, has_gid, gid_text = text.partition(":")
    gid = None
    if has_gid:
        gid = _atoi(gid_text, "gid")
    return _atoi(uid_text, "uid"), gid


def _atoi(text: str, what: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise ExecError(
            f'parsing {text} as int for {what} failed: strconv.Atoi: parsing "{text}":'
            " invalid syntax"
        ) from None


def load_process_file(path: str) -> dict[str, Any]:
    """-p FILE: the runtime-spec process object conmon and containerd write."""
    from ocirt import validate

    try:
        raw = _read_file(path)
    except OSError as e:
        raise ExecError(f"open {path}: {lower_first(e.strerror)}") from None
    process = validate.parse_json_object(raw, path)
    validate.validate_process(process, path)
    return process


def _read_file(path: str) -> bytes:
    """PATH's bytes with posix, not open(): importing _io costs the shims' exec
    ~0.2 ms (a directory fails at the read, EISDIR, as open() says it)."""
    fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
    try:
        chunks = []
        while chunk := posix.read(fd, 65536):
            chunks.append(chunk)
    finally:
        posix.close(fd)
    return b"".join(chunks)


def effective_process(process: dict[str, Any], config: dict[str, Any]) -> Process:
    """What the new process gets where the -p file says nothing (runc 1.1.5).

    Capabilities, AppArmor profile and SELinux label come from the
    container's config when absent; oom_score_adj always does (runc sends
    the container's value to every process it starts).  rlimits, env and
    noNewPrivileges are the file's own, absent meaning none/false.
    """
    base = config.get("process") or {}
    merged = dict(process)
    if merged.get("capabilities") is None and base.get("capabilities") is not None:
        merged["capabilities"] = base["capabilities"]
    for key in ("apparmorProfile", "selinuxLabel"):
        if not merged.get(key) and base.get(key):
            merged[key] = base[key]
    if base.get("oomScoreAdj") is not None:
        merged["oomScoreAdj"] = base["oomScoreAdj"]
    else:
        merged.pop("oomScoreAdj", None)
    return Process.from_dict(merged)


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


# -- checks before anything starts ----------------------------------------------
def check_status(status: str, ignore_paused: bool) -> None:
    if status == "stopped":
        raise ExecError("cannot exec in a stopped container")
    if status == "paused" and not ignore_paused:
        raise ExecError("cannot exec in a paused container (use --ignore-paused to override)")


def check_terminal(terminal: bool, opts: ExecOptions) -> None:
    """runc's checkTerminal: who gets the pty master must be unambiguous."""
    if opts.detach and terminal and not opts.console_socket:
        raise ExecError("cannot allocate tty if ocirt will detach without setting console socket")
    if (not opts.detach or not terminal) and opts.console_socket:
        raise ExecError("cannot use console socket if ocirt will not detach or allocate tty")


def _check_label(label: str) -> None:
    if label and not _exists("/sys/fs/selinux/enforce"):
        raise ExecError(
            "selinux label is specified in config, but selinux is disabled or not supported"
        )


def _exists(path: str) -> bool:
    """Whether PATH exists (os.path's exists, without os)."""
    try:
        posix.stat(path)
    except (OSError, ValueError):
        return False
    return True


# -- the runtime's side ----------------------------------------------------------
class _Cleanups:
    """What contextlib.ExitStack does here (callbacks, run last-first on exit,
    every one even if one fails), without importing contextlib."""

    def __init__(self) -> None:
        self._callbacks: list[tuple[Callable[..., object], tuple[object, ...]]] = []

    def callback(self, fn: Callable[..., object], *args: object) -> None:
        self._callbacks.append((fn, args))

    def __enter__(self) -> _Cleanups:
        return self

    def __exit__(self, *exc: object) -> None:
        failure: BaseException | None = None
        while self._callbacks:
            fn, args = self._callbacks.pop()
            try:
                fn(*args)
            except BaseException as e:
                failure = e
        if failure is not None:
            raise failure


class ExecPlan:
    """Everything the child needs, prepared before the fork (mutable: the child
    drops what it has used)."""

    __slots__ = (
        "cgroup_files", "channel", "console_sock", "in_user_ns", "ns_fds", "preserve_fds",
        "parent_channel_fd", "process", "reset_handlers", "root_fd", "seccomp", "stdio",
    )  # fmt: skip

    def __init__(
        self,
        process: Process,
        channel: Channel,
        ns_fds: dict[str, int] | None = None,
        preserve_fds: int = 0,
        console_sock: socket.socket | None = None,
        in_user_ns: bool = False,
        seccomp: seccomp.CompiledFilter | None = None,  # the container's linux.seccomp
        cgroup_files: tuple[tuple[int, str], ...] = (),  # v1 tasks files: (fd, dir)
        root_fd: int = -1,  # the init's root, to chroot into (no mount namespace of its own)
        parent_channel_fd: int = -1,  # our end of the channel, which fork() copied
        stdio: tuple[int, ...] = (-1, -1, -1),  # fds to become 0, 1, 2 (-1: ours)
    ) -> None:
        self.parent_channel_fd = parent_channel_fd
        self.reset_handlers = False  # SIG_DFL for FORWARDED first (SignalForwarder's handlers)
        self.stdio = stdio
        self.cgroup_files = cgroup_files
        self.root_fd = root_fd
        self.process = process
        self.channel = channel
        self.ns_fds = ns_fds if ns_fds is not None else {}
        self.preserve_fds = preserve_fds
        self.console_sock = console_sock
        self.in_user_ns = in_user_ns
        self.seccomp = seccomp


def start(
    container: Any,
    process: dict[str, Any],
    opts: ExecOptions,
    forwarder: Forwarder | None = None,
) -> Started:
    """Start PROCESS in CONTAINER (an ``ocirt.container.Container``).

    FORWARDER (installed by the caller before) gets the pid the moment the
    process runs: from then on a SIGTERM is the process's, not ours.

    Returns once the process has exec'd (or raises ExecError, with nothing
    left running).  The caller waits for it (``wait``) unless detached.
    """
    record = container.record
    config = record.get("config") or {}
    check_status(container.status, opts.ignore_paused)
    proc = effective_process(process, config)
    check_terminal(proc.terminal, opts)
    _check_label(proc.selinux_label)
    _preload(proc, config)  # the child cannot import (seal_imports)
    floor = 3 + opts.preserve_fds
    with _Cleanups() as stack:
        ns_fds = _open_namespaces(container.pid, floor, stack)
        if not init_is_alive(record):  # the fds must be the init's, not a recycled pid's
            raise ExecError("cannot exec in a stopped container")
        their_console, our_console = _console_ends(proc.terminal, opts, floor, stack)
        parent_end, child_end = _channel_pair(floor, stack)
        cgroups = join.open_for_exec(record, opts.cgroup, _keeper(floor, stack))
        plan = ExecPlan(
            process=proc,
            channel=child_end,
            ns_fds={k: v for k, v in ns_fds.items() if k != "pid"},
            preserve_fds=opts.preserve_fds,
            console_sock=their_console,
            in_user_ns=any(ns.get("type") == "user" for ns in _namespaces(config)),
            seccomp=_compile_seccomp(config),
            cgroup_files=cgroups.tasks_files,
            root_fd=_chroot_fd(container.pid, config, floor, stack),
            parent_channel_fd=parent_end.fileno(),
            stdio=_stdio_copies(opts.stdio, floor, stack),
        )
        plan.reset_handlers = isinstance(forwarder, SignalForwarder)
        # execCPUAffinity.initial: where we run until the child is in the
        # container's cgroup; the child inherits it and applies "final" there.
        if proc.exec_cpu_affinity:
            from ocirt.linux import scheduling

            scheduling.apply_cpu_affinity(proc.exec_cpu_affinity, "initial")
        # The state dir's lock goes before the fork: the child joins the
        # container's cgroups first thing, and in a paused container it
        # freezes there (until `resume`, which needs the lock).
        stage2_plan, stage2_argv = _stage2_plan(plan, container, opts, stack)
        container.close()
        pid = _fork_child(plan, ns_fds.get("pid"), cgroups.clone_into, stage2_argv)
        if forwarder is not None:
            forwarder.child = pid
        debug.log(f"exec: pid {pid} joins {', '.join(sorted(ns_fds)) or 'no'} namespaces"
                  f" of init {container.pid}")  # fmt: skip
        try:
            _release_child_ends(plan)
            for directory in cgroups.left:
                join.enter(directory, pid, cgroups.lenient)
            if stage2_plan is not None:
                exec_stage2.send_plan(parent_end, stage2_plan)
            else:
                parent_end.send(Msg.PROCEED)
            _await_exec(parent_end, pid, record, forwarder)
            if forwarder is not None:
                forwarder.target(pid)
            master = None
            if our_console is not None:
                from ocirt.linux import console

                master = console.recv_master(our_console)
            if opts.pid_file:  # before we return: the manager reads it right after
                write_pid_file(opts.pid_file, pid)
        except ExecInterrupted:
            # Maybe frozen (a paused container): it dies when thawed; waiting
            # for it here would hang.  Its PDEATHSIG would kill it too.
            posix.kill(pid, SIGKILL)
            raise
        except BaseException:
            kill_and_reap(pid)
            raise
    return Started(pid, master)


def _compile_seccomp(config: dict[str, Any]) -> seccomp.CompiledFilter | None:
    """The container's filter, compiled before the fork so errors read as exec's.

    From ``ocirt.linux.seccomp_cache`` when this profile was compiled before
    (a manager's profile costs libseccomp ~16 ms, on every exec probe).  With
    SCMP_ACT_NOTIFY rules the child's load returns a listener fd, whose number
    it writes back over the channel (SECCOMP_LISTENER); we take it and forward
    it to ``listenerPath`` (:func:`_await_exec`), as runc does for exec'd
    processes.
    """
    config_seccomp = (config.get("linux") or {}).get("seccomp")
    if not config_seccomp:
        return None
    from ocirt.linux import seccomp_cache

    try:
        return seccomp_cache.compile_filter(config_seccomp)
    except OcirtError as e:
        raise ExecError(f"unable to start container process: {e}") from None


def wants_scheduling(proc: Process) -> bool:
    return bool(proc.exec_cpu_affinity or proc.scheduler or proc.io_priority)


def _preload(proc: Process, config: dict[str, Any]) -> None:
    """Import, before the fork, the modules only some processes need (cf. init.preload)."""
    if proc.terminal:
        from ocirt.linux import console  # noqa: F401
    if wants_scheduling(proc):
        from ocirt.linux import scheduling  # noqa: F401
    if (config.get("linux") or {}).get("seccomp"):
        from ocirt.linux import seccomp  # noqa: F401


def _namespaces(config: dict[str, Any]) -> list[dict[str, Any]]:
    return (config.get("linux") or {}).get("namespaces") or []


def _stdio_copies(stdio: tuple[int, ...], floor: int, stack: _Cleanups) -> tuple[int, ...]:
    """Copies above FLOOR of the fds the process gets as 0, 1, 2: the
    caller's fds may be among 0-2 or the preserved ones, which the child
    overwrites or must pass on as they are."""
    copies = []
    for fd in stdio:
        if fd < 0:
            copies.append(-1)
            continue
        copy = high_fd(posix.dup(fd), floor)
        stack.callback(posix.close, copy)
        copies.append(copy)
    return tuple(copies)


def _keeper(floor: int, stack: _Cleanups) -> Callable[[int], int]:
    """A function that moves an fd of ours above FLOOR and closes it with STACK."""

    def keep(fd: int) -> int:
        fd = high_fd(fd, floor)
        stack.callback(posix.close, fd)
        return fd

    return keep


def _high_socket(sock: socket.socket, floor: int) -> socket.socket:
    family, kind = sock.family, sock.type
    return socket.socket(family, kind, fileno=high_fd(sock.detach(), floor))


def _chroot_fd(init_pid: int, config: dict[str, Any], floor: int, stack: _Cleanups) -> int:
    """The init's root when it has no mount namespace of its own, else -1.

    setns(mnt) puts us at the root of the container's mount namespace; a
    container without one of its own is chrooted (ocirt.linux.hostmounts),
    and joining its namespace (the host's, or one given by path) would leave
    the process at the host's "/": it chroots into the init's root instead.
    """
    if any(ns.get("type") == "mount" and not ns.get("path") for ns in _namespaces(config)):
        return -1
    try:
        fd = posix.open(
            f"/proc/{init_pid}/root", posix.O_PATH | posix.O_DIRECTORY | posix.O_CLOEXEC
        )
    except FileNotFoundError:
        raise ExecError("cannot exec in a stopped container") from None
    fd = high_fd(fd, floor)
    stack.callback(posix.close, fd)
    return fd


def _open_namespaces(init_pid: int, floor: int, stack: _Cleanups) -> dict[str, int]:
    """The init's namespaces that are not already ours (setns to our own user ns is EINVAL)."""
    fds: dict[str, int] = {}
    for ns_type, proc_name in NS_PROC_NAMES.items():
        path = f"/proc/{init_pid}/ns/{proc_name}"
        try:
            theirs = posix.stat(path)
            ours = posix.stat(f"/proc/self/ns/{proc_name}")
        except FileNotFoundError:
            continue  # a kernel without this namespace type (or the init is gone)
        if (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino):
            continue
        try:
            fd = high_fd(posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC), floor)
        except FileNotFoundError:
            raise ExecError("cannot exec in a stopped container") from None
        stack.callback(posix.close, fd)
        fds[ns_type] = fd
    return fds


def _console_ends(
    terminal: bool, opts: ExecOptions, floor: int, stack: _Cleanups
) -> tuple[socket.socket | None, socket.socket | None]:
    """(the child's end, ours): where the child sends the pty master.

    With --console-socket the child sends it to the caller directly; in the
    foreground we keep a socketpair and proxy the master ourselves.
    """
    if not terminal:
        return None, None
    if opts.console_socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.connect(opts.console_socket)
        except OSError as e:
            sock.close()
            reason = lower_first(e.strerror)
            raise ExecError(
                f"failed to connect to console socket {opts.console_socket}: {reason}"
            ) from None
        sock = _high_socket(sock, floor)
        stack.callback(sock.close)
        return sock, None
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    ours, theirs = _high_socket(ours, floor), _high_socket(theirs, floor)
    stack.callback(ours.close)
    stack.callback(theirs.close)
    return theirs, ours


def _channel_pair(floor: int, stack: _Cleanups) -> tuple[Channel, Channel]:
    # Stage 2 reads no JSON; a Python child gets _json in _fork_python_child.
    parent_end, child_end = Channel.pair(child_runs_python=False)
    for ch in (parent_end, child_end):
        ch.sock = _high_socket(ch.sock, floor)
        stack.callback(ch.close)
    return parent_end, child_end


def _stage2_plan(
    plan: ExecPlan, container: Any, opts: ExecOptions, stack: _Cleanups
) -> tuple[bytes | None, list[str] | None]:
    """(PROCEED's body, stage 2's argv) when stage 2 starts the process in C
    (ocirt.process.exec_stage2), else (None, None): the Python child."""
    if not exec_stage2.usable(plan, container.status == "paused", opts.preserve_fds):
        return None, None
    seccomp_fd = exec_stage2.seccomp_program_fd(plan)
    if seccomp_fd >= 0:
        stack.callback(posix.close, seccomp_fd)
    body = exec_stage2.encode_plan(plan, seccomp_fd)
    if body is None:
        return None, None
    memfd = exec_stage2.stage2_memfd()
    stack.callback(posix.close, memfd)
    return body, exec_stage2.spawn_argv(plan, memfd)


def _fork_child(
    plan: ExecPlan, pid_ns: int | None, cgroup_fd: int, stage2_argv: list[str] | None = None
) -> int:
    sc.prctl(sc.PR_SET_DUMPABLE, 0)
    own_pid_ns = -1
    if pid_ns is not None:
        # setns(CLONE_NEWPID) changes where our *children* are born; switch
        # back right after the fork so nothing else of ours lands there.
        own_pid_ns = posix.open("/proc/self/ns/pid", posix.O_RDONLY | posix.O_CLOEXEC)
        sc.setns(pid_ns, sc.CLONE_NEWPID)
    try:
        try:
            if stage2_argv is not None:
                pid = exec_stage2.spawn(stage2_argv, cgroup_fd)
            else:
                pid = _fork_python_child(plan, cgroup_fd)
        except OSError as e:
            if cgroup_fd < 0:
                raise
            raise ExecError(
                "unable to start container process: error adding pid to cgroups:"
                f" clone into cgroup: {lower_first(e.strerror)}"
            ) from None
    finally:
        if own_pid_ns >= 0:
            sc.setns(own_pid_ns, sc.CLONE_NEWPID)
            posix.close(own_pid_ns)
    return pid


def _fork_python_child(plan: ExecPlan, cgroup_fd: int) -> int:
    """The Python child (the shapes stage 2 does not take): its steps
    (ocirt.process.exec_child) and _json (the channel's bodies) are loaded
    before the fork, as the child cannot import; only then, not on every exec."""
    from ocirt.process import exec_child

    _fastjson.preload()
    pid = sc.fork_with_flags(0, cgroup_fd)
    if pid == 0:
        exec_child.run(plan)  # never returns
    return pid


def _release_child_ends(plan: ExecPlan) -> None:
    """Close our copies of the child's sockets, so its exit reads as EOF.

    (The namespace fds are closed with the rest when ``start`` returns.)
    """
    plan.channel.close()
    if plan.console_sock is not None:
        plan.console_sock.close()


def _await_exec(
    channel: Channel, pid: int, record: dict[str, Any], signals: Forwarder | None = None
) -> None:
    """Until EOF (the channel is close-on-exec: execve succeeded) or ERROR.

    A seccomp notify listener on the way (its number: the child only writes
    it, see ocirt.linux.seccomp) is taken from PID, the exec'd process, and
    forwarded to the agent with the container's state and PID (runc's
    ContainerProcessState).  SIGNALS' fd is read meanwhile (a SIGTERM may
    stop us: ExecInterrupted).
    """
    while True:
        if signals is not None and signals.fd >= 0:
            _wait_readable(channel.fileno(), signals)
        try:
            kind, body = channel.recv()
        except ChannelClosed:
            return
        except ChildError as e:
            message = exec_stage2.error_text(e.errno, e.message)
            raise ExecError(f"unable to start container process: {message}") from None
        if kind != Msg.SECCOMP_LISTENER or not isinstance(body.get("fd"), int):
            raise ExecError(
                f"unable to start container process: protocol error: got {Msg.name(kind)}"
            )
        _forward_listener(body["fd"], pid, record)
        channel.send(Msg.LISTENER_SENT)


def _wait_readable(fd: int, signals: Forwarder) -> None:
    """Until FD has something to read, handling the signals that come first."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    poller.register(signals.fd, select.POLLIN)
    while True:
        ready = {ready_fd for ready_fd, _ in poller.poll()}
        if signals.fd in ready:
            signals.read()
        if fd in ready:
            return


def _forward_listener(fd_number: int, pid: int, record: dict[str, Any]) -> None:
    from ocirt.linux import seccomp
    from ocirt.state import public_state

    config = ((record.get("config") or {}).get("linux") or {}).get("seccomp") or {}
    state = public_state(record, "running")
    try:
        seccomp.forward_listener(pid, fd_number, state, config, pid=pid)
    except OcirtError as e:
        raise ExecError(f"unable to start container process: {e}") from None


# -- waiting in the foreground ---------------------------------------------------
class Forwarder:
    """Forward what we receive to the process; made before the fork.

    Signals that arrive before the pid is known are queued, not lost, but
    SIGTERM and SIGINT: until the process runs they stop `exec` itself
    (ExecInterrupted), which may be waiting for a child frozen in a paused
    container (--ignore-paused) for as long as the container stays paused.
    Two ways to receive them: ``BlockedSignals`` (a signalfd) and
    ``SignalForwarder`` (handlers); ``make_forwarder()`` picks.
    """

    fd = -1  # a signalfd to poll (read() handles what it holds), or -1

    def __init__(self) -> None:
        self.pid = 0
        self.child = 0  # forked, maybe not yet the process (start sets it)
        self._pending: list[int] = []

    def _handle(self, signum: int, _frame: FrameType | None = None) -> None:
        if self.pid:
            try:
                posix.kill(self.pid, signum)  # our child, not reaped yet: never a recycled pid
            except ProcessLookupError:
                pass
        elif signum in (SIGTERM, SIGINT) and not self._child_has_exec():
            raise ExecInterrupted(f"interrupted by signal {signum} before the process started")
        else:
            self._pending.append(signum)

    def _child_has_exec(self) -> bool:
        """Whether the child runs the process already (its exe is no longer ours):
        then a SIGTERM is the process's, queued until start hands us its pid."""
        if not self.child:
            return False
        try:
            theirs, ours = posix.stat(f"/proc/{self.child}/exe"), posix.stat("/proc/self/exe")
        except OSError:
            return False
        return (theirs.st_dev, theirs.st_ino) != (ours.st_dev, ours.st_ino)

    def target(self, pid: int) -> None:
        self.pid = pid
        pending, self._pending = self._pending, []
        for sig in pending:
            self._handle(sig)

    def read(self) -> None:
        """Handle what arrived (fd's signals); handlers need no call."""

    def restore(self) -> None:
        raise NotImplementedError


class SignalForwarder(Forwarder):
    """Python signal handlers: for a process with threads, whose other threads
    would take a signal the main thread blocks, and for `exec -t` (the
    terminal proxy's threads)."""

    def __init__(self) -> None:
        import _signal  # finishes the interpreter's start (ocirt._codebundle)

        super().__init__()
        self._old: dict[int, Any] = {}
        for sig in FORWARDED:
            self._old[sig] = _signal.signal(sig, self._handle)

    def restore(self) -> None:
        import _signal

        for sig, old in self._old.items():
            _signal.signal(sig, old)
        self._old.clear()


class BlockedSignals(Forwarder):
    """FORWARDED blocked and read from a signalfd while we wait (poll with the
    channel, then with the process's pidfd): no `_signal`, so the launcher's
    fast front end needs no main phase for exec (~1.5 ms).  The child inherits
    the mask; ``reset_signals`` empties it right before its execve.  The fd
    goes above FLOOR: the fds below are the ones the process is given."""

    def __init__(self, floor: int) -> None:
        super().__init__()
        self.fd = high_fd(sc.signalfd(FORWARDED), floor)
        self._old_mask = sc.block_signals(FORWARDED)

    def read(self) -> None:
        """Handle every signal that has arrived (may raise ExecInterrupted)."""
        while True:
            try:
                data = posix.read(self.fd, _SIGINFO_SIZE * 16)
            except BlockingIOError:
                return
            for offset in range(0, len(data), _SIGINFO_SIZE):  # ssi_signo leads each record
                self._handle(int.from_bytes(data[offset : offset + 4], "little"))

    def restore(self) -> None:
        """The mask as it was.  What arrived since the last read is dropped first
        (the process is gone, or was never started), as handlers would have."""
        if self.fd < 0:
            return
        try:
            while posix.read(self.fd, _SIGINFO_SIZE * 16):
                pass
        except BlockingIOError:
            pass
        posix.close(self.fd)
        self.fd = -1
        sc.set_signal_mask(self._old_mask)


_SIGINFO_SIZE = 128  # struct signalfd_siginfo


def make_forwarder(floor: int, tty: bool) -> Forwarder:
    """BlockedSignals where it can do: one thread (the others would get the
    signals), no terminal to proxy (threads), a shim that has signalfd."""
    import sys

    if tty or "threading" in sys.modules or not sc.has_signalfd():
        return SignalForwarder()
    return BlockedSignals(floor)


def wait(pid: int, signals: Forwarder | None = None, pidfd: int = -1) -> int:
    """C's exit status as a shell reports it: the code, or 128 + the signal.

    SIGNALS' fd (if any) is read meanwhile, until PIDFD says the process has
    exited (without one: every 50 ms a look)."""
    if signals is not None and signals.fd >= 0:
        _forward_until_exit(pid, signals, pidfd)
    while True:
        try:
            _, status = posix.waitpid(pid, 0)
        except ChildProcessError:
            return 255
        if posix.WIFEXITED(status):
            return posix.WEXITSTATUS(status)
        if posix.WIFSIGNALED(status):
            return 128 + posix.WTERMSIG(status)


def _forward_until_exit(pid: int, signals: Forwarder, pidfd: int) -> None:
    poller = select.poll()
    poller.register(signals.fd, select.POLLIN)
    if pidfd >= 0:
        poller.register(pidfd, select.POLLIN)
    while True:
        ready = {fd for fd, _ in poller.poll(-1 if pidfd >= 0 else 50)}
        if signals.fd in ready:
            signals.read()
        if pidfd in ready or (pidfd < 0 and _has_exited(pid)):
            return


def _has_exited(pid: int) -> bool:
    """Without a pidfd: a look that leaves the zombie for waitpid."""
    try:
        return (
            posix.waitid(posix.P_PID, pid, posix.WEXITED | posix.WNOHANG | posix.WNOWAIT)
            is not None
        )
    except ChildProcessError:
        return True


__all__ = [
    "ExecError",
    "ExecOptions",
    "Forwarder",
    "SignalForwarder",
    "Started",
    "check_status",
    "check_terminal",
    "effective_process",
    "load_process_file",
    "make_forwarder",
    "parse_user",
    "process_from_flags",
    "start",
    "wait",
]
