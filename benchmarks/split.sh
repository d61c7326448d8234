#!/bin/bash
# usage: split.sh RUNTIME ROOT BUNDLE ID
# The split lifecycle a manager drives: create, start, wait until the
# container's init has exited (polls /proc/PID/stat with shell builtins only,
# so no runtime call is spent on waiting), delete.
set -eu
runtime=$1 root=$2 bundle=$3 id=$4
pidfile=$root.$id.pid
"$runtime" --root "$root" create --bundle "$bundle" --pid-file "$pidfile" "$id" </dev/null
read -r pid < "$pidfile" || [ -n "${pid:-}" ]   # no trailing newline
"$runtime" --root "$root" start "$id"
# Exited once /proc/PID is gone or the process is a zombie.
while read -r _ _ st _ 2>/dev/null < "/proc/$pid/stat"; do
    [ "$st" = Z ] && break
done
"$runtime" --root "$root" delete "$id"
rm -f "$pidfile"
