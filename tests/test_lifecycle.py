"""The lifecycle commands, side by side with runc on the same bundle.

Every test runs the same command under ocirt and runc and asserts both the
ocirt result and, where runc defines the behaviour, agreement with runc:
exit codes, state JSON shape, error wording managers string-match.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
from conftest import need_root, remove_cgroup_dir

REPO = Path(__file__).resolve().parents[1]

RUNTIMES = ("ocirt", "runc")


def run(binary: str, root: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    """Run a runtime command; output goes through files, not pipes: a created
    container's init holds the stdio it was given until it exits (as runc's
    does), so a pipe would never reach EOF."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.run(
            [binary, "--root", str(root), *args],
            stdout=out,
            stderr=err,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(
            proc.args, proc.returncode, out.read().decode(), err.read().decode()
        )


def msg(out: subprocess.CompletedProcess) -> str:
    """The error message of a run, from runc's logrus text line or a plain line."""
    line = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else ""
    return json.loads(line.split(" msg=", 1)[1]) if " msg=" in line else line


@pytest.fixture
def rt(ocirt_bin: str, runc_bin: str) -> dict[str, str]:
    return {"ocirt": ocirt_bin, "runc": runc_bin}


def state(binary: str, root: Path, cid: str) -> dict:
    out = run(binary, root, "state", cid)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def wait_status(binary: str, root: Path, cid: str, status: str, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        st = state(binary, root, cid)
        if st["status"] == status or time.monotonic() > deadline:
            return st
        time.sleep(0.02)


def host_mounts_mentioning(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if str(path) in line]


def processes_with_cwd_or_root_in(path: Path) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if str(path) in os.readlink(f"/proc/{pid}/root") or str(path) in os.readlink(
                f"/proc/{pid}/cwd"
            ):
                found.append(int(pid))
        except OSError:
            continue
    return found


# -- the happy path -----------------------------------------------------------


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_create_start_kill_delete(runtime: str, rt, tmp_root: Path, bundle, tmp_path: Path) -> None:
    b = bundle("sleep", "100")
    pid_file = tmp_path / "pid"
    out = run(
        rt[runtime], tmp_root, "create", "--bundle", str(b), "--pid-file", str(pid_file), "c1"
    )
    assert out.returncode == 0, out.stderr
    raw_pid = pid_file.read_text()
    assert raw_pid.isdigit(), repr(raw_pid)  # digits only, no newline (conmon reads it)

    st = state(rt[runtime], tmp_root, "c1")
    assert st["status"] == "created"
    assert st["pid"] == int(raw_pid)
    assert st["bundle"] == str(b)
    assert st["rootfs"] == str(b / "rootfs")
    assert {"ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner"} <= set(st)

    assert run(rt[runtime], tmp_root, "start", "c1").returncode == 0
    assert wait_status(rt[runtime], tmp_root, "c1", "running")["status"] == "running"

    assert run(rt[runtime], tmp_root, "kill", "c1", "KILL").returncode == 0
    assert wait_status(rt[runtime], tmp_root, "c1", "stopped")["status"] == "stopped"

    assert run(rt[runtime], tmp_root, "delete", "c1").returncode == 0
    gone = run(rt[runtime], tmp_root, "state", "c1")
    assert gone.returncode == 1
    assert "container does not exist" in msg(gone)
    assert not (tmp_root / "c1").exists()


LIBC_SIGNALS = 1 << 31 | 1 << 32  # SigIgn bits of signals 32 and 33


def test_the_process_starts_with_no_signal_ignored_or_blocked(rt, tmp_root: Path, bundle) -> None:
    """An ignored signal survives execve: ocirt ignores SIGPIPE and SIGXFSZ (as
    CPython does; its launcher before the interpreter starts) and a caller may
    ignore more (here ALRM, TTOU and WINCH).  runc's process starts with none of
    them ignored and none blocked; so must ocirt's.  GNU make also leaves libc's
    own signals 32 and 33 ignored: runc keeps 32 so, crun both, ocirt neither."""
    b = bundle("grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status")
    ignoring = ["bash", "-c", 'trap "" ALRM TTOU WINCH; exec "$0" "$@"']
    seen = {}
    for runtime in RUNTIMES:
        argv = [rt[runtime], "--root", str(tmp_root / runtime), "run", "-b", str(b), "sig1"]
        out = subprocess.run(
            ignoring + argv, capture_output=True, text=True, timeout=30, check=False
        )  # the container exits with `run`: nothing holds the pipes after it
        assert out.returncode == 0, out.stderr
        blocked, ignored = (int(word, 16) for word in out.stdout.split()[1::2])
        seen[runtime] = (blocked, ignored & ~LIBC_SIGNALS)
        if runtime == "ocirt":
            assert ignored == 0
    assert seen["ocirt"] == seen["runc"] == (0, 0)


def test_state_json_has_runcs_keys(rt, tmp_root: Path, bundle) -> None:
    b = bundle("sleep", "100", patch={"annotations": {"org.example/k": "v"}})
    keys = {}
    for runtime in RUNTIMES:
        root = tmp_root / runtime
        assert run(rt[runtime], root, "create", "-b", str(b), "k1").returncode == 0
        st = state(rt[runtime], root, "k1")
        keys[runtime] = set(st)
        assert st["annotations"] == {"org.example/k": "v"}
        assert run(rt[runtime], root, "delete", "-f", "k1").returncode == 0
    assert keys["ocirt"] == keys["runc"]


def test_state_is_the_containers_without_loading_it(ocirt_bin: str, tmp_root: Path, bundle) -> None:
    """`state` reads the record through ocirt.record.container_state, without
    importing ocirt.container (its load was ~0.3 ms of each state's CPU),
    ocirt.state or ocirt.errors (~0.13 ms), and prints what
    Container.load(...).state() says, in each status."""
    from conftest import run_isolated

    from ocirt.container import Container

    b = bundle("sleep", "100", patch={"annotations": {"org.example/k": "v"}})
    assert run(ocirt_bin, tmp_root, "create", "-b", str(b), "s1").returncode == 0
    code = (
        f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
        "from ocirt import fastcli\n"
        f"status = fastcli.run(['--root', {str(tmp_root)!r}, 'state', 's1'])\n"
        "loaded = {'ocirt.container', 'ocirt.state', 'ocirt.errors'} & set(sys.modules)\n"
        "print(status, loaded, file=sys.stderr)\n"
    )
    out = run_isolated(code)
    assert out.stderr.strip() == "0 set()", out.stderr
    seen = []
    try:
        for step in ((), ("start", "s1"), ("pause", "s1"), ("resume", "s1"), ("kill", "s1", "9")):
            if step:
                assert run(ocirt_bin, tmp_root, *step).returncode == 0
            if step[:1] == ("kill",):
                wait_status(ocirt_bin, tmp_root, "s1", "stopped")
            with Container.load(str(tmp_root), "s1", lock=False) as c:
                expected = c.state()
            printed = state(ocirt_bin, tmp_root, "s1")
            assert printed == expected
            seen.append(printed["status"])
    finally:
        run(ocirt_bin, tmp_root, "delete", "-f", "s1")
    assert seen == ["created", "running", "paused", "running", "stopped"]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_run_returns_the_containers_exit_code(runtime: str, rt, tmp_root: Path, bundle) -> None:
    b = bundle("sh", "-c", "echo out; echo err >&2; exit 7")
    out = run(rt[runtime], tmp_root, "run", "-b", str(b), "r1")
    assert (out.returncode, out.stdout) == (7, "out\n")
    assert "err\n" in out.stderr
    assert not (tmp_root / "r1").exists()  # run deletes unless --keep


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_run_killed_by_a_signal_exits_128_plus_signal(
    runtime: str, rt, tmp_root: Path, bundle
) -> None:
    def host_pid_ns(config: dict) -> None:  # pid 1 of a namespace ignores its own TERM
        config["linux"]["namespaces"] = [
            ns for ns in config["linux"]["namespaces"] if ns["type"] != "pid"
        ]

    b = bundle("sh", "-c", "kill -TERM $$; sleep 5", patch=host_pid_ns)
    out = run(rt[runtime], tmp_root, "run", "-b", str(b), "r2")
    assert out.returncode == 128 + 15


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_run_keep_leaves_a_stopped_container(runtime: str, rt, tmp_root: Path, bundle) -> None:
    b = bundle("true")
    assert run(rt[runtime], tmp_root, "run", "--keep", "-b", str(b), "r3").returncode == 0
    assert state(rt[runtime], tmp_root, "r3")["status"] == "stopped"
    assert run(rt[runtime], tmp_root, "delete", "r3").returncode == 0


def test_detached_run_and_flags_after_the_id(ocirt_bin: str, tmp_root: Path, bundle) -> None:
    b = bundle("sleep", "100")
    out = run(ocirt_bin, tmp_root, "run", "d1", "--detach", f"--bundle={b}")
    assert out.returncode == 0, out.stderr
    assert state(ocirt_bin, tmp_root, "d1")["status"] == "running"
    assert run(ocirt_bin, tmp_root, "kill", "d1", "--all", "9").returncode == 0
    assert wait_status(ocirt_bin, tmp_root, "d1", "stopped")["status"] == "stopped"
    assert run(ocirt_bin, tmp_root, "delete", "d1").returncode == 0


@pytest.mark.parametrize("signal_text", ["9", "KILL", "SIGKILL", "kill"])
def test_kill_accepts_numbers_and_names(
    signal_text: str, ocirt_bin: str, tmp_root: Path, bundle
) -> None:
    b = bundle("sleep", "100")
    assert run(ocirt_bin, tmp_root, "run", "-d", "-b", str(b), "s1").returncode == 0
    assert run(ocirt_bin, tmp_root, "kill", "s1", signal_text).returncode == 0
    assert wait_status(ocirt_bin, tmp_root, "s1", "stopped")["status"] == "stopped"


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_sigterm_ends_a_created_container(runtime: str, rt, tmp_root: Path, bundle) -> None:
    """runc's init dies on TERM before start; ocirt's stage 2 (pid 1) must too."""
    b = bundle("sleep", "100")
    assert run(rt[runtime], tmp_root, "create", "-b", str(b), "t1").returncode == 0
    assert run(rt[runtime], tmp_root, "kill", "t1", "TERM").returncode == 0
    assert wait_status(rt[runtime], tmp_root, "t1", "stopped")["status"] == "stopped"


def test_another_runtimes_container_is_left_to_it(rt, tmp_root: Path, bundle) -> None:
    """runc's state dir under ocirt's --root: no ocirt container, and never touched.

    (ocirt used to take runc's state.json for its own: `delete -f` removed the
    directory and left runc's init and cgroups running where runc could no
    longer find them.)
    """
    b = bundle("sleep", "100")
    assert run(rt["runc"], tmp_root, "create", "-b", str(b), "theirs").returncode == 0
    runc_state = state(rt["runc"], tmp_root, "theirs")
    gone = run(rt["ocirt"], tmp_root, "delete", "-f", "theirs")
    assert gone.returncode == 0, gone.stderr  # --force of an unknown id, as runc
    asked = run(rt["ocirt"], tmp_root, "state", "theirs")
    assert (asked.returncode, msg(asked)) == (1, "container does not exist")
    listed = run(rt["ocirt"], tmp_root, "list", "-q")
    assert (listed.returncode, listed.stdout) == (0, "")
    assert (tmp_root / "theirs" / "state.json").exists()
    assert state(rt["runc"], tmp_root, "theirs") == runc_state  # its init untouched
    assert run(rt["runc"], tmp_root, "delete", "-f", "theirs").returncode == 0
    assert not (tmp_root / "theirs").exists()


# -- errors managers string-match ---------------------------------------------


@pytest.mark.parametrize("command", [["state"], ["start"], ["kill"], ["delete"]])
def test_unknown_id_agrees_with_runc(command: list[str], rt, tmp_root: Path) -> None:
    results = {r: run(rt[r], tmp_root, *command, "nope") for r in RUNTIMES}
    for out in results.values():
        assert out.returncode == 1
        assert "container does not exist" in msg(out)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_delete_force_of_unknown_id_succeeds(runtime: str, rt, tmp_root: Path) -> None:
    assert run(rt[runtime], tmp_root, "delete", "--force", "nope").returncode == 0


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_error_wording_of_the_lifecycle(runtime: str, rt, tmp_root: Path, bundle) -> None:
    b = bundle("sleep", "100")
    r = rt[runtime]
    assert run(r, tmp_root, "run", "-d", "-b", str(b), "e1").returncode == 0
    dup = run(r, tmp_root, "create", "-b", str(b), "e1")
    assert dup.returncode == 1 and "already exists" in msg(dup)
    again = run(r, tmp_root, "start", "e1")
    assert again.returncode == 1 and "cannot start an already running container" in msg(again)
    busy = run(r, tmp_root, "delete", "e1")
    assert busy.returncode == 1
    assert "cannot delete container e1 that is not stopped: running" in msg(busy)
    bad = run(r, tmp_root, "kill", "e1", "FOO")
    assert bad.returncode == 1 and 'unknown signal "FOO"' in msg(bad)
    assert run(r, tmp_root, "kill", "e1", "9").returncode == 0
    wait_status(r, tmp_root, "e1", "stopped")
    stopped = run(r, tmp_root, "kill", "e1", "15")
    assert stopped.returncode == 1 and "container not running" in msg(stopped)
    assert run(r, tmp_root, "kill", "--all", "e1", "9").returncode == 0  # the shim does this
    late = run(r, tmp_root, "start", "e1")
    assert late.returncode == 1 and "cannot start a container that has stopped" in msg(late)
    assert run(r, tmp_root, "delete", "e1").returncode == 0


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_invalid_id_is_refused(runtime: str, rt, tmp_root: Path, bundle) -> None:
    out = run(rt[runtime], tmp_root, "create", "-b", str(bundle("true")), "bad/id")
    assert out.returncode == 1 and "invalid container ID format" in msg(out)


def test_json_log_gets_exactly_one_error_record(
    ocirt_bin: str, tmp_root: Path, tmp_path: Path
) -> None:
    log = tmp_path / "log.json"
    out = run(ocirt_bin, tmp_root, "--log", str(log), "--log-format", "json", "state", "nope")
    assert out.returncode == 1
    assert out.stderr == "container does not exist\n"
    lines = log.read_text().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["level"] == "error" and record["msg"] == "container does not exist"
    assert record["time"].endswith("Z")


def test_text_errors_go_to_stderr_in_logrus_format(ocirt_bin: str, tmp_root: Path) -> None:
    out = run(ocirt_bin, tmp_root, "state", "nope")
    assert out.stderr.startswith('time="')
    assert out.stderr.rstrip().endswith('level=error msg="container does not exist"')


# -- bad input leaves nothing behind ------------------------------------------


def assert_nothing_left(root: Path, cid: str, b: Path) -> None:
    assert not (root / cid).exists(), "state dir left behind"
    assert host_mounts_mentioning(b) == [], "mounts left behind"
    assert processes_with_cwd_or_root_in(b) == [], "processes left behind"
    assert default_cgroup_dirs(cid) == [], "cgroups left behind"


def default_cgroup_dirs(cid: str) -> list[str]:
    """The cgroup directories a create of CID without cgroupsPath makes (ours and
    runc's: the id below the runtime's own cgroup), where they exist."""
    from ocirt import cgroups

    manager = cgroups.manager_for("", cid, systemd=False, rootless=False)
    return sorted(p for p in set(manager.paths().values()) if os.path.isdir(p))


def test_missing_binary_fails_create_like_runc(rt, tmp_root: Path, bundle) -> None:
    b = bundle("no-such-program")
    for runtime in RUNTIMES:
        root = tmp_root / runtime
        out = run(rt[runtime], root, "create", "-b", str(b), "m1")
        assert out.returncode == 1
        assert 'exec: "no-such-program": executable file not found in $PATH' in msg(out)
        assert_nothing_left(root, "m1", b)


def test_missing_binary_after_validation_is_reported_by_the_init(
    ocirt_bin: str, tmp_root: Path, bundle
) -> None:
    """PATH in the container differs from what validation saw: the init's own check."""

    def hide_bin(config: dict) -> None:  # validation does not judge paths under a mount
        config["mounts"].append({"destination": "/bin", "type": "tmpfs", "source": "tmpfs"})

    b = bundle("sh", patch=hide_bin)
    out = run(ocirt_bin, tmp_root, "create", "-b", str(b), "m2")
    assert out.returncode == 1
    assert 'exec: "sh": executable file not found in $PATH' in msg(out)
    assert_nothing_left(tmp_root, "m2", b)


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        (
            {"process": {"user": {"uid": "x"}}},
            "config.json: process.user.uid: 'x' is not of type 'integer'",
        ),
        ({"ociVersion": "2.0.0"}, 'config.json: ociVersion: "2.0.0" is not supported'),
        ({"root": {"path": "nope"}}, "config.json: root.path:"),
        ({"process": {"cwd": "relative"}}, "config.json: process.cwd"),
    ],
)
def test_bad_config_names_file_and_field(
    patch: dict, expected: str, ocirt_bin: str, tmp_root: Path, bundle
) -> None:
    b = bundle("true", patch=patch)
    out = run(ocirt_bin, tmp_root, "create", "-b", str(b), "bad")
    assert out.returncode == 1
    assert expected in msg(out)
    assert_nothing_left(tmp_root, "bad", b)


def test_missing_bundle_is_refused(ocirt_bin: str, tmp_root: Path, tmp_path: Path) -> None:
    out = run(ocirt_bin, tmp_root, "create", "-b", str(tmp_path / "none"), "x")
    assert out.returncode == 1 and "no such file or directory" in msg(out)
    assert not (tmp_root / "x").exists()


def test_failing_mount_cleans_up(ocirt_bin: str, tmp_root: Path, bundle) -> None:
    def bad_mount(config: dict) -> None:
        config["mounts"].append({"destination": "/x", "type": "nosuchfs", "source": "none"})

    b = bundle("true", patch=bad_mount)
    out = run(ocirt_bin, tmp_root, "create", "-b", str(b), "mnt")
    assert out.returncode == 1
    assert "error mounting" in msg(out) and "mounts[" in msg(out)
    assert_nothing_left(tmp_root, "mnt", b)


def test_concurrent_creates_of_one_id_only_one_wins(ocirt_bin: str, tmp_root: Path, bundle) -> None:
    b = bundle("sleep", "100")
    results: list[int] = []

    def create() -> None:
        results.append(run(ocirt_bin, tmp_root, "create", "-b", str(b), "race").returncode)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [0, 1, 1, 1]
    assert state(ocirt_bin, tmp_root, "race")["status"] == "created"


# -- identity of the init -----------------------------------------------------


def test_recycled_pid_is_not_taken_for_the_container(
    ocirt_bin: str, tmp_root: Path, bundle
) -> None:
    b = bundle("sleep", "100")
    assert run(ocirt_bin, tmp_root, "run", "-d", "-b", str(b), "p1").returncode == 0
    record_path = tmp_root / "p1" / "state.json"
    record = json.loads(record_path.read_text())
    real_start = record["init_start_time"]
    record["init_start_time"] = real_start - 1  # as if the pid now named another process
    record_path.write_text(json.dumps(record))
    assert state(ocirt_bin, tmp_root, "p1")["status"] == "stopped"
    assert run(ocirt_bin, tmp_root, "kill", "p1", "9").returncode == 1  # never signal a stranger
    record["init_start_time"] = real_start
    record_path.write_text(json.dumps(record))
    assert run(ocirt_bin, tmp_root, "delete", "-f", "p1").returncode == 0


def test_created_init_is_a_small_sealed_memfd(ocirt_bin: str, tmp_root: Path, bundle) -> None:
    b = bundle("sleep", "100")
    assert run(ocirt_bin, tmp_root, "create", "-b", str(b), "small").returncode == 0
    pid = state(ocirt_bin, tmp_root, "small")["pid"]
    exe = os.readlink(f"/proc/{pid}/exe")
    assert exe.startswith("/memfd:ocirt-init"), exe
    # CVE-2019-5736: the container must not be able to write its init's binary.
    fd = os.open(f"/proc/{pid}/exe", os.O_RDONLY)
    try:
        seals = fcntl.fcntl(fd, 1034)  # F_GET_SEALS
    finally:
        os.close(fd)
    assert seals & 0x8 and seals & 0x1  # F_SEAL_WRITE and F_SEAL_SEAL
    pss_kb = next(
        int(line.split()[1])
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
        if line.startswith("Pss:")
    )
    assert pss_kb <= 1024, f"created init uses {pss_kb} kB PSS"
    fds = sorted(int(fd) for fd in os.listdir(f"/proc/{pid}/fd"))
    assert fds == [0, 1, 2, fds[-1]] and len(fds) == 4  # stdio + the start socket only


@pytest.mark.parametrize(
    ("namespaces", "extra", "rootless", "made"),
    [
        ([{"type": "network"}, {"type": "pid"}], {}, False, True),
        ([{"type": "pid"}], {}, False, False),  # the host's network
        ([{"type": "network", "path": "/proc/1/ns/net"}], {}, False, False),  # joined
        ([{"type": "network"}, {"type": "user"}], {}, False, False),  # owned by the new userns
        ([{"type": "network"}], {"netDevices": {"eth9": {}}}, False, False),  # moved before join
        ([{"type": "network"}], {}, True, False),
    ],
)
def test_which_network_namespaces_are_made_beforehand(
    namespaces: list, extra: dict, rootless: bool, made: bool
) -> None:
    from ocirt.linux.namespaces import NetnsMaker
    from ocirt.spec import Linux

    need_root()
    threads = len(os.listdir("/proc/self/task"))
    maker = NetnsMaker.start_for(Linux.from_dict({"namespaces": namespaces, **extra}), rootless)
    assert (maker is not None) == made
    if maker is not None:
        fd = maker.result()
        try:
            assert os.readlink(f"/proc/self/fd/{fd}") != os.readlink("/proc/self/ns/net")
            assert len(os.listdir("/proc/self/task")) == threads  # gone, not only done
            lo = subprocess.run(
                ["nsenter", f"--net=/proc/{os.getpid()}/fd/{fd}", "ip", "-o", "link", "show"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.splitlines()
            assert len(lo) == 1 and " lo: " in lo[0] and ",UP," in lo[0], lo  # up already
        finally:
            os.close(fd)


def test_the_init_has_a_network_namespace_of_its_own_with_lo_up(rt, tmp_root: Path, bundle) -> None:
    """Made on create's helper thread and joined by the init (NetnsMaker), or made
    by clone() (runc): either way a new namespace with only lo, and lo up."""
    b = bundle("sleep", "100")
    for runtime in RUNTIMES:
        pid_file = tmp_root / f"{runtime}.pid"
        created = run(
            rt[runtime], tmp_root, "create", "-b", str(b), "--pid-file", str(pid_file), runtime
        )
        assert created.returncode == 0, created.stderr
        pid = int(pid_file.read_text())
        assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
        links = subprocess.run(
            ["nsenter", "-t", str(pid), "-n", "ip", "-o", "link"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
        assert len(links) == 1 and " lo: " in links[0] and ",UP," in links[0], (runtime, links)
        assert run(rt[runtime], tmp_root, "delete", "-f", runtime).returncode == 0


def test_stage2_is_built_with_musl_when_there_is_one() -> None:
    """setup.py prefers musl-gcc (scripts/install-deps.sh installs musl-tools):
    glibc's static runtime alone is ~700 KiB of what every created init holds."""
    if shutil.which("musl-gcc") is None:
        pytest.skip("musl-gcc is not installed: ocirt-init is built with glibc")
    size = (REPO / "ocirt" / "_shim" / "ocirt-init").stat().st_size
    assert size < 200 * 1024, f"ocirt-init is {size} bytes: not the musl build"


def test_start_reports_an_exec_failure_in_hosts_words(
    ocirt_bin: str, tmp_root: Path, bundle
) -> None:
    """The binary is gone between create and start: stage 2's execve fails and
    `start` says so (runc's start exits 0 here and the init just dies).  The
    errno's text is the host libc's, as runc's create-time check words it,
    whichever libc stage 2 was built with."""
    b = bundle("/bin/gone")
    shutil.copy(b / "rootfs" / "bin" / "busybox", b / "rootfs" / "bin" / "gone")
    assert run(ocirt_bin, tmp_root, "create", "-b", str(b), "g1").returncode == 0
    (b / "rootfs" / "bin" / "gone").unlink()
    out = run(ocirt_bin, tmp_root, "start", "g1")
    assert out.returncode == 1
    expected = 'unable to start container process: exec: "/bin/gone": no such file or directory'
    assert msg(out) == expected
    assert wait_status(ocirt_bin, tmp_root, "g1", "stopped")["status"] == "stopped"


def test_list_formats(rt, tmp_root: Path, bundle) -> None:
    b = bundle("sleep", "100")
    for runtime in RUNTIMES:
        root = tmp_root / runtime
        assert run(rt[runtime], root, "create", "-b", str(b), "l1").returncode == 0
    try:
        check_list_formats(rt, tmp_root)
    finally:
        for runtime in RUNTIMES:
            run(rt[runtime], tmp_root / runtime, "delete", "-f", "l1")


def check_list_formats(rt: dict[str, str], tmp_root: Path) -> None:
    tables = {r: run(rt[r], tmp_root / r, "list").stdout.splitlines() for r in RUNTIMES}
    # Same columns; widths follow the longest cell (Go's tabwriter), so compare
    # the layout rule rather than bytes: runc's CREATED drops trailing zeros.
    assert tables["ocirt"][0].split() == tables["runc"][0].split()
    for r in RUNTIMES:
        assert tables[r][0].startswith("ID          PID         STATUS      BUNDLE ")
    for r in RUNTIMES:
        assert tables[r][1].split()[:3] == ["l1", tables[r][1].split()[1], "created"]
        assert run(rt[r], tmp_root / r, "list", "-q").stdout == "l1\n"
        listed = json.loads(run(rt[r], tmp_root / r, "list", "-f", "json").stdout)
        assert [c["id"] for c in listed] == ["l1"] and listed[0]["owner"] == "root"
    assert run(rt["ocirt"], tmp_root / "empty", "list", "-f", "json").stdout == "null\n"


def test_version_and_spec(ocirt_bin: str, tmp_path: Path) -> None:
    out = subprocess.run([ocirt_bin, "--version"], capture_output=True, text=True, check=True)
    lines = out.stdout.splitlines()
    assert lines[0].startswith("ocirt version ")
    assert lines[1].startswith("commit: ") and lines[2] == "spec: 1.3.0"
    assert subprocess.run([ocirt_bin, "spec", "-b", str(tmp_path)], check=False).returncode == 0
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["ociVersion"] == "1.3.0" and config["process"]["args"] == ["sh"]
    again = subprocess.run([ocirt_bin, "spec", "-b", str(tmp_path)], capture_output=True, text=True)
    assert again.returncode == 1 and "File config.json exists" in msg(again)


def test_hooks_run_in_order_with_state_on_stdin(
    ocirt_bin: str, tmp_root: Path, bundle, tmp_path: Path
) -> None:
    log = tmp_path / "hooks.log"

    def hooks(config: dict) -> None:
        def hook(kind: str) -> dict:
            script = f'read s; echo "{kind} $s" >> {log}'
            return {"path": "/bin/sh", "args": ["sh", "-c", script]}

        config["hooks"] = {
            k: [hook(k)] for k in ("prestart", "createRuntime", "poststart", "poststop")
        }

    b = bundle("true", patch=hooks)
    out = run(ocirt_bin, tmp_root, "run", "-b", str(b), "h1")
    assert out.returncode == 0, out.stderr
    entries = [line.split(" ", 1) for line in log.read_text().splitlines()]
    assert [kind for kind, _ in entries] == ["prestart", "createRuntime", "poststart", "poststop"]
    statuses = [json.loads(s)["status"] for _, s in entries]
    assert statuses == ["created", "created", "running", "stopped"]  # the spec (runc: creating)
    assert all(json.loads(s)["id"] == "h1" for _, s in entries)


def test_failing_prestart_hook_fails_create_and_cleans_up(
    ocirt_bin: str, tmp_root: Path, bundle
) -> None:
    b = bundle("true", patch={"hooks": {"prestart": [{"path": "/bin/false"}]}})
    out = run(ocirt_bin, tmp_root, "create", "-b", str(b), "h2")
    assert out.returncode == 1 and "prestart hook /bin/false" in msg(out)
    assert_nothing_left(tmp_root, "h2", b)


def test_start_container_hook_runs_inside_before_the_program(
    ocirt_bin: str, tmp_root: Path, bundle
) -> None:
    """startContainer: in the container's namespaces, after start, before the program."""

    def hooks(config: dict) -> None:
        config["root"]["readonly"] = False
        script = 'read s; echo "$s" > /hook-state; hostname > /hook-hostname'
        config["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", script]}]}

    b = bundle("sh", "-c", "cat /hook-hostname; cat /hook-state", patch=hooks)
    out = run(ocirt_bin, tmp_root, "run", "-b", str(b), "sc1")
    assert out.returncode == 0, out.stderr
    hostname, state_line = out.stdout.splitlines()
    assert hostname == "runc"  # the container's uts namespace (runc spec's hostname)
    assert json.loads(state_line)["id"] == "sc1"


def test_failing_start_container_hook_fails_start(ocirt_bin: str, tmp_root: Path, bundle) -> None:
    b = bundle("true", patch={"hooks": {"startContainer": [{"path": "/bin/false"}]}})
    assert run(ocirt_bin, tmp_root, "create", "-b", str(b), "sc2").returncode == 0
    out = run(ocirt_bin, tmp_root, "start", "sc2")
    assert out.returncode == 1
    assert "error running startContainer hook" in msg(out) and "/bin/false" in msg(out)
    assert wait_status(ocirt_bin, tmp_root, "sc2", "stopped")["status"] == "stopped"


def test_long_state_paths_like_dockerds_work(ocirt_bin: str, tmp_path: Path, bundle) -> None:
    """dockerd: --root /var/run/docker/runtime-runc/moby and 64-hex ids: the start
    socket's path is longer than sun_path's 108 bytes."""
    root = tmp_path / ("r" * 60) / "runtime-runc" / "moby"
    cid = "a" * 64
    assert len(str(root / cid / "start.sock")) > 108
    b = bundle("true")
    try:
        out = run(ocirt_bin, root, "create", "-b", str(b), cid)
        assert out.returncode == 0, out.stderr
        assert run(ocirt_bin, root, "start", cid).returncode == 0
        assert wait_status(ocirt_bin, root, cid, "stopped")["status"] == "stopped"
    finally:
        run(ocirt_bin, root, "delete", "-f", cid)


def test_delete_spares_a_joined_cgroup_and_its_other_processes(
    ocirt_bin: str, tmp_root: Path, bundle
) -> None:
    """A cgroupsPath that exists with other processes in it is joined, never
    emptied or removed by delete (cgroup v1, this host's hierarchy)."""
    name = f"ocirt-test-shared-{os.getpid()}"
    hierarchies = [
        d
        for d in ("devices", "pids", "memory", "cpu", "freezer")
        if os.path.isdir(f"/sys/fs/cgroup/{d}")
    ]
    if not hierarchies:
        pytest.skip("needs cgroup v1 hierarchies (devices, pids, memory, cpu, freezer)")
    dirs = [Path(f"/sys/fs/cgroup/{h}/{name}") for h in hierarchies]
    bystander = subprocess.Popen(["sleep", "100"])
    try:
        for d in dirs:
            d.mkdir()
            (d / "cgroup.procs").write_text(str(bystander.pid))
        b = bundle("sleep", "100", patch={"linux": {"cgroupsPath": f"/{name}"}})
        assert run(ocirt_bin, tmp_root, "run", "-d", "-b", str(b), "shared").returncode == 0
        assert run(ocirt_bin, tmp_root, "delete", "-f", "shared").returncode == 0
        assert bystander.poll() is None, "delete killed a process that is not the container's"
        assert all(d.is_dir() for d in dirs), "delete removed a cgroup it did not create"
    finally:
        bystander.kill()
        bystander.wait()
        for d in dirs:
            remove_cgroup_dir(d, attempts=50, delay=0.05)


def test_home_of_reads_the_containers_passwd(tmp_path: Path) -> None:
    """HOME for a process.env without one (runc's rule): the passwd entry's home,
    "/" when the uid has none or the file is missing; odd bytes do not break it."""
    from ocirt.linux.user import home_of

    passwd = tmp_path / "passwd"
    passwd.write_bytes(
        b"root:x:0:0:root:/root:/bin/sh\n"
        b"broken line\n"
        b"u:x:1000:1000::/home/\xc3\xa9t\xe9:/bin/sh\n"  # UTF-8, then a stray latin-1 byte
        b"v:x:1001:1:::\n"
    )
    assert home_of(0, str(passwd)) == "/root"
    assert home_of(1000, str(passwd)) == "/home/\u00e9t\ufffd"
    assert home_of(1001, str(passwd)) == "/"
    assert home_of(42, str(passwd)) == "/"
    assert home_of(0, str(tmp_path / "missing")) == "/"
