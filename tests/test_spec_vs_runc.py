"""Where runtime-spec 1.3 and runc 1.1 differ, side by side with runc (and crun).

Each test runs the same bundle with ocirt, runc and crun (peers.py), asserts
what ocirt does, and states what the peers do and which behaviour ocirt
follows and why (the spec's MUST, unless a manager breaks: the choices are
recorded in docs/conformance.md).
"""

from __future__ import annotations

import json
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import need_root
from peers import peer_runtimes


@pytest.fixture
def runtimes(ocirt_bin: str, tmp_path: Path):
    need_root()
    found = peer_runtimes(ocirt_bin, tmp_path)
    try:
        yield {rt.name: rt for rt in found}
    finally:
        for rt in found:
            rt.cleanup()


def hook_logging_to(log: Path, kinds: tuple[str, ...]) -> dict[str, Any]:
    def hook(kind: str) -> dict[str, Any]:
        return {"path": "/bin/sh", "args": ["sh", "-c", f'read s; echo "{kind} $s" >> {log}']}

    return {kind: [hook(kind)] for kind in kinds}


def read_hook_log(log: Path) -> list[tuple[str, str, bool]]:
    """(hook kind, state status, whether the state had a pid) per hook run."""
    entries = []
    for line in log.read_text().splitlines():
        kind, state = line.split(" ", 1)
        parsed = json.loads(state)
        entries.append((kind, parsed["status"], parsed.get("pid", 0) > 0))
    return entries


def test_create_time_hooks_see_status_created(runtimes, bundle, tmp_path: Path) -> None:
    """The spec: prestart, createRuntime and createContainer run once the
    container's environment is created, and the state they read says
    "created" (crun and the OCI validation suite agree); runc 1.1 says
    "creating".  ocirt follows the spec, and also gives createContainer the
    init's pid (crun gives it pid 0)."""
    kinds = ("prestart", "createRuntime", "createContainer", "poststart", "poststop")
    seen = {}
    for name, rt in runtimes.items():
        log = tmp_path / f"hooks-{name}.log"
        b = bundle("true", patch={"hooks": hook_logging_to(log, kinds)}, name=f"b-{name}")
        result = rt.run_bundle(b, f"hooks-{name}")
        assert result.returncode == 0, (name, result.stderr)
        seen[name] = read_hook_log(log)
    assert seen["ocirt"] == [
        ("prestart", "created", True),
        ("createRuntime", "created", True),
        ("createContainer", "created", True),
        ("poststart", "running", True),
        ("poststop", "stopped", False),
    ]
    if "runc" in seen:  # the difference this test documents
        assert [status for _, status, _ in seen["runc"][:3]] == ["creating"] * 3
    if "crun" in seen:
        assert [status for _, status, _ in seen["crun"][:3]] == ["created"] * 3


def test_failing_poststart_hook_is_a_warning(runtimes, bundle, tmp_path: Path) -> None:
    """The spec: if a poststart hook fails, the runtime MUST log a warning, and
    the remaining hooks and the lifecycle go on as if it had succeeded.
    runc 1.1 fails `start` and kills the container instead; ocirt follows the spec."""
    results = {}
    for name, rt in runtimes.items():
        log = tmp_path / f"after-{name}.log"
        hooks = {
            "poststart": [
                {"path": "/bin/false"},
                {"path": "/bin/sh", "args": ["sh", "-c", f"echo second-ran >> {log}"]},
            ]
        }
        b = bundle("sleep", "30", patch={"hooks": hooks}, name=f"b-{name}")
        cid = f"poststart-{name}"
        created = rt.call("create", "-b", str(b), cid)
        started = rt.call("start", cid) if created.returncode == 0 else created
        state = rt.call("state", cid)
        status = json.loads(state.stdout)["status"] if state.returncode == 0 else "gone"
        results[name] = (created.returncode, started.returncode, started.stderr, status)
        rt.call("delete", "-f", cid)
    created, code, stderr, status = results["ocirt"]
    assert (created, code, status) == (0, 0, "running"), results["ocirt"]
    assert "level=warning" in stderr and "poststart" in stderr and "/bin/false" in stderr
    assert (tmp_path / "after-ocirt.log").read_text() == "second-ran\n"  # the next hook ran
    if "runc" in results:
        # runc 1.1.5 even runs poststart hooks at `create`, and fails it.
        assert results["runc"][0] != 0, results["runc"]


def test_kill_all_with_signal_0_is_accepted(runtimes, bundle) -> None:
    """runc takes any signal number, 0 (is the process there?) included."""
    codes = {}
    for name, rt in runtimes.items():
        if name == "crun":
            continue
        b = bundle("sleep", "30", name=f"b-{name}")
        cid = f"kill0-{name}"
        assert rt.run_bundle(b, cid, "-d").returncode == 0
        codes[name] = (rt.call("kill", "--all", cid, "0").returncode,
                       rt.call("kill", cid, "0").returncode)  # fmt: skip
        rt.call("delete", "-f", cid)
    assert codes["ocirt"] == (0, 0)
    if "runc" in codes:
        assert codes["runc"] == (0, 0)


ROOT_PROPAGATION = (
    "cat /proc/self/mountinfo | while read id parent dev root point opts rest; do"
    ' [ "$point" = / ] && echo "$rest"; done; true'
)


def _root_propagation(rest: str) -> str:
    """shared / master / unbindable / private, from mountinfo's optional fields."""
    fields = rest.split(" - ")[0].split()
    for kind in ("shared", "master", "unbindable"):
        if any(f.startswith(kind) for f in fields):
            return kind
    return "private"


@pytest.mark.parametrize(
    ("propagation", "expected"),
    [
        ("shared", "shared"),
        ("slave", "master"),
        ("private", "private"),
        ("unbindable", "unbindable"),
    ],
)
def test_rootfs_propagation_is_the_root_mounts(
    ocirt_bin: str, runc_bin: str, bundle, tmp_path: Path, propagation: str, expected: str
) -> None:
    """Run from a caller whose / is shared (a private mount namespace of the
    test, made rshared), so that "slave" has a master to follow.  ocirt:
    shared is a new peer group (shared:N, not the caller's), as crun makes it;
    runc 1.1 leaves a "shared" root private (pivot_root's parent must not be
    shared, and it does not share it again)."""
    need_root()
    b = bundle("sh", "-c", ROOT_PROPAGATION, patch={"linux": {"rootfsPropagation": propagation}})
    seen = {}
    for name, binary in (("ocirt", ocirt_bin), ("runc", runc_bin)):
        root = tmp_path / f"root-{name}"
        result = subprocess.run(
            ["unshare", "-m", "--propagation", "shared", binary, "--root", str(root), "run",
             "-b", str(b), f"prop-{name}"],
            capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        seen[name] = (result.returncode, _root_propagation(result.stdout))
    assert seen["ocirt"] == (0, expected), seen
    if propagation == "shared":
        assert seen["runc"] == (0, "private")  # the difference this test documents
    elif propagation != "unbindable":  # runc 1.1.5 fails to bind an unbindable root
        assert seen["runc"] == seen["ocirt"]


def test_device_rules_are_applied_in_the_listed_order(runtimes, bundle) -> None:
    """The spec: entries of linux.resources.devices are applied in the listed
    order; cgroup v1's devices.list keeps the order they were written in.
    runc 1.1 writes them sorted; ocirt writes the config's order (then
    runc's default list, as runc appends it)."""
    v1 = Path("/sys/fs/cgroup/devices")
    if not (v1 / "devices.list").exists():
        pytest.skip("no cgroup v1 devices hierarchy (devices.list): cgroup v2 host")
    rules = [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"},
        {"allow": True, "type": "b", "major": 7, "access": "r"},
        {"allow": True, "type": "c", "major": 4, "minor": 1, "access": "rw"},
    ]
    lists = {}
    for name, rt in runtimes.items():
        if name == "crun":
            continue
        path = f"/ocirt-test-devorder-{name}"
        patch = {"linux": {"cgroupsPath": path, "resources": {"devices": rules}}}
        b = bundle("sleep", "30", patch=patch, name=f"b-{name}")
        cid = f"devorder-{name}"
        assert rt.run_bundle(b, cid, "-d").returncode == 0
        lists[name] = (v1 / path.lstrip("/") / "devices.list").read_text().splitlines()
        rt.call("delete", "-f", cid)
    assert lists["ocirt"][:3] == ["c 10:200 rwm", "b 7:* r", "c 4:1 rw"]
    if "runc" in lists:
        assert sorted(lists["runc"]) == sorted(lists["ocirt"])  # the same rules
        assert lists["runc"][:3] != lists["ocirt"][:3]  # in another order


def test_kernel_tcp_is_applied_or_refused(runtimes, bundle) -> None:
    """linux.resources.memory.kernelTCP: written to memory.kmem.tcp.limit_in_bytes
    where cgroup v1 has it, else create fails saying so (runc 1.1 ignores it
    everywhere, silently)."""
    limit = 8 * 1024 * 1024
    tcp_file = Path("/sys/fs/cgroup/memory/memory.kmem.tcp.limit_in_bytes")
    patch = {
        "linux": {
            "cgroupsPath": "/ocirt-test-kerneltcp",
            "resources": {"memory": {"kernelTCP": limit}},
        }
    }
    rt = runtimes["ocirt"]
    b = bundle("sleep", "30", patch=patch)
    result = rt.run_bundle(b, "ktcp", "-d")
    try:
        if tcp_file.exists():
            assert result.returncode == 0, result.stderr
            own = Path("/sys/fs/cgroup/memory/ocirt-test-kerneltcp/memory.kmem.tcp.limit_in_bytes")
            assert int(own.read_text()) == limit
        else:
            assert result.returncode != 0
            assert "kernelTCP" in result.stderr
    finally:
        rt.call("delete", "-f", "ktcp")


def test_debug_logs_each_step(runtimes, bundle, tmp_path: Path) -> None:
    """runc --debug writes logrus level=debug records of its steps; ocirt's name
    what each step did (namespaces, mounts, cgroup paths, pids), on stderr or
    in --log's file, which exists even when it holds nothing but debug lines."""
    rt = runtimes["ocirt"]
    b = bundle("true")
    log = tmp_path / "debug.json"
    result = rt.call("--debug", "--log", str(log), "--log-format", "json", "run", "-b", str(b), "d")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert records and {r["level"] for r in records} == {"debug"}
    text = "\n".join(r["msg"] for r in records)
    for expected in ("config.json is valid", "cgroup (", "clone: new namespaces",
                     "init: mounted proc proc on /proc", "init: pivot_root into",
                     "created: init", "start: stage 2 of init", "delete: container d"):  # fmt: skip
        assert expected in text, text
    stderr = rt.call("--debug", "run", "-b", str(b), "d2").stderr
    assert 'level=debug msg="init: pivot_root into' in stderr
    if "runc" in runtimes:
        runc_log = tmp_path / "runc-debug.json"
        runtimes["runc"].call("--debug", "--log", str(runc_log), "--log-format", "json",
                              "run", "-b", str(b), "d")  # fmt: skip
        assert '"level":"debug"' in runc_log.read_text()


def test_start_container_hooks_run_under_the_seccomp_filter(runtimes, bundle) -> None:
    """As runc: stage 2 loads the profile, then runs the startContainer hooks,
    so a hook calling a syscall the profile kills fails `start`."""
    seccomp = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL"}],
    }
    hooks = {"startContainer": [{"path": "/bin/mkdir", "args": ["mkdir", "/tmp/by-hook"]}]}
    results = {}
    for name, rt in runtimes.items():
        if name == "crun":
            continue
        b = bundle("true", patch={"linux": {"seccomp": seccomp}, "hooks": hooks}, name=f"b-{name}")
        results[name] = rt.run_bundle(b, f"schook-{name}")
    ocirt = results["ocirt"]
    assert ocirt.returncode != 0
    assert "error running startContainer hook /bin/mkdir: signal: bad system call" in ocirt.stderr
    if "runc" in results:
        assert "bad system call" in results["runc"].stderr


def test_create_container_hooks_run_in_the_rootfs(runtimes, bundle) -> None:
    """runc runs createContainer hooks with the rootfs as their working
    directory: a relative path names the container's file."""
    hooks = {"createContainer": [{"path": "/bin/touch", "args": ["touch", "./by-hook"]}]}
    made = {}
    for name, rt in runtimes.items():
        if name == "crun":
            continue
        patch = {"hooks": hooks, "root": {"readonly": False}}
        b = bundle("true", patch=patch, name=f"b-{name}")
        assert rt.run_bundle(b, f"cchook-{name}").returncode == 0
        made[name] = (b / "rootfs" / "by-hook").exists()
    assert made["ocirt"]
    if "runc" in made:
        assert made["runc"]


def test_hooks_get_no_runtime_fd(runtimes, bundle, tmp_path: Path) -> None:
    """A hook gets the state on stdin and nothing else of the runtime: the
    fds it has open are 0-2 (plus the one `ls` opens to list them), as runc's
    hooks but its createContainer ones."""
    listing = {}
    for name, rt in runtimes.items():
        if name == "crun":
            continue
        out = tmp_path / f"fds-{name}"
        script = f"ls /proc/self/fd > {out}.$0"
        hooks = {
            kind: [{"path": "/bin/sh", "args": ["sh", "-c", script, kind]}]
            for kind in ("prestart", "createRuntime", "createContainer", "poststart", "poststop")
        }
        b = bundle("true", patch={"hooks": hooks}, name=f"b-{name}")
        assert rt.run_bundle(b, f"fdhook-{name}").returncode == 0
        listing[name] = {
            p.name.split(".")[-1]: p.read_text().split() for p in tmp_path.glob(f"fds-{name}.*")
        }
    for kind, fds in listing["ocirt"].items():
        assert fds == ["0", "1", "2", "3"], (kind, fds)  # 3: ls's own directory
    if "runc" in listing:
        runc = listing["runc"]
        # runc 1.1.5 leaks its init's fds into createContainer hooks.
        assert len(runc.pop("createContainer")) > 4
        assert runc == {k: v for k, v in listing["ocirt"].items() if k != "createContainer"}


def test_exec_cgroup_must_stay_inside_the_containers(runtimes, bundle) -> None:
    """exec --cgroup SUB: only sub-cgroups of the container's cgroup, as runc
    ("SUB is not a sub cgroup path"); ".." cannot leave it, and a leading
    "/" is still relative to it."""
    pids_root = Path("/sys/fs/cgroup/pids")
    if not pids_root.is_dir():
        pytest.skip("no cgroup v1 pids hierarchy: the sub-cgroup is made there")
    rt = runtimes["ocirt"]
    patch = {"linux": {"cgroupsPath": "/ocirt-test-execsub"}}
    b = bundle("sleep", "30", patch=patch)
    assert rt.run_bundle(b, "execsub", "-d").returncode == 0
    sub = pids_root / "ocirt-test-execsub" / "probe"
    sub.mkdir()
    try:
        for bad in ("../..", "pids:../..", "pids:sub/../../.."):
            result = rt.call("exec", "--cgroup", bad, "execsub", "true")
            assert result.returncode != 0
            assert "is not a sub cgroup path" in result.stderr, (bad, result.stderr)
        inside = rt.call("exec", "--cgroup", "pids:/probe", "execsub", "cat", "/proc/self/cgroup")
        assert inside.returncode == 0, inside.stderr
        assert any(
            line.endswith(":pids:/ocirt-test-execsub/probe") or line.endswith(":pids:/probe")
            for line in inside.stdout.splitlines()
        ), inside.stdout
    finally:
        rt.call("delete", "-f", "execsub")
        sub.rmdir() if sub.exists() else None


def test_linux_devices_get_no_allow_rule_of_their_own(runtimes, bundle) -> None:
    """Device rules deny what they say: a node created from linux.devices is
    not allowed by that alone; runc's default list and resources.devices
    decide (runc: a config denying all cannot write to the /dev/kmsg it creates)."""
    patch = {
        "linux": {
            "devices": [{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11,
                         "fileMode": 0o666, "uid": 0, "gid": 0}],
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        }
    }  # fmt: skip
    script = "test -c /dev/kmsg || exit 3; echo probe > /dev/kmsg"
    codes = {}
    for name, rt in runtimes.items():
        b = bundle("sh", "-c", script, patch=patch, name=f"b-{name}")
        codes[name] = rt.run_bundle(b, f"kmsg-{name}").returncode
    assert codes["ocirt"] == 1  # the node is there (not 3), writing to it is denied
    assert all(code == codes["ocirt"] for code in codes.values()), codes


@pytest.mark.parametrize("flags", [[], ["--rootless"]])
def test_spec_prints_what_runc_spec_prints(ocirt_bin: str, runc_bin: str, tmp_path: Path, flags):
    """Configs made by `ocirt spec` carry what `runc spec` writes (the same
    namespaces, mounts, hostname...); only ociVersion is ours."""
    made = {}
    for name, binary in (("ocirt", ocirt_bin), ("runc", runc_bin)):
        out = tmp_path / name
        out.mkdir()
        subprocess.run([binary, "spec", *flags, "-b", str(out)], check=True)
        made[name] = json.loads((out / "config.json").read_text())
    assert made["ocirt"].pop("ociVersion") == "1.3.0"
    made["runc"].pop("ociVersion")
    assert made["ocirt"] == made["runc"]


def test_unknown_device_access_letters_are_a_warning(runtimes, bundle) -> None:
    """An access string such as "rwa": runc takes it (the "a" does nothing);
    ocirt too, with a warning line naming the field."""
    rules = [{"allow": False, "access": "rwm"},
             {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "rwa"}]  # fmt: skip
    codes = {}
    for name, rt in runtimes.items():
        if name == "crun":
            continue
        b = bundle("true", patch={"linux": {"resources": {"devices": rules}}}, name=f"b-{name}")
        result = rt.run_bundle(b, f"rwa-{name}")
        codes[name] = result.returncode
        if name == "ocirt":
            assert "level=warning" in result.stderr
            assert "linux.resources.devices[1].access: 'rwa'" in result.stderr
    assert set(codes.values()) == {0}, codes


def test_exec_ignore_paused_waits_for_resume_and_stops_on_sigterm(runtimes, bundle) -> None:
    """exec --ignore-paused into a paused container: runc waits until it is
    resumed, then runs the process.  No ocirt process holds the container's
    lock while it can be frozen (resume must not wait for exec), and exec
    stops on SIGTERM while it waits (before: a deadlock only a hand-written
    THAWED could end)."""
    rt = runtimes["ocirt"]
    b = bundle("sleep", "60")
    assert rt.run_bundle(b, "paused", "-d").returncode == 0
    try:
        assert rt.call("pause", "paused").returncode == 0
        waiting = subprocess.Popen(
            rt.cmd("exec", "--ignore-paused", "paused", "echo", "ran"),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(1)
        assert waiting.poll() is None  # frozen with the container, as runc's
        assert rt.call("resume", "paused", timeout=10).returncode == 0
        out, err = waiting.communicate(timeout=30)
        assert (waiting.returncode, out) == (0, "ran\n"), err

        assert rt.call("pause", "paused").returncode == 0
        with tempfile.TemporaryFile() as out:  # the frozen child holds a pipe open
            stopped = subprocess.Popen(
                rt.cmd("exec", "--ignore-paused", "paused", "echo", "never"),
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
            time.sleep(1)
            stopped.send_signal(signal.SIGTERM)
            assert stopped.wait(timeout=10) == 255
            out.seek(0)
            assert b"interrupted by signal 15" in out.read()
        assert rt.call("resume", "paused", timeout=10).returncode == 0
    finally:
        assert rt.call("delete", "-f", "paused", timeout=30).returncode == 0


def test_create_into_a_frozen_or_busy_cgroup(runtimes, bundle) -> None:
    """runc: a pre-existing frozen cgroup is refused ("container's cgroup
    unexpectedly frozen"); one with processes in it is a warning ("container's
    cgroup is not empty: N process(es) found", counted in the devices
    hierarchy on cgroup v1, as runc).  ocirt says the same."""
    v1 = Path("/sys/fs/cgroup")
    if not (v1 / "freezer").is_dir() or not (v1 / "devices").is_dir():
        pytest.skip("no cgroup v1 freezer and devices hierarchies")
    for name, rt in runtimes.items():
        if name == "crun":
            continue
        cg_name = f"ocirt-test-frozen-{name}"
        dirs = [v1 / "freezer" / cg_name, v1 / "devices" / cg_name]
        for d in dirs:
            d.mkdir()
        sleeper = subprocess.Popen(["sleep", "60"])
        try:
            for d in dirs:
                (d / "cgroup.procs").write_text(str(sleeper.pid))
            b = bundle("true", patch={"linux": {"cgroupsPath": f"/{cg_name}"}}, name=f"b-{name}")
            (dirs[0] / "freezer.state").write_text("FROZEN")
            refused = rt.run_bundle(b, f"frozen-{name}")
            assert refused.returncode != 0
            assert "container's cgroup unexpectedly frozen" in refused.stderr, (name, refused)
            (dirs[0] / "freezer.state").write_text("THAWED")
            warned = rt.call("create", "-b", str(b), f"busy-{name}")
            assert warned.returncode == 0, warned.stderr
            assert "container's cgroup is not empty: 1 process(es) found" in warned.stderr
        finally:
            (dirs[0] / "freezer.state").write_text("THAWED")
            rt.call("delete", "-f", f"busy-{name}")
            sleeper.kill()
            sleeper.wait()
            for d in dirs:
                if d.exists():
                    d.rmdir()


def test_terminal_belongs_to_the_process_user(runtimes, bundle) -> None:
    """process.user 1000 with a terminal: the pty slave is the user's, in the
    tty group (devpts's gid=5), for run and for exec -t, as runc leaves it."""
    from test_terminal import PtySession

    patch = {"process": {"terminal": True, "user": {"uid": 1000, "gid": 1000}}}
    owners = {}
    for name, rt in runtimes.items():
        if name == "crun":
            continue
        b = bundle("sh", "-c", "stat -c '%u:%g' $(tty); sleep 30", patch=patch, name=f"b-{name}")
        session = PtySession(rt.cmd("run", "-b", str(b), f"tty-{name}"))
        run_owner = session.expect(b"\n").strip().decode()
        exec_session = PtySession(rt.cmd("exec", "-t", "-u", "1000:1000", f"tty-{name}",
                                         "sh", "-c", "stat -c '%u:%g' $(tty)"))  # fmt: skip
        exec_owner = exec_session.expect(b"\n").strip().decode()
        owners[name] = (run_owner, exec_owner)
        rt.call("delete", "-f", f"tty-{name}")
    assert owners["ocirt"] == ("1000:5", "1000:5"), owners
    if "runc" in owners:
        assert owners["runc"] == owners["ocirt"]


def test_tmpfs_takes_the_mode_of_the_directory_it_covers(runtimes, bundle) -> None:
    """runc: a tmpfs mount whose options name no mode= gets the mode of the
    directory it is mounted on, if the image has one (on one the runtime
    makes, tmpfs's own 1777)."""
    mounts = [{"destination": d, "type": "tmpfs", "source": "tmpfs"} for d in ("/data", "/new")]
    modes = {}
    for name, rt in runtimes.items():
        if name == "crun":
            continue

        def patch(config: dict[str, Any]) -> None:
            config["mounts"] += mounts

        b = bundle("stat", "-c", "%n %a", "/data", "/new", patch=patch, name=f"b-{name}")
        (b / "rootfs" / "data").mkdir(mode=0o710)
        (b / "rootfs" / "data").chmod(0o710)
        result = rt.run_bundle(b, f"tmpfs-{name}")
        modes[name] = result.stdout
    assert modes["ocirt"] == "/data 710\n/new 1777\n", modes
    if "runc" in modes:
        assert modes["runc"] == modes["ocirt"]


def test_masked_paths_go_on_top_of_read_only_ones(runtimes, bundle) -> None:
    """runc's order: readonlyPaths, then maskedPaths; a mask inside a read-only
    path is one mount on top of it (the other way round, the read-only bind
    copied the masks beneath it: each mount twice)."""
    patch = {
        "linux": {
            "readonlyPaths": ["/proc/sys"],
            "maskedPaths": ["/proc/sys/kernel/core_pattern", "/proc/sys/fs"],
        }
    }
    script = "grep ' /proc/sys' /proc/self/mountinfo | cut -d' ' -f5,6"
    tables = {}
    for name, rt in runtimes.items():
        if name == "crun":
            continue
        b = bundle("sh", "-c", script, patch=patch, name=f"b-{name}")
        tables[name] = rt.run_bundle(b, f"order-{name}").stdout.splitlines()
    assert [line.split()[0] for line in tables["ocirt"]] == [
        "/proc/sys", "/proc/sys/kernel/core_pattern", "/proc/sys/fs"
    ]  # fmt: skip
    if "runc" in tables:
        assert tables["runc"] == tables["ocirt"]


def test_a_profile_denying_getcwd_does_not_fail_create(runtimes, bundle) -> None:
    """runtime-tools' linux_seccomp: getcwd answered with an errno, no
    no_new_privs (the filter is loaded before the user switch).  The cwd is
    checked before the filter is in; crun passes, runc 1.1.5 fails create."""
    seccomp = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}],
    }
    patch = {"process": {"noNewPrivileges": False}, "linux": {"seccomp": seccomp}}
    codes = {}
    for name, rt in runtimes.items():
        b = bundle("true", patch=patch, name=f"b-{name}")
        codes[name] = rt.run_bundle(b, f"getcwd-{name}")
    assert codes["ocirt"].returncode == 0, codes["ocirt"].stderr
    if "crun" in codes:
        assert codes["crun"].returncode == 0


def test_a_log_file_that_cannot_be_opened_fails_every_command(runtimes, tmp_path: Path) -> None:
    """runc opens --log first: a path it cannot open fails the command (exit 1),
    even `list` or `delete --force` of nothing; the error goes to stderr."""
    log = str(tmp_path / "no-such-dir" / "log.json")
    for name, rt in runtimes.items():
        if name == "crun":
            continue
        for args in (["list"], ["state", "nope"], ["delete", "--force", "nope"]):
            result = rt.call("--log", log, *args)
            assert result.returncode == 1, (name, args, result)
            assert f"open {log}: no such file or directory" in result.stderr, (name, args)
