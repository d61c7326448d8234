#!/bin/bash
# usage: conformance/runtime-tools.sh [options] DIR [TEST...]
#
# Runs the OCI runtime-tools validation suite (github.com/opencontainers/runtime-tools,
# checked out in DIR; never copied into this project) against ocirt, runc and crun and
# writes a table of the TAP results: one row per validation/* test, one column per
# runtime.  TEST names (e.g. "hooks" or "linux_*") pick some tests; default: all.
#
#   -o DIR      where results go (default: DIR/ocirt-results): results.txt (the table),
#               logs/RUNTIME/TEST.tap and .err (the test's stdout and stderr)
#   -r LIST     runtimes, comma separated, among ocirt,runc,crun (default: all three)
#   -t SECONDS  timeout of one test file under one runtime (default: 180)
#   -B          rebuild the suite even if its binaries exist
#
# Environment: OCIRT (default /work/main/.venv/bin/ocirt or the repo's .venv), RUNC
# (default runc), CRUN (default crun), NOHYBRID (default this checkout's
# tools/nohybrid.sh: crun 1.8.1 refuses a hybrid cgroup host), GO (default Debian's Go 1.19,
# /usr/lib/go-1.19/bin/go), BUSYBOX (default /bin/busybox, for the rootfs).
#
# The suite is built offline with its vendored modules (GOFLAGS=-mod=vendor,
# GOPROXY=off); commit 260e151 (2025-03-03) is the last one Go 1.19 builds, later ones
# need Go 1.21.  Every test runs:
#   - with its working directory in a run directory holding `runtimetest` and a
#     rootfs-ARCH.tar.gz made by tools/mkrootfs.sh from the host's static busybox (the
#     suite untars "rootfs-$GOARCH.tar.gz" and copies "runtimetest" from the cwd);
#   - with RUNTIME set to a small wrapper script that adds `--root` with a private state
#     directory (the suite calls RUNTIME create/start/state/kill/delete without one);
#   - in a private mount namespace (unshare -m, / made rprivate: nothing a runtime or a
#     test mounts reaches the host), crun's inside nohybrid's namespace;
#   - with TMPDIR private to the test (the suite makes its bundles with MkdirTemp);
#   - under `timeout`.
# Only one run at a time (a lock on this script).  Afterwards every container left in the state directory is deleted with --force, the
# temporary files removed, and the cgroups the suite names (cgrouptest, testdir/...) that
# did not exist before the test are removed (rmdir: only empty ones, deepest first).
# Needs root.
set -u

usage() {
    sed -n '2,/^$/s/^# \{0,1\}//p' "$0" >&2
    exit 2
}

here=$(cd "$(dirname "$0")/.." && pwd)
out=""
runtimes="ocirt,runc,crun"
timeout_s=180
rebuild=0
while getopts "o:r:t:Bh" opt; do
    case $opt in
    o) out=$OPTARG ;;
    r) runtimes=$OPTARG ;;
    t) timeout_s=$OPTARG ;;
    B) rebuild=1 ;;
    *) usage ;;
    esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || usage
suite=$(cd "$1" && pwd) || exit 2
shift
[ -f "$suite/validation/util/test.go" ] || {
    echo "runtime-tools.sh: $suite is not a runtime-tools checkout" >&2
    exit 2
}
[ "$(id -u)" = 0 ] || {
    echo "runtime-tools.sh: needs root" >&2
    exit 2
}
out=${out:-$suite/ocirt-results}

default_ocirt=/work/main/.venv/bin/ocirt
[ -x "$default_ocirt" ] || default_ocirt=$here/.venv/bin/ocirt
OCIRT=${OCIRT:-$default_ocirt}
RUNC=${RUNC:-runc}
CRUN=${CRUN:-crun}
NOHYBRID=${NOHYBRID:-$here/tools/nohybrid.sh}
GO=${GO:-/usr/lib/go-1.19/bin/go}

# ---- build -----------------------------------------------------------------------

test_names() {
    # Every validation/NAME/NAME.go but the shared util package, as the suite's Makefile.
    local d
    for d in "$suite"/validation/*/; do
        d=$(basename "$d")
        [ "$d" = util ] && continue
        [ -f "$suite/validation/$d/$d.go" ] && echo "$d"
    done
}

suite_built() {
    local name
    [ -x "$suite/runtimetest" ] || return 1
    for name in $(test_names); do
        [ -x "$suite/validation/$name/$name.t" ] || return 1
    done
}

build_suite() {
    if ! [ -x "$GO" ]; then
        echo "runtime-tools.sh: $GO missing (apt-get install golang-1.19-go)" >&2
        exit 1
    fi
    echo "building the suite in $suite with $("$GO" version)" >&2
    # Offline: the suite vendors its modules; GOTOOLCHAIN=local keeps a newer go from
    # trying to download the toolchain a go.mod names.
    (cd "$suite" && PATH=$(dirname "$GO"):$PATH GOFLAGS=-mod=vendor GOPROXY=off \
        GOTOOLCHAIN=local make runtimetest validation-executables) >"$out/build.log" 2>&1 || {
        echo "runtime-tools.sh: build failed, see $out/build.log" >&2
        tail -5 "$out/build.log" >&2
        exit 1
    }
}

# ---- the run directory: runtimetest, the rootfs tarball, runtime wrappers ---------

prepare_rundir() {
    local arch rootfs
    run=$out/run
    mkdir -p "$run/bin" "$out/logs"
    # A copy, not a symlink: the suite copies it into each bundle with Lstat semantics.
    cp -f "$suite/runtimetest" "$run/runtimetest"
    arch=$("$GO" env GOARCH 2>/dev/null || echo amd64)
    if ! [ -s "$run/rootfs-$arch.tar.gz" ]; then
        rootfs=$(mktemp -d "$out/rootfs.XXXXXX")
        BUSYBOX=${BUSYBOX:-/bin/busybox} sh "$here/tools/mkrootfs.sh" "$rootfs" || exit 1
        # The tarball's "./" gives the bundle directory its mode, and the suite's
        # rootfs is the bundle itself (root.path "."): 0755, not mktemp's 0700, or
        # a non-root process.user could not reach anything.
        chmod 0755 "$rootfs"
        tar -C "$rootfs" -czf "$run/rootfs-$arch.tar.gz.tmp" . &&
            mv "$run/rootfs-$arch.tar.gz.tmp" "$run/rootfs-$arch.tar.gz"
        rm -rf "$rootfs"
    fi
}

runtime_cmd() {
    case $1 in
    ocirt) echo "$OCIRT" ;;
    runc) command -v "$RUNC" ;;
    crun) command -v "$CRUN" ;;
    *)
        echo "runtime-tools.sh: unknown runtime $1" >&2
        exit 2
        ;;
    esac
}

# The mount namespace a runtime's tests run in: crun's is nohybrid's (which also hides
# the cgroup2 mount of this hybrid host, so the test's cgroup checks see what crun sees).
namespace_prefix() {
    if [ "$1" = crun ]; then
        echo "$NOHYBRID"
    else
        echo "unshare -m --propagation private"
    fi
}

write_wrapper() { # NAME STATE_ROOT -> path of a script that runs the runtime with --root
    local name=$1 root=$2 cmd wrapper=$run/bin/$1
    cmd=$(runtime_cmd "$name") || exit 2
    [ -n "$cmd" ] && [ -x "$cmd" ] || {
        echo "runtime-tools.sh: $name not found ($cmd)" >&2
        return 1
    }
    printf '#!/bin/sh\nexec %q --root %q "$@"\n' "$cmd" "$root" >"$wrapper"
    chmod 0755 "$wrapper"
    echo "$wrapper"
}

# ---- cgroups the suite creates -----------------------------------------------------

# The suite's fixed cgroup names: "/cgrouptest" (absolute) and "testdir/cgrouptest/container"
# (relative: below the caller's cgroup of each hierarchy).  Listed deepest first.
suite_cgroups() {
    local mnt sub own
    for mnt in /sys/fs/cgroup/*/; do
        mnt=${mnt%/}
        sub=$(basename "$mnt")
        # This shell's cgroup in that hierarchy (relative paths are taken from the
        # runtime's own cgroup by runc and ocirt, from the root by others).
        own=$(awk -F: -v c="$sub" '{
            n = split($2, a, ",")
            for (i = 1; i <= n; i++) if (a[i] == c || a[i] == "name=" c) print $3
            if ($2 == "" && c == "unified") print $3
        }' /proc/self/cgroup | head -1)
        echo "$mnt/cgrouptest"
        for base in "$mnt${own%/}" "$mnt"; do
            for rel in testdir/cgrouptest/container testdir/cgrouptest testdir; do
                echo "$base/$rel"
            done
        done
    done | awk '{ print length($0) "\t" $0 }' | sort -rn | cut -f2- | awk '!seen[$0]++'
}

existing_suite_cgroups() {
    local cg
    for cg in $(suite_cgroups); do
        [ -d "$cg" ] && echo "$cg"
    done
}

remove_new_cgroups() { # BEFORE-LIST: remove what the test left, never what was there
    local before=$1 cg
    for cg in $(suite_cgroups); do
        [ -d "$cg" ] || continue
        grep -qxF "$cg" <<<"$before" && continue
        rmdir "$cg" 2>/dev/null || echo "runtime-tools.sh: could not remove $cg" >&2
    done
}

# ---- one test --------------------------------------------------------------------

# Verdict of one test's output.  The suite reports in three ways: TAP test points
# (PASS when none is "not ok"); a "1..0" plan whose only content is a YAML "error"
# diagnostic when a lifecycle check failed (the hook tests); and, for the *_fail tests
# that expect the runtime to refuse a config, silence and exit 0 when it did.  A test
# that calls util.Fatal exits 1.
#   PASS n/m | SKIP n/m (all skipped) | FAIL n/m | FAIL diag | TIMEOUT | ERROR rc=N
verdict() { # TAP-FILE RC
    local tap=$1 rc=$2 total notok skipped
    total=$(grep -cE '^(not )?ok [0-9]' "$tap")
    notok=$(grep -E '^not ok [0-9]' "$tap" | grep -vc '# TODO')
    skipped=$(grep -cE '^ok [0-9]+ # SKIP' "$tap")
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
        echo "TIMEOUT $((total - notok))/$total"
    elif [ "$notok" -gt 0 ]; then
        echo "FAIL $((total - notok))/$total"
    elif [ "$rc" != 0 ]; then
        echo "ERROR rc=$rc"
    elif [ "$total" = 0 ] && grep -q '^ *"error":' "$tap"; then
        echo "FAIL diag"
    elif [ "$total" = 0 ]; then
        echo "PASS 0/0"
    elif [ "$skipped" = "$total" ]; then
        echo "SKIP $total/$total"
    else
        echo "PASS $total/$total"
    fi
}

run_one() { # RUNTIME TEST -> verdict on stdout
    local rt=$1 name=$2 root tmp wrapper before rc ids id
    root=$out/state/$rt
    tmp=$out/tmp/$rt-$name
    rm -rf "$root" "$tmp"
    mkdir -p "$root" "$tmp" "$out/logs/$rt"
    wrapper=$(write_wrapper "$rt" "$root") || {
        echo "NO-RUNTIME"
        return
    }
    before=$(existing_suite_cgroups)
    # shellcheck disable=SC2046
    (cd "$run" && RUNTIME=$wrapper TMPDIR=$tmp $(namespace_prefix "$rt") \
        sh -c 'mount --make-rprivate / && exec timeout -k 10 "$0" "$@"' \
        "$timeout_s" "$suite/validation/$name/$name.t" \
        </dev/null >"$out/logs/$rt/$name.tap" 2>"$out/logs/$rt/$name.err")
    rc=$?
    # Whatever the test left: force-delete its containers (in crun's namespace for crun).
    ids=$($(namespace_prefix "$rt") "$wrapper" list -q 2>/dev/null)
    for id in $ids; do
        $(namespace_prefix "$rt") "$wrapper" delete --force "$id" >/dev/null 2>&1 ||
            echo "runtime-tools.sh: $rt: could not delete $id" >&2
    done
    remove_new_cgroups "$before"
    rm -rf "$tmp" "$root"
    verdict "$out/logs/$rt/$name.tap" "$rc"
}

# ---- main ------------------------------------------------------------------------

mkdir -p "$out"
# One run at a time on this host (the suite's cgroup names are fixed): a lock on
# this script itself, so nothing is left behind.
exec 9<"$0"
flock -n 9 || {
    echo "runtime-tools.sh: another run of $0 is in progress" >&2
    exit 1
}
if [ "$rebuild" = 1 ] || ! suite_built; then
    build_suite
fi
prepare_rundir

if [ $# -gt 0 ]; then
    tests=$(for pat in "$@"; do for n in $(test_names); do
        # shellcheck disable=SC2053
        [[ $n == $pat ]] && echo "$n"
    done; done | sort -u)
else
    tests=$(test_names)
fi
IFS=, read -r -a rts <<<"$runtimes"

commit=$(git -C "$suite" rev-parse --short HEAD 2>/dev/null || echo unknown)
results=$out/results.txt
{
    echo "# runtime-tools $commit, $(date -u +%Y-%m-%dT%H:%M:%SZ), timeout ${timeout_s}s"
    for rt in "${rts[@]}"; do
        echo "# $rt: $(runtime_cmd "$rt") ($("$(runtime_cmd "$rt")" --version 2>/dev/null | head -1))"
    done
    printf '%-40s' test
    for rt in "${rts[@]}"; do printf ' %-18s' "$rt"; done
    echo
} >"$results"
cat "$results"

declare -A passed
for name in $tests; do
    line=$(printf '%-40s' "$name")
    for rt in "${rts[@]}"; do
        v=$(run_one "$rt" "$name")
        line+=$(printf ' %-18s' "$v")
        case $v in PASS* | SKIP*) passed[$rt]=$((${passed[$rt]:-0} + 1)) ;; esac
    done
    echo "$line" | tee -a "$results"
done
n=$(wc -w <<<"$tests")
summary=$(printf '%-40s' "passed or skipped (of $n)")
for rt in "${rts[@]}"; do summary+=$(printf ' %-18s' "${passed[$rt]:-0}"); done
echo "$summary" | tee -a "$results"
rm -rf "$out/state" "$out/tmp" "$run/bin"
echo "results: $results; TAP logs: $out/logs" >&2
