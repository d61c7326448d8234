"""openat2's EAGAIN (a rename anywhere on the host during a ".." under
RESOLVE_IN_ROOT) is retried: create's mounts once failed with "Resource
temporarily unavailable" on a busy host (test_mounts' symlink test did)."""

from __future__ import annotations

import posix
import subprocess
import sys
import time
from pathlib import Path

from ocirt.linux import paths

LOOKUPS = 100_000  # beside one renaming loop ~3% of them met EAGAIN before the retry


def test_lookups_in_root_survive_renames_elsewhere(tmp_path: Path) -> None:
    (tmp_path / "root" / "x").mkdir(parents=True)
    # The ".." come from a symlink: open_in_root resolves the path's own lexically.
    (tmp_path / "root" / "up").symlink_to("../../x/../x")
    (tmp_path / "elsewhere").mkdir()
    renamer = (
        f"import posix\nposix.chdir({str(tmp_path / 'elsewhere')!r})\n"
        "posix.close(posix.open('a', posix.O_CREAT | posix.O_WRONLY))\n"
        "while True:\n    posix.rename('a', 'b')\n    posix.rename('b', 'a')\n"
    )
    renaming = subprocess.Popen([sys.executable, "-I", "-S", "-c", renamer])
    root = posix.open(str(tmp_path / "root"), posix.O_PATH | posix.O_DIRECTORY)
    failed: list[OSError] = []
    try:
        time.sleep(0.2)  # the loop runs
        assert renaming.poll() is None
        for _ in range(LOOKUPS):
            try:
                posix.close(paths.open_in_root(root, "up"))
            except OSError as e:
                failed.append(e)
    finally:
        renaming.kill()
        renaming.wait()
        posix.close(root)
    assert not failed, f"{len(failed)} of {LOOKUPS} failed, e.g. {failed[0]}"
