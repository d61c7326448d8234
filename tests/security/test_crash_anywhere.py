"""Crash anywhere, lose nothing: SIGKILL at each step of create and exec.

A runtime can be killed at any moment: the OOM killer, a manager's timeout,
a shutdown.  Whatever was made up to then, `ocirt delete --force ID` must
find and remove: afterwards the host holds no state directory, no cgroup in
any hierarchy (each v1 controller's and the cgroup2 mount), no mount, no
network namespace, no process and no memfd or socket file of the container.

How a step is stopped: strace's syscall fault injection, no hook in ocirt.
``strace --inject=SYSCALL:signal=KILL:when=N`` sends SIGKILL to a process at
the entry of its Nth call of SYSCALL (the call is not made), exactly as if
it had been killed there; the count is per process, and ``-P PATH`` counts
only the calls on PATH.  Each step of docs/architecture.md's create sequence
is named by the first call that follows it (``CREATE_KILLS``): create is
traced alone (no ``-f``), so only it counts.  The init is killed the same
way, with ``-f``, on calls that create itself never makes (``INIT_KILLS``:
setns, mount, pivot_root...), and exec's parent as create (``EXEC_KILLS``).
strace's log says which call in which process was killed: each case checks
that it was the one meant, so a step that moved (a new syscall in between)
fails here instead of testing something else.

Which processes are the container's: all of them carry a marker in their
environment (create's own, which its fork, the init, keeps until stage 2;
config.json's process.env from stage 2 on; exec's parent and `exec --env`),
so a leftover process is found by /proc/PID/environ, whatever its cgroup.
Memfds (the stage-2 copy, the seccomp program) and sockets live only as long
as a process or the state directory holds them: no marked process and no
state directory means none is left.  A network namespace outlives its
processes only through an fd (a process: the marker finds it) or a bind
mount: the one the init was in (read after the kill) must not be mounted.

What ocirt had to fix for this (docs/security.md, "Crash anywhere"):
create killed before it committed state.json left a directory `delete
--force` took for "no such container" (exit 0), and with it the cgroups and,
from READY on (step 6), a live stage-2 init.  create now writes its intent
(the bundle, the cgroups it is about to make) before it makes anything, and
stages the record with the init's pid before the init may leave
PR_SET_PDEATHSIG; `delete --force` of an id without state.json undoes that
(``ocirt.container.delete_abandoned``).  Checked against the reverted fix:
with the fastcli and cli delete calls to delete_abandoned removed, every
create case from "2 cgroups" on fails (cgroups left in each hierarchy, the
state directory left; at "6 READY received" a live init too).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import BundleFactory

STRACE = shutil.which("strace")
MARK_VAR = "OCIRT_CRASH_MARK"
TIMEOUT = 60
CGROUP_PREFIX = "/ocirt-test-crash-"


@dataclass(frozen=True)
class Kill:
    """SIGKILL at the WHEN-th call of SYSCALL (on PATH, if given) of the process."""

    step: str  # the step of docs/architecture.md's create sequence it stops
    syscall: str
    when: int = 1
    path: str = ""  # "state": a file of the state dir (FILE); "cgroup": one hierarchy's dir
    file: str = ""  # with path="state": which file
    expect: str = ""  # what the killed call's line in strace's log must hold

    @property
    def id(self) -> str:
        return self.step.split(":")[0].replace(" ", "-")


# `ocirt create` killed (alone under strace: only its own calls count).
CREATE_KILLS = [
    Kill("1 dir: the state dir made, before its lock", "flock", path="state", expect="LOCK_EX"),
    Kill("2 cgroups: some hierarchies made", "mkdir", path="cgroup"),
    Kill("2 cgroups made: before start.sock", "bind", expect="start.sock"),
    Kill("3 socket: start.sock bound", "memfd_create", expect="ocirt-init"),
    Kill("3 fds: all open, before clone", "socketpair", expect="SOCK_SEQPACKET"),
    Kill("4 cloned: before PROCEED", "sendto", expect="in_cgroup"),
    Kill("5 record: before it is staged", "openat", path="state", file="state.json.tmp"),
    Kill("5 record half: state.json.tmp staged", "openat", path="state", file="state.marshal.tmp"),
    Kill("5 limits: record staged, before CGROUP_READY", "sendto", when=2),
    Kill("5 waiting: for READY", "recvfrom", when=1),
    Kill("6 READY received: the init becomes stage 2", "recvfrom", when=2),
    # strace's -P matches rename's first path only, the pid file's is named by
    # create's pid: the first rename (see test_create_killed for .pyc files).
    Kill("7 pid file: written, not renamed", "rename", expect="init.pid"),
    Kill("7 commit: before state.json", "rename", path="state", file="state.json.tmp"),
    Kill(
        "7 half committed: state.json, not its copy",
        "rename",
        path="state",
        file="state.marshal.tmp",
    ),
    Kill("7 exit: everything done", "exit_group"),
]

# The init killed (strace -f: calls `ocirt create` never makes, so only the init counts).
INIT_KILLS = [
    Kill("0 born: before it joins its v1 cgroups", "prctl", expect="PR_SET_PDEATHSIG"),
    Kill("3 namespaces: joining the one made for it", "setns"),
    Kill("4 hostname", "sethostname"),
    Kill("5 mounts: the first", "mount"),
    Kill("5 mounts: midway", "move_mount", when=3),
    Kill("5 dev: the first node", "mknodat"),
    Kill("6 pivot_root", "pivot_root"),
    Kill("7 fds: closing the runtime's", "close_range"),
    Kill("7 caps", "capset"),
    Kill("8 exec: stage 2", "execveat"),
    Kill("stage 2: waiting for start", "accept4"),
]

# `ocirt exec` killed (alone under strace), in a running container.
EXEC_KILLS = [
    Kill("4 fork: namespaces and cgroups open", "clone3"),
    Kill("5 forked: before PROCEED", "sendto", expect="\\3"),
    # exec waits in poll (the channel or the process's pidfd, with the signalfd
    # of the signals it passes on: ocirt.process.exec.BlockedSignals).
    Kill("6 waiting: for the exec", "poll"),
    Kill("7 running: waiting for the process", "poll", when=2),
]


@pytest.fixture(autouse=True)
def _need_strace() -> None:
    if STRACE is None:
        pytest.skip("strace is not installed")
    if not Path("/proc/self/mountinfo").is_file():
        pytest.skip("no /proc/self/mountinfo")


class Case:
    """One container's names: its id, cgroup, marker, pid file."""

    def __init__(self, ocirt_bin: str, root: Path, bundle: BundleFactory, tmp_path: Path) -> None:
        uniq = uuid.uuid4().hex[:10]
        self.ocirt = ocirt_bin
        self.root = root
        self.id = f"crash-{uniq}"
        self.cgroup = CGROUP_PREFIX + uniq
        self.mark = uniq
        self.pid_dir = tmp_path / "pid"
        self.pid_dir.mkdir()
        self.pid_file = self.pid_dir / "init.pid"
        self.log = tmp_path / "strace.log"

        def patch(config: dict) -> None:
            config["linux"]["cgroupsPath"] = self.cgroup
            config["process"]["env"].append(f"{MARK_VAR}={self.mark}")

        self.bundle = bundle("sleep", "1000", patch=patch)
        self.state_dir = root / self.id
        self.mounts_before = _mounts_mentioning(self.watched_paths())
        self.mountinfo_before = _mountinfo()

    def watched_paths(self) -> list[str]:
        return [str(self.bundle), str(self.root)]

    def create_argv(self) -> list[str]:
        return [
            self.ocirt, "--root", str(self.root), "create", "--bundle", str(self.bundle),
            "--pid-file", str(self.pid_file), self.id,
        ]  # fmt: skip

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return _run([self.ocirt, "--root", str(self.root), *args])

    def strace_argv(self, kill: Kill, follow: bool) -> list[str]:
        inject = f"{kill.syscall}:signal=KILL:when={kill.when}"
        # With -f, execve too: the log's first line is then create's own exec.
        traced = f"{kill.syscall},execve" if follow else kill.syscall
        argv = [STRACE, "-qq", "-o", str(self.log), "-e", f"trace={traced}"]
        argv += ["-E", f"{MARK_VAR}={self.mark}", f"--inject={inject}"]
        if follow:
            argv.append("-f")
        if kill.path:
            argv += ["-P", self.kill_path(kill)]
        return argv

    def kill_path(self, kill: Kill) -> str:
        if kill.path == "state":
            return str(self.state_dir / kill.file)
        assert kill.path == "cgroup"
        # The middle hierarchy (v1): some made before, some after; cgroup v2: the one.
        mounts = _cgroup_mounts()
        return mounts[len(mounts) // 2] + self.cgroup

    def traced(self, argv: list[str], kill: Kill, follow: bool) -> subprocess.CompletedProcess:
        """Run ARGV under strace with KILL; wait for strace (and, with -f, every tracee)."""
        try:
            return _run([*self.strace_argv(kill, follow), "--", *argv])
        except subprocess.TimeoutExpired:
            pytest.fail(f"{kill.step}: still running after {TIMEOUT} s (the kill never came?)")

    def killed_call(self) -> tuple[int, str]:
        """(pid, line) of the call strace killed, from its log."""
        return _killed_call(self.log.read_text())


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    """ARGV's exit status and stderr, read from a file: an init that outlives
    its create keeps create's stdio, and a pipe would not reach EOF."""
    with tempfile.TemporaryFile() as err:
        result = subprocess.run(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
            timeout=TIMEOUT, check=False,
        )  # fmt: skip
        err.seek(0)
        result.stderr = err.read().decode(errors="replace")
    return result


def _killed_call(log: str) -> tuple[int, str]:
    lines = log.splitlines()
    for index, line in enumerate(lines):
        match = re.match(r"(\d+ +)?\+\+\+ killed by SIGKILL", line)
        if not match:
            continue
        pid = int(match.group(1) or 0)
        for earlier in reversed(lines[:index]):
            head = re.match(r"(\d+ +)?(.*)", earlier)
            assert head is not None
            if int(head.group(1) or 0) == pid and not head.group(2).startswith("+++"):
                return pid, head.group(2)
        return pid, ""
    return 0, ""


def _check_killed(case: Case, kill: Kill, expect_pid: int | None = None) -> int:
    """That strace killed the call KILL names; the killed process's pid (-f only)."""
    pid, line = case.killed_call()
    log_tail = "\n".join(case.log.read_text().splitlines()[-8:])
    assert line, f"{kill.step}: strace killed nothing; its log ends:\n{log_tail}"
    name = re.sub(r"^<\.\.\. (\w+) resumed>.*", r"\1", line).split("(")[0]
    assert name == kill.syscall, f"{kill.step}: killed in {line!r}, not {kill.syscall}"
    assert kill.expect in line, f"{kill.step}: killed in {line!r}, not at {kill.expect!r}"
    if expect_pid is not None:
        assert pid == expect_pid, f"{kill.step}: strace killed {pid}, not {expect_pid}"
    return pid


# -- what the host holds --------------------------------------------------------------
def _mountinfo() -> list[str]:
    return Path("/proc/self/mountinfo").read_text().splitlines()


def _cgroup_mounts() -> list[str]:
    """Mount points of every cgroup hierarchy: v1 controllers' and cgroup2."""
    points = []
    for line in _mountinfo():
        fields = line.split()
        fstype = fields[fields.index("-") + 1]
        if fstype in ("cgroup", "cgroup2"):
            points.append(fields[4])
    return sorted(set(points))


def _mounts_mentioning(paths: list[str]) -> list[str]:
    return [line for line in _mountinfo() if any(p in line for p in paths)]


def _marked_pids(mark: str) -> list[int]:
    """Every process whose environment holds the case's marker."""
    wanted = f"{MARK_VAR}={mark}".encode()
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            environ = Path(f"/proc/{name}/environ").read_bytes()
        except OSError:
            continue  # gone, or a kernel thread
        if wanted in environ.split(b"\0"):
            pids.append(int(name))
    return pids


def _netns_of(pids: list[int]) -> set[int]:
    inodes = set()
    for pid in pids:
        try:
            inodes.add(os.stat(f"/proc/{pid}/ns/net").st_ino)
        except OSError:
            continue
    return inodes - {os.stat("/proc/self/ns/net").st_ino}


def _netns_mounts(inodes: set[int], before: list[str]) -> list[str]:
    """Bind mounts of the network namespaces INODES made since BEFORE (mountinfo).

    Processes in them, or holding an fd on them, are the container's: the
    marker finds those.  (Inode numbers of namespaces are reused at once, and
    other containers come and go on this host: a process of someone else's
    may sit in a namespace with the same number a moment later.)
    """
    names = [f"net:[{inode}]" for inode in inodes]
    return [line for line in _mountinfo() if line not in before and any(n in line for n in names)]


def _wait_until_gone(mark: str, seconds: float = 5.0) -> list[int]:
    """Marked processes still there after SECONDS (a killed one takes a moment to go)."""
    deadline = time.monotonic() + seconds
    while (pids := _marked_pids(mark)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return pids


def _describe(pids: list[int]) -> str:
    out = []
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            out.append(f"{pid}: {cmdline.decode(errors='replace').strip()}")
        except OSError:
            out.append(f"{pid}: gone")
    return "; ".join(out)


def _assert_nothing_left(case: Case, netns: set[int], step: str) -> None:
    leftovers = []
    if case.state_dir.exists():
        leftovers.append(f"state dir {case.state_dir}: {sorted(os.listdir(case.state_dir))}")
    if other := sorted(os.listdir(case.root)):
        leftovers.append(f"files in --root: {other}")
    cgroups = [mp + case.cgroup for mp in _cgroup_mounts() if os.path.lexists(mp + case.cgroup)]
    if cgroups:
        leftovers.append(f"cgroups: {cgroups}")
    if pids := _wait_until_gone(case.mark):
        leftovers.append(f"processes: {_describe(pids)}")
    mounts = _mounts_mentioning(case.watched_paths())
    if mounts != case.mounts_before:
        leftovers.append(f"mounts: {sorted(set(mounts) - set(case.mounts_before))}")
    if holders := _netns_mounts(netns, case.mountinfo_before):
        leftovers.append(f"network namespace {sorted(netns)} mounted: {holders}")
    # The pid file's directory: the pid file itself (step 7 got that far), or
    # nothing; not its temporary copy.
    extra = [p.name for p in case.pid_dir.iterdir() if p.name != case.pid_file.name]
    if extra:
        leftovers.append(f"beside the pid file: {extra}")
    assert not leftovers, f"after {step} and `delete --force`: " + "; ".join(leftovers)


def _delete_force(case: Case, step: str) -> None:
    deleted = case.run("delete", "--force", case.id)
    assert deleted.returncode == 0, f"{step}: delete --force failed: {deleted.stderr}"


# -- the tests ---------------------------------------------------------------------------
@pytest.mark.parametrize("kill", CREATE_KILLS, ids=lambda k: k.id)
def test_create_killed(
    kill: Kill, ocirt_bin: str, tmp_root: Path, bundle: BundleFactory, tmp_path: Path
) -> None:
    case = Case(ocirt_bin, tmp_root, bundle, tmp_path)
    if kill.syscall == "rename" and not kill.path:
        # A module whose source changed since its .pyc was written is written
        # again (write + rename) by the next ocirt: let that be this one.
        assert case.run(*case.create_argv()[3:]).returncode == 0
        _delete_force(case, "the warm-up create")
        case.pid_file.unlink()
    result = case.traced(case.create_argv(), kill, follow=False)
    _check_killed(case, kill)
    assert result.returncode != 0, f"{kill.step}: create was not killed"
    # What the killed create left running (an init that outlived it): its network namespace.
    netns = _netns_of(_marked_pids(case.mark))
    _delete_force(case, kill.step)
    _assert_nothing_left(case, netns, f"create killed at {kill.step}")


@pytest.mark.parametrize("kill", INIT_KILLS, ids=lambda k: k.id)
def test_init_killed(
    kill: Kill, ocirt_bin: str, tmp_root: Path, bundle: BundleFactory, tmp_path: Path
) -> None:
    case = Case(ocirt_bin, tmp_root, bundle, tmp_path)
    case.traced(case.create_argv(), kill, follow=True)
    killed = _check_killed(case, kill)
    first = case.log.read_text().split(None, 2)
    assert first[1].startswith("execve("), f"{kill.step}: strace's log begins {first[:2]}"
    create_pid = int(first[0])
    assert killed != create_pid, f"{kill.step}: strace killed create itself, not its init"
    # create saw its init die and cleaned up (exit 1), or (stage 2) had
    # committed a container whose init is now dead: either way, delete --force.
    _delete_force(case, kill.step)
    _assert_nothing_left(case, set(), f"the init killed at {kill.step}")


def test_created_container_whose_init_was_killed(
    ocirt_bin: str, tmp_root: Path, bundle: BundleFactory, tmp_path: Path
) -> None:
    case = Case(ocirt_bin, tmp_root, bundle, tmp_path)
    created = case.run(*case.create_argv()[3:])
    assert created.returncode == 0, created.stderr
    pid = int(case.pid_file.read_text())
    netns = _netns_of([pid])
    os.kill(pid, 9)
    _delete_force(case, "init killed after create")
    _assert_nothing_left(case, netns, "the created container's init killed")


@pytest.mark.parametrize("kill", EXEC_KILLS, ids=lambda k: k.id)
def test_exec_killed(
    kill: Kill, ocirt_bin: str, tmp_root: Path, bundle: BundleFactory, tmp_path: Path
) -> None:
    case = Case(ocirt_bin, tmp_root, bundle, tmp_path)
    for command in (case.create_argv()[3:], ["start", case.id]):
        done = case.run(*command)
        assert done.returncode == 0, f"{command[0]}: {done.stderr}"
    init = int(case.pid_file.read_text())
    exec_argv = [
        case.ocirt, "--root", str(case.root), "exec", "--env", f"{MARK_VAR}={case.mark}",
        case.id, "sleep", "1001",
    ]  # fmt: skip
    result = case.traced(exec_argv, kill, follow=False)
    _check_killed(case, kill)
    assert result.returncode != 0, f"{kill.step}: exec was not killed"
    # In the container: the init, and the exec'd program if exec got that far
    # (then it is the user's process, as after runc exec); never exec's child
    # half set up (Python, with the runtime's fds), and no host fd in either.
    time.sleep(0.2)  # a child killed with its parent (PDEATHSIG) takes a moment to go
    for pid in _marked_pids(case.mark):
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
        assert pid == init or cmdline == [b"sleep", b"1001"], (
            f"{kill.step}: left in the container: {_describe([pid])}"
        )
        fds = sorted(int(fd) for fd in os.listdir(f"/proc/{pid}/fd"))
        targets = {fd: os.readlink(f"/proc/{pid}/fd/{fd}") for fd in fds}
        assert fds == [0, 1, 2], f"{kill.step}: {_describe([pid])} holds {targets}"
    netns = _netns_of([init])
    _delete_force(case, kill.step)
    _assert_nothing_left(case, netns, f"exec killed at {kill.step}")
