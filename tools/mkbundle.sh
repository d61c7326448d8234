#!/bin/sh
# usage: mkbundle.sh DIR [ARGS...]
#
# Builds an OCI bundle in DIR: DIR/rootfs (via mkrootfs.sh) and DIR/config.json,
# which is `runc spec`'s default with terminal=false (tests and benchmarks run
# without a tty) and process.args = ARGS (default: sh).
set -eu

if [ $# -lt 1 ]; then
    echo "usage: $0 DIR [ARGS...]" >&2
    exit 2
fi
dir=$1
shift
[ $# -gt 0 ] || set -- sh
here=$(cd "$(dirname "$0")" && pwd)
runc=${RUNC:-runc}
# Prefer the project venv: the python3 on PATH may be a pyenv shim.
python=${PYTHON:-python3}
if [ -z "${PYTHON:-}" ] && [ -x "$here/../.venv/bin/python" ]; then
    python=$here/../.venv/bin/python
fi

mkdir -p "$dir"
"$here/mkrootfs.sh" "$dir/rootfs"

# runc spec refuses to overwrite an existing config.json.
rm -f "$dir/config.json"
(cd "$dir" && "$runc" spec)

# Edit with python rather than jq (one fewer dependency).
"$python" - "$dir/config.json" "$@" <<'PY'
import json
import sys

path, args = sys.argv[1], sys.argv[2:]
with open(path) as f:
    config = json.load(f)
config["process"]["terminal"] = False
config["process"]["args"] = args
with open(path, "w") as f:
    json.dump(config, f, indent="\t")
    f.write("\n")
PY
