"""ocirt.linux.seccomp_cache: compiled programs kept by profile, taken only when trusted.

The cache spares a manager's create ~16 ms of libseccomp per container, so a
program from it must be exactly the compile's, and a file that is not the
runtime's own whole program (another owner, writable by others, a symlink,
cut short) must never be loaded: then the profile is compiled again.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from ocirt.linux import seccomp, seccomp_cache

REFERENCE = Path("/work/shared/reference/configs")
MKDIR = ["sh", "-c", "mkdir /tmp/d; echo rc=$?; rmdir /tmp/d 2>/dev/null; true"]


def reference_seccomp(name: str) -> dict[str, Any]:
    path = REFERENCE / f"{name}.json"
    if not path.exists():
        pytest.skip(f"{path} is not here")
    return json.loads(path.read_text())["linux"]["seccomp"]


def deny_mkdir(errno_ret: int = 1) -> dict[str, Any]:
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno_ret}
        ],
    }


def entry(directory: Path, profile: dict[str, Any]) -> Path:
    return directory / seccomp_cache._key(profile)


@pytest.mark.parametrize("name", ["docker", "podman"])
def test_a_cached_program_is_the_compiled_one(tmp_path: Path, name: str) -> None:
    profile = reference_seccomp(name)
    fresh = seccomp.compile_filter(profile)
    first = seccomp_cache.compile_filter(profile, str(tmp_path))
    assert entry(tmp_path, profile).is_file()
    again = seccomp_cache.compile_filter(profile, str(tmp_path))
    for got in (first, again):
        assert (got.program, got.flags) == (fresh.program, fresh.flags)


def test_flags_travel_with_the_program(tmp_path: Path) -> None:
    profile = {**deny_mkdir(), "flags": ["SECCOMP_FILTER_FLAG_LOG"]}
    seccomp_cache.compile_filter(profile, str(tmp_path))
    cached = seccomp_cache.compile_filter(profile, str(tmp_path))
    assert cached.flags == seccomp.compile_filter(profile).flags != 0


def test_each_profile_has_its_own_entry(tmp_path: Path) -> None:
    assert entry(tmp_path, deny_mkdir(1)) != entry(tmp_path, deny_mkdir(2))
    one = seccomp_cache.compile_filter(deny_mkdir(1), str(tmp_path))
    two = seccomp_cache.compile_filter(deny_mkdir(2), str(tmp_path))
    assert one.program != two.program
    assert len(os.listdir(tmp_path)) == 2


def test_the_cache_keeps_only_the_newest_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every distinct profile adds an entry: past MAX_ENTRIES the oldest go, so
    the cache cannot grow without bound (a fuzzing run made 300 here)."""
    monkeypatch.setattr(seccomp_cache, "MAX_ENTRIES", 3)
    profiles = [deny_mkdir(errno_ret) for errno_ret in range(1, 6)]
    for profile in profiles:
        seccomp_cache.compile_filter(profile, str(tmp_path))
        # mtime order must not depend on the file system's timestamp granularity
        path = entry(tmp_path, profile)
        os.utime(path, ns=(path.stat().st_mtime_ns, len(os.listdir(tmp_path)) * 10**9))
    assert sorted(os.listdir(tmp_path)) == sorted(entry(tmp_path, p).name for p in profiles[2:])


def test_the_listener_fields_do_not_split_entries(tmp_path: Path) -> None:
    """listenerPath and listenerMetadata only say where the runtime sends the
    listener: a profile compiles to the same program whatever they are."""
    notify = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}],
    }
    one = {**notify, "listenerPath": "/run/a.sock", "listenerMetadata": "pod-a"}
    two = {**notify, "listenerPath": "/run/b.sock", "listenerMetadata": "pod-b"}
    assert entry(tmp_path, one) == entry(tmp_path, two)
    assert seccomp.compile_filter(one).program == seccomp.compile_filter(two).program
    assert seccomp_cache.compile_filter(one, str(tmp_path)).flags == seccomp.FLAG_NEW_LISTENER
    assert entry(tmp_path, deny_mkdir()) != entry(tmp_path, one)


def plant(tmp_path: Path, profile: dict[str, Any], other: dict[str, Any]) -> bytes:
    """Put OTHER's program in PROFILE's entry; returns it."""
    seccomp_cache.compile_filter(other, str(tmp_path))
    seccomp_cache.compile_filter(profile, str(tmp_path))
    planted = entry(tmp_path, other).read_bytes()
    entry(tmp_path, profile).write_bytes(planted)
    return seccomp.compile_filter(other).program


def test_the_entry_is_what_is_loaded(tmp_path: Path) -> None:
    """Proof that the cache is read at all: a trusted entry wins over the profile."""
    planted = plant(tmp_path, deny_mkdir(1), deny_mkdir(2))
    assert seccomp_cache.compile_filter(deny_mkdir(1), str(tmp_path)).program == planted


@pytest.mark.parametrize("spoil", ["group-writable", "other-writable", "not ours", "symlink"])
def test_an_untrusted_entry_is_compiled_again(tmp_path: Path, spoil: str) -> None:
    profile = deny_mkdir(1)
    plant(tmp_path, profile, deny_mkdir(2))
    path = entry(tmp_path, profile)
    if spoil == "group-writable":
        path.chmod(0o620)
    elif spoil == "other-writable":
        path.chmod(0o602)
    elif spoil == "not ours":
        if os.geteuid() != 0:
            pytest.skip("chown to another user needs root")
        os.chown(path, 65534, 65534)
    else:
        real = tmp_path / "elsewhere"
        path.rename(real)
        path.symlink_to(real)
    got = seccomp_cache.compile_filter(profile, str(tmp_path))
    assert got.program == seccomp.compile_filter(profile).program


@pytest.mark.parametrize("cut", ["empty", "header only", "half an instruction", "other format"])
def test_a_spoilt_entry_is_compiled_again(tmp_path: Path, cut: str) -> None:
    profile = deny_mkdir(1)
    seccomp_cache.compile_filter(profile, str(tmp_path))
    path = entry(tmp_path, profile)
    data = path.read_bytes()
    header = len(seccomp_cache.FORMAT) + 4
    spoilt = {
        "empty": b"",
        "header only": data[:header],
        "half an instruction": data[:-4],
        "other format": data.replace(b"program 1", b"program 0", 1),
    }[cut]
    path.write_bytes(spoilt)
    got = seccomp_cache.compile_filter(profile, str(tmp_path))
    assert got.program == seccomp.compile_filter(profile).program
    assert path.read_bytes() == data  # replaced whole by the compile's


def test_a_refused_profile_raises_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(seccomp.SeccompError, match="cannot be used as default action"):
        seccomp_cache.compile_filter({"defaultAction": "SCMP_ACT_NOTIFY"}, str(tmp_path))
    assert not tmp_path.exists() or os.listdir(tmp_path) == []


def test_an_unwritable_cache_only_costs_a_compile(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")  # a file where the directory should be
    got = seccomp_cache.compile_filter(deny_mkdir(), str(blocker / "seccomp"))
    assert got.program == seccomp.compile_filter(deny_mkdir()).program


def run_mkdir(ocirt_bin: str, root: Path, bundle: Path, cid: str) -> str:
    done = subprocess.run(
        [ocirt_bin, "--root", str(root), "run", "-b", str(bundle), cid],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_create_takes_the_program_from_the_cache(ocirt_bin: str, tmp_root: Path, bundle) -> None:
    """A create compiles a new profile into the runtime's cache and loads that
    entry the next time: an entry holding another (trusted) program is what
    the container gets."""
    # A profile no other run has compiled: an errno of its own.
    marker_errno = 1 + uuid.uuid4().int % 100
    allow_all = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["acct"], "action": "SCMP_ACT_ERRNO", "errnoRet": marker_errno}],
    }

    def patch(config: dict[str, Any]) -> None:
        config["root"]["readonly"] = False
        config["linux"]["seccomp"] = allow_all

    path = Path(seccomp_cache.cache_dir()) / seccomp_cache._key(allow_all)
    b = bundle(*MKDIR, patch=patch)
    try:
        assert run_mkdir(ocirt_bin, tmp_root, b, "first") == "rc=0"
        assert path.is_file()
        denied = seccomp.compile_filter(deny_mkdir())
        path.write_bytes(seccomp_cache.FORMAT + b"\0\0\0\0" + denied.program)
        assert run_mkdir(ocirt_bin, tmp_root, b, "second") == "rc=1"
    finally:
        path.unlink(missing_ok=True)
