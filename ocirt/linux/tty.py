"""The foreground terminal: ocirt's own tty <-> the container's pty master.

When ``run`` or ``exec`` keeps the container process in the foreground with a
terminal and nobody else takes the pty master (no --console-socket), ocirt
does what runc's tty.go does:

* our tty goes to raw mode, so that every byte (Ctrl-C as 0x03, Ctrl-D, the
  arrow keys) reaches the container's line discipline, which turns 0x03 into
  SIGINT for *its* foreground process group;
* SIGWINCH: our window size is copied onto the pty (``stty size`` inside);
* two copy threads, stdin -> master and master -> stdout;
* at the end the output still buffered in the pty is drained, the threads
  stop and our terminal is restored, also when the process was killed.

Threads, not one select loop in the caller, so that ``run`` keeps its own
wait loop (it is a subreaper and reaps orphans) and ``exec`` its own.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import signal
import struct
import termios
import threading
import tty
from types import FrameType
from typing import Any

CHUNK = 64 * 1024


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except InterruptedError:
            continue
        except BlockingIOError:
            select.select([], [fd], [])
            continue
        view = view[written:]


def copy_window_size(src: int, dst: int) -> None:
    """TIOCGWINSZ on SRC, TIOCSWINSZ on DST; no-op if SRC is not a tty."""
    try:
        size = fcntl.ioctl(src, termios.TIOCGWINSZ, struct.pack("HHHH", 0, 0, 0, 0))
    except OSError:
        return
    with contextlib.suppress(OSError):
        fcntl.ioctl(dst, termios.TIOCSWINSZ, size)


class TerminalProxy:
    """Copy between (stdin, stdout) and a pty master until ``stop()``.

    Use as a context manager around the wait for the container process.
    The master fd is owned (closed) by the proxy.
    """

    def __init__(self, master: int, stdin: int = 0, stdout: int = 1) -> None:
        self.master = master
        self.stdin = stdin
        self.stdout = stdout
        self._saved_termios: list[Any] | None = None
        self._old_winch: Any = None
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._threads: list[threading.Thread] = []

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> None:
        if os.isatty(self.stdin):
            self._saved_termios = termios.tcgetattr(self.stdin)
            tty.setraw(self.stdin, termios.TCSANOW)
        self.resize()
        self._old_winch = signal.signal(signal.SIGWINCH, self._on_winch)
        self._spawn(self._copy_in, "tty-in")
        self._spawn(self._copy_out, "tty-out")

    def stop(self) -> None:
        """Drain the pty's output, stop the threads, restore our terminal."""
        write_all(self._wake_w, b"x")
        for thread in self._threads:
            thread.join(timeout=5)
        if self._old_winch is not None:
            signal.signal(signal.SIGWINCH, self._old_winch)
            self._old_winch = None
        self.restore()
        for fd in (self.master, self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def restore(self) -> None:
        if self._saved_termios is not None:
            with contextlib.suppress(termios.error):
                termios.tcsetattr(self.stdin, termios.TCSADRAIN, self._saved_termios)
            self._saved_termios = None

    def __enter__(self) -> TerminalProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def resize(self) -> None:
        # stdout may be the tty while stdin is a pipe (`echo x | ocirt exec -t`).
        source = self.stdin if os.isatty(self.stdin) else self.stdout
        copy_window_size(source, self.master)

    def _on_winch(self, _signum: int, _frame: FrameType | None) -> None:
        self.resize()

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    # -- copy loops -----------------------------------------------------------
    def _wait_readable(self, fd: int) -> bool:
        """True when FD is readable, False when stop() was called."""
        while True:
            try:
                ready, _, _ = select.select([fd, self._wake_r], [], [])
            except InterruptedError:
                continue
            return fd in ready

    def _copy_in(self) -> None:
        while self._wait_readable(self.stdin):
            try:
                data = os.read(self.stdin, CHUNK)
            except InterruptedError:
                continue
            except OSError:
                return
            if not data:
                return  # stdin EOF: the process keeps running, as with runc
            try:
                write_all(self.master, data)
            except OSError:
                return

    def _copy_out(self) -> None:
        while self._wait_readable(self.master):
            if not self._pump_once():
                return
        self._drain()

    def _pump_once(self) -> bool:
        """One read master -> stdout; False once the pty is gone (EIO)."""
        try:
            data = os.read(self.master, CHUNK)
        except InterruptedError:
            return True
        except OSError:
            return False  # EIO: every slave fd is closed
        if not data:
            return False
        with contextlib.suppress(OSError):
            write_all(self.stdout, data)
        return True

    def _drain(self) -> None:
        """What the process wrote just before it exited is still in the pty."""
        flags = fcntl.fcntl(self.master, fcntl.F_GETFL)
        fcntl.fcntl(self.master, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        while True:
            try:
                data = os.read(self.master, CHUNK)
            except OSError as e:
                if e.errno == errno.EINTR:
                    continue
                return  # EAGAIN: empty; EIO: closed
            if not data:
                return
            with contextlib.suppress(OSError):
                write_all(self.stdout, data)
