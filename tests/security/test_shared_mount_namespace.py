"""A container without a mount namespace of its own must not change its caller's mounts.

The spec lets ``linux.namespaces`` leave out ``mount``: the container then
shares the runtime's mount namespace, on a real host the whole machine's.
ocirt used to set it up as if it were its own: ``mount("/", MS_SLAVE|MS_REC)``
on the caller's root, then ``pivot_root`` and a detach of the old root, so
that afterwards the caller's ``/`` *was the container's rootfs* (and
``delete`` could not even reach cgroupfs to clean up).

Each test runs the runtime inside ``unshare -m`` (the "caller": its mount
namespace stands for the host's, so a regression wrecks only that
namespace) with ``/`` made shared there, and checks from the caller's side:
its root is the same directory with the same propagation, the container ran
chrooted in its rootfs, and after ``delete`` (or a failed ``create``) no mount
is left under the rootfs (runc 1.1.5 leaves them; ocirt removes them).

Checked against the fix: with ``rootfs.prepare``'s and ``rootfs.enter``'s
shared-namespace branches removed (the old code), ``test_run_keeps_the_callers_root``
fails with the caller's "/" replaced by the rootfs, and with
``hostmounts.remove_recorded`` out of ``Container.delete`` the mount checks
fail with the container's /proc, /dev, ... left in the caller's table.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

# Run in the caller's (private) mount namespace: prints one JSON object.
PROBE = textwrap.dedent(
    r"""
    import json, os, subprocess, sys, tempfile
    ocirt, root, bundle, cid, script = sys.argv[1:6]
    subprocess.run(["mount", "--make-rshared", "/"], check=True)

    def root_line():
        for line in open("/proc/self/mountinfo"):
            fields = line.split()
            if fields[4] == "/":
                return " ".join(fields[:1] + fields[6:fields.index("-")])

    def under(path):
        real = os.path.realpath(path)
        return [l.split()[4] for l in open("/proc/self/mountinfo")
                if l.split()[4] == real or l.split()[4].startswith(real + "/")]

    def ocirt_cmd(*args, **kw):
        # Files, not pipes: a created container's init holds its stdio open.
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            r = subprocess.run([ocirt, "--root", root, *args], stdout=out, stderr=err,
                               timeout=60, stdin=subprocess.DEVNULL, **kw)
            out.seek(0), err.seek(0)
            return {"rc": r.returncode, "out": out.read().decode(), "err": err.read().decode()}

    before = {"stat": list(os.stat("/")[1:3]), "root": root_line(),
              "under": under(bundle + "/rootfs")}
    steps = {}
    for step in json.loads(script):
        steps.setdefault(step[0], []).append(ocirt_cmd(*step, cwd=bundle))
    after = {"stat": list(os.stat("/")[1:3]), "root": root_line(),
             "under": under(bundle + "/rootfs"), "state_dir": os.path.exists(root + "/" + cid)}
    print(json.dumps({"before": before, "after": after, "steps": steps}))
    """
)


def no_mount_namespace(config: dict[str, Any]) -> None:
    linux = config["linux"]
    linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] != "mount"]


def run_as_caller(
    ocirt: str, root: Path, bundle: Path, cid: str, steps: list[list[str]]
) -> dict[str, Any]:
    (bundle / "rootfs" / "marker-in-rootfs").write_text("rootfs\n")
    result = subprocess.run(
        [
            "unshare",
            "-m",
            "--propagation",
            "private",
            sys.executable,
            "-c",
            PROBE,
            ocirt,
            str(root),
            str(bundle),
            cid,
            json.dumps(steps),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def assert_caller_unchanged(report: dict[str, Any]) -> None:
    before, after = report["before"], report["after"]
    assert after["stat"] == before["stat"], f"the caller's / changed: {report}"
    assert after["root"] == before["root"], f"the caller's / mount changed: {report}"
    assert after["under"] == before["under"], f"mounts left under the rootfs: {report}"


def test_run_keeps_the_callers_root(ocirt_bin, tmp_root, bundle):
    def patch(config: dict[str, Any]) -> None:
        no_mount_namespace(config)
        config["root"]["readonly"] = False  # no mount of the rootfs at all, then

    b = bundle("sh", "-c", "cat /marker-in-rootfs; grep -c . /proc/self/mountinfo", patch=patch)
    report = run_as_caller(ocirt_bin, tmp_root, b, "shared-run", [["run", "shared-run"]])
    (run,) = report["steps"]["run"]
    assert run["rc"] == 0, run
    assert run["out"].splitlines()[0] == "rootfs"  # chrooted in its rootfs
    # The container saw the caller's mounts and its own /proc, /dev, ... on top.
    assert int(run["out"].splitlines()[1]) > 0
    assert_caller_unchanged(report)
    assert not report["after"]["state_dir"]


def test_create_exec_delete_clean_up(ocirt_bin, tmp_root, bundle):
    b = bundle("sleep", "60", patch=no_mount_namespace)
    cid = "shared-exec"
    steps = [
        ["create", cid],
        ["start", cid],
        ["exec", cid, "cat", "/marker-in-rootfs"],
        ["delete", "--force", cid],
    ]
    report = run_as_caller(ocirt_bin, tmp_root, b, cid, steps)
    for name, (result,) in report["steps"].items():
        assert result["rc"] == 0, (name, result)
    # exec joins the init's root, not the shared namespace's "/" (the caller's).
    assert report["steps"]["exec"][0]["out"] == "rootfs\n"
    assert_caller_unchanged(report)
    assert not report["after"]["state_dir"]


def test_readonly_root_leaves_the_callers_mount_writable(ocirt_bin, tmp_root, bundle):
    b = bundle(
        "sh", "-c", "touch /x 2>/dev/null && echo writable || echo read-only",
        patch=lambda c: (no_mount_namespace(c), c["root"].update(readonly=True)),
    )  # fmt: skip
    report = run_as_caller(ocirt_bin, tmp_root, b, "shared-ro", [["run", "shared-ro"]])
    (run,) = report["steps"]["run"]
    assert (run["rc"], run["out"]) == (0, "read-only\n"), run
    assert_caller_unchanged(report)
    (b / "rootfs" / "still-writable").write_text("")  # the host's mount stayed rw


def test_failed_create_leaves_no_mount(ocirt_bin, tmp_root, bundle):
    def patch(config: dict[str, Any]) -> None:
        no_mount_namespace(config)
        # Mounted after /proc and /dev: fails with ENODEV once they are in place.
        config["mounts"].append({"destination": "/x", "type": "no-such-fs", "source": "x"})

    b = bundle("true", patch=patch)
    report = run_as_caller(ocirt_bin, tmp_root, b, "shared-fail", [["run", "shared-fail"]])
    (run,) = report["steps"]["run"]
    assert run["rc"] != 0 and "no-such-fs" in run["err"] + run["out"], run
    assert_caller_unchanged(report)
    assert not report["after"]["state_dir"]


def test_rootfs_propagation_needs_a_mount_namespace(ocirt_bin, tmp_root, bundle):
    b = bundle(
        "true",
        patch=lambda c: (no_mount_namespace(c), c["linux"].update(rootfsPropagation="shared")),
    )
    report = run_as_caller(ocirt_bin, tmp_root, b, "shared-prop", [["run", "shared-prop"]])
    (run,) = report["steps"]["run"]
    assert run["rc"] != 0
    assert "config.json: linux.rootfsPropagation: " in run["err"], run
    assert_caller_unchanged(report)
    assert not report["after"]["state_dir"]


def test_mounts_made_by_the_container_go_too(ocirt_bin, tmp_root, bundle):
    """The container's root may mount in the shared namespace itself (under its
    chroot, i.e. under the rootfs): delete removes those as well."""

    def patch(config: dict[str, Any]) -> None:
        no_mount_namespace(config)
        for caps in config["process"]["capabilities"].values():
            caps.append("CAP_SYS_ADMIN")

    b = bundle(
        "sh", "-c", "mkdir -p /dev/mine && mount -t tmpfs none /dev/mine && sleep 60", patch=patch
    )
    cid = "shared-own"
    wait_for_mount = "while ! grep -q ' /dev/mine ' /proc/self/mountinfo; do sleep 0.1; done"
    steps = [
        ["run", "-d", cid],
        ["exec", cid, "sh", "-c", wait_for_mount],
        ["delete", "--force", cid],
    ]
    report = run_as_caller(ocirt_bin, tmp_root, b, cid, steps)
    for name, (result,) in report["steps"].items():
        assert result["rc"] == 0, (name, result)
    assert_caller_unchanged(report)
