"""linux.seccomp: every action, operator and flag, checked from inside a container.

Most tests run the same bundle under ocirt and runc and compare what the
container saw.  ``tests/seccomp_probe.c`` (built statically into the
bundle) calls a table of syscalls and prints each one's errno; busybox does
the rest.  runc 1.1.5 (this host's) refuses ``flags`` altogether, so the
flag tests check ocirt alone.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ocirt.linux import seccomp

TESTS = Path(__file__).resolve().parent
REFERENCE = Path("/work/shared/reference/configs")
# Both runtimes run the same rootfs: leave no directory behind for the other.
MKDIR = ["sh", "-c", "mkdir /tmp/d; echo rc=$?; rmdir /tmp/d 2>/dev/null; true"]


# -- helpers ---------------------------------------------------------------------
@pytest.fixture(scope="session")
def probe_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler for tests/seccomp_probe.c")
    out = tmp_path_factory.mktemp("probe") / "probe"
    subprocess.run(
        [cc, "-static", "-O2", "-o", str(out), str(TESTS / "seccomp_probe.c")],
        check=True,
        capture_output=True,
    )
    return out


def reference_seccomp(name: str) -> dict[str, Any]:
    path = REFERENCE / f"{name}.json"
    if not path.exists():
        pytest.skip(f"{path} is not here")
    return json.loads(path.read_text())["linux"]["seccomp"]


def reference_caps(name: str) -> dict[str, Any]:
    return json.loads((REFERENCE / f"{name}.json").read_text())["process"]["capabilities"]


def run(runtime: str, root: Path, bundle: Path, cid: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [runtime, "--root", str(root), "run", "-b", str(bundle), cid],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def both(ocirt_bin: str, runc_bin: str, root: Path, bundle: Path) -> tuple[Any, Any]:
    return run(ocirt_bin, root, bundle, "o"), run(runc_bin, root, bundle, "r")


def with_probe(probe: Path):
    """A bundle patch: writable root, the probe at /probe."""

    def patch(config: dict[str, Any]) -> None:
        config["root"]["readonly"] = False

    def install(bundle: Path) -> Path:
        shutil.copy(probe, bundle / "rootfs" / "probe")
        return bundle

    return patch, install


def profile_bundle(
    bundle, profile: dict[str, Any], *args: str, name: str = "bundle", **process: Any
) -> Path:
    def patch(config: dict[str, Any]) -> None:
        config["root"]["readonly"] = False
        config["linux"]["seccomp"] = profile
        config["process"].update(process)

    return bundle(*(args or MKDIR), patch=patch, name=name)


def rule(names: list[str], action: str, **extra: Any) -> dict[str, Any]:
    return {"names": names, "action": action, **extra}


# -- compiling (no container) ---------------------------------------------------------
@pytest.mark.parametrize("name", ["docker", "podman"])
def test_reference_profiles_compile(name: str) -> None:
    compiled = seccomp.compile_filter(reference_seccomp(name))
    assert len(compiled.program) % 8 == 0
    assert 0 < len(compiled.program) // 8 <= 4096
    assert compiled.flags == 0


def test_unknown_syscall_names_are_skipped() -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [rule(["no_such_call"], "SCMP_ACT_KILL")],
    }
    assert seccomp.compile_filter(profile).program


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        ({"defaultAction": "SCMP_ACT_BOGUS"}, "unknown action"),
        ({"defaultAction": "SCMP_ACT_NOTIFY"}, "cannot be used as default action"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_BOGUS"]}, "flag"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_SHEB"]}, "architecture"),
        (
            {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule(["write"], "SCMP_ACT_NOTIFY")]},
            "SCMP_ACT_NOTIFY cannot be used for the write syscall",
        ),
        (
            {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                rule(["close"], "SCMP_ACT_ERRNO", args=[{"index": 0, "op": "SCMP_CMP_XX"}])
            ]},
            "unknown operator",
        ),
        (
            {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                rule(["close"], "SCMP_ACT_ERRNO", args=[{"index": 6, "op": "SCMP_CMP_EQ"}])
            ]},
            "index 6",
        ),
        ({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000}, "errnoRet"),
    ],
)  # fmt: skip
def test_refused_profiles(profile: dict[str, Any], message: str) -> None:
    with pytest.raises(seccomp.SeccompError, match=message):
        seccomp.compile_filter(profile)


def test_enosys_stub_only_for_restrictive_defaults() -> None:
    allow = seccomp.compile_filter({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        rule(["mkdir"], "SCMP_ACT_ERRNO")
    ]})  # fmt: skip
    errno = seccomp.compile_filter({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        rule(["mkdir"], "SCMP_ACT_ALLOW")
    ]})  # fmt: skip
    enosys = (seccomp.ACT_ERRNO | seccomp.ENOSYS).to_bytes(4, sys.byteorder)
    assert enosys not in allow.program
    assert enosys in errno.program


def test_features_report_seccomp(ocirt_bin: str) -> None:
    out = subprocess.run([ocirt_bin, "features"], capture_output=True, text=True, check=True)
    sc = json.loads(out.stdout)["linux"]["seccomp"]
    assert sc["enabled"] is True
    assert set(sc["actions"]) == set(seccomp.ACTIONS)
    assert set(sc["operators"]) == set(seccomp.OPERATORS)
    assert "SCMP_ARCH_X86_64" in sc["archs"] and "SCMP_ARCH_X32" in sc["archs"]
    assert "SCMP_ARCH_SHEB" not in sc["archs"]  # libseccomp 2.5 does not know it
    assert set(sc["knownFlags"]) == set(seccomp.FLAGS)
    assert set(sc["supportedFlags"]) <= set(sc["knownFlags"])
    assert "SECCOMP_FILTER_FLAG_LOG" in sc["supportedFlags"]


# -- the profiles people use ------------------------------------------------------------
DOCKER_EXPECTED = {
    "getpid": "0",
    "fork": "0",
    "clone_newnet": "EPERM",  # clone is allowed only without namespace flags
    "clone_newuser": "EPERM",
    "clone3": "ENOSYS",  # so that glibc falls back to clone
    "unshare_net": "EPERM",
    "personality_0": "0",
    "personality_query": "0",
    "personality_bad": "EPERM",
    "mount": "EPERM",
    "keyctl": "EPERM",
    "nr_999": "ENOSYS",  # newer than the profile
}


@pytest.mark.parametrize("nnp", [True, False], ids=["late-load", "early-load"])
@pytest.mark.parametrize("name", ["docker", "podman"])
def test_reference_profile_like_runc(
    ocirt_bin, runc_bin, tmp_root, bundle, probe_bin, name: str, nnp: bool
) -> None:
    def patch(config: dict[str, Any]) -> None:
        config["root"]["readonly"] = False
        config["linux"]["seccomp"] = reference_seccomp(name)
        config["process"]["capabilities"] = reference_caps(name)
        config["process"]["noNewPrivileges"] = nnp

    b = bundle("/probe", patch=patch)
    shutil.copy(probe_bin, b / "rootfs" / "probe")
    ours, theirs = both(ocirt_bin, runc_bin, tmp_root, b)
    assert ours.returncode == theirs.returncode == 0, ours.stderr + theirs.stderr
    assert ours.stdout == theirs.stdout
    seen = dict(line.split(": ") for line in ours.stdout.splitlines())
    if name == "docker":
        assert {k: seen[k] for k in DOCKER_EXPECTED} == DOCKER_EXPECTED
    else:
        assert seen["vmsplice"] == "EPERM"  # errnoRet 1
        assert seen["personality_bad"] == "ENOSYS"  # defaultErrnoRet 38


def test_syscalls_newer_than_profile_get_enosys(
    ocirt_bin, runc_bin, tmp_root, bundle, probe_bin
) -> None:
    """docker's allow list without anything numbered >= clone3: clone3 is "new"."""
    docker = reference_seccomp("docker")
    old = [
        n for entry in docker["syscalls"] if entry["action"] == "SCMP_ACT_ALLOW"
        and not entry.get("args") for n in entry["names"]
        if 0 <= seccomp.syscall_number(n) < seccomp.syscall_number("clone3")
    ]  # fmt: skip
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [rule([*old, "clone"], "SCMP_ACT_ALLOW")],
    }
    b = profile_bundle(bundle, profile, "/probe", "clone3", "fork", "nr_999", "keyctl")
    shutil.copy(probe_bin, b / "rootfs" / "probe")
    ours, theirs = both(ocirt_bin, runc_bin, tmp_root, b)
    assert ours.stdout == "fork: 0\nclone3: ENOSYS\nkeyctl: EPERM\nnr_999: ENOSYS\n", ours.stderr
    # runc only patches the architectures listed; this profile lists none.
    assert theirs.stdout == "fork: 0\nclone3: EPERM\nkeyctl: EPERM\nnr_999: EPERM\n"
    # ... and with the native one listed, runc agrees.
    profile["architectures"] = ["SCMP_ARCH_X86_64"]
    b2 = profile_bundle(bundle, profile, "/probe", "clone3", "nr_999", name="b2")
    shutil.copy(probe_bin, b2 / "rootfs" / "probe")
    ours, theirs = both(ocirt_bin, runc_bin, tmp_root, b2)
    assert ours.stdout == theirs.stdout == "clone3: ENOSYS\nnr_999: ENOSYS\n"


def test_default_errno_ret(ocirt_bin, runc_bin, tmp_root, bundle, probe_bin) -> None:
    docker = copy.deepcopy(reference_seccomp("docker"))
    for entry in docker["syscalls"]:
        entry["names"] = [n for n in entry["names"] if n not in ("mkdir", "mkdirat")]
    docker["defaultErrnoRet"] = 95
    b = profile_bundle(bundle, docker, "/probe", "mkdir", "getpid")
    shutil.copy(probe_bin, b / "rootfs" / "probe")
    ours, theirs = both(ocirt_bin, runc_bin, tmp_root, b)
    assert ours.stdout == theirs.stdout == "mkdir: EOPNOTSUPP\ngetpid: 0\n"


# -- actions ---------------------------------------------------------------------
ACTION_CASES = {
    # rule on mkdir/mkdirat -> what `sh -c 'mkdir /tmp/d; echo rc=$?'` prints
    "SCMP_ACT_KILL": ("rc=159", None),  # the mkdir process dies of SIGSYS
    "SCMP_ACT_KILL_THREAD": ("rc=159", None),
    "SCMP_ACT_KILL_PROCESS": ("rc=159", None),
    "SCMP_ACT_TRAP": ("rc=159", None),  # SIGSYS, not caught
    "SCMP_ACT_ERRNO": ("rc=1", "Bad file descriptor"),  # errnoRet 9
    "SCMP_ACT_TRACE": ("rc=1", "Function not implemented"),  # no tracer: ENOSYS
    "SCMP_ACT_LOG": ("rc=0", None),
}


@pytest.mark.parametrize("action", list(ACTION_CASES))
def test_action(ocirt_bin, runc_bin, tmp_root, bundle, action: str) -> None:
    extra = {"errnoRet": 9} if action == "SCMP_ACT_ERRNO" else {}
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [rule(["mkdir", "mkdirat"], action, **extra)],
    }
    ours, theirs = both(ocirt_bin, runc_bin, tmp_root, profile_bundle(bundle, profile))
    stdout, stderr_part = ACTION_CASES[action]
    assert ours.stdout.strip() == theirs.stdout.strip() == stdout, ours.stderr
    if stderr_part:
        assert stderr_part in ours.stderr and stderr_part in theirs.stderr


def test_action_allow_rule_under_kill_default(ocirt_bin, runc_bin, tmp_root, bundle) -> None:
    """SCMP_ACT_ALLOW as a rule: the docker allow list with default KILL_PROCESS."""
    docker = copy.deepcopy(reference_seccomp("docker"))
    docker["defaultAction"] = "SCMP_ACT_KILL_PROCESS"
    b = profile_bundle(bundle, docker, "sh", "-c", "mkdir /tmp/d && echo made && rmdir /tmp/d")
    ours, theirs = both(ocirt_bin, runc_bin, tmp_root, b)
    assert ours.stdout == theirs.stdout == "made\n", ours.stderr


# -- operators ----------------------------------------------------------------------
OPS: dict[str, Any] = {
    "SCMP_CMP_NE": lambda n: n != 100,
    "SCMP_CMP_LT": lambda n: n < 100,
    "SCMP_CMP_LE": lambda n: n <= 100,
    "SCMP_CMP_EQ": lambda n: n == 100,
    "SCMP_CMP_GE": lambda n: n >= 100,
    "SCMP_CMP_GT": lambda n: n > 100,
    "SCMP_CMP_MASKED_EQ": lambda n: n & 0xF0 == 0x60,  # value 0xF0, valueTwo 0x60
}
PIDS = (99, 100, 101, 0x60, 0x6F, 0x70)


@pytest.mark.parametrize("op", list(OPS))
def test_operator(ocirt_bin, runc_bin, tmp_root, bundle, probe_bin, op: str) -> None:
    arg = {"index": 0, "value": 100, "op": op}
    if op == "SCMP_CMP_MASKED_EQ":
        arg = {"index": 0, "value": 0xF0, "valueTwo": 0x60, "op": op}
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        # getpgid: runc makes syscalls after loading the filter (close...),
        # a rule on those would break runc itself, not the container.
        "syscalls": [rule(["getpgid"], "SCMP_ACT_ERRNO", errnoRet=42, args=[arg])],
    }
    b = profile_bundle(bundle, profile, "/probe", *(f"getpgid={n}" for n in PIDS))
    shutil.copy(probe_bin, b / "rootfs" / "probe")
    ours, theirs = both(ocirt_bin, runc_bin, tmp_root, b)
    expected = "".join(f"getpgid={n}: {'ENOMSG' if OPS[op](n) else 'ESRCH'}\n" for n in PIDS)
    assert ours.stdout == theirs.stdout == expected, ours.stderr


def test_conditions_and_or(ocirt_bin, runc_bin, tmp_root, bundle, probe_bin) -> None:
    """Different arguments AND; two conditions on one argument OR (runc's rule)."""
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            rule(["dup2"], "SCMP_ACT_ERRNO", errnoRet=42, args=[
                {"index": 0, "value": 100, "op": "SCMP_CMP_EQ"},
                {"index": 1, "value": 200, "op": "SCMP_CMP_EQ"},
            ]),
            rule(["close"], "SCMP_ACT_ERRNO", errnoRet=42, args=[
                {"index": 0, "value": 100, "op": "SCMP_CMP_EQ"},
                {"index": 0, "value": 101, "op": "SCMP_CMP_EQ"},
            ]),
        ],
    }  # fmt: skip
    calls = ["dup2=100,200", "dup2=100,201", "dup2=101,200", "close=100", "close=101", "close=102"]
    b = profile_bundle(bundle, profile, "/probe", *calls)
    shutil.copy(probe_bin, b / "rootfs" / "probe")
    ours, theirs = both(ocirt_bin, runc_bin, tmp_root, b)
    expected = ["ENOMSG", "EBADF", "EBADF", "ENOMSG", "ENOMSG", "EBADF"]
    assert (
        ours.stdout
        == theirs.stdout
        == "".join(f"{c}: {e}\n" for c, e in zip(calls, expected, strict=True))
    )


# -- flags (runc 1.1.5 refuses every flag: ocirt alone) ---------------------------------
class KernelLog:
    """The kernel log records written after this object was made (/dev/kmsg read
    from its end, so a full ring buffer dropping old lines does not matter)."""

    def __init__(self) -> None:
        self.fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        os.lseek(self.fd, 0, os.SEEK_END)

    def new_records(self) -> list[str]:
        records = []
        while True:
            try:
                records.append(os.read(self.fd, 8192).decode(errors="replace"))
            except BlockingIOError:
                return records
            except BrokenPipeError:
                continue  # overwritten while we read: the next read goes on

    def close(self) -> None:
        os.close(self.fd)


def _mkdir_audited(log: KernelLog) -> bool:
    return any("type=1326" in r and "syscall=83" in r for r in log.new_records())


@pytest.mark.parametrize("with_flag", [True, False])
def test_flag_log(ocirt_bin, tmp_root, bundle, with_flag: bool) -> None:
    """SECCOMP_FILTER_FLAG_LOG: an ERRNO action is audited only with the flag.

    Without auditd the kernel prints audit records through printk_ratelimit()
    (10 per 5 s): other tests' records can use that up, and then ours is
    dropped.  So a missing record is retried after the 5 s window, twice.
    """
    profile: dict[str, Any] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [rule(["mkdir"], "SCMP_ACT_ERRNO", errnoRet=77)],
    }
    if with_flag:
        profile["flags"] = ["SECCOMP_FILTER_FLAG_LOG"]
    b = profile_bundle(bundle, profile)
    for attempt in range(3 if with_flag else 1):
        if attempt:
            time.sleep(5.5)
        log = KernelLog()
        try:
            out = run(ocirt_bin, tmp_root, b, f"c{attempt}")
            assert out.stdout.strip() == "rc=1" and "bad state" in out.stderr
            time.sleep(0.2)
            audited = _mkdir_audited(log)
        finally:
            log.close()
        if audited:
            break
    assert audited is with_flag


@pytest.mark.parametrize("flag", ["SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_TSYNC"])
def test_flag_accepted(ocirt_bin, runc_bin, tmp_root, bundle, flag: str) -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": [flag],
        "syscalls": [rule(["mkdir", "mkdirat"], "SCMP_ACT_ERRNO", errnoRet=9)],
    }
    b = profile_bundle(bundle, profile, "sh", "-c", "mkdir /tmp/d; grep Seccomp: /proc/self/status")
    ours, theirs = both(ocirt_bin, runc_bin, tmp_root, b)
    assert ours.returncode == 0 and "Seccomp:\t2" in ours.stdout, ours.stderr
    assert "Bad file descriptor" in ours.stderr
    assert "not yet supported" in theirs.stderr or theirs.returncode == 0


def test_spec_allow_keeps_ssb_mitigation_off(ocirt_bin, tmp_root, bundle) -> None:
    """Without SPEC_ALLOW a filter forces the SSB mitigation (where the kernel does that)."""
    status = Path("/sys/devices/system/cpu/vulnerabilities/spec_store_bypass").read_text()
    if "seccomp" not in status:
        pytest.skip(f"the SSB mitigation is not seccomp-driven here: {status.strip()}")
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"]}
    b = profile_bundle(bundle, profile, "grep", "Speculation_Store", "/proc/self/status")
    out = run(ocirt_bin, tmp_root, b, "c")
    assert "force mitigated" not in out.stdout


# -- loading order ------------------------------------------------------------------
def test_non_root_without_nnp_loads_before_dropping_caps(
    ocirt_bin, runc_bin, tmp_root, bundle
) -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [rule(["mkdir", "mkdirat"], "SCMP_ACT_ERRNO", errnoRet=13)],
    }
    script = "mkdir /tmp/d; echo rc=$?; grep -E '^(Seccomp|NoNewPrivs|CapEff):' /proc/self/status"
    b = profile_bundle(
        bundle, profile, "sh", "-c", script,
        user={"uid": 1000, "gid": 1000}, noNewPrivileges=False,
    )  # fmt: skip
    ours, theirs = both(ocirt_bin, runc_bin, tmp_root, b)
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout
    status = ours.stdout.replace("CapEff:\t0000000000000000\n", "")
    assert "rc=1\nNoNewPrivs:\t0\nSeccomp:\t2" in status


def test_exec_gets_the_filter(ocirt_bin, runc_bin, tmp_root, bundle, probe_bin) -> None:
    def patch(config: dict[str, Any]) -> None:
        config["root"]["readonly"] = False
        config["linux"]["seccomp"] = reference_seccomp("docker")
        config["process"]["capabilities"] = reference_caps("docker")
        config["process"]["noNewPrivileges"] = False

    b = bundle("sleep", "30", patch=patch)
    shutil.copy(probe_bin, b / "rootfs" / "probe")
    outputs = []
    for runtime, cid in ((ocirt_bin, "eo"), (runc_bin, "er")):
        base = [runtime, "--root", str(tmp_root)]
        # Not captured: a detached container whose stdio is a pipe we close dies
        # (under runc as well), so it gets /dev/null.
        subprocess.run([*base, "run", "-d", "-b", str(b), cid], check=True, timeout=60,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)  # fmt: skip
        out = subprocess.run([*base, "exec", cid, "/probe"], capture_output=True, text=True,
                             timeout=60)  # fmt: skip
        subprocess.run([*base, "delete", "-f", cid], timeout=60, capture_output=True)
        outputs.append(out.stdout + out.stderr)
    assert outputs[0] == outputs[1]
    assert "clone3: ENOSYS" in outputs[0] and "clone_newnet: EPERM" in outputs[0]


# -- notify ------------------------------------------------------------------------
def _start_forwards_listener() -> bool:
    import inspect

    from ocirt import container

    return "read_start_reply" in inspect.getsource(container)


class Agent:
    """tests/seccomp_listener.py in a subprocess."""

    def __init__(self, directory: Path, answer: str, sock: Path | None = None) -> None:
        self.socket = sock or directory / "agent.sock"
        self.state_file = directory / "agent-state.json"
        self.proc = subprocess.Popen(
            [sys.executable, str(TESTS / "seccomp_listener.py"), str(self.socket),
             str(self.state_file), answer],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "ready"

    def finish(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        self.proc.wait(timeout=30)
        notes = Path(str(self.state_file) + ".notifications")
        return json.loads(self.state_file.read_text()), json.loads(notes.read_text())

    def stop(self) -> None:
        """Kill it if it still runs (no listener ever came: it waits in accept)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()


def notify_profile(agent: Agent, flags: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": str(agent.socket),
        "listenerMetadata": "test-metadata",
        "flags": list(flags),
        "syscalls": [rule(["mkdir", "mkdirat"], "SCMP_ACT_NOTIFY")],
    }


NOTIFY_SCRIPT = "mkdir /tmp/nd; echo rc=$?; test -d /tmp/nd && echo exists || echo absent"


@pytest.mark.skipif(
    not _start_forwards_listener(),
    reason="ocirt start does not forward the listener yet (Container._release_init wiring)",
)
@pytest.mark.parametrize(
    ("answer", "flags", "expected"),
    [
        ("success", (), "rc=0\nabsent\n"),  # "succeeds" without running
        ("errno:122", (), "rc=1\nabsent\n"),  # EDQUOT, from the agent
        ("continue", (), "rc=0\nexists\n"),
        ("success", ("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",), "rc=0\nabsent\n"),
    ],
)
def test_notify(
    ocirt_bin, runc_bin, tmp_root, tmp_path, bundle, answer: str, flags: tuple, expected: str
) -> None:
    agent = Agent(tmp_path, answer)
    b = profile_bundle(bundle, notify_profile(agent, flags), "sh", "-c", NOTIFY_SCRIPT)
    ours = run(ocirt_bin, tmp_root, b, "n")
    state, notes = agent.finish()
    assert ours.stdout == expected, ours.stderr
    if answer.startswith("errno"):
        assert "Disk quota exceeded" in ours.stderr
    assert state["fds"] == ["seccompFd"] and state["metadata"] == "test-metadata"
    assert state["state"]["id"] == "n" and state["pid"] == state["state"]["pid"] > 0
    assert state["state"]["bundle"] == str(b)
    assert [n["nr"] for n in notes] == [seccomp.syscall_number("mkdir")]
    if flags:
        return  # runc 1.1.5 refuses flags
    (tmp_path / "runc").mkdir()
    agent = Agent(tmp_path / "runc", answer)
    b2 = profile_bundle(bundle, notify_profile(agent), "sh", "-c", NOTIFY_SCRIPT, name="b2")
    theirs = run(runc_bin, tmp_root, b2, "nr")
    runc_state, _ = agent.finish()
    assert theirs.stdout == ours.stdout
    assert set(runc_state) == set(state)


EXEC_NOTIFY_SCRIPT = "mkdir /tmp/xd; echo rc=$?; test -d /tmp/xd && echo exists || echo absent"


def _notify_exec(
    binary: str, root: Path, tmp_path: Path, bundle, cid: str, exec_agent: bool = True
) -> tuple[Any, ...]:
    """`exec` into a running container whose profile notifies mkdir.

    The init's listener goes (at start) to a first agent; then a second one
    takes the socket path and gets the exec'd process's listener (with
    EXEC_AGENT false, nobody listens there any more).  Also returns `ps`.
    """
    first = Agent(tmp_path / "init-agent", "continue", sock=tmp_path / "agent.sock")
    b = profile_bundle(bundle, notify_profile(first), "sleep", "1000", name=f"b-{cid}")
    subprocess.run(
        [binary, "--root", str(root), "run", "-d", "-b", str(b), cid],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        timeout=60, check=True,
    )  # fmt: skip
    try:
        for _ in range(200):  # the init's listener has reached the first agent
            if first.state_file.exists():
                break
            time.sleep(0.05)
        first.socket.unlink()
        if not exec_agent:
            out = subprocess.run(
                [binary, "--root", str(root), "exec", cid, "sh", "-c", EXEC_NOTIFY_SCRIPT],
                stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            ps = subprocess.run(
                [binary, "--root", str(root), "ps", "--format", "json", cid],
                capture_output=True, text=True, timeout=60, check=True,
            )  # fmt: skip
            return out, json.loads(ps.stdout)
        second = Agent(tmp_path / "exec-agent", "success", sock=first.socket)
        out = subprocess.run(
            [binary, "--root", str(root), "exec", cid, "sh", "-c", EXEC_NOTIFY_SCRIPT],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        for _ in range(100):  # the exec'd process has exited: its listener came, or never will
            if second.state_file.exists():
                break
            time.sleep(0.05)
        if second.state_file.exists():
            state, notes = second.finish()
        else:
            second.proc.kill()
            second.proc.wait()
            state, notes = {}, []
        init_state = json.loads(first.state_file.read_text())
    finally:
        subprocess.run([binary, "--root", str(root), "delete", "-f", cid], timeout=60, check=False)
        first.proc.wait(timeout=30)
    return out, state, notes, init_state


def test_notify_for_exec(ocirt_bin, runc_bin, tmp_root, tmp_path, bundle) -> None:
    """An exec'd process's listener reaches the agent too, with its own pid (as runc)."""
    for d in ("o", "r"):
        for agent in ("init-agent", "exec-agent"):
            (tmp_path / d / agent).mkdir(parents=True)
    out, state, notes, init_state = _notify_exec(ocirt_bin, tmp_root, tmp_path / "o", bundle, "xo")
    assert out.stdout == "rc=0\nabsent\n", out.stderr  # the agent answered "success"
    assert state, "the exec'd process's listener never reached the agent"
    assert state["fds"] == ["seccompFd"] and state["metadata"] == "test-metadata"
    assert state["state"]["id"] == "xo" and state["state"]["status"] == "running"
    assert state["state"]["pid"] == init_state["pid"] > 0  # the container's init
    assert state["pid"] > 0 and state["pid"] != state["state"]["pid"]  # the exec'd process
    assert [n["nr"] for n in notes] == [seccomp.syscall_number("mkdir")]
    theirs, runc_state, _, _ = _notify_exec(runc_bin, tmp_root, tmp_path / "r", bundle, "xr")
    assert theirs.stdout == out.stdout, theirs.stderr
    assert set(runc_state) == set(state)
    assert runc_state["pid"] != runc_state["state"]["pid"]


def test_notify_for_exec_agent_unreachable(ocirt_bin, tmp_root, tmp_path, bundle) -> None:
    """No agent for the exec'd process's listener: exec fails, and kills what it started."""
    (tmp_path / "init-agent").mkdir()
    out, pids = _notify_exec(ocirt_bin, tmp_root, tmp_path, bundle, "xu", exec_agent=False)
    assert out.returncode != 0 and "seccomp agent" in out.stderr, out.stderr
    assert out.stdout == ""  # the program never ran
    assert len(pids) == 1  # only the container's init is left


def test_notify_agent_unreachable(ocirt_bin, tmp_root, tmp_path, bundle) -> None:
    if not _start_forwards_listener():
        pytest.skip("ocirt start does not forward the listener yet")
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": str(tmp_path / "nobody.sock"),
        "syscalls": [rule(["mkdir", "mkdirat"], "SCMP_ACT_NOTIFY")],
    }
    out = run(ocirt_bin, tmp_root, profile_bundle(bundle, profile), "c")
    assert out.returncode != 0
    assert "seccomp agent" in out.stderr


def test_listener_helper_message(tmp_path) -> None:
    """send_to_agent's ContainerProcessState, read back by a plain socket."""
    path = str(tmp_path / "a.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as srv:
        srv.bind(path)
        srv.listen(1)
        r, w = os.pipe()
        try:
            seccomp.send_to_agent(path, r, {"ociVersion": "1.3.0", "pid": 42, "id": "x"}, "md")
            conn, _ = srv.accept()
            with conn:
                data, anc, _, _ = conn.recvmsg(65536, socket.CMSG_SPACE(4))
        finally:
            os.close(r)
            os.close(w)
    message = json.loads(data)
    assert message == {
        "ociVersion": "1.3.0", "fds": ["seccompFd"], "pid": 42, "metadata": "md",
        "state": {"ociVersion": "1.3.0", "pid": 42, "id": "x"},
    }  # fmt: skip
    assert anc and anc[0][1] == socket.SCM_RIGHTS
    os.close(int.from_bytes(anc[0][2][:4], sys.byteorder))


# -- notify: syscalls the runtime itself makes after the load ----------------------
# Between loading a filter with a listener and the program's execve, the runtime
# makes syscalls of its own (stage 2's read, close and execve; the Python init's,
# when it loads early: without noNewPrivileges; exec's child's).  One the profile
# notifies waits for the agent: it must have the listener by then, or create,
# start, run or exec hang for ever.  The loader only write(2)s the fd's number
# and its parent takes it with pidfd_getfd(2) (ocirt/linux/seccomp.py).
# Checked against the code before that change (its tree before a378ace, as $OCIRT):
# sendmsg was refused ("cannot be used for sendmsg"), close without
# noNewPrivileges hung create (as did execveat, read and sendto, not listed here);
# and with only exec's half reverted (SCM_RIGHTS, sendmsg), exec hung on sendmsg.
# runc 1.1.5 passes every case here (measured 3 times): asserted alike.
RUNTIME_SYSCALLS = ("execve", "openat", "sendmsg", "close", "fchdir")
HANG_SECONDS = 20  # a run takes about a second; past this, it waits for an agent without the fd


def run_bounded(cmd: list[str], detached: bool = False) -> subprocess.CompletedProcess | None:
    """CMD's result, or None when it hangs: it is then killed, with its session.

    DETACHED (run -d): the container keeps our stdio, so no pipes to wait on.
    """
    out = subprocess.DEVNULL if detached else subprocess.PIPE
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        stdout, stderr = proc.communicate(timeout=HANG_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)  # the runtime and what it started (no terminal: one session)
        proc.communicate()
        return None
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout or "", stderr or "")


@pytest.fixture
def agents(tmp_path: Path):
    """Agent(name, answer) factory; every agent is stopped at the end."""
    made: list[Agent] = []

    def make(name: str, answer: str = "continue", sock: Path | None = None) -> Agent:
        (tmp_path / name).mkdir()
        made.append(Agent(tmp_path / name, answer, sock=sock))
        return made[-1]

    yield make
    for agent in made:
        agent.stop()


def notify_one(agent: Agent, name: str) -> dict[str, Any]:
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": str(agent.socket),
        "syscalls": [rule([name], "SCMP_ACT_NOTIFY")],
    }


def probe_answer(name: str) -> str:
    """The probe's line for NAME when the agent lets the call run (continue)."""
    return f"{name}: ENOENT\n" if name == "execve" else f"{name}: 0\n"


def _run_notifying(runtime: str, root: Path, bundle, probe: Path, agent: Agent, name: str,
                   nnp: bool, cid: str) -> subprocess.CompletedProcess | None:  # fmt: skip
    b = profile_bundle(bundle, notify_one(agent, name), "/probe", name, name=f"b-{cid}",
                       noNewPrivileges=nnp)  # fmt: skip
    shutil.copy(probe, b / "rootfs" / "probe")
    return run_bounded([runtime, "--root", str(root), "run", "-b", str(b), cid])


def _outcome(result: subprocess.CompletedProcess | None) -> str:
    if result is None:
        return "hang"
    return f"rc={result.returncode} {result.stdout!r} {result.stderr.strip()[-200:]!r}"


@pytest.mark.parametrize("nnp", [True, False], ids=["nnp", "no-nnp"])
@pytest.mark.parametrize("name", RUNTIME_SYSCALLS)
def test_notify_runtime_syscall_run(
    ocirt_bin, runc_bin, tmp_root, bundle, probe_bin, agents, name: str, nnp: bool
) -> None:
    """run with a profile notifying NAME: no hang, the agent gets the listener (at
    start, or at create when the init loads it: no noNewPrivileges) and answers."""
    agent = agents("ocirt-agent")
    ours = _run_notifying(ocirt_bin, tmp_root, bundle, probe_bin, agent, name, nnp, "o")
    assert ours is not None, f"ocirt run hung with {name} notified"
    assert (ours.returncode, ours.stdout) == (0, probe_answer(name)), ours.stderr
    state, notes = agent.finish()
    assert state["fds"] == ["seccompFd"] and state["pid"] == state["state"]["pid"] > 0
    # Forwarded by start (stage 2 loads) or create (the init loads: runc's "creating").
    assert state["state"]["status"] == ("created" if nnp else "creating")
    assert seccomp.syscall_number(name) in [n["nr"] for n in notes]  # the probe's call

    # runc 1.1.5 now and then fails its own execve with ENOSYS when execve is
    # notified without noNewPrivileges ("exec /probe: function not implemented":
    # once in CI at 06:30 under load, never in 6 runs alone): up to three tries,
    # each with its own agent; runc must answer as ocirt does in one of them.
    outcomes = []
    for attempt in range(3):
        runc_agent = agents(f"runc-agent-{attempt}")
        theirs = _run_notifying(
            runc_bin, tmp_root, bundle, probe_bin, runc_agent, name, nnp, f"r{attempt}"
        )
        outcomes.append(_outcome(theirs))
        if theirs is not None and theirs.stdout == ours.stdout:
            break
    print(f"runc 1.1.5, run, {name} notified, nnp={nnp}: {outcomes}")
    assert theirs is not None and theirs.stdout == ours.stdout, outcomes


def _exec_notifying(runtime: str, root: Path, bundle, probe: Path, agents, name: str,
                    nnp: bool, cid: str) -> tuple[Any, ...]:  # fmt: skip
    """exec /probe NAME into a container whose profile notifies NAME.

    The init's listener goes to a first agent, the exec'd process's to a second
    one at the same path.  Returns (run -d, exec, the second agent's state and
    notes); None for a command that hung.
    """
    first = agents(f"{cid}-init-agent")
    b = profile_bundle(bundle, notify_one(first, name), "sleep", "1000", name=f"b-{cid}",
                       noNewPrivileges=nnp)  # fmt: skip
    shutil.copy(probe, b / "rootfs" / "probe")
    base = [runtime, "--root", str(root)]
    started = run_bounded([*base, "run", "-d", "-b", str(b), cid], detached=True)
    if started is None or started.returncode != 0:
        return started, None, {}, []
    try:
        for _ in range(200):  # the init's listener has reached the first agent
            if first.state_file.exists():
                break
            time.sleep(0.05)
        first.socket.unlink()
        second = agents(f"{cid}-exec-agent", sock=first.socket)
        out = run_bounded([*base, "exec", cid, "/probe", name])
        state, notes = {}, []
        if out is not None and out.returncode == 0:
            state, notes = second.finish()
    finally:
        subprocess.run([*base, "delete", "-f", cid], timeout=60, capture_output=True)
    return started, out, state, notes


@pytest.mark.parametrize("nnp", [True, False], ids=["nnp", "no-nnp"])
@pytest.mark.parametrize("name", RUNTIME_SYSCALLS)
def test_notify_runtime_syscall_exec(
    ocirt_bin, runc_bin, tmp_root, bundle, probe_bin, agents, name: str, nnp: bool
) -> None:
    """exec with a profile notifying NAME: no hang; the exec'd process's listener
    reaches the agent with that process's pid, and the agent answers its call."""
    started, out, state, notes = _exec_notifying(
        ocirt_bin, tmp_root, bundle, probe_bin, agents, name, nnp, "o"
    )
    assert started is not None and started.returncode == 0, f"ocirt run -d: {_outcome(started)}"
    assert out is not None, f"ocirt exec hung with {name} notified"
    assert (out.returncode, out.stdout) == (0, probe_answer(name)), out.stderr
    assert state["fds"] == ["seccompFd"] and state["state"]["status"] == "running"
    assert state["pid"] > 0 and state["pid"] != state["state"]["pid"]  # the exec'd process
    assert seccomp.syscall_number(name) in [n["nr"] for n in notes]

    r_started, theirs, _, _ = _exec_notifying(
        runc_bin, tmp_root, bundle, probe_bin, agents, name, nnp, "r"
    )
    print(f"runc 1.1.5, exec, {name} notified, nnp={nnp}: run -d {_outcome(r_started)};"
          f" exec {_outcome(theirs)}")  # fmt: skip
    assert theirs is not None and theirs.stdout == out.stdout, _outcome(theirs)


def test_notify_write_refused_like_runc(ocirt_bin, runc_bin, tmp_root, tmp_path, bundle) -> None:
    """write is the one syscall a profile may not notify: the listener's number leaves
    by write.  Both refuse it with the same words."""
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": str(tmp_path / "nobody.sock"),
        "syscalls": [rule(["write"], "SCMP_ACT_NOTIFY")],
    }
    ours, theirs = both(ocirt_bin, runc_bin, tmp_root, profile_bundle(bundle, profile))
    expected = (
        "unable to start container process: unable to init seccomp: "
        "SCMP_ACT_NOTIFY cannot be used for the write syscall"
    )
    assert ours.returncode != 0 and expected in ours.stderr, ours.stderr
    assert theirs.returncode != 0 and expected in theirs.stderr, theirs.stderr


def test_notify_sendmsg_compiles_with_a_listener() -> None:
    notify = rule(["sendmsg"], "SCMP_ACT_NOTIFY")
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [notify]}
    assert seccomp.compile_filter(profile).wants_listener
