"""CVE-2024-45310: directories and files made outside the rootfs through a race.

A runtime makes a mount's destination when it does not exist yet (mkdir -p,
or an empty file for a file bind).  runc up to 1.1.13 resolved the path inside
the rootfs once, then made it with os.MkdirAll / os.OpenFile on the resulting
*string*: if a racing container turns a parent in a shared volume into a
symlink to a host path in between, the directories (and files) are made on
the host, as root.

The attack here: the volume holds a directory ``a`` and a symlink ``b`` to a
host directory (absolute host path, ``outside``); container A exchanges the
two names in a tight loop; container B binds the volume at /vol and asks for
mounts at /vol/a/<new>/d (directories) and /vol/a/<new>f (files), new names on
each attempt.  Harm: anything appearing in ``outside``.

ocirt makes each missing component with mkdirat(2)/mknodat(2) in the
directory fd it resolved with openat2(RESOLVE_IN_ROOT), and opens what it made
from that fd with RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS (ocirt/linux/paths.py):
nothing is ever made by a path the racer can change.  Checked failing: with
ensure_dir/ensure_file making the path with os.makedirs / open(O_CREAT) on
rootfs + destination (runc 1.1.5's way), ``outside`` had directories after a
few seconds, as with runc 1.1.5 itself (OCIRT_SECURITY_PEERS=1).
"""

from __future__ import annotations

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
    peers_enabled,
    racer,
    runtime,
    write_config,
)

RACE_SECONDS = 20  # the victim's loop; the racer runs a little longer


@pytest.fixture(scope="session", name="swap")
def _swap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_swap(tmp_path_factory.mktemp("swap"))


def attack(
    name: str, ocirt_bin: str, tmp_root: Path, bundle: BundleFactory, swap: Path, work: Path
) -> tuple[Outcome, Path]:
    volume, outside = work / "vol", work / "outside"
    (volume / "a").mkdir(parents=True)
    outside.mkdir()
    (volume / "b").symlink_to(outside)  # absolute: the host's path
    source_file = work / "source-file"
    source_file.write_text("x")
    victim = bundle(name="victim")
    base = (victim / "config.json").read_text()

    def new_destinations(attempt: int) -> None:
        (victim / "config.json").write_text(base)

        def edit(config: dict[str, Any]) -> None:
            config["mounts"].append(bind(volume, "/vol"))
            for k in range(6):
                config["mounts"].append(
                    {"destination": f"/vol/a/n{attempt}-{k}/d", "type": "tmpfs", "source": "t"}
                )
                config["mounts"].append(bind(source_file, f"/vol/a/n{attempt}-{k}f"))

        write_config(victim, edit)

    def harm(_pid: int | None) -> str:
        made = entries_under(outside)
        return f"made on the host in {outside}: {made[:6]}" if made else ""

    with (
        runtime(name, ocirt_bin, tmp_root) as rt,
        racer(rt, bundle(name="racer"), swap, volume, ["a", "b"], RACE_SECONDS + 10),
    ):
        outcome = create_until_harm(rt, victim, RACE_SECONDS, new_destinations, harm)
    return outcome, outside


def test_nothing_is_made_outside_the_rootfs(
    ocirt_bin: str, tmp_root: Path, bundle: BundleFactory, swap: Path, tmp_path: Path
) -> None:
    outcome, outside = attack("ocirt", ocirt_bin, tmp_root, bundle, swap, tmp_path)
    print(outcome.summary())
    assert not outcome.harm, outcome.summary()
    assert entries_under(outside) == []
    # The race did run: most creates got through it, so the paths were made.
    assert outcome.created > 0, outcome.summary()


@pytest.mark.skipif(not peers_enabled(), reason="peers run with OCIRT_SECURITY_PEERS=1")
@pytest.mark.parametrize("peer", PEERS)
def test_peer_mkdir_outside_rootfs(
    peer: str,
    ocirt_bin: str,
    tmp_root: Path,
    bundle: BundleFactory,
    swap: Path,
    tmp_path: Path,
) -> None:
    """Records what runc and crun do (docs/security.md): prints, does not judge."""
    outcome, _outside = attack(peer, ocirt_bin, tmp_root, bundle, swap, tmp_path)
    print(f"{peer}: {outcome.summary()}")
