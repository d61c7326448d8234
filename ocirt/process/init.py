"""The container's init, Python stage: everything between clone() and stage 2.

Runs in the child of ``clone()``, already in the new namespaces.  Every
module it needs is imported before the fork, in the runtime: the ones every
container needs at the top of this file, the ones only some configs need
(seccomp, a terminal, hooks, sysctl, personality, scheduling, LSM labels,
tmpfs copy-up) by ``prepare(plan)``, which ``create`` calls before clone()
and which also compiles the seccomp profile there (from a cache when it can).
The init itself never imports: ``seal_imports()`` is its first step, since
after pivot_root the paths on ``sys.path`` would name the container's files.
Numbered steps mirror the messages in ``ocirt.process.channel``:

  0. join our cgroups (v1: "0" to the tasks files the parent opened)
  1. user namespace: ask the parent for id maps, become root in it
  2. wait until the parent has placed us in our cgroup (PROCEED)
  3. join namespaces given by path; unshare cgroup/time namespaces
  4. hostname, domainname, loopback
  5. rootfs: mounts, /dev  -> parent runs prestart/createRuntime hooks
  6. createContainer hooks, pivot_root, read-only root, masked/readonly paths
  7. console, rlimits, oom_score_adj, umask, fds, user, capabilities, nnp
  8. READY, then fexecve the stage-2 program, which waits for ``start``
"""

from __future__ import annotations

import posix  # not os (~1.2 ms of imports): ocirt.linux.pathnames has os.path's few uses
import sys

from ocirt import debug
from ocirt.errors import OcirtError
from ocirt.linux import capabilities, devices, namespaces, network, procfs, rlimits, rootfs, user
from ocirt.linux import syscalls as sc
from ocirt.linux.paths import ensure_dir
from ocirt.process.channel import Msg
from ocirt.process.common import (  # the cwd's, look_path, reset_signals: exec's too
    close_fds_above,
    enter_cwd_as_root,
    enter_cwd_as_user,
    high_fd,
    join_cgroups_by_tasks,
    look_path,
    reset_signals,
    seal_imports,
)
from ocirt.spec import _REQUIRED, Spec, _Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn


class InitPlan(_Record):
    """Everything the init needs, prepared by the parent before clone()."""

    __slots__ = (
        "spec", "bundle", "container_id", "channel", "listen_fd", "stage2_fd", "ns_fds",
        "preserve_fds", "no_pivot", "console_sock", "mount_trees", "cgroup_files",
        "parent_channel_fd", "seccomp",
    )  # fmt: skip
    _fields = {
        "spec": _REQUIRED,
        "bundle": _REQUIRED,
        "container_id": _REQUIRED,
        "channel": _REQUIRED,
        "listen_fd": _REQUIRED,
        "stage2_fd": _REQUIRED,
        "ns_fds": dict,
        "preserve_fds": 0,
        "no_pivot": False,
        "console_sock": None,
        "mount_trees": dict,  # mounts[] index -> detached tree of its source (rootfs.source_trees)
        "cgroup_files": tuple,  # ((fd, dir), ...): v1 tasks files to join (Manager.tasks_files)
        "parent_channel_fd": -1,  # the parent's end of the channel, which clone() copied
        # linux.seccomp compiled before clone() (prepare): a CompiledFilter, or
        # the error to report at the step where the init needs it; None: not yet
        "seccomp": None,
    }

    @property
    def new_user_ns(self) -> bool:
        return self.spec.linux.has_new_namespace("user")

    @property
    def in_user_ns(self) -> bool:
        return self.spec.linux.namespace("user") is not None


def optional_modules(spec: Spec) -> list[str]:
    """The ocirt.linux modules this config needs beyond those imported above.

    Each test is the one made where the module is used (here, in
    ocirt.linux.rootfs for lsm and copyup): a config that uses none of these
    features saves ~1 ms of imports on every create (docs/benchmarks.md).
    """
    process, linux = spec.process, spec.linux
    wanted = {
        "seccomp": bool(linux.seccomp),
        "console": bool(process and process.terminal),
        "hooks": bool(spec.hooks.get("createContainer") or spec.hooks.get("startContainer")),
        "sysctl": bool(linux.sysctl),
        "personality": bool(linux.personality),
        "scheduling": bool(
            linux.memory_policy or (process and (process.io_priority or process.scheduler))
        ),
        "lsm": bool(
            linux.mount_label or (process and (process.apparmor_profile or process.selinux_label))
        ),
        "copyup": any("tmpcopyup" in m.options for m in spec.mounts),
    }
    return [name for name, needed in wanted.items() if needed]


def preload(spec: Spec) -> None:
    """Import what ``optional_modules(spec)`` names; in the runtime, before clone()."""
    for name in optional_modules(spec):
        __import__(f"ocirt.linux.{name}")


def prepare(plan: InitPlan) -> InitPlan:
    """In the runtime, before clone(): ``preload``, and PLAN with the seccomp program.

    The program comes from ``ocirt.linux.seccomp_cache`` when this profile was
    compiled before (~16 ms of libseccomp for a manager's profile otherwise),
    which only the runtime can read: the init needs the program after
    pivot_root.  A profile that does not compile fails the create where it
    did when the init compiled it (its message, after the mounts).
    """
    preload(plan.spec)
    config = plan.spec.linux.seccomp
    if not config:
        return plan
    from ocirt.linux import seccomp_cache

    try:
        compiled: object = seccomp_cache.compile_filter(config)
    except (OcirtError, OSError) as e:
        compiled = e
    fields = {name: getattr(plan, name) for name in InitPlan._fields}
    return InitPlan(**{**fields, "seccomp": compiled})


def run(plan: InitPlan) -> NoReturn:
    """The child's entry point; never returns."""
    try:
        if plan.parent_channel_fd >= 0:
            # Only the parent may hold its end: then its death (SIGKILL before
            # the PDEATHSIG below is set) reaches us as EOF at the next message
            # we wait for, instead of a wait for ever with its state dir's lock.
            posix.close(plan.parent_channel_fd)
        seal_imports()  # what is not loaded yet must fail here, not come from the rootfs
        plan.channel.forward_debug()  # our stdio is the container's: lines go to the parent
        sc.prctl(sc.PR_SET_PDEATHSIG, 9)  # die with `ocirt create` until READY
        # 0. our v1 cgroups, first: everything after runs (and allocates) there
        join_cgroups_by_tasks(plan.cgroup_files, "unable to apply cgroup configuration")
        argv, env = _setup(plan)
        sc.prctl(sc.PR_SET_PDEATHSIG, 0)
        plan.channel.send(Msg.READY)
        posix.execve(plan.stage2_fd, argv, env)
        raise OSError(0, "stage 2 returned")
    except BaseException as e:  # whatever it is, the parent must hear of it
        plan.channel.report(e)
    posix._exit(1)


def _setup(plan: InitPlan) -> tuple[list[str], dict[str, str]]:
    spec = plan.spec
    process = spec.process
    assert process is not None
    linux = spec.linux

    # 1. user namespace
    if plan.new_user_ns:
        plan.channel.send(Msg.NEED_ID_MAPS)
        plan.channel.expect(Msg.ID_MAPS_DONE)
    # A user namespace given by path was joined before clone (parent._fork_init).
    if plan.in_user_ns:
        posix.setresgid(0, 0, 0)
        posix.setresuid(0, 0, 0)

    # 2. go on; the parent writes our limits meanwhile (see CgroupGate)
    proceed = plan.channel.expect(Msg.PROCEED)
    hook_state = proceed.get("state", "").encode()  # for the createContainer hooks
    cgroup_gate = CgroupGate(plan, in_cgroup=bool(proceed.get("in_cgroup")))

    # 3. namespaces
    namespaces.join(plan.ns_fds, skip=("user", "pid"))
    namespaces.unshare_late(linux, kinds=("time",))
    debug.log(f"init: joined {', '.join(sorted(plan.ns_fds)) or 'no namespaces'} by path")

    # 4. identity and network
    if spec.hostname:
        sc.sethostname(spec.hostname)
    if spec.domainname:
        sc.setdomainname(spec.domainname)
    if linux.has_new_namespace("network"):
        network.bring_up_loopback()

    # 5. rootfs
    root_fd, deferred_ro = rootfs.prepare(spec, plan.bundle, cgroup_gate.paths, plan.mount_trees)
    for tree in plan.mount_trees.values():
        posix.close(tree)
    # From here on everything runs in the container's cgroup, under its
    # device rules (the parent writes them before CGROUP_READY): mknod too.
    cgroup_gate()
    if devices.needs_dev_setup(spec):
        devices.create_devices(root_fd, spec, plan.in_user_ns)
        devices.create_symlinks(root_fd)
    rootfs.remount_deferred(root_fd, deferred_ro)
    _ensure_cwd(root_fd, process.cwd)
    if spec.hooks.get("prestart") or spec.hooks.get("createRuntime"):
        plan.channel.send(Msg.RUN_RUNTIME_HOOKS)
        plan.channel.expect(Msg.HOOKS_DONE)

    # 6. createContainer hooks run in our namespaces, before pivot_root
    if spec.hooks.get("createContainer"):
        from ocirt.linux import hooks  # preloaded (see optional_modules)

        for hook in spec.hooks["createContainer"]:
            # In the rootfs, as runc: "./lib/x" is the container's.
            hooks.run(hook, hook_state, "createContainer", cwd=spec.root_path)
    rootfs.enter(root_fd, spec.root_path, plan.no_pivot, linux.has_new_namespace("mount"))
    debug.log(f"init: {_how_entered(plan)} {spec.root_path}")
    posix.close(root_fd)
    if linux.sysctl:
        from ocirt.linux import sysctl  # preloaded

        sysctl.apply(linux.sysctl)
    # runc's order: read-only first, then the masks on top (the other way the
    # read-only bind would copy the masks beneath it, each mount twice).
    rootfs.readonly_paths(linux.readonly_paths)
    rootfs.mask_paths(linux.masked_paths)
    rootfs.finish_propagation(spec)
    masked, readonly = len(linux.masked_paths), len(linux.readonly_paths)
    debug.log(f"init: {masked} masked and {readonly} read-only paths")

    # 7. the process's own attributes
    if process.terminal:
        _setup_terminal(plan)  # /dev/console may be made in the image's /dev
    if spec.root_readonly:  # after the console, as runc
        rootfs.make_root_readonly()
    rlimits.apply(process.rlimits)
    user.set_oom_score_adj(process.oom_score_adj)
    _apply_execution_attributes(spec)
    hooks_fd = _start_container_hooks_fd(plan)
    _prepare_fds(plan, hooks_fd)
    if hooks_fd >= 0:
        posix.set_inheritable(hooks_fd, True)
    env = user.process_env(process.env, process.user.uid)  # reads /etc/passwd: as root
    # Non-dumpable from here to stage 2's execve: once our capabilities are
    # the container's, a container process (of a pod sharing our pid
    # namespace) could ptrace us or open our /proc/PID/fd and exe, the host's
    # ocirt (CVE-2016-9962, CVE-2019-5736).  Not earlier: in a new user
    # namespace /proc/self files would then be host root's (oom_score_adj).
    sc.prctl(sc.PR_SET_DUMPABLE, 0)
    caps = process.capabilities
    if caps is not None:
        capabilities.drop_bounding(caps)
        capabilities.keep_caps_across_setuid(True)
    entered = enter_cwd_as_root(process.cwd)
    seccomp_arg = _seccomp_for_stage2(plan)  # before the user switch: see there
    user.switch(process.user, plan.in_user_ns)
    user.set_umask(process.user)
    if not entered:
        enter_cwd_as_user(process.cwd)
    path = look_path(process.args[0], process.env_value("PATH", ""))
    if caps is not None:
        capabilities.keep_caps_across_setuid(False)
        capabilities.apply_sets(caps)
    if process.no_new_privileges:
        sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
    debug.log(
        f"init: uid {process.user.uid} gid {process.user.gid}, cwd {process.cwd},"
        f" no_new_privileges {process.no_new_privileges}; exec stage 2, then {path} at start"
    )

    reset_signals()
    # Last: an LSM label applies from the next execve on (stage 2's).
    if process.apparmor_profile or process.selinux_label:
        from ocirt.linux import lsm  # preloaded

        lsm.apply_on_exec(process.apparmor_profile, process.selinux_label)
    argv = ["ocirt-init", str(plan.listen_fd), seccomp_arg, str(hooks_fd), path, *process.args]
    return argv, env


def _how_entered(plan: InitPlan) -> str:
    if not plan.spec.linux.has_new_namespace("mount"):
        return "chroot (no mount namespace of its own) into"
    return "chroot (--no-pivot) into" if plan.no_pivot else "pivot_root into"


def _seccomp_for_stage2(plan: InitPlan) -> str:
    """Stage 2's SECCOMP argument (see stage2.c): "-1" or "FD,FLAGS".

    Normally stage 2 loads the program right before execve.  Without
    no_new_privs that needs CAP_SYS_ADMIN, which the program may not keep:
    then we load it here, while we still have our privileges (runc does the
    same), and a notify listener goes to the agent now, by way of `create`
    (as runc's): we only write its number, `create` takes it (pidfd_getfd)
    and answers once the agent has it; a syscall of ours the profile
    notifies meanwhile waits for the agent, who has the fd by then.  The
    memfd is placed above the preserved fds, which reach the program as
    they are.
    """
    config = plan.spec.linux.seccomp
    if not config:
        return "-1"
    from ocirt.linux import seccomp  # preloaded

    compiled = plan.seccomp if plan.seccomp is not None else seccomp.compile_filter(config)
    if isinstance(compiled, BaseException):
        raise compiled
    floor = 3 + plan.preserve_fds
    if seccomp.must_load_early(plan.spec.process):
        listener = seccomp.load_for_handover(compiled)
        if listener >= 0:  # close-on-exec: gone with the execve of stage 2
            plan.channel.announce_fd(Msg.SECCOMP_LISTENER, listener)
            plan.channel.expect(Msg.LISTENER_SENT)
            seccomp.end_handover()
        return "-1"
    fd = seccomp.program_memfd(compiled, floor)
    posix.set_inheritable(fd, True)
    return f"{fd},{compiled.flags}"


def _apply_execution_attributes(spec: Spec) -> None:
    """Inherited across fork and kept across execve: set once, here, as root.

    Before capabilities are dropped: a real-time policy, a negative nice or
    the RT I/O class need CAP_SYS_NICE / CAP_SYS_ADMIN.
    """
    process = spec.process
    if spec.linux.personality:
        from ocirt.linux import personality  # preloaded

        personality.apply(spec.linux.personality)
    if spec.linux.memory_policy or process.io_priority or process.scheduler:
        from ocirt.linux import scheduling  # preloaded

        scheduling.apply_memory_policy(spec.linux.memory_policy)
        scheduling.apply_io_priority(process.io_priority)
        scheduling.apply_scheduler(process.scheduler)


class CgroupGate:
    """Waits (once) until we are in our cgroup and its limits are written.

    ``paths()`` is for the steps that need only the first, the cgroup mount
    (which reads our cgroup paths): when PROCEED said we are in our cgroups
    already (step 0, or cloned into it), it does not wait.  The parent still
    moves us itself where we could not join at step 0 (a systemd scope; the
    cgroup2 directory of a hybrid host when a joined user namespace kept us
    from being cloned into it).  Calling the gate waits for CGROUP_READY, the
    limits: at the latest before the /dev nodes (a v1 device list is written
    from "deny all").  The first of them unshares the cgroup namespace, whose
    root is the cgroup we are in.
    """

    def __init__(self, plan: InitPlan, in_cgroup: bool) -> None:
        self._plan = plan
        self._in_cgroup = in_cgroup
        self._ready = False
        self._paths: dict[str, str] | None = None

    def paths(self) -> dict[str, str]:
        """/proc/self/cgroup as {controllers: path}, once we are in our cgroup."""
        if not self._in_cgroup:
            self()
        if self._paths is None:
            namespaces.unshare_late(self._plan.spec.linux, kinds=("cgroup",))
            self._paths = procfs.cgroup_paths()
        return self._paths

    def __call__(self) -> None:
        if not self._ready:
            self._plan.channel.expect(Msg.CGROUP_READY)
            self._ready = self._in_cgroup = True
        self.paths()


def _start_container_hooks_fd(plan: InitPlan) -> int:
    """A memfd holding the startContainer hooks for stage 2, or -1."""
    hooks_list = plan.spec.hooks.get("startContainer", ())
    if not hooks_list:
        return -1
    from ocirt.linux import hooks  # preloaded

    fd = posix.memfd_create("ocirt-hooks", posix.MFD_CLOEXEC)
    posix.write(fd, hooks.encode_for_stage2(hooks_list))
    posix.lseek(fd, 0, 0)
    return high_fd(fd, 3 + plan.preserve_fds)


def _ensure_cwd(root_fd: int, cwd: str) -> None:
    """runc creates a missing cwd inside the rootfs; so do we."""
    try:
        posix.close(ensure_dir(root_fd, cwd))
    except OSError:
        pass  # reported by the chdir after the user switch, with runc's words


def _setup_terminal(plan: InitPlan) -> None:
    from ocirt.linux import console  # preloaded

    master, slave_path = console.open_pty()
    try:
        console.set_size(master, plan.spec.process.console_size if plan.spec.process else None)
        console.mount_console(slave_path)
        if plan.console_sock is not None:
            console.send_master(plan.console_sock, master, slave_path)
    finally:
        posix.close(master)
        if plan.console_sock is not None:
            plan.console_sock.close()
    console.become_session_leader_on(slave_path, plan.spec.process.user.uid)


def _prepare_fds(plan: InitPlan, hooks_fd: int) -> None:
    """Only 0-2, the preserved fds and stage 2's socket survive the execs.

    Every other fd is closed now, not merely marked close-on-exec (see
    close_fds_above): stage 2 needs only its socket, its program (the fd
    fexecve runs) and the hooks memfd; the channel is needed until READY.
    """
    first_closed = 3 + plan.preserve_fds
    keep = (plan.channel.fileno(), plan.listen_fd, plan.stage2_fd, hooks_fd)
    close_fds_above(first_closed, keep)
    for fd in range(3, first_closed):
        try:
            posix.set_inheritable(fd, True)
        except OSError:
            pass
    posix.set_inheritable(plan.listen_fd, True)
    if "stdout" in sys.__dict__:  # none before the launcher finishes the start
        sys.stdout.flush()
