"""A private containerd 1.6 with its CRI plugin, driven as kubelet drives it.

Used by tests/test_cri.py and benchmarks/pod_start.py.  ``running_cri(work, handlers)``
starts one containerd and yields a ``Cri`` with the CRI v1 stubs
(``container-runtime-interface-api``'s ``cri_api.v1``) connected to it.

Isolation (nothing reaches the host but cgroups, which are ours by name):

* containerd runs in its own mount, PID and network namespaces (``unshare -m -p
  -n -f --kill-child``) under a small reaper as PID 1 (compiled here: containerd
  reaps no orphans, and the shims are orphans): stopping it takes every shim, pod
  and container with it;
* in that mount namespace tmpfs covers ``/run`` (the shim's runtime roots
  ``/run/containerd/runc/k8s.io``, shim sockets, the pods' netns pins under
  ``/run/netns``) and ``/var/lib`` (the CNI result cache ``/var/lib/cni``), so they
  go with it;
* the CNI bridge ``ocirt-cni0`` (10.88.77.0/24, Debian's containernetworking-plugins)
  is made in containerd's own network namespace, which dies with it; the pods'
  netns are made by containerd; nothing is routed off the machine;
* root, state, sockets, CNI config, the host-local IPAM store and pod logs live in
  the work directory; images (a busybox image and a pause image, a static C
  program compiled here) are built offline with umoci and imported with ``ctr``;
* pods get kubelet-style cgroup parents (``/ocirt-test-XXXX/kubepods/besteffort/
  pod<uid>``, cgroupfs driver, as kubelet with ``--cgroup-root``) under one unique
  top directory that ``running_cri`` removes.

The shim runs both handlers as kubelet's RuntimeClass would: ``runc`` (Debian's) and
``ocirt``, both ``io.containerd.runc.v2`` with ``BinaryName``.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from test_managers import _remove_cgroups, _unmount_below  # the same cleanup as theirs

REPO = Path(__file__).resolve().parents[1]
MKROOTFS = REPO / "tools" / "mkrootfs.sh"
CNI_BIN = Path("/usr/lib/cni")
CGROUP_ROOT = Path("/sys/fs/cgroup")
IMAGE_REPO = "localhost/ocirt-test"
PAUSE_IMAGE = f"{IMAGE_REPO}:pause"
BUSYBOX_IMAGE = f"{IMAGE_REPO}:busybox"
BRIDGE = "ocirt-cni0"
SUBNET_PREFIX = "10.88.77."
STREAM_PORT = 10010
TIMEOUT = 120
NAMESPACE = "k8s.io"
TOOLS = ["containerd", "ctr", "containerd-shim-runc-v2", "unshare", "umoci", "tar", "ip"]
CNI_PLUGINS = ["bridge", "host-local", "loopback"]

# The pause container: waits for signals, reaps zombies (it is the pod's PID 1
# when the pod shares one PID namespace), exits 0 on SIGTERM/SIGINT.
PAUSE_C = r"""
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
static void stop(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, 0, WNOHANG) > 0) {} }
int main(void) {
    signal(SIGINT, stop);
    signal(SIGTERM, stop);
    signal(SIGCHLD, reap);
    for (;;) pause();
}
"""


# PID 1 of containerd's namespaces: runs containerd, passes it SIGTERM/SIGINT,
# reaps every orphan (the shims are re-parented here: containerd, not an init,
# would leave them zombies) and exits with containerd, which kills the rest.
REAPER_C = r"""
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
static volatile pid_t daemon_pid;
static void forward(int sig) { if (daemon_pid > 0) kill(daemon_pid, sig); }
int main(int argc, char **argv) {
    if (argc < 2) return 2;
    signal(SIGTERM, forward);
    signal(SIGINT, forward);
    daemon_pid = fork();
    if (daemon_pid < 0) return 1;
    if (daemon_pid == 0) { execvp(argv[1], argv + 1); _exit(127); }
    for (;;) {
        int status;
        pid_t pid = wait(&status);
        if (pid == daemon_pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (pid < 0 && errno == ECHILD) return 1;
    }
}
"""


def missing_prerequisites() -> str | None:
    """Why the CRI tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "the CRI tests need root"
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return f"not installed: {', '.join(missing)}"
    version = _containerd_version()
    if not version.startswith("1."):
        return f"containerd {version or '?'}: the config written here is 1.x's (version = 2)"
    plugins = [p for p in CNI_PLUGINS if not os.access(CNI_BIN / p, os.X_OK)]
    if plugins:
        return (
            f"CNI plugins missing in {CNI_BIN}: {', '.join(plugins)} (containernetworking-plugins)"
        )
    try:
        import cri_api.v1.api_pb2  # noqa: F401
        import grpc  # noqa: F401
    except ImportError as e:
        pip = "pip install container-runtime-interface-api grpcio"
        return f"the CRI v1 Python stubs are missing ({e}): {pip}"
    if not os.access("/bin/busybox", os.X_OK):
        return "busybox-static is not installed"
    if _c_compiler() is None:
        return "no C compiler (musl-gcc or gcc) for the pause program"
    return None


def _containerd_version() -> str:
    """containerd's version ("1.6.20~ds1"), or "" if it does not say."""
    out = subprocess.run(["containerd", "--version"], capture_output=True, text=True, check=False)
    fields = out.stdout.split()
    return fields[2] if len(fields) > 2 else ""


def _c_compiler() -> list[str] | None:
    for cc in ("musl-gcc", "gcc"):
        if shutil.which(cc):
            return [cc, "-static", "-Os", "-s"]
    return None


def run(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=TIMEOUT, check=False, **kw,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, argv))} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
        )
    return proc


# ----------------------------------------------------------------- images


def build_image_archive(work: Path) -> Path:
    """An OCI archive with two tags, ``busybox`` (sh) and ``pause`` (/pause)."""
    layout = work / "oci"
    run(["umoci", "init", "--layout", str(layout)])
    busybox = work / "busybox"
    run(["umoci", "new", "--image", f"{layout}:busybox"])
    run(["umoci", "unpack", "--image", f"{layout}:busybox", str(busybox)])
    run(["sh", str(MKROOTFS), str(busybox / "rootfs")])
    run(["umoci", "repack", "--image", f"{layout}:busybox", str(busybox)])
    run(["umoci", "config", "--image", f"{layout}:busybox", "--config.cmd", "sh",
         "--config.env", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"])  # fmt: skip

    pause = work / "pause"
    run(["umoci", "new", "--image", f"{layout}:pause"])
    run(["umoci", "unpack", "--image", f"{layout}:pause", str(pause)])
    compile_c(PAUSE_C, pause / "rootfs" / "pause")
    run(["umoci", "repack", "--image", f"{layout}:pause", str(pause)])
    run(["umoci", "config", "--image", f"{layout}:pause", "--config.entrypoint", "/pause"])

    archive = work / "images.tar"
    run(["tar", "-C", str(layout), "-cf", str(archive), "."])
    shutil.rmtree(busybox)
    shutil.rmtree(pause)
    return archive


def compile_c(source: str, binary: Path) -> None:
    compiler = _c_compiler()
    assert compiler is not None
    source_file = binary.with_name(binary.name + ".c")
    source_file.write_text(source)
    run([*compiler, "-o", str(binary), str(source_file)])
    source_file.unlink()


# ----------------------------------------------------------------- config


def _containerd_config(work: Path, handlers: dict[str, str]) -> str:
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    runtimes = ""
    for name, binary in handlers.items():
        runtimes += f"""
[{cri}.containerd.runtimes.{name}]
  runtime_type = "io.containerd.runc.v2"
[{cri}.containerd.runtimes.{name}.options]
  BinaryName = "{binary}"
  SystemdCgroup = false
"""
    # restrict_oom_score_adj: root here lacks CAP_SYS_RESOURCE, so a container
    # may not get an oom_score_adj below containerd's own (both runtimes fail
    # otherwise); disable_apparmor: ocirt refuses labels on hosts without it.
    return f"""version = 2
root = "{work}/root"
state = "{work}/state"

[grpc]
  address = "{work}/cri.sock"
[ttrpc]
  address = "{work}/cri.sock.ttrpc"
[debug]
  address = "{work}/debug.sock"

[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "{STREAM_PORT}"
[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "{next(iter(handlers))}"
{runtimes}
[{cri}.cni]
  bin_dir = "{CNI_BIN}"
  conf_dir = "{work}/net.d"
  max_conf_num = 1
"""


def _cni_config(work: Path) -> str:
    return json.dumps(
        {
            "cniVersion": "0.4.0",
            "name": "ocirt-test-pods",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    "ipMasq": False,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": SUBNET_PREFIX + "0/24"}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(work / "ipam"),
                    },
                }
            ],
        },
        indent=1,
    )


# What runs as PID 1 of containerd's namespaces before the reaper ($1) and
# containerd ($2: its config).
NAMESPACE_SETUP = """set -e
mount -t tmpfs -o mode=0755 ocirt-test-run /run
mount -t tmpfs -o mode=0755 ocirt-test-varlib /var/lib
ip link set lo up
exec "$1" containerd --config "$2"
"""
UNSHARE = ["unshare", "--mount", "--pid", "--net", "--fork", "--propagation", "private",
           "--mount-proc", "--kill-child"]  # fmt: skip


# ----------------------------------------------------------------- the daemon


@dataclass
class Cri:
    work: Path
    proc: subprocess.Popen[bytes]
    log: Path
    cgroup_top: str
    handlers: dict[str, str]
    channel: Any = None
    runtime: Any = None  # cri_api.v1 RuntimeServiceStub
    images: Any = None  # cri_api.v1 ImageServiceStub
    pod_logs: Path = field(init=False)

    def __post_init__(self) -> None:
        self.pod_logs = self.work / "pods"

    @property
    def daemon_pid(self) -> int:
        """containerd's host pid: the child of the reaper (unshare's child, PID 1)."""
        for reaper in _children(self.proc.pid):
            for child in _children(reaper):
                return child
        raise RuntimeError("containerd is not running")

    def shim_pids(self) -> list[int]:
        """Host pids of the containerd shims in containerd's PID namespace."""
        own = os.readlink(f"/proc/{self.daemon_pid}/ns/pid")
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == self.daemon_pid:
                continue
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") != own:
                    continue
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if b"containerd-shim" in f.read():
                        pids.append(int(entry))
            except OSError:
                continue  # gone meanwhile
        return pids

    def daemon_path(self, path: str) -> Path:
        """PATH as containerd sees it (its private /run and /var/lib)."""
        return Path(f"/proc/{self.daemon_pid}/root") / path.lstrip("/")

    def daemon_mounts(self) -> list[str]:
        with open(f"/proc/{self.daemon_pid}/mountinfo") as f:
            return [line.split()[4] for line in f]

    def ctr(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run(["ctr", "--address", str(self.work / "cri.sock"), "-n", NAMESPACE, *args])

    def cgroup_parent(self, pod_uid: str) -> str:
        """kubelet's cgroupfs parent for a BestEffort pod, under our own top."""
        return f"/{self.cgroup_top}/kubepods/besteffort/pod{pod_uid}"

    def connect_stream(self, host: str, port: int) -> socket.socket:
        """A TCP connection made in containerd's network namespace (its stream server)."""
        return connect_in_netns(f"/proc/{self.daemon_pid}/ns/net", host, port)

    def cpu_ns(self) -> int | None:
        """CPU time used so far by containerd, its children and the pods (ns),
        or None without a cgroup v1 cpuacct hierarchy."""
        usage = CGROUP_ROOT / "cpuacct" / self.cgroup_top / "cpuacct.usage"
        try:
            return int(usage.read_text())
        except (OSError, ValueError):
            return None

    def log_tail(self, lines: int = 12) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        keep = [ln for ln in text if "level=error" in ln or "failed to remove" in ln
                or ("failed to load plugin" in ln and "devmapper" not in ln)]  # fmt: skip
        return "containerd's errors:\n" + "\n".join(keep[-lines:])


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


@contextlib.contextmanager
def running_cri(handlers: dict[str, str]) -> Iterator[Cri]:
    """Start containerd with the CRI plugin and HANDLERS (name -> runtime binary)."""
    import grpc
    from cri_api.v1 import api_pb2_grpc

    # A short path: containerd's sockets must fit in sun_path (108 bytes).
    work = Path(tempfile.mkdtemp(prefix="ocirt-cri-", dir="/tmp"))
    cgroup_top = f"ocirt-test-cri-{uuid.uuid4().hex[:8]}"
    proc = None
    try:
        archive = build_image_archive(work)
        reaper = work / "reaper"
        compile_c(REAPER_C, reaper)
        (work / "config.toml").write_text(_containerd_config(work, handlers))
        (work / "net.d").mkdir()
        (work / "net.d" / "10-ocirt-test.conflist").write_text(_cni_config(work))
        log = work / "containerd.log"
        with open(log, "wb") as logf:
            proc = subprocess.Popen(
                [*UNSHARE, "sh", "-c", NAMESPACE_SETUP, "sh", reaper, work / "config.toml"],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )  # fmt: skip
        cri = Cri(work, proc, log, cgroup_top, handlers)
        cri.channel = grpc.insecure_channel(f"unix://{work}/cri.sock")
        cri.runtime = api_pb2_grpc.RuntimeServiceStub(cri.channel)
        cri.images = api_pb2_grpc.ImageServiceStub(cri.channel)
        _wait_ready(cri)
        _account_cpu(cri)
        cri.ctr("images", "import", "--base-name", IMAGE_REPO, str(archive))
        yield cri
    finally:
        if proc is not None:
            _stop(proc)
        _remove_cgroups(cgroup_top, timeout=15.0)
        _unmount_below(work)
        shutil.rmtree(work, ignore_errors=True)


def _account_cpu(cri: Cri) -> None:
    """Move containerd into cpuacct:/<top>/daemon (v1 only): its children (shims,
    runtimes, CNI plugins) follow it and the pods live in <top>/kubepods, so
    <top>'s cpuacct.usage is all the CPU a pod start costs (Cri.cpu_ns)."""
    daemon = CGROUP_ROOT / "cpuacct" / cri.cgroup_top / "daemon"
    if not (CGROUP_ROOT / "cpuacct" / "cpuacct.usage").exists():
        return
    daemon.mkdir(parents=True)
    (daemon / "cgroup.procs").write_text(str(cri.daemon_pid))


def _die_with_parent() -> None:
    """unshare gets SIGKILL if the test process dies (and --kill-child passes it on)."""
    _libc.prctl(PR_SET_PDEATHSIG, 9)


def _wait_ready(cri: Cri, timeout: float = 60) -> None:
    from cri_api.v1 import api_pb2

    deadline = time.monotonic() + timeout
    while True:
        if cri.proc.poll() is not None:
            raise RuntimeError(f"containerd exited {cri.proc.returncode}:\n{cri.log_tail()}")
        try:
            status = cri.runtime.Status(api_pb2.StatusRequest(), timeout=5)
            ready = {c.type: c.status for c in status.status.conditions}
            if ready.get("RuntimeReady") and ready.get("NetworkReady"):
                return
        except Exception as e:  # grpc.RpcError until the socket is served
            last = e
        else:
            last = status
        if time.monotonic() > deadline:
            raise RuntimeError(f"containerd's CRI is not ready: {last}\n{cri.log_tail()}")
        time.sleep(0.2)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the reaper (PID 1 of the namespaces: it passes the signal to
    containerd and exits with it, then the kernel kills every shim and container
    in them), SIGKILL unshare (--kill-child) as a fallback."""
    if proc.poll() is None:
        for child in _children(proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, 15)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


# ----------------------------------------------------------------- netns socket

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1


def connect_in_netns(netns: str, host: str, port: int) -> socket.socket:
    """Connect to HOST:PORT from inside the network namespace NETNS.

    setns() moves only the calling thread, so a throwaway thread does it; the
    socket keeps the namespace it was made in after the thread is gone."""
    result: dict[str, Any] = {}

    def connect() -> None:
        try:
            fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")
            finally:
                os.close(fd)
            result["sock"] = socket.create_connection((host, port), timeout=30)
        except BaseException as e:
            result["error"] = e

    thread = threading.Thread(target=connect)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["sock"]


# ----------------------------------------------------------------- streaming exec


@dataclass
class StreamResult:
    stdout: bytes
    stderr: bytes
    status: dict[str, Any]


def websocket_exec(
    sock: socket.socket, url: str, stdin: bytes, timeout: float = 30
) -> StreamResult:
    """Run a CRI streaming exec over the Kubernetes websocket protocol
    (``v4.channel.k8s.io``: one byte of channel, 0 stdin, 1 stdout, 2 stderr,
    3 the final status as a JSON metav1.Status), as ``kubectl exec`` does."""
    path = url.split("//", 1)[1].split("/", 1)[1]
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /{path} HTTP/1.1\r\nHost: {url.split('//', 1)[1].split('/', 1)[0]}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n"
    )
    sock.settimeout(timeout)
    sock.sendall(request.encode())
    reader = _FrameReader(sock)
    head = reader.read_until(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"no websocket upgrade: {head!r}")
    if stdin:
        sock.sendall(_client_frame(b"\x00" + stdin))
    out = {1: b"", 2: b"", 3: b""}
    while True:
        opcode, payload = reader.frame()
        if opcode == 8:  # close
            break
        if opcode == 9:  # ping
            sock.sendall(_client_frame(payload, opcode=10))
        elif opcode in (1, 2) and payload and payload[0] in out:
            out[payload[0]] += payload[1:]
    status = json.loads(out[3]) if out[3] else {}
    return StreamResult(out[1], out[2], status)


def _client_frame(payload: bytes, opcode: int = 2) -> bytes:
    """One final, masked frame (clients must mask, RFC 6455 5.3)."""
    mask = os.urandom(4)
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 1 << 16:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class _FrameReader:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("the stream server closed the connection")
        self.buf += chunk

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_until(self, marker: bytes) -> bytes:
        while marker not in self.buf:
            self._fill()
        data, _, self.buf = self.buf.partition(marker)
        return data

    def frame(self) -> tuple[int, bytes]:
        first, second = self.read_exact(2)
        n = second & 0x7F
        if n == 126:
            n = struct.unpack(">H", self.read_exact(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", self.read_exact(8))[0]
        mask = self.read_exact(4) if second & 0x80 else b""
        payload = self.read_exact(n)
        if mask:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return first & 0x0F, payload


# ----------------------------------------------------------------- pods, as kubelet makes them


def _api() -> Any:
    from cri_api.v1 import api_pb2

    return api_pb2


@dataclass
class Pod:
    """One pod sandbox on HANDLER and the containers made in it."""

    cri: Cri
    handler: str
    name: str
    uid: str = field(default_factory=lambda: uuid.uuid4().hex)
    id: str = ""
    config: Any = None
    containers: list[str] = field(default_factory=list)

    @property
    def log_dir(self) -> Path:
        return self.cri.pod_logs / self.uid

    @property
    def cgroup_parent(self) -> str:
        return self.cri.cgroup_parent(self.uid)

    def sandbox_config(self) -> Any:
        api = _api()
        # kubelet's defaults: network and IPC shared by the pod, a PID
        # namespace per container (shareProcessNamespace: false).
        return api.PodSandboxConfig(
            metadata=api.PodSandboxMetadata(name=self.name, uid=self.uid, namespace="ocirt-test"),
            hostname=self.name,
            log_directory=str(self.log_dir),
            dns_config=api.DNSConfig(servers=[SUBNET_PREFIX + "1"], searches=["ocirt.test"]),
            labels={"io.kubernetes.pod.name": self.name},
            linux=api.LinuxPodSandboxConfig(
                cgroup_parent=self.cgroup_parent,
                security_context=api.LinuxSandboxSecurityContext(
                    namespace_options=_namespaces(),
                ),
            ),
        )

    def run(self) -> str:
        api = _api()
        self.config = self.sandbox_config()
        request = api.RunPodSandboxRequest(config=self.config, runtime_handler=self.handler)
        self.id = self.cri.runtime.RunPodSandbox(request, timeout=TIMEOUT).pod_sandbox_id
        return self.id

    def create(self, name: str, command: list[str], resources: Any = None) -> str:
        """CreateContainer (busybox, COMMAND, kubelet's log path NAME.log)."""
        api = _api()
        config = api.ContainerConfig(
            metadata=api.ContainerMetadata(name=name),
            image=api.ImageSpec(image=BUSYBOX_IMAGE),
            command=command,
            log_path=f"{name}.log",
            linux=api.LinuxContainerConfig(
                resources=resources,
                security_context=api.LinuxContainerSecurityContext(
                    namespace_options=_namespaces(),
                ),
            ),
        )
        request = api.CreateContainerRequest(
            pod_sandbox_id=self.id, config=config, sandbox_config=self.config
        )
        cid = self.cri.runtime.CreateContainer(request, timeout=TIMEOUT).container_id
        self.containers.append(cid)
        return cid

    def start(self, cid: str) -> None:
        self.cri.runtime.StartContainer(
            _api().StartContainerRequest(container_id=cid), timeout=TIMEOUT
        )

    def create_and_start(self, name: str, command: list[str], resources: Any = None) -> str:
        cid = self.create(name, command, resources)
        self.start(cid)
        return cid

    def remove(self) -> None:
        """kubelet's teardown: stop and remove each container, then the sandbox."""
        api = _api()
        rt = self.cri.runtime
        while self.containers:  # what is removed is forgotten: a second call does the rest
            cid = self.containers[0]
            rt.StopContainer(api.StopContainerRequest(container_id=cid, timeout=0), timeout=TIMEOUT)
            rt.RemoveContainer(api.RemoveContainerRequest(container_id=cid), timeout=TIMEOUT)
            self.containers.pop(0)
        if self.id:
            sandbox = self.id
            rt.StopPodSandbox(api.StopPodSandboxRequest(pod_sandbox_id=sandbox), timeout=TIMEOUT)
            rt.RemovePodSandbox(
                api.RemovePodSandboxRequest(pod_sandbox_id=sandbox), timeout=TIMEOUT
            )
            self.id = ""


def _namespaces() -> Any:
    api = _api()
    return api.NamespaceOption(
        network=api.NamespaceMode.POD, ipc=api.NamespaceMode.POD, pid=api.NamespaceMode.CONTAINER
    )


@contextlib.contextmanager
def pod(cri: Cri, handler: str, name: str) -> Iterator[Pod]:
    """A running pod sandbox, stopped and removed afterwards (also on failure)."""
    the_pod = Pod(cri, handler, name)
    try:
        the_pod.run()
        yield the_pod
    finally:
        with contextlib.suppress(Exception):  # the test's own failure matters more
            the_pod.remove()
