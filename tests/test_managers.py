"""ocirt under real container managers: podman (via conmon) and containerd (via
ctr and the io.containerd.runc.v2 shim), offline, with Debian's runc as the
control that proves the harness.

Everything is local to a temporary directory (see contract.md, "Offline setup
that worked"):

* the image is a busybox-static rootfs built by tools/mkrootfs.sh;
  `podman import` for podman, an OCI archive made with umoci for `ctr image import`;
* podman gets its own containers.conf / storage.conf (cgroupfs, file events log,
  vfs storage) and its own --root/--runroot/--tmpdir;
* containerd gets its own config.toml (root, state, sockets; cri disabled) and
  runs as PID 1 of a private mount+PID namespace (`unshare -m -p -f
  --mount-proc --kill-child`), so stopping it takes every shim and container
  with it and no mount reaches the host;
* cgroups go under a unique parent (podman --cgroup-parent, ctr namespace),
  removed afterwards.

Runtimes: ``runc`` (Debian's), ``ocirt`` (the venv's binary) and
``ocirt-as-runc`` (a symlink named ``runc`` to it: podman passes
``--log-format=json --log FILE`` only to runtimes whose file is named runc/crun).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import resource
import select
import shutil
import signal
import struct
import subprocess
import tempfile
import termios
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MKROOTFS = REPO / "tools" / "mkrootfs.sh"
IMAGE = "localhost/ocirt-busybox:latest"
TIMEOUT = 120
RUNTIMES = ["runc", "ocirt", "ocirt-as-runc"]
CGROUP_ROOT = Path("/sys/fs/cgroup")
# containerd runs as PID 1 of its own mount+PID namespace (see module docstring).
UNSHARE = ["unshare", "--mount", "--pid", "--fork", "--propagation", "private"]
UNSHARE += ["--mount-proc", "--kill-child"]


# ----------------------------------------------------------------- helpers


def _need(*tools: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("manager tests need root")
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")


def _run(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
        **kw,  # type: ignore[arg-type]
    )


def _explain(proc: subprocess.CompletedProcess[str]) -> str:
    return (
        f"argv: {' '.join(map(str, proc.args))}\nexit: {proc.returncode}\n"
        f"stdout: {proc.stdout!r}\nstderr: {proc.stderr!r}"
    )


def _ok(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    proc = _run(argv, **kw)
    assert proc.returncode == 0, _explain(proc)
    return proc


def _remove_cgroups(name: str, timeout: float = 10.0) -> None:
    """rmdir /sys/fs/cgroup/*/<name> (and below), deepest first; only our own name.

    Retries for a while: a conmon or shim may still be exiting (EBUSY)."""
    assert name.startswith("ocirt-test-"), name
    deadline = time.monotonic() + timeout
    while True:
        left = [h / name for h in CGROUP_ROOT.iterdir() if (h / name).is_dir()]
        for top in left:
            dirs = sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
            for d in [*dirs, top]:
                with contextlib.suppress(OSError):
                    d.rmdir()
        if not any(t.exists() for t in left) or time.monotonic() > deadline:
            return
        time.sleep(0.2)


def _unmount_below(path: Path) -> None:
    """Lazily unmount anything left mounted below ``path`` (ours by construction)."""
    prefix = str(path.resolve()) + "/"
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def _limit(res: int, fallback: int) -> int:
    hard = resource.getrlimit(res)[1]
    return fallback if hard == resource.RLIM_INFINITY else hard


@pytest.fixture(scope="session")
def work_dir() -> Iterator[Path]:
    # Short path under /tmp: containerd's sockets must fit in sun_path (108 bytes).
    path = Path(tempfile.mkdtemp(prefix="ocirt-mgr-", dir="/tmp"))
    try:
        yield path
    finally:
        _unmount_below(path)
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def rootfs_tar(work_dir: Path) -> Path:
    _need("tar")
    if not os.access("/bin/busybox", os.X_OK):
        pytest.skip("busybox-static is not installed")
    rootfs = work_dir / "rootfs"
    _ok(["sh", str(MKROOTFS), str(rootfs)])
    tar = work_dir / "busybox-rootfs.tar"
    _ok(["tar", "-C", str(rootfs), "-cf", str(tar), "."])
    return tar


@pytest.fixture(scope="session")
def runtime_paths(work_dir: Path) -> dict[str, str]:
    ocirt = os.environ.get("OCIRT") or str(REPO / ".venv" / "bin" / "ocirt")
    paths: dict[str, str] = {}
    runc = shutil.which("runc")
    if runc:
        paths["runc"] = runc
    if os.access(ocirt, os.X_OK):
        paths["ocirt"] = ocirt
        link_dir = work_dir / "as-runc"
        link_dir.mkdir()
        (link_dir / "runc").symlink_to(ocirt)
        paths["ocirt-as-runc"] = str(link_dir / "runc")
    return paths


@pytest.fixture(params=RUNTIMES)
def runtime(request: pytest.FixtureRequest, runtime_paths: dict[str, str]) -> str:
    name: str = request.param
    if name not in runtime_paths:
        pytest.skip(f"runtime {name} is not available")
    return runtime_paths[name]


# ----------------------------------------------------------------- podman


@dataclass
class Podman:
    base: list[str]
    env: dict[str, str]
    cgroup_parent: str

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return _run([*self.base, *args], env=self.env)

    def run_args(self, runtime: str) -> list[str]:
        return [
            "run", "--runtime", runtime, "--network", "none", "--pull", "never",
            "--cgroup-parent", f"/{self.cgroup_parent}",
        ]  # fmt: skip


@pytest.fixture(scope="session")
def podman(work_dir: Path, rootfs_tar: Path) -> Iterator[Podman]:
    _need("podman", "conmon")
    d = work_dir / "podman"
    d.mkdir()
    nofile = _limit(resource.RLIMIT_NOFILE, 1048576)
    nproc = min(_limit(resource.RLIMIT_NPROC, 32768), 32768)
    # podman's defaults (nofile 1048576, nproc 4194304 for root) exceed this
    # kind of host's hard limits, and podman itself drops to a hard nproc of
    # 32768 before starting conmon; without CAP_SYS_RESOURCE the runtime then
    # fails "setting rlimit ... operation not permitted".  Stay below both.
    (d / "containers.conf").write_text(
        f"""[containers]
default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{d}/events.log"
tmp_dir = "{d}/tmp"

[engine.runtimes]
ocirt = ["{REPO / ".venv" / "bin" / "ocirt"}"]
"""
    )
    (d / "storage.conf").write_text(
        f'[storage]\ndriver = "vfs"\ngraphroot = "{d}/storage"\nrunroot = "{d}/run"\n'
    )
    env = dict(
        os.environ,
        CONTAINERS_CONF=str(d / "containers.conf"),
        CONTAINERS_STORAGE_CONF=str(d / "storage.conf"),
    )
    base = [
        "podman", "--root", str(d / "storage"), "--runroot", str(d / "run"),
        "--tmpdir", str(d / "tmp"), "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs",
    ]  # fmt: skip
    pm = Podman(base, env, f"ocirt-test-podman-{uuid.uuid4().hex[:8]}")
    try:
        proc = pm("import", str(rootfs_tar), IMAGE)
        assert proc.returncode == 0, _explain(proc)
        yield pm
    finally:
        pm("rm", "--all", "--force", "--time", "0")
        pm("rmi", "--all", "--force")
        _unmount_below(d)
        _remove_cgroups(pm.cgroup_parent)


def test_podman_run_echo(podman: Podman, runtime: str) -> None:
    proc = podman(*podman.run_args(runtime), "--rm", IMAGE, "echo", "hi")
    assert proc.returncode == 0, _explain(proc)
    assert proc.stdout == "hi\n", _explain(proc)


def test_podman_exit_code_and_stderr(podman: Podman, runtime: str) -> None:
    proc = podman(
        *podman.run_args(runtime), "--rm", IMAGE, "sh", "-c", "echo out; echo err >&2; exit 3"
    )
    assert proc.returncode == 3, _explain(proc)
    assert proc.stdout == "out\n", _explain(proc)
    assert "err" in proc.stderr, _explain(proc)


def test_podman_missing_program_is_127(podman: Podman, runtime: str) -> None:
    """The runtime's error (json log for runc-named runtimes) must map to 127."""
    proc = podman(*podman.run_args(runtime), "--rm", IMAGE, "/nonexistent")
    assert proc.returncode == 127, _explain(proc)
    assert "no such file or directory" in proc.stderr.lower(), _explain(proc)


def test_podman_detached_stop_rm(podman: Podman, runtime: str) -> None:
    """run -d, inspect, stop (kill 15 then 9 after 1 s: sh as pid 1 ignores TERM), rm."""
    name = f"d-{uuid.uuid4().hex[:8]}"
    started = podman(*podman.run_args(runtime), "-d", "--name", name, IMAGE, "sleep", "1000")
    assert started.returncode == 0, _explain(started)
    try:
        status = podman("inspect", "--format", "{{.State.Status}}", name)
        assert status.stdout.strip() == "running", _explain(status)
        stop = podman("stop", "--time", "1", name)
        assert stop.returncode == 0, _explain(stop)
        status = podman("inspect", "--format", "{{.State.Status}}", name)
        assert status.stdout.strip() in ("exited", "stopped"), _explain(status)
    finally:
        rm = podman("rm", "--force", "--time", "0", name)
    assert rm.returncode == 0, _explain(rm)


# ----------------------------------------------------------------- containerd


@dataclass
class Containerd:
    address: str
    namespace: str
    proc: subprocess.Popen[bytes]
    log: Path

    def ctr(self, *args: str) -> subprocess.CompletedProcess[str]:
        return _run(["ctr", "--address", self.address, "--namespace", self.namespace, *args])


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def _stop_containerd(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM containerd (PID 1 of its namespace: the kernel then kills the
    shims and containers in it); SIGKILL unshare (--kill-child) as a fallback."""
    if proc.poll() is not None:
        return
    for child in _children(proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=15)


@pytest.fixture(scope="session")
def containerd(work_dir: Path, rootfs_tar: Path) -> Iterator[Containerd]:
    _need("containerd", "ctr", "containerd-shim-runc-v2", "umoci", "unshare")
    d = work_dir / "ctd"
    d.mkdir()
    address = str(d / "containerd.sock")
    (d / "config.toml").write_text(
        f"""version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{address}"

[ttrpc]
  address = "{address}.ttrpc"

[debug]
  address = "{d}/debug.sock"
"""
    )
    # OCI archive with umoci: init, new, unpack, copy the rootfs in, repack, config.
    layout = d / "oci"
    unpacked = d / "unpacked"
    _ok(["umoci", "init", "--layout", str(layout)])
    _ok(["umoci", "new", "--image", f"{layout}:latest"])
    _ok(["umoci", "unpack", "--image", f"{layout}:latest", str(unpacked)])
    _ok(["tar", "-C", str(unpacked / "rootfs"), "-xf", str(rootfs_tar)])
    _ok(["umoci", "repack", "--image", f"{layout}:latest", str(unpacked)])
    _ok(["umoci", "config", "--image", f"{layout}:latest", "--config.cmd", "sh"])
    archive = d / "busybox-oci.tar"
    _ok(["tar", "-C", str(layout), "-cf", str(archive), "."])

    log = d / "containerd.log"
    namespace = f"ocirt-test-{uuid.uuid4().hex[:8]}"
    started = time.time()
    with open(log, "wb") as logf:
        proc = subprocess.Popen(
            [*UNSHARE, "containerd", "--config", str(d / "config.toml")],
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
        )
    ctd = Containerd(address, namespace, proc, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"containerd exited {proc.returncode}:\n{log.read_text()[-3000:]}")
            if os.path.exists(address) and ctd.ctr("version").returncode == 0:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"containerd did not come up:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        imp = ctd.ctr("image", "import", "--base-name", IMAGE.rsplit(":", 1)[0], str(archive))
        assert imp.returncode == 0, _explain(imp)
        yield ctd
    finally:
        _stop_containerd(proc)
        _unmount_below(d)
        _remove_cgroups(namespace)
        # The shim keeps the runtime's --root and its fifos under /run/containerd
        # whatever config.toml says; the namespace's containers died with containerd.
        for leftover in ("runc", "fifo"):
            shutil.rmtree(f"/run/containerd/{leftover}/{namespace}", ignore_errors=True)
        _remove_dead_shim_sockets(started)


def _remove_dead_shim_sockets(since: float) -> None:
    """Shim sockets (/run/containerd/s/<hash>) made since SINCE that nobody serves."""
    import socket

    directory = Path("/run/containerd/s")
    if not directory.is_dir():
        return
    for entry in directory.iterdir():
        try:
            if entry.lstat().st_mtime < since or not entry.is_socket():
                continue
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.connect(str(entry))
        except ConnectionRefusedError:
            entry.unlink(missing_ok=True)  # its shim died with our containerd
        except OSError:
            continue


def test_ctr_run_echo(containerd: Containerd, runtime: str) -> None:
    cid = f"e-{uuid.uuid4().hex[:8]}"
    proc = containerd.ctr("run", "--rm", "--runc-binary", runtime, IMAGE, cid, "echo", "hi")
    assert proc.returncode == 0, _explain(proc) + f"\n{_ctr_log_tail(containerd)}"
    assert proc.stdout == "hi\n", _explain(proc)


def test_ctr_exit_code_and_stderr(containerd: Containerd, runtime: str) -> None:
    cid = f"x-{uuid.uuid4().hex[:8]}"
    proc = containerd.ctr(
        "run", "--rm", "--runc-binary", runtime, IMAGE, cid,
        "sh", "-c", "echo out; echo err >&2; exit 3",
    )  # fmt: skip
    assert proc.returncode == 3, _explain(proc) + f"\n{_ctr_log_tail(containerd)}"
    assert proc.stdout == "out\n", _explain(proc)
    assert "err" in proc.stderr, _explain(proc)


def test_ctr_detached_kill_delete(containerd: Containerd, runtime: str) -> None:
    """run -d, task ls RUNNING, kill -s SIGKILL, wait STOPPED, task rm, container rm."""
    cid = f"d-{uuid.uuid4().hex[:8]}"
    started = containerd.ctr("run", "-d", "--runc-binary", runtime, IMAGE, cid, "sleep", "1000")
    assert started.returncode == 0, _explain(started) + f"\n{_ctr_log_tail(containerd)}"
    try:
        assert _task_status(containerd, cid) == "RUNNING"
        _ok(["ctr", "--address", containerd.address, "--namespace", containerd.namespace,
             "task", "kill", "--signal", "SIGKILL", cid])  # fmt: skip
        deadline = time.monotonic() + 20
        while _task_status(containerd, cid) != "STOPPED":
            assert time.monotonic() < deadline, f"{cid} did not stop"
            time.sleep(0.1)
        rm = containerd.ctr("task", "rm", cid)
        assert rm.returncode == 0, _explain(rm) + f"\n{_ctr_log_tail(containerd)}"
    finally:
        containerd.ctr("task", "rm", "--force", cid)
        containerd.ctr("container", "rm", cid)
    assert containerd.ctr("container", "info", cid).returncode != 0


def _task_status(ctd: Containerd, cid: str) -> str:
    out = ctd.ctr("task", "ls").stdout
    for line in out.splitlines()[1:]:
        parts = line.split()
        if parts and parts[0] == cid:
            return parts[-1]
    return "MISSING"


def _ctr_log_tail(ctd: Containerd) -> str:
    try:
        lines = ctd.log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    errors = [ln for ln in lines if "level=error" in ln or "level=warning" in ln]
    return "containerd log (errors):\n" + "\n".join(errors[-15:])


# ----------------------------------------------------------------- docker


DOCKER = "/usr/bin/docker" if os.access("/usr/bin/docker", os.X_OK) else "docker"


@dataclass
class Dockerd:
    host: str
    runtimes: dict[str, str]  # runtime path -> name given to --add-runtime
    proc: subprocess.Popen[bytes]
    log: Path

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return _run([DOCKER, "--host", self.host, *args])

    def run_args(self, runtime: str) -> list[str]:
        return ["run", "--runtime", self.runtimes[runtime], "--network", "none"]


@pytest.fixture(scope="session")
def dockerd(work_dir: Path, rootfs_tar: Path, runtime_paths: dict[str, str]) -> Iterator[Dockerd]:
    """dockerd (with its own managed containerd) as PID 1 of a private
    mount+PID namespace, state under work_dir, contract.md's flags."""
    _need("dockerd", DOCKER, "unshare")
    d = work_dir / "docker"
    d.mkdir()
    (d / "daemon.json").write_text("{}\n")  # not the host's /etc/docker/daemon.json
    # dockerd 20.10 passes --root <exec-root>/runtime-runc/moby (whatever the
    # runtime's name) and container ids are 64 hex digits: keep the exec root
    # exactly as long as the default /var/run/docker, so state paths (and any
    # AF_UNIX socket a runtime binds there, sun_path <= 108 bytes) are as long
    # as under a stock dockerd.
    exec_root = Path(tempfile.mkdtemp(prefix="dk", dir="/tmp"))
    assert len(str(exec_root)) == len("/var/run/docker"), exec_root
    host = f"unix://{d}/docker.sock"
    cgroup_parent = f"ocirt-test-docker-{uuid.uuid4().hex[:8]}"
    # "runc" is reserved by dockerd: name Debian's runc "debrunc".
    names = {"runc": "debrunc", "ocirt": "ocirt", "ocirt-as-runc": "ocirt-runc"}
    runtimes = {path: names[name] for name, path in runtime_paths.items()}
    argv = [
        *UNSHARE, "dockerd", "--config-file", str(d / "daemon.json"),
        "--data-root", str(d / "data"), "--exec-root", str(exec_root),
        "--pidfile", str(d / "docker.pid"), "--host", host,
        "--iptables=false", "--ip-forward=false", "--ip-masq=false", "--bridge=none",
        "--userland-proxy=false", "--exec-opt", "native.cgroupdriver=cgroupfs",
        "--storage-driver", "vfs", "--cgroup-parent", f"/{cgroup_parent}",
    ]  # fmt: skip
    for path, name in runtimes.items():
        argv += ["--add-runtime", f"{name}={path}"]
    log = d / "dockerd.log"
    with open(log, "wb") as logf:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
    dk = Dockerd(host, runtimes, proc, log)
    try:
        deadline = time.monotonic() + 60
        while dk("version").returncode != 0:
            if proc.poll() is not None:
                pytest.fail(f"dockerd exited {proc.returncode}:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"dockerd did not come up:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        imp = dk("import", str(rootfs_tar), IMAGE)
        assert imp.returncode == 0, _explain(imp)
        yield dk
    finally:
        dk("rm", "--force", *dk("ps", "-aq").stdout.split())
        _stop_containerd(proc)  # same shape: SIGTERM the namespace's PID 1
        _unmount_below(d)
        _unmount_below(exec_root)
        shutil.rmtree(exec_root, ignore_errors=True)
        _remove_cgroups(cgroup_parent)


def test_docker_run_echo(dockerd: Dockerd, runtime: str) -> None:
    proc = dockerd(*dockerd.run_args(runtime), "--rm", IMAGE, "echo", "hi")
    assert proc.returncode == 0, _explain(proc)
    assert proc.stdout == "hi\n", _explain(proc)


def test_docker_exit_code_and_stderr(dockerd: Dockerd, runtime: str) -> None:
    proc = dockerd(
        *dockerd.run_args(runtime), "--rm", IMAGE, "sh", "-c", "echo out; echo err >&2; exit 3"
    )
    assert proc.returncode == 3, _explain(proc)
    assert proc.stdout == "out\n", _explain(proc)
    assert "err" in proc.stderr, _explain(proc)


def test_docker_missing_program_is_127(dockerd: Dockerd, runtime: str) -> None:
    proc = dockerd(*dockerd.run_args(runtime), "--rm", IMAGE, "/nonexistent")
    assert proc.returncode == 127, _explain(proc)
    assert "no such file or directory" in proc.stderr.lower(), _explain(proc)


def test_docker_detached_stop_rm(dockerd: Dockerd, runtime: str) -> None:
    name = f"d-{uuid.uuid4().hex[:8]}"
    started = dockerd(*dockerd.run_args(runtime), "-d", "--name", name, IMAGE, "sleep", "1000")
    assert started.returncode == 0, _explain(started)
    try:
        status = dockerd("inspect", "--format", "{{.State.Status}}", name)
        assert status.stdout.strip() == "running", _explain(status)
        stop = dockerd("stop", "--time", "1", name)
        assert stop.returncode == 0, _explain(stop)
        status = dockerd("inspect", "--format", "{{.State.Status}}", name)
        assert status.stdout.strip() == "exited", _explain(status)
    finally:
        rm = dockerd("rm", "--force", name)
    assert rm.returncode == 0, _explain(rm)


# ----------------------------------------------- exec, pause (podman and docker)


Cli = Podman | Dockerd


def _detached(cli: Cli, runtime: str) -> str:
    name = f"x-{uuid.uuid4().hex[:8]}"
    started = cli(*cli.run_args(runtime), "-d", "--name", name, IMAGE, "sleep", "1000")
    assert started.returncode == 0, _explain(started)
    return name


def _check_exec(cli: Cli, runtime: str) -> None:
    """`exec` (runtime: exec --detach --pid-file --process FILE): output, exit code, env."""
    name = _detached(cli, runtime)
    try:
        out = cli("exec", name, "echo", "hi")
        assert out.returncode == 0 and out.stdout == "hi\n", _explain(out)
        code = cli("exec", name, "sh", "-c", "echo err >&2; exit 5")
        assert code.returncode == 5 and "err" in code.stderr, _explain(code)
        env = cli(
            "exec", "--env", "FOO=bar", "--workdir", "/tmp", name, "sh", "-c", "echo $FOO $PWD"
        )
        assert env.stdout == "bar /tmp\n", _explain(env)
    finally:
        cli("rm", "--force", name)


def _check_pause(cli: Cli, runtime: str) -> None:
    """`pause` / `unpause` (runtime: pause ID / resume ID), then rm -f a paused one."""
    name = _detached(cli, runtime)
    try:
        paused = cli("pause", name)
        assert paused.returncode == 0, _explain(paused)
        status = cli("inspect", "--format", "{{.State.Status}}", name)
        assert status.stdout.strip() == "paused", _explain(status)
        resumed = cli("unpause", name)
        assert resumed.returncode == 0, _explain(resumed)
        status = cli("inspect", "--format", "{{.State.Status}}", name)
        assert status.stdout.strip() == "running", _explain(status)
        assert cli("pause", name).returncode == 0
    finally:
        rm = cli("rm", "--force", name)  # kill 9 of a paused container must work
    assert rm.returncode == 0, _explain(rm)


def test_podman_exec(podman: Podman, runtime: str) -> None:
    _check_exec(podman, runtime)


def test_podman_pause_unpause(podman: Podman, runtime: str) -> None:
    _check_pause(podman, runtime)


def test_docker_exec(dockerd: Dockerd, runtime: str) -> None:
    _check_exec(dockerd, runtime)


def test_docker_pause_unpause(dockerd: Dockerd, runtime: str) -> None:
    _check_pause(dockerd, runtime)


def test_ctr_exec_pause_resume(containerd: Containerd, runtime: str) -> None:
    """task exec (runtime: exec --process FILE --detach --pid-file), pause, resume, kill."""
    cid = f"p-{uuid.uuid4().hex[:8]}"
    started = containerd.ctr("run", "-d", "--runc-binary", runtime, IMAGE, cid, "sleep", "1000")
    assert started.returncode == 0, _explain(started) + f"\n{_ctr_log_tail(containerd)}"
    try:
        out = containerd.ctr("task", "exec", "--exec-id", "e1", cid, "echo", "hi")
        assert out.returncode == 0 and out.stdout == "hi\n", _explain(out)
        code = containerd.ctr("task", "exec", "--exec-id", "e2", cid, "sh", "-c", "exit 5")
        assert code.returncode == 5, _explain(code)
        for action, want in (("pause", "PAUSED"), ("resume", "RUNNING"), ("pause", "PAUSED")):
            proc = containerd.ctr("task", action, cid)
            assert proc.returncode == 0, _explain(proc) + f"\n{_ctr_log_tail(containerd)}"
            assert _task_status(containerd, cid) == want
        kill = containerd.ctr("task", "kill", "--signal", "SIGKILL", cid)  # while paused
        assert kill.returncode == 0, _explain(kill)
        deadline = time.monotonic() + 20
        while _task_status(containerd, cid) != "STOPPED":
            assert time.monotonic() < deadline, f"{cid} did not stop after kill 9 while paused"
            time.sleep(0.1)
    finally:
        containerd.ctr("task", "rm", "--force", cid)
        containerd.ctr("container", "rm", cid)


# ------------------------------------------- terminals (console sockets, issue 5)


@dataclass
class PtySession:
    """A manager CLI running with a fresh pty as its stdio and controlling terminal."""

    argv: list[str]
    proc: subprocess.Popen[bytes]
    master: int
    output: bytearray

    def read_until(self, needle: bytes, timeout: float = 60.0) -> bool:
        """Read the pty into ``output`` until ``needle`` shows up (True), EOF or timeout."""
        deadline = time.monotonic() + timeout
        while needle not in self.output:
            left = deadline - time.monotonic()
            if left <= 0 or self._read(min(left, 0.5)) is None:
                return needle in self.output
        return True

    def _read(self, timeout: float) -> bytes | None:
        """What arrives within ``timeout`` (b"" if nothing); None at EOF (EIO once
        every slave fd is closed)."""
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return b""
        try:
            data = os.read(self.master, 4096)
        except OSError:
            return None
        self.output += data
        return data or None

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def finish(self, timeout: float = 60.0) -> int:
        """Drain the output until the process has exited and gone quiet; its exit status."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            if self._read(0.5) is None:
                break
        while self._read(0.2):
            pass
        return self.proc.wait(timeout=max(deadline - time.monotonic(), 1.0))

    def explain(self) -> str:
        text = self.output.decode(errors="replace")
        return f"argv: {' '.join(self.argv)}\nexit: {self.proc.poll()}\npty output: {text!r}"


def _own_terminal() -> None:
    # After setsid (start_new_session): stdin, the pty slave, becomes the controlling tty.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


@contextlib.contextmanager
def _pty_session(argv: list[str], env: dict[str, str] | None = None) -> Iterator[PtySession]:
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    try:
        proc = subprocess.Popen(
            argv,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
            preexec_fn=_own_terminal,
        )
    finally:
        os.close(slave)
    session = PtySession(argv, proc, master, bytearray())
    try:
        yield session
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=TIMEOUT)
        os.close(master)


# busybox sh's prompt as root.  The terminal echoes the typed line, so the
# expected answers ("hi-2", "tty-7") are computed by the shell, never typed.
PROMPT = b"# "


def _check_shell_dialogue(session: PtySession, extra: str = "") -> None:
    """In an interactive busybox sh on the other side of the pty: answer, tty, exit 3."""
    assert session.read_until(PROMPT), "no shell prompt\n" + session.explain()
    session.send("echo hi-$((1+1)); [ -t 0 ] && [ -t 1 ] && echo tty-$((3+4))\r")
    assert session.read_until(b"tty-7"), "no answer\n" + session.explain()
    assert b"hi-2" in session.output, session.explain()
    session.send("exit 3\r")
    code = session.finish()
    assert code == 3, f"exit code {code}, want 3{extra}\n" + session.explain()


def test_podman_run_tty(podman: Podman, runtime: str) -> None:
    """podman run -it (runtime: create --console-socket S; conmon gets the pty master)."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    argv = [*podman.base, *podman.run_args(runtime), "-it", "--name", name, IMAGE, "sh"]
    try:
        with _pty_session(argv, env=podman.env) as session:
            _check_shell_dialogue(session)
    finally:
        podman("rm", "--force", "--time", "0", name)


def test_podman_exec_tty(podman: Podman, runtime: str) -> None:
    """podman exec -it (runtime: exec --detach --tty --console-socket S --process P)."""
    name = _detached(podman, runtime)
    try:
        with _pty_session([*podman.base, "exec", "-it", name, "sh"], env=podman.env) as session:
            _check_shell_dialogue(session)
        alive = podman("inspect", "--format", "{{.State.Status}}", name)
        assert alive.stdout.strip() == "running", _explain(alive)
    finally:
        podman("rm", "--force", "--time", "0", name)


def _ctr_argv(ctd: Containerd, *args: str) -> list[str]:
    return ["ctr", "--address", ctd.address, "--namespace", ctd.namespace, *args]


def test_ctr_run_tty(containerd: Containerd, runtime: str) -> None:
    """ctr run -t (the shim's console socket on create; ctr relays the pty)."""
    cid = f"t-{uuid.uuid4().hex[:8]}"
    argv = _ctr_argv(containerd, "run", "-t", "--rm", "--runc-binary", runtime, IMAGE, cid, "sh")
    try:
        with _pty_session(argv) as session:
            _check_shell_dialogue(session, f"\n{_ctr_log_tail(containerd)}")
    finally:
        containerd.ctr("task", "rm", "--force", cid)
        containerd.ctr("container", "rm", cid)


def test_ctr_task_exec_tty(containerd: Containerd, runtime: str) -> None:
    """ctr task exec -t (runtime: exec --console-socket S --detach, terminal in P)."""
    cid = f"te-{uuid.uuid4().hex[:8]}"
    started = containerd.ctr("run", "-d", "--runc-binary", runtime, IMAGE, cid, "sleep", "1000")
    assert started.returncode == 0, _explain(started) + f"\n{_ctr_log_tail(containerd)}"
    try:
        argv = _ctr_argv(containerd, "task", "exec", "-t", "--exec-id", "tty1", cid, "sh")
        with _pty_session(argv) as session:
            _check_shell_dialogue(session, f"\n{_ctr_log_tail(containerd)}")
        assert _task_status(containerd, cid) == "RUNNING"
    finally:
        containerd.ctr("task", "rm", "--force", cid)
        containerd.ctr("container", "rm", cid)
