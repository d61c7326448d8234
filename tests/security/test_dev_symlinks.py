"""CVE-2025-31133: /dev/null or /dev/console in the rootfs replaced by a symlink.

A runtime hides each file of ``linux.maskedPaths`` by bind-mounting
/dev/null over it, and with ``terminal: true`` binds the pty over
/dev/console.  runc up to 1.2.7 did both by path, inside the container: when
the image's (or a shared volume's) /dev/null is a symlink to a procfs file,
say /proc/sys/kernel/core_pattern, the "mask" is that file, writable, at
/proc/timer_list; when /dev/console is a dangling symlink, the runtime
creates its target (anywhere the container can point, e.g. into a host
volume) and mounts the pty there.

Host-visible harm, as the tests check it: a host-wide sysctl (the canary,
kernel.printk_ratelimit, restored afterwards) changed by the container
writing to a masked path; a file made in a host directory by the runtime.

ocirt binds masks from an fd of /dev/null opened without following a symlink
and checked to be c 1:3 (devices.open_null, rootfs._mask), and opens
/dev/console without following one (console.mount_console): both are
refused.  Checked failing: with rootfs._mask binding "/dev/null" by path and
mount_console creating and binding "/dev/console" by path (the code before
this commit), test_masked_path_binds_only_the_null_device[shared-dev] saw the
canary change and test_dev_console_symlink_is_not_followed saw the host file
made; [image-dev] was already refused by the /dev node check
(devices._existing_matches).  runc 1.1.5 and crun 1.8.1: run with
OCIRT_SECURITY_PEERS=1 (docs/security.md has the results).
"""

from __future__ import annotations

import json
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
from mount_race import PEERS, bind, peers_enabled, runtime, write_config

ID = "ocirt-test-devsym"
WRITE_MASKED = [
    "sh",
    "-c",
    f"for p in /proc/timer_list /proc/keys; do echo {CANARY_VALUE} > $p; done;"
    " ls -l /proc/timer_list /proc/keys",
]


def masked_null_attack(
    name: str, layout: str, ocirt_bin: str, tmp_root: Path, bundle: BundleFactory, work: Path
) -> tuple[str, str]:
    """(harm, what the runtime said): /dev/null a symlink to the canary sysctl."""
    victim = bundle(*WRITE_MASKED)
    if layout == "image-dev":  # the rootfs's own /dev (no tmpfs): the image's symlink
        dev = victim / "rootfs" / "dev"
        edit = without_dev_tmpfs
    else:  # /dev from a host directory other containers share
        dev = work / "shared-dev"
        dev.mkdir()

        def edit(config: dict[str, Any]) -> None:
            without_dev_tmpfs(config)
            config["mounts"].insert(1, bind(dev, "/dev"))

    (dev / "null").symlink_to(CANARY)
    write_config(victim, edit)
    with canary_sysctl(), runtime(name, ocirt_bin, tmp_root) as rt:
        rt.ids.append(ID)
        result = rt.call("run", "--bundle", str(victim), ID)
        return canary_harm(), (result.stdout + result.stderr).strip()


@pytest.mark.parametrize("layout", ["image-dev", "shared-dev"])
def test_masked_path_binds_only_the_null_device(
    layout: str, ocirt_bin: str, tmp_root: Path, bundle: BundleFactory, tmp_path: Path
) -> None:
    harm, said = masked_null_attack("ocirt", layout, ocirt_bin, tmp_root, bundle, tmp_path)
    assert not harm, f"{harm}; ocirt said: {said}"
    # Refused, and the reason named: the symlink is not followed.
    assert "/dev/null" in said and "symlink" in said, said


def console_attack(
    name: str, ocirt_bin: str, tmp_root: Path, bundle: BundleFactory, work: Path
) -> tuple[str, str]:
    """(harm, what the runtime said): /dev/console a dangling symlink into a host volume."""
    volume = work / "volume"
    volume.mkdir()
    victim = bundle("sh", "-c", "echo on-the-console > /dev/console")

    def edit(config: dict[str, Any]) -> None:
        without_dev_tmpfs(config)
        config["process"]["terminal"] = True
        config["mounts"].append(bind(volume, "/vol"))

    write_config(victim, edit)
    (victim / "rootfs" / "dev" / "console").symlink_to("/vol/made-by-the-runtime")
    with console_socket(work / "console.sock") as console, runtime(name, ocirt_bin, tmp_root) as rt:
        rt.ids.append(ID)
        args = ["--bundle", str(victim), "--console-socket", str(console.path), ID]
        created = rt.call("create", *args)
        said = created.stderr.strip()
        if created.returncode == 0:
            said += rt.call("start", ID).stderr.strip()
        made = sorted(p.name for p in volume.iterdir())
        harm = f"made in the host's {volume}: {made}" if made else ""
        return harm, said


def test_dev_console_symlink_is_not_followed(
    ocirt_bin: str, tmp_root: Path, bundle: BundleFactory, tmp_path: Path
) -> None:
    harm, said = console_attack("ocirt", ocirt_bin, tmp_root, bundle, tmp_path)
    assert not harm, f"{harm}; ocirt said: {said}"
    assert "/dev/console is a symlink" in said, said


@pytest.mark.skipif(not peers_enabled(), reason="peers run with OCIRT_SECURITY_PEERS=1")
@pytest.mark.parametrize("peer", PEERS)
def test_peer_dev_symlinks(
    peer: str, ocirt_bin: str, tmp_root: Path, bundle: BundleFactory, tmp_path: Path
) -> None:
    """Records what runc and crun do (docs/security.md): prints, does not judge."""
    results: dict[str, Any] = {}
    for layout in ("image-dev", "shared-dev"):
        work = tmp_path / layout
        work.mkdir()
        results[layout] = masked_null_attack(
            peer, layout, ocirt_bin, tmp_root, _fresh(bundle, layout), work
        )
    work = tmp_path / "console"
    work.mkdir()
    results["console"] = console_attack(peer, ocirt_bin, tmp_root, _fresh(bundle, "c"), work)
    print(json.dumps({peer: results}, indent=1))


def _fresh(bundle: BundleFactory, name: str) -> BundleFactory:
    """BUNDLE, but each bundle under its own name (one test makes several)."""

    def make(*args: str, patch: Any = None, name_: str = name) -> Path:
        return bundle(*args, patch=patch, name=f"bundle-{name_}")

    return make  # type: ignore[return-value]
