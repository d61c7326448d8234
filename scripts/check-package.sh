#!/bin/bash
# usage: scripts/check-package.sh [WORKDIR]      (as root, after scripts/install-deps.sh)
#
# What a user of the package gets, from scratch: `python -m build` makes the
# sdist and, from it, the wheel; the wheel is installed into a new venv (as
# `pip install dist/ocirt-*.whl`); its ocirt must be the compiled launcher,
# carry the schemas, man pages and completion, run the demo bundle, and pass
# tests/test_lifecycle.py.  .ci/run runs it so a packaging regression fails CI.
# WORKDIR (default: a new directory under /tmp) is removed unless KEEP=1.
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-/usr/bin/python3}
work=${1:-$(mktemp -d /tmp/ocirt-package.XXXXXX)}
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$work"' EXIT
mkdir -p "$work"
step() { echo "== check-package: $*"; }

step "python -m build (sdist, then the wheel from it)"
"$python" -m venv "$work/tools"
"$work/tools/bin/pip" install -q build
"$work/tools/bin/python" -m build --outdir "$work/dist" "$repo" >"$work/build.log" 2>&1 ||
    { tail -n 40 "$work/build.log"; exit 1; }
ls -l "$work/dist"

step "pip install the wheel into a new venv"
"$python" -m venv "$work/venv"
"$work/venv/bin/pip" install -q "$work"/dist/ocirt-*.whl
ocirt=$work/venv/bin/ocirt
"$ocirt" --version | tee "$work/version.txt"
grep -qx "launcher: compiled" "$work/version.txt" ||
    { echo "check-package: the wheel's ocirt is not the compiled launcher" >&2; exit 1; }
for file in share/man/man8/ocirt.8 share/man/man8/ocirt-create.8 \
    share/bash-completion/completions/ocirt; do
    [ -s "$work/venv/$file" ] || { echo "check-package: no $file in the venv" >&2; exit 1; }
done
"$ocirt" check

step "the demo bundle with the wheel's ocirt"
make -C "$repo" --no-print-directory build/demo-bundle/config.json >/dev/null
out=$("$ocirt" --root "$work/root" run --bundle "$repo/build/demo-bundle" "ocirt-pkg-$$" </dev/null)
echo "$out"
case $out in
    "hello from ocirt: "*) ;;
    *) echo "check-package: the demo printed no greeting" >&2; exit 1 ;;
esac

step "tests/test_lifecycle.py with the wheel's ocirt"
cd "$repo"
OCIRT=$ocirt .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_lifecycle.py </dev/null
step "ok"
