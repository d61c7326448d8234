"""Pay cgroup v1's RCU grace period while create/exec import and prepare.

Moving a process into a v1 cgroup (a write to ``cgroup.procs``) takes the
kernel's global ``cgroup_threadgroup_rwsem`` for writing.  When no writer has
come by for a while, that first waits for an RCU grace period
(``rcu_sync_enter``: 6-15 ms on the benchmark host), and ``create`` writes
the init's pid right after clone(), ``exec`` its child's: the grace period
sat on their critical paths (docs/benchmarks.md).  A writer that comes within
about one grace period after the previous one left does not wait (rcu_sync
is still in GP_PASSED/GP_EXIT/GP_REPLAY, not GP_IDLE).

So the CLI starts ``start()`` first thing: a thread moves this process into
the v1 cgroup it is already in (a no-op move: same cgroup, same process),
which starts the grace period while the main thread imports and reads the
config, and repeats that every few ms, so rcu_sync does not go idle, until
``stop()`` (called once the real write is done) or a deadline.  The real
write then finds the lock warm (measured: 6-7 ms -> ~0.1 ms, see
docs/benchmarks.md).

Nothing depends on it: on cgroup v2 (clone3 with CLONE_INTO_CGROUP takes
the lock's read side only), without root, or when the file cannot be
opened or written, it does nothing.  C modules only: it runs before the
heavy imports it overlaps.
"""

import _thread
import posix
import time

INTERVAL = 0.003  # s, between no-op moves: well under one grace period
LIFETIME = 0.25  # s: the real write comes within ~50 ms of start(); never run longer

_state = {"started": False, "stop": False}


def start() -> None:
    """Start warming up (once per process); returns once the first move is under way."""
    if _state["started"]:
        return
    _state["started"] = True
    if posix.geteuid() != 0:
        return
    path = own_v1_procs()
    if path is None:
        return
    # Wait until the thread runs: a new thread needs the GIL, which the main
    # thread, busy importing, would otherwise hand over only after ms (seen:
    # 1-10 ms), and the grace period would start that much later.
    running = _thread.allocate_lock()
    running.acquire()
    try:
        _thread.start_new_thread(_run, (path, running))
    except RuntimeError:
        return
    running.acquire()  # released by the thread right before its first move


def stop() -> None:
    """The real write is done: let the thread end."""
    _state["stop"] = True


def own_v1_procs() -> str | None:
    """cgroup.procs of our own cgroup in one v1 hierarchy; None without one.

    Not a named hierarchy (name=systemd: the init system's), and only where
    the hierarchy is mounted in the usual place, /sys/fs/cgroup/<controllers>.
    """
    try:
        fd = posix.open("/proc/self/cgroup", posix.O_RDONLY | posix.O_CLOEXEC)
        try:
            text = posix.read(fd, 65536).decode(errors="replace")
        finally:
            posix.close(fd)
    except OSError:
        return None
    for line in text.splitlines():
        _hierarchy, controllers, path = line.split(":", 2)
        if controllers and not controllers.startswith("name="):
            return f"/sys/fs/cgroup/{controllers}{path.rstrip('/')}/cgroup.procs"
    return None


def _run(path: str, running: _thread.LockType) -> None:
    deadline = time.monotonic() + LIFETIME
    try:
        fd = posix.open(path, posix.O_WRONLY | posix.O_CLOEXEC)
    except OSError:
        running.release()
        return
    # Straight from here into write(): it releases the GIL, so the main thread
    # goes on only once the first move is in the kernel.
    running.release()
    try:
        while True:
            posix.write(fd, b"0")  # pid 0: this process, into the cgroup it is in
            if _state["stop"] or time.monotonic() >= deadline:
                break
            time.sleep(INTERVAL)
    except OSError:
        pass
    finally:
        posix.close(fd)
