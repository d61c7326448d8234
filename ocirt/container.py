"""The library API: ``Container`` and its lifecycle.

The CLI is a thin layer over this module; so can any Python program be
(docs/api.md is the tour)::

    from ocirt import Container, CreateOptions, ExecOptions, Resources
    c = Container.create("/run/ocirt", "web", CreateOptions(bundle="/srv/web"))
    c.start()
    c.exec(ExecOptions(args=["nginx", "-s", "reload"])).wait()
    c.update(Resources(memory_limit=256 << 20))
    c.kill(signal.SIGTERM)
    c.delete(force=True)

Every method raises ``ocirt.errors.OcirtError`` (or a subclass) with runc's
words; none prints or exits.  Warnings (a failed poststart hook, kernel
memory settings) are returned where a method has a result to give
(``start``, ``delete``) and else go to ``ocirt.debug.warn``.

The short commands (start, kill, delete, list; `state` not even this one:
``ocirt.record.container_state``) import only this module, ``ocirt.state``,
``ocirt.record``, ``ocirt.errors``, ``ocirt._fastjson`` and C modules
(``posix``, not ``os``: see
``ocirt.record``); ``ocirt.cgroups`` is imported when a cgroup must be
changed or its driver is not one ``ocirt.record`` reads.  ``create``, ``run``,
``exec``, ``update`` and ``events`` pull in the rest (validation, the init,
``ocirt.options``, ``ocirt.foreground``) lazily.
"""

import posix
import sys

from ocirt import _fastjson
from ocirt.errors import ContainerNotExist, ContainerNotRunning, OcirtError, lower_first
from ocirt.record import cgroup_leaves, remove_empty_cgroup
from ocirt.state import (
    START_SOCKET,
    StateDir,
    derive_status,
    init_is_alive,
    is_frozen,
    list_ids,
    public_state,
)

TYPE_CHECKING = False  # `typing`, `signal`, `socket`, `json` cost ms each: see _fastjson
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence
    from typing import Any

    from ocirt.cgroups import Manager
    from ocirt.foreground import ExecProcess
    from ocirt.options import CreateOptions, ExecOptions, Resources

SIGKILL = 9

KILL_WAIT_SECONDS = 10.0
START_KILLED_WAIT_SECONDS = 1.0  # start's connection failed: is the init dying?


def stage2_failure(reply: bytes) -> str:
    """The sentence for stage 2's "errno\nwhat failed" (ocirt/_shim/stage2.c's fail()).

    The errno's text is added here, in the host's libc's words (stage 2 may
    be built with another libc), spelled as Go's and runc's: lower case first.
    """
    errno_text, _, what = reply.decode(errors="replace").partition("\n")
    if not errno_text.isdigit() or not what:
        return f"container init failed: {reply!r}"
    if errno_text == "0":  # WHAT says it all (a hook's "exit status 1")
        return what
    return f"{what}: {lower_first(posix.strerror(int(errno_text)))}"


class Container:
    """A container under a state root (``--root``): made by ``create``/``run``,
    found again by ``load``.

    A loaded container holds the lock of its state directory (unless
    ``load(lock=False)``) until ``close()`` (or the end of a ``with`` block);
    ``exec`` releases it before the new process starts.  ``record`` is the
    state as ocirt stored it; ``state()`` is runc's public view of it.
    """

    def __init__(self, state_dir: StateDir, record: "dict[str, Any]") -> None:
        self._dir = state_dir
        self.record = record

    # -- constructors ---------------------------------------------------------
    @classmethod
    def create(cls, root: str, container_id: str, opts: "CreateOptions") -> "Container":
        """Create the container (runc create): its init waits for ``start``.

        Raises ``ContainerExists``, ``ConfigError`` (config.json) or
        ``OcirtError`` (anything else, nothing left behind).
        """
        from ocirt.process.parent import create

        record, _pid = create(root, container_id, opts)
        return cls(StateDir(root, container_id), record)

    @classmethod
    def run(
        cls,
        root: str,
        container_id: str,
        opts: "CreateOptions",
        *,
        detach: bool = False,
        keep: bool = False,
        subreaper: bool = False,
        forward_signals: bool = False,
    ) -> int:
        """Create, start and wait for the container (runc run); its exit status.

        The status is the shell's: the init's exit code, or 128 + the signal
        that killed it.  The container is deleted afterwards unless KEEP.
        DETACH: return 0 once it runs (and leave it).  SUBREAPER: become the
        child subreaper of this process, to reap the container's orphans;
        FORWARD_SIGNALS: pass the signals this process receives on to the
        container's init while waiting (main thread only).  With
        ``process.terminal`` and no console socket, our stdin/stdout are
        the container's terminal while it runs.
        """
        from ocirt.foreground import run_container

        return run_container(
            root,
            container_id,
            opts,
            detach=detach,
            keep=keep,
            subreaper=subreaper,
            forward_signals=forward_signals,
        )

    @classmethod
    def load(cls, root: str, container_id: str, lock: bool = True) -> "Container":
        """The container ID under ROOT (``ContainerNotExist`` if there is none).

        LOCK: hold its state directory's lock (commands that change it do);
        readers (state, list, ps, events) do without.
        """
        state_dir = StateDir(root, container_id)
        state_dir.open(lock=lock)
        try:
            record = state_dir.read()
        except BaseException:
            state_dir.close()
            raise
        return cls(state_dir, record)

    def close(self) -> None:
        """Release the lock on the state dir."""
        self._dir.close()

    def __enter__(self) -> "Container":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- queries --------------------------------------------------------------
    @property
    def id(self) -> str:
        return self.record["id"]

    @property
    def pid(self) -> int:
        return self.record["pid"]

    @property
    def status(self) -> str:
        return derive_status(self.record, paused=is_frozen(self.record))

    def state(self) -> "dict[str, Any]":
        """runc state's object: ociVersion, id, status, pid, bundle, rootfs,
        created, owner, annotations."""
        return public_state(self.record, self.status)

    def processes(self) -> list[int]:
        """Host pids of every process of the container (runc ps).

        Its cgroup's members, in the cgroup's order, when it has a cgroup
        (and the init first if it is alive but not there: rootless, a cgroup
        it could not join); else the init and the processes sharing its pid
        namespace.
        """
        alive = init_is_alive(self.record)
        if self.record.get("cgroup"):
            from ocirt.cgroups import manager_from_record

            manager = manager_from_record(self.record)
            if not manager.exists():
                return [self.pid] if alive else []
            pids = manager.pids()
            if alive and self.pid not in pids:
                pids.insert(0, self.pid)
            return pids
        if not alive:
            return []
        pids = [self.pid]
        try:
            own = posix.stat(f"/proc/{self.pid}/ns/pid").st_ino
            if own == posix.stat("/proc/self/ns/pid").st_ino:
                return pids  # the host's pid namespace: only the init is known to be ours
        except OSError:
            return pids
        for name in posix.listdir("/proc"):
            if not name.isdigit() or int(name) == self.pid:
                continue
            try:
                if posix.stat(f"/proc/{name}/ns/pid").st_ino == own:
                    pids.append(int(name))
            except OSError:
                continue
        return pids

    def stats(self) -> "dict[str, Any]":
        """Resource usage (what ``runc events --stats`` prints as ``data``):
        cpu, memory, pids, blkio, hugetlb... from the container's cgroup."""
        return self._stats_manager().stats()

    def events(
        self, interval: float = 5.0, *, on_error: "Callable[[Exception], None] | None" = None
    ) -> "Iterator[dict[str, Any]]":
        """Its events as runc's ``events`` prints them: ``{"type": "stats", "id",
        "data"}`` every INTERVAL seconds, ``{"type": "oom", "id"}`` per OOM kill
        in its cgroup; the iterator ends when the init has gone.

        A failure to read the stats goes to ON_ERROR (default: a warning) and
        the stream goes on.  Checked now, not at the first ``next()``.
        """
        if interval <= 0:
            raise OcirtError("duration interval must be greater than 0")
        manager = self._stats_manager()
        from ocirt.events import stream

        return stream(self.record, manager, interval, on_error or _warn_error)

    def _stats_manager(self) -> "Manager":
        if self.status == "stopped":
            raise OcirtError(f"container with id {self.id} is not running")
        return self._cgroup_manager("cannot get container stats")

    def _cgroup_manager(self, what: str) -> "Manager":
        """The container's cgroup manager, or runc's error (WHAT: ...) when it has none."""
        if not self.record.get("cgroup"):
            raise OcirtError(f"{what}: cgroups not configured for container")
        from ocirt.cgroups import manager_from_record

        return manager_from_record(self.record)

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> list[str]:
        """Run the program; returns warnings (failed poststart hooks: the spec's
        MUST is a warning, the rest of the hooks and the lifecycle go on)."""
        status = self.status
        if status == "stopped":
            raise OcirtError("cannot start a container that has stopped")
        if status == "paused":  # created, then paused before start: runc's words
            raise OcirtError("cannot start a container in the paused state")
        if status != "created":
            raise OcirtError("cannot start an already running container")
        try:
            reply = self._release_init(public_state(self.record, status))
        except (OSError, OcirtError) as e:
            # Killed while we released it (a racing `kill ID 9`): the connection
            # was refused or reset, maybe a moment before the dying init is a
            # zombie (its files are closed first); say what happened, as runc.
            # Not for other failures (a seccomp agent out of reach): their words.
            lost = (e, e.__cause__)
            if any(isinstance(x, (ConnectionError, FileNotFoundError)) for x in lost) and (
                self._init_exits_within(START_KILLED_WAIT_SECONDS)
            ):
                raise OcirtError("cannot start a container that has stopped") from None
            raise
        if reply:
            raise OcirtError(stage2_failure(reply))
        try:
            posix.unlink(self._dir.file(START_SOCKET))
        except FileNotFoundError:
            pass
        _debug(f"start: stage 2 of init {self.pid} has exec'd the container's program")
        return self._run_hooks("poststart", "running", fatal=False)

    def _release_init(self, state: "dict[str, Any]") -> bytes:
        """Send STATE to the waiting stage 2; its reply is empty when exec worked."""
        import _socket  # the C module: `socket` imports enum, selectors...

        state_json = _fastjson.dumps(state).encode()
        s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        try:
            try:
                s.connect(self._dir.socket_path(START_SOCKET))
            except OSError as e:
                raise OcirtError(f"cannot start container: {e.strerror}") from e
            s.sendall(state_json + b"\0")  # stage 2 reads the state up to the NUL
            config = self.record.get("config") or {}
            if _notifies(config):
                # Stage 2 first hands over its seccomp notify listener, which
                # goes on to listenerPath from here (the host side) before
                # stage 2 may go on: the connection stays open both ways.
                from ocirt.linux.seccomp import read_start_reply

                return read_start_reply(s, state, config)
            s.shutdown(_socket.SHUT_WR)
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        finally:
            s.close()
        return b"".join(chunks)

    def exec(self, what: "ExecOptions | Sequence[str]") -> "ExecProcess":
        """Start one more process in the container (runc exec); returns once it runs.

        WHAT: ``ExecOptions``, or just the command (the container's process
        with these args).  The state directory's lock is released before the
        process starts.  Raises ``ExecError`` (runc's "exec failed: ...",
        exit status 255), with nothing left running.
        """
        from ocirt.foreground import exec_process

        return exec_process(self, what)

    def pause(self) -> None:
        """Freeze every process of the container (runc pause)."""
        self._hold_lock()  # kill's thaw after SIGKILL waits for it (see kill)
        # runc pauses created and running containers; a paused one is "not running".
        if self.status == "stopped":
            raise ContainerNotRunning()
        manager = self._cgroup_manager("cannot toggle freezer")
        if manager.is_frozen():
            raise ContainerNotRunning()
        manager.freeze()

    def resume(self) -> None:
        """Thaw a paused container (runc resume)."""
        self._hold_lock()
        if self.status == "stopped":
            raise OcirtError("container not paused")
        manager = self._cgroup_manager("cannot toggle freezer")
        if not manager.is_frozen():
            raise OcirtError("container not paused")
        manager.thaw()

    def _hold_lock(self) -> None:
        """The state dir's lock, as `load` takes it (a no-op then), for a Container
        from `create` or `load(lock=False)`: held from here until `close()`, the
        library's rule for a Container that changes its container.  The
        container must still be there."""
        if not self._dir.lock():
            raise ContainerNotExist(self.id)

    def update(self, resources: "Resources | dict[str, Any]") -> None:
        """Change its resource limits (runc update): RESOURCES is ``Resources``
        or a runtime-spec ``linux.resources`` object; what it omits (or sets
        to 0) is left as it is."""
        spec = resources if isinstance(resources, dict) else resources.to_dict()
        if (spec.get("memory") or {}).get("kernel"):  # kernelTCP is set where the kernel has it
            _warn("Kernel memory settings are ignored and will be removed")
        if self.status == "stopped":
            raise ContainerNotRunning()
        self._cgroup_manager("cannot update resources").set(spec, update=True)

    def kill(self, sig: int, all_processes: bool = False) -> None:
        """Send SIG to the init (runc kill), or with ALL_PROCESSES to every
        process of the container."""
        if not init_is_alive(self.record):
            if all_processes:
                return  # the shim's `kill --all ID 9` after the init died
            raise ContainerNotRunning()
        if all_processes:
            signal_members(self.processes, sig)
        else:
            self._signal_init(sig)
        if sig == SIGKILL and is_frozen(self.record) and self._dir.lock():
            # A frozen task dies only once thawed.  Under the lock, which
            # `pause` holds while it freezes (it would find its cgroup thawed
            # under it), and only if no `delete` has meanwhile removed the
            # container (the cgroup is gone, or is a new container's of this id).
            # Held from then until close(), as after `load`.
            from ocirt.cgroups import manager_from_record

            manager_from_record(self.record).thaw()

    def _signal_init(self, sig: int) -> None:
        from ocirt.linux.syscalls import pidfd_send_signal

        try:
            pidfd = posix.pidfd_open(self.pid)
        except ProcessLookupError:
            raise ContainerNotRunning() from None
        try:
            # The pidfd pins the process: re-check it is still our init (its
            # start time: the pid may be a new process's), then signal.
            if not init_is_alive(self.record):
                raise ContainerNotRunning()
            pidfd_send_signal(pidfd, sig)
        except ProcessLookupError:
            raise ContainerNotRunning() from None
        except OSError as e:
            raise OcirtError(f"unable to signal init: {e.strerror.lower()}") from e
        finally:
            posix.close(pidfd)

    def delete(self, force: bool = False) -> list[str]:
        """Remove the container; returns warnings (failed poststop hooks)."""
        status = self.status
        if status in ("running", "paused") and not force:
            raise OcirtError(f"cannot delete container {self.id} that is not stopped: {status}")
        warnings: list[str] = []
        if ((self.record.get("config") or {}).get("linux") or {}).get("netDevices"):
            from ocirt.linux import netdevices  # pyroute2: only for containers that use it

            warnings += netdevices.restore(self.record, init_alive=status != "stopped")
        if status != "stopped":
            # As runc: with a pid namespace of its own, killing the init kills
            # every process of the container (and nothing else that shares a
            # joined cgroup); without one, everything in its cgroup.
            try:
                self.kill(SIGKILL, all_processes=not self._has_own_pid_namespace())
            except ContainerNotRunning:
                pass  # it died since `status` looked (a racing `kill ID 9`): nothing to kill
            self._wait_for_init_exit()
        if not self._has_own_mount_namespace():
            from ocirt.linux import hostmounts  # its mounts are in the host's table

            hostmounts.remove_recorded(self._dir.path)
        self._remove_cgroup()
        warnings += self._run_hooks("poststop", "stopped", fatal=False)
        self._dir.remove()
        _debug(f"delete: container {self.id} ({status}) removed: cgroup and state directory")
        return warnings

    def _has_own_pid_namespace(self) -> bool:
        return self._has_own_namespace("pid")

    def _has_own_mount_namespace(self) -> bool:
        return self._has_own_namespace("mount")

    def _has_own_namespace(self, kind: str) -> bool:
        namespaces = ((self.record.get("config") or {}).get("linux") or {}).get("namespaces")
        return any(ns.get("type") == kind and not ns.get("path") for ns in namespaces or ())

    def _remove_cgroup(self) -> None:
        """Kill what is left in the cgroup (e.g. after an OOM kill), then remove it."""
        if not self.record.get("cgroup") or remove_empty_cgroup(self.record):
            return
        from ocirt.cgroups import manager_from_record, procs_in

        manager = manager_from_record(self.record)
        cg = self.record["cgroup"]
        systemd = cg.get("driver") == "systemd"
        if not manager.exists():
            if systemd:
                manager.destroy()  # a failed (e.g. OOM-killed) scope stays loaded: reset it
            return
        if systemd:
            cg = dict(cg["inner"], created=list(manager.paths().values()))  # the scope is ours
        leaves = cgroup_leaves(cg)
        # Only what sits in a cgroup create made: a joined, pre-existing one is
        # shared with processes that are not ours (and destroy() keeps it).
        ours = leaves & set(cg.get("created") or ())

        def leftovers() -> list[int]:
            return [pid for directory in ours for pid in procs_in(directory)]

        signal_members(leftovers, SIGKILL)
        if manager.is_frozen():
            manager.thaw()
        manager.destroy()

    def _wait_for_init_exit(self) -> None:
        if not self._init_exits_within(KILL_WAIT_SECONDS):
            raise OcirtError(f"container {self.id} did not exit after SIGKILL")

    def _init_exits_within(self, seconds: float) -> bool:
        """Wait up to SECONDS for the init to be gone (or a zombie); True if it is."""
        import select
        import time  # only here: its import reads /etc/localtime

        try:
            pidfd = posix.pidfd_open(self.pid)
        except ProcessLookupError:
            return True
        try:
            deadline = time.monotonic() + seconds
            while init_is_alive(self.record) and time.monotonic() < deadline:
                select.select([pidfd], [], [], 0.05)
        finally:
            posix.close(pidfd)
        return not init_is_alive(self.record)

    def _run_hooks(self, kind: str, status: str, fatal: bool) -> list[str]:
        hooks_config = (self.record.get("config") or {}).get("hooks") or {}
        if not hooks_config.get(kind):
            return []
        from ocirt.linux import hooks
        from ocirt.spec import Hook

        state_json = _fastjson.dumps(public_state(self.record, status)).encode()
        warnings = []
        for entry in hooks_config[kind]:
            try:
                hooks.run(Hook.from_dict(entry), state_json, kind)
            except OcirtError as e:
                if fatal:
                    raise
                warnings.append(str(e))
        return warnings

    def wait(self) -> int:
        """Exit code of the init; only for the process that created it (the
        init is its child)."""
        while True:
            try:
                _, status = posix.waitpid(self.pid, 0)
            except InterruptedError:
                continue
            except ChildProcessError:
                return 0
            if posix.WIFEXITED(status):
                return posix.WEXITSTATUS(status)
            if posix.WIFSIGNALED(status):
                return 128 + posix.WTERMSIG(status)

    # Last in the class: a method named `list` hides the builtin for the
    # annotations of the methods defined after it.
    @staticmethod
    def list(root: str) -> "list[dict[str, Any]]":
        """runc list: the public state of every container under ROOT, with
        ``owner`` (its state directory's owner's name)."""
        return list_containers(root)


def _warn(message: str) -> None:
    from ocirt import debug

    debug.warn(message)


def _warn_error(error: Exception) -> None:
    _warn(str(error))


def _notifies(config: "dict[str, Any]") -> bool:
    """Whether linux.seccomp has SCMP_ACT_NOTIFY rules (then stage 2 hands over a listener)."""
    seccomp = (config.get("linux") or {}).get("seccomp") or {}
    return any(rule.get("action") == "SCMP_ACT_NOTIFY" for rule in seccomp.get("syscalls") or ())


def _debug(message: str) -> None:
    """A --debug line; ocirt.debug is loaded only when the CLI set it up (see there),
    so the short commands do not import it to find it off."""
    debug = sys.modules.get("ocirt.debug")
    if debug is not None:
        debug.log(message)


def delete_abandoned(root: str, container_id: str) -> None:
    """`delete --force` of an id that is no container: undo a create killed midway.

    A create that was killed (SIGKILL, the OOM killer) before it committed
    state.json leaves its directory with what it staged: its intent (the
    cgroups it was making) and, from step 5 on, the record with the init's pid
    (``StateDir.open_uncommitted``).  That is deleted as a container: the init
    killed if it lives (it outlives create once it is stage 2), what is left in
    the cgroups create made killed, the cgroups and any host mounts removed,
    then the directory.  No poststop hooks: the container never existed for
    the caller, as after a create that failed.  Nothing to do for an id that
    has no directory, or whose create is still running (it holds the lock:
    this waits for it, and a create that succeeds meanwhile is left alone).
    """
    state_dir = StateDir(root, container_id)
    record = state_dir.open_uncommitted()
    if record is None:
        return
    with Container(state_dir, record) as abandoned:
        if not record:
            state_dir.remove()  # killed before it wrote anything: an empty directory
            return
        config = record.get("config") or {}
        record["config"] = {key: value for key, value in config.items() if key != "hooks"}
        abandoned.delete(force=True)
    if record.get("pid_file_temp"):
        try:  # killed between writing the pid file and renaming it into place
            posix.unlink(record["pid_file_temp"])
        except FileNotFoundError:
            pass


def list_containers(root: str) -> "list[dict[str, Any]]":
    """State of every container under ROOT, with its owner's name."""
    result = []
    for container_id in list_ids(root):
        try:
            c = Container.load(root, container_id, lock=False)
        except ContainerNotExist:
            continue
        with c:
            state = public_state(c.record, c.status)
            state["owner"] = _owner_name(c._dir.path)
            result.append(state)
    return result


def _owner_name(path: str) -> str:
    uid = posix.stat(path).st_uid
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (KeyError, ImportError):
        return f"#{uid}"


def signal_members(members: "Callable[[], Iterable[int]]", sig: int) -> None:
    """Send SIG to every pid MEMBERS() lists (a cgroup's, a pid namespace's).

    A listed process may exit and its pid go to a new host process before
    the signal is sent: each pid is pinned with a pidfd first, and signalled
    only if a second listing, taken once all are pinned, still holds it (the
    pinned process is then the member: a pid names one process at a time;
    if it exits after that, the pidfd's signal fails with ESRCH).
    """
    from ocirt.linux.syscalls import pidfd_send_signal

    pidfds: dict[int, int] = {}
    try:
        for pid in dict.fromkeys(members()):
            try:
                pidfds[pid] = posix.pidfd_open(pid)
            except ProcessLookupError:
                continue
        still = set(members()) if pidfds else set()
        for pid, pidfd in pidfds.items():
            if pid not in still:
                continue
            try:
                pidfd_send_signal(pidfd, sig)
            except ProcessLookupError:
                continue
            except OSError as e:
                raise OcirtError(f"unable to signal init: {e.strerror.lower()}") from e
    finally:
        for pidfd in pidfds.values():
            posix.close(pidfd)
