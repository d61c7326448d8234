"""Shared pytest fixtures for running containers.

Fixtures (``tmp_root`` skips the test unless we are root; ``need_root()`` and
``deep_merge()`` are importable helpers: ``from conftest import need_root``):

``ocirt_bin`` (session) -> str
    Path of the ``ocirt`` under test: ``$OCIRT`` if set, else the repo's
    ``.venv/bin/ocirt``, else ``ocirt`` on ``PATH``.
``runc_bin`` (session) -> str
    Path of the reference runc (``$RUNC`` or ``runc`` on ``PATH``); skips if absent.
``tmp_root`` -> Path
    A fresh, empty directory for ``--root``.  At teardown every container still
    in it is removed with ``ocirt --root R delete -f ID`` (and, if its state
    directory is still there, ``runc --root R delete -f ID``), then the
    directory is deleted.  Works for containers made by either runtime.
``bundle`` -> factory ``bundle(*args, patch=None, name="bundle") -> Path``
    Builds an OCI bundle under ``tmp_path``: a busybox rootfs and ``runc
    spec``'s config (via ``tools/mkbundle.sh``, built once per session and
    copied), with ``process.terminal = false`` and ``process.args = args``
    (default ``["sh"]``).  ``patch`` is either a dict deep-merged into
    config.json (dicts merge key by key, anything else replaces; ``None``
    values delete the key; lists are replaced whole, so an ``env`` patch must
    repeat ``PATH``) or a callable that edits the config dict in place.

Example::

    def test_echo(ocirt_bin, tmp_root, bundle):
        b = bundle("pwd", patch={"process": {"cwd": "/tmp"}})
        out = subprocess.run([ocirt_bin, "--root", str(tmp_root), "run", "-b", str(b), "c1"],
                             capture_output=True, text=True, timeout=30)
        assert out.stdout == "/tmp\\n"
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

REPO = Path(__file__).resolve().parents[1]
MKBUNDLE = REPO / "tools" / "mkbundle.sh"

Json = Any
Patch = dict[str, Any] | Callable[[dict[str, Any]], None] | None


class BundleFactory(Protocol):
    def __call__(self, *args: str, patch: Patch = None, name: str = "bundle") -> Path: ...


# Kernels from which a file system takes idmapped mounts (FS_ALLOW_IDMAP).
IDMAP_SINCE = {"ext4": (5, 12), "xfs": (5, 12), "btrfs": (5, 15), "overlay": (5, 19),
               "tmpfs": (6, 3)}  # fmt: skip


def idmap_unsupported(path: Path) -> str | None:
    """Why an idmapped mount of PATH cannot work on this host, or None."""
    from ocirt.linux import hostcheck

    if not hostcheck.idmapped_mounts_supported():
        return "no mount_setattr(2): idmapped mounts need Linux 5.12+"
    target, fstype = os.path.realpath(path), ""
    best = -1
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            mountpoint = fields[4].replace("\\040", " ")
            inside = target == mountpoint or target.startswith(mountpoint.rstrip("/") + "/")
            if inside and len(mountpoint) > best:
                best, fstype = len(mountpoint), fields[fields.index("-") + 1]
    kernel = tuple(int(n) for n in re.findall(r"\d+", os.uname().release)[:2])
    since = IDMAP_SINCE.get(fstype)
    if since is None or kernel < since:
        return f"{fstype} on Linux {os.uname().release} takes no idmapped mounts"
    return None


def need_root() -> None:
    """Skip the calling test unless we are root (containers need it)."""
    if os.geteuid() != 0:
        pytest.skip("running containers needs root")


def deep_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Merge ``patch`` into ``base`` in place and return it (None deletes a key)."""
    for key, value in patch.items():
        if value is None:
            base.pop(key, None)
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_merge(base[key], value)
        else:
            base[key] = value
    return base


@pytest.fixture(scope="session")
def ocirt_bin() -> str:
    for cand in _ocirt_candidates():
        if cand and os.access(cand, os.X_OK):
            return cand
    pytest.skip("no ocirt binary: set $OCIRT or run `pip install -e .` in .venv")


@pytest.fixture(scope="session")
def runc_bin() -> str:
    runc = os.environ.get("RUNC") or shutil.which("runc")
    if not runc:
        pytest.skip("runc is not installed")
    return runc


def _delete_leftovers(root: Path, runtimes: list[str]) -> list[str]:
    """`delete -f` every container still in ROOT; the ones that would not go.

    A container whose delete fails keeps its state directory (and with it the
    record of its cgroups and mounts): the caller must not just remove ROOT,
    or what the container holds on the host is left behind unseen.
    """
    if not root.is_dir():
        return []
    failures = []
    for entry in sorted(root.iterdir()):
        if not entry.is_dir():
            continue
        errors = []
        for _round in range(2):  # a second round after a pause: a busy host
            for runtime in runtimes:
                if not entry.exists():
                    break
                result = subprocess.run(
                    [runtime, "--root", str(root), "delete", "-f", entry.name],
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                )
                errors.append(f"{Path(runtime).name}: {result.stderr.strip()}")
            if not entry.exists():
                break
            time.sleep(2)
        if entry.exists():
            failures.append(f"{entry.name}: {'; '.join(errors)}")
    return failures


def _ocirt_candidates() -> list[str]:
    env = os.environ.get("OCIRT")
    return [env] if env else [str(REPO / ".venv" / "bin" / "ocirt"), shutil.which("ocirt") or ""]


@pytest.fixture
def tmp_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    need_root()
    root = tmp_path_factory.mktemp("state-root")
    try:
        yield root
    finally:
        ocirt = next((c for c in _ocirt_candidates() if c and os.access(c, os.X_OK)), "")
        runc = os.environ.get("RUNC") or shutil.which("runc")
        runtimes = [r for r in (ocirt, runc) if r and os.access(r, os.X_OK)]
        failures = _delete_leftovers(root, runtimes)
        # The state of a container that could not be deleted stays, to clean up by hand.
        if not failures:
            shutil.rmtree(root, ignore_errors=True)
        assert not failures, f"containers in {root} could not be deleted: {failures}"


@pytest.fixture(scope="session")
def _bundle_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # In the cgroup v2 VM: the one its host built (see run_pytest_in_cgroup2_vm).
    prebuilt = os.environ.get("OCIRT_TEST_BUNDLE_TEMPLATE")
    if prebuilt and Path(prebuilt, "config.json").is_file():
        return Path(prebuilt)
    if shutil.which(os.environ.get("RUNC", "runc")) is None:
        pytest.skip("tools/mkbundle.sh needs `runc spec` (install runc)")
    if not os.access(os.environ.get("BUSYBOX", "/bin/busybox"), os.X_OK):
        pytest.skip("busybox-static is not installed (/bin/busybox)")
    template = tmp_path_factory.mktemp("bundle-template") / "bundle"
    subprocess.run(["sh", str(MKBUNDLE), str(template)], check=True, capture_output=True)
    return template


@pytest.fixture
def bundle(_bundle_template: Path, tmp_path: Path) -> BundleFactory:
    def make(*args: str, patch: Patch = None, name: str = "bundle") -> Path:
        dest = tmp_path / name
        if dest.exists():
            raise FileExistsError(f"bundle {name!r} already exists in this test")
        # cp -a keeps the applet symlinks, modes and ownership.
        subprocess.run(["cp", "-a", str(_bundle_template), str(dest)], check=True)
        cfg_path = dest / "config.json"
        config: dict[str, Any] = json.loads(cfg_path.read_text())
        config["process"]["args"] = list(args) if args else ["sh"]
        if callable(patch):
            patch(config)
        elif patch:
            deep_merge(config, patch)
        cfg_path.write_text(json.dumps(config, indent="\t") + "\n")
        return dest

    return make


# Seconds of the VM's time that are not the guest's pytest run: booting (~5 s, but
# over a minute on a busy CI runner without KVM), its fixture teardown after an
# interrupt, and powering off.
VM_MARGIN = 180


def run_pytest_in_cgroup2_vm(
    pytest_args: list[str], timeout: float, wrapper: list[str] | None = None
) -> str:
    """Run pytest with PYTEST_ARGS inside ../shared/tools/cgroup2-vm (a pure cgroup v2
    guest); return the tail of its output.  WRAPPER (a command prefix) runs
    the guest's pytest under something, e.g. tests/guest/with-systemd.sh.

    Skips when the VM tool, its kernel or qemu is missing; fails when the VM
    does not run, or when the guest's run has failures or passed nothing.

    Bounded, and a hang says where: pytest runs with ``-v`` (the output names
    the test that hangs) and dumps the stacks of a test that runs for more than a
    third of its time; the guest interrupts its own pytest (SIGINT: pytest tears
    its fixtures down and prints its summary) after TIMEOUT - VM_MARGIN seconds;
    should the VM not answer within TIMEOUT, it is killed and the test fails
    with the guest's output so far.
    """
    tool = Path(os.environ.get("CGROUP2_VM", REPO.parent / "shared/tools/cgroup2-vm"))
    kernel_dir = Path(os.environ.get("VM_KERNEL_DIR", "/var/cache/cgroup2-vm/kernel"))
    if not tool.exists():
        pytest.skip(f"{tool} is missing")
    if not list(kernel_dir.glob("boot/vmlinuz-*")):
        pytest.skip(f"no VM kernel in {kernel_dir}: run `{tool} --fetch-kernel` once")
    if not shutil.which("qemu-system-x86_64"):
        pytest.skip("qemu-system-x86_64 is missing (apt-get install qemu-system-x86)")
    guest_limit = max(60, int(timeout) - VM_MARGIN)
    argv = [
        str(tool),
        *(wrapper or []),
        *("timeout", "-s", "INT", "-k", "60", str(guest_limit)),
        *(sys.executable, "-m", "pytest", *pytest_args),
        *("-v", "--durations=5", "-p", "no:cacheprovider"),
        # A test still running after a third of that: the stacks of its threads.
        *("-o", f"faulthandler_timeout={guest_limit // 3}"),
    ]
    # The bundle template takes 1-2 min to build in the guest (a fork+exec per
    # busybox applet), a second here: built here, where the guest can read it
    # (not under /tmp: the guest has a tmpfs of its own there).
    with tempfile.TemporaryDirectory(prefix="ocirt-vm-bundle-", dir="/var/tmp") as shared:
        env = dict(os.environ)
        template = Path(shared, "bundle")
        built = subprocess.run(
            ["sh", str(MKBUNDLE), str(template)], capture_output=True, timeout=120, check=False
        )
        if built.returncode == 0:
            env["OCIRT_TEST_BUNDLE_TEMPLATE"] = str(template)
        returncode, stdout, stderr = _run_vm(argv, env, timeout)
        if returncode is None:
            # The guest's own `timeout` did not end its pytest: the emulated VM
            # itself stopped answering (seen about once in ten CI runs, with
            # qemu busy on both CPUs; a new boot then passes).  Boot once more,
            # with the guest's kernel log this time, and say so.
            first = _vm_tail(stdout, stderr, lines=40)
            print(f"cgroup2-vm: the VM hung (killed after {timeout} s); output:\n{first}")
            print("cgroup2-vm: booting it once more, with VM_DEBUG=1")
            returncode, stdout, stderr = _run_vm(argv, dict(env, VM_DEBUG="1"), timeout)
    if returncode is None:
        pytest.fail(
            f"cgroup v2 run: the VM did not answer within {timeout} s and was killed "
            f"(the guest's pytest had {guest_limit} s); its output so far:\n"
            f"{_vm_tail(stdout, stderr)}\n(VM_DEBUG=1 shows the guest's kernel log)",
            pytrace=False,
        )
    tail = _vm_tail(stdout, stderr)
    if returncode in (124, 137):  # timeout(1): SIGINT sent / SIGKILL needed too
        where = f"the guest's pytest run took longer than {guest_limit} s and was interrupted"
    elif returncode == 125:
        where = "the VM failed to run"
    else:
        where = "the guest's tests failed"
    assert returncode == 0, f"cgroup v2 run: {where} (exit {returncode}):\n{tail}"
    counts = re.compile(r"\b\d+ (passed|failed|skipped|deselected|errors?)\b")
    summary = next((ln for ln in reversed(stdout.splitlines()) if counts.search(ln)), "")
    assert re.search(r"\b\d+ passed\b", summary), f"nothing passed on cgroup v2:\n{tail}"
    assert not re.search(r"\b(failed|errors?)\b", summary), tail
    return _vm_tail(stdout, stderr, lines=30)


def _run_vm(argv: list[str], env: dict[str, str], timeout: float) -> tuple[int | None, str, str]:
    """(exit status, stdout, stderr) of the VM script; status None if it timed out."""
    # Its own session: on a timeout, qemu goes too (killing the script alone
    # would leave the guest running, and holding our pipes).
    proc = subprocess.Popen(
        argv,
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
        return proc.returncode, stdout, stderr
    except subprocess.TimeoutExpired:
        _stop_process_group(proc)
        stdout, stderr = proc.communicate(timeout=60)
        return None, stdout, stderr


def _vm_tail(stdout: str, stderr: str, lines: int = 200) -> str:
    tail = "\n".join(stdout.splitlines()[-lines:])
    if stderr.strip():
        tail += f"\nstderr: {stderr[-2000:]}"
    return tail


def _stop_process_group(proc: subprocess.Popen[str]) -> None:
    """SIGINT to the VM script's process group (qemu exits, the script removes its
    temporary directory), SIGKILL if that is not enough within 10 s."""
    for sig, grace in ((signal.SIGINT, 10), (signal.SIGKILL, 30)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def run_captured(
    argv: list[str], timeout: float = 60, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """ARGV with stdin /dev/null and its output captured through files, not pipes:
    a created container's init keeps the stdio it was given, and a pipe would
    never reach EOF."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.run(
            argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
            timeout=timeout, check=False,
        )  # fmt: skip
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(
            proc.args, proc.returncode, out.read().decode(), err.read().decode()
        )


def call_runtime(
    binary: str, root: Path, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`BINARY --root ROOT ARGS...` with output captured (run_captured)."""
    return run_captured([binary, "--root", str(root), *args], timeout)


def run_isolated(code: str) -> subprocess.CompletedProcess[str]:
    """CODE in a fresh `python -I -S`, the launcher's start: what it imports is its own."""
    return subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=False
    )


def remove_cgroup_dir(path: Path, attempts: int, delay: float) -> None:
    """rmdir a cgroup a test made, retrying while the kernel says busy (a killed
    task leaves it a moment after it is reaped); one that is gone is done."""
    for _ in range(attempts):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(delay)


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    """PROC's stdout, after asserting it succeeded."""
    assert proc.returncode == 0, proc.stderr
    return proc.stdout
