#!/bin/bash
# usage: tools/nohybrid.sh bash benchmarks/exec.sh     (as root; `make bench` runs it too)
#
# Exec probe latency (a Kubernetes exec probe is `exec` of a short command into a
# running container): times `R --root ROOT exec ID true` (foreground: the runtime
# waits for `true` and exits with its status) against one running `sleep 1000`
# container per runtime, ocirt, runc and crun in the same hyperfine run.
# crun refuses this hybrid cgroup host: run the whole script under nohybrid.
# Knobs (as lifecycle.sh): OCIRT RUNC CRUN (paths), RUNS (30), WARMUP (3),
#        OUT (build/bench), RUNTIMES ("ocirt runc crun"),
#        SUMMARY (1: print the exec row with ocirt/runc and ocirt/crun ratios;
#                 lifecycle.sh sets 0 and prints it in its own table).
# Writes OUT/exec.json (hyperfine export) and, alone, OUT/env.txt (benchmarks/env.sh).
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
OCIRT=${OCIRT:-$repo/.venv/bin/ocirt}
RUNC=${RUNC:-$(command -v runc)}
CRUN=${CRUN:-$(command -v crun || true)}
RUNS=${RUNS:-30}
WARMUP=${WARMUP:-3}
OUT=${OUT:-$repo/build/bench}
RUNTIMES=${RUNTIMES:-ocirt runc crun}
SUMMARY=${SUMMARY:-1}
python=$repo/.venv/bin/python
[ -x "$python" ] || python=python3

[ "$(id -u)" = 0 ] || { echo "exec.sh: run as root" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "exec.sh: apt-get install hyperfine" >&2; exit 1; }

declare -A bin=([ocirt]=$OCIRT [runc]=$RUNC [crun]=$CRUN)
names=()
for r in $RUNTIMES; do
    if [ -n "${bin[$r]:-}" ] && [ -x "${bin[$r]}" ]; then names+=("$r"); else
        echo "exec.sh: skipping $r (not found)" >&2; fi
done

work=$(mktemp -d /tmp/ocirt-bench-exec.XXXXXX)
id=ob$$-exec   # also the cgroup name (/sys/fs/cgroup/*/ID): unique to this run
cleanup() {
    for r in "${names[@]}"; do
        "${bin[$r]}" --root "$work/root-$r" delete -f "$id" >/dev/null 2>&1 || true
    done
    rm -rf "$work"
    for d in /sys/fs/cgroup/*/"$id"; do [ -d "$d" ] && rmdir "$d" 2>/dev/null || true; done
}
trap cleanup EXIT
mkdir -p "$OUT"
if [ "$SUMMARY" = 1 ]; then
    OCIRT=$OCIRT RUNC=$RUNC CRUN=$CRUN bash "$repo/benchmarks/env.sh" > "$OUT/env.txt"
fi
sh "$repo/tools/mkbundle.sh" "$work/bundle" sleep 1000 >/dev/null

cmds=()
for r in "${names[@]}"; do
    rt="${bin[$r]} --root $work/root-$r"
    # Detached, stdio away from us: nothing may hold this script's pipes.
    if ! $rt run -d -b "$work/bundle" "$id" </dev/null >/dev/null 2>"$work/$r.err"; then
        echo "exec.sh: $r cannot run the bundle: $(cat "$work/$r.err")" >&2; exit 1
    fi
    # Fail early (and visibly) if exec does not work.
    if ! $rt exec "$id" true </dev/null; then
        echo "exec.sh: $r exec $id true failed" >&2; exit 1
    fi
    cmds+=(-n "$r" "$rt exec $id true")
done

echo "== exec"
hyperfine -N --runs "$RUNS" --warmup "$WARMUP" --style basic \
    --export-json "$OUT/exec.json" "${cmds[@]}"

if [ "$SUMMARY" = 1 ]; then
    "$python" "$repo/benchmarks/summarize.py" "$OUT" exec
fi
