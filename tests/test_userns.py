"""User namespaces: maps written by the runtime, setgroups, caps, /dev, /sys, joining one.

The bundle's directories are made traversable by the mapped root (host uid
100000): a user namespace's root is "other" for a host-root-owned 0700 dir.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import call_runtime, idmap_unsupported

MAP = [{"containerID": 0, "hostID": 100000, "size": 65536}]


def userns(config: dict[str, Any], *, netns: bool = True) -> None:
    namespaces = [n for n in config["linux"]["namespaces"] if netns or n["type"] != "network"]
    config["linux"]["namespaces"] = [*namespaces, {"type": "user"}]
    config["linux"]["uidMappings"] = MAP
    config["linux"]["gidMappings"] = MAP


def traversable(path: Path) -> Path:
    for p in (path, *path.parents):
        if str(p) == "/":
            break
        os.chmod(p, os.stat(p).st_mode | 0o005)
    return path


def run(ocirt: str, root: Path, bundle: Path, name: str = "u1") -> str:
    proc = subprocess.run(
        [ocirt, "--root", str(root), "run", "-b", str(traversable(bundle)), name],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def sh(script: str) -> tuple[str, ...]:
    return ("sh", "-c", script)


def test_maps_setgroups_and_root_inside(ocirt_bin: str, tmp_root: Path, bundle: Any) -> None:
    script = (
        "cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups; id -u;"
        " grep CapEff /proc/self/status"
    )
    out = run(ocirt_bin, tmp_root, bundle(*sh(script), patch=userns)).split()
    assert out[:6] == ["0", "100000", "65536", "0", "100000", "65536"]
    assert out[6] == "allow"  # root wrote the maps: setgroups stays allowed (as runc)
    assert out[7] == "0"
    assert out[8:] == ["CapEff:", "0000000020000420"]


def test_host_sees_mapped_ids(ocirt_bin: str, tmp_root: Path, bundle: Any) -> None:
    b = bundle("sleep", "30", patch=userns)
    subprocess.run(
        [ocirt_bin, "--root", str(tmp_root), "create", "-b", str(traversable(b)), "u2"],
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=60,
    )
    pid = int((tmp_root / "u2" / "state.json").read_text().split('"pid":')[1].split(",")[0])
    status = Path(f"/proc/{pid}/status").read_text()
    assert "Uid:\t100000\t100000\t100000\t100000" in status


def test_devices_are_bind_mounted_from_the_host(
    ocirt_bin: str, tmp_root: Path, bundle: Any
) -> None:
    out = run(
        ocirt_bin,
        tmp_root,
        bundle(
            *sh("grep ' /dev/null ' /proc/self/mountinfo; echo x > /dev/null && echo written"),
            patch=userns,
        ),
    )
    assert (
        "/dev/null" in out and "written" in out
    )  # a bind of the host's node (no mknod in a userns)


def test_sysfs_falls_back_to_a_bind_without_own_netns(
    ocirt_bin: str, tmp_root: Path, bundle: Any
) -> None:
    """runc 1.1.5 fails here; ocirt binds the host's /sys read-only (runc 1.2's fallback)."""
    b = bundle(
        *sh("grep ' /sys ' /proc/self/mountinfo; ls /sys/class/net"),
        patch=lambda c: userns(c, netns=False),
    )
    out = run(ocirt_bin, tmp_root, b)
    line = out.splitlines()[0].split()
    assert line[4] == "/sys" and "ro" in line[5].split(",")
    assert "lo" in out.split()


def test_join_an_existing_user_namespace(ocirt_bin: str, tmp_root: Path, bundle: Any) -> None:
    holder = subprocess.Popen(
        ["unshare", "--user", "--map-root-user", "sleep", "60"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    try:
        ns = f"/proc/{holder.pid}/ns/user"
        for _ in range(100):
            if os.readlink(ns) != os.readlink("/proc/self/ns/user"):
                break
            subprocess.run(["sleep", "0.02"])

        def patch(c: dict[str, Any]) -> None:
            c["linux"]["namespaces"].append({"type": "user", "path": ns})
            for m in c["mounts"]:  # gid 5 is not mapped in that namespace
                m["options"] = [o for o in m.get("options", []) if o != "gid=5"]

        out = run(
            ocirt_bin,
            tmp_root,
            bundle(*sh("readlink /proc/self/ns/user; cat /proc/self/uid_map"), patch=patch),
        )
        assert out.split()[0] == os.readlink(ns)
        assert out.split()[1:] == ["0", "0", "1"]  # unshare --map-root-user's map
    finally:
        holder.kill()
        holder.wait()


def test_mappings_without_user_namespace_refused(
    ocirt_bin: str, tmp_root: Path, bundle: Any
) -> None:
    b = bundle("true", patch={"linux": {"uidMappings": MAP, "gidMappings": MAP}})
    proc = call_runtime(ocirt_bin, tmp_root, "create", "-b", str(b), "bad")
    assert proc.returncode != 0 and "linux.uidMappings" in proc.stderr
    assert not (tmp_root / "bad").exists()


def test_idmap_without_any_mapping_refused(ocirt_bin: str, tmp_root: Path, bundle: Any) -> None:
    mount = {"destination": "/m", "type": "bind", "source": "/tmp", "options": ["bind", "idmap"]}
    b = bundle("true", patch=lambda c: c["mounts"].append(mount))
    proc = call_runtime(ocirt_bin, tmp_root, "create", "-b", str(b), "bad")
    assert proc.returncode != 0 and "mounts[7].options" in proc.stderr, proc.stderr


@pytest.mark.parametrize("recursive", [False, True])
def test_idmap_takes_the_containers_maps(
    ocirt_bin: str, tmp_root: Path, bundle: Any, tmp_path: Path, recursive: bool
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    reason = idmap_unsupported(src)
    if reason:
        pytest.skip(reason)
    traversable(src)
    (src / "f").write_text("x")
    os.chown(src / "f", 0, 0)
    option = "ridmap" if recursive else "idmap"
    mount = {"destination": "/m", "type": "bind", "source": str(src), "options": ["rbind", option]}

    def patch(c: dict[str, Any]) -> None:
        userns(c)
        c["mounts"].append(mount)

    b = bundle(*sh("ls -ln /m/f; grep ' /m ' /proc/self/mountinfo"), patch=patch)
    (b / "rootfs" / "m").mkdir()  # the mapped root cannot mkdir in a host-root rootfs
    out = run(ocirt_bin, tmp_root, b)
    assert out.split()[2:4] == ["0", "0"]  # host root's file is the container root's
    assert "idmapped" in out


def test_bind_source_under_a_private_host_directory(
    ocirt_bin: str, runc_bin: str, tmp_root: Path, bundle: Any, tmp_path: Path
) -> None:
    """The container's root (host uid 100000) cannot traverse a 0700 host
    directory, yet a bind mount whose source lies under one still mounts: the
    source is opened by `ocirt create` in the host's namespaces (runc does the
    same).  Checked: with source_trees' all_binds off, create failed with
    open_tree(...): Permission denied."""
    private = tmp_path / "private"
    (private / "data").mkdir(parents=True)
    (private / "data" / "f").write_text("reached\n")
    os.chmod(private, 0o700)

    def patch(config: dict[str, Any]) -> None:
        userns(config)
        config["mounts"].append(
            {"destination": "/tmp", "type": "bind", "source": str(private / "data"),
             "options": ["rbind", "ro"]}
        )  # fmt: skip

    outputs = {}
    for name, binary in (("ocirt", ocirt_bin), ("runc", runc_bin)):
        b = traversable(bundle("cat", "/tmp/f", patch=patch, name=f"b-{name}"))
        os.chmod(private, 0o700)  # traversable() opened the parents of the bundle only
        outputs[name] = run(binary, tmp_root, b, f"private-{name}")
    assert outputs == {"ocirt": "reached\n", "runc": "reached\n"}
