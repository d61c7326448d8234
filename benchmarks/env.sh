#!/bin/bash
# usage: OCIRT=... RUNC=... CRUN=... bash benchmarks/env.sh
#
# Prints what a benchmark result depends on, one "key: value" per line
# (lifecycle.sh and exec.sh write it to OUT/env.txt; summarize.py prints it
# above the table): the commit and whether the working tree differs from it,
# the interpreter ocirt runs on (its launcher's #! line, or the compiled launcher's), the runtimes'
# versions, the kernel and the load.  Warns on stderr when ocirt does not run
# on the system's /usr/bin/python3, which CI and scripts/install-deps.sh use:
# another build of the same version can be ~10% slower to start (measured on
# the benchmark host: pyenv's 3.11.7 vs Debian's 3.11.2, see docs/benchmarks.md).
set -u
repo=$(cd "$(dirname "$0")/.." && pwd)
OCIRT=${OCIRT:-$repo/.venv/bin/ocirt}
RUNC=${RUNC:-$(command -v runc || true)}
CRUN=${CRUN:-$(command -v crun || true)}

# The checkout ocirt runs from: the first path the launcher puts on sys.path
# (ocirt/launcher.py), else this one.
code=$(sed -n "s/^sys.path\[:0\] = \['\([^']*\)'.*/\1/p" "$OCIRT" 2>/dev/null | head -n 1)
[ -d "${code:-}" ] || code=$repo
commit=$(git -C "$code" rev-parse --short HEAD 2>/dev/null || echo unknown)
changed=$(git -C "$code" status --porcelain 2>/dev/null | awk '{print $NF}' | tr '\n' ' ')
[ -n "$changed" ] && commit="$commit + working tree changes: ${changed% }"
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "commit: $commit ($code)"

interp=$(head -n 1 "$OCIRT" 2>/dev/null | sed -n 's/^#!\([^ ]*\).*/\1/p')
if [ -n "$interp" ] && [ -x "$interp" ]; then
    info=$("$interp" -I -S -c 'import sys; print(sys.version.split()[0], sys.base_prefix)')
    base=${info#* }
    echo "ocirt interpreter: $interp (CPython ${info%% *}, base $base)"
    system_base=$(/usr/bin/python3 -I -S -c 'import sys; print(sys.base_prefix)' 2>/dev/null || true)
    if [ "$base" != "$system_base" ]; then
        echo "env.sh: warning: ocirt runs on $base's Python, not /usr/bin/python3 (what CI and" \
            "scripts/install-deps.sh use); rebuild it: REBUILD_VENV=1 bash scripts/install-deps.sh" >&2
    fi
elif [ "$(head -c 4 "$OCIRT" 2>/dev/null | od -An -c | tr -d ' ')" = "177ELF" ]; then
    # ocirt/_shim/launcher.c, linked against the venv interpreter's libpython.
    version=$("$OCIRT" --version 2>/dev/null | sed -n 's/^python: //p')
    echo "ocirt interpreter: compiled launcher (CPython ${version:-unknown}, embedded)"
else
    echo "ocirt interpreter: unknown ($OCIRT is neither a #! script nor the compiled launcher)"
fi
[ -n "$RUNC" ] && echo "runc: $("$RUNC" --version 2>/dev/null | head -n 1)"
[ -n "$CRUN" ] && echo "crun: $("$CRUN" --version 2>/dev/null | head -n 1)"
echo "kernel: $(uname -r), $(nproc) CPUs"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
