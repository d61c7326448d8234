"""runc#3674: `exec --user UID` re-owns the host's /dev/null.

A runtime that makes the process's stdio usable by a non-root user by
fchown()ing those fds changes whatever file the caller passed: a manager
that starts `exec` with stdin/stdout/stderr on /dev/null (conmon, scripts)
then has the *host's* /dev/null owned by the container's uid.  runc 1.1.5
skips fds that are /dev/null (it compares the device number); crun 1.8.1
does not: on this host a `crun exec --user 1000:1000` with /dev/null as
stdio left the host's /dev/null owned by 1000:1000 (found so, restored to
root:root 0666 by hand).  ocirt never changes the owner of an fd it is given.

The host-visible effect is the owner and mode of the file passed as stdio.
ocirt is tested with the host's /dev/null itself; runc and crun only with a
private node made for the test (mknod c 1 3 in tmp_path), never the host's.

How the test can fail: ocirt has no such code to revert; the crun case is
the control, which asserts crun's known result (the private node re-owned),
so the check itself is shown to see a chown.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
from procattack import call, runtime_argv

USER = "1000:1000"


def owner_and_mode(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def private_null(tmp_path: Path) -> Path:
    node = tmp_path / "null"
    try:
        os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except OSError as e:
        pytest.skip(f"cannot make a device node here: {e}")
    os.chmod(node, 0o666)  # whatever the umask
    return node


def exec_with_stdio(argv: list[str], root: Path, cid: str, stdio: Path) -> None:
    with open(stdio, "r+b", buffering=0) as f:
        result = subprocess.run(
            [*argv, "--root", str(root), "exec", "--user", USER, cid, "true"],
            stdin=f,
            stdout=f,
            stderr=f,
            timeout=60,
            check=False,
        )
    assert result.returncode == 0, f"exec --user {USER} failed: {result}"


def run_sleeper(argv: list[str], root: Path, bundle_dir: Path, cid: str) -> None:
    started = call([*argv, "--root", str(root), "run", "-d", "--bundle", str(bundle_dir), cid])
    assert started.returncode == 0, started.stderr


def test_exec_user_leaves_the_host_dev_null_alone(ocirt_bin, tmp_root, bundle):
    host_null = Path("/dev/null")
    before = owner_and_mode(host_null)
    b = bundle("sleep", "60")
    run_sleeper([ocirt_bin], tmp_root, b, "devnull")
    try:
        exec_with_stdio([ocirt_bin], tmp_root, "devnull", host_null)
    finally:
        call([ocirt_bin, "--root", str(tmp_root), "delete", "-f", "devnull"])
    assert owner_and_mode(host_null) == before


@pytest.mark.parametrize("runtime", ["ocirt", "runc", "crun"])
def test_exec_user_leaves_a_null_device_alone(runtime, ocirt_bin, tmp_root, bundle, tmp_path):
    """The same with a private /dev/null node; crun's result is its known one."""
    argv = runtime_argv(runtime, ocirt_bin)
    node = private_null(tmp_path)
    before = owner_and_mode(node)
    b = bundle("sleep", "60")
    run_sleeper(argv, tmp_root, b, "devnull")
    try:
        exec_with_stdio(argv, tmp_root, "devnull", node)
    finally:
        call([*argv, "--root", str(tmp_root), "delete", "-f", "devnull"])
    after = owner_and_mode(node)
    if runtime == "crun":
        # crun 1.8.1 fchowns its stdio to the exec'd user (the control).
        assert after[:2] == (1000, 1000), f"crun left the node {after}: not 1.8.1's behaviour?"
    else:
        assert after == before, f"{runtime} re-owned the null device: {before} -> {after}"
