"""A minimal seccomp agent for the SCMP_ACT_NOTIFY tests.

usage: seccomp_listener.py SOCKET STATE_FILE ANSWER

Listens on the unix socket SOCKET (the profile's ``listenerPath``), takes one
connection from the runtime, writes the runtime-spec ContainerProcessState
it got to STATE_FILE (JSON, plus "_fd_received": true when a listener fd came
with it), then answers every notified syscall with ANSWER until the
container's filter goes away:

* ``success``: the syscall "succeeds" (returns 0) without running;
* ``errno:N``: it fails with errno N;
* ``continue``: the kernel runs it as if there were no rule.

The structs are <linux/seccomp.h>'s, packed by hand: nothing to build.
"""

from __future__ import annotations

import array
import fcntl
import json
import os
import select
import socket
import struct
import sys

# _IOWR('!', 0, struct seccomp_notif) / _IOWR('!', 1, struct seccomp_notif_resp)
NOTIF_RECV = 0xC0502100
NOTIF_SEND = 0xC0182101
NOTIF_SIZE = 80  # u64 id, u32 pid, u32 flags, struct seccomp_data (64)
FLAG_CONTINUE = 1  # SECCOMP_USER_NOTIF_FLAG_CONTINUE


def receive_state(listener: socket.socket) -> tuple[dict, int]:
    conn, _ = listener.accept()
    with conn:
        fds = array.array("i")
        data, ancdata, _, _ = conn.recvmsg(1 << 20, socket.CMSG_SPACE(4 * fds.itemsize))
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
    if len(fds) != 1:
        raise SystemExit(f"expected one fd, got {len(fds)}")
    return json.loads(data), fds[0]


def answer(answer_spec: str) -> tuple[int, int, int]:
    """(val, error, flags) for the response."""
    if answer_spec == "success":
        return 0, 0, 0
    if answer_spec == "continue":
        return 0, 0, FLAG_CONTINUE
    if answer_spec.startswith("errno:"):
        return 0, -int(answer_spec.split(":", 1)[1]), 0
    raise SystemExit(f"unknown answer {answer_spec!r}")


def serve(fd: int, answer_spec: str, log: list[dict]) -> None:
    val, error, flags = answer(answer_spec)
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while True:
        events = poller.poll(60_000)
        if not events or any(ev & (select.POLLHUP | select.POLLERR) for _, ev in events):
            return  # the container's tasks are all gone (or the test gave up)
        buf = bytearray(NOTIF_SIZE)
        try:
            fcntl.ioctl(fd, NOTIF_RECV, buf, True)
        except OSError:
            return  # ENOENT/EBADF...: the filter's last user is gone
        notif_id, pid, _flags, nr = struct.unpack_from("=QIIi", buf)
        log.append({"pid": pid, "nr": nr})
        resp = struct.pack("=QqiI", notif_id, val, error, flags)
        try:
            fcntl.ioctl(fd, NOTIF_SEND, bytearray(resp), True)
        except OSError:
            continue  # the task died or was interrupted meanwhile


def main() -> None:
    sock_path, state_file, answer_spec = sys.argv[1:4]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(sock_path)
        listener.listen(1)
        print("ready", flush=True)
        state, fd = receive_state(listener)
    state["_fd_received"] = True
    log: list[dict] = []
    with open(state_file + ".tmp", "w") as f:
        json.dump(state, f)
    os.rename(state_file + ".tmp", state_file)
    serve(fd, answer_spec, log)
    with open(state_file + ".notifications", "w") as f:
        json.dump(log, f)


if __name__ == "__main__":
    main()
