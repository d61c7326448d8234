"""Run one bundle with ocirt and its peers (runc, crun), side by side.

``peer_runtimes(ocirt_bin, tmp_path)`` returns a ``Runtime`` for ocirt, for
runc when it is installed and for crun when it is installed (crun 1.8 refuses
this hybrid cgroup host: it runs under ``tools/nohybrid.sh``, a mount
namespace without the cgroup2 mount, when that tool is there).  Each runtime
gets a state root of its own under TMP_PATH; ``Runtime.cleanup()`` deletes
what is left in it.  Example::

    for rt in peer_runtimes(ocirt_bin, tmp_path):
        result = rt.run_bundle(bundle_path, "c1")
        outputs[rt.name] = result.stdout
    ...
    for rt in runtimes: rt.cleanup()
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from conftest import run_captured

REPO = Path(__file__).resolve().parents[1]
NOHYBRID = REPO / "tools" / "nohybrid.sh"


class Runtime:
    def __init__(self, name: str, argv: list[str], root: Path) -> None:
        self.name = name
        self.argv = argv  # the command, wrapper included
        self.root = root

    def cmd(self, *args: str) -> list[str]:
        return [*self.argv, "--root", str(self.root), *args]

    def call(
        self, *args: str, cwd: Path | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return run_captured(self.cmd(*args), timeout, cwd)

    def run_bundle(self, bundle: Path, cid: str, *flags: str) -> subprocess.CompletedProcess[str]:
        return self.call("run", *flags, "-b", str(bundle), cid)

    def cleanup(self) -> None:
        if not self.root.is_dir():
            return
        for entry in self.root.iterdir():
            if entry.is_dir():
                self.call("delete", "-f", entry.name)
        shutil.rmtree(self.root, ignore_errors=True)


def peer_runtimes(ocirt_bin: str, tmp_path: Path, with_crun: bool = True) -> list[Runtime]:
    runtimes = [Runtime("ocirt", [ocirt_bin], tmp_path / "root-ocirt")]
    runc = os.environ.get("RUNC") or shutil.which("runc")
    if runc:
        runtimes.append(Runtime("runc", [runc], tmp_path / "root-runc"))
    crun = shutil.which("crun")
    if with_crun and crun and NOHYBRID.is_file():
        runtimes.append(Runtime("crun", ["sh", str(NOHYBRID), crun], tmp_path / "root-crun"))
    return runtimes
