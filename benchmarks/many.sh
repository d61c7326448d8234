#!/bin/bash
# usage: many.sh RUNTIME ROOT BUNDLE PREFIX N
# N containers through the split lifecycle together, as a host starting many
# at once sees it: create all N, start all N, wait until each init has exited
# (polls /proc/PID/stat with bash builtins, no runtime call), delete all N.
set -eu
runtime=$1 root=$2 bundle=$3 prefix=$4 n=$5
pids=()
for i in $(seq "$n"); do
    "$runtime" --root "$root" create --bundle "$bundle" --pid-file "$root.$prefix$i.pid" \
        "$prefix$i" </dev/null
    read -r pid < "$root.$prefix$i.pid" || [ -n "${pid:-}" ]   # no trailing newline
    pids+=("$pid")
done
for i in $(seq "$n"); do "$runtime" --root "$root" start "$prefix$i"; done
for pid in "${pids[@]}"; do
    while read -r _ _ st _ 2>/dev/null < "/proc/$pid/stat"; do
        [ "$st" = Z ] && break
    done
done
for i in $(seq "$n"); do
    "$runtime" --root "$root" delete "$prefix$i"
    rm -f "$root.$prefix$i.pid"
done
