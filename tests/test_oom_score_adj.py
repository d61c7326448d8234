"""process.oomScoreAdj below the caller's, without CAP_SYS_RESOURCE.

kubelet asks -998 for every pause container; where containerd runs without
CAP_SYS_RESOURCE (this host's root, a node in a container) the write fails
unless containerd's restrict_oom_score_adj clamps it (docs/clusters.md). The
error must say which write failed: runc 1.1.5 logs nsexec's "failed to update
/proc/self/oom_score_adj: Permission denied" (then a pipe error); ocirt said only
"Permission denied" before ocirt.linux.user named it (checked by reverting that
change: the assertion on ocirt's message failed).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import BundleFactory, call_runtime

CAP_SYS_RESOURCE = 24
WANTED = "failed to update /proc/self/oom_score_adj: Permission denied"


def _has_cap_sys_resource() -> bool:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> CAP_SYS_RESOURCE & 1)
    return True


def _own_oom_score_adj() -> int:
    return int(Path("/proc/self/oom_score_adj").read_text())


@pytest.fixture
def lower_adj_bundle(bundle: BundleFactory) -> Path:
    if _has_cap_sys_resource():
        pytest.skip("we hold CAP_SYS_RESOURCE: lowering oom_score_adj works")
    if _own_oom_score_adj() <= -1000:
        pytest.skip("our oom_score_adj is already the lowest")
    return bundle("true", patch={"process": {"oomScoreAdj": _own_oom_score_adj() - 1}})


@pytest.mark.parametrize("runtime", ["ocirt", "runc"])
def test_lower_oom_score_adj_names_the_write(
    runtime: str, ocirt_bin: str, runc_bin: str, tmp_root: Path, lower_adj_bundle: Path
) -> None:
    binary = ocirt_bin if runtime == "ocirt" else runc_bin
    log = tmp_root / "log.json"
    result = call_runtime(binary, tmp_root, "--log", str(log), "--log-format", "json",
                          "run", "--bundle", str(lower_adj_bundle), "adj")  # fmt: skip
    assert result.returncode == 1, result
    assert WANTED in log.read_text(), log.read_text()
    if runtime == "ocirt":  # runc's own last line is "can't get final child's PID from pipe"
        assert result.stderr.strip().endswith(f"unable to start container process: {WANTED}")
