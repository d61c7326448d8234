"""Symlink-exchange races on mount targets: CVE-2021-30465 and CVE-2019-19921.

Two containers share a volume.  The attacker (A) swaps, in a tight loop, a
directory of the volume with a symlink (renameat2 RENAME_EXCHANGE); the
victim (B) binds the volume at /vol and has mounts whose destinations are
those directories.  A runtime that resolves a destination and then mounts,
or changes a mount's flags, by *path* can be led anywhere the symlink points:

* CVE-2021-30465 (runc < 1.0.0-rc95): the symlink points at a host path, the
  mount lands there, on the host side of the victim's root.  Seen from the
  host: with rootfsPropagation "shared" (a valid config) the mount propagates
  into the host's mount table; or the runtime makes directories under the
  host path.
* CVE-2019-19921's class: the symlink points into the victim's /proc, and a
  volume (a host directory) ends up over procfs, where the runtime's later
  writes and protections go.
* the read-only flag of a bind applied by path after the mount (a remount)
  lands on whatever the name is by then, and the host directory the config
  binds read-only stays writable in the container.

ocirt opens each destination once, with openat2(RESOLVE_IN_ROOT), mounts on
that fd with move_mount(2) (never on a path), sets a bind's flags on the
detached copy before attaching it, and refuses a target that turns out to lie
on procfs (rootfs._refuse_proc_target).  How each test was checked failing
is said in it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import BundleFactory
from mount_race import (
    PEERS,
    Outcome,
    bind,
    build_swap,
    create_until_harm,
    entries_under,
    host_mounts_under,
    mountinfo_of,
    peers_enabled,
    racer,
    runtime,
    write_config,
)

RACE_SECONDS = 15
PAIRS = 6  # directories swapped, each the destination of a mount


@pytest.fixture(scope="session", name="swap")
def _swap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_swap(tmp_path_factory.mktemp("swap"))


def swapped_volume(volume: Path, link_target: str) -> list[str]:
    """VOLUME with directories m0.. and symlinks s0.. to LINK_TARGET; the racer's pairs."""
    pairs = []
    for k in range(PAIRS):
        (volume / f"m{k}").mkdir(parents=True)
        (volume / f"s{k}").symlink_to(link_target)
        pairs += [f"m{k}", f"s{k}"]
    return pairs


def run_attack(
    name: str,
    ocirt_bin: str,
    tmp_root: Path,
    bundle: BundleFactory,
    swap: Path,
    volume: Path,
    pairs: list[str],
    victim_mounts: list[dict[str, Any]],
    harm_of: Any,
    victim_edit: Any = None,
) -> Outcome:
    victim = bundle(name="victim")

    def edit(config: dict[str, Any]) -> None:
        config["mounts"] += [bind(volume, "/vol"), *victim_mounts]
        if victim_edit:
            victim_edit(config)

    write_config(victim, edit)
    with (
        runtime(name, ocirt_bin, tmp_root) as rt,
        racer(rt, bundle(name="racer"), swap, volume, pairs, RACE_SECONDS + 10),
    ):
        return create_until_harm(rt, victim, RACE_SECONDS, lambda _n: None, harm_of)


# ------------------------------------------- CVE-2021-30465: outside the rootfs


@pytest.fixture
def shared_host_dir(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of our own on the host, shared: a mount made on it in a peer
    namespace shows in the host's mount table."""
    where = tmp_path / "shared"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "ocirt-test", str(where)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(where)], check=True)
        (where / "target").mkdir()
        yield where
    finally:
        # What a vulnerable runtime propagated here goes with it (-l: lazily).
        subprocess.run(["umount", "-R", "-l", str(where)], check=False)


def outside_attack(
    name: str,
    ocirt_bin: str,
    tmp_root: Path,
    bundle: BundleFactory,
    swap: Path,
    work: Path,
    shared: Path,
) -> Outcome:
    target = shared / "target"
    volume = work / "vol"
    pairs = swapped_volume(volume, str(target))  # the host's path
    source = work / "source"
    source.mkdir()
    mounts = []
    for k in range(PAIRS):
        if k % 2:
            mounts.append({"destination": f"/vol/m{k}", "type": "tmpfs", "source": "t"})
        else:
            mounts.append(bind(source, f"/vol/m{k}"))

    def harm(_pid: int | None) -> str:
        mounts_now = host_mounts_under(shared)
        if mounts_now != [str(shared)]:
            return f"mounted on the host: {mounts_now}"
        made = entries_under(target)
        return f"made on the host in {target}: {made[:6]}" if made else ""

    def shared_propagation(config: dict[str, Any]) -> None:
        config["linux"]["rootfsPropagation"] = "shared"

    return run_attack(
        name, ocirt_bin, tmp_root, bundle, swap, volume, pairs, mounts, harm, shared_propagation
    )


def test_no_mount_lands_outside_the_rootfs(
    ocirt_bin: str,
    tmp_root: Path,
    bundle: BundleFactory,
    swap: Path,
    tmp_path: Path,
    shared_host_dir: Path,
) -> None:
    """Checked failing: with rootfs._mount_filesystem and _bind_mount mounting
    on rootfs + destination (a path) instead of the fd, the host's mount table
    had a tmpfs on shared/target within the first attempts.  runc 1.1.5 and
    crun 1.8.1 survive (OCIRT_SECURITY_PEERS=1; crun runs under nohybrid, a
    private mount namespace, so only the directory check sees it)."""
    outcome = outside_attack("ocirt", ocirt_bin, tmp_root, bundle, swap, tmp_path, shared_host_dir)
    print(outcome.summary())
    assert not outcome.harm, outcome.summary()
    assert host_mounts_under(shared_host_dir) == [str(shared_host_dir)]
    assert outcome.created > 0, outcome.summary()


# --------------------------------- CVE-2019-19921's class: a volume over /proc


def covered_proc(volume: Path) -> Any:
    def harm(pid: int | None) -> str:
        if pid is None:
            return ""
        for point, fstype, _opts, root in mountinfo_of(pid):
            inside = point == "/proc" or point.startswith("/proc/")
            if inside and root.startswith(str(volume)):
                return f"the host's {root} ({fstype}) is mounted over {point} in the container"
        return ""

    return harm


def proc_attack(
    name: str, ocirt_bin: str, tmp_root: Path, bundle: BundleFactory, swap: Path, work: Path
) -> Outcome:
    volume = work / "vol"
    links = ["/proc", "/proc/sys", "/proc/self", "/proc/sys/kernel", "/proc/1", "/proc/sys/net"]
    pairs = []
    for k in range(PAIRS):
        (volume / f"m{k}").mkdir(parents=True)
        (volume / f"s{k}").symlink_to(links[k % len(links)])
        pairs += [f"m{k}", f"s{k}"]
    (volume / "fake").mkdir()
    mounts = [bind(volume / "fake", f"/vol/m{k}") for k in range(PAIRS)]
    return run_attack(
        name, ocirt_bin, tmp_root, bundle, swap, volume, pairs, mounts, covered_proc(volume)
    )


def test_no_volume_lands_over_proc(
    ocirt_bin: str, tmp_root: Path, bundle: BundleFactory, swap: Path, tmp_path: Path
) -> None:
    """Checked failing: without rootfs._refuse_proc_target, the victim was
    created with the volume's directory over /proc (or /proc/sys, ...) within
    a few seconds.  A won race is refused with runc's sentence; a lost one
    mounts in the volume as asked."""
    outcome = proc_attack("ocirt", ocirt_bin, tmp_root, bundle, swap, tmp_path)
    print(outcome.summary())
    assert not outcome.harm, outcome.summary()
    assert outcome.created > 0, outcome.summary()
    for error in outcome.refused:
        assert "cannot be mounted because it is" in error, outcome.summary()


# ------------------------------------ a read-only bind made writable by a race


def writable_readonly_bind(precious: Path) -> Any:
    """Harm: PRECIOUS, bound read-only by the config, is writable in the
    container (its mount is rw; proved by opening a file in it for writing
    through /proc/PID/root, and closing it unwritten)."""

    def harm(pid: int | None) -> str:
        if pid is None:
            return ""
        for point, _fstype, opts, root in mountinfo_of(pid):
            if root != str(precious) or "rw" not in opts.split(","):
                continue
            try:
                fd = os.open(f"/proc/{pid}/root{point}/data", os.O_WRONLY)
            except OSError:
                continue
            os.close(fd)
            return f"{precious}, bound read-only, is writable at {point} in the container"
        return ""

    return harm


def readonly_attack(
    name: str, ocirt_bin: str, tmp_root: Path, bundle: BundleFactory, swap: Path, work: Path
) -> Outcome:
    volume = work / "vol"
    pairs = swapped_volume(volume, "/vol")  # a mount root of the victim: a remount succeeds
    precious = work / "precious"
    precious.mkdir()
    (precious / "data").write_text("the host's\n")
    mounts = [bind(precious, f"/vol/m{k}", "ro") for k in range(PAIRS)]
    return run_attack(
        name,
        ocirt_bin,
        tmp_root,
        bundle,
        swap,
        volume,
        pairs,
        mounts,
        writable_readonly_bind(precious),
    )


def test_a_readonly_bind_stays_readonly(
    ocirt_bin: str, tmp_root: Path, bundle: BundleFactory, swap: Path, tmp_path: Path
) -> None:
    """Checked failing: with _bind_mount's read-only flag set by a bind remount
    of the destination looked up again after the mount (ocirt before this
    test), the precious directory was writable in the victim within seconds."""
    outcome = readonly_attack("ocirt", ocirt_bin, tmp_root, bundle, swap, tmp_path)
    print(outcome.summary())
    assert not outcome.harm, outcome.summary()
    assert outcome.created > 0, outcome.summary()
    assert (tmp_path / "precious" / "data").read_text() == "the host's\n"


# ------------------------------------------------------------------ the peers

ATTACKS = {"outside": outside_attack, "proc": proc_attack, "readonly": readonly_attack}


@pytest.mark.skipif(not peers_enabled(), reason="peers run with OCIRT_SECURITY_PEERS=1")
@pytest.mark.parametrize("attack", sorted(ATTACKS))
@pytest.mark.parametrize("peer", PEERS)
def test_peer_mount_target_races(
    peer: str,
    attack: str,
    ocirt_bin: str,
    tmp_root: Path,
    bundle: BundleFactory,
    swap: Path,
    tmp_path: Path,
    shared_host_dir: Path,
) -> None:
    """Records what runc and crun do (docs/security.md): prints, does not judge."""
    args: list[Any] = [peer, ocirt_bin, tmp_root, bundle, swap, tmp_path]
    if attack == "outside":
        args.append(shared_host_dir)
    outcome = ATTACKS[attack](*args)
    print(f"{peer} {attack}: {outcome.summary()}")
