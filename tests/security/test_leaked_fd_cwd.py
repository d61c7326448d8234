"""CVE-2024-21626: a cwd that names a runtime fd leaked to a host directory.

The attack: the caller of ``ocirt create`` (or ``exec``) holds a host
directory open on an fd it does not mark close-on-exec (managers leak fds:
the containerd shim leaks 3-6), and the config says ``process.cwd =
/proc/self/fd/N``.  If fd N is still open in the runtime's child when it
enters the cwd, the container's process starts *in the host directory*, with
the whole host filesystem reachable through ``..``.

What the host sees when it is vulnerable: a file the container writes to
``./`` appears in the host directory.  The tests check both: the runtime
refuses (or the process starts elsewhere) and the host directory stays empty.

Checked against the fix: with ``close_fds_above`` in ocirt/process/init.py's
``_prepare_fds`` replaced by the old ``close_range(..., CLOSE_RANGE_CLOEXEC)``
and ``check_cwd_inside_root`` removed, ``test_create_cwd_through_leaked_fd``
fails: the process ran in the host directory and wrote ``escaped`` there.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

LEAKED_FD = 63  # the caller's (any number above 2: pytest itself uses the low ones)


@pytest.fixture
def host_dir(tmp_path: Path) -> Iterator[Path]:
    """A host directory the runtime inherits, open on LEAKED_FD (inheritable)."""
    directory = tmp_path / "host-secret"
    directory.mkdir()
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    os.dup2(fd, LEAKED_FD, inheritable=True)
    os.close(fd)
    try:
        yield directory
    finally:
        os.close(LEAKED_FD)


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        pass_fds=(LEAKED_FD,),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


WRITE_HERE = ["sh", "-c", "echo escaped > ./escaped; pwd"]


def test_create_cwd_through_leaked_fd(ocirt_bin, tmp_root, bundle, host_dir):
    b = bundle(*WRITE_HERE, patch={"process": {"cwd": f"/proc/self/fd/{LEAKED_FD}"}})
    result = _run([ocirt_bin, "--root", str(tmp_root), "run", "-b", str(b), "leak-create"])
    assert list(host_dir.iterdir()) == [], (
        f"the container wrote into the host directory: {result.stdout!r} {result.stderr!r}"
    )
    # The fd is closed before the chdir: the magic link is gone, so the
    # chdir fails (runc 1.1.12+ fails the same way).
    assert result.returncode != 0
    assert "chdir to cwd" in result.stderr or "outside of container" in result.stderr
    assert "Traceback" not in result.stderr


def test_preserved_fd_to_host_dir_is_refused_as_cwd(ocirt_bin, tmp_root, bundle, host_dir):
    """A fd the caller *asked* to pass (--preserve-fds) stays open, so the chdir
    itself succeeds: the getcwd check must then catch the host directory."""
    # fd 3, the first preserved one, opened on the host directory by a shell.
    b = bundle(*WRITE_HERE, patch={"process": {"cwd": "/proc/self/fd/3"}})
    argv = [ocirt_bin, "--root", str(tmp_root), "run", "--preserve-fds", "1", "-b", str(b)]
    result = subprocess.run(
        ["sh", "-c", 'exec 3< "$0"; exec "$@"', str(host_dir), *argv, "leak-preserved"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert list(host_dir.iterdir()) == [], result.stdout + result.stderr
    assert result.returncode != 0
    assert "outside of container mount namespace root" in result.stderr


def test_exec_cwd_through_leaked_fd(ocirt_bin, tmp_root, bundle, host_dir):
    b = bundle("sleep", "30")
    root = ["--root", str(tmp_root)]
    subprocess.run([ocirt_bin, *root, "run", "-d", "-b", str(b), "leak-exec"], check=True)
    cwd = f"/proc/self/fd/{LEAKED_FD}"
    result = _run([ocirt_bin, *root, "exec", "--cwd", cwd, "leak-exec", *WRITE_HERE])
    assert list(host_dir.iterdir()) == [], result.stdout + result.stderr
    assert result.returncode != 0


def test_cwd_only_root_can_enter_works_for_a_user(ocirt_bin, tmp_root, bundle, runc_bin):
    """runc enters the cwd before it drops privileges: /root (0700) as uid 1000.
    The check above must not get in the way of a cwd inside the container."""
    patch = {"process": {"cwd": "/root", "user": {"uid": 1000, "gid": 1000}}}
    outputs = {}
    for name, runtime in (("ocirt", ocirt_bin), ("runc", runc_bin)):
        b = bundle("pwd", patch=patch, name=f"bundle-{name}")
        (b / "rootfs" / "root").mkdir(exist_ok=True)
        os.chmod(b / "rootfs" / "root", 0o700)
        result = subprocess.run(
            [runtime, "--root", str(tmp_root), "run", "-b", str(b), f"cwd-root-{name}"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        outputs[name] = (result.returncode, result.stdout)
    assert outputs["ocirt"] == outputs["runc"] == (0, "/root\n")
