"""The short commands' fast front end (ocirt/fastcli.py) and what it relies on.

The installed ``ocirt`` enters through ``ocirt.fastcli``; ``ocirt.cli.main``
is the complete command line.  Both must behave the same: the tests run the
same commands through both (the second through a copy of the launcher that
calls ``ocirt.cli.main``) and compare exit status, stdout and stderr.  The
rest checks the pieces the fast path stands on: the os-free status reading
(``ocirt.record``), the import set, the exit without finalization, the
import seal of the init and exec's child, the optional-module preload.
"""

from __future__ import annotations

import json
import os
import posix
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import call_runtime, need_root, ok, remove_cgroup_dir, run_isolated

from ocirt import fastcli, launcher, record
from ocirt.process.init import optional_modules
from ocirt.spec import Spec

REPO = Path(__file__).resolve().parents[1]


def run(argv: list[str], timeout: float = 30) -> tuple[int, str, str]:
    """(status, stdout, stderr); through files: a created init keeps the stdio it got."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.run(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, timeout=timeout, check=False
        )
        out.seek(0)
        err.seek(0)
        return proc.returncode, out.read().decode(), err.read().decode()


def normalized(result: tuple[int, str, str]) -> tuple[int, str, str]:
    status, out, err = result
    return status, out, re.sub(r'time="[^"]*"|"time":"[^"]*"', "TIME", err)


@pytest.fixture
def full_bin(tmp_path: Path) -> str:
    """A script launcher (ocirt.launcher.TEMPLATE, this interpreter and
    installation) that runs ocirt.cli.main instead of ocirt.fastcli."""
    text = launcher.TEMPLATE.format(python=sys.executable, paths=launcher.import_paths())
    full = tmp_path / "ocirt-full"
    full.write_text(
        text.replace(
            "from ocirt.fastcli import main\nmain()",
            "from ocirt.cli import main\nsys.exit(main())",
        )
    )
    full.chmod(0o755)
    return str(full)


# -- which argv the fast path takes -------------------------------------------------
@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--help"],
        ["-h"],
        ["--version"],
        ["help", "state"],
        ["list"],
        ["create"],
        ["create", "a", "b"],
        ["create", "--help", "x"],
        ["create", "-b"],
        ["create", "--no-pivot=true", "x"],
        ["create", "--bogus", "x"],
        ["create", "--preserve-fds", "x1", "x"],
        ["create", "--", "x"],
        ["run", "x"],
        ["state"],
        ["state", "a", "b"],
        ["state", "--help"],
        ["state", "-h", "x"],
        ["state", "--", "x"],
        ["start", "--bogus", "x"],
        ["kill", "x", "9", "extra"],
        ["kill", "--all", "--bogus", "x"],
        ["kill", "--all", "x", "9", "extra"],
        ["delete"],
        ["delete", "--force=true", "x"],
        ["delete", "-f", "a", "b"],
        ["--bogus", "state", "x"],
        ["--root"],
        ["--debug=true", "state", "x"],
        ["--log-format", "xml", "state", "x"],
        ["exec"],
        ["exec", "--help"],
        ["exec", "x"],  # no command, no --process: ocirt.cli's error
        ["exec", "-t", "x", "sh"],
        ["exec", "--tty", "--console-socket", "/s", "-d", "x", "sh"],
        ["exec", "--detach=true", "x", "sh"],
        ["exec", "--cgroup", "cpu:/sub", "x", "sh"],
        ["exec", "--cap", "CAP_SYS_ADMIN", "x", "sh"],
        ["exec", "--ignore-paused", "x", "sh"],
        ["exec", "--preserve-fds", "x1", "x", "sh"],
        ["exec", "--pid-file"],
        ["exec", "x", "--", "sh"],
    ],
)
def test_what_goes_to_the_full_cli(argv: list[str]) -> None:
    assert fastcli.run(argv) is None


@pytest.mark.parametrize(
    "argv",
    [
        ["x"],
        ["-b", "/b", "x"],
        ["x", "--bundle", "/b", "--pid-file=/p"],
        ["-bundle=/b", "--console-socket", "/s", "--no-pivot", "x", "--no-new-keyring"],
        ["--preserve-fds", "3", "--pidfd-socket", "/q", "-pid-file", "/p", "x"],
    ],
)
def test_create_flags_parse_as_in_ocirt_cli(argv: list[str]) -> None:
    from ocirt.cli import create
    from ocirt.cli.flags import parse

    full, ids = parse(argv, create.FLAGS)
    parsed = fastcli.parse_create(argv)
    assert parsed is not None
    fast, cid = parsed
    assert [cid] == ids
    # ocirt.cli's bool flags default to None: as falsy as our False.
    assert fast == {
        k: bool(v) if isinstance(fast[k], bool) else v for k, v in full.items() if k in fast
    }
    assert set(full) - set(fast) == {"pidfd_socket", "help"}  # unused by create


@pytest.mark.parametrize(
    "argv",
    [
        ["x", "true"],
        ["-d", "--pid-file", "/p", "-p", "/proc.json", "x"],
        ["--process=/proc.json", "--detach", "-pid-file=/p", "x"],
        ["-e", "A=1", "--env=B=2", "--cwd", "/tmp", "-u", "1:2", "x", "sh", "-c", "-d"],
        ["--preserve-fds", "2", "--user=0", "x", "sh", "--pid-file", "/p"],
    ],
)
def test_exec_flags_parse_as_in_ocirt_cli(argv: list[str]) -> None:
    from ocirt.cli import exec as cli_exec
    from ocirt.cli.flags import parse

    full, positional = parse(argv, cli_exec.FLAGS, interspersed=False)
    parsed = fastcli.parse_exec(argv)
    assert parsed is not None
    fast, cid, command = parsed
    assert [cid, *command] == positional
    assert fast.pop("process_file") == full["process"]
    assert fast == {
        k: bool(v) if isinstance(fast[k], bool) else v for k, v in full.items() if k in fast
    }


def test_global_flags_spellings() -> None:
    for argv in (
        ["--root", "/r", "state", "x"],
        ["--root=/r", "state", "x"],
        ["-root", "/r", "state", "x"],
        ["--systemd-cgroup", "--rootless", "true", "--root=/r", "state", "x"],
        ["--log", "/l", "--log-format=json", "--root", "/r", "state", "x"],
    ):
        parsed = fastcli._global_flags(argv)
        assert parsed is not None, argv
        ctx, rest = parsed
        assert (ctx.root, rest) == ("/r", ["state", "x"]), argv
    # --debug goes to ocirt.cli, which logs each step (ocirt.debug).
    assert fastcli._global_flags(["--debug", "--root=/r", "state", "x"]) is None


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("9", 9),
        ("KILL", 9),
        ("SIGKILL", 9),
        ("kill", 9),
        ("SIGRTMIN+2", 36),
        ("RTMAX", 64),
        ("0", 0),
    ],
)
def test_parse_signal(text: str, number: int) -> None:
    assert fastcli.parse_signal(text) == number


@pytest.mark.parametrize("text", ["65", "FOO", "RTMIN+40", "SIG"])
def test_parse_signal_refuses(text: str) -> None:
    from ocirt.errors import OcirtError

    with pytest.raises(OcirtError, match="unknown signal"):
        fastcli.parse_signal(text)


# -- the import set and the exit ----------------------------------------------------------
def _stopped_container(root: Path, cid: str = "c1") -> None:
    (root / cid).mkdir(parents=True)
    rec = {
        "ociVersion": "1.3.0",
        "id": cid,
        "pid": 0,
        "init_start_time": None,
        "bundle": "/b",
        "rootfs": "/b/rootfs",
        "created": "2026-01-01T00:00:00Z",
        "owner": "",
        "annotations": {"a": "b"},
        "config": {},
    }
    (root / cid / "state.json").write_text(json.dumps(rec))


def test_state_imports_no_os_cli_or_cgroups(tmp_path: Path) -> None:
    _stopped_container(tmp_path)
    code = (
        f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
        "from ocirt import fastcli\n"
        f"status = fastcli.run(['--root', {str(tmp_path)!r}, 'state', 'c1'])\n"
        "heavy = {'os', 'ocirt.cli', 'ocirt.cgroups', '__future__', 'typing', 'json', 're'}\n"
        "print(status, sorted(heavy & set(sys.modules)), file=sys.stderr)\n"
    )
    out = run_isolated(code)
    assert out.stderr.strip() == "0 []", out.stderr
    state = json.loads(out.stdout)
    assert (state["status"], state["pid"], state["annotations"]) == ("stopped", 0, {"a": "b"})


def test_exec_imports_need_no_main_phase() -> None:
    """What exec's fast path imports (a profile's seccomp modules included) is
    ocirt's, built in, frozen or an extension the code bundle lists: any other
    module makes the launcher finish the interpreter's start (~2 ms; struct.py,
    imported by the seccomp modules, did so for every exec with a profile)."""
    from ocirt._codebundle import EXTRA_MODULES

    code = (
        f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
        "before = set(sys.modules)\n"
        "import ocirt.fastcli, ocirt.container, ocirt.foreground, ocirt.process.exec\n"
        "import ocirt.process.exec_child\n"  # the Python child's, imported before its fork
        "import ocirt.linux.seccomp, ocirt.linux.seccomp_cache, ocirt.debug\n"
        "new = sorted(set(sys.modules) - before)\n"
        "origins = (getattr(sys.modules[n].__spec__, 'origin', None) for n in new)\n"
        "print(' '.join(f'{n}:{o}' for n, o in zip(new, origins)))\n"
    )
    # Not run_isolated: the shim needs _cffi_backend, from site-packages.
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    loaded = dict(entry.rsplit(":", 1) for entry in out.stdout.split())
    outside = {
        name: origin
        for name, origin in loaded.items()
        if not name.startswith("ocirt")
        and origin not in ("built-in", "frozen")
        and name not in EXTRA_MODULES
        and name != "__future__"  # the bundle makes `from __future__` a compiler flag
    }
    assert "ocirt.process.exec" in loaded and not outside, outside


# exec's, with --process (the shims': validate) and a seccomp profile's.
EXEC_MODULES = (
    "ocirt.fastcli, ocirt.container, ocirt.foreground, ocirt.process.exec, ocirt.validate,"
    " ocirt.linux.seccomp, ocirt.linux.seccomp_cache, ocirt.process.exec_child"
)


def test_exec_imports_no_os() -> None:
    """exec (a probe: every few seconds per pod) imports neither os nor what os
    imports (_collections_abc, posixpath): ~1.8 ms of its CPU (posix has the calls)."""
    import sysconfig

    site = sysconfig.get_paths()["purelib"]  # _cffi_backend, for the shim
    code = (
        f"import sys; sys.path[:0] = [{str(REPO)!r}, {site!r}]\n"
        f"import {EXEC_MODULES}\n"
        "print(sorted({'os', 'posixpath', '_collections_abc'} & set(sys.modules)))\n"
    )
    out = run_isolated(code)
    assert (out.returncode, out.stdout.strip()) == (0, "[]"), out.stderr


def _written_container(root: Path, cid: str = "c1", annotation: str = "b") -> Path:
    """A stopped container's record written by StateDir.write, as create does."""
    from ocirt.state import StateDir

    (root / cid).mkdir(parents=True)
    state_dir = StateDir(str(root), cid)
    state_dir.write(
        {
            "ociVersion": "1.3.0", "id": cid, "pid": 0, "init_start_time": None,
            "bundle": "/b", "rootfs": "/b/rootfs", "created": "2026-01-01T00:00:00Z",
            "owner": "", "annotations": {"a": annotation},
            "config": {"process": {"args": ("sh", "-c")}},  # a tuple: JSON makes it a list
        }
    )  # fmt: skip
    state_dir.close()
    return root / cid


def _state_in_isolation(root: Path) -> tuple[str, dict]:
    """`state c1` in a fresh interpreter: (whether it loaded _json, its output)."""
    code = (
        f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
        "from ocirt import fastcli\n"
        f"status = fastcli.run(['--root', {str(root)!r}, 'state', 'c1'])\n"
        "print(status, '_json' in sys.modules, file=sys.stderr)\n"
    )
    out = run_isolated(code)
    status, loaded_json = out.stderr.split()
    assert status == "0", out.stderr
    return loaded_json, json.loads(out.stdout)


@pytest.mark.parametrize("annotation", ["plain", 'with "quotes", \\ and \u00e9'])
def test_the_marshal_copy_spares_json_and_says_the_same(tmp_path: Path, annotation: str) -> None:
    from ocirt.state import STATE_COPY, StateDir

    directory = _written_container(tmp_path, annotation=annotation)
    assert (directory / STATE_COPY).is_file()
    copy = StateDir(str(tmp_path), "c1")._read_copy()
    assert copy == json.loads((directory / "state.json").read_text())
    assert copy is not None and copy["config"]["process"]["args"] == ["sh", "-c"]
    loaded_json, with_copy = _state_in_isolation(tmp_path)
    # Reading never needs _json now; printing only for a string with escapes.
    assert loaded_json == ("False" if annotation == "plain" else "True")
    assert with_copy["annotations"] == {"a": annotation}
    (directory / STATE_COPY).unlink()
    loaded_json, from_json = _state_in_isolation(tmp_path)
    assert loaded_json == "True"
    assert with_copy == from_json


@pytest.mark.parametrize("edit", ["in place", "replaced", "damaged copy"])
def test_a_copy_of_another_state_json_is_not_read(tmp_path: Path, edit: str) -> None:
    """Whoever changes state.json (a test, an admin) is believed, not the copy."""
    from ocirt.state import STATE_COPY

    directory = _written_container(tmp_path)
    state_file = directory / "state.json"
    record = json.loads(state_file.read_text())
    record["bundle"] = "/elsewhere"
    if edit == "in place":
        with open(state_file, "r+") as f:
            f.write(json.dumps(record))
    elif edit == "replaced":
        tmp = directory / "new.json"
        tmp.write_text(json.dumps(record))
        tmp.rename(state_file)
    else:
        (directory / STATE_COPY).write_bytes(b"\xff not marshal")
        record["bundle"] = "/b"
    assert _state_in_isolation(tmp_path)[1]["bundle"] == record["bundle"]


@pytest.mark.parametrize("with_threading", [False, True])
def test_exit_now_flushes_and_keeps_the_status(with_threading: bool) -> None:
    code = (
        f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
        + ("import threading\n" if with_threading else "")
        + "from ocirt.fastcli import exit_now\n"
        "sys.stdout.write('out'); sys.stderr.write('err')\n"
        "exit_now(3)\n"
    )
    out = run_isolated(code)
    assert (out.returncode, out.stdout, out.stderr) == (3, "out", "err")


def test_sealed_process_imports_nothing_new() -> None:
    code = (
        f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
        "from ocirt.process.common import seal_imports\n"
        "import posixpath\n"
        "seal_imports()\n"
        "import posixpath, errno\n"  # loaded, built in: fine
        "try:\n"
        "    import json\n"
        "except ModuleNotFoundError:\n"
        "    print('sealed')\n"
    )
    out = run_isolated(code)
    assert out.stdout == "sealed\n", out.stderr


# -- ocirt.record's freezer reading agrees with ocirt.cgroups -------------------------
def _freezer(tmp_path: Path, state: str, self_freezing: str) -> str:
    d = tmp_path / f"freezer-{state}-{self_freezing}"
    d.mkdir()
    (d / "freezer.state").write_text(state + "\n")
    (d / "freezer.self_freezing").write_text(self_freezing + "\n")
    return str(d)


def test_cgroup_frozen_agrees_with_the_drivers(tmp_path: Path, monkeypatch) -> None:
    from ocirt.cgroups import is_frozen, v2

    records: list[dict] = [
        {},
        {"cgroup": None},
        {"cgroup": {"driver": "fs", "paths": {}}},
        {"cgroup": {"driver": "fs", "paths": {"freezer": str(tmp_path / "gone")}}},
        {"cgroup": {"driver": "fs2", "path": "/elsewhere/x"}},  # refused by V2Manager
    ]
    # v2 paths must lie under CGROUP_ROOT: make tmp_path that root for both readers.
    monkeypatch.setattr(v2, "CGROUP_ROOT", str(tmp_path))
    monkeypatch.setattr(record, "CGROUP_ROOT", str(tmp_path))
    records.append({"cgroup": {"driver": "fs2", "path": str(tmp_path / "gone")}})
    for value in ("0", "1"):
        d = tmp_path / f"v2-{value}"
        d.mkdir()
        (d / "cgroup.freeze").write_text(value + "\n")
        records.append({"cgroup": {"driver": "fs2", "path": str(d)}})
    for state, self_freezing in [
        ("THAWED", "0"),
        ("FROZEN", "1"),
        ("FROZEN", "0"),
        ("FREEZING", "1"),
    ]:
        fs = {"driver": "fs", "paths": {"freezer": _freezer(tmp_path, state, self_freezing)}}
        records.append({"cgroup": fs})
        records.append(fs)  # a bare cgroup record, as is_frozen also takes
    for rec in records:
        assert record.cgroup_frozen(rec) == is_frozen(rec), rec
    assert record.cgroup_frozen({"cgroup": {"driver": "something-new"}}) is None


def test_cgroup_frozen_reads_through_the_systemd_record(tmp_path: Path) -> None:
    inner = {"driver": "fs", "paths": {"freezer": _freezer(tmp_path, "FROZEN", "1")}}
    assert record.cgroup_frozen({"cgroup": {"driver": "systemd", "inner": inner}}) is True
    assert record.cgroup_frozen({"cgroup": {"driver": "systemd"}}) is None


# -- delete's cgroup removal without ocirt.cgroups ---------------------------------------
def _wait_stopped(ocirt_bin: str, root: Path, cid: str) -> None:
    for _ in range(200):
        state = json.loads(ok(call_runtime(ocirt_bin, root, "state", cid)))
        if state["status"] == "stopped":
            return
        time.sleep(0.05)
    raise AssertionError(f"{cid} did not stop: {state}")


def test_delete_of_a_stopped_container_removes_its_cgroups_lean(
    ocirt_bin: str, tmp_root: Path, bundle
) -> None:
    """The common delete: every cgroup create made is gone, ocirt.cgroups never imported."""
    b = bundle("true")
    subprocess.run(
        [ocirt_bin, "--root", str(tmp_root), "create", "-b", str(b), "lean1"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,  # the init keeps what it is given open
        check=True,
        timeout=60,
    )
    created = json.loads((tmp_root / "lean1" / "state.json").read_text())["cgroup"]["created"]
    assert created and all(Path(d).is_dir() for d in created)
    ok(call_runtime(ocirt_bin, tmp_root, "start", "lean1"))
    _wait_stopped(ocirt_bin, tmp_root, "lean1")
    code = (
        f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
        "from ocirt import fastcli\n"
        f"status = fastcli.run(['--root', {str(tmp_root)!r}, 'delete', 'lean1'])\n"
        "print(status, 'ocirt.cgroups' in sys.modules)\n"
    )
    out = run_isolated(code)
    assert out.stdout.split() == ["0", "False"], out.stderr
    assert [d for d in created if Path(d).exists()] == []
    assert not (tmp_root / "lean1").exists()


def test_kill_signals_without_the_signal_module(ocirt_bin: str, tmp_root: Path, bundle) -> None:
    """kill (containerd's shim sends one for every stop) signals through the
    shim's pidfd_send_signal: importing `_signal` would make the launcher
    finish the interpreter's start (~2 ms).  Here `_signal` cannot be
    imported at all, as before that phase: the init must still get SIGTERM
    (sh as PID 1 ignores it, so TERM is trapped into an exit)."""
    b = bundle("sh", "-c", "trap 'exit 7' TERM; while :; do sleep 0.05; done")
    ok(call_runtime(ocirt_bin, tmp_root, "run", "-d", "-b", str(b), "k1"))
    try:
        code = (
            f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
            "class NoSignal:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == '_signal': raise ImportError('no _signal in the core phase')\n"
            "sys.modules.pop('_signal', None); sys.meta_path.insert(0, NoSignal())\n"
            "from ocirt import fastcli\n"
            f"print(fastcli.run(['--root', {str(tmp_root)!r}, 'kill', 'k1', 'TERM']))\n"
        )
        import sysconfig

        site = sysconfig.get_paths()["purelib"]  # _cffi_backend, for the shim
        code = f"import sys; sys.path.append({site!r})\n" + code
        out = run_isolated(code)
        assert out.stdout.strip() == "0", out.stderr
        _wait_stopped(ocirt_bin, tmp_root, "k1")
    finally:
        call_runtime(ocirt_bin, tmp_root, "delete", "-f", "k1")


@pytest.fixture
def own_cgroup() -> Iterator[tuple[str, str]]:
    """(driver, a directory of ours) in the pids hierarchy (v1) or the cgroup2 root."""
    need_root()
    v2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()
    base = Path("/sys/fs/cgroup" if v2 else "/sys/fs/cgroup/pids")
    if not os.access(base, os.W_OK):
        pytest.skip(f"{base} is not writable")
    top = base / f"ocirt-test-lean-{os.getpid()}"
    top.mkdir()
    try:
        yield ("fs2" if v2 else "fs"), str(top)
    finally:
        for d in sorted(top.glob("**/"), key=lambda p: len(str(p)), reverse=True):
            for pid in (d / "cgroup.procs").read_text().split():
                os.kill(int(pid), 9)
            remove_cgroup_dir(d, attempts=100, delay=0.05)


def _record(driver: str, leaf: str, created: list[str]) -> dict:
    if driver == "fs":
        return {"cgroup": {"driver": "fs", "paths": {"pids": leaf}, "created": created}}
    return {"cgroup": {"driver": "fs2", "path": leaf, "created": created}}


def test_remove_empty_cgroup_leaves_a_busy_one_to_ocirt_cgroups(own_cgroup) -> None:
    driver, top = own_cgroup
    leaf = os.path.join(top, "leaf")
    os.mkdir(leaf)
    rec = _record(driver, leaf, [top, leaf])
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        Path(leaf, "cgroup.procs").write_text(str(sleeper.pid))
        assert record.remove_empty_cgroup(rec) is False
        assert Path(leaf).is_dir() and Path(top).is_dir()  # nothing removed, not even the parent
    finally:
        sleeper.kill()
        sleeper.wait()
    for _ in range(100):  # the task leaves the cgroup a moment after it is reaped
        if not Path(leaf, "cgroup.procs").read_text().strip():
            break
        time.sleep(0.05)
    assert record.remove_empty_cgroup(rec) is True
    assert not Path(top).exists()
    assert record.remove_empty_cgroup(rec) is True  # gone already: done


def test_remove_empty_cgroup_refuses_what_it_does_not_own(own_cgroup) -> None:
    driver, top = own_cgroup
    joined = _record(driver, top, [])  # a cgroup the container joined: not ours
    assert record.remove_empty_cgroup(joined) is False
    elsewhere = _record(driver, "/tmp/x", ["/tmp/x"])
    assert record.remove_empty_cgroup(elsewhere) is False
    systemd = {"cgroup": {"driver": "systemd", "inner": joined["cgroup"]}}
    assert record.remove_empty_cgroup(systemd) is False
    assert record.remove_empty_cgroup({"cgroup": None}) is False
    assert Path(top).is_dir()


# -- the init's optional modules --------------------------------------------------------
def _spec(**config: object) -> Spec:
    base: dict = {"ociVersion": "1.0.2", "process": {"args": ["true"]}, "linux": {}}
    for key, value in config.items():
        if key in ("terminal", "apparmorProfile", "scheduler"):
            base["process"][key] = value
        elif key in ("seccomp", "sysctl", "personality", "mountLabel"):
            base["linux"][key] = value
        else:
            base[key] = value
    return Spec.from_dict(base, "/bundle")


@pytest.mark.parametrize(
    ("config", "modules"),
    [
        ({}, []),
        ({"terminal": True}, ["console"]),
        ({"seccomp": {"defaultAction": "SCMP_ACT_ALLOW"}}, ["seccomp"]),
        ({"sysctl": {"net.ipv4.ip_forward": "1"}}, ["sysctl"]),
        ({"personality": {"domain": "LINUX32"}}, ["personality"]),
        ({"scheduler": {"policy": "SCHED_OTHER"}}, ["scheduling"]),
        ({"apparmorProfile": "p"}, ["lsm"]),
        ({"mountLabel": "l"}, ["lsm"]),
        ({"hooks": {"createContainer": [{"path": "/bin/true"}]}}, ["hooks"]),
        ({"hooks": {"prestart": [{"path": "/bin/true"}]}}, []),  # run by the runtime
        (
            {"mounts": [{"destination": "/t", "type": "tmpfs", "options": ["tmpcopyup"]}]},
            ["copyup"],
        ),
    ],
)
def test_optional_modules(config: dict, modules: list[str]) -> None:
    assert optional_modules(_spec(**config)) == modules


# -- both front ends on real containers --------------------------------------------------
def _both(ocirt_bin: str, full_bin: str, root: Path, *args: str) -> None:
    fast = normalized(run([ocirt_bin, "--root", str(root), *args]))
    full = normalized(run([full_bin, "--root", str(root), *args]))
    assert fast == full, args


def test_fast_and_full_cli_agree(
    ocirt_bin: str, full_bin: str, tmp_root: Path, tmp_path: Path, bundle
) -> None:
    b = bundle("sleep", "1000")
    for cid in ("c1", "c2", "c3"):
        status, _, err = run([ocirt_bin, "--root", str(tmp_root), "create", "-b", str(b), cid])
        assert status == 0, err
    for args in (
        ("create", "-b", str(b), "c1"),  # a duplicate id
        ("create", "--bundle", "/nonexistent", "c9"),
        ("create", "--bundle=/nonexistent", "--pid-file", "/p", "c9"),
        ("create", "-b", str(b), "bad/id"),
        ("state", "c1"),
        ("--log-format", "json", "state", "c1"),
        ("state", "nope"),
        ("state", "bad/id"),
        ("state",),
        ("kill", "c1", "FOO"),
        ("kill", "nope", "9"),
        ("kill", "--all", "nope", "9"),
        ("kill", "-a", "nope"),
        ("delete", "nope"),
        ("delete", "-f", "nope"),
        ("start", "nope"),
    ):
        _both(ocirt_bin, full_bin, tmp_root, *args)
    # One container each for what changes it.
    assert run([ocirt_bin, "--root", str(tmp_root), "start", "c1"])[0] == 0
    assert run([full_bin, "--root", str(tmp_root), "start", "c2"])[0] == 0
    _both(ocirt_bin, full_bin, tmp_root, "start", "c1")  # already running: an error
    for cid in ("c1", "c2"):
        assert json.loads(run([ocirt_bin, "--root", str(tmp_root), "state", cid])[1])["status"] == (
            "running"
        )
    _both(ocirt_bin, full_bin, tmp_root, "delete", "c1")  # running, no --force: an error
    process = tmp_path / "process.json"
    process.write_text(
        json.dumps({"args": ["sh", "-c", "echo $A; exit 4"], "cwd": "/", "env": ["A=p"]})
    )
    for args in (
        ("exec", "c1", "sh", "-c", "echo out; echo err >&2; exit 3"),
        ("exec", "-e", "A=1", "--cwd", "/tmp", "-u", "1:2", "c1", "sh", "-c", "echo $A; pwd; id"),
        ("exec", "-p", str(process), "c1"),
        ("exec", "--process", "/nonexistent.json", "c1"),
        ("exec", "c1", "nonexistent-binary"),
        ("exec", "--cwd", "/nonexistent", "c1", "true"),
        ("exec", "nope", "true"),
        ("exec", "c3", "true"),  # created, not running
        ("--log-format", "json", "exec", "nope", "true"),
    ):
        _both(ocirt_bin, full_bin, tmp_root, *args)
    assert run([ocirt_bin, "--root", str(tmp_root), "kill", "c1", "KILL"])[0] == 0
    assert run([full_bin, "--root", str(tmp_root), "kill", "c2", "KILL"])[0] == 0
    _both(ocirt_bin, full_bin, tmp_root, "kill", "c3", "0")  # signal 0: is it there?
    assert run([ocirt_bin, "--root", str(tmp_root), "delete", "-f", "c3"])[0] == 0
    assert run([ocirt_bin, "--root", str(tmp_root), "delete", "-f", "c1"])[0] == 0
    assert run([full_bin, "--root", str(tmp_root), "delete", "-f", "c2"])[0] == 0
    assert not any(tmp_root.iterdir())


def _managers_shape(config: dict) -> None:
    """What docker's reference config adds to the default one (its seccomp profile,
    sysctls, device rules, masked paths) and a createRuntime hook (ocirt.linux.hooks)."""
    docker = json.loads((REPO.parent / "shared/reference/configs/docker.json").read_text())
    linux = config["linux"]
    for key in ("seccomp", "sysctl", "maskedPaths", "readonlyPaths"):
        linux[key] = docker["linux"][key]
    linux["resources"] = {"devices": docker["linux"]["resources"]["devices"]}
    # A profile the seccomp cache has not seen: create compiles it and writes
    # an entry, and that miss must not import os either (CI's fresh checkout
    # missed where a used machine hit, and only CI saw os imported).
    unique = {"names": ["kexec_load"], "action": "SCMP_ACT_ERRNO"}
    linux["seccomp"]["syscalls"].append({**unique, "errnoRet": 1 + time.time_ns() % 4000})
    config["hooks"] = {"createRuntime": [{"path": "/bin/true", "args": ["true"]}]}
    linux["cgroupsPath"] = f"/ocirt-test-noos-{posix.getpid()}-managers"


@pytest.mark.parametrize("shape", ["default", "managers"])
def test_create_imports_no_os(ocirt_bin: str, tmp_root: Path, bundle, shape: str) -> None:
    """create (a pod start pays it per container) imports neither os nor what os
    imports: ~1.2 ms of its CPU.  A real create, since some modules import on use."""
    need_root()
    import sysconfig

    if shape == "managers" and not (REPO.parent / "shared/reference/configs").is_dir():
        pytest.skip("no reference configs here")
    cgroup = {"linux": {"cgroupsPath": f"/ocirt-test-noos-{posix.getpid()}-{shape}"}}
    b = bundle("true", patch=_managers_shape if shape == "managers" else cgroup)
    site = sysconfig.get_paths()["purelib"]  # _cffi_backend, for the shim
    errors = b / "create.err"
    # The container's init keeps create's stdio: the answer leaves by a copy of
    # stdout that closes on exec, and the stdio are /dev/null and a file.
    code = (
        f"import sys, posix; sys.path[:0] = [{str(REPO)!r}, {site!r}]\n"
        "answer = posix.dup(1)\n"
        "posix.dup2(posix.open('/dev/null', posix.O_RDWR), 0); posix.dup2(0, 1)\n"
        f"posix.dup2(posix.open({str(errors)!r}, posix.O_WRONLY | posix.O_CREAT, 0o600), 2)\n"
        "from ocirt import fastcli\n"
        f"args = ['--root', {str(tmp_root)!r}, 'create', '--bundle', {str(b)!r}, 'c1']\n"
        "status = fastcli.run(args)\n"
        "loaded = {'os', 'posixpath', '_collections_abc'} & set(sys.modules)\n"
        "hooks = 'ocirt.linux.hooks' in sys.modules\n"
        "posix.write(answer, f'{status} {sorted(loaded)} {hooks}'.encode())\n"
    )
    try:
        out = subprocess.run(
            [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60
        )
        assert out.stdout == f"0 [] {shape == 'managers'}", (out, errors.read_text())
    finally:
        call_runtime(ocirt_bin, tmp_root, "delete", "-f", "c1")
