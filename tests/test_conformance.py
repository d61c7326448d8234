"""Conformance suite: the probe, the cases and the runner under runc, and
ocirt side by side with runc when $OCIRT names an ocirt binary.

runc is the reference: every case must yield a valid probe report under it
with the values the case's config asks for.  That checks the cases and the
probe; the ocirt comparison then only has to demand agreement.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conformance"
RUNNER = CONF / "run.py"
PROBE = CONF / "probe" / "probe"
MKROOTFS = REPO / "tools" / "mkrootfs.sh"
RUNC = shutil.which("runc")
CASE_NAMES = sorted(p.stem for p in (CONF / "cases").glob("*.json") if not p.name.startswith("_"))

Json = Any


def _load_runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("conformance_run", RUNNER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    # dataclasses resolve string annotations through sys.modules.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


run = _load_runner()


def _static_toolchain_missing() -> str | None:
    gcc = shutil.which("gcc")
    if gcc is None:
        return "gcc is not installed"
    libc = subprocess.run(
        [gcc, "-print-file-name=libc.a"], capture_output=True, text=True
    ).stdout.strip()
    if not os.path.isabs(libc) or not os.path.exists(libc):
        return "static libc (libc.a, Debian package libc6-dev) is not installed"
    return None


@pytest.fixture(scope="session")
def probe() -> Path:
    reason = _static_toolchain_missing()
    if reason:
        pytest.skip(f"cannot build the static probe: {reason}")
    subprocess.run(["make", "-C", str(CONF), "probe/probe"], check=True)
    return PROBE


def _need_runc() -> None:
    if os.geteuid() != 0:
        pytest.skip("running containers needs root")
    if RUNC is None:
        pytest.skip("runc (the reference runtime) is not installed")


def _run_runner(out: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Json]:
    proc = subprocess.run(
        [sys.executable, str(RUNNER), "--json", str(out), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    data = json.loads(out.read_text()) if out.exists() else None
    return proc, data


@pytest.fixture(scope="session")
def runc_results(probe: Path, tmp_path_factory: pytest.TempPathFactory) -> Json:
    _need_runc()
    out = tmp_path_factory.mktemp("conformance") / "runc.json"
    proc, data = _run_runner(out, "--runtime", "runc=runc")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return data


def _result(results: Json, case: str) -> Json:
    res = results["cases"][case]["results"]["runc"]
    assert res["status"] == "ok", res
    return res


def _probe(results: Json, case: str) -> Json:
    return _result(results, case)["probe"]


def _fields(results: Json, case: str) -> dict[str, Json]:
    return _result(results, case)["fields"]


def _opts(csv: str) -> set[str]:
    return set(csv.split(","))


# ------------------------------------------------------------------ probe


def test_probe_on_host_is_valid_json(probe: Path) -> None:
    out = subprocess.run([str(probe)], capture_output=True, text=True, check=True).stdout
    report = json.loads(out)
    assert report["pid"] > 1
    assert report["uid"] == os.getuid()
    assert report["namespaces"]["pid"] == os.readlink("/proc/self/ns/pid")
    assert sorted(report["env"]) == report["env"]
    assert report["caps"]["effective"] is not None


def test_probe_extra_masked_and_readonly_paths(probe: Path, tmp_path: Path) -> None:
    nope = str(tmp_path / "nope")
    args = ["--masked", "/proc/meminfo", "--masked", nope, "--readonly", "/proc/sys"]
    out = subprocess.run(
        [str(probe), *args, "--readonly", nope],
        capture_output=True,
        check=True,
    ).stdout
    report = json.loads(out)
    assert report["masked"]["/proc/meminfo"] == "visible"
    assert report["masked"][nope] == "absent"
    assert report["readonly"]["/proc/sys"] is False  # the host's is writable
    assert report["readonly"][nope] is None


def test_probe_exit_and_sleep(probe: Path) -> None:
    start = time.monotonic()
    proc = subprocess.run([str(probe), "--sleep", "1", "--exit", "3"], capture_output=True)
    assert proc.returncode == 3
    assert time.monotonic() - start >= 1
    json.loads(proc.stdout)  # printed before sleeping and exiting
    assert subprocess.run([str(probe), "--bogus"], capture_output=True).returncode == 2


def test_probe_escapes_json(probe: Path) -> None:
    text = 'quote" backslash\\ tab\t newline\n bell\x07 del\x7f utf8 é 😀'
    # Invalid UTF-8 (a stray byte, a surrogate) must come out as \u00XX.
    env = {b"WEIRD": text.encode(), b"BAD": b"x\xff\xed\xa0\x80"}
    out = subprocess.run([str(probe)], capture_output=True, env=env, check=True).stdout
    report = json.loads(out.decode("utf-8"))
    assert f"WEIRD={text}" in report["env"]
    assert "BAD=x\xff\xed\xa0\x80" in report["env"]


def test_probe_without_proc_reports_null(probe: Path, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("chroot needs root")
    rootfs = tmp_path / "rootfs"
    subprocess.run([str(MKROOTFS), str(rootfs)], check=True)
    shutil.copy2(probe, rootfs / "probe")
    proc = subprocess.run(["chroot", str(rootfs), "/probe"], capture_output=True, check=True)
    report = json.loads(proc.stdout)
    for key in ("caps", "mounts", "fds", "namespaces", "oom_score_adj", "cgroup", "interfaces"):
        if key == "namespaces":
            assert set(report[key].values()) == {None}
        else:
            assert report[key] is None, key
    assert report["dev"] == []  # the empty /dev of a fresh rootfs


# ------------------------------------------------------------------ tools


def test_mkrootfs_is_complete_and_idempotent(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    for _ in range(2):
        subprocess.run([str(MKROOTFS), str(rootfs)], check=True)
    applets = subprocess.run(
        ["/bin/busybox", "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    for applet in applets:
        if applet != "busybox":
            assert os.readlink(rootfs / "bin" / applet) == "busybox", applet
    passwd = (rootfs / "etc/passwd").read_text()
    assert "probe:x:1000:1000:" in passwd and "nobody:x:65534:65534:" in passwd
    group = (rootfs / "etc/group").read_text()
    for entry in ("root:x:0:", "wheel:x:10:", "sudo:x:27:", "probe:x:1000:", "nogroup:x:65534:"):
        assert entry in group
    for d in ("proc", "sys", "dev", "tmp", "root", "home", "run", "var/tmp", "usr/bin", "sbin"):
        assert (rootfs / d).is_dir(), d


def test_base_config_is_runc_spec(tmp_path: Path) -> None:
    if RUNC is None:
        pytest.skip("runc is not installed")
    subprocess.run([RUNC, "spec"], cwd=tmp_path, check=True)
    expected = json.loads((tmp_path / "config.json").read_text())
    assert json.loads(run.BASE_CONFIG.read_text()) == expected, (
        "conformance/cases/_base.json differs from this runc's `runc spec`; regenerate it"
    )


# ------------------------------------------------------------------ runner units


def test_merge_patch_and_json_patch() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert run.merge_patch(base, {"a": {"b": None, "c": [3]}, "e": 2}) == {
        "a": {"c": [3]},
        "d": 1,
        "e": 2,
    }
    ops = [
        {"op": "add", "path": "/a/c/-", "value": 9},
        {"op": "replace", "path": "/d", "value": 5},
        {"op": "remove", "path": "/a/b"},
    ]
    assert run.json_patch(base, ops) == {"a": {"c": [1, 2, 9]}, "d": 5}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 1}  # not mutated
    with pytest.raises(KeyError):
        run.json_patch(base, [{"op": "replace", "path": "/zzz", "value": 1}])


def test_every_case_file_loads() -> None:
    for name in CASE_NAMES:
        case = run.Case.load(CONF / "cases" / f"{name}.json")
        assert case.description
        config = run.build_config(case, json.loads(run.BASE_CONFIG.read_text()), Path("/b"))
        assert config["process"]["args"][0] == "/probe"
        assert config["process"]["terminal"] is False


def test_normalize_and_flatten() -> None:
    host = {"pid": "pid:[1]", "net": "net:[2]"}
    report = {
        "namespaces": {"pid": "pid:[1]", "net": "net:[99]"},
        "pid": 4242,
        "fds": [{"fd": 0, "target": "pipe:[123]"}, {"fd": 3, "target": "/b/x/fd3.txt"}],
        "mounts": [{"target": "/m", "root": "/"}, {"target": "/m", "root": "/b/x/dir"}],
        "cgroup": ["1:cpu:/cid-1"],
        "env": ["A=b=c"],
    }
    flat = run.flatten(run.normalize(report, host, "/b/x", "cid-1"))
    assert flat["namespaces.pid"] == '"host"' and flat["namespaces.net"] == '"new"'
    assert flat["pid"] == '"not-1"'
    assert flat["fds[0]"] == '{"target": "pipe:[*]"}'
    assert flat["fds[3]"] == '{"target": "$BUNDLE/fd3.txt"}'
    assert flat["mounts[/m#2]"] == '{"root": "$BUNDLE/dir"}'
    assert flat["cgroup[cpu]"] == '"/$ID"'
    assert flat["env[A]"] == '"b=c"'


def _result_of(name: str, flat: dict[str, str], status: str = "ok") -> Any:
    flat = {**flat, run.STATUS_FIELD: json.dumps(status)}
    return run.RunResult(name, 0, "", "", status, {} if status == "ok" else None, flat)


def test_disagreements_honour_known_differences() -> None:
    case = run.Case("c", "d", {}, known_differences=["mounts[/sys*"])
    a = _result_of("a", {"mounts[/sys/fs]": "1", "uid": "0"})
    b = _result_of("b", {"mounts[/sys/fs]": "2", "uid": "1"})
    assert run.disagreements(case, a, b) == ["c.uid: a=0 b=1"]
    failed = _result_of("b", {}, status="exit=1 no-json")
    assert run.disagreements(case, a, failed) == ['c: b failed: "exit=1 no-json"']


# ------------------------------------------------------------------ cases under runc


def test_every_case_runs_under_runc(runc_results: Json) -> None:
    assert sorted(runc_results["cases"]) == CASE_NAMES
    for name in CASE_NAMES:
        res = runc_results["cases"][name]["results"]["runc"]
        assert res["status"] == "ok", (name, res["stderr"])
        assert res["probe"]["probe_version"] == 1


def test_default(runc_results: Json) -> None:
    p = _probe(runc_results, "default")
    f = _fields(runc_results, "default")
    assert (p["uid"], p["gid"], p["groups"]) == (0, 0, [])
    # CAP_AUDIT_WRITE(29), CAP_KILL(5), CAP_NET_BIND_SERVICE(10); root keeps
    # no ambient caps from the spec's list beyond what exec grants anyway.
    assert p["caps"]["effective"] == p["caps"]["bounding"] == "0000000020000420"
    assert p["no_new_privs"] is True
    assert p["hostname"] == "runc"
    assert p["rootfs_readonly"] is True
    assert p["umask"] == "0022"
    assert p["rlimits"]["RLIMIT_NOFILE"] == [1024, 1024]
    assert {k: v for k, v in f.items() if k.startswith("namespaces.")} == {
        "namespaces.pid": "new",
        "namespaces.net": "new",
        "namespaces.ipc": "new",
        "namespaces.uts": "new",
        "namespaces.mnt": "new",
        "namespaces.user": "host",
        "namespaces.cgroup": "host",
        "namespaces.time": "host",
    }
    assert p["pid"] == 1
    assert p["interfaces"] == [{"name": "lo", "up": True}] and p["loopback_up"] is True
    assert [fd["fd"] for fd in p["fds"]] == [0, 1, 2]
    assert p["masked"]["/proc/keys"] == "masked"
    assert p["masked"]["/sys/firmware"] == "masked"
    assert p["readonly"]["/proc/sys"] is True
    mounts = {m["target"]: m for m in p["mounts"]}
    assert mounts["/dev"]["fstype"] == "tmpfs"
    assert "ro" in _opts(mounts["/sys"]["vfs_options"])
    assert {"nosuid", "noexec", "nodev"} <= _opts(mounts["/dev/shm"]["vfs_options"])
    devs = {d["name"]: d for d in p["dev"]}
    assert (devs["/dev/null"]["type"], devs["/dev/null"]["major"], devs["/dev/null"]["minor"]) == (
        "c",
        1,
        3,
    )
    assert devs["/dev/ptmx"]["link"] == "pts/ptmx"
    assert f["env[HOME]"] == "/root"  # added by the runtime: not in the config


def test_readonly_and_writable_rootfs(runc_results: Json) -> None:
    ro = _probe(runc_results, "readonly-rootfs")
    assert ro["rootfs_readonly"] is True
    assert ro["readonly"]["/tmp"] is False
    assert _probe(runc_results, "rootfs-writable")["rootfs_readonly"] is False


def test_user_1000(runc_results: Json) -> None:
    p = _probe(runc_results, "user-1000")
    assert (p["uid"], p["gid"], p["euid"], p["egid"]) == (1000, 1000, 1000, 1000)
    assert p["groups"] == [10, 27]
    assert p["umask"] == "0077"
    assert p["caps"]["effective"] == p["caps"]["permitted"] == "0000000000000000"
    assert "HOME=/home/probe" in p["env"]


def test_user_groups_only_from_config(runc_results: Json) -> None:
    # /etc/group lists probe in wheel, but runc takes groups from the config only.
    assert _probe(runc_results, "user-group-file")["groups"] == []


def test_caps_reduced(runc_results: Json) -> None:
    caps = _probe(runc_results, "caps-reduced")["caps"]
    # Non-root after execve: permitted/effective = ambient (NET_BIND_SERVICE,
    # bit 10); KILL (bit 5) survives only in the inheritable set.
    assert caps == {
        "effective": "0000000000000400",
        "permitted": "0000000000000400",
        "inheritable": "0000000000000420",
        "bounding": "0000000000002421",
        "ambient": "0000000000000400",
    }


def test_no_new_privs_false(runc_results: Json) -> None:
    assert _probe(runc_results, "no-new-privs-false")["no_new_privs"] is False


def test_rlimits(runc_results: Json) -> None:
    limits = _probe(runc_results, "rlimits")["rlimits"]
    assert limits["RLIMIT_NOFILE"] == [1024, 2048]
    assert limits["RLIMIT_NPROC"] == [4096, 8192]
    assert limits["RLIMIT_CORE"] == [0, 0]


def _runc_version() -> tuple[int, ...]:
    assert RUNC is not None
    out = subprocess.run([RUNC, "--version"], capture_output=True, text=True).stdout
    match = re.search(r"runc version (\d+)\.(\d+)", out)
    assert match, out
    return tuple(int(x) for x in match.groups())


def test_hostname_domainname(runc_results: Json) -> None:
    p = _probe(runc_results, "hostname-domainname")
    assert p["hostname"] == "probe-host"
    # runc learnt `domainname` in 1.2; older ones ignore it (a runc gap that a
    # spec-following ocirt will show as a disagreement: see the README).
    expected = "probe.example" if _runc_version() >= (1, 2) else "(none)"
    assert p["domainname"] == expected


def test_env_cwd(runc_results: Json) -> None:
    p = _probe(runc_results, "env-cwd")
    assert p["cwd"] == "/tmp"
    for entry in ("FOO=bar", "WITH_SPACE=a b c", "EMPTY=", 'QUOTE="q"\\', "HOME=/root"):
        assert entry in p["env"], entry


def test_masked_readonly_custom(runc_results: Json) -> None:
    p = _probe(runc_results, "masked-readonly-custom")
    assert p["masked"]["/proc/meminfo"] == "masked"  # a file: /dev/null bound over it
    assert p["masked"]["/proc/driver"] == "masked"  # a directory: empty ro tmpfs
    assert p["masked"]["/proc/does-not-exist"] == "absent"
    assert p["readonly"]["/proc/sysvipc"] is True
    assert p["readonly"]["/proc/tty"] is True


def test_mounts_common(runc_results: Json) -> None:
    f = _fields(runc_results, "mounts-common")
    scratch = f["mounts[/scratch]"]
    assert {"nosuid", "nodev", "noexec", "rw"} <= _opts(scratch["vfs_options"])
    assert {"size=1024k", "mode=1770"} <= _opts(scratch["super_options"])
    assert "ro" in _opts(f["mounts[/scratch-ro]"]["vfs_options"])
    hostro = f["mounts[/hostro]"]
    assert {"ro", "nosuid", "nodev", "noexec"} <= _opts(hostro["vfs_options"])
    for target in ("/hostro", "/hostrbind", "/hostslave", "/hostrel"):
        assert f[f"mounts[{target}]"]["root"] == "$BUNDLE/hostdir", target
    assert "rw" in _opts(f["mounts[/hostrbind]"]["vfs_options"])
    assert "nosuid" in _opts(f["mounts[/hostrel]"]["vfs_options"])


def test_mounts_extra_proc_sysfs(runc_results: Json) -> None:
    f = _fields(runc_results, "mounts-extra-proc-sysfs")
    assert f["mounts[/mnt/proc]"]["fstype"] == "proc"
    assert {"nosuid", "nodev", "noexec"} <= _opts(f["mounts[/mnt/proc]"]["vfs_options"])
    assert f["mounts[/mnt/sys]"]["fstype"] == "sysfs"
    assert "ro" in _opts(f["mounts[/mnt/sys]"]["vfs_options"])


def test_oom_score_adj(runc_results: Json) -> None:
    assert _probe(runc_results, "oom-score-adj")["oom_score_adj"] == 500


def _host_interfaces() -> list[str]:
    lines = Path("/proc/net/dev").read_text().splitlines()[2:]
    return sorted(line.split(":")[0].strip() for line in lines)


def test_namespaces_shared_net(runc_results: Json) -> None:
    p = _probe(runc_results, "namespaces-shared-net")
    assert _fields(runc_results, "namespaces-shared-net")["namespaces.net"] == "host"
    assert [i["name"] for i in p["interfaces"]] == _host_interfaces()


def test_no_pid_ns(runc_results: Json) -> None:
    f = _fields(runc_results, "no-pid-ns")
    assert f["namespaces.pid"] == "host"
    assert f["pid"] == "not-1"


def test_cgroup_ns(runc_results: Json) -> None:
    p = _probe(runc_results, "cgroup-ns")
    assert _fields(runc_results, "cgroup-ns")["namespaces.cgroup"] == "new"
    assert p["cgroup"] and all(line.endswith(":/") for line in p["cgroup"])


def test_terminal_false_fds(runc_results: Json) -> None:
    f = _fields(runc_results, "terminal-false-fds")
    fds = sorted(int(k[4:-1]) for k in f if k.startswith("fds["))
    assert fds == [0, 1, 2, 3, 4]
    assert f["fds[3]"]["target"] == "$BUNDLE/fd3.txt"
    assert f["fds[4]"]["target"] == "$BUNDLE/fd4.txt"


def test_sysctl(runc_results: Json) -> None:
    sysctl = _probe(runc_results, "sysctl")["sysctl"]
    assert sysctl["net.ipv4.ip_forward"] == "1"
    assert sysctl["kernel.shmmax"] == "65536"


def test_exit_code(runc_results: Json) -> None:
    assert _result(runc_results, "exit-code")["exit_code"] == 7


# ------------------------------------------------------------------ runner behaviour


def test_failing_runtime_is_reported_not_fatal(probe: Path, tmp_path: Path) -> None:
    _need_runc()
    proc, data = _run_runner(
        tmp_path / "out.json",
        "--runtime",
        "runc=runc",
        "--runtime",
        "broken=/bin/false",
        "--case",
        "default",
        "--require-agree",
        "broken,runc",
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "default: broken failed" in proc.stdout
    assert data["cases"]["default"]["results"]["broken"]["status"] == "exit=1 no-json"
    assert re.search(r"^\d+ fields agree, [1-9]\d* differ$", proc.stdout, re.M)


def test_same_runtime_twice_agrees(probe: Path, tmp_path: Path) -> None:
    """Two runc runs must normalize identically, or the runner would flag
    every other runtime for noise (pids, inode numbers, temp paths)."""
    _need_runc()
    proc, _ = _run_runner(
        tmp_path / "out.json",
        "--runtime",
        "a=runc",
        "--runtime",
        "b=runc",
        "--require-agree",
        "a,b",
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr
    assert re.search(r"^\d+ fields agree, 0 differ$", proc.stdout, re.M)


# ------------------------------------------------------------------ ocirt vs runc


def test_ocirt_agrees_with_runc(probe: Path, tmp_path: Path) -> None:
    ocirt = os.environ.get("OCIRT")
    if not ocirt:
        pytest.skip("set OCIRT to an ocirt command (it accepts runc's CLI) to compare it with runc")
    _need_runc()
    proc, _ = _run_runner(
        tmp_path / "out.json",
        "--runtime",
        "runc=runc",
        "--runtime",
        f"ocirt={ocirt}",
        "--diff-only",
        "--require-agree",
        "ocirt,runc",
    )
    assert proc.returncode == 0, proc.stdout[-20000:] + proc.stderr[-5000:]
