"""exec's Python child: joins the container and becomes the process.

For the shapes stage 2 does not take (``ocirt.process.exec_stage2.usable``:
a terminal, --preserve-fds, LSM labels, a seccomp notify listener, user
namespaces, ...).  ``ocirt.process.exec`` imports this module right before
it forks such a child (which cannot import: ``seal_imports``), so the common
exec, whose child is stage 2, does not load it (nor ``ocirt.linux.user``):
~0.2 ms of exec's CPU (see docs/architecture.md, the front end).
"""

from __future__ import annotations

import posix  # not os: see ocirt.process.exec

from ocirt import debug
from ocirt.errors import OcirtError, lower_first
from ocirt.linux import capabilities, namespaces, rlimits, user
from ocirt.linux import syscalls as sc
from ocirt.linux.procfs import open_checked
from ocirt.process.channel import Msg
from ocirt.process.common import (
    close_fds_above,
    enter_cwd_as_root,
    enter_cwd_as_user,
    join_cgroups_by_tasks,
    look_path,
    reset_signals,
    seal_imports,
)
from ocirt.process.exec import FORWARDED, SIGKILL, wants_scheduling

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

    from ocirt.process.exec import ExecPlan
    from ocirt.spec import Process


def run(plan: ExecPlan) -> NoReturn:
    try:
        # Only the parent may hold its end: its death (before PDEATHSIG below)
        # then reaches us as EOF at the next message, not a wait for ever.
        posix.close(plan.parent_channel_fd)
        for target, fd in enumerate(plan.stdio):
            if fd >= 0:
                posix.dup2(fd, target)  # inheritable; the copy goes with close_fds_above
        seal_imports()  # after setns(mnt) an import would read the container's files
        plan.channel.forward_debug()  # our stdio is the process's: lines go to the parent
        if plan.reset_handlers:  # the parent's forwarding handlers are not ours
            import _signal  # loaded: the parent installed them

            for sig in FORWARDED:
                _signal.signal(sig, _signal.SIG_DFL)
        sc.prctl(sc.PR_SET_PDEATHSIG, SIGKILL)  # until execve
        join_cgroups_by_tasks(
            plan.cgroup_files, "unable to start container process: error adding pid to cgroups"
        )
        plan.channel.expect(Msg.PROCEED)
        path, env = _setup(plan)
        debug.log(f"exec: in the container, uid {plan.process.user.uid}; execve {path}")
        sc.prctl(sc.PR_SET_PDEATHSIG, 0)
        if plan.seccomp is not None:
            _load_seccomp(plan)  # as late as possible: the program's profile
        _execve(path, list(plan.process.args), env)
    except BaseException as e:  # whatever it is, the parent must hear of it
        plan.channel.report(e)
    posix._exit(1)


def _load_seccomp(plan: ExecPlan) -> None:
    """Load the filter; a notify listener goes to the parent, which forwards it.

    Only its number, written (announce_fd): the parent takes the fd itself.
    We wait until the agent has it (runc too): if it cannot be reached, the
    parent fails the exec and kills us before the program has run.  Any
    syscall of ours the profile notifies meanwhile (the wait's recv) waits
    for the agent, which answers once it has the fd.
    """
    from ocirt.linux import seccomp  # preloaded

    if plan.seccomp is None:
        return
    listener = seccomp.load_for_handover(plan.seccomp)
    if listener >= 0:
        plan.channel.announce_fd(Msg.SECCOMP_LISTENER, listener)
        plan.channel.expect(Msg.LISTENER_SENT)
        seccomp.end_handover()
        try:
            posix.close(listener)  # close-on-exec anyway; a notified close may be refused
        except OSError:
            pass


def _setup(plan: ExecPlan) -> tuple[str, dict[str, str]]:
    proc = plan.process
    # Host privileges still: raising a hard limit or lowering oom_score_adj
    # needs CAP_SYS_RESOURCE in the initial user namespace.
    rlimits.apply(proc.rlimits)
    user.set_oom_score_adj(proc.oom_score_adj)
    # In the container's cgroup now (PROCEED): runc applies these to exec'd
    # processes too.
    if wants_scheduling(proc):
        from ocirt.linux import scheduling  # preloaded

        scheduling.apply_cpu_affinity(proc.exec_cpu_affinity, "final")
        scheduling.apply_scheduler(proc.scheduler)
        scheduling.apply_io_priority(proc.io_priority)

    # user first (it grants the rights for the rest), mount last; setns(mnt)
    # also resets our root and cwd to the container's root.
    namespaces.join(plan.ns_fds)
    for fd in plan.ns_fds.values():
        posix.close(fd)
    if plan.root_fd >= 0:
        posix.fchdir(plan.root_fd)
        posix.chroot(".")
        posix.close(plan.root_fd)
    if "user" in plan.ns_fds:
        posix.setresgid(0, 0, 0)
        posix.setresuid(0, 0, 0)

    if proc.terminal:
        _setup_terminal(plan)
    _prepare_fds(plan)
    env = user.process_env(proc.env, proc.user.uid)  # reads the container's /etc/passwd
    caps = proc.capabilities
    if caps is not None:
        capabilities.drop_bounding(caps)
        capabilities.keep_caps_across_setuid(True)
    entered = enter_cwd_as_root(proc.cwd)
    if plan.seccomp is not None:
        from ocirt.linux import seccomp  # preloaded
    if plan.seccomp is not None and seccomp.must_load_early(proc):
        _load_seccomp(plan)  # needs CAP_SYS_ADMIN without nnp: before the switch
        plan.seccomp = None
    user.switch(proc.user, plan.in_user_ns)
    user.set_umask(proc.user)
    if not entered:
        enter_cwd_as_user(proc.cwd)
    path = look_path(proc.args[0], env.get("PATH", ""))
    if caps is not None:
        capabilities.keep_caps_across_setuid(False)
        capabilities.apply_sets(caps)
    if proc.no_new_privileges:
        sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
    _apply_lsm(proc)
    reset_signals()
    return path, env


def _setup_terminal(plan: ExecPlan) -> None:
    """A pty from the container's own devpts; the master goes out, the slave is our tty."""
    assert plan.console_sock is not None
    from ocirt.linux import console  # preloaded

    master, slave_path = console.open_pty()
    try:
        console.set_size(master, plan.process.console_size)
        console.send_master(plan.console_sock, master, slave_path)
    finally:
        posix.close(master)
        plan.console_sock.close()
        plan.console_sock = None
    console.become_session_leader_on(slave_path, plan.process.user.uid)


def _prepare_fds(plan: ExecPlan) -> None:
    """Only 0-2 and the preserved fds reach the process; of ours only the channel
    stays open (see close_fds_above: the cwd is entered next)."""
    first = 3 + plan.preserve_fds
    keep = plan.channel.fileno()
    if keep < first:  # cannot happen (moved high), but never leak it
        raise OcirtError("internal error: the exec channel is below the preserved fds")
    close_fds_above(first, (keep,))
    for fd in range(3, first):
        try:
            posix.set_inheritable(fd, True)
        except OSError:
            pass


def _apply_lsm(proc: Process) -> None:
    """AppArmor profile / SELinux label for the next execve, as runc writes them."""
    if proc.apparmor_profile:
        _write_attr(
            "/proc/self/attr/exec",
            f"exec {proc.apparmor_profile}",
            "apparmor failed to apply profile",
        )
    if proc.selinux_label:
        _write_attr("/proc/self/attr/exec", proc.selinux_label, "failed to set SELinux label")


def _write_attr(path: str, value: str, what: str) -> None:
    try:
        # Checked: the container may have mounted over its /proc (CVE-2025-52881).
        fd = open_checked(path, posix.O_WRONLY)
        try:
            posix.write(fd, value.encode())
        finally:
            posix.close(fd)
    except OSError as e:
        raise OSError(e.errno, f"{what}: write {path}: {lower_first(e.strerror)}") from None


def _execve(path: str, argv: list[str], env: dict[str, str]) -> NoReturn:
    try:
        posix.execve(path, argv, env)
    except OSError as e:
        raise OSError(e.errno, f'exec: "{argv[0]}": {lower_first(e.strerror)}') from None
