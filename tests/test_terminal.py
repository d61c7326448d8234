"""Terminals, side by side with runc, with real ptys (no mocks).

* foreground (`run` with terminal: true, `exec -t`): a pty from
  ``pty.fork()`` is ocirt's terminal; we type into it, resize it and press
  Ctrl-C, and check what the container's shell sees, the exit code, and
  that our terminal's settings are restored afterwards;
* --console-socket (create with terminal: true, `exec -t -d`): a small
  unix-socket server receives the pty master and talks through it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import select
import signal
import socket
import struct
import subprocess
import tempfile
import termios
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REFERENCE = Path("/work/shared/reference/configs")
TIMEOUT = 30


# -- helpers ---------------------------------------------------------------------
class PtySession:
    """ARGV running with a fresh pty as its controlling terminal."""

    def __init__(self, argv: list[str], rows: int = 24, cols: int = 80) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: ARGV on the pty
            try:
                os.execvp(argv[0], argv)
            finally:
                os._exit(127)
        self.resize(rows, cols)
        self.output = b""
        self.code: int | None = None

    def resize(self, rows: int, cols: int) -> None:
        # The kernel sends SIGWINCH to the pty's foreground process group: ocirt.
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    def expect(self, token: bytes, timeout: float = TIMEOUT) -> bytes:
        """Read until TOKEN appears in what was read since the last expect."""
        start = len(self.output)
        deadline = time.monotonic() + timeout
        while token not in self.output[start:]:
            left = deadline - time.monotonic()
            assert left > 0, f"timed out waiting for {token!r}; got {self.output[start:]!r}"
            ready, _, _ = select.select([self.fd], [], [], min(left, 0.2))
            if ready:
                try:
                    data = os.read(self.fd, 4096)
                except OSError:
                    data = b""
                assert data, f"EOF waiting for {token!r}; got {self.output[start:]!r}"
                self.output += data
        return self.output[start:]

    def wait(self, timeout: float = TIMEOUT) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with_output = select.select([self.fd], [], [], 0.05)[0]
            if with_output:
                with contextlib.suppress(OSError):
                    self.output += os.read(self.fd, 4096)
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.code = os.waitstatus_to_exitcode(status)
                return self.code
        raise AssertionError(f"still running; output {self.output[-500:]!r}")

    def close(self) -> None:
        if self.code is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        os.close(self.fd)


class ConsoleReceiver:
    """What conmon / the containerd shim do with --console-socket: take the master."""

    def __init__(self, directory: Path) -> None:
        self.path = str(directory / f"console-{uuid.uuid4().hex[:8]}.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(1)
        self.master: int | None = None
        self.name = b""
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            self.name, fds, _flags, _addr = socket.recv_fds(conn, 1024, 1)
            self.master = fds[0]

    def wait_master(self, timeout: float = TIMEOUT) -> int:
        self._thread.join(timeout)
        assert self.master is not None, "no pty master was received"
        return self.master

    def read_until(self, token: bytes, timeout: float = TIMEOUT) -> bytes:
        master = self.wait_master(timeout)
        data = b""
        deadline = time.monotonic() + timeout
        while token not in data and time.monotonic() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the slave side is closed
                    break
                if not chunk:
                    break
                data += chunk
        return data

    def close(self) -> None:
        self.sock.close()
        if self.master is not None:
            os.close(self.master)
        if os.path.exists(self.path):
            os.unlink(self.path)


def _runtime_cmd(binary: str, root: Path, *args: str) -> list[str]:
    return [binary, "--root", str(root), *args]


def _quiet(cmd: list[str]) -> tuple[int, str]:
    """Run a runtime command whose container keeps our stdio: no pipes to wait on."""
    with tempfile.TemporaryFile("w+") as err:
        code = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, timeout=TIMEOUT
        ).returncode
        err.seek(0)
        return code, err.read()


@pytest.fixture
def runtimes(ocirt_bin: str, runc_bin: str) -> list[tuple[str, str]]:
    if os.geteuid() != 0:
        pytest.skip("running containers needs root")
    return [("ocirt", ocirt_bin), ("runc", runc_bin)]


@pytest.fixture
def running(runtimes, bundle, tmp_root) -> Iterator[list[tuple[str, list[str], str]]]:
    """A `sleep 1000` container per runtime: (name, base command, id)."""
    b = bundle("sleep", "1000")
    made = []
    try:
        for name, binary in runtimes:
            cid = f"tty-{name}-{uuid.uuid4().hex[:6]}"
            code, err = _quiet(_runtime_cmd(binary, tmp_root, "run", "-d", "-b", str(b), cid))
            assert code == 0, f"{name}: {err}"
            made.append((name, _runtime_cmd(binary, tmp_root), cid))
        yield made
    finally:
        for _name, base, cid in made:
            subprocess.run([*base, "delete", "-f", cid], capture_output=True, timeout=TIMEOUT)


def _interactive_session(session: PtySession) -> None:
    """Type, resize, Ctrl-C, exit 3: the same script for run and exec."""
    session.send(b"echo hello-$((40+2))\r")
    session.expect(b"hello-42")
    session.resize(33, 99)
    time.sleep(0.3)  # SIGWINCH is asynchronous
    session.send(b"stty size\r")
    session.expect(b"33 99")
    session.send(b"sleep 100\r")
    time.sleep(0.5)
    session.send(b"\x03")  # raw mode: 0x03 reaches the container's line discipline
    session.send(b"echo after=$?\r")
    session.expect(b"after=130")  # the shell's foreground `sleep` died of SIGINT
    session.send(b"exit 3\r")


def _with_stty_check(argv: list[str], tmp: Path, name: str) -> tuple[list[str], Path, Path]:
    before, after = tmp / f"{name}.before", tmp / f"{name}.after"
    script = f'stty -g >{before}; "$@"; code=$?; stty -g >{after}; exit $code'
    return ["sh", "-c", script, "sh", *argv], before, after


# -- foreground ------------------------------------------------------------------
def test_exec_tty_foreground(running, tmp_path):
    for name, base, cid in running:
        argv, before, after = _with_stty_check([*base, "exec", "-t", cid, "sh"], tmp_path, name)
        session = PtySession(argv)
        try:
            session.expect(b"# ")
            _interactive_session(session)
            assert session.wait() == 3, (name, session.output[-300:])
        finally:
            session.close()
        assert before.read_text() == after.read_text(), f"{name}: terminal not restored"


def test_exec_tty_inside_is_a_pty_of_the_container(running):
    for name, base, cid in running:
        session = PtySession([*base, "exec", "-t", cid, "sh", "-c", "tty; ls -l /proc/self/fd/0"])
        try:
            out = session.expect(b"/dev/pts/")
            assert session.wait() == 0, name
            assert b"/dev/pts/" in out
        finally:
            session.close()


def test_run_tty_foreground(runtimes, bundle, tmp_root, tmp_path):
    b = bundle("sh", patch={"process": {"terminal": True}})
    for name, binary in runtimes:
        cid = f"run-tty-{name}-{uuid.uuid4().hex[:6]}"
        cmd = _runtime_cmd(binary, tmp_root, "run", "-b", str(b), cid)
        argv, before, after = _with_stty_check(cmd, tmp_path, name)
        session = PtySession(argv)
        try:
            session.expect(b"# ")
            _interactive_session(session)
            assert session.wait() == 3, (name, session.output[-300:])
        finally:
            session.close()
        assert before.read_text() == after.read_text(), f"{name}: terminal not restored"
        state = subprocess.run(
            _runtime_cmd(binary, tmp_root, "state", cid), capture_output=True, timeout=TIMEOUT
        )
        assert state.returncode != 0, f"{name}: the container was not deleted"
    assert not list(Path(tempfile.gettempdir()).glob("ocirt-console-*/console.sock"))


def test_run_tty_output_and_exit_code(runtimes, bundle, tmp_root):
    """The last output before exit is drained from the pty, then the code is ours."""
    b = bundle("sh", "-c", "echo last-words; exit 5", patch={"process": {"terminal": True}})
    for name, binary in runtimes:
        cid = f"run-exit-{name}-{uuid.uuid4().hex[:6]}"
        session = PtySession(_runtime_cmd(binary, tmp_root, "run", "-b", str(b), cid))
        try:
            assert session.wait() == 5, (name, session.output)
            assert b"last-words" in session.output, name
        finally:
            session.close()


# -- console socket ---------------------------------------------------------------
def test_create_with_console_socket(runtimes, bundle, tmp_root, tmp_path):
    b = bundle(
        "sh", "-c", "tty; stty size; echo create-tty-ok",
        patch={"process": {"terminal": True, "consoleSize": {"height": 40, "width": 120}}},
    )  # fmt: skip
    for name, binary in runtimes:
        cid = f"cs-{name}-{uuid.uuid4().hex[:6]}"
        receiver = ConsoleReceiver(tmp_path)
        try:
            create = ["create", "--console-socket", receiver.path, "-b", str(b), cid]
            code, err = _quiet(_runtime_cmd(binary, tmp_root, *create))
            assert code == 0, f"{name}: {err}"
            receiver.wait_master()
            assert receiver.name.startswith(b"/dev/pts/") or name == "runc", receiver.name
            code, err = _quiet(_runtime_cmd(binary, tmp_root, "start", cid))
            assert code == 0, f"{name}: {err}"
            out = receiver.read_until(b"create-tty-ok")
            assert b"/dev/pts/0" in out, (name, out)
            assert b"40 120" in out, (name, out)
            assert b"create-tty-ok" in out, (name, out)
        finally:
            receiver.close()
            subprocess.run(_runtime_cmd(binary, tmp_root, "delete", "-f", cid), timeout=TIMEOUT)


def test_exec_process_file_tty_with_console_socket(running, tmp_path):
    """containerd's exec: `exec --process P --console-socket S --detach --pid-file F`."""
    process_file = REFERENCE / "containerd-exec-tty-process.json"
    for name, base, cid in running:
        receiver = ConsoleReceiver(tmp_path)
        pid_file = tmp_path / f"{name}.pid"
        try:
            code, err = _quiet(
                [*base, "exec", "--process", str(process_file), "--console-socket",
                 receiver.path, "--detach", "--pid-file", str(pid_file), cid]
            )  # fmt: skip
            assert code == 0, f"{name}: {err}"
            assert pid_file.read_text().isdigit()
            out = receiver.read_until(b"exec-tty-ok")
            assert b"/dev/pts/" in out and b"exec-tty-ok" in out, (name, out)
        finally:
            receiver.close()


def test_exec_t_detach_console_size(running, tmp_path):
    """-t -d --console-socket with consoleSize from a -p file: applied before the exec."""
    process: dict[str, Any] = json.loads(
        (REFERENCE / "containerd-exec-tty-process.json").read_text()
    )
    process["args"] = ["sh", "-c", "stty size; echo size-ok"]
    process["consoleSize"] = {"height": 25, "width": 81}
    path = tmp_path / "tty-process.json"
    path.write_text(json.dumps(process))
    for name, base, cid in running:
        receiver = ConsoleReceiver(tmp_path)
        try:
            cmd = [*base, "exec", "-t", "-d", "--console-socket", receiver.path, "-p", str(path)]
            code, err = _quiet([*cmd, cid])
            assert code == 0, f"{name}: {err}"
            out = receiver.read_until(b"size-ok")
            assert b"25 81" in out, (name, out)
        finally:
            receiver.close()
