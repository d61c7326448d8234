"""mounts[] and linux.devices: options, tmpcopyup, idmapped mounts, propagation,
and hostile rootfs contents that must never reach the host.

Side-by-side comparisons with runc live in conformance/cases (mounts-*,
devices-custom, rootfs-propagation-*), run by tests/test_config_fields.py.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import call_runtime, idmap_unsupported, ok


def run(ocirt: str, root: Path, bundle: Path, name: str = "m1") -> subprocess.CompletedProcess[str]:
    return call_runtime(ocirt, root, "run", "-b", str(bundle), name)


def sh(script: str) -> tuple[str, ...]:
    return ("sh", "-c", script)


def add_mounts(*mounts: dict[str, Any]) -> Any:
    def patch(config: dict[str, Any]) -> None:
        config["mounts"].extend(mounts)

    return patch


def mountinfo_line(out: str, target: str) -> list[str]:
    for line in out.splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4] == target:
            return fields
    raise AssertionError(f"{target} not mounted:\n{out}")


# ------------------------------------------------------------------ tmpcopyup


def test_tmpcopyup_copies_the_directory_into_the_tmpfs(
    ocirt_bin: str, tmp_root: Path, bundle: Any
) -> None:
    def patch(config: dict[str, Any]) -> None:
        config["mounts"].append(
            {
                "destination": "/data",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["tmpcopyup", "nosuid", "size=1m"],
            }
        )

    b = bundle(
        *sh(
            "grep ' /data ' /proc/self/mountinfo; cat /data/sub/file; readlink /data/link;"
            " stat -c '%a %u %g' /data /data/sub/file; echo new > /data/w && echo writable"
        ),
        patch=patch,
    )
    data = b / "rootfs" / "data"
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "file").write_text("copied\n")
    os.chown(data / "sub" / "file", 1000, 27)
    os.chmod(data / "sub" / "file", 0o604)  # no CAP_DAC_OVERRIDE in the default caps
    os.chmod(data, 0o710)
    os.symlink("/etc/passwd", data / "link")  # copied as a link, never followed
    out = ok(run(ocirt_bin, tmp_root, b)).splitlines()
    assert mountinfo_line(out[0], "/data")[-3] == "tmpfs"
    assert out[1:] == ["copied", "/etc/passwd", "710 0 0", "604 1000 27", "writable"]
    assert not (data / "w").exists()  # written to the tmpfs, not the image


def test_tmpcopyup_on_a_bind_is_refused(ocirt_bin: str, tmp_root: Path, bundle: Any) -> None:
    patch = add_mounts(
        {"destination": "/x", "type": "bind", "source": "/tmp", "options": ["bind", "tmpcopyup"]}
    )
    proc = run(ocirt_bin, tmp_root, bundle("true", patch=patch))
    assert proc.returncode != 0 and "mounts[7].options" in proc.stderr
    assert "tmpcopyup needs a tmpfs" in proc.stderr


# ------------------------------------------------------------------ options


def test_bind_with_remount_and_atime_options(
    ocirt_bin: str, tmp_root: Path, bundle: Any, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    patch = add_mounts(
        {
            "destination": "/r",
            "type": "bind",
            "source": str(src),
            "options": ["bind", "ro", "remount", "noatime", "nosymfollow"],
        }
    )
    out = ok(run(ocirt_bin, tmp_root, bundle(*sh("grep ' /r ' /proc/self/mountinfo"), patch=patch)))
    assert {"ro", "noatime", "nosymfollow"} <= set(mountinfo_line(out, "/r")[5].split(","))


def test_recursive_read_only_reaches_submounts(
    ocirt_bin: str, tmp_root: Path, bundle: Any, tmp_path: Path
) -> None:
    src = tmp_path / "tree"
    (src / "sub").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(src / "sub")], check=True)
    try:
        patch = add_mounts(
            {"destination": "/t", "type": "bind", "source": str(src), "options": ["rbind", "rro"]}
        )
        out = ok(
            run(ocirt_bin, tmp_root, bundle(*sh("grep ' /t' /proc/self/mountinfo"), patch=patch))
        )
        assert "ro" in mountinfo_line(out, "/t")[5].split(",")
        assert "ro" in mountinfo_line(out, "/t/sub")[5].split(",")
    finally:
        subprocess.run(["umount", str(src / "sub")], check=True)


def test_overlay_mount(ocirt_bin: str, tmp_root: Path, bundle: Any, tmp_path: Path) -> None:
    with open("/proc/filesystems") as f:
        known = "\toverlay\n" in f.read()
    release = os.uname().release
    if not known and not Path(f"/lib/modules/{release}/kernel/fs/overlayfs").is_dir():
        pytest.skip("no overlayfs in this kernel (not built in, no module)")
    for d in ("lower", "upper", "work"):
        (tmp_path / d).mkdir()
    (tmp_path / "lower" / "l").write_text("lower\n")
    data = [f"lowerdir={tmp_path}/lower", f"upperdir={tmp_path}/upper", f"workdir={tmp_path}/work"]
    patch = add_mounts(
        {"destination": "/ovl", "type": "overlay", "source": "overlay", "options": data}
    )
    out = ok(run(ocirt_bin, tmp_root, bundle(*sh("cat /ovl/l; echo up > /ovl/u"), patch=patch)))
    assert out == "lower\n"
    assert (tmp_path / "upper" / "u").read_text() == "up\n"


def test_unbindable_rootfs_propagation(ocirt_bin: str, tmp_root: Path, bundle: Any) -> None:
    """runc 1.1.5 fails on this one (its own bind of the rootfs is refused)."""
    b = bundle(
        *sh("grep -E ' / | /proc ' /proc/self/mountinfo"),
        patch={"linux": {"rootfsPropagation": "unbindable"}},
    )
    out = ok(run(ocirt_bin, tmp_root, b))
    assert "unbindable" in mountinfo_line(out, "/")[6:]
    assert "unbindable" in mountinfo_line(out, "/proc")[6:]


def test_idmapped_bind_with_its_own_mappings(
    ocirt_bin: str, tmp_root: Path, bundle: Any, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    reason = idmap_unsupported(src)
    if reason:
        pytest.skip(reason)
    (src / "f").write_text("x")
    os.chown(src / "f", 1000, 1000)
    patch = add_mounts(
        {
            "destination": "/m",
            "type": "bind",
            "source": str(src),
            "options": ["bind", "idmap"],
            "uidMappings": [{"containerID": 1000, "hostID": 2000, "size": 10}],
            "gidMappings": [{"containerID": 1000, "hostID": 3000, "size": 10}],
        }
    )
    out = ok(run(ocirt_bin, tmp_root, bundle(*sh("stat -c '%u %g' /m/f"), patch=patch)))
    assert out.split() == ["2000", "3000"]
    assert os.stat(src / "f").st_uid == 1000  # the host's file is untouched


def test_mount_mappings_without_idmap_option_refused(
    ocirt_bin: str, tmp_root: Path, bundle: Any
) -> None:
    maps = [{"containerID": 0, "hostID": 1000, "size": 1}]
    patch = add_mounts(
        {
            "destination": "/m",
            "type": "bind",
            "source": "/tmp",
            "options": ["bind"],
            "uidMappings": maps,
            "gidMappings": maps,
        }
    )
    proc = run(ocirt_bin, tmp_root, bundle("true", patch=patch))
    assert proc.returncode != 0 and "mounts[7].uidMappings" in proc.stderr


# ------------------------------------------------------------------ hostile rootfs


def test_symlinks_in_the_rootfs_never_reach_the_host(
    ocirt_bin: str, tmp_root: Path, bundle: Any
) -> None:
    tag = "ocirt-escape-" + uuid.uuid4().hex[:8]
    patch = add_mounts(
        {"destination": f"/evil/{tag}", "type": "tmpfs", "source": "tmpfs"},
        {"destination": f"/up/{tag}", "type": "tmpfs", "source": "tmpfs"},
        {"destination": f"../../../../tmp/{tag}-dots", "type": "tmpfs", "source": "tmpfs"},
        {"destination": f"/loop/{tag}", "type": "tmpfs", "source": "tmpfs"},
    )
    b = bundle(*sh(f"grep -c {tag} /proc/self/mountinfo"), patch=patch)
    rootfs = b / "rootfs"
    os.symlink("/etc", rootfs / "evil")  # absolute: must resolve inside the rootfs
    os.symlink("../../../../../../../../tmp", rootfs / "up")  # climbing: clamped at its root
    os.symlink("/../../tmp", rootfs / "loop")
    proc = run(ocirt_bin, tmp_root, b)
    assert not Path(f"/etc/{tag}").exists()
    assert not list(Path("/tmp").glob(f"{tag}*"))
    assert ok(proc).strip() == "4"
    assert (rootfs / "etc" / tag).is_dir() and (rootfs / "tmp" / f"{tag}-dots").is_dir()


def test_bind_over_a_symlink_to_a_host_file(
    ocirt_bin: str, tmp_root: Path, bundle: Any, tmp_path: Path
) -> None:
    """A file bind whose destination is a symlink to /etc/shadow binds over the
    rootfs's /etc/shadow, never over the host's."""
    src = tmp_path / "content"
    src.write_text("from-bundle\n")
    patch = add_mounts(
        {"destination": "/etc/link", "type": "bind", "source": str(src), "options": ["bind", "ro"]}
    )
    b = bundle(*sh("cat /etc/shadow-ish"), patch=patch)
    (b / "rootfs" / "etc" / "shadow-ish").write_text("image\n")
    os.symlink("/etc/shadow-ish", b / "rootfs" / "etc" / "link")
    host_before = Path("/etc/hostname").read_text() if Path("/etc/hostname").exists() else None
    assert ok(run(ocirt_bin, tmp_root, b)) == "from-bundle\n"
    if host_before is not None:
        assert Path("/etc/hostname").read_text() == host_before


# ------------------------------------------------------------------ devices


def test_device_over_an_existing_different_file_is_refused(
    ocirt_bin: str, tmp_root: Path, bundle: Any
) -> None:
    dev = {"path": "/etc/passwd", "type": "c", "major": 1, "minor": 3}
    b = bundle("true", patch={"linux": {"devices": [dev]}})
    before = (b / "rootfs" / "etc" / "passwd").read_text()
    proc = run(ocirt_bin, tmp_root, b)
    assert proc.returncode != 0
    assert "linux.devices[0]" in proc.stderr and "a different file already exists" in proc.stderr
    assert (b / "rootfs" / "etc" / "passwd").read_text() == before  # not replaced
    assert not (tmp_root / "m1").exists()


def test_device_through_a_symlink_stays_in_the_rootfs(
    ocirt_bin: str, tmp_root: Path, bundle: Any
) -> None:
    tag = "ocirt-dev-" + uuid.uuid4().hex[:8]
    dev = {"path": f"/hostile/{tag}", "type": "c", "major": 1, "minor": 3, "uid": 1000}
    b = bundle(*sh(f"stat -c '%t:%T %u' /etc/{tag}"), patch={"linux": {"devices": [dev]}})
    os.symlink("/etc", b / "rootfs" / "hostile")
    assert ok(run(ocirt_bin, tmp_root, b)).strip() == "1:3 1000"
    assert not Path(f"/etc/{tag}").exists()


def test_device_path_with_dots_stays_in_the_rootfs(
    ocirt_bin: str, tmp_root: Path, bundle: Any
) -> None:
    tag = "ocirt-dots-" + uuid.uuid4().hex[:8]
    dev = {"path": f"/dev/../../../../tmp/{tag}", "type": "p"}
    b = bundle(*sh(f"stat -c %F /tmp/{tag}"), patch={"linux": {"devices": [dev]}})
    assert ok(run(ocirt_bin, tmp_root, b)).strip() == "fifo"
    assert not Path(f"/tmp/{tag}").exists()


def test_existing_identical_node_is_kept(ocirt_bin: str, tmp_root: Path, bundle: Any) -> None:
    """With /dev not a tmpfs, a node the image already has is reused, not an error."""

    def patch(config: dict[str, Any]) -> None:
        config["mounts"] = [m for m in config["mounts"] if not m["destination"].startswith("/dev")]
        config["linux"]["devices"] = [{"path": "/dev/zero", "type": "c", "major": 1, "minor": 5}]

    b = bundle(*sh("stat -c '%t:%T' /dev/zero"), patch=patch)
    os.mknod(b / "rootfs" / "dev" / "zero", 0o600 | 0o020000, os.makedev(1, 5))
    assert ok(run(ocirt_bin, tmp_root, b)).strip() == "1:5"


@pytest.mark.parametrize("path", ["relative/dev", "/"])
def test_bad_device_paths_refused(ocirt_bin: str, tmp_root: Path, bundle: Any, path: str) -> None:
    dev = {"path": path, "type": "c", "major": 1, "minor": 3}
    proc = run(ocirt_bin, tmp_root, bundle("true", patch={"linux": {"devices": [dev]}}))
    assert proc.returncode != 0 and "linux.devices[0].path" in proc.stderr, proc.stderr


def test_failed_mount_leaves_nothing_behind(ocirt_bin: str, tmp_root: Path, bundle: Any) -> None:
    patch = add_mounts({"destination": "/x", "type": "nosuchfs", "source": "none"})
    b = bundle("true", patch=patch)
    before = Path("/proc/self/mountinfo").read_text().count("\n")
    proc = call_runtime(ocirt_bin, tmp_root, "create", "-b", str(b), "bad")
    assert proc.returncode != 0 and "mounts[7]" in proc.stderr
    assert not (tmp_root / "bad").exists()
    assert Path("/proc/self/mountinfo").read_text().count("\n") == before
    assert str(b) not in Path("/proc/self/mountinfo").read_text()


# ------------------------------------------------------------------ cgroup v1 binds
@pytest.mark.parametrize(
    ("flags", "attr_set", "attr_clr"),
    [
        # the default cgroup mount: ro,nosuid,nodev,noexec,relatime
        (0x1 | 0x2 | 0x4 | 0x8 | 0x200000, 0x1 | 0x2 | 0x4 | 0x8, 0x70 | 0x80),
        # ro,nodev,strictatime: nosuid and noexec are cleared, as a bind remount does
        (0x1 | 0x4 | 0x1000000, 0x1 | 0x4 | 0x20, 0x2 | 0x8 | 0x80 | 0x70),
        # nothing named: everything cleared, relatime
        (0, 0, 0x1 | 0x2 | 0x4 | 0x8 | 0x80 | 0x70),
        # noatime and nodiratime
        (0x400 | 0x800, 0x10 | 0x80, 0x1 | 0x2 | 0x4 | 0x8 | 0x70),
    ],
)
def test_bind_remount_flags_as_mount_attributes(flags: int, attr_set: int, attr_clr: int) -> None:
    """The v1 hierarchies are cloned, given their flags with mount_setattr and only
    then attached; the attributes must be what `mount -o bind,remount` leaves."""
    from ocirt.linux.rootfs import _mount_attrs

    assert _mount_attrs(flags) == (attr_set, attr_clr)


JOINT = "net_cls,net_prio"  # v1-only controllers; a host mounts them jointly (systemd)


def _joint_hierarchy() -> tuple[str, str]:
    """(hierarchy id, cgroups in it) of net_cls ("0": in no v1 hierarchy)."""
    for line in Path("/proc/cgroups").read_text().splitlines()[1:]:
        name, hierarchy, count = line.split()[:3]
        if name == JOINT.split(",")[0]:
            return hierarchy, count
    return "", ""


def _release_joint_hierarchy(mountpoint: Path) -> None:
    """End the hierarchy the test made.  Its last umount ends it only if its
    root had no child left, and a removed cgroup stays a (dying) child for a
    moment: once only the root is left, mount and unmount it again."""
    deadline = time.monotonic() + 10
    next_cycle = 0.0
    while time.monotonic() < deadline:
        hierarchy, count = _joint_hierarchy()
        if hierarchy == "0":
            return
        if count == "1" and time.monotonic() >= next_cycle:
            subprocess.run(
                ["unshare", "-m", "--propagation", "private", "sh", "-c",
                 f'mount -t cgroup -o {JOINT} ocirt-test "$1" && umount "$1"', "sh",
                 str(mountpoint)],
                capture_output=True, timeout=10,
            )  # fmt: skip
            next_cycle = time.monotonic() + 1  # the kernel frees it a little later
        time.sleep(0.05)
    raise AssertionError(f"the {JOINT} hierarchy this test made is still there")


@pytest.mark.parametrize("runtime", ["ocirt", "runc"])
def test_joint_v1_controllers_are_linked_by_name(
    ocirt_bin: str, runc_bin: str, tmp_root: Path, bundle: Any, tmp_path: Path, runtime: str
) -> None:
    """A hierarchy of joint controllers (systemd mounts cpu,cpuacct and
    net_cls,net_prio so) is also reached by each controller's name in the
    container's /sys/fs/cgroup, as runc links it (ocirt's binds skipped the
    links).  The hierarchy is mounted in a private mount namespace, where
    the runtime runs, and goes with it."""
    if os.geteuid() != 0 or _joint_hierarchy()[0] != "0":
        pytest.skip(f"{JOINT} are not free to mount as a v1 hierarchy of this test's")
    binary = {"ocirt": ocirt_bin, "runc": runc_bin}[runtime]
    mountpoint = tmp_path / "hierarchies" / JOINT
    mountpoint.mkdir(parents=True)
    # One level: runc's delete removes its leaf, not the parents it made.
    cgroup = f"/ocirt-test-joint-{uuid.uuid4().hex[:8]}-{runtime}"

    def patch(config: dict[str, Any]) -> None:
        config["linux"]["cgroupsPath"] = cgroup

    links = "readlink /sys/fs/cgroup/net_cls; readlink /sys/fs/cgroup/net_prio"
    b = bundle(*sh(links), patch=patch)
    script = (
        f'mount -t cgroup -o {JOINT} ocirt-test "$1" || exit 77\n'
        '"$2" --root "$3" run -b "$4" joint; rc=$?\n'
        '"$2" --root "$3" delete -f joint 2>/dev/null\n'
        f'rmdir "$1{cgroup}" 2>/dev/null\n'
        'umount "$1"; exit $rc\n'
    )
    try:
        proc = subprocess.run(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh",
             str(mountpoint), binary, str(tmp_root), str(b)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        _release_joint_hierarchy(mountpoint)
    if proc.returncode == 77:
        pytest.skip(f"mount -t cgroup -o {JOINT}: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [JOINT, JOINT], proc.stdout
