"""Rootless: a real unprivileged user runs ocirt (`spec --rootless`, run, the lifecycle).

A temporary user is created with useradd (Debian gives it /etc/subuid and
/etc/subgid ranges) and removed afterwards.  The commands run through
runuser with XDG_RUNTIME_DIR set.  If the venv's interpreter lives below a
directory the user cannot traverse (pyenv under /root), they run in a
private mount namespace where only that directory is made reachable; the
host is not changed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]


class User:
    def __init__(self, name: str, home: Path) -> None:
        self.name = name
        self.uid = int(
            subprocess.run(["id", "-u", name], capture_output=True, text=True, check=True).stdout
        )
        self.gid = int(
            subprocess.run(["id", "-g", name], capture_output=True, text=True, check=True).stdout
        )
        self.home = home  # bundles and XDG_RUNTIME_DIR live here

    @property
    def xdg(self) -> Path:
        return self.home / "xdg"


def _hidden_prefix() -> str | None:
    """The first directory above the real interpreter that others cannot enter."""
    path = Path(os.path.realpath(sys.executable))
    for parent in reversed(path.parents):
        if str(parent) != "/" and not os.stat(parent).st_mode & 0o001:
            return str(parent)
    return None


def as_user(
    user: User, *args: str, check: bool = False, **kw: Any
) -> subprocess.CompletedProcess[str]:
    env = ["env", f"XDG_RUNTIME_DIR={user.xdg}", "HOME=" + str(user.home)]
    cmd = ["runuser", "-u", user.name, "--", *env, *args]
    hidden = _hidden_prefix()
    if hidden is not None:
        inner = Path(os.path.realpath(sys.executable)).parents
        keep = next(str(p) for p in inner if str(p.parent) == hidden)  # e.g. /root/.pyenv
        script = (
            'set -e; k=$(mktemp -d); mount --bind "$1" "$k";'
            ' mount -t tmpfs -o mode=755 tmpfs "$2"; mkdir -p "$1"; mount --bind "$k" "$1";'
            ' umount "$k"; rmdir "$k"; shift 2; exec "$@"'
        )
        cmd = [
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
            keep,
            hidden,
            *cmd,
        ]
    kw.setdefault("capture_output", True)
    return subprocess.run(cmd, text=True, timeout=120, check=check, **kw)


@pytest.fixture
def user(ocirt_bin: str) -> Iterator[User]:
    if os.geteuid() != 0:
        pytest.skip("creating a test user needs root")
    for tool in ("useradd", "userdel", "runuser", "unshare"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    name = "ocirt-rl-" + uuid.uuid4().hex[:6]
    home = Path(tempfile.mkdtemp(prefix="ocirt-rootless-"))
    subprocess.run(
        ["useradd", "--no-create-home", "-d", str(home), "-s", "/bin/sh", name], check=True
    )
    try:
        u = User(name, home)
        os.chmod(home, 0o755)
        os.chown(home, u.uid, u.gid)
        u.xdg.mkdir(mode=0o700)
        os.chown(u.xdg, u.uid, u.gid)
        yield u
    finally:
        subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)
        subprocess.run(["userdel", name], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


def make_bundle(
    user: User, ocirt: str, bundle_template: Path, args: list[str], edit: Any = None
) -> Path:
    b = user.home / ("b-" + uuid.uuid4().hex[:6])
    b.mkdir()
    shutil.copytree(bundle_template / "rootfs", b / "rootfs", symlinks=True)
    subprocess.run(["chown", "-R", f"{user.uid}:{user.gid}", str(b)], check=True)
    as_user(user, ocirt, "spec", "--rootless", "--bundle", str(b), check=True)
    config = json.loads((b / "config.json").read_text())
    config["process"]["terminal"] = False
    config["process"]["args"] = args
    if edit:
        edit(config)
    (b / "config.json").write_text(json.dumps(config))
    return b


@pytest.fixture
def template(bundle: Any) -> Path:
    return bundle("true")


def test_spec_rootless_maps_the_caller(user: User, ocirt_bin: str, template: Path) -> None:
    b = make_bundle(user, ocirt_bin, template, ["true"])
    linux = json.loads((b / "config.json").read_text())["linux"]
    assert linux["uidMappings"] == [{"containerID": 0, "hostID": user.uid, "size": 1}]
    assert linux["gidMappings"] == [{"containerID": 0, "hostID": user.gid, "size": 1}]
    assert {"type": "user"} in linux["namespaces"]
    assert "network" not in {ns["type"] for ns in linux["namespaces"]}


def test_rootless_run(user: User, ocirt_bin: str, template: Path) -> None:
    script = (
        "cat /proc/self/uid_map /proc/self/setgroups; id -u;"
        " grep ' /sys ' /proc/self/mountinfo | cut -d' ' -f5,6; echo hi > /tmp/x || true"
    )
    b = make_bundle(user, ocirt_bin, template, ["sh", "-c", script])
    proc = as_user(user, ocirt_bin, "run", "--bundle", str(b), "r1", stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.split()
    assert out[:3] == ["0", str(user.uid), "1"]
    assert out[3] == "deny"  # an unprivileged gid_map needs setgroups denied
    assert out[4] == "0"  # root inside
    assert out[5] == "/sys" and "ro" in out[6].split(",")
    assert not (user.xdg / "ocirt" / "r1").exists()  # state under $XDG_RUNTIME_DIR/ocirt, gone


def test_rootless_lifecycle(user: User, ocirt_bin: str, template: Path) -> None:
    b = make_bundle(user, ocirt_bin, template, ["sleep", "60"])
    as_user(
        user,
        ocirt_bin,
        "create",
        "--bundle",
        str(b),
        "r2",
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        capture_output=False,
    )
    state_dir = user.xdg / "ocirt" / "r2"
    assert state_dir.is_dir() and os.stat(state_dir).st_uid == user.uid
    state = json.loads(as_user(user, ocirt_bin, "state", "r2", check=True).stdout)
    assert state["status"] == "created"
    pid = state["pid"]
    assert Path(f"/proc/{pid}/status").read_text().count(f"Uid:\t{user.uid}\t") == 1
    as_user(user, ocirt_bin, "start", "r2", check=True)
    assert (
        json.loads(as_user(user, ocirt_bin, "state", "r2", check=True).stdout)["status"]
        == "running"
    )
    as_user(user, ocirt_bin, "delete", "-f", "r2", check=True)
    assert not state_dir.exists()


def test_rootless_wide_mapping_uses_newuidmap(user: User, ocirt_bin: str, template: Path) -> None:
    if shutil.which("newuidmap") is None or shutil.which("newgidmap") is None:
        pytest.skip("newuidmap/newgidmap (package uidmap) are not installed")
    sub = _subid_range(user.name, "/etc/subuid")
    subg = _subid_range(user.name, "/etc/subgid")
    if sub is None or subg is None:
        pytest.skip("useradd gave the user no /etc/subuid and /etc/subgid range")

    def edit(config: dict[str, Any]) -> None:
        config["linux"]["uidMappings"].append({"containerID": 1, "hostID": sub[0], "size": sub[1]})
        config["linux"]["gidMappings"].append(
            {"containerID": 1, "hostID": subg[0], "size": subg[1]}
        )

    b = make_bundle(user, ocirt_bin, template, ["sh", "-c", "cat /proc/self/uid_map"], edit)
    proc = as_user(user, ocirt_bin, "run", "--bundle", str(b), "r3", stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[3:6] == ["1", str(sub[0]), str(sub[1])]

    def too_wide(config: dict[str, Any]) -> None:
        edit(config)
        config["linux"]["uidMappings"][1]["hostID"] += sub[1]  # not the user's range

    b = make_bundle(user, ocirt_bin, template, ["true"], too_wide)
    proc = as_user(user, ocirt_bin, "run", "--bundle", str(b), "r4", stdin=subprocess.DEVNULL)
    assert proc.returncode != 0 and "newuidmap" in proc.stderr
    assert not (user.xdg / "ocirt" / "r4").exists()


def test_rootless_without_user_namespace_refused(
    user: User, ocirt_bin: str, template: Path
) -> None:
    def edit(config: dict[str, Any]) -> None:
        linux = config["linux"]
        linux["namespaces"] = [n for n in linux["namespaces"] if n["type"] != "user"]
        linux.pop("uidMappings")
        linux.pop("gidMappings")

    b = make_bundle(user, ocirt_bin, template, ["true"], edit)
    proc = as_user(user, ocirt_bin, "run", "--bundle", str(b), "r5", stdin=subprocess.DEVNULL)
    assert proc.returncode != 0
    assert "rootless container requires user namespaces" in proc.stderr


def _subid_range(name: str, path: str) -> tuple[int, int] | None:
    try:
        for line in Path(path).read_text().splitlines():
            fields = line.split(":")
            if fields[0] == name:
                return int(fields[1]), int(fields[2])
    except OSError:
        pass
    return None


@pytest.mark.parametrize("nnp", [True, False], ids=["nnp", "no-nnp"])
def test_rootless_seccomp_notify(user: User, ocirt_bin: str, template: Path, nnp: bool) -> None:
    """A notify listener reaches the agent from a rootless runtime too.

    The runtime takes it with pidfd_getfd(2), which needs ptrace rights over
    its holder: stage 2 (nnp; `start` takes it) has exec'd in the container's
    user namespace, which the user owns; the init loading early (no nnp;
    `create` takes it) has not, and is dumpable for the handover only
    (seccomp.load_for_handover).  Checked without that: "unable to get
    seccomp fd N of pid M: operation not permitted" (create, no nnp).
    """
    from test_seccomp import Agent, notify_one  # its tests/seccomp_listener.py runner

    from ocirt.linux import seccomp

    agent = Agent(user.home, "errno:122", sock=user.home / "agent.sock")
    try:
        agent.socket.chmod(0o777)  # the agent runs as root; the runtime as the user

        def edit(config: dict[str, Any]) -> None:
            config["linux"]["seccomp"] = notify_one(agent, "mkdir")
            config["process"]["noNewPrivileges"] = nnp

        b = make_bundle(user, ocirt_bin, template, ["mkdir", "/tmp/n"], edit)
        proc = as_user(user, ocirt_bin, "run", "--bundle", str(b), "r6", stdin=subprocess.DEVNULL)
        assert "Disk quota exceeded" in proc.stderr, proc.stderr  # the agent's answer
        state, notes = agent.finish()
    finally:
        agent.stop()
    assert state["state"]["status"] == ("created" if nnp else "creating")
    assert [n["nr"] for n in notes] == [seccomp.syscall_number("mkdir")]  # the agent answered
