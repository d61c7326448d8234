"""/proc covered or moved by the rootfs: CVE-2019-16884 and CVE-2023-27561.

After pivot_root the runtime still writes under the container's /proc (an
LSM label to /proc/self/attr, sysctls to /proc/sys, /proc/self/oom_score_adj)
and makes /proc/sys read-only and /proc/kcore masked.  If /proc is not the
procfs the runtime mounted, those writes and protections go elsewhere.

* CVE-2019-16884: a volume (a config mount) over /proc, after procfs: the
  runtime's writes land in the volume, a host directory, and the LSM label
  or sysctl is silently not applied.  ocirt refuses, as runc does, any mount
  on /proc that is not procfs and any mount under it but binds over the few
  files lxcfs emulates; it judges the destination as written and also the fd
  the mount would land on (a symlink or a racing swap can lead a mount into
  procfs: tests/security/test_mount_target_races.py).  Writes themselves are
  checked too (ocirt.linux.procfs: another test file).
* CVE-2023-27561 (a regression of CVE-2019-19921): the image's /proc is a
  symlink into a volume another container shares; procfs is mounted on the
  volume's directory, the other container swaps that directory with a fake,
  and the runtime's read-only bind of /proc/sys lands on the fake: the real
  procfs, still reachable in the volume, keeps a writable /proc/sys (the
  host's kernel.core_pattern, from inside the container).  ocirt, as runc
  1.1.5 and crun, mounts proc and sysfs only on a directory reached without
  a symlink.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import BundleFactory, call_runtime
from mount_race import (
    PEERS,
    Outcome,
    bind,
    build_swap,
    create_until_harm,
    entries_under,
    mountinfo_of,
    peers_enabled,
    racer,
    runtime,
    write_config,
)

RACE_SECONDS = 15


@pytest.fixture(scope="session", name="swap")
def _swap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_swap(tmp_path_factory.mktemp("swap"))


def fake_proc(where: Path) -> dict[str, str]:
    """A directory that looks like the /proc files the runtime writes; its files' contents."""
    files = {
        "self/oom_score_adj": "0\n",
        "self/attr/exec": "",
        "thread-self/attr/exec": "",
        "sys/net/ipv4/ip_forward": "0\n",
    }
    for name, text in files.items():
        (where / name).parent.mkdir(parents=True, exist_ok=True)
        (where / name).write_text(text)
    return files


def snapshot(where: Path) -> dict[str, str]:
    return {
        str(p.relative_to(where)): p.read_text() for p in sorted(where.rglob("*")) if p.is_file()
    }


# ------------------------------------------------------------ CVE-2019-16884


@pytest.mark.parametrize(
    ("destination", "sentence"),
    [
        ("/proc", "cannot be mounted because it is not of type proc"),
        ("/proc/self", "cannot be mounted because it is inside /proc"),
        ("/proc/sys", "cannot be mounted because it is inside /proc"),
    ],
)
def test_a_volume_over_proc_is_refused(
    ocirt_bin: str,
    tmp_root: Path,
    bundle: BundleFactory,
    tmp_path: Path,
    destination: str,
    sentence: str,
) -> None:
    """The host-visible harm, when ocirt mounted it (checked by removing the
    two _refuse_proc_* calls from rootfs._bind_mount and the write check of
    ocirt.linux.procfs): the container ran with the volume as its /proc and
    "123" was written into the host's fake/self/oom_score_adj (sysctl: into
    fake/sys/net/ipv4/ip_forward).  runc 1.1.5 refuses with these sentences;
    crun 1.8.1 mounts the volume but writes neither file."""
    fake = tmp_path / "fake"
    source = fake / destination.removeprefix("/proc").lstrip("/")
    fake_proc(fake)
    before = snapshot(fake)

    def patch(config: dict[str, Any]) -> None:
        config["mounts"].append(bind(source, destination))
        config["process"]["oomScoreAdj"] = 123
        config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
        # Directories are masked with a tmpfs mounted through /proc/self/fd/N,
        # which the fake lacks: that would fail the create before any write.
        config["linux"]["maskedPaths"] = []

    proc = call_runtime(ocirt_bin, tmp_root, "run", "-b", str(bundle("true", patch=patch)), "c")
    assert snapshot(fake) == before, "the runtime wrote into the host's directory"
    assert proc.returncode != 0, "a volume over /proc was mounted"
    rootfs_dest = f"{tmp_path}/bundle/rootfs{destination}"
    assert f'\\"{rootfs_dest}\\" {sentence}' in proc.stderr, proc.stderr
    assert not (tmp_root / "c").exists()


def test_binds_over_lxcfs_files_in_proc_still_work(
    ocirt_bin: str, tmp_root: Path, bundle: BundleFactory, tmp_path: Path
) -> None:
    """What lxcfs does (and runc allows): a file bound over /proc/cpuinfo or /proc/meminfo."""
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor : lxcfs\n")

    def add(config: dict[str, Any]) -> None:
        config["mounts"].append(bind(cpuinfo, "/proc/cpuinfo"))
        config["mounts"].append(bind(cpuinfo, "/proc/meminfo"))

    b = bundle("cat", "/proc/cpuinfo", "/proc/meminfo", patch=add)
    proc = call_runtime(ocirt_bin, tmp_root, "run", "-b", str(b), "c")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "processor : lxcfs\n" * 2


def test_a_symlink_into_proc_leads_no_volume_there(
    ocirt_bin: str, tmp_root: Path, bundle: BundleFactory, tmp_path: Path
) -> None:
    """The destination as written is not under /proc, but the image's symlink
    leads it there: judged on the fd, refused with the resolved path.  Checked:
    without _refuse_proc_target the volume covered /proc/sys."""
    fake = tmp_path / "fake"
    fake_proc(fake)

    def patch(config: dict[str, Any]) -> None:
        config["mounts"].append(bind(fake / "sys", "/etc/innocent"))

    b = bundle("true", patch=patch)
    (b / "rootfs" / "etc" / "innocent").symlink_to("/proc/sys")
    proc = call_runtime(ocirt_bin, tmp_root, "run", "-b", str(b), "c")
    assert proc.returncode != 0
    assert f'\\"{b}/rootfs/proc/sys\\" cannot be mounted because it is inside /proc' in proc.stderr


# ------------------------------------------------------------ CVE-2023-27561


def writable_core_pattern(pid: int | None) -> str:
    """Harm: a procfs in the container (PID's mounts) whose kernel.core_pattern
    opens for writing, i.e. the container can rewrite the host's.  Opened
    through /proc/PID/root and closed at once: nothing is written."""
    if pid is None:
        return ""
    for point, fstype, _opts, root in mountinfo_of(pid):
        if fstype != "proc" or root != "/":
            continue
        path = f"/proc/{pid}/root{point}/sys/kernel/core_pattern"
        try:
            fd = os.open(path, os.O_WRONLY)
        except OSError:
            continue
        os.close(fd)
        return f"procfs at {point} in the container has a writable sys/kernel/core_pattern"
    return ""


def symlinked_proc_attack(
    name: str, ocirt_bin: str, tmp_root: Path, bundle: BundleFactory, swap: Path, work: Path
) -> Outcome:
    """The victim's /proc -> /vol/level1; the volume is mounted before proc (so
    procfs lands on the volume's level1); the racer swaps level1 and level2,
    a fake with a sys directory, while the victim is created."""
    volume = work / "vol"
    (volume / "level1").mkdir(parents=True)
    (volume / "level2" / "sys" / "kernel").mkdir(parents=True)
    victim = bundle(name="victim")

    def edit(config: dict[str, Any]) -> None:
        config["mounts"].insert(0, bind(volume, "/vol"))
        # Directories are masked with a tmpfs mounted through /proc/self/fd/N,
        # which the fake lacks: with masked paths, a create where the swap
        # came before the masks fails instead, and only a swap between the masks
        # and the read-only paths shows the harm.  Without, every swap does.
        config["linux"]["maskedPaths"] = []

    write_config(victim, edit)
    (victim / "rootfs" / "proc").rmdir()
    (victim / "rootfs" / "proc").symlink_to("/vol/level1")
    with (
        runtime(name, ocirt_bin, tmp_root) as rt,
        racer(rt, bundle(name="racer"), swap, volume, ["level1", "level2"], RACE_SECONDS + 10),
    ):
        return create_until_harm(rt, victim, RACE_SECONDS, lambda _n: None, writable_core_pattern)


def test_proc_is_never_mounted_through_a_symlink(
    ocirt_bin: str, tmp_root: Path, bundle: BundleFactory, swap: Path, tmp_path: Path
) -> None:
    """Checked failing: with _filesystem_target's RESOLVE_NO_SYMLINKS open
    removed, ocirt created the victim and, within a few seconds of the race,
    its real procfs had a writable core_pattern (the read-only bind of
    /proc/sys had gone to the fake).  runc 1.1.5 and crun 1.8.1 refuse the
    symlink too (OCIRT_SECURITY_PEERS=1)."""
    outcome = symlinked_proc_attack("ocirt", ocirt_bin, tmp_root, bundle, swap, tmp_path)
    print(outcome.summary())
    assert not outcome.harm, outcome.summary()
    assert outcome.created == 0, outcome.summary()
    sentence = '(mounts[N]): filesystem \\"proc\\" must be mounted on ordinary directory'
    assert all(sentence in error for error in outcome.refused), outcome.summary()
    # The racer's volume holds what it held: nothing was made in it by the runtime.
    # (whichever name each directory has now)
    entries = [re.sub(r"^level[12]", "level", e) for e in entries_under(tmp_path / "vol")]
    assert sorted(entries) == ["level", "level", "level/sys", "level/sys/kernel"]


@pytest.mark.skipif(not peers_enabled(), reason="peers run with OCIRT_SECURITY_PEERS=1")
@pytest.mark.parametrize("peer", PEERS)
def test_peer_symlinked_proc(
    peer: str, ocirt_bin: str, tmp_root: Path, bundle: BundleFactory, swap: Path, tmp_path: Path
) -> None:
    outcome = symlinked_proc_attack(peer, ocirt_bin, tmp_root, bundle, swap, tmp_path)
    print(f"{peer}: {outcome.summary()}")


@pytest.mark.skipif(not peers_enabled(), reason="peers run with OCIRT_SECURITY_PEERS=1")
@pytest.mark.parametrize("peer", PEERS)
def test_peer_volume_over_proc(
    peer: str, ocirt_bin: str, tmp_root: Path, bundle: BundleFactory, tmp_path: Path
) -> None:
    fake = tmp_path / "fake"
    fake_proc(fake)
    before = snapshot(fake)
    victim = bundle("true", name="victim")

    def edit(config: dict[str, Any]) -> None:
        config["mounts"].append(bind(fake, "/proc"))
        config["process"]["oomScoreAdj"] = 123
        config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}

    write_config(victim, edit)
    with runtime(peer, ocirt_bin, tmp_root) as rt:
        pid, error = rt.create(victim, "ocirt-test-mt-overproc")
        written = {k: v for k, v in snapshot(fake).items() if before.get(k) != v}
        print(f"{peer}: created={pid is not None} error={error[-200:]!r} written={written}")
        if pid is not None:
            print(f"{peer}: /proc in the container: {mountinfo_of(pid)[-3:]}")


# ------------------------- the image's /proc steering the masks (no procfs mount)


def test_masks_do_not_go_through_the_images_proc(
    ocirt_bin: str, tmp_root: Path, bundle: BundleFactory
) -> None:
    """A config without a proc mount leaves /proc to the image.  Masking a
    directory used to mount its tmpfs on /proc/self/fd/N after pivot_root,
    i.e. through the image's /proc: fake self/fd/N symlinks to /decoy put the
    mask there and left /sys/firmware (the host's firmware tables) readable.
    Checked failing with rootfs._mask's tmpfs mounted on fd_path(fd) again:
    /decoy had the tmpfs, /sys/firmware none."""
    if not Path("/sys/firmware").is_dir():
        pytest.skip("no /sys/firmware on this host")

    def patch(config: dict[str, Any]) -> None:
        config["mounts"] = [m for m in config["mounts"] if m["type"] != "proc"]
        config["linux"]["maskedPaths"] = ["/sys/firmware"]

    b = bundle("sleep", "60", patch=patch)
    (b / "rootfs" / "decoy").mkdir()
    fds = b / "rootfs" / "proc" / "self" / "fd"
    fds.mkdir(parents=True)
    for n in range(3, 256):
        (fds / str(n)).symlink_to("/decoy")
    with runtime("ocirt", ocirt_bin, tmp_root) as rt:
        pid, error = rt.create(b, "ocirt-test-mt-fakefd")
        assert pid is not None, error
        mounts = {point: (fstype, opts) for point, fstype, opts, _root in mountinfo_of(pid)}
    assert "/decoy" not in mounts
    assert mounts.get("/sys/firmware", ("", ""))[0] == "tmpfs", mounts
    assert "ro" in mounts["/sys/firmware"][1].split(",")
