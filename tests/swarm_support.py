"""A two-node Docker swarm on one machine, for tests/test_swarm.py.

Everything the swarm touches is the test's own:

* one network namespace (``SharedNetns``) holds the registry and both dockerd
  instances: they reach each other on its 127.0.0.1, so the swarm ports (2377,
  2378), the registry's port and whatever libnetwork does (the service's
  bridges; iptables is off) stay out of the host's network stack;
* each dockerd (``DockerNode``) is PID 1 of its own mount+PID+UTS namespace
  (test_managers.UNSHARE), with a private tmpfs on /run: its exec root
  (/run/docker: the runtime's --root, netns files), containerd's state and shim
  sockets (/run/containerd, fixed paths in containerd 1.6) and /run/docker/plugins
  vanish with the namespace, and no system containerd socket can be picked up;
  its data root, socket and logs are under the test's directory, its containers'
  cgroups under its own --cgroup-parent;
* the default runtime of each dockerd is a wrapper script that appends its
  argv to a log (``RuntimeCall``) and execs the runtime under test, so the test
  can count which containers went through it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from test_managers import (
    CGROUP_ROOT,
    DOCKER,
    UNSHARE,
    _explain,
    _ok,
    _remove_cgroups,
    _run,
    _stop_containerd,
)

REGISTRY_PORT = 5000
MANAGER_PORT = 2377
WORKER_PORT = 2378
# Only used by overlay networks (VXLAN), which the scenario does not need;
# set anyway so the swarm never asks for the default 4789.
DATA_PATH_PORT = 4790
# Separates arguments in the wrapper's log (no runtime argument contains it).
ARG_SEPARATOR = "\x1f"
# runc's global flags that take a value (the ones dockerd's shim passes).
GLOBAL_FLAGS_WITH_VALUE = {"--root", "--log", "--log-format", "--criu", "--rootless"}


def wait_for(
    what: str, check: Callable[[], bool], timeout: float, explain: Callable[[], str]
) -> None:
    """Poll ``check`` every 0.2 s until it holds; fail with ``explain()`` at the deadline."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{explain()}")
        time.sleep(0.2)


# ----------------------------------------------------------------- network namespace


class SharedNetns:
    """A fresh network namespace with loopback up, kept alive by an open fd.

    ``unshare --net`` makes it, the fd to its ns file keeps it after that
    process is gone, and commands enter it with ``nsenter --net=/proc/self/fd/N``
    (the fd is passed down: ``pass_fds``).  Closing the fd, once every daemon
    in it has exited, frees it."""

    def __init__(self) -> None:
        holder = subprocess.Popen(["unshare", "--net", "--", "sleep", "60"])
        try:
            path = f"/proc/{holder.pid}/ns/net"
            wait_for(
                "the network namespace",
                lambda: os.readlink(path) != os.readlink("/proc/self/ns/net"),
                10,
                lambda: path,
            )
            self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        finally:
            holder.kill()
            holder.wait(timeout=10)
        _ok([*self.enter(), "ip", "link", "set", "lo", "up"], pass_fds=(self.fd,))

    def enter(self) -> list[str]:
        return ["nsenter", f"--net=/proc/self/fd/{self.fd}", "--"]

    def close(self) -> None:
        os.close(self.fd)


# ----------------------------------------------------------------- registry


@dataclass
class Registry:
    """Debian's docker-registry (distribution 2.8) on 127.0.0.1 of the netns."""

    directory: Path
    proc: subprocess.Popen[bytes]
    address: str

    @classmethod
    def start(cls, directory: Path, netns: SharedNetns) -> Registry:
        directory.mkdir()
        address = f"127.0.0.1:{REGISTRY_PORT}"
        config = directory / "config.yml"
        config.write_text(
            f"version: 0.1\nlog:\n  level: info\n"
            f"storage:\n  filesystem:\n    rootdirectory: {directory / 'storage'}\n"
            f"http:\n  addr: {address}\n  secret: ocirt-test-only\n"
        )
        log = directory / "registry.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [*netns.enter(), "docker-registry", "serve", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                pass_fds=(netns.fd,),
            )
        registry = cls(directory, proc, address)
        wait_for(
            "the registry to listen",
            lambda: registry.listening() or proc.poll() is not None,
            30,
            registry.log_tail,
        )
        assert proc.poll() is None, f"docker-registry exited\n{registry.log_tail()}"
        return registry

    def listening(self) -> bool:
        return f"listening on {self.address}" in self.log_text()

    def log_text(self) -> str:
        return (self.directory / "registry.log").read_text(errors="replace")

    def log_tail(self) -> str:
        return "registry log:\n" + self.log_text()[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            # nsenter execs the registry: the Popen pid is the registry itself.
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)


# ----------------------------------------------------------------- runtime wrapper


WRAPPER = """#!/bin/sh
# Written by tests/swarm_support.py: log this call's argv (one line, arguments
# separated by 0x1f), then become the runtime under test.
line=$(printf '%s\\037' "$@")
printf '%s\\n' "$line" >>'{log}'
exec '{runtime}' "$@"
"""


@dataclass(frozen=True)
class RuntimeCall:
    """One call dockerd's shim made to the runtime, as the wrapper logged it."""

    args: tuple[str, ...]

    @property
    def command(self) -> str:
        """The subcommand ("create", "start", ...), after runc's global flags."""
        args = iter(self.args)
        for arg in args:
            if arg in GLOBAL_FLAGS_WITH_VALUE:
                next(args, None)
            elif not arg.startswith("-"):
                return arg
        return ""

    @property
    def container_id(self) -> str:
        """The last argument: the container id for create/start/kill/delete."""
        return self.args[-1] if self.args else ""


def write_wrapper(path: Path, log: Path, runtime: str) -> None:
    path.write_text(WRAPPER.format(log=log, runtime=runtime))
    path.chmod(0o755)


def read_calls(log: Path) -> list[RuntimeCall]:
    if not log.exists():
        return []
    lines = log.read_text().splitlines()
    return [RuntimeCall(tuple(line.rstrip(ARG_SEPARATOR).split(ARG_SEPARATOR))) for line in lines]


def ids_of(calls: list[RuntimeCall], command: str) -> list[str]:
    return [call.container_id for call in calls if call.command == command]


# ----------------------------------------------------------------- dockerd


@dataclass
class DockerNode:
    """One dockerd: its own namespaces, data root, socket, cgroup parent, runtime wrapper."""

    name: str  # also its hostname, which is what `docker node ls` and `service ps` show
    directory: Path
    cgroup_parent: str
    runtime_log: Path
    proc: subprocess.Popen[bytes] | None = None
    node_id: str = ""

    @property
    def host(self) -> str:
        return f"unix://{self.directory}/docker.sock"

    @property
    def log(self) -> Path:
        return self.directory / "dockerd.log"

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return _run([DOCKER, "--host", self.host, *args])

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        proc = self(*args)
        assert proc.returncode == 0, _explain(proc) + "\n" + self.log_tail()
        return proc

    def argv(self, wrapper: Path, runtime_name: str, registry: str) -> list[str]:
        dockerd = [
            "dockerd", "--config-file", str(self.directory / "daemon.json"),
            "--data-root", str(self.directory / "data"), "--exec-root", "/run/docker",
            "--pidfile", str(self.directory / "docker.pid"), "--host", self.host,
            "--iptables=false", "--ip-forward=false", "--ip-masq=false", "--bridge=none",
            "--userland-proxy=false", "--exec-opt", "native.cgroupdriver=cgroupfs",
            "--storage-driver", "vfs", "--cgroup-parent", f"/{self.cgroup_parent}",
            "--add-runtime", f"{runtime_name}={wrapper}", "--default-runtime", runtime_name,
            "--insecure-registry", registry,
        ]  # fmt: skip
        # PID 1 of the new namespaces: a private /run, its own hostname, then dockerd.
        setup = 'mount -t tmpfs -o mode=0755 ocirt-test-run /run && hostname "$0" && exec "$@"'
        return [*UNSHARE, "--uts", "sh", "-c", setup, self.name, *dockerd]

    def start(self, netns: SharedNetns, runtime: str, runtime_name: str, registry: str) -> None:
        """Start dockerd with ``runtime`` (a path), through the logging wrapper, as
        its default runtime, named ``runtime_name`` ("runc" is taken by dockerd)."""
        self.directory.mkdir()
        (self.directory / "daemon.json").write_text("{}\n")  # not the host's daemon.json
        wrapper = self.directory / "runtime-wrapper"
        write_wrapper(wrapper, self.runtime_log, runtime)
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [*netns.enter(), *self.argv(wrapper, runtime_name, registry)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                pass_fds=(netns.fd,),
            )

    def wait_ready(self) -> None:
        assert self.proc is not None
        proc = self.proc
        wait_for(
            f"dockerd {self.name}",
            lambda: proc.poll() is not None or self("version").returncode == 0,
            60,
            self.log_tail,
        )
        assert proc.poll() is None, f"dockerd {self.name} exited\n{self.log_tail()}"

    def pid_one(self) -> int:
        """dockerd's pid as the host sees it: the namespace's PID 1, the only
        child of unshare (which nsenter became)."""
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
            return int(f.read().split()[0])

    def in_namespace(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in this node's mount and PID namespaces (its /run, its /proc)."""
        return _run(["nsenter", f"--target={self.pid_one()}", "--mount", "--pid", "--", *argv])

    def log_tail(self) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        noteworthy = [ln for ln in lines if "level=error" in ln or "level=warning" in ln]
        return f"dockerd {self.name} log (errors, warnings):\n" + "\n".join(noteworthy[-20:])

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """Remove what is left of the containers, stop dockerd (everything in its
        namespaces dies with it, its /run too), remove its cgroups."""
        try:
            if self.running():
                with contextlib.suppress(subprocess.TimeoutExpired):
                    # dockerd would stop them too, but with its own timeouts.
                    ids = self("ps", "-aq").stdout.split()
                    if ids:
                        self("rm", "--force", *ids)
            if self.proc is not None:
                _stop_containerd(self.proc)  # SIGTERM the namespace's PID 1 (dockerd)
        finally:
            _remove_cgroups(self.cgroup_parent)  # v1: one per hierarchy
            _remove_tree(CGROUP_ROOT / self.cgroup_parent)  # v2: the unified tree

    def cgroup_dir(self, container_id: str) -> Path:
        """A container's cgroup (dockerd's cgroupfs driver: <parent>/<id>): in
        the pids hierarchy on v1 and hybrid hosts, else in the unified tree."""
        v1 = CGROUP_ROOT / "pids"
        base = v1 if (v1 / "cgroup.procs").exists() else CGROUP_ROOT
        return base / self.cgroup_parent / container_id


def _remove_tree(top: Path) -> None:
    """rmdir a cgroup v2 directory of ours and its children, deepest first."""
    if not (top / "cgroup.procs").exists():
        return  # not a v2 cgroup here (a v1 or hybrid host: _remove_cgroups did it)
    assert top.name.startswith("ocirt-test-"), top
    for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            d.rmdir()
    with contextlib.suppress(OSError):
        top.rmdir()


# ----------------------------------------------------------------- swarm queries


def inspect_json(node: DockerNode, *args: str) -> list[dict[str, object]]:
    return json.loads(node.ok("inspect", *args).stdout)


@dataclass(frozen=True)
class Task:
    """A swarm task as the manager reports it."""

    task_id: str
    slot: int
    node_id: str
    desired: str
    state: str
    container_id: str
    exit_code: int | None
    env: tuple[str, ...]
    error: str

    @classmethod
    def from_inspect(cls, raw: dict) -> Task:
        status = raw.get("Status", {})
        container = status.get("ContainerStatus") or {}
        spec = raw.get("Spec", {}).get("ContainerSpec", {})
        return cls(
            task_id=raw["ID"],
            slot=int(raw.get("Slot", 0)),
            node_id=raw.get("NodeID", ""),
            desired=raw.get("DesiredState", ""),
            state=status.get("State", ""),
            container_id=container.get("ContainerID", ""),
            exit_code=container.get("ExitCode"),
            env=tuple(spec.get("Env") or ()),
            error=status.get("Err", ""),
        )


def service_tasks(manager: DockerNode, service: str) -> list[Task]:
    """Every task of the service the manager still knows (history included)."""
    ids = manager.ok("service", "ps", "--quiet", "--no-trunc", service).stdout.split()
    if not ids:
        return []
    return [Task.from_inspect(raw) for raw in inspect_json(manager, "--type", "task", *ids)]


def running(tasks: list[Task]) -> list[Task]:
    return [t for t in tasks if t.desired == "running" and t.state == "running"]


def describe(tasks: list[Task], names: dict[str, str]) -> str:
    rows = [
        f"  slot {t.slot} on {names.get(t.node_id, t.node_id)}: desired {t.desired}, "
        f"state {t.state}, exit {t.exit_code}, container {t.container_id[:12]}"
        + (f", error {t.error!r}" if t.error else "")
        for t in sorted(tasks, key=lambda t: (t.slot, t.task_id))
    ]
    return "tasks:\n" + "\n".join(rows)
