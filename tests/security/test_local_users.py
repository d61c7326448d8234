"""Another local user against root's containers, through --root's files and sockets.

Managers keep --root where other users can reach it (containerd's
/run/containerd/runc/<namespace> is 0711).  A local user who could read a
container's state could read its config's env (secrets); one who could
connect to ocirt's start.sock could start a created container; one who
could pass the checks of `kill`/`exec` could act on root's processes.

The test gives the state root mode 0755, creates a container as root (its
config's env holds a secret), and then, as uid/gid 65534 with no
supplementary groups (setpriv), tries: the runtime's own commands (state,
list, start, kill, exec, delete), opening each file in the container's
directory for reading, and connecting to each socket there.  From the host:
the container is still "created", with the same pid, and none of the
attempts got anywhere.

Checked against the modes: with StateDir.create's ``posix.mkdir(self.path,
0o700)`` made 0o755 and ``_write_tmp``'s 0o600 made 0o644,
``test_another_user_gets_nothing[ocirt]`` fails (that user's ``list``
shows the container: state.json, and the secret in it, are readable) and so
does ``test_state_files_are_private``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from procattack import call, runtime_argv

NOBODY = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]
SECRET = "OCIRT_TEST_SECRET=do-not-leak-4f1c"
# Names a runtime keeps in a container's directory: ocirt's, runc's, crun's.
KNOWN_NAMES = ("state.json", "state.marshal", "start.sock", "exec.fifo", "config.json", "status")

# Run as the other user: what it can reach in DIR (listing, reads, connects).
PROBE = r"""
import json, os, socket, sys
directory, names = sys.argv[1], sys.argv[2].split(",")
got = {}
try:
    names = sorted(set(names) | set(os.listdir(directory)))
    got["listdir"] = "ok"
except OSError as e:
    got["listdir"] = e.strerror
for name in names:
    path = os.path.join(directory, name)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        data = os.read(fd, 1 << 20)
        os.close(fd)
        got["read " + name] = "ok: " + data.decode("latin-1")
    except OSError as e:
        got["read " + name] = e.strerror
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        got["connect " + name] = "ok"
    except OSError as e:
        got["connect " + name] = e.strerror
    finally:
        s.close()
print(json.dumps(got))
"""


@pytest.fixture
def open_root(tmp_root: Path) -> Iterator[Path]:
    """A state root others may enter (0755, under /tmp: tmp_root's parents are 0700)."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    root = Path(tempfile.mkdtemp(prefix="ocirt-test-open-root-", dir="/tmp"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def as_nobody(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return call([*NOBODY, *argv], timeout=60)


def probe_as_nobody(directory: Path) -> dict[str, str]:
    # The venv's interpreter: -I -S, nothing of the caller's environment.
    result = as_nobody(
        [sys.executable, "-I", "-S", "-c", PROBE, str(directory), ",".join(KNOWN_NAMES)]
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def reached(got: dict[str, str]) -> list[str]:
    return [f"{what}: {res[:80]}" for what, res in got.items() if res.startswith("ok")]


@pytest.mark.parametrize("runtime", ["ocirt", "runc", "crun"])
def test_another_user_gets_nothing(runtime, ocirt_bin, open_root, bundle):
    argv = runtime_argv(runtime, ocirt_bin)
    b = bundle("true", patch={"process": {"env": ["PATH=/bin", SECRET]}})
    rt = [*argv, "--root", str(open_root)]
    created = call([*rt, "create", "--bundle", str(b), "guarded"])
    assert created.returncode == 0, created.stderr
    try:
        before = json.loads(call([*rt, "state", "guarded"]).stdout)
        got = probe_as_nobody(open_root / "guarded")
        # The runtime's own commands, as that user (crun's wrapper needs root
        # for its mount namespace: only the files are tried for crun).
        commands = {}
        if runtime != "crun":
            for args in (
                ["state", "guarded"],
                ["start", "guarded"],
                ["kill", "guarded", "KILL"],
                ["exec", "guarded", "true"],
                ["delete", "-f", "guarded"],
            ):
                done = as_nobody([*rt, *args])
                commands[" ".join(args[:1])] = (done.returncode, done.stdout + done.stderr)
            listed = as_nobody([*rt, "list", "-q"])
            assert "guarded" not in listed.stdout
        after = json.loads(call([*rt, "state", "guarded"]).stdout)
    finally:
        call([*rt, "delete", "-f", "guarded"])
    assert reached(got) == [], f"{runtime}: another user reached {reached(got)}"
    assert not any(SECRET in res for res in got.values())
    for name, (code, output) in commands.items():
        assert code != 0, f"{runtime} {name} as another user succeeded: {output}"
        assert SECRET not in output
    assert (after["status"], after["pid"]) == ("created", before["pid"]), after


def test_state_files_are_private(ocirt_bin, open_root, bundle):
    """The modes themselves: directory 0700, files 0600, whatever the umask."""
    b = bundle("true", patch={"process": {"env": ["PATH=/bin", SECRET]}})
    rt = [ocirt_bin, "--root", str(open_root)]
    old_umask = os.umask(0)  # a caller with a lax umask: the modes must not depend on it
    try:
        created = call([*rt, "create", "--bundle", str(b), "private"])
    finally:
        os.umask(old_umask)
    assert created.returncode == 0, created.stderr
    try:
        directory = open_root / "private"
        assert directory.stat().st_mode & 0o077 == 0, oct(directory.stat().st_mode)
        for entry in directory.iterdir():
            mode = entry.lstat().st_mode
            if entry.is_socket():
                continue  # reachable only through the directory
            assert mode & 0o077 == 0, f"{entry.name}: {oct(mode)}"
    finally:
        call([*rt, "delete", "-f", "private"])
