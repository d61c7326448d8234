"""`ocirt check`: what this host can honour, and the consequences it names are the real ones.

Each finding is compared with the host itself (read here independently),
and where a feature is missing, the config it names is refused by
`ocirt create` with the same reason: check and validation share their
probes (ocirt.linux.hostcheck), so they cannot disagree.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import call_runtime, ok


def _check(ocirt_bin: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ocirt_bin, "check", *args], capture_output=True, text=True)


def _findings(ocirt_bin: str) -> dict[str, dict]:
    return {f["name"]: f for f in json.loads(ok(_check(ocirt_bin, "--json")))}


def test_one_line_per_finding_and_the_json_says_the_same(ocirt_bin: str) -> None:
    lines = ok(_check(ocirt_bin)).splitlines()
    findings = json.loads(ok(_check(ocirt_bin, "--json")))
    assert len(lines) == len(findings)
    for line, finding in zip(lines, findings, strict=True):
        status = "ok" if finding["ok"] else "missing"
        assert line.startswith(f"{status:<8} {finding['name']}: {finding['detail']}")
        if not finding["ok"]:
            assert line.endswith(f" -> {finding['consequence']}")
    names = {f["name"] for f in findings}
    for expected in ("cgroups", "systemd", "user namespaces", "newuidmap/newgidmap",
                     "idmapped mounts", "seccomp", "seccomp notify", "time namespace",
                     "overlayfs", "AppArmor", "SELinux", "Intel RDT", "CRIU"):  # fmt: skip
        assert expected in names


def test_arguments_are_refused_as_runc_refuses_them(ocirt_bin: str) -> None:
    done = _check(ocirt_bin, "extra")
    assert done.returncode == 1
    assert 'msg="ocirt: \\"check\\" requires exactly 0 argument(s)"' in done.stderr


def test_findings_match_the_host(ocirt_bin: str) -> None:
    findings = _findings(ocirt_bin)
    assert findings["time namespace"]["ok"] == os.path.exists("/proc/self/ns/time")
    assert findings["systemd"]["ok"] == os.path.isdir("/run/systemd/system")
    with open("/proc/filesystems") as f:
        assert findings["overlayfs"]["ok"] == ("\toverlay\n" in f.read())
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            apparmor = f.read().strip() == "Y"
    except OSError:
        apparmor = False
    assert findings["AppArmor"]["ok"] == apparmor
    assert findings["newuidmap/newgidmap"]["ok"] == bool(
        shutil.which("newuidmap") and shutil.which("newgidmap")
    )
    with open("/proc/self/mountinfo") as f:
        mounts = f.read()
    cgroups = findings["cgroups"]["detail"]
    if " - cgroup2 " in mounts and " - cgroup " not in mounts:
        assert cgroups.startswith("v2")
    elif " - cgroup " in mounts:
        assert cgroups.startswith(("v1", "hybrid"))
    # Not implemented: never "ok", whatever the host has.
    assert findings["Intel RDT"]["ok"] is False
    assert findings["CRIU"]["ok"] is False


@pytest.mark.parametrize(
    ("finding", "patch", "refusal"),
    [
        (
            "AppArmor",
            {"process": {"apparmorProfile": "ocirt-test"}},
            "AppArmor is not enabled on this host",
        ),
        (
            "SELinux",
            {"process": {"selinuxLabel": "system_u:system_r:container_t:s0"}},
            "selinux is disabled or not supported",
        ),
        ("Intel RDT", {"linux": {"intelRdt": {"closID": "ocirt-test"}}}, "linux.intelRdt"),
    ],
)
def test_a_missing_feature_refuses_the_config_check_names(
    ocirt_bin: str, tmp_root: Path, bundle, finding: str, patch: dict, refusal: str
) -> None:
    """When check says missing, create refuses that config with the same reason."""
    if _findings(ocirt_bin)[finding]["ok"]:
        pytest.skip(f"this host has {finding}: nothing is refused")
    path = bundle("true", patch=patch)
    done = call_runtime(ocirt_bin, tmp_root, "create", "--bundle", str(path), "check-refused")
    assert done.returncode == 1
    assert refusal in done.stderr
    assert call_runtime(ocirt_bin, tmp_root, "list", "-q").stdout.strip() == ""
