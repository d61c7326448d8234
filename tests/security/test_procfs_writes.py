"""CVE-2025-52881: the runtime's writes to /proc redirected by a mount.

Inside the container the runtime writes procfs files: linux.sysctl under
/proc/sys, oomScoreAdj to /proc/self/oom_score_adj, the LSM label to
/proc/thread-self/attr/.../exec (also for `exec`).  Those files are the
container's /proc, and a mount can cover any of them: a mount destination
that goes through a symlink of the image (/data -> /proc/self), or a
volume another container swaps, puts a bind over the file, and the runtime's
write lands in whatever was bound there: a host file, or another procfs file
(runc's advisory: the AppArmor label written into
/proc/sys/kernel/core_pattern, and the container left unconfined).

Host-visible harm, as the tests check it: a host file that a config binds
into the container, innocently, changed by the runtime's own write of the
oomScoreAdj or sysctl value.

ocirt writes every procfs/sysfs file through ocirt.linux.procfs.open_checked
(/proc checked to be a procfs root by fstatfs and inode, the file opened
beneath it with openat2(RESOLVE_NO_XDEV): a mount on the way is refused).
Checked failing: with procfs.write_text and sysctl._write_one opening the
path with a plain open() (the code before this commit), the end-to-end tests
saw the host file hold "777" (oomScoreAdj) and "1" (sysctl), and the
in-process tests saw the bound file written.  runc 1.1.5 and crun 1.8.1:
OCIRT_SECURITY_PEERS=1 (docs/security.md has the results).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, BundleFactory
from mount_race import PEERS, bind, peers_enabled, runtime, write_config

ID = "ocirt-test-procw"
SENTINEL = "untouched\n"
VENV_PYTHON = REPO / ".venv" / "bin" / "python"


def redirected_write(
    name: str,
    kind: str,
    route: str,
    ocirt_bin: str,
    tmp_root: Path,
    bundle: BundleFactory,
    work: Path,
) -> tuple[str, str]:
    """(harm, what the runtime said): a host file bound over the procfs file the
    runtime writes (KIND), by ROUTE: "image-symlink" (the image's /data is a
    symlink into /proc, the config binds the file at /data/...), or "hook" (a
    createContainer hook, in the container's mount namespace, binds it: what a
    racing container that got a mount there would have done)."""
    host_file = work / "host-file"
    host_file.write_text(SENTINEL)
    victim = bundle("sh", "-c", "cat /proc/self/oom_score_adj /proc/sys/net/ipv4/ip_forward")
    proc_dir, file_name, value = {
        "oom": ("/proc/self", "oom_score_adj", "777"),
        "sysctl": ("/proc/sys/net/ipv4", "ip_forward", "1"),
    }[kind]

    def edit(config: dict[str, Any]) -> None:
        if kind == "oom":
            config["process"]["oomScoreAdj"] = int(value)
        else:
            config["linux"]["sysctl"] = {"net.ipv4.ip_forward": value}
        if route == "image-symlink":
            config["mounts"].append(bind(host_file, f"/data/{file_name}"))
            return
        # The init is pid 1 of the container's /proc, mounted under the rootfs by now.
        in_proc = proc_dir.replace("/proc/self", "/proc/1")
        target = f"{victim}/rootfs{in_proc}/{file_name}"
        config["hooks"] = {
            "createContainer": [
                {"path": "/bin/sh", "args": ["sh", "-c", f"mount --bind {host_file} {target}"]}
            ]
        }

    write_config(victim, edit)
    (victim / "rootfs" / "data").symlink_to(proc_dir)
    with runtime(name, ocirt_bin, tmp_root) as rt:
        rt.ids.append(ID)
        result = rt.call("run", "--bundle", str(victim), ID)
    written = host_file.read_text()
    harm = f"the host's {host_file} now holds {written!r}" if written != SENTINEL else ""
    return harm, (result.stdout + result.stderr).strip()


@pytest.mark.parametrize("route", ["image-symlink", "hook"])
@pytest.mark.parametrize("kind", ["oom", "sysctl"])
def test_write_through_a_bind_over_procfs_is_refused(
    kind: str, route: str, ocirt_bin: str, tmp_root: Path, bundle: BundleFactory, tmp_path: Path
) -> None:
    harm, said = redirected_write("ocirt", kind, route, ocirt_bin, tmp_root, bundle, tmp_path)
    assert not harm, f"{harm}; ocirt said: {said}"
    if route == "image-symlink":
        # Stopped earlier, at the mount: its destination resolves inside /proc
        # (runc's checkProcMount); the checked write is the second line.
        assert "inside /proc" in said or "covered by a mount" in said, said
    else:
        assert "covered by a mount" in said, said


# The checked writers themselves, in a private mount and network namespace of a
# child process: a tmp file bound over the procfs file each one writes.
CHECKED_WRITERS = r"""
import os, sys
from ocirt.errors import OcirtError
from ocirt.linux import lsm, sysctl, syscalls as sc, user

decoy, which = sys.argv[1], sys.argv[2]
pid = os.getpid()
target, call = {
    "oom": (f"/proc/{pid}/oom_score_adj", lambda: user.set_oom_score_adj(5)),
    "attr": (f"/proc/{pid}/task/{pid}/attr/exec",
             lambda: lsm._write_attr(("/proc/thread-self/attr/exec",), "label", "f")),
    "sysctl": ("/proc/sys/net/ipv4/ip_forward",
               lambda: sysctl.apply({"net.ipv4.ip_forward": "1"})),
    "root": ("/proc", lambda: user.set_oom_score_adj(5)),
}[which]
sc.mount(None, "/", None, sc.MS_PRIVATE | sc.MS_REC)
if which == "root":  # /proc itself a bind of a procfs directory, not its root
    sc.mount("/proc/sys/net", "/proc", None, sc.MS_BIND)
else:
    sc.mount(decoy, target, None, sc.MS_BIND)
try:
    call()
except (OSError, OcirtError) as e:
    print("refused:", e)
else:
    print("written")
"""


@pytest.mark.parametrize("which", ["oom", "attr", "sysctl", "root"])
def test_checked_writers_refuse_a_covered_file(which: str, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (mounts)")
    decoy = tmp_path / "decoy"
    decoy.write_text(SENTINEL)
    out = subprocess.run(
        ["unshare", "-m", "-n", str(VENV_PYTHON if VENV_PYTHON.exists() else sys.executable),
         "-c", CHECKED_WRITERS, str(decoy), which],
        capture_output=True, text=True, timeout=60, check=False, cwd=REPO,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert decoy.read_text() == SENTINEL, f"the decoy was written: {out.stdout}"
    expected = "not the root of a proc" if which == "root" else "covered by a mount"
    assert out.stdout.startswith("refused:") and expected in out.stdout, out.stdout


@pytest.mark.skipif(not peers_enabled(), reason="peers run with OCIRT_SECURITY_PEERS=1")
@pytest.mark.parametrize("peer", PEERS)
def test_peer_procfs_writes(
    peer: str, ocirt_bin: str, tmp_root: Path, bundle: BundleFactory, tmp_path: Path
) -> None:
    """Records what runc and crun do (docs/security.md): prints, does not judge."""
    results = {}
    for kind in ("oom", "sysctl"):
        for route in ("image-symlink", "hook"):
            where = tmp_path / f"{kind}-{route}"
            where.mkdir()
            b = lambda *a, patch=None, n=f"b-{where.name}": bundle(*a, patch=patch, name=n)  # noqa: E731
            results[f"{kind} {route}"] = redirected_write(
                peer, kind, route, ocirt_bin, tmp_root, b, where
            )
    print(json.dumps({peer: results}, indent=1))
