#!/bin/bash
# usage: scripts/install-deps.sh        (as root, on Debian 12 bookworm)
#
# Installs everything ocirt's build, tests, demo and benchmarks need:
#   1. Debian packages (apt-get; skipped with NO_APT=1),
#   2. a venv at .venv with `pip install -e .[test]` (builds the cffi shim,
#      the static ocirt-init and the compiled launcher .venv/bin/ocirt),
#   3. best effort: the kernel for the cgroup v2 VM (../shared/tools/cgroup2-vm
#      --fetch-kernel); the v2 tests skip with a reason without it.
# Idempotent: rerunning only catches up on what is missing.
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

packages=(
    # build: cffi extension (Python.h, libffi) + static stage-2 init (musl, else libc.a)
    # + the compiled launcher (python3-dev: libpython3.11.a, zlib and expat headers)
    make gcc libc6-dev libffi-dev libseccomp-dev pkg-config musl-tools
    python3 python3-venv python3-dev
    # rootfs and the reference runtimes
    busybox-static runc crun
    # managers for tests/test_managers.py
    podman conmon containerd docker.io umoci skopeo
    # CNI for tests/test_cri.py's pods (bridge, host-local, loopback)
    containernetworking-plugins
    # an image registry on 127.0.0.1 for tests/test_swarm.py's two dockerd
    docker-registry
    # tools: unshare/mount (util-linux), tar, benchmarks, shell tests
    util-linux tar hyperfine bats strace
    # the cgroup v2 VM (shared/tools/cgroup2-vm)
    qemu-system-x86 xz-utils
)

if [ "${NO_APT:-0}" != 1 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "install-deps: run as root (or NO_APT=1 to skip apt-get)" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${packages[@]}"
    # The package enables a registry on every interface's port 5000, without
    # authentication; the tests start their own, on 127.0.0.1 of a network
    # namespace of theirs, and need none.
    if [ -d /run/systemd/system ]; then
        systemctl disable --now docker-registry.service >/dev/null 2>&1 || true
    fi
fi

python=${PYTHON:-/usr/bin/python3}
# ocirt's short commands are mostly interpreter start-up, and builds differ
# (pyenv's 3.11.7 starts ~10% slower than Debian's 3.11.2 on the benchmark
# host: docs/benchmarks.md), so the venv should be made from $python, as in
# CI.  One made from another interpreter (a pyenv shim's python3, say) is
# reported, and rebuilt with REBUILD_VENV=1 (not by default: someone may be
# running tests with it).
want_home=$(dirname "$(readlink -f "$python")")
if [ -f .venv/pyvenv.cfg ] && ! grep -qx "home = $want_home" .venv/pyvenv.cfg; then
    if [ "${REBUILD_VENV:-0}" = 1 ]; then
        echo "install-deps: rebuilding .venv from $python" >&2
        rm -rf .venv
    else
        echo "install-deps: WARNING: .venv was made from" \
            "$(sed -n 's/^home = //p' .venv/pyvenv.cfg), not $want_home ($python);" \
            "rebuild it with REBUILD_VENV=1 bash scripts/install-deps.sh" >&2
    fi
fi
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
# editable_mode=compat: a plain path in a .pth file.  The default (an import
# hook module) costs ~12 ms at every interpreter start, i.e. every ocirt call.
# The package build itself makes .venv/bin/ocirt the compiled launcher
# (CPython embedded, isolated, no site; ocirt/_shim/launcher.c, built by
# setup.py's build_scripts with this checkout's path).  Its code bundle
# (ocirt/__pycache__/bundle.*.bin) is written afresh here: a run rewrites it
# by itself only when it is missing or _codebundle.py changed, and modules
# edited since it was written are served by the slower path finder.
.venv/bin/python -m pip install -q -e '.[test]' --config-settings editable_mode=compat
.venv/bin/python -c 'from ocirt.launcher import write_bundle; write_bundle()'
.venv/bin/ocirt --version

# Best effort: nothing else depends on it.
vm="$(dirname "$repo")/shared/tools/cgroup2-vm"
kdir=${VM_KERNEL_DIR:-/var/cache/cgroup2-vm/kernel}
if [ -x "$vm" ] || [ -f "$vm" ]; then
    if ls "$kdir"/boot/vmlinuz-* >/dev/null 2>&1; then
        echo "install-deps: cgroup2-vm kernel already in $kdir"
    elif ! bash "$vm" --fetch-kernel; then
        echo "install-deps: WARNING: could not fetch the cgroup2-vm kernel; cgroup v2 tests will skip" >&2
    fi
else
    echo "install-deps: no $vm; cgroup v2 VM tests will skip" >&2
fi
echo "install-deps: done"
