#!/bin/bash
# usage: tools/nohybrid.sh bash benchmarks/lifecycle.sh     (as root; or `make bench`)
#
# Times ocirt, runc and crun side by side with hyperfine on one busybox bundle
# and measures the PSS of a created-but-not-started container's init:
#   run        `R run` of a container whose process is `true`
#   lifecycle  create, start, wait until the init has exited, delete (benchmarks/split.sh)
#   state      `R state ID` of a created container
#   start      `R start ID` (prepare: delete -f; create)
#   kill       `R kill ID 9` of a created container (prepare: delete -f; create)
#   delete     `R delete -f ID` of a created container (prepare: create)
#   hundred    100 containers: create all, start all, wait, delete all (benchmarks/many.sh)
#   exec       `R exec ID true` into a running container (benchmarks/exec.sh)
#   pss        Pss of the created init, from /proc/PID/smaps_rollup (median of PSS_SAMPLES)
#   cpu        benchmarks/cpu.py: CPU with the containers' inits counted (cpuacct), for
#              lifecycle, state, exec and 100 lifecycles 4 at a time (CPU_RUNS iterations)
# Every hyperfine row also gets its CPU time (user+sys: the command and the
# children it waited for), in a second table.
# crun refuses this hybrid cgroup host: run the whole script under nohybrid
# (a mount namespace without the cgroup2 mount); ocirt and runc work there too.
# Knobs: OCIRT RUNC CRUN (paths), RUNS (default 30), WARMUP (3), MANY (100) and
#        MANY_RUNS (3) for the hundred row,
#        PSS_SAMPLES (5), OUT (build/bench), RUNTIMES ("ocirt runc crun"),
#        CPU_RUNS (RUNS; 0: no cpu.py table).
# Writes OUT/*.json (hyperfine exports), OUT/pss.tsv, OUT/env.txt (commit,
# ocirt's interpreter, versions: benchmarks/env.sh) and OUT/results.md (both,
# the table with ocirt/runc and ocirt/crun ratios; also printed).
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
OCIRT=${OCIRT:-$repo/.venv/bin/ocirt}
RUNC=${RUNC:-$(command -v runc)}
CRUN=${CRUN:-$(command -v crun || true)}
RUNS=${RUNS:-30}
WARMUP=${WARMUP:-3}
PSS_SAMPLES=${PSS_SAMPLES:-5}
MANY=${MANY:-100}            # containers in the "hundred" row
MANY_RUNS=${MANY_RUNS:-3}
OUT=${OUT:-$repo/build/bench}
RUNTIMES=${RUNTIMES:-ocirt runc crun}
python=$repo/.venv/bin/python
[ -x "$python" ] || python=python3

[ "$(id -u)" = 0 ] || { echo "lifecycle.sh: run as root" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "lifecycle.sh: apt-get install hyperfine" >&2; exit 1; }

declare -A bin=([ocirt]=$OCIRT [runc]=$RUNC [crun]=$CRUN)
names=()
for r in $RUNTIMES; do
    if [ -n "${bin[$r]:-}" ] && [ -x "${bin[$r]}" ]; then names+=("$r"); else
        echo "lifecycle.sh: skipping $r (not found)" >&2; fi
done

mkdir -p "$OUT"
rm -f "$OUT/cpu.json"   # a table of this run only
OCIRT=$OCIRT RUNC=$RUNC CRUN=$CRUN bash "$repo/benchmarks/env.sh" > "$OUT/env.txt"

work=$(mktemp -d /tmp/ocirt-bench.XXXXXX)
# Container ids (and so their default cgroup paths /sys/fs/cgroup/*/ID) are
# unique to this run: ob<pid>-<what>.
p=ob$$-
cleanup() {
    for r in "${names[@]}"; do
        for id in $(ls "$work/root-$r" 2>/dev/null); do
            "${bin[$r]}" --root "$work/root-$r" delete -f "$id" >/dev/null 2>&1 || true
        done
    done
    rm -rf "$work"
    # A runtime may leave an empty cgroup behind: remove only ours.
    for d in /sys/fs/cgroup/*/"$p"*; do [ -d "$d" ] && rmdir "$d" 2>/dev/null || true; done
}
trap cleanup EXIT
sh "$repo/tools/mkbundle.sh" "$work/bundle" true >/dev/null
B=$work/bundle

# Fail early (and visibly) if a runtime cannot run the bundle here.
for r in "${names[@]}"; do
    if ! "${bin[$r]}" --root "$work/root-$r" run -b "$B" "${p}check" </dev/null; then
        echo "lifecycle.sh: $r cannot run the bundle" >&2; exit 1
    fi
done

rt() { echo "${bin[$1]} --root $work/root-$1"; }   # runtime + its state root
hf() {   # hf NAME [hyperfine args...] -- then one command per runtime, in names order
    local name=$1; shift
    echo "== $name"
    hyperfine -N --runs "$RUNS" --warmup "$WARMUP" --style basic \
        --export-json "$OUT/$name.json" "$@"
}

cmds=() prep=()
for r in "${names[@]}"; do
    cmds+=(-n "$r" "$(rt "$r") run -b $B ${p}r")
    prep+=(--prepare "$(rt "$r") delete -f ${p}r")
done
hf run "${prep[@]}" "${cmds[@]}"

cmds=() prep=()
for r in "${names[@]}"; do
    cmds+=(-n "$r" "bash $repo/benchmarks/split.sh ${bin[$r]} $work/root-$r $B ${p}l")
    prep+=(--prepare "$(rt "$r") delete -f ${p}l")
done
hf lifecycle "${prep[@]}" "${cmds[@]}"

# 100 containers at once (benchmarks/many.sh): fewer runs, each is ~100 lifecycles.
cmds=() prep=()
for r in "${names[@]}"; do
    cmds+=(-n "$r" "bash $repo/benchmarks/many.sh ${bin[$r]} $work/root-$r $B ${p}m $MANY")
    prep+=(--prepare "bash -c 'for i in \$(seq $MANY); do $(rt "$r") delete -f ${p}m\$i; done >/dev/null 2>&1'")
done
RUNS=$MANY_RUNS WARMUP=1 hf hundred "${prep[@]}" "${cmds[@]}"

cmds=()
for r in "${names[@]}"; do
    $(rt "$r") create -b "$B" "${p}s" </dev/null
    cmds+=(-n "$r" "$(rt "$r") state ${p}s")
done
hf state "${cmds[@]}"
for r in "${names[@]}"; do $(rt "$r") delete -f "${p}s"; done

for op in start kill delete; do
    cmds=() prep=()
    for r in "${names[@]}"; do
        case $op in
        start)  cmds+=(-n "$r" "$(rt "$r") start ${p}o") ;;
        kill)   cmds+=(-n "$r" "$(rt "$r") kill ${p}o 9") ;;
        delete) cmds+=(-n "$r" "$(rt "$r") delete -f ${p}o") ;;
        esac
        # bash -c: prepare runs without a shell too (-N).
        prep+=(--prepare "bash -c '$(rt "$r") delete -f ${p}o >/dev/null 2>&1; exec $(rt "$r") create -b $B ${p}o </dev/null'")
    done
    hf "$op" "${prep[@]}" "${cmds[@]}"
    for r in "${names[@]}"; do $(rt "$r") delete -f "${p}o" >/dev/null 2>&1 || true; done
done

# PSS of the created (not started) init.
: > "$OUT/pss.tsv"
for r in "${names[@]}"; do
    samples=()
    for i in $(seq "$PSS_SAMPLES"); do
        $(rt "$r") create -b "$B" --pid-file "$work/pid" "${p}p" </dev/null
        pid=$(cat "$work/pid")
        samples+=("$(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup")")
        $(rt "$r") delete -f "${p}p"
    done
    printf '%s\t%s\n' "$r" "${samples[*]}" >> "$OUT/pss.tsv"
done

OCIRT=$OCIRT RUNC=$RUNC CRUN=$CRUN RUNS=$RUNS WARMUP=$WARMUP OUT=$OUT RUNTIMES="${names[*]}" SUMMARY=0 bash "$repo/benchmarks/exec.sh" || echo "lifecycle.sh: benchmarks/exec.sh failed: no exec row" >&2
CPU_RUNS=${CPU_RUNS:-$RUNS}
if [ "$CPU_RUNS" -gt 0 ]; then
    pairs=()
    for r in "${names[@]}"; do pairs+=("$r=${bin[$r]}"); done
    "$python" "$repo/benchmarks/cpu.py" -n "$CPU_RUNS" --json "$OUT/cpu.json" "${pairs[@]}" \
        >/dev/null || echo "lifecycle.sh: benchmarks/cpu.py failed: no cpuacct table" >&2
fi
"$python" "$repo/benchmarks/summarize.py" "$OUT" | tee "$OUT/results.md"
